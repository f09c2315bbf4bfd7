//! FIFO queues and fair queues under load (issue 21), over the native HTTP API.
//!
//! - `mom-bench fifo`: producers send and consumers receive (`max` 10, `wait_s` 1) and ack what
//!   each receive returned in one call, all at once, on a standard queue and on FIFO queues whose
//!   messages spread over 1, 10 or 1,000 groups (message i in group i mod G, each with a unique
//!   `dedup_id`). The figure is messages acked per second in the measured window, end to end: a
//!   FIFO queue delivers a group to one consumer at a time, so with few groups the consumers, not
//!   the producers, set the pace. Driven by the [`load`](super::load) engine (closed loop, warm-up,
//!   window), producers and consumers being the workers of one run.
//! - `mom-bench fair`: a standard queue holds a backlog of one group ("big"); consumers drain it at
//!   full speed while a probe sends one message of another group ("small") at a steady pace and
//!   times each from its send to its arrival at a consumer. Then the same without any group: the
//!   probe's message waits behind the whole backlog. With fair queues, receives interleave groups,
//!   so the first run's probes skip the backlog.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::http::{Conn, Endpoint, Paths, Setup};
use super::load::{latency_of, Op};
use super::{Error, Latency, Result};

const OK: [StatusCode; 2] = [StatusCode::OK, StatusCode::CREATED];

/// What a consumer asks for: the most one receive may return, waiting up to 1 s for it.
const RECEIVE_BODY: &str = r#"{"max":10,"wait_s":1}"#;

/// Most messages sent and not yet acked in a throughput run; producers wait beyond it. A FIFO
/// queue with one group drains far slower than producers fill it: without a bound its backlog
/// (and Redis's memory) would grow for the whole run, and the figure is what consumers sustain.
pub const MAX_BACKLOG: u32 = 20_000;

/// How long a producer waits for room under [`MAX_BACKLOG`] before giving its turn back to the
/// load engine (which ends a worker only between operations).
const ROOM_WAIT: Duration = Duration::from_secs(1);

/// Which queue a throughput run loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A standard queue, plain sends: the same run's reference.
    Standard,
    /// A FIFO queue, messages spread over this many groups.
    Fifo(usize),
}

impl Kind {
    /// `standard`, or `fifo` and the number of groups: the result's scenario prefix.
    pub fn label(self) -> String {
        match self {
            Kind::Standard => "standard".into(),
            Kind::Fifo(groups) => format!("fifo{groups}"),
        }
    }

    fn config(self) -> Bytes {
        match self {
            Kind::Standard => Bytes::from_static(b"{}"),
            Kind::Fifo(_) => Bytes::from_static(br#"{"fifo":true}"#),
        }
    }
}

/// One throughput run's shape.
#[derive(Debug, Clone)]
pub struct Flow {
    pub kind: Kind,
    pub producers: usize,
    pub consumers: usize,
    /// Messages per send request: 1 (`/messages`) or more (`/messages/batch`).
    pub batch: usize,
    pub body_bytes: usize,
}

impl Flow {
    /// The result's scenario: `standard_send`, `fifo10_batch`, ...
    pub fn scenario(&self) -> String {
        format!("{}_{}", self.kind.label(), if self.batch > 1 { "batch" } else { "send" })
    }
}

/// A worker of a throughput run.
pub enum Worker {
    Producer(Producer),
    Consumer(Consumer),
}

impl Op for Worker {
    /// A producer's send counts no message (the run counts what consumers acked); a consumer's
    /// receive and ack count the messages acked.
    async fn run(&mut self) -> Result<u64> {
        match self {
            Worker::Producer(p) => p.send().await.map(|_| 0),
            Worker::Consumer(c) => c.take().await.map(|(acked, _)| acked),
        }
    }
}

/// State the producers of one run share.
struct Shared {
    /// Room under [`MAX_BACKLOG`]: a producer takes a permit per message, a consumer gives one
    /// back per message acked.
    room: Arc<Semaphore>,
    /// The next message's number: its group and (with the run's nonce) its dedup id.
    next: AtomicU64,
    /// Distinguishes this run's dedup ids from earlier runs' on the same queue (a dedup id is
    /// remembered for 5 minutes).
    nonce: u64,
}

pub struct Producer {
    conn: Conn,
    paths: Paths,
    kind: Kind,
    batch: usize,
    /// The body, as a JSON string literal.
    body: String,
    shared: Arc<Shared>,
}

impl Producer {
    fn message(&self) -> String {
        match self.kind {
            Kind::Standard => format!("{{\"body\":{}}}", self.body),
            Kind::Fifo(groups) => {
                let i = self.shared.next.fetch_add(1, Ordering::Relaxed);
                format!(
                    "{{\"body\":{},\"group\":\"g{}\",\"dedup_id\":\"{}-{i}\"}}",
                    self.body,
                    i % groups.max(1) as u64,
                    self.shared.nonce
                )
            }
        }
    }

    /// One send of `batch` messages once there is room for them; `Ok(false)` when there was none
    /// within [`ROOM_WAIT`].
    async fn send(&mut self) -> Result<bool> {
        let n = self.batch as u32;
        let room = self.shared.room.clone();
        match tokio::time::timeout(ROOM_WAIT, room.acquire_many(n)).await {
            Ok(Ok(permit)) => permit.forget(),
            Ok(Err(_)) => return Err(Error::Protocol("the backlog bound was closed".into())),
            Err(_) => return Ok(false),
        }
        let sent = self.send_now().await;
        if sent.is_err() {
            self.shared.room.add_permits(self.batch);
        }
        sent.map(|_| true)
    }

    async fn send_now(&mut self) -> Result<()> {
        if self.batch <= 1 {
            let body = Bytes::from(self.message());
            self.conn.expect(Method::POST, &self.paths.send, body, &OK).await?;
            return Ok(());
        }
        let messages: Vec<String> = (0..self.batch).map(|_| self.message()).collect();
        let body = Bytes::from(format!("{{\"messages\":[{}]}}", messages.join(",")));
        let bytes = self.conn.expect(Method::POST, &self.paths.batch, body, &OK).await?;
        let answer: Results = serde_json::from_slice(&bytes)?;
        let stored = answer.results.iter().filter(|r| r.get("id").is_some()).count();
        if stored != self.batch {
            return Err(Error::Protocol(format!(
                "batch stored {stored} of {}: {}",
                self.batch,
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            )));
        }
        Ok(())
    }
}

pub struct Consumer {
    conn: Conn,
    paths: Paths,
    /// Room to give back per message acked (throughput runs).
    room: Option<Arc<Semaphore>>,
}

#[derive(Deserialize)]
struct Received {
    messages: Vec<Delivery>,
}

#[derive(Deserialize)]
struct Delivery {
    receipt: String,
    body: String,
}

#[derive(Deserialize)]
struct Results {
    results: Vec<serde_json::Value>,
}

impl Consumer {
    fn new(endpoint: &Arc<Endpoint>, paths: &Paths, room: Option<Arc<Semaphore>>) -> Self {
        Consumer { conn: Conn::new(endpoint.clone()), paths: paths.clone(), room }
    }

    /// One receive, then one ack of everything it returned: how many were acked, and the bodies.
    async fn take(&mut self) -> Result<(u64, Vec<String>)> {
        let bytes = self
            .conn
            .expect(Method::POST, &self.paths.receive, Bytes::from_static(RECEIVE_BODY.as_bytes()), &OK)
            .await?;
        let got: Received = serde_json::from_slice(&bytes)?;
        if got.messages.is_empty() {
            return Ok((0, Vec::new()));
        }
        let (receipts, bodies): (Vec<String>, Vec<String>) =
            got.messages.into_iter().map(|m| (m.receipt, m.body)).unzip();
        let body = serde_json::to_vec(&serde_json::json!({ "receipts": receipts }))?;
        let bytes = self.conn.expect(Method::POST, &self.paths.ack, Bytes::from(body), &OK).await?;
        let answer: Results = serde_json::from_slice(&bytes)?;
        let acked = answer.results.iter().filter(|r| r["ok"] == serde_json::Value::Bool(true)).count();
        if let Some(room) = &self.room {
            room.add_permits(acked);
        }
        if acked != receipts.len() {
            return Err(Error::Protocol(format!("acked {acked} of {} received", receipts.len())));
        }
        Ok((acked as u64, bodies))
    }
}

/// A nonce for this process's dedup ids and probe bodies: the time in nanoseconds.
fn nonce() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Creates (or empties) `queue` for `flow` and makes its workers: producers first.
pub async fn flow_workers(
    endpoint: &Arc<Endpoint>,
    queue: &str,
    flow: &Flow,
) -> Result<(Setup, Vec<Worker>)> {
    let setup = Setup::with_config(endpoint, queue, flow.kind.config()).await?;
    let paths = setup.paths().clone();
    let shared = Arc::new(Shared {
        room: Arc::new(Semaphore::new(MAX_BACKLOG as usize)),
        next: AtomicU64::new(0),
        nonce: nonce(),
    });
    let body = serde_json::to_string(&"x".repeat(flow.body_bytes))?;
    let mut workers: Vec<Worker> = (0..flow.producers)
        .map(|_| {
            Worker::Producer(Producer {
                conn: Conn::new(endpoint.clone()),
                paths: paths.clone(),
                kind: flow.kind,
                batch: flow.batch.max(1),
                body: body.clone(),
                shared: shared.clone(),
            })
        })
        .collect();
    workers.extend(
        (0..flow.consumers)
            .map(|_| Worker::Consumer(Consumer::new(endpoint, &paths, Some(shared.room.clone())))),
    );
    Ok((setup, workers))
}

/// One fairness run's shape.
#[derive(Debug, Clone)]
pub struct Fairness {
    pub queue: String,
    /// Messages of the big group waiting when the drain starts.
    pub backlog: usize,
    /// Whether messages carry groups ("big" and "small"); without, the baseline.
    pub grouped: bool,
    pub consumers: usize,
    /// Between two probe messages.
    pub probe_every: Duration,
    /// How long the probe sends, from the start of the drain; the backlog must outlast it.
    pub probe_for: Duration,
    pub body_bytes: usize,
    /// Longest wait for the last probe message after the probe stopped.
    pub stall: Duration,
}

/// What a fairness run measured.
#[derive(Debug)]
pub struct FairOutcome {
    /// From each probe message's send to its arrival at a consumer.
    pub latency: Latency,
    pub probes: u64,
    /// Messages acked while the probe was sending.
    pub drained: u64,
    pub window: Duration,
    /// How long filling the backlog took.
    pub fill: Duration,
}

/// Connections that fill the backlog, each sending batches of [`FILL_BATCH`].
const FILLERS: usize = 8;
/// The broker's largest batch.
const FILL_BATCH: usize = 100;

/// Fills the backlog, then drains it while probing; see the module's documentation.
pub async fn fairness(endpoint: &Arc<Endpoint>, f: &Fairness) -> Result<FairOutcome> {
    let mut setup = Setup::new(endpoint, &f.queue).await?;
    let paths = setup.paths().clone();
    let body = serde_json::to_string(&"x".repeat(f.body_bytes))?;
    let group = |g: &str| if f.grouped { format!(",\"group\":\"{g}\"") } else { String::new() };

    let filled = Instant::now();
    let one = format!("{{\"body\":{body}{}}}", group("big"));
    let batches = f.backlog.div_ceil(FILL_BATCH);
    let mut fillers = Vec::new();
    for w in 0..FILLERS {
        let mut conn = Conn::new(endpoint.clone());
        let (paths, one) = (paths.clone(), one.clone());
        let mine: Vec<usize> = (w..batches).step_by(FILLERS).collect();
        let backlog = f.backlog;
        fillers.push(tokio::spawn(async move {
            for b in mine {
                let n = FILL_BATCH.min(backlog - b * FILL_BATCH);
                let request = format!("{{\"messages\":[{}]}}", vec![one.as_str(); n].join(","));
                conn.expect(Method::POST, &paths.batch, Bytes::from(request), &OK).await?;
            }
            Ok::<_, Error>(())
        }));
    }
    for task in fillers {
        task.await.map_err(|e| Error::Protocol(format!("filler task failed: {e}")))??;
    }
    let fill = filled.elapsed();

    // Probe bodies, by the instant each send began.
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let arrived: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let prefix = format!("probe-{}-", nonce());
    let mut consumers = Vec::new();
    for _ in 0..f.consumers {
        let mut consumer = Consumer::new(endpoint, &paths, None);
        let (sent, arrived, acked, stop, prefix) =
            (sent.clone(), arrived.clone(), acked.clone(), stop.clone(), prefix.clone());
        consumers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (n, bodies) = consumer.take().await?;
                let now = Instant::now();
                acked.fetch_add(n, Ordering::Relaxed);
                for b in bodies.iter().filter(|b| b.starts_with(&prefix)) {
                    let from = sent.lock().map_err(|_| Error::Protocol("poisoned".into()))?.get(b).copied();
                    let from =
                        from.ok_or_else(|| Error::Protocol(format!("{b} arrived before it was sent")))?;
                    arrived.lock().map_err(|_| Error::Protocol("poisoned".into()))?.push(now - from);
                }
            }
            Ok::<_, Error>(())
        }));
    }

    let started = Instant::now();
    let acked_before = acked.load(Ordering::Relaxed);
    let mut probe = Conn::new(endpoint.clone());
    let mut probes = 0u64;
    let mut next = tokio::time::Instant::now();
    while started.elapsed() < f.probe_for {
        tokio::time::sleep_until(next).await;
        next += f.probe_every;
        let name = format!("{prefix}{probes}");
        let request = format!("{{\"body\":\"{name}\"{}}}", group("small"));
        sent.lock().map_err(|_| Error::Protocol("poisoned".into()))?.insert(name, Instant::now());
        probe.expect(Method::POST, &paths.send, Bytes::from(request), &[StatusCode::CREATED]).await?;
        probes += 1;
    }
    let window = started.elapsed();
    let drained = acked.load(Ordering::Relaxed) - acked_before;
    let deadline = Instant::now() + f.stall;
    let outcome = loop {
        let got = arrived.lock().map_err(|_| Error::Protocol("poisoned".into()))?.len() as u64;
        if got >= probes {
            break Ok(());
        }
        if Instant::now() > deadline || consumers.iter().any(|c| c.is_finished()) {
            break Err(Error::Protocol(format!("{got} of {probes} probe messages arrived")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop.store(true, Ordering::Relaxed);
    for c in consumers {
        c.await.map_err(|e| Error::Protocol(format!("consumer task failed: {e}")))??;
    }
    outcome?;
    setup.purge().await?;

    let mut histogram = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
        .map_err(|e| Error::Input(format!("histogram bounds: {e}")))?;
    for d in arrived.lock().map_err(|_| Error::Protocol("poisoned".into()))?.iter() {
        histogram.saturating_record((d.as_micros() as u64).max(1));
    }
    Ok(FairOutcome { latency: latency_of(&histogram), probes, drained, window, fill })
}
