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
    port: u16,
    child: Option<Child>,
    config: PathBuf,
    log: PathBuf,
    dir: TempDir,
}

impl ZooKeeperServer {
    /// Reserves a port and writes the config without starting the server.
    pub fn new() -> Self {
        let dir = TempDir::new("mom-zk");
        let port = free_port();
        let config = dir.path().join("zoo.cfg");
        let data = dir.path().join("data");
        let text = format!(
            "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\nmaxClientCnxns=0\n4lw.commands.whitelist=ruok,srvr\n",
            data.display()
        );
        std::fs::write(&config, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        Self {
            port,
            child: None,
            config,
            log: dir.path().join("zookeeper.log"),
            dir,
        }
    }

    /// A started server.
    pub async fn started() -> Self {
        let mut server = Self::new();
        server.start().await;
        server
    }

    /// `127.0.0.1:<port>`, for `--zk`.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) and waits until it answers `ruok`.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "private ZooKeeper is already running");
        let script = std::env::var("MOM_TEST_ZK_SERVER")
            .unwrap_or_else(|_| "/usr/share/zookeeper/bin/zkServer.sh".into());
        let mut cmd = Command::new(&script);
        cmd.arg("start-foreground")
            .arg(&self.config)
            .env("ZOOCFGDIR", self.dir.path())
            .env("ZOO_LOG_DIR", self.dir.path());
        let child = self.child.insert(spawn_logged(&mut cmd, &self.log));
        let what = format!("private ZooKeeper on port {}", self.port);
        let port = self.port;
        wait_child_ready(child, &what, &self.log, START_TIMEOUT, || ruok(port)).await;
    }

    /// Kills the server with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child, "private ZooKeeper");
        }
    }
}

/// True when the ZooKeeper on `port` answers the `ruok` four-letter word with `imok` within a second.
async fn ruok(port: u16) -> bool {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"ruok").await.ok()?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.ok()?;
        Some(reply == "imok")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), exchange).await,
        Ok(Some(true))
    )
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
