//! The broker core: every operation of the API, free of transport types. The front doors (HTTP
//! handlers in `http/`, gRPC methods in `grpc/`, the SQS endpoint in `sqs/`) are thin adapters
//! that parse, call one method here, and format the answer.

pub mod access;
pub mod access_keys;
pub mod auth;
pub mod held;
mod mailbox;
mod moves;
pub mod peek;
mod queues;
pub mod topics;
pub mod users;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::error::Result;
use crate::meta::{Grant, Meta, NodeRecord, Record};
use crate::metrics::Metrics;
use crate::model::validate_name;
use crate::store::{LimitStore, MailboxStore, Redis, TopicStore};
use crate::waiters::Waiters;
use auth::{Auth, AuthSettings};
pub use mailbox::{check_in_flight, Credit, Stream, MAX_IN_FLIGHT};
pub use moves::{MoveStatus, MoveTask};

/// Who is calling, as proven by a token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub admin: bool,
}

/// The live nodes and the leader, as `GET /v1/cluster` shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cluster {
    pub nodes: Vec<NodeRecord>,
    pub leader: Option<String>,
}

/// `MOM_MAX_LONG_POLLS_PER_USER` unless configured.
pub const DEFAULT_MAX_LONG_POLLS_PER_USER: usize = 100;

pub struct Broker {
    pub meta: Arc<Meta>,
    pub redis: Arc<Redis>,
    pub mailboxes: MailboxStore,
    pub topics: TopicStore,
    pub waiters: Arc<Waiters>,
    pub metrics: Arc<Metrics>,
    pub auth: Auth,
    /// Set once an admin is known to exist.
    bootstrapped: AtomicBool,
    /// Comment lines keep idle event streams open through proxies at this interval.
    pub stream_heartbeat: std::time::Duration,
    /// Cancelled on SIGTERM: readiness turns off and held long polls answer at once.
    pub draining: CancellationToken,
    /// Long polls and push streams each user holds on this node, and the bound on them.
    pub held: Arc<held::Held>,
    /// This broker, for tasks that outlive the request that started them (message move tasks);
    /// set by [`Broker::shared`].
    this: Weak<Broker>,
}

/// What a [`Broker`] is made with beyond its stores, from the command line.
#[derive(Clone)]
pub struct BrokerSettings {
    pub auth: AuthSettings,
    /// Comment lines keep idle event streams open through proxies at this interval.
    pub stream_heartbeat: std::time::Duration,
    /// Long polls and push streams one user may hold on this node; 0: no limit.
    pub max_long_polls_per_user: usize,
}

impl Broker {
    pub fn new(meta: Arc<Meta>, redis: Arc<Redis>, metrics: Arc<Metrics>, settings: BrokerSettings) -> Self {
        Broker {
            meta,
            auth: Auth::new(settings.auth, LimitStore::new(redis.clone())),
            bootstrapped: AtomicBool::new(false),
            mailboxes: MailboxStore::new(redis.clone(), metrics.send_batch_size.clone()),
            topics: TopicStore::new(redis.clone()),
            stream_heartbeat: settings.stream_heartbeat,
            redis,
            waiters: Arc::new(Waiters::default()),
            held: Arc::new(held::Held::new(settings.max_long_polls_per_user, metrics.clone())),
            metrics,
            draining: CancellationToken::new(),
            this: Weak::new(),
        }
    }

    /// A broker that knows its own `Arc` (what the server runs).
    pub fn shared(
        meta: Arc<Meta>,
        redis: Arc<Redis>,
        metrics: Arc<Metrics>,
        settings: BrokerSettings,
    ) -> Arc<Self> {
        Arc::new_cyclic(|this| Broker { this: this.clone(), ..Self::new(meta, redis, metrics, settings) })
    }

    /// This broker's `Arc`, when made by [`Broker::shared`].
    pub fn this(&self) -> Option<Arc<Broker>> {
        self.this.upgrade()
    }

    /// Ready: Redis answers, metadata and users were loaded once, an admin exists, and the node
    /// is not draining.
    pub fn ready(&self) -> bool {
        self.redis.is_healthy()
            && self.meta.is_loaded()
            && self.bootstrapped.load(Ordering::Relaxed)
            && !self.draining.is_cancelled()
    }

    pub fn set_bootstrapped(&self) {
        self.bootstrapped.store(true, Ordering::Relaxed);
    }

    pub fn cluster(&self) -> Cluster {
        Cluster { nodes: self.meta.nodes(), leader: self.meta.leader() }
    }
}

impl Broker {
    /// Grants `user` rights on a queue or topic (replacing earlier ones); `None` revokes. Owner or
    /// admin only.
    pub async fn grant<T: Record + access::Owned>(
        &self,
        who: &Principal,
        name: &str,
        user: &str,
        grant: Option<Grant>,
    ) -> Result<()> {
        validate_name(T::DIR.trim_end_matches('s'), name)?;
        self.require_user(user)?;
        let target = self.meta.get::<T>(name).ok_or_else(|| T::not_found(name))?;
        access::check(who, &target, access::Right::Manage, name)?;
        self.meta
            .update(name, |mut t: T| {
                match grant {
                    Some(g) => t.grants_mut().insert(user.to_string(), g),
                    None => t.grants_mut().remove(user),
                };
                Ok(t)
            })
            .await?;
        Ok(())
    }

    /// Periodic upkeep (run by the leader): retention of idle queues and topics, outbox moves a
    /// crashed node left behind, subscriptions missing from the Redis registry. Each write is
    /// made only while `token` is still the newest leader's fencing token ([`Broker::fenced`]).
    pub async fn sweep(&self, token: u64) {
        if let Err(e) = self.sweep_queues(token).await {
            tracing::warn!(error = %e, "queue sweep stopped");
        }
        if let Err(e) = self.sweep_topics(token).await {
            tracing::warn!(error = %e, "topic sweep stopped");
        }
    }

    /// After something became receivable on `key` (a send, a publish, a nack): announces it bare
    /// too while a broker from before counted announcements is registered, since such a broker
    /// ignores counted ones and its long polls would sleep to their deadline (a rolling upgrade
    /// or a rollback across issue 27). Bare announcements wake every waiter, on every node, as
    /// they did before.
    pub async fn announce_to_older(&self, key: &str) {
        if self.meta.older_nodes_listen() {
            self.redis.announce_bare(key).await;
        }
    }

    /// True while this node leads under `token` and no newer leader has acted (the fence in
    /// Redis holds the newest token that did): checked before every leader-only write, so a
    /// leader paused past its session (a newer one elected meanwhile) does nothing once it
    /// resumes. Also false while the metadata cache may be stale (`Meta::leadership`).
    /// A refusal by the fence itself, the node still leading by its own view, is counted
    /// (`mom_leader_fenced_off_total`).
    pub async fn fenced(&self, token: u64) -> bool {
        if self.meta.leadership() != Some(token) || !self.redis.is_healthy() {
            return false;
        }
        match self.auth.limits.fence(token).await {
            Ok(true) => true,
            Ok(false) => {
                self.metrics.leader_fenced_off.inc();
                false
            }
            Err(_) => false,
        }
    }

    /// Sets the depth and lag gauges (called when `/metrics` is scraped).
    pub async fn refresh_gauges(&self) {
        self.metrics.leader.set(self.meta.leadership().is_some() as i64);
        self.queue_gauges().await;
        self.subscription_gauges().await;
    }
}
