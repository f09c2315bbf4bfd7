//! mom-bench: load generators for the broker's HTTP and gRPC APIs and for RabbitMQ over AMQP, driven by the
//! same open- or closed-loop [`load`] engine, recorded in HdrHistograms, and reported as markdown
//! and JSON next to `redis-benchmark`'s figures.
//!
//! Used by `src/bin/mom-bench.rs` and `bench/run.sh`; see `BENCHMARKS.md`.

pub mod amqp;
pub mod consume;
pub mod cpu;
pub mod fifo;
pub mod grpc;
pub mod http;
pub mod idle;
pub mod load;
pub mod report;
pub mod stream;
pub mod verify;

use std::fmt;

use serde::{Deserialize, Serialize};

/// Everything that can go wrong while benchmarking; the binary turns it into an `anyhow` report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("HTTP request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("unexpected HTTP {status} from {path}: {body}")]
    Status { status: u16, path: String, body: String },
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("AMQP: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("{0}")]
    Protocol(String),
    #[error("bad input: {0}")]
    Input(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What one operation of a benchmark does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// One message per request, waiting for it to be stored (HTTP 201 / publisher confirm).
    Send,
    /// `--batch` messages per request (HTTP `/messages/batch` / that many publishes, then all confirms).
    Batch,
    /// Send one, receive one, ack it: three round trips per message on HTTP.
    Lifecycle,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Send => "send",
            Scenario::Batch => "batch",
            Scenario::Lifecycle => "lifecycle",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A worker that can run the operation of each scenario; [`load::Op`] dispatches on
/// [`Scenarios::scenario`].
pub trait Scenarios: Send + 'static {
    fn scenario(&self) -> Scenario;
    fn send(&mut self) -> impl std::future::Future<Output = Result<u64>> + Send;
    fn send_batch(&mut self) -> impl std::future::Future<Output = Result<u64>> + Send;
    fn lifecycle(&mut self) -> impl std::future::Future<Output = Result<u64>> + Send;
}

impl<T: Scenarios> load::Op for T {
    async fn run(&mut self) -> Result<u64> {
        match self.scenario() {
            Scenario::Send => self.send().await,
            Scenario::Batch => self.send_batch().await,
            Scenario::Lifecycle => self.lifecycle().await,
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
    /// `None` where the source does not report it (redis-benchmark's CSV).
    pub p999_us: Option<f64>,
    pub max_us: f64,
    pub mean_us: f64,
}

/// One measured run: what ran, against what, and what came out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchResult {
    /// `http` or `grpc` (the broker), `amqp` (RabbitMQ) or `redis` (redis-benchmark).
    pub target: String,
    /// `send`, `batch`, `lifecycle`, or a redis-benchmark label.
    pub scenario: String,
    /// `closed` (as fast as answers come) or `open` (a fixed schedule).
    pub mode: String,
    /// Requests per second asked for in open loop.
    pub target_rate: Option<f64>,
    pub concurrency: usize,
    pub body_bytes: usize,
    pub messages_per_request: usize,
    pub duration_s: f64,
    pub requests: u64,
    pub messages: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub requests_per_s: f64,
    pub messages_per_s: f64,
    /// Per request (a lifecycle "request" is the whole send → receive → ack).
    pub latency: Latency,
    /// CPU used by each watched process during the measured window.
    #[serde(default)]
    pub cpu: cpu::CpuUse,
}

impl BenchResult {
    /// The result of one run of `plan` by the load engine (`load::drive`): its mode and rate are
    /// the plan's, its rates the outcome's over the measured window.
    pub fn of_run(
        target: &str,
        scenario: String,
        plan: &load::Plan,
        body_bytes: usize,
        messages_per_request: usize,
        outcome: &load::Outcome,
        cpu: cpu::CpuUse,
    ) -> Self {
        let secs = plan.duration.as_secs_f64();
        BenchResult {
            target: target.into(),
            scenario,
            mode: if plan.rate.is_some() { "open" } else { "closed" }.into(),
            target_rate: plan.rate,
            concurrency: plan.concurrency,
            body_bytes,
            messages_per_request,
            duration_s: secs,
            requests: outcome.requests,
            messages: outcome.messages,
            errors: outcome.errors,
            first_error: outcome.first_error.clone(),
            requests_per_s: outcome.requests as f64 / secs,
            messages_per_s: outcome.messages as f64 / secs,
            latency: outcome.latency(),
            cpu,
        }
    }
}

/// The JSON body of one message of `size` bytes: `{"body":"xxx…"}`.
pub fn message_json(size: usize) -> String {
    format!("{{\"body\":\"{}\"}}", "x".repeat(size))
}

/// A body of `size` bytes as AMQP sends it.
pub fn message_bytes(size: usize) -> Vec<u8> {
    vec![b'x'; size]
}
