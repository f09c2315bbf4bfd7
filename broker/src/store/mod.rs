//! Everything that touches Redis. The rest of the broker sees only [`Redis`] (a connection that
//! comes and goes), [`MailboxStore`] (queues and subscriptions: typed operations, one script call
//! each) and [`TopicStore`] (publish, subscribe, seek).

mod limits;
mod mailbox;
mod topic;

pub use limits::{LimitStore, LOGIN_WINDOW_S};
pub use mailbox::{topic_base, Mailbox, MailboxStore, Outgoing, RawDelivery, ReceiveParams, Received, Settle, Transfer};
pub use topic::{Publication, Published, Start, TopicStore};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::waiters::Waiters;

/// A Redis connection that may not exist yet. The broker starts without Redis, reports unready,
/// and connects in the background; once connected, the multiplexed [`ConnectionManager`] pipelines
/// every concurrent request on one socket and reconnects by itself.
pub struct Redis {
    client: redis::Client,
    conn: RwLock<Option<ConnectionManager>>,
    healthy: AtomicBool,
    timeout: Duration,
    /// Key prefix: brokers with different prefixes share a Redis without seeing each other.
    pub prefix: String,
}

impl Redis {
    /// Fails only on a malformed URL; connecting happens in [`Redis::run`].
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Arc<Self>, redis::RedisError> {
        Self::with_password(url, None, prefix, timeout)
    }

    /// [`Redis::new`] authenticating with `password` (Redis `requirepass`), which replaces any
    /// password in the URL: the password can come from its own environment variable, so the
    /// URL (which tools print) need not carry it.
    pub fn with_password(
        url: &str,
        password: Option<&str>,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Arc<Self>, redis::RedisError> {
        use redis::IntoConnectionInfo;
        let mut info = url.into_connection_info()?;
        if let Some(p) = password {
            info.redis.password = Some(p.to_string());
        }
        Ok(Arc::new(Redis {
            client: redis::Client::open(info)?,
            conn: RwLock::new(None),
            healthy: AtomicBool::new(false),
            timeout,
            prefix: prefix.to_string(),
        }))
    }

    /// A handle to the shared connection, or `unavailable` before the first connect.
    pub fn conn(&self) -> Result<ConnectionManager> {
        let guard = self.conn.read().unwrap_or_else(|e| e.into_inner());
        guard.clone().ok_or_else(|| Error::Unavailable("the message store is not connected yet; retry shortly".into()))
    }

    /// True while the last health check answered.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The channel on which sends announce "queue X has something new" to long polls on every node.
    pub fn channel(&self) -> String {
        format!("{}:notify", self.prefix)
    }

    /// Connects, then checks health every second, until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(1)
            .set_max_delay(1000);
        let mut backoff = Duration::from_millis(100);
        while !stop.is_cancelled() {
            if self.conn.read().unwrap_or_else(|e| e.into_inner()).is_none() {
                match self.client.get_connection_manager_with_config(config.clone()).await {
                    Ok(c) => {
                        tracing::info!("connected to redis");
                        *self.conn.write().unwrap_or_else(|e| e.into_inner()) = Some(c);
                        backoff = Duration::from_millis(100);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "redis not reachable; retrying");
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
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
                _ = stop.cancelled() => {}
            }
        }
    }

    /// Listens for "something new in X" announcements and wakes this node's long polls. When the
    /// subscription drops, every waiter is woken to re-check: a lost announcement costs a re-check,
    /// never a message.
    pub async fn listen(self: Arc<Self>, waiters: Arc<Waiters>, stop: CancellationToken) {
        let channel = self.channel();
        while !stop.is_cancelled() {
            let subscribed = async {
                let mut pubsub = tokio::time::timeout(self.timeout, self.client.get_async_pubsub()).await.ok()?.ok()?;
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
                                if let Ok(key) = msg.get_payload::<String>() {
                                    waiters.wake(&key);
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
