//! Command-line flags, each with an environment variable of the same meaning.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

/// `MOM_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "mom-broker",
    version,
    about = "mom broker: queues and topics over HTTP, on Redis and ZooKeeper"
)]
pub struct Config {
    /// Address to serve HTTP on.
    #[arg(long, env = "MOM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Address to serve the gRPC API on (`proto/mom/v1/broker.proto`); unset: no gRPC.
    #[arg(long, env = "MOM_GRPC_LISTEN")]
    pub grpc_listen: Option<SocketAddr>,

    /// Address other nodes and operators reach this node at (default: the listen address).
    #[arg(long, env = "MOM_ADVERTISE_ADDRESS")]
    pub advertise: Option<String>,

    /// Redis URL, e.g. redis://127.0.0.1:6379. It may carry a password
    /// (`redis://:PASSWORD@host:6379`), so `--help` never shows its value and it is never logged.
    #[arg(long, env = "MOM_REDIS_URL", default_value = "redis://127.0.0.1:6379", hide_env_values = true)]
    pub redis_url: String,

    /// ZooKeeper connect string: a comma-separated list of host:port.
    #[arg(long = "zk", env = "MOM_ZK_CONNECT", default_value = "127.0.0.1:2181")]
    pub zk_connect: String,

    /// ZooKeeper path under which this cluster keeps its metadata.
    #[arg(long, env = "MOM_ZK_ROOT", default_value = "/mom")]
    pub zk_root: String,

    /// Prefix of every Redis key of this cluster.
    #[arg(long, env = "MOM_REDIS_PREFIX", default_value = "mom")]
    pub redis_prefix: String,

    /// This node's id in the cluster (default: the host name).
    #[arg(long, env = "MOM_NODE_ID")]
    pub node_id: Option<String>,

    /// Seconds a SIGTERM drain may take before the process exits anyway.
    #[arg(long = "drain-timeout", env = "MOM_DRAIN_TIMEOUT_S", default_value_t = 30)]
    pub drain_timeout_s: u64,

    /// ZooKeeper session timeout in ms: how long a dead node stays listed.
    #[arg(long, env = "MOM_ZK_SESSION_TIMEOUT_MS", default_value_t = 6000)]
    pub zk_session_timeout_ms: u64,

    /// Bound on every Redis call in ms: past it the request answers 503 instead of hanging.
    #[arg(long, env = "MOM_REDIS_TIMEOUT_MS", default_value_t = 2000)]
    pub redis_timeout_ms: u64,

    /// Replicas that must confirm a send or publish (Redis `WAIT`) before it is acknowledged; 0
    /// acknowledges once the primary has it (asynchronous replication: a failover can lose the
    /// last writes). When fewer confirm in time the send answers 503: it may have been stored.
    #[arg(long, env = "MOM_REDIS_MIN_REPLICAS_ACK", default_value_t = 0)]
    pub redis_min_replicas_ack: u32,

    /// How long a send waits for those confirmations, in ms (kept below `MOM_REDIS_TIMEOUT_MS`).
    #[arg(long, env = "MOM_REDIS_REPLICA_ACK_TIMEOUT_MS", default_value_t = 1000)]
    pub redis_replica_ack_timeout_ms: u64,

    /// How long a `dedup_id` names its message, in seconds: a send with the same `dedup_id` within
    /// this window answers 200 with the first id instead of storing it again.
    #[arg(long, env = "MOM_DEDUP_WINDOW_S", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub dedup_window_s: u64,

    /// Name of the first admin, created when no admin exists.
    #[arg(long, env = "MOM_ADMIN_USER", default_value = "admin")]
    pub admin_user: String,

    /// Password of the first admin: `MOM_ADMIN_PASSWORD`, from the environment only (a flag
    /// would show in the process list); there is no default.
    #[arg(skip = std::env::var("MOM_ADMIN_PASSWORD").ok())]
    pub admin_password: Option<String>,

    /// Key that signs tokens: `MOM_JWT_SECRET`, environment only (default: one generated once
    /// and shared through ZooKeeper).
    #[arg(skip = std::env::var("MOM_JWT_SECRET").ok())]
    pub jwt_secret: Option<String>,

    /// Password Redis requires (`requirepass`): `MOM_REDIS_PASSWORD`, environment only; it
    /// overrides a password in `MOM_REDIS_URL`. momctl generates one per cluster.
    #[arg(skip = std::env::var("MOM_REDIS_PASSWORD").ok().filter(|p| !p.is_empty()))]
    pub redis_password: Option<String>,

    /// Password the Sentinels of a `redis-sentinel://` URL require (their own `requirepass`):
    /// `MOM_REDIS_SENTINEL_PASSWORD`, environment only; unset, they are asked without one.
    #[arg(skip = std::env::var("MOM_REDIS_SENTINEL_PASSWORD").ok().filter(|p| !p.is_empty()))]
    pub redis_sentinel_password: Option<String>,

    /// ZooKeeper digest credential `user:password`: `MOM_ZK_AUTH`, environment only. When set,
    /// the broker authenticates its session with it and creates every znode readable and
    /// writable by that identity only (and takes over znodes an older broker left open), so a
    /// client without it can neither read the cluster's secrets nor change its metadata.
    #[arg(skip = std::env::var("MOM_ZK_AUTH").ok().filter(|a| !a.is_empty()))]
    pub zk_auth: Option<String>,

    /// Lifetime of issued tokens, in seconds.
    #[arg(long, env = "MOM_TOKEN_TTL_S", default_value_t = 3600)]
    pub token_ttl_s: u64,

    /// Requests per second per user, across the cluster; 0 disables the limit.
    #[arg(long, env = "MOM_RATE_LIMIT_RPS", default_value_t = 1000)]
    pub rate_limit_rps: u32,

    /// Burst allowance per user on top of the steady rate.
    #[arg(long, env = "MOM_RATE_LIMIT_BURST", default_value_t = 2000)]
    pub rate_limit_burst: u32,

    /// Proxies (IP addresses or CIDR blocks, comma-separated) whose X-Forwarded-For is trusted.
    #[arg(long, env = "MOM_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Seconds between heartbeat comments on idle event streams (keep proxies from closing them).
    #[arg(long, env = "MOM_STREAM_HEARTBEAT_S", default_value_t = 15)]
    pub stream_heartbeat_s: u64,

    /// Base URL of the SQS endpoint's queue URLs (default: the request's scheme and host).
    #[arg(long, env = "MOM_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Region named in SQS queue ARNs.
    #[arg(long, env = "MOM_REGION", default_value = "us-east-1")]
    pub region: String,

    /// Threads serving requests (default: one per core). On a host where Redis shares two cores
    /// with the broker, 1 is faster: see BENCHMARKS.md.
    #[arg(long, env = "MOM_WORKER_THREADS")]
    pub worker_threads: Option<usize>,

    /// Log format: text (coloured only on a terminal) or json (one object per line).
    #[arg(long, env = "MOM_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Largest request body any front door reads (native API, SQS endpoint, one gRPC message), in
    /// bytes; past it 413 `message_too_large` (SQS: 413 `RequestEntityTooLarge`; gRPC:
    /// INVALID_ARGUMENT). The default is the API's 5 MiB.
    #[arg(long, env = "MOM_MAX_REQUEST_BYTES", default_value_t = crate::body::MAX_REQUEST_BYTES as u64,
        value_parser = clap::value_parser!(u64).range(1024..=(1 << 30)))]
    pub max_request_bytes: u64,

    /// Seconds a client has to send a request's headers (slowloris); also how long an idle
    /// HTTP/1.1 keep-alive connection stays open. 0 disables.
    #[arg(long, env = "MOM_HEADER_READ_TIMEOUT_S", default_value_t = 30)]
    pub header_read_timeout_s: u64,

    /// Seconds a client has to send a whole request body once its headers are in (a body sent
    /// slowly holds a connection and a task); past it 408 `request_timeout`. 0 disables.
    #[arg(long, env = "MOM_BODY_READ_TIMEOUT_S", default_value_t = 30)]
    pub body_read_timeout_s: u64,

    /// Client connections this node holds open (HTTP and gRPC together); past it new ones are
    /// refused (HTTP: 503 `unavailable`). Lowered to fit the open-files limit. 0: no bound of its own.
    #[arg(long, env = "MOM_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Waiting receives (long polls) and push streams one user may hold open on this node; past
    /// it 429 `rate_limited`. 0: no limit.
    #[arg(long, env = "MOM_MAX_LONG_POLLS_PER_USER", default_value_t = crate::service::DEFAULT_MAX_LONG_POLLS_PER_USER)]
    pub max_long_polls_per_user: usize,
}

impl Config {
    pub fn node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .or_else(|_| std::fs::read_to_string("/etc/hostname"))
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "mom-node".into())
        })
    }

    /// The Redis settings; the replica wait is capped below the call timeout, so a slow replica
    /// answers 503 rather than timing the whole call out.
    pub fn redis_options(&self) -> crate::store::Options {
        let timeout = Duration::from_millis(self.redis_timeout_ms);
        let wait = Duration::from_millis(self.redis_replica_ack_timeout_ms)
            .min(timeout.saturating_sub(Duration::from_millis(100)));
        crate::store::Options {
            timeout,
            min_replicas_ack: self.redis_min_replicas_ack,
            replica_ack_timeout: wait.max(Duration::from_millis(1)),
            dedup_window: Duration::from_secs(self.dedup_window_s),
        }
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_s)
    }

    pub fn max_request_bytes(&self) -> usize {
        usize::try_from(self.max_request_bytes).unwrap_or(usize::MAX)
    }

    /// What the broker core is made with.
    pub fn broker_settings(&self) -> crate::service::BrokerSettings {
        crate::service::BrokerSettings {
            auth: crate::service::auth::AuthSettings {
                token_ttl: Duration::from_secs(self.token_ttl_s),
                rate_limit_rps: self.rate_limit_rps,
                rate_limit_burst: self.rate_limit_burst,
                trusted_proxies: self.trusted_proxies.clone(),
            },
            stream_heartbeat: Duration::from_secs(self.stream_heartbeat_s.max(1)),
            max_long_polls_per_user: self.max_long_polls_per_user,
        }
    }

    /// The bounds on every request body (size and time).
    pub fn body_limit(&self) -> crate::body::BodyLimit {
        crate::body::BodyLimit {
            bytes: self.max_request_bytes(),
            read_timeout: (self.body_read_timeout_s > 0)
                .then(|| Duration::from_secs(self.body_read_timeout_s)),
        }
    }

    pub fn header_read_timeout(&self) -> Option<Duration> {
        (self.header_read_timeout_s > 0).then(|| Duration::from_secs(self.header_read_timeout_s))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Config;

    /// Every flag has its `MOM_*` variable (README's configuration table lists them), so a
    /// container is configured by environment alone; the secrets are read from the environment
    /// only, never from a flag (which `ps` would show).
    #[test]
    fn every_setting_can_come_from_the_environment() {
        let command = Config::command();
        let missing: Vec<String> = command
            .get_arguments()
            .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
            .filter(|a| a.get_env().is_none_or(|e| !e.to_string_lossy().starts_with("MOM_")))
            .map(|a| a.get_id().to_string())
            .collect();
        assert!(missing.is_empty(), "settings without a MOM_* variable: {missing:?}");
        let readme = include_str!("../../README.md");
        let undocumented: Vec<String> = command
            .get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .chain(
                ["MOM_ADMIN_PASSWORD", "MOM_JWT_SECRET", "MOM_REDIS_PASSWORD", "MOM_ZK_AUTH"]
                    .map(String::from),
            )
            .filter(|var| !readme.contains(var.as_str()))
            .collect();
        assert!(undocumented.is_empty(), "settings README does not name: {undocumented:?}");
    }
}
