//! `momctl up`: prepare the local state, plan, make the hosts exist, then converge the
//! containers on their engines. Two calls: [`plan`] (nothing touched on the hosts yet; the CLI
//! says what is coming) and [`apply`].

use std::path::Path;
use std::time::{Duration, Instant};

use crate::desired::{Desired, Endpoint};
use crate::error::Error;
use crate::exec::{self, Inputs};
use crate::local::LocalState;
use crate::provider::{Place, Provider};
use crate::report::{step, Reporter};

use super::plan::{cluster, containers, ClusterPlan, Containers};

/// `up` planned: what it will do, and all it needs to do it.
pub struct Planned {
    pub desired: Desired,
    pub place: Place,
    pub provider: Provider,
    pub local: LocalState,
    pub planned: ClusterPlan,
    pub note: Option<String>,
}

impl Planned {
    pub fn is_empty(&self) -> bool {
        self.planned.plan.is_empty()
    }
}

/// Loads mom.yaml, connects to the provider, makes the local state (CA, certificates, generated
/// secrets), plans, and checks that the secrets the changes need are in the environment (a
/// missing one stops here, before the hosts or the engines are touched).
pub async fn plan(file: &Path) -> Result<Planned, Error> {
    let loaded = super::load(file)?;
    let mut provider = Provider::connect(&loaded.settings).await?;
    provider.resolve().await?;
    let local = LocalState::prepare(&loaded.desired)?;
    let planned = cluster(&provider, &loaded.desired, &local, true).await?;
    if !planned.plan.is_empty() {
        exec::secrets_for(&planned.plan, &loaded.desired, &local.generated)?;
    }
    Ok(Planned {
        desired: loaded.desired,
        place: provider.place(),
        note: provider.note(),
        provider,
        local,
        planned,
    })
}

/// What `up` did.
pub struct Done {
    pub desired: Desired,
    pub endpoint: Endpoint,
    pub took: Duration,
}

/// Executes [`plan`]'s plan: the hosts' changes, then the containers' (planned again on the
/// hosts' engines when the hosts changed).
pub async fn apply(up: Planned, started: Instant, report: &dyn Reporter) -> Result<Done, Error> {
    let Planned { desired, provider, local, planned, .. } = up;
    let ClusterPlan { infra, plan, host_changes, containers: planned_containers } = planned;
    let host_part = &plan.changes[..host_changes];
    let infra = provider.prepare(infra, host_part, report).await?;
    let reuse = match planned_containers {
        Containers::Planned(on) if host_part.is_empty() => Some((on.computed, on.hosts)),
        _ => None,
    };
    // The engines planned on serve again, unless the hosts changed; remote ones are reached
    // again as a step of their own (they may take a while to answer).
    let hosts = match (provider.connect_step(), &reuse) {
        (None, Some((_, hosts))) => hosts.clone(),
        (None, None) => provider.engines(&infra, true).await?,
        (Some((what, long)), _) => step(report, what, long, provider.engines(&infra, true)).await?,
    };
    let computed = match reuse {
        Some((computed, _)) => computed,
        None => containers(&hosts, &desired, local.tls.as_ref()).await?,
    };
    if !computed.plan.is_empty() {
        let inputs = Inputs {
            nginx_files: exec::nginx_files(&computed.nginx_conf, local.tls.as_ref()),
            secrets: exec::secrets_for(&computed.plan, &computed.desired, &local.generated)?,
        };
        exec::apply(&hosts, &computed.desired, &computed.plan, &inputs, report).await?;
    }
    let mut endpoint = desired.endpoint.clone();
    if let Some(ip) = provider.endpoint_ip(&infra) {
        endpoint.bind = ip;
    }
    Ok(Done { desired, endpoint, took: started.elapsed() })
}
