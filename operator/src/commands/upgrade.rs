//! `momctl upgrade` / `momctl rollback`: a rolling upgrade of the brokers, planned
//! ([`plan`], pure past observing) and run one broker at a time ([`run`]).

use std::path::Path;
use std::time::Duration;

use crate::desired::Desired;
use crate::error::Error;
use crate::exec::{self, UpgradeSummary};
use crate::hosts::Hosts;
use crate::local::LocalState;
use crate::plan::{self, UpgradePlan};
use crate::provider::Provider;
use crate::render;
use crate::report::Reporter;

/// Which image a rolling upgrade goes to.
pub enum Target<'a> {
    Image(&'a str),
    /// The image the newest generation replaced.
    Previous,
}

/// A rolling upgrade, planned: the steps and, for each, NGINX's configuration once that
/// broker's new container replaced the old one in the upstreams.
pub struct Planned {
    pub plan: UpgradePlan,
    pub nginx_confs: Vec<String>,
    desired: Desired,
    hosts: Hosts,
    local: LocalState,
}

/// The steps of the upgrade to `target`, on the cluster's engines.
pub async fn plan(file: &Path, target: Target<'_>) -> Result<Planned, Error> {
    let loaded = super::load(file)?;
    let provider = Provider::connect(&loaded.settings).await?;
    let hosts = provider.engines(&provider.observe().await?, false).await?;
    let desired = loaded.desired;
    let local = LocalState::prepare(&desired)?;
    let mut observed = hosts.observe(&desired).await?;
    let image = match target {
        Target::Image(image) => image.to_string(),
        Target::Previous => plan::rollback_image(&desired, &observed)?,
    };
    if let Some(id) = hosts.image_id(&image).await? {
        observed.image_ids.insert(image.clone(), id);
    }
    let plan = plan::upgrade(&desired, &observed, &image)?;
    let mut running = plan::effective(&desired, &observed);
    let mut nginx_confs = Vec::new();
    for step in &plan.steps {
        if let Some(spec) = running.services.iter_mut().find(|s| s.service == step.service) {
            *spec = step.new.clone();
        }
        nginx_confs.push(render::nginx_conf(&running, local.tls.as_ref())?);
    }
    Ok(Planned { plan, nginx_confs, desired, hosts, local })
}

/// Runs the upgrade (see [`exec::upgrade`]); fails before touching anything when a secret the
/// new containers need is missing.
pub async fn run(
    planned: &Planned,
    ready_timeout: Duration,
    report: &dyn Reporter,
) -> Result<UpgradeSummary, Error> {
    let secrets = exec::upgrade_secrets(&planned.plan, &planned.local.generated)?;
    Ok(exec::upgrade(
        &planned.hosts,
        &planned.desired,
        &planned.plan,
        &planned.nginx_confs,
        &secrets,
        ready_timeout,
        report,
    )
    .await)
}
