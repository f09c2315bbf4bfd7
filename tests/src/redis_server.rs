//! A private `redis-server` process on a free port, for tests that restart Redis, start a broker
//! while Redis is down, or count the commands a broker sends.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::util::{file_tail, free_port, kill_and_reap, spawn_logged, TempDir};

/// How the private Redis persists data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// No RDB, no AOF: for counting commands.
    None,
    /// `appendonly yes` + `appendfsync always`: every acknowledged write survives a crash.
    AppendFsyncAlways,
}

/// A `redis-server` child process with its own port and data dir; both stay the same across
/// [`RedisServer::restart`]. Killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    persistence: Persistence,
    child: Option<Child>,
    log: PathBuf,
    dir: TempDir,
}

impl RedisServer {
    /// Reserves a port and a data dir without starting the server.
    pub fn new(persistence: Persistence) -> Self {
        let dir = TempDir::new("mom-redis");
        let log = dir.path().join("redis.log");
        Self {
            port: free_port(),
            persistence,
            child: None,
            log,
            dir,
        }
    }

    /// A started server.
    pub async fn started(persistence: Persistence) -> Self {
        let mut server = Self::new(persistence);
        server.start().await;
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port and data dir and waits until it answers PING.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "private Redis is already running");
        let bin = std::env::var("MOM_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let appendonly = match self.persistence {
            Persistence::None => "no",
            Persistence::AppendFsyncAlways => "yes",
        };
        let mut cmd = Command::new(&bin);
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--save", "", "--appendonly", appendonly, "--appendfsync", "always"])
            .args(["--daemonize", "no", "--protected-mode", "no"]);
        let child = spawn_logged(&mut cmd, &self.log);
        self.child = Some(child);
        self.wait_ping(Duration::from_secs(10)).await;
    }

    /// Kills the server with SIGKILL (a crash: only what was fsynced survives).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child, "private Redis");
        }
    }

    /// Kills the server and starts it again on the same port and data dir.
    pub async fn restart(&mut self) {
        self.kill();
        self.start().await;
    }

    async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    async fn wait_ping(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(mut con) = self.connection().await {
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut con).await;
                if pong.is_ok() {
                    return;
                }
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                panic!(
                    "private Redis on port {} did not answer PING (exit: {exited:?}); log:\n{}",
                    self.port,
                    file_tail(&self.log, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The text of `INFO <section>`.
    pub async fn info(&self, section: &str) -> String {
        let mut con = self
            .connection()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to private Redis: {e}"));
        redis::cmd("INFO")
            .arg(section)
            .query_async(&mut con)
            .await
            .unwrap_or_else(|e| panic!("INFO {section} failed: {e}"))
    }

    /// Every key matching `pattern` (`KEYS`; fine on a private server).
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut con = self
            .connection()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to private Redis: {e}"));
        redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut con)
            .await
            .unwrap_or_else(|e| panic!("KEYS {pattern} failed: {e}"))
    }

    /// `total_commands_processed` from `INFO stats`.
    pub async fn total_commands_processed(&self) -> u64 {
        let info = self.info("stats").await;
        info_field(&info, "total_commands_processed")
            .unwrap_or_else(|| panic!("no total_commands_processed in INFO stats:\n{info}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Best effort while dropping.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The numeric value of `field:<n>` in an INFO reply.
pub fn info_field(info: &str, field: &str) -> Option<u64> {
    info.lines().find_map(|line| {
        let (key, value) = line.trim().split_once(':')?;
        (key == field).then(|| value.parse().ok()).flatten()
    })
}

/// `cmdstat_<name>` → `calls` from an `INFO commandstats` reply, e.g. to see which commands an idle
/// broker sends.
pub fn command_calls(commandstats: &str) -> Vec<(String, u64)> {
    let mut calls: Vec<(String, u64)> = commandstats
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .collect();
    calls.sort_by_key(|c| std::cmp::Reverse(c.1));
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_info() {
        let info = "# Stats\r\ntotal_connections_received:3\r\ntotal_commands_processed:42\r\n";
        assert_eq!(info_field(info, "total_commands_processed"), Some(42));
        assert_eq!(info_field(info, "missing"), None);
        let stats = "# Commandstats\r\ncmdstat_ping:calls=2,usec=3,usec_per_call=1.50\r\ncmdstat_info:calls=5,usec=9\r\n";
        assert_eq!(
            command_calls(stats),
            vec![("info".to_string(), 5), ("ping".to_string(), 2)]
        );
    }
}
