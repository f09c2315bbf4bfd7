//! momctl's library: brings a mom cluster to match one `mom.yaml`.
//!
//! Layers, as in Kamal: the CLI (`main.rs`) only parses arguments and reports. Planning computes
//! the desired state ([`desired`], from [`config`]) and diffs it against the real world found by
//! labels ([`docker::Engine::observe`] → [`plan::diff`]); `plan` and `up` share that one diff.
//! Execution ([`exec`]) turns each diff entry into Docker API calls and rendered files
//! ([`render`], tera templates in `templates/`).

pub mod aws;
pub mod config;
pub mod desired;
pub mod docker;
pub mod exec;
pub mod hosts;
pub mod images;
pub mod pki;
pub mod plan;
pub mod render;
pub mod secrets;
pub mod status;
pub mod tls;

use desired::Desired;
use hosts::Hosts;
use plan::Plan;

/// Any failure of a momctl operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Render(#[from] render::RenderError),
    #[error(transparent)]
    Docker(#[from] docker::DockerError),
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error(transparent)]
    Exec(#[from] exec::ExecError),
    #[error(transparent)]
    Build(#[from] images::BuildError),
    #[error(transparent)]
    Upgrade(#[from] plan::UpgradeError),
    #[error(transparent)]
    Aws(#[from] aws::AwsError),
}

/// What `up` works from: the diff, the NGINX configuration it was computed for, and the desired
/// cluster given what runs ([`plan::effective`]: upgraded brokers keep their image).
pub struct Computed {
    pub plan: Plan,
    pub nginx_conf: String,
    pub desired: Desired,
}

/// The diff `plan` prints and `up` executes.
pub async fn compute_plan(hosts: &Hosts, desired: &Desired) -> Result<Computed, Error> {
    let observed = hosts.observe(desired).await?;
    let desired = plan::effective(desired, &observed);
    let nginx_conf = render::nginx_conf(&desired)?;
    let plan = plan::diff(&desired, &observed, &nginx_conf)?;
    Ok(Computed { plan, nginx_conf, desired })
}

/// Which image a rolling upgrade goes to.
pub enum Target<'a> {
    Image(&'a str),
    /// The image the newest generation replaced.
    Previous,
}

/// A rolling upgrade, planned: the steps and, for each, NGINX's configuration once that
/// broker's new container replaced the old one in the upstreams.
pub struct ComputedUpgrade {
    pub plan: plan::UpgradePlan,
    pub nginx_confs: Vec<String>,
}

pub async fn compute_upgrade(
    hosts: &Hosts,
    desired: &Desired,
    target: Target<'_>,
) -> Result<ComputedUpgrade, Error> {
    let mut observed = hosts.observe(desired).await?;
    let image = match target {
        Target::Image(image) => image.to_string(),
        Target::Previous => plan::rollback_image(desired, &observed)?,
    };
    if let Some(id) = hosts.image_id(&image).await? {
        observed.image_ids.insert(image.clone(), id);
    }
    let plan = plan::upgrade(desired, &observed, &image)?;
    let mut running = plan::effective(desired, &observed);
    let mut nginx_confs = Vec::new();
    for step in &plan.steps {
        if let Some(spec) = running.services.iter_mut().find(|s| s.service == step.service) {
            *spec = step.new.clone();
        }
        nginx_confs.push(render::nginx_conf(&running)?);
    }
    Ok(ComputedUpgrade { plan, nginx_confs })
}

/// Provider aws: the EC2 diff, then the containers' diff on the hosts' Docker engines. Both are
/// `plan`'s output and what `up` executes.
pub struct AwsComputed {
    pub observed: aws::Ec2Observed,
    /// EC2 changes first, then the containers'.
    pub plan: Plan,
    /// How many of `plan.changes` are EC2's.
    pub ec2_changes: usize,
    /// The containers' part, when the hosts are up (else the containers are planned as new).
    pub docker: Option<Computed>,
    /// Why the containers' part is missing although the hosts exist (a Docker API did not
    /// answer; `plan` asks once).
    pub docker_error: Option<String>,
}

/// The containers of a host that does not exist yet: everything is created.
fn fresh_host_plan(desired: &Desired) -> Result<Plan, Error> {
    let observed = plan::Observed {
        image_ids: desired.services.iter().map(|s| (s.image.clone(), String::new())).collect(),
        ..plan::Observed::default()
    };
    let nginx_conf = render::nginx_conf(desired)?;
    Ok(plan::diff(desired, &observed, &nginx_conf)?)
}

/// `wait_docker`: keep asking the hosts' Docker APIs until they answer (`up`), or ask once
/// (`plan`).
pub async fn compute_aws_plan(
    ec2: &aws::Ec2,
    aws_desired: &aws::AwsDesired,
    desired: &Desired,
    wait_docker: bool,
) -> Result<AwsComputed, Error> {
    let observed = ec2.observe(&aws_desired.cluster).await?;
    let mut changes = plan::ec2_diff(aws_desired, &observed);
    let ec2_changes = changes.len();
    // A host that EC2 makes or starts has no Docker API to ask yet. When it is host 1 (the
    // cluster is new, or lost its first host) every container is planned as new.
    let host_changing = |action: plan::Action| {
        aws_desired.hosts.iter().find(|h| {
            changes.iter().any(|c| c.kind == plan::Kind::Instance && c.action == action && c.name == h.name)
        })
    };
    let first_new = aws_desired
        .hosts
        .first()
        .is_none_or(|h| host_changing(plan::Action::Create).is_some_and(|n| n.index == h.index));
    let unreachable = host_changing(plan::Action::Start)
        .map(|h| format!("host {} is stopped", h.index))
        .or_else(|| host_changing(plan::Action::Create).map(|h| format!("host {} is new", h.index)));
    let mut docker_error = None;
    let docker = if aws::docker_override().is_some() || !(first_new || unreachable.is_some()) {
        match aws::host_engines(aws_desired, &observed, wait_docker).await {
            Ok(hosts) => {
                let computed = compute_plan(&hosts, desired).await?;
                changes.extend(computed.plan.changes.iter().cloned());
                Some(computed)
            }
            Err(e) if !wait_docker => {
                docker_error = Some(e.to_string());
                None
            }
            Err(e) => return Err(e),
        }
    } else if first_new {
        changes.extend(fresh_host_plan(desired)?.changes);
        None
    } else {
        docker_error = unreachable.map(|why| format!("{why}; `up` makes it, then plans the containers"));
        None
    };
    Ok(AwsComputed {
        observed,
        plan: Plan { cluster: desired.cluster.clone(), changes },
        ec2_changes,
        docker,
        docker_error,
    })
}
