//! The aws provider as [`crate::provider::Provider`] sees it: the EC2 client and the EC2 side of
//! the desired cluster, and what each step of a command asks of them.

use std::net::Ipv4Addr;

use crate::config::Settings;
use crate::hosts::Hosts;
use crate::plan::{Action, Change, Kind};
use crate::report::Reporter;

use super::apply::apply;
use super::client::Ec2;
use super::desired::{AwsDesired, CLUSTER_TAG};
use super::diff::ec2_diff;
use super::engines::host_engines;
use super::error::AwsError;
use super::model::Ec2Observed;
use super::stand_in::{docker_override, endpoint_ip, DockerOverride, DOCKER_OVERRIDE_ENV};
use super::teardown::teardown;

/// A cluster's EC2 side, connected.
pub struct Cloud {
    pub desired: AwsDesired,
    pub ec2: Ec2,
}

/// Whether the containers can be planned on the hosts' engines now.
pub enum HostsReady {
    /// Ask the engines.
    Yes,
    /// Host 1 is about to be made: every container is new.
    FirstIsNew,
    /// A host is about to be made or started (why): the containers are planned once it is up.
    Later(String),
}

impl Cloud {
    /// `None` unless `provider: aws`; connecting checks the credentials (and an unknown region).
    pub async fn connect(settings: &Settings) -> Result<Option<Cloud>, AwsError> {
        let Some(desired) = AwsDesired::from_settings(settings) else {
            return Ok(None);
        };
        let ec2 = Ec2::connect(&desired.settings).await?;
        Ok(Some(Cloud { desired, ec2 }))
    }

    /// `ami: null` resolved now to the newest Debian 12 AMI of the region (or refused), so
    /// `plan` shows it and `up` fails before it makes the first resource.
    pub async fn resolve_ami(&mut self) -> Result<(), AwsError> {
        if self.desired.settings.ami.is_none() {
            self.desired.settings.ami = Some(self.ec2.debian_ami().await?);
        }
        Ok(())
    }

    pub async fn observe(&self) -> Result<Ec2Observed, AwsError> {
        self.ec2.observe(&self.desired.cluster).await
    }

    /// The EC2 changes (pure).
    pub fn diff(&self, observed: &Ec2Observed) -> Vec<Change> {
        ec2_diff(&self.desired, observed)
    }

    /// A host that EC2 makes or starts has no Docker API to ask yet. When it is host 1 (the
    /// cluster is new, or lost its first host) every container is planned as new.
    pub fn ready(&self, changes: &[Change]) -> HostsReady {
        let hosts = &self.desired.hosts;
        let changing = |action: Action| {
            hosts.iter().find(|h| {
                changes.iter().any(|c| c.kind == Kind::Instance && c.action == action && c.name == h.name)
            })
        };
        let first_new =
            hosts.first().is_none_or(|h| changing(Action::Create).is_some_and(|n| n.index == h.index));
        let unreachable = changing(Action::Start)
            .map(|h| format!("host {} is stopped", h.index))
            .or_else(|| changing(Action::Create).map(|h| format!("host {} is new", h.index)));
        match (docker_override(), first_new, unreachable) {
            (Some(_), _, _) | (None, false, None) => HostsReady::Yes,
            (None, true, _) => HostsReady::FirstIsNew,
            (None, false, Some(why)) => HostsReady::Later(why),
        }
    }

    /// Makes EC2 match: executes `changes` and reads EC2 back (unchanged without changes).
    pub async fn prepare(
        &self,
        observed: Ec2Observed,
        changes: &[Change],
        report: &dyn Reporter,
    ) -> Result<Ec2Observed, AwsError> {
        if changes.is_empty() {
            return Ok(observed);
        }
        apply(&self.ec2, &self.desired, &observed, changes, report).await?;
        self.observe().await
    }

    /// The hosts' engines; `wait`: until they answer (bounded), or ask once.
    pub async fn engines(&self, observed: &Ec2Observed, wait: bool) -> Result<Hosts, AwsError> {
        host_engines(&self.desired, observed, wait).await
    }

    /// Reaching the hosts' engines, announced: long unless the test-only stand-ins answer.
    pub fn connect_step(&self) -> (String, bool) {
        let what = format!("connect to the Docker API of {} host(s)", self.desired.hosts.len());
        (what, docker_override().is_none())
    }

    /// The engines whose containers `down` removes besides the instances: the stand-ins of the
    /// test-only override (on real hosts the containers go with the instances).
    pub async fn stand_ins(&self, observed: &Ec2Observed) -> Result<Option<Hosts>, AwsError> {
        match docker_override() {
            Some(_) => Ok(Some(self.engines(observed, false).await?)),
            None => Ok(None),
        }
    }

    pub async fn teardown(&self, observed: &Ec2Observed, report: &dyn Reporter) -> Result<(), AwsError> {
        teardown(&self.ec2, &self.desired.cluster, observed, report).await
    }

    /// Where clients reach NGINX.
    pub fn endpoint_ip(&self, observed: &Ec2Observed) -> Option<Ipv4Addr> {
        endpoint_ip(observed)
    }

    /// The tag that finds everything (`mom:cluster=<name>`).
    pub fn tag(&self) -> String {
        format!("{CLUSTER_TAG}={}", self.desired.cluster)
    }

    /// What EC2 holds, one line each (`down` lists it before asking).
    pub fn inventory(&self, observed: &Ec2Observed) -> Vec<String> {
        let mut lines = Vec::new();
        for i in &observed.instances {
            lines.push(format!("instance {} ({}, {})", i.id, i.name.as_deref().unwrap_or("-"), i.state));
        }
        for a in &observed.addresses {
            let ip = a.public_ip.map(|ip| ip.to_string()).unwrap_or_default();
            lines.push(format!("Elastic IP {} ({ip})", a.allocation_id));
        }
        if let Some(g) = &observed.security_group {
            lines.push(format!("security group {} ({})", g.name, g.id));
        }
        if let Some(k) = &observed.key_pair {
            lines.push(format!("key pair {}", k.name));
        }
        lines
    }

    /// The instances as `status` lists them: name, id, state, address.
    pub fn instances(&self, observed: &Ec2Observed) -> Vec<[String; 4]> {
        observed
            .instances
            .iter()
            .map(|i| {
                let ip = i
                    .host
                    .and_then(|h| observed.address(h))
                    .and_then(|a| a.public_ip)
                    .or(i.public_ip)
                    .map(|ip| ip.to_string())
                    .unwrap_or_else(|| "-".to_string());
                [i.name.clone().unwrap_or_else(|| "-".to_string()), i.id.clone(), i.state.clone(), ip]
            })
            .collect()
    }

    /// Said when the test-only override puts the containers elsewhere.
    pub fn note(&self) -> Option<String> {
        let stand_in = match docker_override()? {
            DockerOverride::Local => "the local Docker engine".to_string(),
            DockerOverride::Engines(addrs) => format!("the engines {}", addrs.join(", ")),
        };
        Some(format!(
            "note: {DOCKER_OVERRIDE_ENV}: the containers go onto {stand_in} in place of the hosts' (for tests; moto starts no machine)",
        ))
    }
}
