//! The broker core: every operation of the API, free of transport types. HTTP handlers (and later
//! gRPC methods and the SQS endpoint) are thin adapters that parse, call one method here, and
//! format the answer.

mod queues;

use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::meta::{Meta, NodeRecord};
use crate::metrics::Metrics;
use crate::store::{QueueStore, Redis};
use crate::waiters::Waiters;

/// Who is calling. Auth fills this in from the request's token; until it lands every caller is
/// `anonymous`.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub admin: bool,
}

impl Principal {
    pub fn anonymous() -> Self {
        Principal { name: "anonymous".into(), admin: true }
    }
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
    /// Cancelled on SIGTERM: readiness turns off and held long polls answer at once.
    pub draining: CancellationToken,
}

impl Broker {
    pub fn new(meta: Arc<Meta>, redis: Arc<Redis>, metrics: Arc<Metrics>) -> Self {
        Broker {
            meta,
            queues: QueueStore::new(redis.clone()),
            redis,
            waiters: Arc::new(Waiters::default()),
            metrics,
            draining: CancellationToken::new(),
        }
    }

    /// Ready: Redis answers, metadata was loaded once, and the node is not draining.
    pub fn ready(&self) -> bool {
        self.redis.is_healthy() && self.meta.is_loaded() && !self.draining.is_cancelled()
    }

    pub fn cluster(&self) -> Cluster {
        Cluster { nodes: self.meta.nodes(), leader: self.meta.leader() }
    }
}
