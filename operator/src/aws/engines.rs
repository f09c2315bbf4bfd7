//! The hosts' Docker engines: mutual TLS to each EC2 host's Docker API, or the test-only
//! stand-ins of [`super::DOCKER_OVERRIDE_ENV`].

use std::time::{Duration, Instant};

use crate::docker::Engine;
use crate::hosts::{Host, Hosts};

use super::desired::{AwsDesired, DOCKER_TLS_PORT};
use super::error::AwsError;
use super::model::Ec2Observed;
use super::stand_in::{docker_override, engine_ip, DockerOverride};

/// The hosts' Docker engines, host 1 first: `https://<host's address>:2376` with the cluster's
/// client certificate, each waited for until it answers (cloud-init installs Docker first), the
/// private address advertised to the Swarm; images come from the local engine. Under the
/// test-only [`DOCKER_OVERRIDE_ENV`], the local engine or the listed ones. `wait`: whether to
/// keep asking for up to `aws.running_timeout_s` (`up`) or to ask once (`plan`, `status`).
pub async fn host_engines(
    desired: &AwsDesired,
    observed: &Ec2Observed,
    wait: bool,
) -> Result<Hosts, AwsError> {
    match docker_override() {
        Some(DockerOverride::Local) => return Ok(Hosts::one(Engine::connect().await?)),
        Some(DockerOverride::Engines(addrs)) => {
            let mut hosts = Vec::new();
            for addr in addrs.iter().take(desired.hosts.len().max(1)) {
                let engine = Engine::connect_http(addr).await?;
                // The simulated host is reached at the address the test gave.
                let advertise = engine_ip(addr).map(|ip| ip.to_string());
                hosts.push(Host { engine, advertise });
            }
            return Ok(Hosts::remote(hosts, Engine::connect().await?));
        }
        None => {}
    }
    let dir = crate::home::cluster_dir(&desired.cluster);
    let max = Duration::from_secs(if wait { desired.settings.running_timeout_s } else { 0 });
    let mut hosts = Vec::new();
    for host in &desired.hosts {
        let ip =
            observed.public_ip(host.index).ok_or_else(|| AwsError::NoHost { host: host.name.clone() })?;
        let addr = format!("https://{ip}:{DOCKER_TLS_PORT}");
        let started = Instant::now();
        let engine = loop {
            match Engine::connect_tls(&addr, &dir).await {
                Ok(engine) => break engine,
                Err(e) if started.elapsed() >= max => {
                    return Err(AwsError::DockerUnreachable {
                        host: host.name.clone(),
                        addr,
                        waited_s: max.as_secs(),
                        cause: e.to_string(),
                    })
                }
                // cloud-init is still installing Docker: ask again shortly.
                Err(_) => tokio::time::sleep(Duration::from_secs(5)).await,
            }
        };
        let advertise = observed.instance(host.index).and_then(|i| i.private_ip).map(|ip| ip.to_string());
        hosts.push(Host { engine, advertise });
    }
    Ok(Hosts::remote(hosts, Engine::connect().await?))
}
