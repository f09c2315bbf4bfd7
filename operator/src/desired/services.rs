//! The services of the desired cluster ([`Desired::on_hosts`]), one function per role: what each
//! container of Redis (primary and replicas), the Sentinels, ZooKeeper, the brokers and NGINX is
//! made of.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;

use crate::config::{RedisMode, Settings};

use super::{
    base_labels, container_name, health, host_addr, labels, network_name, placement, redis_replica, sentinel,
    service_addr, zookeeper, ConfigFile, Desired, Endpoint, NetworkSpec, PortSpec, Role, SecretEnv,
    ServiceSpec, VolumeMount, VolumeSpec, BROKER_GRPC_PORT, BROKER_PORT, BROKER_STOP_GRACE_S, DYNAMIC_FIRST,
    LOCAL_HOST, NGINX_CERT_PATH, NGINX_CERT_TARGET, NGINX_CONF_PATH, NGINX_CONF_TARGET, NGINX_GRPC_PORT,
    NGINX_HTTPS_PORT, NGINX_KEY_PATH, NGINX_KEY_TARGET, NGINX_PORT, SENTINELS, SENTINEL_PORT,
    SENTINEL_SERVICE,
};

/// How every Redis data node rewrites its append-only file and frees big keys, so that neither
/// stalls it (issue 25, point 5: the send p99), and encodes a queue's small keys (issue 27).
/// `bench/run.sh` starts its own redis-server with the same flags, so the benchmarks measure what
/// this deploys.
///
/// - `auto-aof-rewrite-min-size 4gb`: Redis's default, 64mb, was measured (BENCHMARKS.md, "Tail
///   latency, measured cause") to fork a rewrite every 2–4 s under a saturated send load (a broker
///   appends ~25 MB/s of AOF at 18k sends/s while acked messages leave the dataset small), and each
///   fork stalled Redis: HTTP send's p99 at half its maximum rate was 11–24 ms, 4.3 ms without
///   rewrites. At 4gb that load rewrites about every 3 minutes. The price is disk (the AOF grows
///   to 4 GB, or twice the dataset, before a rewrite) and a longer replay when Redis restarts (at
///   most 4 GB of incremental AOF after the base).
/// - `auto-aof-rewrite-percentage 100` (the default, stated): a dataset grown past 2 GB (a large
///   backlog) still rewrites once its AOF doubled, so disk stays bounded by ~2x the data.
/// - `aof-use-rdb-preamble yes` (the default, stated): the rewrite writes the base as RDB, which is
///   faster to write and to load than commands. Redis 7's multi-part AOF (a base file plus
///   incremental files in `appendonlydir/`) means a rewrite no longer buffers the writes made
///   meanwhile in the parent: the fork is the main cost left, and it is now rare.
/// - `no-appendfsync-on-rewrite no` (the default, stated): `yes` would skip fsyncs while a rewrite
///   runs, which lowers latency then but loses up to ~30 s of acknowledged sends in a crash during
///   a rewrite: a broker's 201 keeps meaning what `appendfsync` promises.
/// - `lazyfree-lazy-user-del yes`: a `DEL` (scripts' too) frees big values in a background thread,
///   as `UNLINK` does. Purging a queue of ~140k messages held Redis for 50–130 ms in one `DEL`
///   (its slow log, in `bench/run.sh`'s runs), a stall every other client's request waited out.
/// - `zset-max-listpack-entries 16`, `hash-max-listpack-entries 16` (issue 27: Redis's CPU per
///   message): a queue's sorted sets and its delivery-count hash stay in Redis's compact listpack
///   encoding up to 128 entries by default, where every `ZADD`, `ZMSCORE` or `HMGET` scans the
///   list. A queue with a few dozen messages waiting or in flight (the common case under load)
///   paid ~4 µs per `ZADD`, ~2 with the hashed encodings (BENCHMARKS.md, "Findings"). Queues
///   holding more than 128 use those anyway, so the memory this costs is bounded: a few hundred
///   bytes more per small queue.
pub(crate) const REDIS_TUNING: [&str; 14] = [
    "--auto-aof-rewrite-min-size",
    "4gb",
    "--auto-aof-rewrite-percentage",
    "100",
    "--aof-use-rdb-preamble",
    "yes",
    "--no-appendfsync-on-rewrite",
    "no",
    "--lazyfree-lazy-user-del",
    "yes",
    "--zset-max-listpack-entries",
    "16",
    "--hash-max-listpack-entries",
    "16",
];

impl Desired {
    /// The cluster of `s` spread over `hosts` Docker engines ([`placement`]).
    /// The cluster of `s` spread over `hosts` Docker engines ([`placement`]).
    pub fn on_hosts(s: &Settings, hosts: u32) -> Desired {
        let hosts = hosts.max(1);
        let mut build = Build::new(s, hosts);
        let mut services = build.redis();
        let sentinels = build.sentinels();
        let sentinel_names: Vec<String> = sentinels.iter().map(|s| s.service.clone()).collect();
        services.extend(sentinels);
        let zookeepers = build.zookeepers();
        let zk_names: Vec<String> = zookeepers.iter().map(|z| z.service.clone()).collect();
        services.extend(zookeepers);

        // Where the brokers find the stores: the Sentinels (which name the primary) or the one
        // Redis; every ZooKeeper server (the client moves to another when one is lost).
        let stores: Vec<String> = services.iter().map(|s| s.service.clone()).collect();
        let redis_url = if s.redis_mode == RedisMode::Replicated {
            let at: Vec<String> = sentinel_names.iter().map(|n| format!("{n}:{SENTINEL_PORT}")).collect();
            format!("redis-sentinel://{}/{SENTINEL_SERVICE}", at.join(","))
        } else {
            "redis://redis:6379".to_string()
        };
        let zk_connect: Vec<String> = zk_names.iter().map(|n| format!("{n}:2181")).collect();
        let brokers = build.brokers(&stores, &redis_url, &zk_connect.join(","));
        let broker_names: Vec<String> = brokers.iter().map(|b| b.service.clone()).collect();
        services.extend(brokers);
        services.push(build.nginx(broker_names));

        for spec in &mut services {
            let hash = spec.hash();
            spec.labels.insert(labels::SERVICE.to_string(), spec.service.clone());
            spec.labels.insert(labels::SPEC_HASH.to_string(), hash);
        }

        Desired {
            cluster: s.cluster.clone(),
            host: LOCAL_HOST.to_string(),
            hosts,
            network: build.network(),
            volumes: build.volumes,
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
}

/// Builds the services of one cluster on `hosts` engines, collecting their volumes.
struct Build<'a> {
    s: &'a Settings,
    hosts: u32,
    /// The volumes made so far, in the order of their containers.
    pub volumes: Vec<VolumeSpec>,
}

impl<'a> Build<'a> {
    pub fn new(s: &'a Settings, hosts: u32) -> Build<'a> {
        Build { s, hosts, volumes: Vec::new() }
    }

    fn replicated(&self) -> bool {
        self.s.redis_mode == RedisMode::Replicated
    }

    /// The cluster's network: a bridge, or across hosts an overlay.
    pub fn network(&self) -> NetworkSpec {
        let (s, hosts) = (self.s, self.hosts);
        NetworkSpec {
            name: network_name(&s.cluster),
            subnet: s.subnet,
            gateway: host_addr(s.subnet, 1),
            labels: base_labels(&s.cluster, "network"),
            overlay: hosts > 1,
            dynamic_range: (hosts > 1)
                .then(|| Ipv4Net::new(host_addr(s.subnet, DYNAMIC_FIRST), 26).ok())
                .flatten(),
        }
    }

    /// A volume `key` on `host`, mounted at `/data`.
    fn data_volume(&mut self, key: String, host: u32) -> VolumeMount {
        let cluster = &self.s.cluster;
        let v = VolumeSpec {
            name: format!("mom-{cluster}-{key}"),
            host,
            key,
            labels: base_labels(cluster, "volume"),
        };
        let m = VolumeMount { volume: v.name.clone(), key: v.key.clone(), target: "/data".to_string() };
        self.volumes.push(v);
        m
    }

    /// What every container starts from: its name, host, address and labels.
    fn service(&self, role: Role, name: &str, node: u32) -> ServiceSpec {
        let (s, hosts, cluster) = (self.s, self.hosts, self.s.cluster.as_str());
        ServiceSpec {
            service: name.to_string(),
            role,
            host: placement(role, node, hosts),
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
            cap_add: Vec::new(),
            labels: base_labels(cluster, role.as_str()),
        }
    }

    /// The data nodes: the primary (`redis`), then its replicas.
    pub fn redis(&mut self) -> Vec<ServiceSpec> {
        let s = self.s;
        let replicated = self.replicated();
        let primary = service_addr(s.subnet, Role::Redis, 0);
        let mut services = Vec::new();
        for n in 0..=s.redis_replicas {
            let name = if n == 0 { "redis".to_string() } else { redis_replica(n) };
            let mut redis = self.service(Role::Redis, &name, n);
            redis.image = s.redis_image.clone();
            // The password reaches redis-server as configuration lines on its standard input,
            // so it shows neither in the container's command nor in its process list. With
            // replicas every node also knows it as `masterauth`: any of them may become the
            // primary, and the old primary comes back as a replica.
            let config = if replicated {
                "exec redis-server - \"$@\" <<< \"requirepass $MOM_REDIS_PASSWORD\"$'\\n'\"masterauth $MOM_REDIS_PASSWORD\""
            } else {
                "exec redis-server - \"$@\" <<< \"requirepass $MOM_REDIS_PASSWORD\""
            };
            redis.command = [
                "bash",
                "-c",
                config,
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
            redis.command.extend(REDIS_TUNING.iter().map(|a| a.to_string()));
            if n > 0 {
                redis.command.extend(["--replicaof".to_string(), primary.to_string(), "6379".to_string()]);
            }
            redis.secret_env = vec![SecretEnv::generated(crate::secrets::REDIS_PASSWORD)];
            redis.mounts = vec![self.data_volume(format!("{name}-data"), redis.host)];
            // Replicated: healthy as a primary, or as a replica whose link to the primary is
            // up (the roles move with a failover, the check does not care which is which).
            let check = if replicated {
                "REDISCLI_AUTH=\"$MOM_REDIS_PASSWORD\" redis-cli info replication | grep -Eq '^(role:master|master_link_status:up)'"
            } else {
                "REDISCLI_AUTH=\"$MOM_REDIS_PASSWORD\" redis-cli ping | grep -q PONG"
            };
            redis.health = health(&["bash", "-c", check], 30);
            services.push(redis);
        }
        services
    }

    /// The Sentinels (replicated Redis only): they learn the replicas and each other from the
    /// primary, and write what they learn (failovers included) to their configuration file,
    /// which therefore lives on a volume: a replaced Sentinel still knows which node is the
    /// primary now.
    pub fn sentinels(&mut self) -> Vec<ServiceSpec> {
        let s = self.s;
        let replicated = self.replicated();
        let primary = service_addr(s.subnet, Role::Redis, 0);
        let mut services = Vec::new();
        let sentinels: Vec<String> =
            if replicated { (1..=SENTINELS).map(sentinel).collect() } else { Vec::new() };
        for (i, name) in sentinels.iter().enumerate() {
            let mut sentinel = self.service(Role::Sentinel, name, i as u32 + 1);
            sentinel.image = s.redis_image.clone();
            // The Sentinels require the cluster's Redis password too (`requirepass`), and give
            // it to each other (`sentinel-pass`): a client without it can neither ask them nor
            // order a failover.
            let conf = [
                format!("port {SENTINEL_PORT}"),
                "protected-mode no".to_string(),
                "requirepass $MOM_REDIS_PASSWORD".to_string(),
                "sentinel sentinel-pass $MOM_REDIS_PASSWORD".to_string(),
                format!("sentinel monitor {SENTINEL_SERVICE} {primary} 6379 {}", SENTINELS / 2 + 1),
                format!("sentinel auth-pass {SENTINEL_SERVICE} $MOM_REDIS_PASSWORD"),
                format!("sentinel down-after-milliseconds {SENTINEL_SERVICE} 5000"),
                format!("sentinel failover-timeout {SENTINEL_SERVICE} 30000"),
            ];
            let lines: Vec<String> = conf.iter().map(|l| format!("\"{l}\"")).collect();
            sentinel.command = vec![
                "bash".to_string(),
                "-c".to_string(),
                format!(
                    "f=/data/sentinel.conf; [ -f $f ] || (umask 077; printf '%s\\n' {} > $f); exec redis-server $f --sentinel",
                    lines.join(" ")
                ),
            ];
            sentinel.secret_env = vec![SecretEnv::generated(crate::secrets::REDIS_PASSWORD)];
            sentinel.mounts = vec![self.data_volume(format!("{name}-data"), sentinel.host)];
            // Ready once a majority of Sentinels know each other: a failover can be agreed.
            sentinel.health = health(
                &[
                    "bash",
                    "-c",
                    &format!("REDISCLI_AUTH=\"$MOM_REDIS_PASSWORD\" redis-cli -p {SENTINEL_PORT} sentinel ckquorum {SENTINEL_SERVICE} | grep -q ^OK"),
                ],
                60,
            );
            services.push(sentinel);
        }
        services
    }

    /// ZooKeeper: one server, or an ensemble of `zookeeper.nodes` (server ids 1–3).
    pub fn zookeepers(&mut self) -> Vec<ServiceSpec> {
        let s = self.s;
        let mut services = Vec::new();
        let ensemble = s.zookeeper_nodes > 1;
        let servers: Vec<String> = (1..=s.zookeeper_nodes)
            .map(|n| format!("server.{n}={}:2888:3888", service_addr(s.subnet, Role::Zookeeper, n)))
            .collect();
        for n in 1..=s.zookeeper_nodes {
            let name = zookeeper(n);
            let mut zk = self.service(Role::Zookeeper, &name, if ensemble { n } else { 0 });
            zk.image = s.zookeeper_image.clone();
            zk.mounts = vec![self.data_volume(format!("{name}-data"), zk.host)];
            if ensemble {
                // The image's zoo.cfg plus the ensemble's servers; the server id in /data/myid.
                zk.command = vec![
                    "bash".to_string(),
                    "-c".to_string(),
                    format!(
                        "echo {n} > /data/myid && {{ cat /conf/zoo.cfg; printf '%s\\n' quorumListenOnAllIPs=true {}; }} > /tmp/zoo.cfg && exec /usr/share/zookeeper/bin/zkServer.sh start-foreground /tmp/zoo.cfg",
                        servers.join(" ")
                    ),
                ];
            }
            // `ruok`/`srvr` over bash's /dev/tcp: the image needs no netcat. A server of an
            // ensemble is ready once it has joined the quorum (leader or follower).
            let check = if ensemble {
                "exec 3<>/dev/tcp/127.0.0.1/2181 && printf srvr >&3 && grep -Eq 'Mode: (leader|follower)' <&3"
            } else {
                "exec 3<>/dev/tcp/127.0.0.1/2181 && printf ruok >&3 && grep -q imok <&3"
            };
            zk.health = health(&["bash", "-c", check], 120);
            services.push(zk);
        }
        services
    }

    /// The brokers, finding the stores at `redis_url` and `zk_connect`; each waits for `stores`.
    pub fn brokers(&self, stores: &[String], redis_url: &str, zk_connect: &str) -> Vec<ServiceSpec> {
        let s = self.s;
        let replicated = self.replicated();
        let mut services = Vec::new();
        let brokers: Vec<String> = (1..=s.broker_nodes).map(|n| format!("broker-{n}")).collect();
        for (i, name) in brokers.iter().enumerate() {
            let node = i as u32 + 1;
            let mut broker = self.service(Role::Broker, name, node);
            broker.image = s.broker_image.clone();
            broker.env = BTreeMap::from([
                ("MOM_LISTEN".to_string(), format!("0.0.0.0:{BROKER_PORT}")),
                ("MOM_ADVERTISE_ADDRESS".to_string(), format!("{}:{BROKER_PORT}", broker.ipv4)),
                ("MOM_NODE_ID".to_string(), name.clone()),
                ("MOM_REDIS_URL".to_string(), redis_url.to_string()),
                ("MOM_ZK_CONNECT".to_string(), zk_connect.to_string()),
                ("MOM_TRUSTED_PROXIES".to_string(), s.subnet.to_string()),
                // Refused, not 503, until ready: NGINX knows both generations' addresses in
                // advance and passes a refused connection on (`nginx.conf.tera`).
                ("MOM_LISTEN_WHEN_READY".to_string(), "true".to_string()),
            ]);
            if s.redis_min_replicas_ack > 0 {
                broker
                    .env
                    .insert("MOM_REDIS_MIN_REPLICAS_ACK".to_string(), s.redis_min_replicas_ack.to_string());
            }
            if s.nginx_grpc_port.is_some() {
                broker.env.insert("MOM_GRPC_LISTEN".to_string(), format!("0.0.0.0:{BROKER_GRPC_PORT}"));
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
            if replicated {
                broker.secret_env.push(SecretEnv {
                    name: "MOM_REDIS_SENTINEL_PASSWORD".to_string(),
                    from_env: crate::secrets::REDIS_PASSWORD.to_string(),
                    generated: true,
                });
            }
            broker.health = health(
                &["curl", "-fsS", "-o", "/dev/null", &format!("http://127.0.0.1:{BROKER_PORT}/readyz")],
                180,
            );
            broker.depends_on = stores.to_vec();
            broker.stop_grace_s = BROKER_STOP_GRACE_S;
            broker.cap_add = vec!["NET_ADMIN".to_string()];
            broker.labels.insert("mom.node".to_string(), node.to_string());
            services.push(broker);
        }
        services
    }

    /// NGINX in front of `brokers`, the only published ports.
    pub fn nginx(&self, brokers: Vec<String>) -> ServiceSpec {
        let s = self.s;
        let mut nginx = self.service(Role::Nginx, "nginx", 0);
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
            &["curl", "-fsS", "-o", "/dev/null", &format!("http://127.0.0.1:{NGINX_PORT}/.mom/nginx-health")],
            30,
        );
        nginx.config_files =
            vec![ConfigFile { target: NGINX_CONF_TARGET.to_string(), rendered: NGINX_CONF_PATH.to_string() }];
        if s.nginx_tls.is_some() {
            for (target, rendered) in
                [(NGINX_CERT_TARGET, NGINX_CERT_PATH), (NGINX_KEY_TARGET, NGINX_KEY_PATH)]
            {
                nginx
                    .config_files
                    .push(ConfigFile { target: target.to_string(), rendered: rendered.to_string() });
            }
        }
        nginx.depends_on = brokers;
        nginx
    }
}
