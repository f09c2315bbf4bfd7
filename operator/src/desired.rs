//! The desired state of a cluster, computed from [`Settings`] alone: the network, the volumes and
//! one [`ServiceSpec`] per container. Both `momctl render` (through the templates) and the planner
//! (against what Docker reports) start from this one description.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{Settings, Tls};

/// Labels every resource momctl makes carries; the real world is found by them, not a state file.
pub mod labels {
    /// The cluster's name: the one label that finds everything the cluster owns.
    pub const CLUSTER: &str = "mom.cluster";
    /// `network`, `volume`, `redis`, `zookeeper`, `broker` or `nginx`.
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
    Redis,
    Zookeeper,
    Broker,
    Nginx,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Redis => "redis",
            Role::Zookeeper => "zookeeper",
            Role::Broker => "broker",
            Role::Nginx => "nginx",
        }
    }

    /// Start order: each tier waits until the one before is healthy.
    pub fn tier(self) -> u8 {
        match self {
            Role::Redis | Role::Zookeeper => 0,
            Role::Broker => 1,
            Role::Nginx => 2,
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "redis" => Some(Role::Redis),
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
}

#[derive(Debug, Clone, Serialize)]
pub struct VolumeSpec {
    /// Docker's name for it.
    pub name: String,
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
        let host = if self.bind.is_unspecified() {
            Ipv4Addr::LOCALHOST
        } else {
            self.bind
        };
        match self.https_port {
            Some(port) => format!("https://{host}:{port}"),
            None => format!("http://{host}:{}", self.port),
        }
    }

    /// Where gRPC clients connect (`host:port`), when gRPC is on.
    pub fn grpc_address(&self) -> Option<String> {
        let host = if self.bind.is_unspecified() {
            Ipv4Addr::LOCALHOST
        } else {
            self.bind
        };
        self.grpc_port.map(|p| format!("{host}:{p}"))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceSpec {
    pub service: String,
    pub role: Role,
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
        SecretEnv {
            name: name.to_string(),
            from_env: name.to_string(),
            generated: true,
        }
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

fn health(test: &[&str], start_period_s: u32) -> HealthSpec {
    HealthSpec {
        test: std::iter::once("CMD")
            .chain(test.iter().copied())
            .map(str::to_string)
            .collect(),
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
pub fn service_addr(subnet: Ipv4Net, role: Role, node: u32) -> Ipv4Addr {
    host_addr(
        subnet,
        match role {
            Role::Redis => 2,
            Role::Zookeeper => 3,
            Role::Nginx => 4,
            Role::Broker => 10 + node,
        },
    )
}

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
        (
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_VALUE.to_string(),
        ),
    ])
}

impl Desired {
    pub fn from_settings(s: &Settings) -> Desired {
        let cluster = s.cluster.as_str();
        let network = NetworkSpec {
            name: network_name(cluster),
            subnet: s.subnet,
            gateway: host_addr(s.subnet, 1),
            labels: base_labels(cluster, "network"),
        };
        let volume = |key: &str| VolumeSpec {
            name: format!("mom-{cluster}-{key}"),
            key: key.to_string(),
            labels: base_labels(cluster, "volume"),
        };
        let volumes = vec![volume("redis-data"), volume("zookeeper-data")];
        let mount = |v: &VolumeSpec, target: &str| VolumeMount {
            volume: v.name.clone(),
            key: v.key.clone(),
            target: target.to_string(),
        };

        let service = |role: Role, name: &str, node: u32| ServiceSpec {
            service: name.to_string(),
            role,
            container_name: container_name(cluster, name),
            image: String::new(),
            command: Vec::new(),
            env: BTreeMap::new(),
            secret_env: Vec::new(),
            ipv4: service_addr(s.subnet, role, node),
            aliases: vec![name.to_string()],
            mounts: Vec::new(),
            ports: Vec::new(),
            health: health(&["true"], 0),
            config_files: Vec::new(),
            depends_on: Vec::new(),
            stop_grace_s: 10,
            labels: base_labels(cluster, role.as_str()),
        };

        let mut services = Vec::new();

        let mut redis = service(Role::Redis, "redis", 0);
        redis.image = s.redis_image.clone();
        // The password reaches redis-server as a configuration line on its standard input, so
        // it shows neither in the container's command nor in its process list.
        redis.command = [
            "bash",
            "-c",
            "exec redis-server - \"$@\" <<< \"requirepass $MOM_REDIS_PASSWORD\"",
            "redis-server",
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
            "--dir",
            "/data",
            "--appendonly",
            "yes",
            "--appendfsync",
            s.redis_appendfsync.as_str(),
        ]
        .map(str::to_string)
        .to_vec();
        redis.secret_env = vec![SecretEnv::generated(crate::secrets::REDIS_PASSWORD)];
        redis.mounts = vec![mount(&volumes[0], "/data")];
        redis.health = health(
            &[
                "bash",
                "-c",
                "REDISCLI_AUTH=\"$MOM_REDIS_PASSWORD\" redis-cli ping | grep -q PONG",
            ],
            30,
        );
        services.push(redis);

        let mut zookeeper = service(Role::Zookeeper, "zookeeper", 0);
        zookeeper.image = s.zookeeper_image.clone();
        zookeeper.mounts = vec![mount(&volumes[1], "/data")];
        // `ruok` over bash's /dev/tcp: the image needs no netcat.
        zookeeper.health = health(
            &[
                "bash",
                "-c",
                "exec 3<>/dev/tcp/127.0.0.1/2181 && printf ruok >&3 && grep -q imok <&3",
            ],
            120,
        );
        services.push(zookeeper);

        let brokers: Vec<String> = (1..=s.broker_nodes)
            .map(|n| format!("broker-{n}"))
            .collect();
        for (i, name) in brokers.iter().enumerate() {
            let node = i as u32 + 1;
            let mut broker = service(Role::Broker, name, node);
            broker.image = s.broker_image.clone();
            broker.env = BTreeMap::from([
                ("MOM_LISTEN".to_string(), format!("0.0.0.0:{BROKER_PORT}")),
                (
                    "MOM_ADVERTISE_ADDRESS".to_string(),
                    format!("{}:{BROKER_PORT}", broker.ipv4),
                ),
                ("MOM_NODE_ID".to_string(), name.clone()),
                (
                    "MOM_REDIS_URL".to_string(),
                    "redis://redis:6379".to_string(),
                ),
                ("MOM_ZK_CONNECT".to_string(), "zookeeper:2181".to_string()),
                ("MOM_TRUSTED_PROXIES".to_string(), s.subnet.to_string()),
            ]);
            if s.nginx_grpc_port.is_some() {
                broker.env.insert(
                    "MOM_GRPC_LISTEN".to_string(),
                    format!("0.0.0.0:{BROKER_GRPC_PORT}"),
                );
            }
            broker.secret_env = vec![
                SecretEnv {
                    name: "MOM_ADMIN_PASSWORD".to_string(),
                    from_env: s.admin_password_env.clone(),
                    generated: false,
                },
                SecretEnv::generated(crate::secrets::REDIS_PASSWORD),
                SecretEnv::generated(crate::secrets::ZK_AUTH),
            ];
            broker.health = health(
                &[
                    "curl",
                    "-fsS",
                    "-o",
                    "/dev/null",
                    &format!("http://127.0.0.1:{BROKER_PORT}/readyz"),
                ],
                180,
            );
            broker.depends_on = vec!["redis".to_string(), "zookeeper".to_string()];
            broker.stop_grace_s = BROKER_STOP_GRACE_S;
            broker
                .labels
                .insert("mom.node".to_string(), node.to_string());
            services.push(broker);
        }

        let mut nginx = service(Role::Nginx, "nginx", 0);
        nginx.image = s.nginx_image.clone();
        nginx.ports = vec![PortSpec {
            host_ip: s.nginx_bind,
            host_port: s.nginx_http_port,
            container_port: NGINX_PORT,
        }];
        if let Some(port) = s.nginx_https_port {
            nginx.ports.push(PortSpec {
                host_ip: s.nginx_bind,
                host_port: port,
                container_port: NGINX_HTTPS_PORT,
            });
        }
        if let Some(port) = s.nginx_grpc_port {
            nginx.ports.push(PortSpec {
                host_ip: s.nginx_bind,
                host_port: port,
                container_port: NGINX_GRPC_PORT,
            });
        }
        nginx.health = health(
            &[
                "curl",
                "-fsS",
                "-o",
                "/dev/null",
                &format!("http://127.0.0.1:{NGINX_PORT}/.mom/nginx-health"),
            ],
            30,
        );
        nginx.config_files = vec![ConfigFile {
            target: NGINX_CONF_TARGET.to_string(),
            rendered: NGINX_CONF_PATH.to_string(),
        }];
        if s.nginx_tls.is_some() {
            for (target, rendered) in [
                (crate::tls::CERT_TARGET, crate::tls::CERT_RENDERED),
                (crate::tls::KEY_TARGET, crate::tls::KEY_RENDERED),
            ] {
                nginx.config_files.push(ConfigFile {
                    target: target.to_string(),
                    rendered: rendered.to_string(),
                });
            }
        }
        nginx.depends_on = brokers;
        services.push(nginx);

        for spec in &mut services {
            let hash = spec.hash();
            spec.labels
                .insert(labels::SERVICE.to_string(), spec.service.clone());
            spec.labels.insert(labels::SPEC_HASH.to_string(), hash);
        }

        Desired {
            cluster: cluster.to_string(),
            host: LOCAL_HOST.to_string(),
            network,
            volumes,
            services,
            endpoint: Endpoint {
                bind: s.nginx_bind,
                port: s.nginx_http_port,
                grpc_port: s.nginx_grpc_port,
                https_port: s.nginx_https_port,
            },
            admin_password_env: s.admin_password_env.clone(),
            tls: s.nginx_tls.clone(),
        }
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
        spec.env.insert(
            "MOM_ADVERTISE_ADDRESS".to_string(),
            format!("{}:{BROKER_PORT}", spec.ipv4),
        );
        spec.env.insert(
            "MOM_NODE_ID".to_string(),
            broker_node_id(&self.service, generation),
        );
        spec.labels
            .insert(labels::GENERATION.to_string(), generation.to_string());
        spec.labels
            .insert(labels::PREVIOUS_IMAGE.to_string(), previous.to_string());
        spec.labels
            .insert(labels::FILE_IMAGE.to_string(), file_image.to_string());
        let hash = spec.hash();
        spec.labels
            .insert(labels::SERVICE.to_string(), spec.service.clone());
        spec.labels.insert(labels::SPEC_HASH.to_string(), hash);
        spec
    }

    pub fn spec_hash(&self) -> &str {
        self.labels
            .get(labels::SPEC_HASH)
            .map(String::as_str)
            .unwrap_or("")
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
        assert_eq!(
            names,
            [
                "redis",
                "zookeeper",
                "broker-1",
                "broker-2",
                "broker-3",
                "nginx"
            ]
        );
        assert!(d
            .services
            .iter()
            .all(|s| s.labels[labels::CLUSTER] == "demo"));
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
        assert_ne!(g2.spec_hash(), base.spec_hash());
        assert_eq!(
            base.broker_generation(0, "x", "y").spec_hash(),
            base.spec_hash()
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
