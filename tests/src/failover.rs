//! A client of several brokers of one cluster, as an application with a list of addresses uses
//! them: each request goes to one node and, when it fails in a way that means "try elsewhere", to
//! the next, round the list, until one answers or patience runs out. Which failures count is the
//! caller's choice: connection errors only (a node that left), or also 503 and timeouts (a node
//! that cannot reach Redis, or one that hangs).
//!
//! A retried request may have taken effect on the node that failed: callers make sends idempotent
//! with a `dedup_id`, and read a `receipt_invalid` on a retried ack as "perhaps acked already"
//! ([`Answer::retried`]).

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::client::{is_connection_error, Body, Client, Resp};

/// Pause after every node of the list failed once, doubled each round up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// One failed attempt that was retried on another node.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Refused, reset, or closed before the answer: the node is gone or going.
    Connection { node: usize, error: String },
    /// No answer within the client's time limit.
    Timeout { node: usize },
    /// `503` (`unavailable`): the node is up but its Redis or ZooKeeper is not.
    Unavailable { node: usize, text: String },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connection { node, error } => {
                write!(f, "node {node}: connection error: {error}")
            }
            Failure::Timeout { node } => write!(f, "node {node}: timeout"),
            Failure::Unavailable { node, text } => write!(f, "node {node}: 503 {text}"),
        }
    }
}

/// The answer a request finally got, from node `node`, after the failures it was retried over.
#[derive(Debug, Clone)]
pub struct Answer {
    pub resp: Resp,
    pub node: usize,
    pub failures: Vec<Failure>,
}

impl Answer {
    /// True when an earlier attempt failed: it may have taken effect anyway.
    pub fn retried(&self) -> bool {
        !self.failures.is_empty()
    }
}

/// No node answered acceptably within the patience; the request's effect is unknown.
#[derive(Debug, Clone)]
pub struct GaveUp {
    pub failures: Vec<Failure>,
    /// A transport error that is not retried (a timeout when only connection errors are).
    pub fatal: Option<String>,
}

impl fmt::Display for GaveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.fatal {
            Some(e) => write!(f, "gave up on {e}")?,
            None => write!(f, "gave up after {} failed attempts", self.failures.len())?,
        }
        if let Some(last) = self.failures.last() {
            write!(f, " (last retried: {last})")?;
        }
        Ok(())
    }
}

/// A client of the nodes of one cluster; cheap to clone (clones share the node list).
#[derive(Debug, Clone)]
pub struct Failover {
    nodes: Arc<RwLock<Vec<Client>>>,
    retry_unavailable: bool,
    patience: Duration,
}

impl Failover {
    /// Retries connection errors only, for up to 30 s.
    pub fn new(clients: impl IntoIterator<Item = Client>) -> Self {
        let nodes: Vec<Client> = clients.into_iter().collect();
        assert!(!nodes.is_empty(), "a failover client needs a node");
        Self {
            nodes: Arc::new(RwLock::new(nodes)),
            retry_unavailable: false,
            patience: Duration::from_secs(30),
        }
    }

    /// Also retries `503` answers and timeouts on the next node.
    pub fn retrying_unavailable(mut self) -> Self {
        self.retry_unavailable = true;
        self
    }

    /// How long a request may keep being retried before [`GaveUp`].
    pub fn with_patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// Points slot `slot` at another address, e.g. a node restarted on a new port.
    pub fn set(&self, slot: usize, client: Client) {
        self.nodes.write().unwrap_or_else(|e| e.into_inner())[slot] = client;
    }

    pub fn len(&self) -> usize {
        self.nodes.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn node(&self, slot: usize) -> Client {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        nodes[slot % nodes.len()].clone()
    }

    /// Sends the request to node `first` (modulo the number of nodes), then to the next ones.
    pub async fn request(
        &self,
        first: usize,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Answer, GaveUp> {
        let deadline = Instant::now() + self.patience;
        let mut failures = Vec::new();
        let mut backoff = FIRST_BACKOFF;
        let mut slot = first % self.len();
        loop {
            let failure = match self.node(slot).try_request(method.clone(), path, body.clone()).await {
                Ok(resp) if resp.status == 503 && self.retry_unavailable => {
                    Failure::Unavailable { node: slot, text: resp.text }
                }
                Ok(resp) => return Ok(Answer { resp, node: slot, failures }),
                Err(e) if is_connection_error(&e) => Failure::Connection { node: slot, error: e.to_string() },
                Err(e) if e.is_timeout() && self.retry_unavailable => Failure::Timeout { node: slot },
                Err(e) => return Err(GaveUp { failures, fatal: Some(format!("node {slot}: {e}")) }),
            };
            failures.push(failure);
            if Instant::now() >= deadline {
                return Err(GaveUp { failures, fatal: None });
            }
            slot = (slot + 1) % self.len();
            if failures.len() % self.len() == 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    pub async fn post(&self, first: usize, path: &str, body: Value) -> Result<Answer, GaveUp> {
        self.request(first, Method::POST, path, body.into()).await
    }

    pub async fn get(&self, first: usize, path: &str) -> Result<Answer, GaveUp> {
        self.request(first, Method::GET, path, Body::None).await
    }
}
