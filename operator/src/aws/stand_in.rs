//! The test-only stand-ins for the hosts' Docker engines ([`DOCKER_OVERRIDE_ENV`]): moto boots no
//! machine, so the tests put the containers onto the local engine or onto Docker-in-Docker hosts.

use std::net::Ipv4Addr;

use crate::config::Settings;

use super::model::Ec2Observed;

/// Test-only (moto starts no machine; never set it in real use): `local` deploys the containers
/// of every host onto the local Docker engine; a comma-separated list of `tcp://IP:2375`
/// engines, one per host, stands in for the hosts' engines (`tests/multihost`).
pub const DOCKER_OVERRIDE_ENV: &str = "MOMCTL_AWS_DOCKER_HOST";

/// What stands in for the hosts' Docker engines in tests ([`DOCKER_OVERRIDE_ENV`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerOverride {
    /// Every host's containers on the local engine.
    Local,
    /// One engine per host, by address.
    Engines(Vec<String>),
}

impl DockerOverride {
    /// How many engines the containers are spread over, given `hosts` EC2 hosts.
    pub fn hosts(&self, hosts: u32) -> u32 {
        match self {
            DockerOverride::Local => 1,
            DockerOverride::Engines(e) => (e.len() as u32).min(hosts),
        }
    }
}

/// The test-only stand-in for the hosts' engines, when set.
pub fn docker_override() -> Option<DockerOverride> {
    let value = std::env::var(DOCKER_OVERRIDE_ENV).ok()?;
    match value.trim() {
        "" => None,
        "local" => Some(DockerOverride::Local),
        list => Some(DockerOverride::Engines(list.split(',').map(|a| a.trim().to_string()).collect())),
    }
}

/// The address in an engine's `tcp://IP:PORT` (or `https://…`).
pub(super) fn engine_ip(addr: &str) -> Option<Ipv4Addr> {
    let rest = addr.split_once("://").map_or(addr, |(_, rest)| rest);
    rest.rsplit_once(':').map_or(rest, |(ip, _)| ip).parse().ok()
}

/// Where clients reach the cluster's NGINX: host 1's Elastic IP; under the test-only override,
/// the first engine's address (None for the local engine: the endpoint as mom.yaml binds it).
pub fn endpoint_ip(observed: &Ec2Observed) -> Option<Ipv4Addr> {
    match docker_override() {
        Some(DockerOverride::Local) => None,
        Some(DockerOverride::Engines(addrs)) => addrs.first().and_then(|a| engine_ip(a)),
        None => observed.public_ip(1),
    }
}

/// How many Docker engines a cluster of `settings` is spread over: one per EC2 host (fewer
/// under the test-only override), one for provider `local`.
pub fn docker_hosts(settings: &Settings) -> u32 {
    let Some(aws) = &settings.aws else {
        return 1;
    };
    match docker_override() {
        Some(o) => o.hosts(aws.hosts),
        None => aws.hosts,
    }
}
