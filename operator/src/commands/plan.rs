//! `momctl plan`, and the planning `up` shares with it: the provider's diff (making the hosts),
//! then the containers' diff on the hosts' engines. Reads the world; writes nothing.

use std::path::Path;

use crate::desired::Desired;
use crate::error::Error;
use crate::hosts::Hosts;
use crate::local::LocalState;
use crate::observed::Observed;
use crate::plan::{self, Plan};
use crate::provider::{Engines, Infra, Place, Provider};
use crate::render;
use crate::tls::Material;

/// The containers' diff on the engines: the plan, the NGINX configuration it was computed for,
/// and the desired cluster given what runs ([`plan::effective`]: upgraded brokers keep their
/// image).
pub struct Computed {
    pub plan: Plan,
    pub nginx_conf: String,
    pub desired: Desired,
}

/// The containers' diff and the engines it was computed on.
pub struct OnEngines {
    pub computed: Computed,
    pub hosts: Hosts,
}

/// The containers' part of a cluster's plan.
pub enum Containers {
    /// Planned on the engines.
    Planned(Box<OnEngines>),
    /// Host 1 is about to be made: every container is new.
    AllNew,
    /// Not planned yet, and why (a host is not up, or its Docker API did not answer).
    Unknown(String),
}

/// What `plan` prints and `up` executes.
pub struct ClusterPlan {
    /// What the provider holds now.
    pub infra: Infra,
    /// The hosts' changes first, then the containers'.
    pub plan: Plan,
    /// How many of `plan.changes` are the hosts'.
    pub host_changes: usize,
    pub containers: Containers,
}

/// The containers' diff on `hosts`, with NGINX's configuration rendered for `tls`.
pub async fn containers(hosts: &Hosts, desired: &Desired, tls: Option<&Material>) -> Result<Computed, Error> {
    let observed = hosts.observe(desired).await?;
    let desired = plan::effective(desired, &observed);
    let nginx_conf = render::nginx_conf(&desired, tls)?;
    let plan = plan::diff(&desired, &observed, &nginx_conf)?;
    Ok(Computed { plan, nginx_conf, desired })
}

/// The containers of a host that does not exist yet: everything is created.
fn all_new(desired: &Desired, tls: Option<&Material>) -> Result<Plan, Error> {
    let observed = Observed {
        image_ids: desired.services.iter().map(|s| (s.image.clone(), String::new())).collect(),
        ..Observed::default()
    };
    let nginx_conf = render::nginx_conf(desired, tls)?;
    Ok(plan::diff(desired, &observed, &nginx_conf)?)
}

/// The cluster's plan. `wait`: keep asking the hosts' Docker APIs until they answer (`up`), or
/// ask once (`plan`).
pub async fn cluster(
    provider: &Provider,
    desired: &Desired,
    local: &LocalState,
    wait: bool,
) -> Result<ClusterPlan, Error> {
    let infra = provider.observe().await?;
    let mut changes = provider.diff(&infra);
    let host_changes = changes.len();
    let tls = local.tls.as_ref();
    let containers = match provider.engines_for(&changes, wait) {
        Engines::Ask { soft } => match provider.engines(&infra, wait).await {
            Ok(hosts) => {
                let computed = containers(&hosts, desired, tls).await?;
                changes.extend(computed.plan.changes.iter().cloned());
                Containers::Planned(Box::new(OnEngines { computed, hosts }))
            }
            Err(e) if soft => Containers::Unknown(e.to_string()),
            Err(e) => return Err(e),
        },
        Engines::AllNew => {
            changes.extend(all_new(desired, tls)?.changes);
            Containers::AllNew
        }
        Engines::Later(why) => {
            Containers::Unknown(format!("{why}; `up` makes it, then plans the containers"))
        }
    };
    Ok(ClusterPlan {
        infra,
        plan: Plan { cluster: desired.cluster.clone(), changes },
        host_changes,
        containers,
    })
}

/// What `momctl plan` reports.
pub struct Report {
    pub cluster: String,
    pub place: Place,
    pub plan: Plan,
    pub host_changes: usize,
    pub containers: Containers,
    /// What `up` would make in the cluster's directory first.
    pub missing: Vec<String>,
    pub note: Option<String>,
}

impl Report {
    /// Whether anything would change, as far as it is known.
    pub fn converged(&self) -> bool {
        self.plan.is_empty() && !matches!(self.containers, Containers::Unknown(_))
    }
}

/// `momctl plan`: what `up` would do, with the local state as it is (nothing is written).
pub async fn run(file: &Path) -> Result<Report, Error> {
    let loaded = super::load(file)?;
    let mut provider = Provider::connect(&loaded.settings).await?;
    provider.resolve().await?;
    let local = LocalState::read(&loaded.desired)?;
    let planned = cluster(&provider, &loaded.desired, &local, false).await?;
    Ok(Report {
        cluster: loaded.desired.cluster,
        place: provider.place(),
        plan: planned.plan,
        host_changes: planned.host_changes,
        containers: planned.containers,
        missing: local.missing,
        note: provider.note(),
    })
}
