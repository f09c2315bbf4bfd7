//! Any failure of a momctl operation: the union of each layer's own errors, for the commands
//! and the CLI (a lower layer returns its own error type, never this one).

#[cfg(feature = "aws")]
use crate::aws::AwsError;
use crate::config::ConfigError;
use crate::docker::DockerError;
use crate::exec::ExecError;
use crate::images::BuildError;
use crate::local::LocalError;
use crate::plan::{PlanError, UpgradeError};
use crate::render::RenderError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Upgrade(#[from] UpgradeError),
    #[cfg(feature = "aws")]
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// `provider: aws` with a momctl built without the aws provider.
    #[cfg(not(feature = "aws"))]
    #[error(
        "provider: aws needs momctl built with the aws provider: \
         cargo build --release -p mom-operator --features aws"
    )]
    AwsNotBuilt,
    #[error(transparent)]
    Local(#[from] LocalError),
    /// `logs` of a cluster without containers.
    #[error("cluster {cluster} has no containers (run `momctl up`)")]
    NoContainers { cluster: String },
    /// `logs` of a service the cluster does not run.
    #[error("cluster {cluster} has no service {service}; it has: {known}")]
    NoService { cluster: String, service: String, known: String },
}
