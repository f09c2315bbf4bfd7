//! `momctl status`: the provider's hosts ([`view`]), then the containers, their health and what
//! the brokers say ([`gather`]).

use std::path::Path;

use crate::desired::Desired;
use crate::error::Error;
use crate::provider::{Infra, Place, Provider};

/// The cluster's hosts, as the provider has them.
pub struct View {
    pub place: Place,
    pub found_by: String,
    /// Name, id, state, address per host (none for `local`).
    pub hosts: Vec<[String; 4]>,
    /// The cluster, reached where the provider puts NGINX.
    desired: Desired,
    provider: Provider,
    infra: Infra,
}

pub async fn view(file: &Path) -> Result<View, Error> {
    let loaded = super::load(file)?;
    let mut desired = loaded.desired;
    let provider = Provider::connect(&loaded.settings).await?;
    let infra = provider.observe().await?;
    // The brokers are asked through host 1's NGINX.
    if let Some(ip) = provider.endpoint_ip(&infra) {
        desired.endpoint.bind = ip;
    }
    Ok(View {
        place: provider.place(),
        found_by: provider.found_by(&desired.cluster),
        hosts: provider.hosts(&infra),
        desired,
        provider,
        infra,
    })
}

/// The status; the first admin's password (from the environment) lets it ask the brokers too.
pub async fn gather(view: &View) -> Result<crate::status::Status, Error> {
    let hosts = view.provider.engines(&view.infra, false).await?;
    let desired = &view.desired;
    let password = std::env::var(&desired.admin_password_env).ok().filter(|p| !p.is_empty());
    Ok(crate::status::gather(&hosts, desired, password.as_deref()).await?)
}
