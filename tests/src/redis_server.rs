//! A private `redis-server` process on a free port, for tests that restart Redis, start a broker
//! while Redis is down, or count the commands a broker sends.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use crate::util::{free_port, kill_and_reap, spawn_logged, wait_child_ready, TempDir};

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
    /// `requirepass`, when the server demands one.
    password: Option<String>,
    /// More `--name value` arguments, e.g. cluster mode or `--replicaof`.
    extra: Vec<String>,
}

impl RedisServer {
    /// Reserves a port and a data dir without starting the server.
    pub fn new(persistence: Persistence) -> Self {
        let dir = TempDir::new("mom-redis");
        let log = dir.path().join("redis.log");
        Self { port: free_port(), persistence, child: None, log, dir, password: None, extra: Vec::new() }
    }

    /// A started server that refuses clients without `password` (`--requirepass`).
    pub async fn started_with_password(persistence: Persistence, password: &str) -> Self {
        let mut server = Self::new(persistence);
        server.password = Some(password.to_string());
        server.start().await;
        server
    }

    /// Adds server arguments (given before starting), e.g. `["--replicaof", "127.0.0.1 6379"]`.
    pub fn with_args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.extra.extend(args.into_iter().map(Into::into));
        self
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

    /// `redis://127.0.0.1:<port>`, without the password.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// [`RedisServer::url`] with the password, when there is one.
    pub fn authed_url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => self.url(),
        }
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
            .args(["--daemonize", "no", "--protected-mode", "no"])
            .args(&self.extra);
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        let url = self.authed_url();
        let what = format!("private Redis on port {}", self.port);
        let child = self.child.insert(spawn_logged(&mut cmd, &self.log));
        wait_child_ready(child, &what, &self.log, Duration::from_secs(10), || ping(&url)).await;
    }

    /// The server's data dir (and working directory).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The file the server logs to.
    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    /// Kills the server with SIGKILL (a crash: only what was fsynced survives).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child, "private Redis");
        }
    }

    /// Freezes the server with SIGSTOP: it keeps its port and accepts connections (the kernel
    /// does) but answers nothing, like a hung or partitioned Redis, until [`RedisServer::resume`].
    pub fn pause(&self) {
        crate::broker::signal(self.pid(), libc::SIGSTOP);
    }

    /// Lets a paused server run again (SIGCONT); it then works off what queued up meanwhile.
    pub fn resume(&self) {
        crate::broker::signal(self.pid(), libc::SIGCONT);
    }

    fn pid(&self) -> i32 {
        let child = self.child.as_ref().expect("private Redis is not running");
        i32::try_from(child.id()).unwrap_or_else(|e| panic!("pid out of range: {e}"))
    }

    /// Kills the server and starts it again on the same port and data dir.
    pub async fn restart(&mut self) {
        self.kill();
        self.start().await;
    }

    /// Runs `name arg` on the server; fails the test on any error.
    pub async fn command<T: redis::FromRedisValue>(&self, name: &str, arg: &str) -> T {
        let mut con = connect(&self.authed_url())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to private Redis: {e}"));
        redis::cmd(name)
            .arg(arg)
            .query_async(&mut con)
            .await
            .unwrap_or_else(|e| panic!("{name} {arg} failed: {e}"))
    }

    /// The text of `INFO <section>`.
    pub async fn info(&self, section: &str) -> String {
        self.command("INFO", section).await
    }

    /// Every key matching `pattern` (`KEYS`; fine on a private server).
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        self.command("KEYS", pattern).await
    }

    /// `total_commands_processed` from `INFO stats`.
    pub async fn total_commands_processed(&self) -> u64 {
        let info = self.info("stats").await;
        info_field(&info, "total_commands_processed")
            .unwrap_or_else(|| panic!("no total_commands_processed in INFO stats:\n{info}"))
    }
}

/// A connection to the Redis at `url` with short timeouts (test servers are local).
pub async fn connect(url: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(5));
    redis::Client::open(url)?.get_multiplexed_async_connection_with_config(&config).await
}

/// True when the Redis at `url` answers PING.
async fn ping(url: &str) -> bool {
    let Ok(mut con) = connect(url).await else {
        return false;
    };
    let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut con).await;
    pong.is_ok()
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
            let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?.parse().ok()?;
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
        assert_eq!(command_calls(stats), vec![("info".to_string(), 5), ("ping".to_string(), 2)]);
    }
}
