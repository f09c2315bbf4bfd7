//! The broker core: every operation of the API, free of transport types. HTTP handlers (and later
//! gRPC methods and the SQS endpoint) are thin adapters that parse, call one method here, and
//! format the answer.

pub mod access;
pub mod auth;
mod queues;
pub mod users;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::meta::{Meta, NodeRecord};
use crate::metrics::Metrics;
use crate::store::{LimitStore, QueueStore, Redis};
use auth::{Auth, AuthSettings};
use crate::waiters::Waiters;

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

pub struct Broker {
    pub meta: Arc<Meta>,
    pub redis: Arc<Redis>,
    pub queues: QueueStore,
    pub waiters: Arc<Waiters>,
    pub metrics: Arc<Metrics>,
    pub auth: Auth,
    /// Set once an admin is known to exist.
    bootstrapped: AtomicBool,
    /// Cancelled on SIGTERM: readiness turns off and held long polls answer at once.
    pub draining: CancellationToken,
}

impl Broker {
    pub fn new(meta: Arc<Meta>, redis: Arc<Redis>, metrics: Arc<Metrics>, auth: AuthSettings) -> Self {
        Broker {
            meta,
            auth: Auth::new(auth, LimitStore::new(redis.clone())),
            bootstrapped: AtomicBool::new(false),
            queues: QueueStore::new(redis.clone()),
            redis,
            waiters: Arc::new(Waiters::default()),
            metrics,
            draining: CancellationToken::new(),
        }
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
