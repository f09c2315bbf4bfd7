//! A private ZooKeeper node on a free port, for tests that take ZooKeeper away from a broker.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::{free_port, kill_and_reap, spawn_logged, wait_child_ready, TempDir};

/// How long a JVM may take to start ZooKeeper and answer `ruok`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A standalone ZooKeeper (`zkServer.sh start-foreground`) with its own port and data dir; both stay
/// the same across restarts, so sessions survive a short outage. Killed when dropped.
#[derive(Debug)]
pub struct ZooKeeperServer {
    /// The address the client port listens on (`clientPortAddress`).
    host: String,
    port: u16,
    child: Option<Child>,
    config: PathBuf,
    log: PathBuf,
    dir: TempDir,
}

impl ZooKeeperServer {
    /// Reserves a port and writes the config without starting the server.
    pub fn new() -> Self {
        Self::on("127.0.0.1")
    }

    /// Like [`ZooKeeperServer::new`], with the client port on `host` (an address of this machine,
    /// e.g. one that brokers in network namespaces reach) instead of 127.0.0.1.
    pub fn on(host: &str) -> Self {
        Self::configured(host, free_port(), "", None)
    }

    /// A server on `host:port` whose `zoo.cfg` has `extra` lines too; with `myid`, a member of an
    /// ensemble (the `server.N` lines are in `extra`).
    fn configured(host: &str, port: u16, extra: &str, myid: Option<u32>) -> Self {
        let dir = TempDir::new("mom-zk");
        let config = dir.path().join("zoo.cfg");
        let data = dir.path().join("data");
        let text = format!(
            "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress={host}\n\
             admin.enableServer=false\nmaxClientCnxns=0\n4lw.commands.whitelist=ruok,srvr,cons\n{extra}",
            data.display()
        );
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        if let Some(id) = myid {
            std::fs::create_dir_all(&data)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", data.display()));
            std::fs::write(data.join("myid"), id.to_string())
                .unwrap_or_else(|e| panic!("cannot write myid: {e}"));
        }
        Self { host: host.to_string(), port, child: None, config, log: dir.path().join("zookeeper.log"), dir }
    }

    /// A started server.
    pub async fn started() -> Self {
        let mut server = Self::new();
        server.start().await;
        server
    }

    /// `<host>:<port>` (host 127.0.0.1 unless made [`ZooKeeperServer::on`] another), for `--zk`.
    pub fn connect_string(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Starts the server (again) and waits until it answers `ruok`.
    pub async fn start(&mut self) {
        self.spawn();
        let what = format!("private ZooKeeper on port {}", self.port);
        let (host, port) = (self.host.clone(), self.port);
        let child = self.child.as_mut().expect("spawned above");
        wait_child_ready(child, &what, &self.log, START_TIMEOUT, || ruok(&host, port)).await;
    }

    /// Starts the process without waiting for it.
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "private ZooKeeper is already running");
        let script = std::env::var("MOM_TEST_ZK_SERVER")
            .unwrap_or_else(|_| "/usr/share/zookeeper/bin/zkServer.sh".into());
        let mut cmd = Command::new(&script);
        // An ensemble member that finds no peer yet waits twice as long before each new round of
        // its leader election, up to 60 s by default: members whose JVMs start slowly on a loaded
        // machine then took more than START_TIMEOUT to elect (seen once in CI, 2026-12-07).
        // Capped at 1 s, a late member is heard within a second of starting.
        cmd.arg("start-foreground")
            .arg(&self.config)
            .env("ZOOCFGDIR", self.dir.path())
            .env("ZOO_LOG_DIR", self.dir.path())
            .env("SERVER_JVMFLAGS", "-Dzookeeper.fastleader.maxNotificationInterval=1000");
        self.child = Some(spawn_logged(&mut cmd, &self.log));
    }

    /// True while the server process runs (it was started and not killed since).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `leader` or `follower` while the server is part of a serving ensemble (`standalone` alone);
    /// `None` while it serves nothing.
    pub async fn mode(&self) -> Option<String> {
        let reply = four_letters(&self.host, self.port, "srvr").await?;
        reply.lines().find_map(|l| l.strip_prefix("Mode: ")).map(|m| m.trim().to_string())
    }

    /// How many client sessions are connected to this server (`cons`), not counting the
    /// connection that asks.
    pub async fn client_connections(&self) -> Option<usize> {
        let reply = four_letters(&self.host, self.port, "cons").await?;
        let sessions = reply.lines().filter(|l| l.contains("sid=0x")).count();
        Some(sessions)
    }

    /// Kills the server with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child, "private ZooKeeper");
        }
    }
}

/// The reply to a four-letter word (`ruok`, `srvr`, `cons`), or `None` within a second.
async fn four_letters(host: &str, port: u16, word: &str) -> Option<String> {
    let exchange = async {
        let mut stream = TcpStream::connect((host, port)).await.ok()?;
        stream.write_all(word.as_bytes()).await.ok()?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.ok()?;
        Some(reply)
    };
    tokio::time::timeout(Duration::from_secs(1), exchange).await.ok().flatten()
}

/// True when the ZooKeeper on `port` answers the `ruok` four-letter word with `imok` within a second.
async fn ruok(host: &str, port: u16) -> bool {
    four_letters(host, port, "ruok").await.as_deref() == Some("imok")
}

impl Default for ZooKeeperServer {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ZooKeeperServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Best effort while dropping.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A ZooKeeper ensemble of `n` servers on free ports (`server.N` lines, one `myid` each).
#[derive(Debug)]
pub struct ZooKeeperEnsemble {
    pub servers: Vec<ZooKeeperServer>,
}

impl ZooKeeperEnsemble {
    /// Starts every server and waits until all serve, one as leader.
    pub async fn started(n: u32) -> Self {
        Self::started_on(n, "127.0.0.1").await
    }

    /// Like [`ZooKeeperEnsemble::started`], with the client ports on `host` (see
    /// [`ZooKeeperServer::on`]); the servers talk to each other over 127.0.0.1.
    pub async fn started_on(n: u32, host: &str) -> Self {
        let ports: Vec<(u16, u16, u16)> = (0..n).map(|_| (free_port(), free_port(), free_port())).collect();
        let members: String = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer, election))| format!("server.{}=127.0.0.1:{peer}:{election}\n", i + 1))
            .collect();
        let extra = format!("initLimit=10\nsyncLimit=5\n{members}");
        let mut servers: Vec<ZooKeeperServer> = ports
            .iter()
            .enumerate()
            .map(|(i, (client, _, _))| ZooKeeperServer::configured(host, *client, &extra, Some(i as u32 + 1)))
            .collect();
        // Start them all before waiting for any: a member alone cannot elect a leader.
        for server in servers.iter_mut() {
            server.spawn();
        }
        let ensemble = Self { servers };
        ensemble.wait_serving(START_TIMEOUT).await;
        ensemble
    }

    /// Kills every server (SIGKILL): the whole ensemble is down.
    pub fn kill_all(&mut self) {
        for server in &mut self.servers {
            server.kill();
        }
    }

    /// Starts every server that is not running, all at once, and waits until each serves.
    pub async fn start_all(&mut self) {
        for server in self.servers.iter_mut().filter(|s| !s.is_running()) {
            server.spawn();
        }
        self.wait_serving(START_TIMEOUT).await;
    }

    /// The index of the server that leads the ensemble now, if one does.
    pub async fn leader(&self) -> Option<usize> {
        for (i, server) in self.servers.iter().enumerate() {
            if server.mode().await.as_deref() == Some("leader") {
                return Some(i);
            }
        }
        None
    }

    /// Waits until every running server serves as leader or follower.
    pub async fn wait_serving(&self, timeout: Duration) {
        for server in self.servers.iter().filter(|s| s.child.is_some()) {
            crate::util::wait_until_every(
                &format!("ZooKeeper on port {} to join the ensemble", server.port),
                timeout,
                Duration::from_millis(200),
                || async { server.mode().await.filter(|m| m == "leader" || m == "follower") },
            )
            .await;
        }
    }

    /// `host:p1,host:p2,...`, for `--zk`.
    pub fn connect_string(&self) -> String {
        let hosts: Vec<String> = self.servers.iter().map(|s| s.connect_string()).collect();
        hosts.join(",")
    }
}
