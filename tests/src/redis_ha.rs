//! Redis deployments beyond one server, from Debian's `redis-server` and `redis-cli`: a Redis
//! Cluster of primaries, and a primary with replicas watched by Sentinels. Every process is
//! killed when its owner is dropped.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use crate::redis_server::{connect, Persistence, RedisServer};
use crate::util::{free_port, spawn_logged, wait_child_ready, wait_until, TempDir};

/// How long a cluster or a Sentinel group may take to settle after its processes started.
const SETTLE: Duration = Duration::from_secs(20);

/// Runs one command on the server at `url`; `None` on any error (for polling).
pub async fn try_command<T: redis::FromRedisValue>(url: &str, args: &[&str]) -> Option<T> {
    let mut con = connect(url).await.ok()?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut con).await.ok()
}

/// A Redis Cluster of `n` primaries without replicas (`--cluster-enabled yes`, joined with
/// `redis-cli --cluster create`).
#[derive(Debug)]
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `n` (at least 3) nodes, creates the cluster and waits until every node reports
    /// `cluster_state:ok`.
    pub async fn started(n: usize) -> Self {
        Self::started_with_replicas(n, 0).await
    }

    /// Starts `primaries` (at least 3) shards with `replicas` replicas each (`--cluster-replicas`):
    /// a shard whose primary dies fails over to its replica after the node timeout (2 s).
    pub async fn started_with_replicas(primaries: usize, replicas: usize) -> Self {
        let n = primaries * (1 + replicas);
        let mut nodes = Vec::new();
        for _ in 0..n {
            // The cluster bus listens on a port of its own, by default the client port + 10000,
            // which nothing reserved: on a busy machine another process may hold it.
            let bus_port = free_port().to_string();
            let mut node = RedisServer::new(Persistence::None).with_args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
                "--cluster-port",
                bus_port.as_str(),
            ]);
            node.start().await;
            nodes.push(node);
        }
        let cli = std::env::var("MOM_TEST_REDIS_CLI").unwrap_or_else(|_| "redis-cli".into());
        let mut create = Command::new(&cli);
        create.args(["--cluster", "create"]);
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        create.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
        let out = create.output().unwrap_or_else(|e| panic!("cannot run {cli}: {e}"));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes };
        for node in &cluster.nodes {
            let url = node.url();
            wait_until("every cluster node to report cluster_state:ok", SETTLE, || {
                let url = url.clone();
                async move {
                    let info: String = try_command(&url, &["CLUSTER", "INFO"]).await?;
                    info.contains("cluster_state:ok").then_some(())
                }
            })
            .await;
        }
        cluster
    }

    /// The index in [`RedisCluster::nodes`] of the primary serving `key`'s slot, as the cluster
    /// sees it now (asked of the first node that answers), or `None` while no node answers or the
    /// slot's owner is not one of them.
    pub async fn primary_of(&self, key: &str) -> Option<usize> {
        for node in &self.nodes {
            let url = node.url();
            let Some(slot) = try_command::<u16>(&url, &["CLUSTER", "KEYSLOT", key]).await else { continue };
            // CLUSTER NODES: `id host:port@bus flags master-id ping pong epoch state slots...`.
            let Some(table) = try_command::<String>(&url, &["CLUSTER", "NODES"]).await else { continue };
            let owner = table.lines().find(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.len() > 8
                    && fields[2].contains("master")
                    && !fields[2].contains("fail")
                    && fields[8..].iter().any(|range| {
                        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                        matches!((lo.parse::<u16>(), hi.parse::<u16>()), (Ok(lo), Ok(hi)) if lo <= slot && slot <= hi)
                    })
            })?;
            let port: u16 = owner.split_whitespace().nth(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
            return self.nodes.iter().position(|n| n.port() == port);
        }
        None
    }

    /// `redis-cluster://127.0.0.1:p1,127.0.0.1:p2,...`, for `MOM_REDIS_URL`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
        format!("redis-cluster://{}", hosts.join(","))
    }
}

/// A `redis-server --sentinel` process with its own config file (Sentinel rewrites it).
#[derive(Debug)]
pub struct SentinelServer {
    port: u16,
    child: Option<Child>,
    log: PathBuf,
    _dir: TempDir,
}

impl SentinelServer {
    /// Starts a Sentinel monitoring `service` at `127.0.0.1:primary_port` with quorum 2; it
    /// declares the primary down after 1 s without an answer.
    pub async fn started(service: &str, primary_port: u16) -> Self {
        let dir = TempDir::new("mom-sentinel");
        let port = free_port();
        let config = dir.path().join("sentinel.conf");
        let text = format!(
            "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {dir}\n\
             sentinel monitor {service} 127.0.0.1 {primary_port} 2\n\
             sentinel down-after-milliseconds {service} 1000\n\
             sentinel failover-timeout {service} 10000\n\
             sentinel parallel-syncs {service} 2\n",
            dir = dir.path().display()
        );
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let log = dir.path().join("sentinel.log");
        let bin = std::env::var("MOM_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut cmd = Command::new(bin);
        cmd.arg(&config).arg("--sentinel");
        let mut child = spawn_logged(&mut cmd, &log);
        let url = format!("redis://127.0.0.1:{port}");
        let what = format!("Sentinel on port {port}");
        wait_child_ready(&mut child, &what, &log, Duration::from_secs(10), || {
            let url = url.clone();
            async move { try_command::<String>(&url, &["PING"]).await.is_some() }
        })
        .await;
        Self { port, child: Some(child), log, _dir: dir }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }
}

impl Drop for SentinelServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Best effort while dropping.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A primary, its replicas and three Sentinels watching it under the name [`Self::SERVICE`]. The
/// replicas replicate through a [`ReplicationLink`], which the test can cut.
#[derive(Debug)]
pub struct SentinelGroup {
    pub link: ReplicationLink,
    pub primary: RedisServer,
    pub replicas: Vec<RedisServer>,
    pub sentinels: Vec<SentinelServer>,
}

impl SentinelGroup {
    pub const SERVICE: &'static str = "mymaster";

    /// Starts the primary, `replicas` replicas and 3 Sentinels, and waits until every replica is
    /// in sync and every Sentinel knows every replica and the other Sentinels.
    pub async fn started(replicas: usize) -> Self {
        let primary = RedisServer::started(Persistence::None).await;
        let link = ReplicationLink::start(primary.port()).await;
        let mut group = Self { link, replicas: Vec::new(), sentinels: Vec::new(), primary };
        for _ in 0..replicas {
            let mut replica = RedisServer::new(Persistence::None)
                .with_args(["--replicaof".to_string(), format!("127.0.0.1 {}", group.link.port())]);
            replica.start().await;
            group.replicas.push(replica);
        }
        let primary_url = group.primary.url();
        wait_until("every replica to be online", SETTLE, || {
            let url = primary_url.clone();
            async move {
                let info: String = try_command(&url, &["INFO", "replication"]).await?;
                let online =
                    info.lines().filter(|l| l.starts_with("slave") && l.contains("state=online")).count();
                (online == replicas).then_some(())
            }
        })
        .await;
        for _ in 0..3 {
            let sentinel = SentinelServer::started(Self::SERVICE, group.primary.port()).await;
            group.sentinels.push(sentinel);
        }
        for sentinel in &group.sentinels {
            let url = sentinel.url();
            wait_until("every Sentinel to know the replicas and the other Sentinels", SETTLE, || {
                let url = url.clone();
                async move {
                    let r: Vec<redis::Value> =
                        try_command(&url, &["SENTINEL", "REPLICAS", Self::SERVICE]).await?;
                    let s: Vec<redis::Value> =
                        try_command(&url, &["SENTINEL", "SENTINELS", Self::SERVICE]).await?;
                    (r.len() == replicas && s.len() == 2).then_some(())
                }
            })
            .await;
        }
        group
    }

    /// `redis-sentinel://127.0.0.1:s1,127.0.0.1:s2,127.0.0.1:s3/mymaster`, for `MOM_REDIS_URL`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|s| format!("127.0.0.1:{}", s.port())).collect();
        format!("redis-sentinel://{}/{}", hosts.join(","), Self::SERVICE)
    }

    /// The primary's port according to the first Sentinel that answers.
    pub async fn primary_port_by_sentinels(&self) -> Option<u16> {
        for s in &self.sentinels {
            let addr: Option<(String, String)> =
                try_command(&s.url(), &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::SERVICE]).await;
            if let Some((_, port)) = addr {
                return port.parse().ok();
            }
        }
        None
    }
}

/// A TCP forwarder standing in for the network between a primary and its replicas (a test double
/// of the network only; both ends are real servers). While [`ReplicationLink::cut`], bytes from
/// the primary are read and dropped, so the replicas fall behind while the primary keeps
/// acknowledging writes: the window that asynchronous replication loses in a failover.
#[derive(Debug)]
pub struct ReplicationLink {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl ReplicationLink {
    /// Listens on a free port and forwards every connection to `127.0.0.1:target`.
    pub async fn start(target: u16) -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind the replication link: {e}"));
        let port =
            listener.local_addr().unwrap_or_else(|e| panic!("cannot read the link's address: {e}")).port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let (mut down_r, mut down_w) = down.into_split();
                let (mut up_r, mut up_w) = up.into_split();
                let flag = flag.clone();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut down_r, &mut up_w).await;
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match up_r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if flag.load(Ordering::SeqCst) {
                                    continue;
                                }
                                if down_w.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = down_w.shutdown().await;
                });
            }
        });
        Self { port, cut, task }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// From now on, the primary's bytes no longer reach the replicas.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for ReplicationLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}
