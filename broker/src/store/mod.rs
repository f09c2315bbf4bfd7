//! Everything that touches Redis. The rest of the broker sees only [`Redis`] (a connection that
//! comes and goes), [`MailboxStore`] (queues and subscriptions: typed operations, one script call
//! each, except that concurrent sends to one mailbox share one: `group.rs`) and [`TopicStore`]
//! (publish, subscribe, seek).

/// A Lua script of `lua/`: `many.lua` (calls that take many members), a prelude (a mailbox's
/// `common.lua`, a topic's `topic.lua`) and the files after it, concatenated at compile time,
/// loaded into Redis on first use (EVALSHA).
macro_rules! lua_script {
    ($prelude:literal; $($file:literal),+) => {
        std::sync::LazyLock::new(|| {
            redis::Script::new(concat!(
                include_str!("lua/many.lua"),
                include_str!(concat!("lua/", $prelude)),
                $(include_str!(concat!("lua/", $file))),+
            ))
        })
    };
}

mod conn;
mod group;
mod limits;
mod mailbox;
mod moves;
mod peek;
mod topic;

pub use limits::{LimitStore, LOGIN_WINDOW_S};
pub use mailbox::{
    older_topic_wake_key, topic_base, Mailbox, MailboxStore, Outgoing, RawDelivery, ReceiveParams, Received,
    Settle, Transfer, STREAM_MARK_RENEW,
};
pub use moves::{MoveTaskStore, KEPT as MOVE_TASKS_KEPT};
pub use peek::{PeekState, Peeked};
pub use topic::{Publication, Published, Start, TopicStore};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use redis::aio::ConnectionManagerConfig;
use redis::cluster::ClusterClient;
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{ConnectionAddr, IntoConnectionInfo};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use conn::{Acked, Address, Conn};

use crate::error::{Error, Result};
use crate::waiters::Waiters;

/// `lua/retire.lua`, shared by queues and topics.
static RETIRE: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("lua/retire.lua")));

/// Marks incarnation `czxid` of a deleted queue or topic deleted in its marker key `inc` and drops
/// `keys`, unless a newer incarnation owns them already (`lua/incarnation.lua`).
async fn retire(redis: &Redis, inc: String, keys: &[String], czxid: i64) -> Result<()> {
    let mut inv = RETIRE.prepare_invoke();
    inv.key(inc);
    for k in keys {
        inv.key(k);
    }
    inv.arg(czxid);
    inv.invoke_async::<()>(&mut redis.conn()?).await.map_err(Error::redis)
}

/// How the broker talks to Redis, beyond the address.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bound on every call: past it the request answers 503 instead of hanging.
    pub timeout: Duration,
    /// Replicas that must confirm a send (`WAIT`) before it is acknowledged; 0: none.
    pub min_replicas_ack: u32,
    /// How long a send waits for those confirmations.
    pub replica_ack_timeout: Duration,
    /// How long a `dedup_id` names its message: a second send with it within this window is not
    /// stored again (whole seconds, at least one).
    pub dedup_window: Duration,
}

/// The deployment as resolved at run time.
enum Backend {
    Single(redis::Client),
    Cluster {
        client: ClusterClient,
        /// Each node on its own, for the notification subscription (any node hears every PUBLISH).
        nodes: Vec<redis::Client>,
    },
    Sentinel {
        sentinel: tokio::sync::Mutex<Sentinel>,
        service: String,
        node: SentinelNodeConnectionInfo,
    },
}

/// A Redis connection that may not exist yet. The broker starts without Redis, reports unready,
/// and connects in the background; once connected, one multiplexed connection (per cluster node)
/// pipelines every concurrent request and reconnects by itself. Behind a Sentinel, the primary is
/// looked up again every second and whenever a call fails in a way that hints at a failover, and
/// the connection is rebuilt when it moved: a `ConnectionManager` alone would keep reconnecting to
/// the old address.
pub struct Redis {
    backend: Backend,
    conn: RwLock<Option<Conn>>,
    /// The server the connection goes to (single or Sentinel-resolved primary); pub/sub follows it.
    current: RwLock<Option<redis::Client>>,
    healthy: AtomicBool,
    trouble: Arc<Notify>,
    options: Options,
    /// Key prefix: brokers with different prefixes share a Redis without seeing each other.
    pub prefix: String,
}

impl Redis {
    /// Fails only on a malformed address; connecting happens in [`Redis::run`]. `password`
    /// (Redis `requirepass`) replaces any password in the address: it can come from its own
    /// environment variable, so the URL (which tools print) need not carry it.
    /// `sentinel_password` is what the Sentinels of a `redis-sentinel://` address require.
    pub fn new(
        url: &str,
        password: Option<&str>,
        sentinel_password: Option<&str>,
        prefix: &str,
        options: Options,
    ) -> Result<Arc<Self>, redis::RedisError> {
        let with_password = |u: &str| -> Result<redis::ConnectionInfo, redis::RedisError> {
            let mut info = u.into_connection_info()?;
            if let Some(p) = password {
                info.redis.password = Some(p.to_string());
            }
            Ok(info)
        };
        let (backend, current) = match Address::parse(url)? {
            Address::Single(u) => {
                let client = redis::Client::open(with_password(&u)?)?;
                (Backend::Single(client.clone()), Some(client))
            }
            Address::Cluster(urls) => {
                let urls = urls.iter().map(|u| with_password(u)).collect::<Result<Vec<_>, _>>()?;
                let client = ClusterClient::builder(urls.clone())
                    .connection_timeout(options.timeout)
                    .response_timeout(options.timeout)
                    .retries(2)
                    .build()?;
                let nodes = urls.into_iter().map(redis::Client::open).collect::<Result<_, _>>()?;
                (Backend::Cluster { client, nodes }, None)
            }
            Address::Sentinel { sentinels, service, userinfo } => {
                let mut redis_info = match userinfo {
                    Some(u) => format!("redis://{u}@localhost").as_str().into_connection_info()?.redis,
                    None => Default::default(),
                };
                if let Some(p) = password {
                    redis_info.password = Some(p.to_string());
                }
                let node =
                    SentinelNodeConnectionInfo { tls_mode: None, redis_connection_info: Some(redis_info) };
                // The Sentinels' own password, when they require one (momctl's do).
                let sentinels = sentinels
                    .iter()
                    .map(|u| {
                        let mut info = u.as_str().into_connection_info()?;
                        info.redis.password = sentinel_password.map(str::to_string);
                        Ok(info)
                    })
                    .collect::<Result<Vec<_>, redis::RedisError>>()?;
                let sentinel = tokio::sync::Mutex::new(Sentinel::build(sentinels)?);
                (Backend::Sentinel { sentinel, service, node }, None)
            }
        };
        Ok(Arc::new(Redis {
            backend,
            conn: RwLock::new(None),
            current: RwLock::new(current),
            healthy: AtomicBool::new(false),
            trouble: Arc::new(Notify::new()),
            options,
            prefix: prefix.to_string(),
        }))
    }

    /// A handle to the shared connection, or `unavailable` before the first connect.
    pub fn conn(&self) -> Result<Conn> {
        let guard = self.conn.read().unwrap_or_else(|e| e.into_inner());
        guard
            .clone()
            .ok_or_else(|| Error::Unavailable("the message store is not connected yet; retry shortly".into()))
    }

    /// The connection for a write the client will be told is stored: with
    /// `MOM_REDIS_MIN_REPLICAS_ACK`, one that makes replicas confirm each script call.
    pub fn write_conn(&self) -> Result<Writer> {
        let conn = self.conn()?;
        Ok(match self.options.min_replicas_ack {
            0 => Writer::Plain(conn),
            n => Writer::Acked(Acked::new(conn, n, self.options.replica_ack_timeout.as_millis() as u64)),
        })
    }

    /// True while the last health check answered.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The channel on which sends announce "queue X has something new" to long polls on every node.
    pub fn channel(&self) -> String {
        format!("{}:notify", self.prefix)
    }

    /// Announces `key` bare, the format brokers before counted announcements read (a bare key
    /// wakes every waiter on it). Best effort: such a waiter still wakes by its deadline.
    pub async fn announce_bare(&self, key: &str) {
        let Ok(mut conn) = self.conn() else { return };
        let published: redis::RedisResult<i64> =
            redis::cmd("PUBLISH").arg(self.channel()).arg(key).query_async(&mut conn).await;
        if let Err(e) = published {
            tracing::debug!(error = %e, "cannot announce to older brokers");
        }
    }

    /// How long a dedup key lives, in whole seconds (`SET ... EX` takes no less than 1).
    pub fn dedup_window_s(&self) -> u64 {
        self.options.dedup_window.as_secs().max(1)
    }

    fn set_conn(&self, conn: Option<Conn>) {
        *self.conn.write().unwrap_or_else(|e| e.into_inner()) = conn;
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(self.options.timeout)
            .set_response_timeout(self.options.timeout)
            .set_number_of_retries(1)
            .set_max_delay(1000)
    }

    /// Connects when not connected; behind a Sentinel, also follows the primary when it moved.
    async fn connect(&self) -> Result<(), redis::RedisError> {
        let connected = self.conn.read().unwrap_or_else(|e| e.into_inner()).is_some();
        match &self.backend {
            Backend::Single(client) if !connected => {
                let c = client.get_connection_manager_with_config(self.manager_config()).await?;
                self.set_conn(Some(Conn::single(c, self.trouble.clone())));
                tracing::info!("connected to redis");
            }
            Backend::Cluster { client, .. } if !connected => {
                let c = client.get_async_connection().await?;
                self.set_conn(Some(Conn::cluster(c, self.trouble.clone())));
                tracing::info!("connected to redis cluster");
            }
            Backend::Sentinel { sentinel, service, node } => {
                let primary = {
                    let mut sentinel = sentinel.lock().await;
                    tokio::time::timeout(self.options.timeout, sentinel.async_master_for(service, Some(node)))
                        .await
                        .map_err(|_| {
                            redis::RedisError::from((redis::ErrorKind::IoError, "sentinel lookup timed out"))
                        })??
                };
                let addr = primary.get_connection_info().addr.clone();
                let same = self
                    .current
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .is_some_and(|c| c.get_connection_info().addr == addr);
                if connected && same {
                    return Ok(());
                }
                let c = primary.get_connection_manager_with_config(self.manager_config()).await?;
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(primary);
                self.set_conn(Some(Conn::single(c, self.trouble.clone())));
                tracing::info!(primary = %display_addr(&addr), "connected to the redis primary named by the sentinels");
            }
            _ => {}
        }
        Ok(())
    }

    /// Connects, then checks health every second (and at once after a call failed in a way that
    /// hints at a failover), until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !stop.is_cancelled() {
            match self.connect().await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, "redis not reachable; retrying");
                    // Behind Sentinel a failed lookup usually means "failover in progress": ask
                    // again soon, so sends resume within a fraction of a second of the promotion.
                    let cap = match self.backend {
                        Backend::Sentinel { .. } => Duration::from_millis(250),
                        _ => Duration::from_secs(2),
                    };
                    backoff = (backoff * 2).min(cap);
                }
            }
            let healthy = match self.conn() {
                Ok(mut c) => redis::cmd("PING").query_async::<String>(&mut c).await.is_ok(),
                Err(_) => false,
            };
            if healthy != self.healthy.swap(healthy, Ordering::Relaxed) {
                tracing::info!(healthy, "redis health changed");
            }
            let pause = if healthy { Duration::from_secs(1) } else { backoff };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                // Not faster than every 100 ms, however many calls fail meanwhile.
                _ = async { self.trouble.notified().await; tokio::time::sleep(Duration::from_millis(100)).await } => {}
                _ = stop.cancelled() => {}
            }
        }
    }

    /// Where to subscribe for announcements: the current server or primary, or, on a cluster,
    /// the `attempt`-th node round the list (PUBLISH reaches every node of a cluster, so any one
    /// will do, and the next one when it went away).
    fn pubsub_client(&self, attempt: usize) -> Option<redis::Client> {
        match &self.backend {
            Backend::Cluster { nodes, .. } => nodes.get(attempt % nodes.len()).cloned(),
            _ => self.current.read().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    /// Listens for "N messages in X" announcements and wakes that many of this node's long polls
    /// ([`Waiters::announce`]). When the subscription drops, every waiter is woken to re-check: a
    /// lost announcement costs a re-check, never a message.
    pub async fn listen(self: Arc<Self>, waiters: Arc<Waiters>, stop: CancellationToken) {
        let channel = self.channel();
        let mut attempt = 0;
        while !stop.is_cancelled() {
            let client = self.pubsub_client(attempt);
            attempt += 1;
            let subscribed = async {
                let mut pubsub = tokio::time::timeout(self.options.timeout, client?.get_async_pubsub())
                    .await
                    .ok()?
                    .ok()?;
                pubsub.subscribe(&channel).await.ok()?;
                Some(pubsub)
            };
            if let Some(pubsub) = subscribed.await {
                waiters.wake_all();
                let mut messages = pubsub.into_on_message();
                loop {
                    tokio::select! {
                        msg = messages.next() => match msg {
                            Some(msg) => {
                                if let Ok(payload) = msg.get_payload::<String>() {
                                    waiters.announce(&payload);
                                }
                            }
                            None => break,
                        },
                        _ = stop.cancelled() => return,
                    }
                }
                tracing::warn!("redis notification channel lost; re-subscribing");
                waiters.wake_all();
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.cancelled() => {}
            }
        }
    }
}

/// `host:port` of an address, without anything secret.
fn display_addr(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(h, p) | ConnectionAddr::TcpTls { host: h, port: p, .. } => format!("{h}:{p}"),
        ConnectionAddr::Unix(path) => path.display().to_string(),
    }
}

/// The connection a send or publish script runs on (see [`Redis::write_conn`]).
pub enum Writer {
    Plain(Conn),
    Acked(Acked),
}

impl Writer {
    /// Runs the script; with replica confirmations on, fails with `unavailable` when fewer
    /// replicas than required confirmed in time. The write may then still exist (and survive):
    /// the client is told "maybe sent", and a retry with the same `dedup_id` stores it once.
    pub async fn invoke<T: redis::FromRedisValue>(&mut self, inv: &redis::ScriptInvocation<'_>) -> Result<T> {
        match self {
            Writer::Plain(c) => inv.invoke_async(c).await.map_err(Error::redis),
            Writer::Acked(a) => {
                let value = inv.invoke_async(a).await.map_err(Error::redis)?;
                let want = a.replicas();
                match a.acked() {
                    Some(n) if n >= i64::from(want) => Ok(value),
                    got => {
                        tracing::warn!(acked = ?got, want, "write not confirmed by enough replicas in time");
                        Err(Error::Unavailable(format!(
                            "the write was not confirmed by {want} replica(s) in time; it may have been stored: \
                             retry with the same dedup_id to store it at most once"
                        )))
                    }
                }
            }
        }
    }
}
