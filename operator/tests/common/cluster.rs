//! A cluster of the end-to-end tests on the local Docker engine: the images it needs, a unique
//! name, port and subnet, and `down --yes` whatever happens to the test.

use std::net::TcpListener;
use std::path::Path;
use std::process::Output;

use bollard::Docker;

use super::{momctl, text};

pub const PASSWORD_ENV: &str = "MOM_E2E_ADMIN_PASSWORD";
pub const PASSWORD: &str = "e2e-admin-password-long-enough";
pub const BROKER_IMAGE: &str = "mom-broker:0.1.0";
pub const IMAGES: [&str; 4] = [BROKER_IMAGE, "mom-redis:7", "mom-zookeeper:3.8", "mom-nginx:1.22"];

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

async fn docker() -> Option<Docker> {
    let docker = Docker::connect_with_defaults().ok()?.negotiate_version().await.ok()?;
    docker.ping().await.ok()?;
    Some(docker)
}

/// Docker and every image the cluster needs, or why not.
pub async fn ready() -> Result<Docker, String> {
    let docker = docker().await.ok_or("no Docker engine")?;
    for image in IMAGES {
        if docker.inspect_image(image).await.is_err() {
            return Err(format!("image {image} is missing (scripts/images.sh, then `momctl build`)"));
        }
    }
    Ok(docker)
}

/// Docker, or None after saying loudly why the test is skipped ([`super::skip`]: a failure in CI).
pub fn docker_or_skip(rt: &tokio::runtime::Runtime) -> Option<Docker> {
    match rt.block_on(ready()) {
        Ok(docker) => Some(docker),
        Err(why) => {
            super::skip(&why);
            None
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Brings the cluster down whatever happens to the test.
pub struct Down<'a>(pub &'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = momctl(self.0, &["down", "--yes"], &[]);
    }
}

/// A unique cluster name, a free port and a subnet of its own: other tests (and clusters) may
/// run beside this one.
pub struct Unique {
    pub cluster: String,
    pub port: u16,
    /// NGINX's gRPC port (not the default 9090: clusters of other tests may hold it).
    pub grpc_port: u16,
    pub subnet: String,
}

impl Unique {
    pub fn new(prefix: &str) -> Unique {
        let id = std::process::id();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let seed = id.wrapping_mul(31).wrapping_add(nanos);
        Unique {
            cluster: format!("{prefix}-{id}-{}", nanos % 10_000),
            port: free_port(),
            grpc_port: free_port(),
            subnet: format!("10.{}.{}.0/24", 180 + seed % 20, (seed / 20) % 256),
        }
    }

    /// mom.yaml of this cluster with `nodes` brokers.
    pub fn yaml(&self, nodes: u32) -> String {
        format!(
            "cluster: {}\nprovider: local\nnetwork: {{ subnet: {} }}\n\
             broker: {{ image: {BROKER_IMAGE}, nodes: {nodes} }}\n\
             redis: {{ image: mom-redis:7, mode: single, appendfsync: everysec }}\n\
             zookeeper: {{ image: mom-zookeeper:3.8, nodes: 1 }}\n\
             nginx: {{ image: mom-nginx:1.22, http_port: {}, grpc_port: {}, tls: null }}\n\
             secrets: {{ admin_password_env: {PASSWORD_ENV} }}\n",
            self.cluster, self.subnet, self.port, self.grpc_port
        )
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// `momctl ARGS` with the admin password, echoed to the test's output.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    let out = momctl(dir, args, &[(PASSWORD_ENV, PASSWORD)]);
    eprintln!("$ momctl {}\n{}{}", args.join(" "), text(&out.stdout), text(&out.stderr));
    out
}

/// [`run`], which must succeed; its stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(out.status.success(), "momctl {} failed", args.join(" "));
    text(&out.stdout)
}
