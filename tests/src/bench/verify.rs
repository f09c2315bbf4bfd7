//! `mom-bench verify`: correctness under load, for rolling upgrades and other disruptions.
//! Workers send (each message with a unique `dedup_id`, which is also its body), receive and
//! ack through one endpoint, at a fixed rate, until a stop file appears (or a time limit); then
//! they stop sending and keep receiving until every acknowledged send came back (or a drain
//! timeout). Every acknowledged send id and every received and acked id is recorded, and the
//! report counts failed requests (non-2xx answers, connection errors), acknowledged sends never
//! received (lost), and messages delivered more than once (duplicates).
//!
//! Every failure is classified ([`FailKind`], or `http_<status>_nginx`/`http_<status>_broker` for
//! an answer that is not 2xx) and counted by kind. One kind is resent, once, on a new connection,
//! as well-behaved HTTP clients do (RFC 9112 §9.3.1; Go's net/http, browsers, the AWS SDKs): a
//! request that failed on a *reused* keep-alive connection before a single byte of answer arrived
//! — the server (NGINX, on a reload) closed the idle connection just as the request was written.
//! Every request here is safe to resend: sends carry `dedup_id`, an ack of an acked receipt
//! is a no-op, and a resent receive at worst makes a message come again later (counted as a
//! duplicate). Those resends are never hidden: `stale_connection_retries` counts them (with
//! when each happened), and a resend that fails too is a failure.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::http::{CallFailure, Conn, Endpoint, FailKind};
use super::{Error, Result};

/// How the verification runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub queue: String,
    pub concurrency: usize,
    /// Cycles (send, receive, ack) per second over all workers: about 3 requests each.
    pub cycles_per_s: f64,
    /// Stop sending when this file exists.
    pub stop_file: Option<PathBuf>,
    /// Stop sending after this long at the latest.
    pub max_duration: Duration,
    /// After sending stopped, how long to keep receiving what is still due.
    pub drain_timeout: Duration,
    /// The queue's visibility timeout: a message whose ack failed comes back after it.
    pub visibility_timeout_s: u32,
}

/// One failed request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    /// Seconds since the load started.
    pub at_s: f64,
    /// Wall-clock time, milliseconds since the Unix epoch (to line up with other logs).
    pub at_unix_ms: u128,
    pub request: String,
    /// `connect`, `stale_connection`, `closed_before_response`, `closed_mid_response`,
    /// `timeout`, `other`, or `http_<status>_nginx` / `http_<status>_broker`.
    pub kind: String,
    pub error: String,
}

/// What a verification found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Verdict {
    pub duration_s: f64,
    /// Seconds of load (sending), without the drain.
    pub load_s: f64,
    pub requests: u64,
    /// `requests / load_s` (the drain's few requests included).
    pub requests_per_s: f64,
    pub failed: u64,
    /// The first failures (up to 50).
    pub failures: Vec<Failure>,
    /// Failed requests by kind (see [`Failure::kind`]).
    pub failures_by_kind: BTreeMap<String, u64>,
    /// Requests that failed on a reused keep-alive connection before any byte of answer and were
    /// sent again on a new connection (not counted in `failed` unless the resend failed too).
    pub stale_connection_retries: u64,
    /// The first of those (up to 50), to line up with what the server side did at that moment.
    pub stale_connection_retry_log: Vec<Failure>,
    pub sent_acknowledged: u64,
    /// Sends that failed (the message may or may not be stored).
    pub send_failed: u64,
    pub received: u64,
    pub received_unique: u64,
    /// Deliveries beyond the first of a message.
    pub duplicates: u64,
    pub acked: u64,
    /// Acknowledged sends never received.
    pub lost: u64,
    pub lost_ids: Vec<String>,
}

impl Verdict {
    /// No failed request and no acknowledged send lost.
    pub fn passed(&self) -> bool {
        self.failed == 0 && self.lost == 0
    }
}

#[derive(Default)]
struct Tally {
    requests: u64,
    failed: u64,
    failures: Vec<Failure>,
    failures_by_kind: BTreeMap<String, u64>,
    stale_connection_retries: u64,
    stale_connection_retry_log: Vec<Failure>,
    sent: BTreeSet<String>,
    send_failed: u64,
    received: HashMap<String, u32>,
    acked: BTreeSet<String>,
}

const MAX_FAILURES_KEPT: usize = 50;
/// Longer than any answer takes here (long polls hold 1 s); past it a request is a `timeout`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

struct Shared {
    tally: Mutex<Tally>,
    started: Instant,
}

impl Shared {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failure(&self, request: &str, kind: &str, error: String) -> Failure {
        Failure {
            at_s: self.started.elapsed().as_secs_f64(),
            at_unix_ms: unix_ms(),
            request: request.to_string(),
            kind: kind.to_string(),
            error,
        }
    }

    fn fail(&self, request: &str, kind: &str, error: String) {
        let failure = self.failure(request, kind, error);
        let mut t = self.tally();
        t.failed += 1;
        *t.failures_by_kind.entry(kind.to_string()).or_insert(0) += 1;
        if t.failures.len() < MAX_FAILURES_KEPT {
            t.failures.push(failure);
        }
    }

    fn retried_stale(&self, request: &str, failure: &CallFailure) {
        let record = self.failure(request, failure.kind.name(), failure.error.to_string());
        let mut t = self.tally();
        t.stale_connection_retries += 1;
        if t.stale_connection_retry_log.len() < MAX_FAILURES_KEPT {
            t.stale_connection_retry_log.push(record);
        }
    }

    /// Acknowledged sends not yet received.
    fn outstanding(&self) -> usize {
        let t = self.tally();
        t.sent.iter().filter(|id| !t.received.contains_key(*id)).count()
    }
}

#[derive(Deserialize)]
struct Received {
    messages: Vec<Message>,
}

#[derive(Deserialize)]
struct Message {
    body: String,
    receipt: String,
}

#[derive(Deserialize)]
struct AckResults {
    results: Vec<AckResult>,
}

#[derive(Deserialize)]
struct AckResult {
    #[serde(default)]
    ok: bool,
}

struct Worker {
    id: usize,
    conn: Conn,
    shared: Arc<Shared>,
    send: Uri,
    receive: Uri,
    ack: Uri,
    run: String,
    seq: u64,
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

impl Worker {
    /// One request; a 2xx answer's body, or None (recorded as a failure).
    async fn call(&mut self, name: &str, path: &Uri, body: Bytes) -> Option<Bytes> {
        let mut result =
            self.conn.call_classified(Method::POST, path, body.clone(), Some(REQUEST_TIMEOUT)).await;
        // The keep-alive race: resent once on a new connection (every request here is safe to
        // resend; see the module's doc), and counted.
        if let Err(failure) = &result {
            if failure.kind == FailKind::StaleConnection {
                self.shared.retried_stale(name, failure);
                result = self.conn.call_classified(Method::POST, path, body, Some(REQUEST_TIMEOUT)).await;
            }
        }
        self.shared.tally().requests += 1;
        match result {
            Ok((status, bytes)) if status.is_success() => Some(bytes),
            Ok((status, bytes)) => {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
                // NGINX's own error pages are HTML; the broker answers JSON.
                let from = if text.trim_start().starts_with('<') { "nginx" } else { "broker" };
                self.shared.fail(
                    name,
                    &format!("http_{}_{from}", status.as_u16()),
                    format!("HTTP {}: {text}", status.as_u16()),
                );
                None
            }
            Err(failure) => {
                self.shared.fail(name, failure.kind.name(), failure.error.to_string());
                None
            }
        }
    }

    async fn send(&mut self) {
        self.seq += 1;
        let id = format!("{}-{}-{}", self.run, self.id, self.seq);
        let body = serde_json::json!({ "body": id, "dedup_id": id }).to_string();
        match self.call("send", &self.send.clone(), Bytes::from(body)).await {
            Some(_) => {
                self.shared.tally().sent.insert(id);
            }
            None => self.shared.tally().send_failed += 1,
        }
    }

    /// Receive (long poll up to `wait_s`), then ack what came; returns how many came.
    async fn receive_and_ack(&mut self, wait_s: u32) -> usize {
        let body = format!(r#"{{"max":5,"wait_s":{wait_s}}}"#);
        let Some(bytes) = self.call("receive", &self.receive.clone(), Bytes::from(body)).await else {
            return 0;
        };
        let got: Received = match serde_json::from_slice(&bytes) {
            Ok(got) => got,
            Err(e) => {
                self.shared.fail("receive", "other", format!("unreadable answer: {e}"));
                return 0;
            }
        };
        if got.messages.is_empty() {
            return 0;
        }
        {
            let mut t = self.shared.tally();
            for m in &got.messages {
                *t.received.entry(m.body.clone()).or_insert(0) += 1;
            }
        }
        let receipts: Vec<&str> = got.messages.iter().map(|m| m.receipt.as_str()).collect();
        let body = serde_json::json!({ "receipts": receipts }).to_string();
        if let Some(bytes) = self.call("ack", &self.ack.clone(), Bytes::from(body)).await {
            match serde_json::from_slice::<AckResults>(&bytes) {
                Ok(results) => {
                    let mut t = self.shared.tally();
                    for (m, r) in got.messages.iter().zip(results.results) {
                        if r.ok {
                            t.acked.insert(m.body.clone());
                        }
                    }
                }
                Err(e) => self.shared.fail("ack", "other", format!("unreadable answer: {e}")),
            }
        }
        got.messages.len()
    }
}

fn path(queue: &str, suffix: &str) -> Result<Uri> {
    format!("/v1/queues/{queue}{suffix}")
        .parse()
        .map_err(|e| Error::Input(format!("bad queue name {queue}: {e}")))
}

/// Creates the queue (and empties it), then runs the verification.
pub async fn run(endpoint: Arc<Endpoint>, config: Config) -> Result<Verdict> {
    let mut admin = Conn::new(endpoint.clone());
    let create = serde_json::json!({ "visibility_timeout_s": config.visibility_timeout_s }).to_string();
    admin
        .expect(
            Method::PUT,
            &path(&config.queue, "")?,
            Bytes::from(create),
            &[StatusCode::OK, StatusCode::CREATED],
        )
        .await?;
    admin
        .expect(Method::POST, &path(&config.queue, "/purge")?, Bytes::new(), &[StatusCode::NO_CONTENT])
        .await?;
    // A new queue is visible on every broker within 1 s.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let shared = Arc::new(Shared { tally: Mutex::new(Tally::default()), started: Instant::now() });
    let run_id = format!("v{}", unix_ms());
    let n = config.concurrency.max(1);
    let interval = Duration::from_secs_f64(n as f64 / config.cycles_per_s.max(0.1));
    let stop_at = shared.started + config.max_duration;
    let stopped = Arc::new(Mutex::new(None::<Instant>));
    let mut tasks = Vec::new();
    for i in 0..n {
        let mut w = Worker {
            id: i,
            conn: Conn::new(endpoint.clone()),
            shared: shared.clone(),
            send: path(&config.queue, "/messages")?,
            receive: path(&config.queue, "/receive")?,
            ack: path(&config.queue, "/ack")?,
            run: run_id.clone(),
            seq: 0,
        };
        let stop_file = config.stop_file.clone();
        let drain_timeout = config.drain_timeout;
        let stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let mut next = Instant::now() + interval.mul_f64(i as f64 / n as f64);
            // Load: one cycle per tick.
            loop {
                tokio::time::sleep_until(next).await;
                next += interval;
                let stop = Instant::now() >= stop_at || stop_file.as_ref().is_some_and(|f| f.exists());
                if stop {
                    let mut s = stopped.lock().unwrap_or_else(|e| e.into_inner());
                    s.get_or_insert_with(Instant::now);
                    break;
                }
                w.send().await;
                w.receive_and_ack(1).await;
            }
            // Drain: receive what is still due.
            let deadline = Instant::now() + drain_timeout;
            while Instant::now() < deadline && w.shared.outstanding() > 0 {
                if w.receive_and_ack(1).await == 0 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| Error::Protocol(format!("worker task failed: {e}")))?;
    }
    let load_s = stopped
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .map(|s| s.duration_since(shared.started).as_secs_f64())
        .unwrap_or_else(|| shared.started.elapsed().as_secs_f64());
    let t = shared.tally();
    let lost: Vec<String> = t.sent.iter().filter(|id| !t.received.contains_key(*id)).cloned().collect();
    Ok(Verdict {
        duration_s: shared.started.elapsed().as_secs_f64(),
        load_s,
        requests: t.requests,
        requests_per_s: if load_s > 0.0 { t.requests as f64 / load_s } else { 0.0 },
        failed: t.failed,
        failures: t.failures.clone(),
        failures_by_kind: t.failures_by_kind.clone(),
        stale_connection_retries: t.stale_connection_retries,
        stale_connection_retry_log: t.stale_connection_retry_log.clone(),
        sent_acknowledged: t.sent.len() as u64,
        send_failed: t.send_failed,
        received: t.received.values().map(|&n| u64::from(n)).sum(),
        received_unique: t.received.len() as u64,
        duplicates: t.received.values().map(|&n| u64::from(n.saturating_sub(1))).sum(),
        acked: t.acked.len() as u64,
        lost: lost.len() as u64,
        lost_ids: lost.into_iter().take(50).collect(),
    })
}
