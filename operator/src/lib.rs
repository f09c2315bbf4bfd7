//! momctl's library: brings a mom cluster to match one `mom.yaml`.
//!
//! Layers, as in Kamal: the CLI (`main.rs`) only parses arguments and reports. Planning computes
//! the desired state ([`desired`], from [`config`]) and diffs it against the real world found by
//! labels ([`docker::Engine::observe`] → [`plan::diff`]); `plan` and `up` share that one diff.
//! Execution ([`exec`]) turns each diff entry into Docker API calls and rendered files
//! ([`render`], tera templates in `templates/`).

pub mod config;
pub mod desired;
pub mod docker;
pub mod exec;
pub mod images;
pub mod plan;
pub mod render;
pub mod status;

use desired::Desired;
use docker::Engine;
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
}

/// What `up` works from: the diff, the NGINX configuration it was computed for, and the desired
/// cluster given what runs ([`plan::effective`]: upgraded brokers keep their image).
pub struct Computed {
    pub plan: Plan,
    pub nginx_conf: String,
    pub desired: Desired,
}

/// The diff `plan` prints and `up` executes.
pub async fn compute_plan(engine: &Engine, desired: &Desired) -> Result<Computed, Error> {
    let observed = engine.observe(desired).await?;
    let desired = plan::effective(desired, &observed);
    let nginx_conf = render::nginx_conf(&desired)?;
    let plan = plan::diff(&desired, &observed, &nginx_conf)?;
    Ok(Computed {
        plan,
        nginx_conf,
        desired,
    })
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
    engine: &Engine,
    desired: &Desired,
    target: Target<'_>,
) -> Result<ComputedUpgrade, Error> {
    let mut observed = engine.observe(desired).await?;
    let image = match target {
        Target::Image(image) => image.to_string(),
        Target::Previous => plan::rollback_image(desired, &observed)?,
    };
    if let Some(id) = engine.image_id(&image).await? {
        observed.image_ids.insert(image.clone(), id);
    }
    let plan = plan::upgrade(desired, &observed, &image)?;
    let mut running = plan::effective(desired, &observed);
    let mut nginx_confs = Vec::new();
    for step in &plan.steps {
        if let Some(spec) = running
            .services
            .iter_mut()
            .find(|s| s.service == step.service)
        {
            *spec = step.new.clone();
        }
        nginx_confs.push(render::nginx_conf(&running)?);
    }
    Ok(ComputedUpgrade { plan, nginx_confs })
}
