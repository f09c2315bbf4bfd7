//! `momctl down`: everything the cluster owns, listed ([`inventory`]), then removed
//! ([`remove`]): the containers, networks and volumes on its engines, then the provider's
//! hosts. Nothing it does not own.

use std::path::Path;

use crate::docker::Owned;
use crate::error::Error;
use crate::exec;
use crate::hosts::Hosts;
use crate::provider::{Infra, Place, Provider};
use crate::report::Reporter;

/// What the cluster owns.
pub struct Inventory {
    pub cluster: String,
    pub place: Place,
    /// What finds it: the provider's tag, or the engines' label.
    pub found_by: String,
    /// The provider's own resources, one line each (none for `local`).
    pub infra_lines: Vec<String>,
    /// The engines with containers, networks and volumes to remove, and those, per host.
    pub engines: Option<(Hosts, Vec<(u32, Owned)>)>,
    /// What those engines stand in for the hosts' by (the tests' override), when they do.
    pub stand_in: Option<&'static str>,
    provider: Provider,
    infra: Infra,
}

impl Inventory {
    pub fn is_empty(&self) -> bool {
        self.infra_lines.is_empty()
            && self.engines.as_ref().is_none_or(|(_, owned)| owned.iter().all(|(_, o)| o.is_empty()))
    }
}

pub async fn inventory(file: &Path) -> Result<Inventory, Error> {
    let loaded = super::load(file)?;
    let cluster = loaded.desired.cluster;
    let provider = Provider::connect(&loaded.settings).await?;
    let infra = provider.observe().await?;
    let engines = match provider.engines_to_clear(&infra).await? {
        Some(hosts) => {
            let owned = hosts.owned(&cluster).await?;
            Some((hosts, owned))
        }
        None => None,
    };
    Ok(Inventory {
        found_by: provider.found_by(&cluster),
        infra_lines: provider.inventory(&infra),
        stand_in: provider.stand_in(),
        place: provider.place(),
        cluster,
        engines,
        provider,
        infra,
    })
}

/// Removes all of it: the engines' containers (of every host), networks and volumes, then the
/// provider's hosts.
pub async fn remove(inventory: &Inventory, report: &dyn Reporter) -> Result<(), Error> {
    if let Some((hosts, owned)) = &inventory.engines {
        exec::teardown(hosts, owned, report).await?;
    }
    inventory.provider.teardown(&inventory.infra, report).await
}
