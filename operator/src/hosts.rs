//! The Docker engines a cluster runs on: one (provider `local`, or `aws` with one host), or one
//! per EC2 host. Across hosts the engines form a Docker Swarm, used for one thing only: an
//! attachable overlay network that carries the cluster's subnet and fixed addresses from host to
//! host, so plain containers (no Swarm services) keep the addressing they have on one engine.
//!
//! Each container goes to the engine of its [`ServiceSpec::host`]; what is observed is the union
//! over the engines, each thing tagged with its host. Images come from the engine momctl builds
//! them on (the local one) and are copied to a host that lacks them: no registry is needed.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;

use crate::desired::{Desired, Role, ServiceSpec, NGINX_CONF_TARGET};
use crate::docker::{DockerError, Engine, Owned};
use crate::observed::{Observed, ObservedContainer};

/// One host's engine.
#[derive(Clone)]
pub struct Host {
    pub engine: Engine,
    /// The address the other hosts reach it at (an EC2 host's private address), advertised to
    /// the Swarm; None lets Docker pick it.
    pub advertise: Option<String>,
}

/// The engines of a cluster, host 1 first.
#[derive(Clone)]
pub struct Hosts {
    hosts: Vec<Host>,
    /// Where images come from when the engines are remote (momctl's local engine).
    source: Option<Engine>,
}

impl Hosts {
    /// Everything on one engine, whose own images are used.
    pub fn one(engine: Engine) -> Hosts {
        Hosts { hosts: vec![Host { engine, advertise: None }], source: None }
    }

    /// Remote hosts (at least one), with images copied from `source`.
    pub fn remote(hosts: Vec<Host>, source: Engine) -> Hosts {
        Hosts { hosts, source: Some(source) }
    }

    pub fn count(&self) -> u32 {
        self.hosts.len() as u32
    }

    /// Host `host`'s engine (1-based; a host beyond the last is the last: a cluster planned for
    /// more hosts than it was given runs the rest on it).
    pub fn engine(&self, host: u32) -> &Engine {
        let i = (host.max(1) as usize - 1).min(self.hosts.len() - 1);
        &self.hosts[i].engine
    }

    /// The engine a service runs on.
    pub fn of(&self, spec: &ServiceSpec) -> &Engine {
        self.engine(spec.host)
    }

    /// Every host with its number.
    pub fn all(&self) -> impl Iterator<Item = (u32, &Engine)> {
        self.hosts.iter().enumerate().map(|(i, h)| (i as u32 + 1, &h.engine))
    }

    /// The engine images are resolved on (and copied from).
    fn images(&self) -> &Engine {
        self.source.as_ref().unwrap_or(&self.hosts[0].engine)
    }

    /// The id `image` has where images come from (None: it is not there).
    pub async fn image_id(&self, image: &str) -> Result<Option<String>, DockerError> {
        self.images().image_id(image).await
    }

    /// The containers of the cluster on every host, each with its host.
    pub async fn containers(&self, cluster: &str) -> Result<Vec<ObservedContainer>, DockerError> {
        let mut all = Vec::new();
        for (host, engine) in self.all() {
            for mut c in engine.containers(cluster).await? {
                c.host = host;
                all.push(c);
            }
        }
        Ok(all)
    }

    /// What the engines have of `desired`'s cluster, found by the cluster label.
    pub async fn observe(&self, desired: &Desired) -> Result<Observed, DockerError> {
        let cluster = &desired.cluster;
        let network = self.engine(1).network(desired).await?;
        let mut volumes = Vec::new();
        for (host, engine) in self.all() {
            volumes.extend(engine.volumes(cluster).await?.into_iter().map(|v| (host, v)));
        }
        let containers = self.containers(cluster).await?;

        // The images the file wants and those the containers run (an upgraded broker's).
        let mut image_ids = BTreeMap::new();
        let images = desired.services.iter().map(|s| &s.image).chain(containers.iter().map(|c| &c.image));
        for image in images {
            if !image_ids.contains_key(image) {
                if let Some(id) = self.image_id(image).await? {
                    image_ids.insert(image.clone(), id);
                }
            }
        }

        let nginx_conf = match containers.iter().find(|c| c.role == Some(Role::Nginx)) {
            Some(nginx) => self.engine(nginx.host).read_file(&nginx.name, NGINX_CONF_TARGET).await?,
            None => None,
        };

        let outside_swarm = if desired.network.overlay { self.outside_swarm().await? } else { Vec::new() };

        Ok(Observed { network, volumes, containers, outside_swarm, image_ids, nginx_conf })
    }

    /// The hosts not (yet) in host 1's Swarm: all of them when host 1 manages none.
    async fn outside_swarm(&self) -> Result<Vec<u32>, DockerError> {
        let Some(manager) = self.engine(1).swarm().await?.filter(|m| m.manager) else {
            return Ok((1..=self.count()).collect());
        };
        let mut outside = Vec::new();
        for (host, engine) in self.all().skip(1) {
            if !engine.swarm().await?.is_some_and(|m| m.managed_by(&manager)) {
                outside.push(host);
            }
        }
        Ok(outside)
    }

    /// Host 1 manages a Swarm and every other host's engine is a member (idempotent). The
    /// Swarm's own networks stay out of `subnet`, the cluster's.
    pub async fn join_swarm(&self, subnet: Ipv4Net) -> Result<(), DockerError> {
        let first = &self.hosts[0];
        let manager = match first.engine.swarm().await?.filter(|m| m.manager) {
            Some(m) => m,
            None => {
                first.engine.init_swarm(first.advertise.as_deref(), swarm_pool(subnet)).await?;
                first.engine.swarm().await?.ok_or_else(|| DockerError::Timeout {
                    container: "host 1".to_string(),
                    problem: "the Swarm it started is not active".to_string(),
                })?
            }
        };
        let token = first.engine.swarm_worker_token().await?;
        // The manager's address as it advertises it, with the Swarm's port.
        let at = match manager.node_addr.rsplit_once(':') {
            Some((_, port)) if port.parse::<u16>().is_ok() => manager.node_addr.clone(),
            _ => format!("{}:2377", manager.node_addr),
        };
        for host in &self.hosts[1..] {
            if host.engine.swarm().await?.is_some_and(|m| m.managed_by(&manager)) {
                continue;
            }
            host.engine.join_swarm(&at, &token, host.advertise.as_deref()).await?;
        }
        Ok(())
    }

    /// Those of `images` that `host`'s engine lacks (remote hosts only: else none), each once.
    pub async fn missing_images<'a>(
        &self,
        host: u32,
        images: &[&'a str],
    ) -> Result<Vec<&'a str>, DockerError> {
        let Some(source) = &self.source else {
            return Ok(Vec::new());
        };
        let engine = self.engine(host);
        let mut missing = Vec::new();
        for image in images {
            // The plan checked the source has it.
            let Some(wanted) = source.image_id(image).await? else {
                continue;
            };
            let there = engine.image_id(image).await?;
            if there.as_deref() != Some(wanted.as_str()) && !missing.contains(image) {
                missing.push(*image);
            }
        }
        Ok(missing)
    }

    /// Copies `images` from the local engine to `host`'s, in one archive.
    pub async fn copy_images(&self, host: u32, images: &[&str]) -> Result<(), DockerError> {
        match &self.source {
            Some(source) => source.copy_images(images, self.engine(host)).await,
            None => Ok(()),
        }
    }

    /// Everything labelled with the cluster, per host. The network counts on host 1 only, where
    /// momctl makes it (an overlay shows on every host a container of it joined).
    pub async fn owned(&self, cluster: &str) -> Result<Vec<(u32, Owned)>, DockerError> {
        let mut owned = Vec::new();
        for (host, engine) in self.all() {
            let mut o = engine.owned(cluster).await?;
            if host > 1 {
                o.networks.clear();
            }
            owned.push((host, o));
        }
        Ok(owned)
    }
}

/// Where the Swarm takes the subnets of its own networks (its ingress): Docker's default is the
/// start of 10.0.0.0/8, which a cluster's `network.subnet` may well be in; the first of a few
/// /16s that the cluster's subnet does not overlap.
pub fn swarm_pool(subnet: Ipv4Net) -> Ipv4Net {
    let overlaps = |p: &Ipv4Net| p.contains(&subnet.network()) || subnet.contains(&p.network());
    let candidates = [[10, 254], [10, 253], [172, 31]];
    let mut pools =
        candidates.iter().filter_map(|[a, b]| Ipv4Net::new(std::net::Ipv4Addr::new(*a, *b, 0, 0), 16).ok());
    let first = pools.clone().next().unwrap_or(subnet);
    pools.find(|p| !overlaps(p)).unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_swarms_own_networks_stay_out_of_the_clusters_subnet() {
        let net = |s: &str| s.parse::<Ipv4Net>().expect("a net");
        for subnet in ["10.0.0.0/24", "10.210.0.0/24", "10.254.3.0/24", "10.0.0.0/8", "172.31.0.0/16"] {
            let subnet = net(subnet);
            let pool = swarm_pool(subnet);
            let apart = !pool.contains(&subnet.network()) && !subnet.contains(&pool.network());
            assert!(apart, "{pool} overlaps {subnet}");
        }
        assert_eq!(swarm_pool(net("10.254.3.0/24")), net("10.253.0.0/16"));
    }
}
