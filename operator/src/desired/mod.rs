//! The desired state of a cluster, computed from [`Settings`] alone: the network, the volumes and
//! one [`ServiceSpec`] per container. Both `momctl render` (through the templates) and the planner
//! (against what Docker reports) start from this one description.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{Settings, Tls};

mod services;

/// Labels every resource momctl makes carries; the real world is found by them, not a state file.
pub mod labels {
    /// The cluster's name: the one label that finds everything the cluster owns.
    pub const CLUSTER: &str = "mom.cluster";
    /// `network`, `volume`, `redis`, `sentinel`, `zookeeper`, `broker` or `nginx`.
    pub const ROLE: &str = "mom.role";
    /// The service within the cluster: `redis`, `zookeeper`, `broker-1`, …, `nginx`.
    pub const SERVICE: &str = "mom.service";
    /// Hash of the container's specification: a different hash means the container is replaced.
    pub const SPEC_HASH: &str = "mom.spec-hash";
    pub const MANAGED_BY: &str = "mom.managed-by";
    /// A broker's generation: absent (0) for the one `up` made from `broker.image`; each
    /// `upgrade`/`rollback` starts generation N+1 beside N (named `…-gN+1`).
    pub const GENERATION: &str = "mom.generation";
    /// The image the broker ran before this generation (what `rollback` returns to).
    pub const PREVIOUS_IMAGE: &str = "mom.previous-image";
    /// mom.yaml's `broker.image` when this generation was made: while the file still says the
    /// same, `plan`/`up` keep the upgraded image; once it changes, the file wins again.
    pub const FILE_IMAGE: &str = "mom.file-image";
    pub const MANAGED_BY_VALUE: &str = "momctl";
}

/// The host a local cluster runs on (render writes one directory per host).
pub const LOCAL_HOST: &str = "local";

/// Port every broker listens on inside the network.
pub const BROKER_PORT: u16 = 8080;
/// Port every broker serves gRPC on inside the network (when gRPC is on).
pub const BROKER_GRPC_PORT: u16 = 9090;
/// Port NGINX listens on inside its container.
pub const NGINX_PORT: u16 = 80;
/// Port NGINX serves gRPC on inside its container (when gRPC is on).
pub const NGINX_GRPC_PORT: u16 = 90;
/// Port NGINX serves HTTPS on inside its container (when TLS is on).
pub const NGINX_HTTPS_PORT: u16 = 443;
/// Where a broker's drain may take (`MOM_DRAIN_TIMEOUT_S` default) plus a margin.
const BROKER_STOP_GRACE_S: u32 = 35;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A Redis data node: the primary, or one of its replicas (`redis.mode: replicated`).
    Redis,
    /// A Redis Sentinel watching the primary (`redis.mode: replicated`).
    Sentinel,
    Zookeeper,
    Broker,
    Nginx,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Redis => "redis",
            Role::Sentinel => "sentinel",
            Role::Zookeeper => "zookeeper",
            Role::Broker => "broker",
            Role::Nginx => "nginx",
        }
    }

    /// Start order: each tier waits until the one before is healthy.
    pub fn tier(self) -> u8 {
        match self {
            Role::Redis | Role::Sentinel | Role::Zookeeper => 0,
            Role::Broker => 1,
            Role::Nginx => 2,
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "redis" => Some(Role::Redis),
            "sentinel" => Some(Role::Sentinel),
            "zookeeper" => Some(Role::Zookeeper),
            "broker" => Some(Role::Broker),
            "nginx" => Some(Role::Nginx),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Desired {
    pub cluster: String,
    pub host: String,
    /// Docker engines the containers are spread over (1: everything on one engine; provider aws
    /// with `aws.hosts` > 1: one per EC2 host, joined by a Swarm overlay network).
    pub hosts: u32,
    pub network: NetworkSpec,
    pub volumes: Vec<VolumeSpec>,
    pub services: Vec<ServiceSpec>,
    /// Where clients reach the cluster: NGINX's published address.
    pub endpoint: Endpoint,
    /// Environment variable (of momctl's environment) holding the first admin's password.
    pub admin_password_env: String,
    /// TLS at NGINX ([`crate::tls::material`] loads or makes the certificate).
    #[serde(skip)]
    pub tls: Option<Tls>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkSpec {
    pub name: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub labels: BTreeMap<String, String>,
    /// Across several hosts: an attachable Swarm overlay (same subnet, same fixed addresses),
    /// created on host 1, the Swarm's manager. Else a bridge.
    pub overlay: bool,
    /// Where Docker may pick addresses itself: on an overlay every host's engine takes one for
    /// its attachment to the network, from the low end of the subnet unless told otherwise,
    /// where the fixed addresses are (a taken fixed address fails a container's start after a
    /// 20 s timeout). `.192/26` of the subnet: no fixed address is there.
    pub dynamic_range: Option<Ipv4Net>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VolumeSpec {
    /// Docker's name for it.
    pub name: String,
    /// The host whose engine keeps it: its container's.
    pub host: u32,
    /// Its key in compose.yml.
    pub key: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub bind: Ipv4Addr,
    pub port: u16,
    /// NGINX's gRPC port on the host, when gRPC is on.
    pub grpc_port: Option<u16>,
    /// NGINX's HTTPS port on the host, when TLS is on (`port` then only redirects to it).
    pub https_port: Option<u16>,
}

impl Endpoint {
    /// The base URL momctl itself uses (a wildcard bind is reached on loopback).
    pub fn url(&self) -> String {
        let host = if self.bind.is_unspecified() { Ipv4Addr::LOCALHOST } else { self.bind };
        match self.https_port {
            Some(port) => format!("https://{host}:{port}"),
            None => format!("http://{host}:{}", self.port),
        }
    }

    /// Where gRPC clients connect (`host:port`), when gRPC is on.
    pub fn grpc_address(&self) -> Option<String> {
        let host = if self.bind.is_unspecified() { Ipv4Addr::LOCALHOST } else { self.bind };
        self.grpc_port.map(|p| format!("{host}:{p}"))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceSpec {
    pub service: String,
    pub role: Role,
    /// The host (1-based) whose Docker engine runs it ([`placement`]). Left out of the hash on
    /// host 1, so a cluster of one host keeps the containers it had before hosts existed.
    #[serde(skip_serializing_if = "is_first_host")]
    pub host: u32,
    pub container_name: String,
    pub image: String,
    /// Empty: the image's own command.
    pub command: Vec<String>,
    /// Non-secret environment (also written to the service's env file).
    pub env: BTreeMap<String, String>,
    /// Environment filled from momctl's own environment when the container is created.
    pub secret_env: Vec<SecretEnv>,
    pub ipv4: Ipv4Addr,
    pub aliases: Vec<String>,
    pub mounts: Vec<VolumeMount>,
    pub ports: Vec<PortSpec>,
    pub health: HealthSpec,
    pub config_files: Vec<ConfigFile>,
    pub depends_on: Vec<String>,
    pub stop_grace_s: u32,
    /// Linux capabilities added to the container's default set. Brokers get `NET_ADMIN` (over
    /// their own network namespace only): some kernels require it for the socket filter that
    /// keeps a draining broker's listener from resetting a connection (broker/src/listen.rs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SecretEnv {
    /// Variable inside the container.
    pub name: String,
    /// Variable of momctl's (or docker-compose's) environment it comes from; for a generated
    /// one, its name in the cluster's secrets file (and in compose's `.env`).
    pub from_env: String,
    /// Made by momctl for the cluster ([`crate::secrets`]) rather than given by the user.
    pub generated: bool,
}

impl SecretEnv {
    fn generated(name: &str) -> SecretEnv {
        SecretEnv { name: name.to_string(), from_env: name.to_string(), generated: true }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VolumeMount {
    pub volume: String,
    pub key: String,
    pub target: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PortSpec {
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthSpec {
    /// Docker's form: `["CMD", prog, args…]`.
    pub test: Vec<String>,
    pub interval_s: u32,
    pub timeout_s: u32,
    pub retries: u32,
    pub start_period_s: u32,
}

/// A rendered file a container needs (copied in before it starts; mounted by compose).
#[derive(Debug, Clone, Serialize)]
pub struct ConfigFile {
    /// Path inside the container.
    pub target: String,
    /// Path of the rendered file relative to the host's directory (`nginx/nginx.conf`).
    pub rendered: String,
}

/// The rendered NGINX configuration lives here in the render output and in the repository.
pub const NGINX_CONF_PATH: &str = "nginx/nginx.conf";
pub const NGINX_CONF_TARGET: &str = "/etc/nginx/nginx.conf";
/// NGINX's certificate and key (`nginx.tls`, [`crate::tls`]): where `render` writes them,
/// relative to the host's directory, and where NGINX finds them inside its container.
pub const NGINX_CERT_PATH: &str = "nginx/tls/server.crt";
pub const NGINX_KEY_PATH: &str = "nginx/tls/server.key";
pub const NGINX_CERT_TARGET: &str = "/etc/nginx/mom-server.crt";
pub const NGINX_KEY_TARGET: &str = "/etc/nginx/mom-server.key";

fn health(test: &[&str], start_period_s: u32) -> HealthSpec {
    HealthSpec {
        test: std::iter::once("CMD").chain(test.iter().copied()).map(str::to_string).collect(),
        interval_s: 2,
        timeout_s: 5,
        retries: 3,
        start_period_s,
    }
}

/// The address of the n-th host of the subnet (`.1` is Docker's gateway).
fn host_addr(subnet: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + n)
}

/// Fixed addresses, so NGINX's upstreams need no DNS and survive a container's replacement.
/// `node`: a broker's number (1–64); a Redis replica's (1–5; 0 is the primary); a Sentinel's
/// (1–3); a ZooKeeper server's id (0 or 1 is the first server, 2 and 3 the ensemble's others).
pub fn service_addr(subnet: Ipv4Net, role: Role, node: u32) -> Ipv4Addr {
    host_addr(
        subnet,
        match role {
            Role::Redis if node == 0 => 2,
            Role::Redis => 80 + node,
            Role::Sentinel => 90 + node,
            Role::Zookeeper if node <= 1 => 3,
            Role::Zookeeper => 94 + node,
            Role::Nginx => 4,
            Role::Broker => 10 + node,
        },
    )
}

fn is_first_host(host: &u32) -> bool {
    *host <= 1
}

/// The host of a service on `hosts` hosts, so that losing one host loses at most one of each
/// kind that counts: Sentinel i and ZooKeeper server i on host i, Redis's primary on host 1 and
/// replica n on host n+1, brokers round-robin; NGINX on host 1, whose address is the endpoint.
/// `node` as in [`service_addr`], except that a lone ZooKeeper is node 1.
pub fn placement(role: Role, node: u32, hosts: u32) -> u32 {
    let hosts = hosts.max(1);
    let spread = |first: u32| first % hosts + 1;
    match role {
        Role::Nginx => 1,
        Role::Redis => spread(node),
        Role::Sentinel | Role::Zookeeper | Role::Broker => spread(node.max(1) - 1),
    }
}

/// The primary's name at the Sentinels (the path of the brokers' `redis-sentinel://` URL).
pub const SENTINEL_SERVICE: &str = "mom";
/// Port the Sentinels listen on.
pub const SENTINEL_PORT: u16 = 26379;
/// Sentinels that watch the primary; 2 of them must agree it is down.
const SENTINELS: u32 = 3;

/// The services of the Redis replicas, the Sentinels and the ZooKeeper servers, by number.
fn redis_replica(n: u32) -> String {
    format!("redis-replica-{n}")
}
fn sentinel(n: u32) -> String {
    format!("redis-sentinel-{n}")
}
fn zookeeper(n: u32) -> String {
    if n <= 1 {
        "zookeeper".to_string()
    } else {
        format!("zookeeper-{n}")
    }
}

/// The first address of the range Docker picks addresses from on an overlay (`.192/26`): above
/// every fixed one (the highest, the alternate of broker 64, is `.174`).
const DYNAMIC_FIRST: u32 = 192;

/// A broker of an odd generation sits this many addresses above its base one (brokers use
/// `.11`–`.74`, so the alternates are `.111`–`.174`).
const ALTERNATE_OFFSET: u32 = 100;

/// The broker's node id (`MOM_NODE_ID`, as `/v1/cluster` lists it) in a generation.
pub fn broker_node_id(service: &str, generation: u32) -> String {
    if generation == 0 {
        service.to_string()
    } else {
        format!("{service}-g{generation}")
    }
}

pub fn container_name(cluster: &str, service: &str) -> String {
    format!("mom-{cluster}-{service}")
}

pub fn network_name(cluster: &str) -> String {
    format!("mom-{cluster}")
}

fn base_labels(cluster: &str, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::CLUSTER.to_string(), cluster.to_string()),
        (labels::ROLE.to_string(), role.to_string()),
        (labels::MANAGED_BY.to_string(), labels::MANAGED_BY_VALUE.to_string()),
    ])
}

impl Desired {
    /// The cluster of `s` on one Docker engine.
    pub fn from_settings(s: &Settings) -> Desired {
        Desired::on_hosts(s, 1)
    }

    /// What host `host` runs of a cluster spread over several: its containers and volumes (each
    /// waiting only for those of the same host: compose cannot wait across hosts), named
    /// `host-K` (`render` writes one compose.yml per host).
    pub fn on_host(&self, host: u32) -> Desired {
        let mut part = self.clone();
        part.host = format!("host-{host}");
        part.services.retain(|s| s.host == host);
        let here: Vec<String> = part.services.iter().map(|s| s.service.clone()).collect();
        for s in &mut part.services {
            s.depends_on.retain(|d| here.contains(d));
        }
        part.volumes.retain(|v| v.host == host);
        part
    }

    pub fn service(&self, name: &str) -> Option<&ServiceSpec> {
        self.services.iter().find(|s| s.service == name)
    }

    pub fn brokers(&self) -> impl Iterator<Item = &ServiceSpec> {
        self.services.iter().filter(|s| s.role == Role::Broker)
    }

    /// Labels that select everything the cluster owns.
    pub fn cluster_filter(cluster: &str) -> String {
        format!("{}={cluster}", labels::CLUSTER)
    }
}

impl ServiceSpec {
    /// Hash of everything that, when changed, needs a new container. Secrets' values are not in
    /// it (they never leave the environment); config file contents are tracked separately, since
    /// they can be updated in place (NGINX reloads), and so is start order (compose's `depends_on`:
    /// NGINX depends on every broker, yet a new broker must not replace NGINX).
    fn hash(&self) -> String {
        let mut hashed = self.clone();
        hashed.depends_on.clear();
        let json = serde_json::to_vec(&hashed).unwrap_or_default();
        let digest = Sha256::digest(&json);
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// The two addresses a broker's generations alternate between, the even generations' (its
    /// base address) first: NGINX's upstream lists both, whichever generation runs, so a rolling
    /// upgrade changes no NGINX configuration and needs no reload.
    pub fn broker_slots(&self) -> [Ipv4Addr; 2] {
        let odd = self
            .labels
            .get(labels::GENERATION)
            .and_then(|g| g.parse::<u32>().ok())
            .is_some_and(|g| g % 2 == 1);
        let base = if odd { Ipv4Addr::from(u32::from(self.ipv4) - ALTERNATE_OFFSET) } else { self.ipv4 };
        [base, Ipv4Addr::from(u32::from(base) + ALTERNATE_OFFSET)]
    }

    /// A broker's container for generation `generation` (> 0) running `image`: started beside
    /// generation N-1 under another name and address (odd generations use the alternate
    /// address), with its own node id so both can be registered while the old one drains.
    /// `self` is the spec made from mom.yaml; its image is recorded as the file's image.
    pub fn broker_generation(&self, generation: u32, image: &str, previous: &str) -> ServiceSpec {
        self.broker_generation_from(generation, image, previous, &self.image)
    }

    /// [`ServiceSpec::broker_generation`] recording `file_image` as mom.yaml's image.
    pub fn broker_generation_from(
        &self,
        generation: u32,
        image: &str,
        previous: &str,
        file_image: &str,
    ) -> ServiceSpec {
        let mut spec = self.clone();
        if generation == 0 || self.role != Role::Broker {
            return spec;
        }
        spec.labels.remove(labels::SPEC_HASH);
        spec.labels.remove(labels::SERVICE);
        spec.container_name = format!("{}-g{generation}", self.container_name);
        if generation % 2 == 1 {
            spec.ipv4 = Ipv4Addr::from(u32::from(self.ipv4) + ALTERNATE_OFFSET);
        }
        spec.image = image.to_string();
        spec.env.insert("MOM_ADVERTISE_ADDRESS".to_string(), format!("{}:{BROKER_PORT}", spec.ipv4));
        spec.env.insert("MOM_NODE_ID".to_string(), broker_node_id(&self.service, generation));
        spec.labels.insert(labels::GENERATION.to_string(), generation.to_string());
        spec.labels.insert(labels::PREVIOUS_IMAGE.to_string(), previous.to_string());
        spec.labels.insert(labels::FILE_IMAGE.to_string(), file_image.to_string());
        let hash = spec.hash();
        spec.labels.insert(labels::SERVICE.to_string(), spec.service.clone());
        spec.labels.insert(labels::SPEC_HASH.to_string(), hash);
        spec
    }

    pub fn spec_hash(&self) -> &str {
        self.labels.get(labels::SPEC_HASH).map(String::as_str).unwrap_or("")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config;

    /// The default cluster (`demo`) with `nodes` brokers.
    pub(crate) fn desired(nodes: u32) -> Desired {
        let text = config::default_file("demo").replace("nodes: 3 ", &format!("nodes: {nodes} "));
        let cfg = config::parse(&text, "mom.yaml").expect("parses");
        Desired::from_settings(&cfg.settings("mom.yaml").expect("valid"))
    }

    #[test]
    fn a_cluster_has_redis_zookeeper_brokers_and_nginx() {
        let d = desired(3);
        let names: Vec<_> = d.services.iter().map(|s| s.service.as_str()).collect();
        assert_eq!(names, ["redis", "zookeeper", "broker-1", "broker-2", "broker-3", "nginx"]);
        assert!(d.services.iter().all(|s| s.labels[labels::CLUSTER] == "demo"));
    }

    /// Issue 25: every data node, single or replicated, rewrites its AOF rarely (a rewrite's fork
    /// stalled Redis every few seconds under load and made the send p99) and frees big keys lazily;
    /// issue 27: it keeps only small keys in the listpack encoding. The benchmarks' Redis runs
    /// with the same settings (the reference Compose file is rendered from this: `tests/render.rs`).
    #[test]
    fn every_redis_data_node_is_tuned_as_the_benchmarks_are() {
        for d in [desired(1), replicated()] {
            let nodes: Vec<_> = d.services.iter().filter(|s| s.service.starts_with("redis")).collect();
            let data: Vec<_> = nodes.iter().filter(|s| !s.service.contains("sentinel")).collect();
            assert!(!data.is_empty());
            for s in data {
                let cmd = &s.command;
                for pair in services::REDIS_TUNING.chunks(2) {
                    assert!(cmd.windows(2).any(|w| w == pair), "{} lacks {pair:?}: {cmd:?}", s.service);
                }
                assert!(cmd.windows(2).any(|w| w == ["--auto-aof-rewrite-min-size", "4gb"]), "{cmd:?}");
                assert!(cmd.windows(2).any(|w| w == ["--lazyfree-lazy-user-del", "yes"]), "{cmd:?}");
                assert!(cmd.windows(2).any(|w| w == ["--appendonly", "yes"]), "{cmd:?}");
            }
        }
        // The benchmarks' own Redis mirrors what momctl deploys.
        let run = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/run.sh");
        let run = std::fs::read_to_string(run).expect("bench/run.sh");
        let line = format!("REDIS_TUNING=\"{}\"", services::REDIS_TUNING.join(" "));
        assert!(run.contains(&line), "bench/run.sh should set {line}");
    }

    #[test]
    fn adding_a_broker_changes_no_other_container() {
        let (three, four) = (desired(3), desired(4));
        for s in &three.services {
            let other = four.service(&s.service).expect("still there");
            assert_eq!(s.spec_hash(), other.spec_hash(), "{} changed", s.service);
        }
        assert_eq!(four.brokers().count(), 4);
    }

    #[test]
    fn a_new_generation_moves_name_address_and_node_id() {
        let d = desired(3);
        let base = d.service("broker-2").expect("broker-2");
        let g1 = base.broker_generation(1, "mom-broker:next", &base.image);
        assert_eq!(g1.container_name, "mom-demo-broker-2-g1");
        assert_ne!(g1.ipv4, base.ipv4);
        assert!(d.network.subnet.contains(&g1.ipv4));
        assert_eq!(g1.env["MOM_NODE_ID"], "broker-2-g1");
        assert_eq!(g1.labels[labels::FILE_IMAGE], base.image);
        assert_ne!(g1.spec_hash(), base.spec_hash());
        let g2 = base.broker_generation(2, &base.image, "mom-broker:next");
        assert_eq!(g2.ipv4, base.ipv4);
        // Both generations have the same two upstream slots.
        assert_eq!(base.broker_slots(), [base.ipv4, g1.ipv4]);
        assert_eq!(g1.broker_slots(), base.broker_slots());
        assert_eq!(g2.broker_slots(), base.broker_slots());
        assert_ne!(g2.spec_hash(), base.spec_hash());
        assert_eq!(base.broker_generation(0, "x", "y").spec_hash(), base.spec_hash());
    }

    fn replicated() -> Desired {
        replicated_on(1)
    }

    /// Replicated Redis, 3 ZooKeeper servers and 3 brokers on `hosts` hosts.
    pub(crate) fn replicated_on(hosts: u32) -> Desired {
        let text = config::default_file("demo")
            .replace("mode: single ", "mode: replicated ")
            .replace("nodes: 1 ", "nodes: 3 ");
        let cfg = config::parse(&text, "mom.yaml").expect("parses");
        Desired::on_hosts(&cfg.settings("mom.yaml").expect("valid"), hosts)
    }

    #[test]
    fn across_three_hosts_losing_one_loses_at_most_one_of_each_kind() {
        let d = replicated_on(3);
        assert!(d.network.overlay);
        let dynamic = d.network.dynamic_range.expect("a range for Docker's own addresses");
        for s in &d.services {
            let alternate = s.broker_generation(1, &s.image, &s.image).ipv4;
            assert!(!dynamic.contains(&s.ipv4) && !dynamic.contains(&alternate), "{}", s.service);
        }
        let on = |host: u32| -> Vec<&str> {
            d.services.iter().filter(|s| s.host == host).map(|s| s.service.as_str()).collect()
        };
        assert_eq!(on(1), ["redis", "redis-sentinel-1", "zookeeper", "broker-1", "nginx"]);
        assert_eq!(on(2), ["redis-replica-1", "redis-sentinel-2", "zookeeper-2", "broker-2"]);
        assert_eq!(on(3), ["redis-replica-2", "redis-sentinel-3", "zookeeper-3", "broker-3"]);
        for v in &d.volumes {
            let user = d.services.iter().find(|s| s.mounts.iter().any(|m| m.volume == v.name));
            assert_eq!(Some(v.host), user.map(|s| s.host), "{} lives with its container", v.name);
        }
        // One host: everything on it, and the same containers as before hosts existed.
        let one = replicated_on(1);
        assert!(one.services.iter().all(|s| s.host == 1) && !one.network.overlay);
        let three = replicated_on(3);
        assert_eq!(
            one.service("redis").map(ServiceSpec::spec_hash),
            three.service("redis").map(ServiceSpec::spec_hash),
            "host 1's containers keep their hash"
        );
        assert_ne!(
            one.service("zookeeper-2").map(ServiceSpec::spec_hash),
            three.service("zookeeper-2").map(ServiceSpec::spec_hash),
            "a container that moves host is replaced"
        );
        // Two hosts: the replicas and the Sentinels still spread over both.
        let two = replicated_on(2);
        let hosts: Vec<u32> = [
            "redis",
            "redis-replica-1",
            "redis-replica-2",
            "redis-sentinel-1",
            "redis-sentinel-2",
            "redis-sentinel-3",
        ]
        .iter()
        .map(|n| two.service(n).expect("service").host)
        .collect();
        assert_eq!(hosts, [1, 2, 1, 1, 2, 1]);
    }

    #[test]
    fn replicated_redis_has_replicas_and_three_sentinels_and_zookeeper_three_servers() {
        let d = replicated();
        let names: Vec<_> = d.services.iter().map(|s| s.service.as_str()).collect();
        assert_eq!(
            names[..9],
            [
                "redis",
                "redis-replica-1",
                "redis-replica-2",
                "redis-sentinel-1",
                "redis-sentinel-2",
                "redis-sentinel-3",
                "zookeeper",
                "zookeeper-2",
                "zookeeper-3",
            ]
        );
        let primary = d.service("redis").expect("primary").ipv4.to_string();
        for n in ["redis-replica-1", "redis-replica-2"] {
            let cmd = &d.service(n).expect("replica").command;
            assert!(cmd.windows(3).any(|w| w == ["--replicaof", primary.as_str(), "6379"]), "{cmd:?}");
        }
        let sentinel = d.service("redis-sentinel-1").expect("sentinel").command.join(" ");
        assert!(sentinel.contains(&format!("sentinel monitor mom {primary} 6379 2")), "{sentinel}");
        assert!(!sentinel.contains("secret"), "the password is read from the environment");
        let zk = d.service("zookeeper-3").expect("zk").command.join(" ");
        assert!(zk.contains("echo 3 > /data/myid"), "{zk}");
        for n in ["zookeeper", "zookeeper-2", "zookeeper-3"] {
            let ip = d.service(n).expect("zk").ipv4;
            assert!(zk.contains(&format!("={ip}:2888:3888")), "{zk} lacks {n}");
        }
        let broker = d.service("broker-1").expect("broker");
        assert_eq!(
            broker.env["MOM_REDIS_URL"],
            "redis-sentinel://redis-sentinel-1:26379,redis-sentinel-2:26379,redis-sentinel-3:26379/mom"
        );
        assert_eq!(broker.env["MOM_ZK_CONNECT"], "zookeeper:2181,zookeeper-2:2181,zookeeper-3:2181");
        assert_eq!(broker.env["MOM_REDIS_MIN_REPLICAS_ACK"], "1");
        let volumes: std::collections::BTreeSet<_> = d.volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(volumes.len(), 9, "one volume per data node, Sentinel and ZooKeeper server");
        let mut addresses: Vec<_> = d.services.iter().map(|s| s.ipv4).collect();
        addresses.sort();
        addresses.dedup();
        assert_eq!(addresses.len(), d.services.len(), "every container has its own address");
    }

    #[test]
    fn a_single_redis_and_zookeeper_keep_their_names_volumes_and_address() {
        let (single, replicated) = (desired(3), replicated());
        for name in ["redis", "zookeeper"] {
            let (a, b) =
                (single.service(name).expect("single"), replicated.service(name).expect("replicated"));
            assert_eq!((a.ipv4, &a.mounts[0].volume), (b.ipv4, &b.mounts[0].volume), "{name}");
        }
        assert_eq!(single.services.len(), 6);
        assert_eq!(single.volumes.len(), 2);
        assert_eq!(
            single.service("nginx").expect("nginx").spec_hash(),
            replicated.service("nginx").expect("nginx").spec_hash(),
            "NGINX does not care how Redis is deployed"
        );
    }

    #[test]
    fn addresses_are_fixed_within_the_subnet() {
        let d = desired(2);
        for s in &d.services {
            assert!(d.network.subnet.contains(&s.ipv4));
            assert_ne!(s.ipv4, d.network.gateway);
        }
    }
}
