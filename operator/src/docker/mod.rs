//! The Docker Engine API (bollard): reading what a cluster has (by its labels) and the concrete
//! calls the execution layer is made of. momctl never runs the `docker` CLI.
//!
//! One [`Engine`] per Docker engine, its calls split by concern: `resources` (the cluster's
//! network and volumes, found by label), `containers` (create, start, stop, observe, wait,
//! logs, exec), `files` (copying files in and out), `images` (ids, copies between engines,
//! builds) and `swarm` (the Swarm that joins several hosts' engines).

use std::collections::HashMap;

use bollard::Docker;

use crate::desired::Desired;

mod containers;
mod files;
mod images;
mod resources;
mod swarm;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot reach the Docker engine ({hint}): {source}")]
    Connect {
        hint: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("Docker: {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("{container} {problem}; its last log lines:\n{logs}")]
    Unhealthy { container: String, problem: String, logs: String },
    #[error("`{command}` in {container} failed (exit {code}): {output}")]
    Exec { container: String, command: String, code: i64, output: String },
    #[error("building {image}: {message}")]
    Build { image: String, message: String },
    #[error("{what}: {message}")]
    Archive { what: String, message: String },
    #[error("{container}: {problem}")]
    Timeout { container: String, problem: String },
}

fn api(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
    let what = what.into();
    move |source| DockerError::Api { what, source }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

/// Everything labelled with a cluster: what `down` removes.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Owned {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

impl Owned {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty() && self.volumes.is_empty()
    }
}

/// A container's state as Docker reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContainerState {
    pub state: String,
    pub health: Option<String>,
    pub restarts: i64,
}

/// An engine's membership of a Swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmMembership {
    /// This node's id in the Swarm.
    pub node_id: String,
    /// The managers it knows (a worker learns no cluster id, only these).
    pub managers: Vec<String>,
    pub manager: bool,
    /// The address it advertises to the other nodes.
    pub node_addr: String,
}

impl SwarmMembership {
    /// Whether this node belongs to the Swarm `manager` manages.
    pub fn managed_by(&self, manager: &SwarmMembership) -> bool {
        self.node_id == manager.node_id || self.managers.contains(&manager.node_id)
    }
}

/// A file copied into a container: its path inside, its content and its permissions (a
/// private key: 0600).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFile {
    pub path: String,
    pub content: String,
    pub mode: u32,
}

/// A Docker engine: the local one, or a host's.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
}

impl Engine {
    /// Connects as the `docker` CLI would (`DOCKER_HOST`, else the local socket) and agrees on an
    /// API version the daemon speaks.
    pub async fn connect() -> Result<Engine, DockerError> {
        let hint = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string());
        Engine::answering(Docker::connect_with_defaults(), &hint).await
    }

    /// An engine once it answers, at an API version it speaks (`hint`: where, for errors).
    async fn answering(
        docker: Result<Docker, bollard::errors::Error>,
        hint: &str,
    ) -> Result<Engine, DockerError> {
        let connect_error = |source| DockerError::Connect { hint: hint.to_string(), source };
        let docker = docker.map_err(connect_error)?;
        let docker = docker.negotiate_version().await.map_err(connect_error)?;
        docker.ping().await.map_err(connect_error)?;
        Ok(Engine { docker })
    }

    /// Connects to a remote engine's API over mutual TLS (an EC2 host of provider aws):
    /// `addr` is `https://IP:2376`, `dir` holds `ca.pem`, `cert.pem` and `key.pem` (Docker's names).
    pub async fn connect_tls(addr: &str, dir: &std::path::Path) -> Result<Engine, DockerError> {
        // bollard's TLS uses rustls' process-wide provider; ring is the one momctl links.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let docker = Docker::connect_with_ssl(
            addr,
            &dir.join(crate::pki::CLIENT_KEY),
            &dir.join(crate::pki::CLIENT_CERT),
            &dir.join(crate::pki::CA_CERT),
            120,
            bollard::API_DEFAULT_VERSION,
        );
        Engine::answering(docker, addr).await
    }

    /// Connects to a remote engine's API over plain TCP (`tcp://IP:2375`): only for the
    /// simulated hosts of the tests (`tests/multihost`), never to an EC2 host.
    pub async fn connect_http(addr: &str) -> Result<Engine, DockerError> {
        let docker = Docker::connect_with_http(addr, 120, bollard::API_DEFAULT_VERSION);
        Engine::answering(docker, addr).await
    }

    fn label_filter(cluster: &str) -> HashMap<String, Vec<String>> {
        HashMap::from([("label".to_string(), vec![Desired::cluster_filter(cluster)])])
    }
}
