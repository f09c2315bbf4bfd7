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
}

/// The diff `plan` prints and `up` executes, with the NGINX configuration it was computed for.
pub async fn compute_plan(engine: &Engine, desired: &Desired) -> Result<(Plan, String), Error> {
    let nginx_conf = render::nginx_conf(desired)?;
    let observed = engine.observe(desired).await?;
    let plan = plan::diff(desired, &observed, &nginx_conf)?;
    Ok((plan, nginx_conf))
}
