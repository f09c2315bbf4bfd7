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
mod desired;
mod diff;
mod engines;
mod error;
mod model;
mod stand_in;
mod teardown;
mod user_data;

pub use apply::apply;
pub use client::{not_running_in_time, Ec2, KNOWN_REGIONS};
pub use cloud::{Cloud, HostsReady};
pub use desired::{
    host_name, AwsDesired, HostSpec, CLUSTER_TAG, DOCKER_TLS_PORT, HOST_TAG, MANAGED_BY_TAG, SSH_KEY_FILE,
    SSH_PORT,
};
pub use diff::ec2_diff;
pub use engines::host_engines;
pub use error::{classify, AwsError, MAX_ATTEMPTS};
pub use model::{rule_keys, Ec2Observed, ObservedAddress, ObservedGroup, ObservedInstance, ObservedKey};
pub use stand_in::{docker_hosts, docker_override, endpoint_ip, DockerOverride, DOCKER_OVERRIDE_ENV};
pub use teardown::teardown;
pub use user_data::user_data;
