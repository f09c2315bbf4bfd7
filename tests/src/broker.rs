//! Broker processes: where the binary is, how to start one in an isolated cluster namespace,
//! readiness, signals, exit, logs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::client::Client;
use crate::util::{file_tail, free_port, random_suffix, spawn_logged, wait_until, TempDir};

/// How long a broker may take to answer `/readyz` with 200 after it was started.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Drain timeout given to brokers unless a test chooses another.
pub const DEFAULT_DRAIN_TIMEOUT_S: u64 = 5;

/// The first admin of every test cluster (`MOM_ADMIN_USER`, `MOM_ADMIN_PASSWORD`).
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "mom-test-admin-password";

/// The password [`Broker::add_user`] gives a user: long enough for the broker's 12-character minimum.
pub fn user_password(username: &str) -> String {
    format!("{username}-test-password")
}

/// Addresses of the Redis and ZooKeeper that all tests share (`MOM_TEST_REDIS_URL`, `MOM_TEST_ZK`).
#[derive(Debug, Clone)]
pub struct Services {
    pub redis_url: String,
    pub zk: String,
}

impl Services {
    pub fn shared() -> Self {
        Self {
            redis_url: std::env::var("MOM_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string()),
            zk: std::env::var("MOM_TEST_ZK").unwrap_or_else(|_| "127.0.0.1:2181".to_string()),
        }
    }
}

/// A cluster namespace: brokers started from one `Cluster` share a ZooKeeper root and a Redis key
/// prefix, so they form one cluster; two `Cluster`s never see each other's queues.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub redis_url: String,
    pub zk: String,
    pub zk_root: String,
    pub redis_prefix: String,
    /// The admin's bearer token once a broker of this cluster issued one; valid on every node.
    admin_token: Arc<Mutex<Option<String>>>,
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

impl Cluster {
    /// A fresh namespace on the shared Redis and ZooKeeper.
    pub fn new() -> Self {
        Self::on(Services::shared())
    }

    /// A fresh namespace on the shared ZooKeeper and the Redis at `redis_url`.
    pub fn with_redis(redis_url: impl Into<String>) -> Self {
        Self::on(Services { redis_url: redis_url.into(), ..Services::shared() })
    }

    /// A fresh namespace on the shared Redis and the ZooKeeper at `zk` (`host:port`).
    pub fn with_zk(zk: impl Into<String>) -> Self {
        Self::on(Services { zk: zk.into(), ..Services::shared() })
    }

    /// A fresh namespace on the Redis and ZooKeeper of `services`, e.g. private servers of both.
    pub fn with_services(services: Services) -> Self {
        Self::on(services)
    }

    fn on(services: Services) -> Self {
        let id = random_suffix(12);
        Self {
            redis_url: services.redis_url,
            zk: services.zk,
            zk_root: format!("/mom-test-{id}"),
            redis_prefix: format!("t{id}"),
            admin_token: Arc::default(),
        }
    }

    /// A builder for a broker of this cluster.
    pub fn broker(&self) -> BrokerBuilder {
        BrokerBuilder {
            cluster: self.clone(),
            node_id: format!("node-{}", random_suffix(6)),
            drain_timeout_s: DEFAULT_DRAIN_TIMEOUT_S,
            env: Vec::new(),
            via_env: false,
            admin_password: Some(ADMIN_PASSWORD.to_string()),
            listen_host: "127.0.0.1".to_string(),
            wrapper: Vec::new(),
        }
    }

    /// Starts a broker of this cluster with default settings and waits until it is ready.
    pub async fn start_broker(&self) -> Broker {
        self.broker().start().await
    }
}

/// Options of one broker process.
#[derive(Debug, Clone)]
pub struct BrokerBuilder {
    cluster: Cluster,
    node_id: String,
    drain_timeout_s: u64,
    env: Vec<(String, String)>,
    via_env: bool,
    /// `MOM_ADMIN_PASSWORD`; `None` leaves the variable unset.
    admin_password: Option<String>,
    /// The address `--listen` binds (with a free port).
    listen_host: String,
    /// A command the broker is run under, e.g. `ip netns exec NAME`; empty: run directly.
    wrapper: Vec<String>,
}

impl BrokerBuilder {
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = id.into();
        self
    }

    pub fn drain_timeout_s(mut self, secs: u64) -> Self {
        self.drain_timeout_s = secs;
        self
    }

    /// Passes every setting as its environment variable (`MOM_LISTEN`, ...) instead of its flag.
    pub fn via_env(mut self) -> Self {
        self.via_env = true;
        self
    }

    /// An extra environment variable for the broker process.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Starts the broker without `MOM_ADMIN_PASSWORD` in its environment (it is set by default).
    pub fn no_admin_password(mut self) -> Self {
        self.admin_password = None;
        self
    }

    /// Listens on `host` (an address of the machine, or of the network namespace the broker
    /// runs in) instead of 127.0.0.1.
    pub fn listen_host(mut self, host: impl Into<String>) -> Self {
        self.listen_host = host.into();
        self
    }

    /// Runs the broker under `command`, which must exec the broker in its own process (as
    /// `ip netns exec NAME` does), so that signals reach the broker.
    pub fn wrapped_in<S: Into<String>>(mut self, command: impl IntoIterator<Item = S>) -> Self {
        self.wrapper = command.into_iter().map(Into::into).collect();
        self
    }

    /// Starts the process without waiting for readiness.
    pub fn spawn(self) -> Broker {
        let dir = TempDir::new("mom-broker");
        let log = dir.path().join("broker.log");
        let port = free_port();
        let listen = format!("{}:{port}", self.listen_host);
        let bin = broker_bin();
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(bin);
                cmd
            }
            None => Command::new(bin),
        };
        // Settings of the developer's shell must not leak into the brokers under test.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("MOM_") {
                cmd.env_remove(key);
            }
        }
        let drain = self.drain_timeout_s.to_string();
        let settings = [
            ("--listen", "MOM_LISTEN", listen.as_str()),
            ("--redis-url", "MOM_REDIS_URL", &self.cluster.redis_url),
            ("--zk", "MOM_ZK_CONNECT", &self.cluster.zk),
            ("--zk-root", "MOM_ZK_ROOT", &self.cluster.zk_root),
            ("--redis-prefix", "MOM_REDIS_PREFIX", &self.cluster.redis_prefix),
            ("--node-id", "MOM_NODE_ID", &self.node_id),
            ("--drain-timeout", "MOM_DRAIN_TIMEOUT_S", &drain),
        ];
        for (flag, var, value) in settings {
            if self.via_env {
                cmd.env(var, value);
            } else {
                cmd.args([flag, value]);
            }
        }
        cmd.env("MOM_ADMIN_USER", ADMIN_USER);
        if let Some(password) = &self.admin_password {
            cmd.env("MOM_ADMIN_PASSWORD", password);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let child = spawn_logged(&mut cmd, &log);
        Broker {
            child,
            exit: None,
            listen,
            node_id: self.node_id,
            log,
            admin_token: self.cluster.admin_token,
            _dir: dir,
        }
    }

    /// Starts the process and waits until `/readyz` answers 200.
    pub async fn start(self) -> Broker {
        let mut broker = self.spawn();
        broker.wait_ready(READY_TIMEOUT).await;
        broker
    }
}

/// A running broker process, killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Broker {
    child: Child,
    exit: Option<ExitStatus>,
    listen: String,
    node_id: String,
    log: PathBuf,
    admin_token: Arc<Mutex<Option<String>>>,
    _dir: TempDir,
}

impl Broker {
    /// `http://<listen address>`, e.g. `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// The `--listen` address, `127.0.0.1:<port>` unless [`BrokerBuilder::listen_host`] said otherwise.
    pub fn listen(&self) -> &str {
        &self.listen
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// A client of this broker acting as the cluster's admin (once [`Broker::wait_ready`] logged in,
    /// on a broker that has authentication).
    pub fn client(&self) -> Client {
        let client = self.anonymous_client();
        match self.token() {
            Some(token) => client.with_bearer(token),
            None => client,
        }
    }

    /// A client of this broker without credentials.
    pub fn anonymous_client(&self) -> Client {
        Client::new(self.url())
    }

    /// A client of this broker sending `Authorization: Bearer <token>`.
    pub fn client_with_token(&self, token: &str) -> Client {
        self.anonymous_client().with_bearer(token)
    }

    /// `POST /v1/auth/token` with these credentials, from an anonymous client.
    pub async fn login_resp(&self, username: &str, password: &str) -> crate::client::Resp {
        self.anonymous_client()
            .post("/v1/auth/token", serde_json::json!({ "username": username, "password": password }))
            .await
    }

    /// Logs in (expecting 200) and returns the access token.
    pub async fn token_for(&self, username: &str, password: &str) -> String {
        let resp = self.login_resp(username, password).await.expect_status(200);
        resp.json["access_token"].as_str().unwrap_or_else(|| panic!("no access_token in {resp}")).to_string()
    }

    /// A client logged in as `username` (expecting the login to succeed).
    pub async fn client_as(&self, username: &str, password: &str) -> Client {
        let token = self.token_for(username, password).await;
        self.client_with_token(&token)
    }

    /// Creates `username` with `role` (`"user"` or `"admin"`) and the password
    /// [`user_password`]`(username)` through the admin (expecting 201), and returns a client
    /// logged in as the new user.
    pub async fn add_user(&self, username: &str, role: &str) -> Client {
        let password = user_password(username);
        self.client()
            .post(
                "/v1/users",
                serde_json::json!({ "username": username, "password": password, "role": role }),
            )
            .await
            .expect_status(201);
        self.client_as(username, &password).await
    }

    fn token(&self) -> Option<String> {
        self.admin_token.lock().unwrap_or_else(|e| panic!("admin token lock poisoned: {e}")).clone()
    }

    /// Logs in as the cluster's admin unless a broker of the cluster already did. A broker without
    /// `POST /v1/auth/token` (404) needs no token.
    async fn login(&self) {
        if self.token().is_some() {
            return;
        }
        let resp = self
            .anonymous_client()
            .post("/v1/auth/token", serde_json::json!({ "username": ADMIN_USER, "password": ADMIN_PASSWORD }))
            .await;
        if resp.status == 404 {
            return;
        }
        let resp = resp.expect_status(200);
        let token = resp.json["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {resp}"))
            .to_string();
        *self.admin_token.lock().unwrap_or_else(|e| panic!("admin token lock poisoned: {e}")) = Some(token);
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the broker's stdout and stderr.
    pub fn log_tail(&self, lines: usize) -> String {
        file_tail(&self.log, lines)
    }

    /// The status of `GET path`, or `None` when the broker cannot be reached.
    pub async fn probe(&self, path: &str) -> Option<u16> {
        let client = self.client().with_timeout(Duration::from_secs(2));
        client.try_request(reqwest::Method::GET, path, crate::client::Body::None).await.ok().map(|r| r.status)
    }

    /// The value of the unlabelled series `name` on `/metrics`, or `None` when the broker cannot
    /// be reached or does not report it.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let client = self.anonymous_client().with_timeout(Duration::from_secs(2));
        let resp =
            client.try_request(reqwest::Method::GET, "/metrics", crate::client::Body::None).await.ok()?;
        if resp.status != 200 {
            return None;
        }
        resp.text.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
    }

    /// `GET /v1/cluster` (expecting 200), with the ids of the nodes listed, sorted.
    pub async fn cluster_view(&self) -> (serde_json::Value, Vec<String>) {
        let resp = self.client().get("/v1/cluster").await.expect_status(200);
        let mut ids: Vec<String> = resp.json["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["id"].as_str().map(str::to_string))
            .collect();
        ids.sort();
        (resp.json, ids)
    }

    /// Waits until `/readyz` answers 200, then logs in as admin (see [`Broker::client`]); fails the
    /// test with the log tail otherwise, or at once if the process exits.
    pub async fn wait_ready(&mut self, timeout: Duration) {
        self.wait_probe("/readyz", 200, timeout).await;
        self.login().await;
    }

    /// Waits until `GET path` answers `status`; fails the test with the log tail otherwise, or at
    /// once if the process exits.
    pub async fn wait_probe(&mut self, path: &str, status: u16, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(exit) = self.try_exit() {
                panic!(
                    "broker {} exited ({exit}) while waiting for {path} to answer {status}; log {}:\n{}",
                    self.node_id,
                    self.log.display(),
                    self.log_tail(40)
                );
            }
            last = self.probe(path).await.or(last);
            if last == Some(status) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "broker {} at {}: {path} did not answer {status} within {timeout:?} (last: {last:?}); log {}:\n{}",
                    self.node_id,
                    self.listen,
                    self.log.display(),
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap_or_else(|e| panic!("pid out of range: {e}"))
    }

    /// Sends SIGTERM (graceful drain).
    pub fn sigterm(&self) {
        signal(self.pid(), libc::SIGTERM);
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn sigkill(&mut self) {
        if self.try_exit().is_some() {
            return;
        }
        if let Err(e) = self.child.kill() {
            panic!("cannot SIGKILL broker {}: {e}", self.node_id);
        }
        match self.child.wait() {
            Ok(status) => self.exit = Some(status),
            Err(e) => panic!("cannot reap broker {}: {e}", self.node_id),
        }
    }

    /// The exit status if the process has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit =
                self.child.try_wait().unwrap_or_else(|e| panic!("cannot poll broker {}: {e}", self.node_id));
        }
        self.exit
    }

    /// Waits for the process to exit; fails the test if it is still running after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let what = format!("broker {} to exit", self.node_id);
        wait_until(&what, timeout, || std::future::ready(self.try_exit())).await
    }

    /// [`Broker::wait_exit`], failing the test unless the process exited with status 0 (a drain
    /// that finished, or was cut short by its timeout, still exits cleanly).
    pub async fn wait_clean_exit(&mut self, timeout: Duration) {
        let status = self.wait_exit(timeout).await;
        assert!(status.success(), "broker {} exited with {status}:\n{}", self.node_id, self.log_tail(30));
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- log of broker {} ({}), last lines:\n{}\n---",
                self.node_id,
                self.log.display(),
                self.log_tail(60)
            );
        }
        if self.exit.is_none() {
            // Best effort: the process may already be gone.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends `sig` to process `pid`.
pub fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc != 0 {
        panic!("kill({pid}, {sig}) failed: {}", std::io::Error::last_os_error());
    }
}

/// The `mom-broker` executable: `MOM_BROKER_BIN`, else `mom-broker` in the directory above the test
/// executable's (`target/debug/deps/..`).
pub fn broker_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = match std::env::var_os("MOM_BROKER_BIN") {
            Some(path) => PathBuf::from(path),
            None => {
                let exe = std::env::current_exe()
                    .unwrap_or_else(|e| panic!("cannot find the test executable: {e}"));
                let profile_dir = exe
                    .parent()
                    .and_then(Path::parent)
                    .unwrap_or_else(|| panic!("test executable {} has no grandparent dir", exe.display()));
                profile_dir.join("mom-broker")
            }
        };
        assert!(
            bin.is_file(),
            "broker binary {} not found: run `cargo build -p mom-broker` first (same CARGO_TARGET_DIR), \
             or set MOM_BROKER_BIN",
            bin.display()
        );
        warn_if_stale(&bin);
        bin
    })
}

/// Warns (in the captured test output) when a broker source file is newer than the binary, the
/// usual cause of puzzling failures after `cargo test` without `cargo build -p mom-broker`.
fn warn_if_stale(bin: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../broker");
    let modified = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    let Some(built) = modified(bin) else { return };
    let newest = newest_mtime(&src).unwrap_or(SystemTime::UNIX_EPOCH);
    if newest > built {
        eprintln!(
            "WARNING: {} is older than the sources in {}; run `cargo build -p mom-broker`",
            bin.display(),
            src.display()
        );
    }
}

fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            newest_mtime(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(time);
    }
    newest
}
