//! Where a cluster's hosts come from, behind one seam: `local` (this machine's Docker engine) or
//! `aws` (EC2 instances, [`crate::aws`]). The commands ask a [`Provider`] to observe what it
//! holds, to diff that (pure), to make the hosts exist, for the hosts' Docker engines, and to
//! tear the hosts down, without knowing which one runs; everything on the engines is the same
//! for both. Planning ([`crate::plan`]) never imports a provider.
//!
//! The aws variant and its arms are the only places that name [`crate::aws`]: they exist only
//! with the cargo feature `aws` (aws-sdk-ec2), so the local path never compiles the SDK. Without
//! it, `provider: aws` is refused when the provider is connected (`Error::AwsNotBuilt`).

use std::net::Ipv4Addr;

#[cfg(feature = "aws")]
use crate::aws::{Cloud, Ec2Observed, HostsReady};
use crate::config::Settings;
use crate::desired::Desired;
use crate::docker::Engine;
use crate::error::Error;
use crate::hosts::Hosts;
use crate::plan::Change;
use crate::report::Reporter;

/// A cluster's provider, connected.
pub enum Provider {
    /// Everything on the local Docker engine.
    Local,
    /// EC2 instances, one Docker engine each.
    #[cfg(feature = "aws")]
    Aws(Box<Cloud>),
}

/// What the provider holds of the cluster (found by tag: no state file).
pub enum Infra {
    /// Nothing: the local engine is always there.
    Local,
    #[cfg(feature = "aws")]
    Aws(Ec2Observed),
}

/// Where the cluster runs, for the words the CLI prints.
pub enum Place {
    Local,
    Aws {
        region: String,
        hosts: u32,
        /// Where the keys and certificates of the hosts are kept.
        keys: std::path::PathBuf,
    },
}

/// Whether the containers' part of the plan can be computed now.
pub enum Engines {
    /// Ask the hosts' engines. `soft`: when `plan` asks once and an engine does not answer,
    /// the containers are left unplanned (a host may still be booting) rather than failing.
    Ask { soft: bool },
    /// Host 1 is about to be made: every container is new.
    AllNew,
    /// A host is about to be made or started (why): the containers are planned once it is up.
    Later(String),
}

/// How many Docker engines a cluster of `settings` is spread over (one for provider `local`).
#[cfg(feature = "aws")]
pub fn engine_count(settings: &Settings) -> u32 {
    crate::aws::docker_hosts(settings)
}

/// How many Docker engines a cluster of `settings` is spread over (one for provider `local`).
#[cfg(not(feature = "aws"))]
pub fn engine_count(settings: &Settings) -> u32 {
    settings.aws.as_ref().map_or(1, |aws| aws.hosts)
}

/// The desired cluster of `settings`, on its provider's engines.
pub fn desired(settings: &Settings) -> Desired {
    Desired::on_hosts(settings, engine_count(settings))
}

// Without the aws feature the aws arms are compiled out and some arguments go unread.
#[cfg_attr(not(feature = "aws"), allow(unused_variables, clippy::match_single_binding))]
impl Provider {
    /// The provider of `settings`, connected (aws: credentials checked).
    pub async fn connect(settings: &Settings) -> Result<Provider, Error> {
        #[cfg(feature = "aws")]
        let cloud = Cloud::connect(settings).await?.map(|cloud| Provider::Aws(Box::new(cloud)));
        #[cfg(not(feature = "aws"))]
        let cloud = match settings.aws {
            Some(_) => return Err(Error::AwsNotBuilt),
            None => None,
        };
        Ok(cloud.unwrap_or(Provider::Local))
    }

    /// What `plan` and `up` check with the provider before anything is made (aws: `ami: null`
    /// resolved to the newest Debian 12 AMI of the region, or refused); nothing for `local`.
    pub async fn resolve(&mut self) -> Result<(), Error> {
        #[cfg(feature = "aws")]
        if let Provider::Aws(c) = self {
            c.resolve_ami().await?;
        }
        Ok(())
    }

    pub fn place(&self) -> Place {
        match self {
            Provider::Local => Place::Local,
            #[cfg(feature = "aws")]
            Provider::Aws(c) => Place::Aws {
                region: c.desired.settings.region.clone(),
                hosts: c.desired.settings.hosts,
                keys: crate::home::cluster_dir(&c.desired.cluster),
            },
        }
    }

    pub async fn observe(&self) -> Result<Infra, Error> {
        Ok(match self {
            Provider::Local => Infra::Local,
            #[cfg(feature = "aws")]
            Provider::Aws(c) => Infra::Aws(c.observe().await?),
        })
    }

    /// What making the hosts takes (pure; none for `local`).
    pub fn diff(&self, infra: &Infra) -> Vec<Change> {
        match (self, infra) {
            #[cfg(feature = "aws")]
            (Provider::Aws(c), Infra::Aws(o)) => c.diff(o),
            _ => Vec::new(),
        }
    }

    /// Whether the containers can be planned on the engines, given the hosts' `changes`;
    /// `wait`: `up` waits for the engines, `plan` asks once.
    pub fn engines_for(&self, changes: &[Change], wait: bool) -> Engines {
        match self {
            Provider::Local => Engines::Ask { soft: false },
            #[cfg(feature = "aws")]
            Provider::Aws(c) => match c.ready(changes) {
                HostsReady::Yes => Engines::Ask { soft: !wait },
                HostsReady::FirstIsNew => Engines::AllNew,
                HostsReady::Later(why) => Engines::Later(why),
            },
        }
    }

    /// Makes the hosts exist: executes the hosts' `changes`; returns what the provider then
    /// holds.
    pub async fn prepare(
        &self,
        infra: Infra,
        changes: &[Change],
        report: &dyn Reporter,
    ) -> Result<Infra, Error> {
        Ok(match (self, infra) {
            #[cfg(feature = "aws")]
            (Provider::Aws(c), Infra::Aws(o)) => Infra::Aws(c.prepare(o, changes, report).await?),
            (_, infra) => infra,
        })
    }

    /// The hosts' Docker engines; `wait`: until they answer (`up`), else ask once.
    pub async fn engines(&self, infra: &Infra, wait: bool) -> Result<Hosts, Error> {
        Ok(match (self, infra) {
            #[cfg(feature = "aws")]
            (Provider::Aws(c), Infra::Aws(o)) => c.engines(o, wait).await?,
            _ => Hosts::one(Engine::connect().await?),
        })
    }

    /// Reaching the hosts' engines as a step of its own, and whether it may take long (remote
    /// hosts: Docker may still be starting); `None` for the local engine.
    pub fn connect_step(&self) -> Option<(String, bool)> {
        match self {
            #[cfg(feature = "aws")]
            Provider::Aws(c) => Some(c.connect_step()),
            Provider::Local => None,
        }
    }

    /// The engines whose containers `down` removes: the local one; on aws none (they go with
    /// the instances) unless the test-only stand-ins run them.
    pub async fn engines_to_clear(&self, infra: &Infra) -> Result<Option<Hosts>, Error> {
        Ok(match (self, infra) {
            #[cfg(feature = "aws")]
            (Provider::Aws(c), Infra::Aws(o)) => c.stand_ins(o).await?,
            _ => Some(Hosts::one(Engine::connect().await?)),
        })
    }

    /// What the provider itself holds, one line each (`down` lists it; none for `local`).
    pub fn inventory(&self, infra: &Infra) -> Vec<String> {
        match (self, infra) {
            #[cfg(feature = "aws")]
            (Provider::Aws(c), Infra::Aws(o)) => c.inventory(o),
            _ => Vec::new(),
        }
    }

    /// The hosts as `status` lists them (name, id, state, address); none for `local`.
    pub fn hosts(&self, infra: &Infra) -> Vec<[String; 4]> {
        match (self, infra) {
            #[cfg(feature = "aws")]
            (Provider::Aws(c), Infra::Aws(o)) => c.instances(o),
            _ => Vec::new(),
        }
    }

    /// Removes the hosts (and the keys kept for them); nothing for `local`.
    pub async fn teardown(&self, infra: &Infra, report: &dyn Reporter) -> Result<(), Error> {
        #[cfg(feature = "aws")]
        if let (Provider::Aws(c), Infra::Aws(o)) = (self, infra) {
            c.teardown(o, report).await?;
        }
        Ok(())
    }

    /// The address clients reach NGINX at, when it is not the one mom.yaml binds.
    pub fn endpoint_ip(&self, infra: &Infra) -> Option<Ipv4Addr> {
        match (self, infra) {
            #[cfg(feature = "aws")]
            (Provider::Aws(c), Infra::Aws(o)) => c.endpoint_ip(o),
            _ => None,
        }
    }

    /// What finds the provider's resources: the tag (aws), or the engines' label.
    pub fn found_by(&self, cluster: &str) -> String {
        match self {
            #[cfg(feature = "aws")]
            Provider::Aws(c) => c.tag(),
            Provider::Local => Desired::cluster_filter(cluster),
        }
    }

    /// What the engines of [`Provider::engines_to_clear`] stand in for the hosts' by, when they
    /// do (the tests' override).
    pub fn stand_in(&self) -> Option<&'static str> {
        match self {
            #[cfg(feature = "aws")]
            Provider::Aws(_) => Some(crate::aws::DOCKER_OVERRIDE_ENV),
            Provider::Local => None,
        }
    }

    /// A note the CLI prints with `plan` and `up` (the test-only stand-ins).
    pub fn note(&self) -> Option<String> {
        match self {
            #[cfg(feature = "aws")]
            Provider::Aws(c) => c.note(),
            Provider::Local => None,
        }
    }
}
