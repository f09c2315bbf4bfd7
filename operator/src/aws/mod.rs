//! Provider `aws`: the EC2 side of a cluster (aws-sdk-ec2).
//!
//! What a cluster has on EC2, each tagged `mom:cluster=<name>` (and `Name`), and found again by
//! that tag only (no state file):
//! - a security group `mom-<cluster>`: every protocol from inside the group (brokers, Redis,
//!   ZooKeeper talk only there), NGINX's ports from anywhere, SSH (22) and the Docker API (2376)
//!   from `aws.admin_cidr` only;
//! - a key pair `mom-<cluster>` whose private key is written to the cluster's local directory
//!   (mode 0600) and never printed;
//! - per host `K` (1..=`aws.hosts`) an Elastic IP and an instance `mom-<cluster>-host-K`, both
//!   tagged `mom:host=K`. The address comes first so the host's Docker server certificate can
//!   name it; the instance's user data (`templates/cloud-init.yaml.tera`) installs Docker and
//!   serves its API on 2376 with mutual TLS ([`crate::pki`]).
//!
//! The parts: `client` ([`Ec2`]: connect, [`Ec2::observe`] by tag, the SDK's waiters), `model`
//! (what EC2 holds, [`Ec2Observed`]), `diff` ([`ec2_diff`], pure: the EC2 part of the one diff
//! `plan` prints and `up` applies), `apply` (one function per kind of change), `teardown`,
//! `engines` (the hosts' Docker engines, [`host_engines`]), `user_data` and `error` (every SDK
//! failure as one [`AwsError`] sentence). [`crate::provider`] is the only caller outside: the
//! commands reach EC2 through it. The containers go onto the hosts' Docker engines, reached at
//! `https://<address>:2376` with momctl's client certificate; with `MOMCTL_AWS_DOCKER_HOST`
//! (tests only: moto boots no machine) onto stand-ins instead.

mod apply;
mod client;
mod cloud;
mod diff;
mod engines;
mod error;
mod model;
mod teardown;
mod user_data;

use std::net::Ipv4Addr;

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, Tag, TagSpecification, UserIdGroupPair};
use serde::Serialize;

use crate::config::{AwsSettings, Settings};
use crate::report::{step, Reporter};

pub use apply::apply;
pub use client::{not_running_in_time, Ec2, KNOWN_REGIONS};
pub use cloud::{Cloud, HostsReady};
pub use diff::ec2_diff;
pub use engines::host_engines;
pub use error::{classify, AwsError};
pub use model::{rule_keys, Ec2Observed, ObservedAddress, ObservedGroup, ObservedInstance, ObservedKey};
pub use teardown::teardown;
pub use user_data::user_data;

/// The tag every EC2 resource of a cluster carries; its value is the cluster's name.
pub const CLUSTER_TAG: &str = "mom:cluster";
/// The tag of a host's instance and address: its number, 1..=hosts.
pub const HOST_TAG: &str = "mom:host";
pub const MANAGED_BY_TAG: &str = "mom:managed-by";
/// The Docker API port on every host (mutual TLS).
pub const DOCKER_TLS_PORT: u16 = 2376;
pub const SSH_PORT: u16 = 22;
/// File name of the key pair's private key in the cluster's directory.
pub const SSH_KEY_FILE: &str = "ssh-key.pem";
/// Test-only (moto starts no machine; never set it in real use): `local` deploys the containers
/// of every host onto the local Docker engine; a comma-separated list of `tcp://IP:2375`
/// engines, one per host, stands in for the hosts' engines (`tests/multihost`).
pub const DOCKER_OVERRIDE_ENV: &str = "MOMCTL_AWS_DOCKER_HOST";
/// Attempts per EC2 call, so that throttling (`RequestLimitExceeded`, `Throttling`) is retried
/// with the SDK's exponential backoff and jitter.
pub const MAX_ATTEMPTS: u32 = 10;

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
fn engine_ip(addr: &str) -> Option<Ipv4Addr> {
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

/// One host of the cluster.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HostSpec {
    pub index: u32,
    pub name: String,
}

/// The EC2 side of the desired cluster.
#[derive(Debug, Clone, Serialize)]
pub struct AwsDesired {
    pub cluster: String,
    pub settings: AwsSettings,
    pub group_name: String,
    pub key_name: String,
    pub hosts: Vec<HostSpec>,
    /// NGINX's ports, open to everyone.
    pub public_ports: Vec<u16>,
}

impl Serialize for AwsSettings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("AwsSettings", 5)?;
        st.serialize_field("region", &self.region)?;
        st.serialize_field("instance_type", &self.instance_type)?;
        st.serialize_field("hosts", &self.hosts)?;
        st.serialize_field("ami", &self.ami)?;
        st.serialize_field("admin_cidr", &self.admin_cidr.to_string())?;
        st.end()
    }
}

pub fn host_name(cluster: &str, index: u32) -> String {
    format!("mom-{cluster}-host-{index}")
}

impl AwsDesired {
    /// `None` unless `provider: aws`.
    pub fn from_settings(s: &Settings) -> Option<AwsDesired> {
        let aws = s.aws.clone()?;
        let cluster = s.cluster.clone();
        let mut public_ports = vec![s.nginx_http_port];
        public_ports.extend(s.nginx_grpc_port);
        Some(AwsDesired {
            group_name: format!("mom-{cluster}"),
            key_name: format!("mom-{cluster}"),
            hosts: (1..=aws.hosts)
                .map(|index| HostSpec { index, name: host_name(&cluster, index) })
                .collect(),
            cluster,
            settings: aws,
            public_ports,
        })
    }

    fn tags(&self, name: &str, host: Option<u32>) -> Vec<Tag> {
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        let mut tags =
            vec![tag(CLUSTER_TAG, &self.cluster), tag("Name", name), tag(MANAGED_BY_TAG, "momctl")];
        if let Some(h) = host {
            tags.push(tag(HOST_TAG, &h.to_string()));
        }
        tags
    }

    fn tag_spec(&self, kind: ResourceType, name: &str, host: Option<u32>) -> TagSpecification {
        TagSpecification::builder().resource_type(kind).set_tags(Some(self.tags(name, host))).build()
    }

    /// The security group's inbound rules.
    pub fn ingress(&self, group_id: &str) -> Vec<IpPermission> {
        let mut rules = vec![IpPermission::builder()
            .ip_protocol("-1")
            .user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(group_id)
                    .description("brokers, Redis, ZooKeeper: only inside the cluster")
                    .build(),
            )
            .build()];
        let tcp = |port: u16, cidr: &str, why: &str| {
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(i32::from(port))
                .to_port(i32::from(port))
                .ip_ranges(IpRange::builder().cidr_ip(cidr).description(why).build())
                .build()
        };
        for port in &self.public_ports {
            rules.push(tcp(*port, "0.0.0.0/0", "NGINX, the public entry"));
        }
        let admin = self.settings.admin_cidr.to_string();
        rules.push(tcp(DOCKER_TLS_PORT, &admin, "Docker API (mutual TLS), admins only"));
        rules.push(tcp(SSH_PORT, &admin, "SSH, admins only"));
        rules
    }
}

/// One EC2 call (or a few) as a reported step.
async fn timed<T>(
    report: &dyn Reporter,
    what: String,
    long: bool,
    call: impl std::future::Future<Output = Result<T, AwsError>>,
) -> Result<T, AwsError> {
    step(report, what, long, call).await
}
