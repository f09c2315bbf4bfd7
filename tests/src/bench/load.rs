//! The load engine: `concurrency` workers, each with its own connection, run one operation after
//! another for a warm-up and a measured window.
//!
//! - Closed loop (`rate: None`): each worker starts its next operation when the previous one
//!   answered; the throughput is the maximum at that concurrency.
//! - Open loop (`rate: Some(r)`): each worker follows a fixed schedule of `r / concurrency`
//!   operations per second (staggered between workers). When the previous answer came after the
//!   next scheduled start, latency is measured from the *scheduled* start, so a stall that delays
//!   later operations shows in their latency (no coordinated omission, as in wrk2). When the
//!   worker was idle, it is measured from the actual start: tokio's timer fires up to 1 ms late,
//!   and that lateness belongs to the load generator, not to the system under test.

use std::future::Future;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use super::{Error, Latency, Result};

/// One worker's operation; `run` returns how many messages it carried.
pub trait Op: Send + 'static {
    fn run(&mut self) -> impl Future<Output = Result<u64>> + Send;
}

/// How long, how parallel and how fast.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Operations per second over all workers; `None` = closed loop.
    pub rate: Option<f64>,
}

/// What the workers measured together.
pub struct Outcome {
    pub histogram: Histogram<u64>,
    pub requests: u64,
    pub messages: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Outcome {
    fn new() -> Result<Self> {
        // 1 µs to 100 s at 3 significant digits.
        let histogram = Histogram::new_with_bounds(1, 100_000_000, 3)
            .map_err(|e| Error::Input(format!("histogram bounds: {e}")))?;
        Ok(Outcome { histogram, requests: 0, messages: 0, errors: 0, first_error: None })
    }

    fn merge(&mut self, other: Outcome) -> Result<()> {
        self.histogram.add(&other.histogram).map_err(|e| Error::Input(format!("histogram merge: {e}")))?;
        self.requests += other.requests;
        self.messages += other.messages;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        Ok(())
    }

    /// Percentiles in µs (the histogram records µs).
    pub fn latency(&self) -> Latency {
        latency_of(&self.histogram)
    }
}

/// The percentiles of a histogram of µs.
pub fn latency_of(h: &Histogram<u64>) -> Latency {
    if h.is_empty() {
        return Latency::default();
    }
    Latency {
        p50_us: h.value_at_quantile(0.50) as f64,
        p99_us: h.value_at_quantile(0.99) as f64,
        p999_us: Some(h.value_at_quantile(0.999) as f64),
        max_us: h.max() as f64,
        mean_us: h.mean(),
    }
}

/// Past the measured window, a worker that fell behind its schedule stops after this much.
const OVERRUN: Duration = Duration::from_secs(5);

/// Between [`drive`]'s call and its first operation (the workers' spawn time).
pub const START_DELAY: Duration = Duration::from_millis(50);

/// Runs `workers` (one per unit of concurrency) under `plan` and merges what they measured.
pub async fn drive<O: Op>(plan: Plan, workers: Vec<O>) -> Result<Outcome> {
    let n = workers.len().max(1);
    let start = Instant::now() + START_DELAY;
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    // Each worker's share of the schedule: one operation every `interval`, offset so the workers
    // do not fire together.
    let interval = plan.rate.map(|r| Duration::from_secs_f64(n as f64 / r.max(1e-9)));
    let mut tasks = Vec::with_capacity(n);
    for (i, op) in workers.into_iter().enumerate() {
        let offset = interval.map(|iv| iv.mul_f64(i as f64 / n as f64)).unwrap_or_default();
        tasks.push(tokio::spawn(worker(op, start + offset, interval, measure_from, end)));
    }
    let mut total = Outcome::new()?;
    for t in tasks {
        let part = t.await.map_err(|e| Error::Protocol(format!("worker task failed: {e}")))??;
        total.merge(part)?;
    }
    Ok(total)
}

async fn worker<O: Op>(
    mut op: O,
    first: Instant,
    interval: Option<Duration>,
    measure_from: Instant,
    end: Instant,
) -> Result<Outcome> {
    let mut out = Outcome::new()?;
    let mut next = first;
    tokio::time::sleep_until(first).await;
    loop {
        let now = Instant::now();
        let scheduled = match interval {
            Some(_) => next,
            None => now,
        };
        if scheduled >= end || now >= end + OVERRUN {
            break;
        }
        // Behind schedule (the last answer came late): count from the scheduled start.
        // Ahead of it: wait, then count from when the timer actually let us go.
        let from = if scheduled > now {
            tokio::time::sleep_until(scheduled).await;
            Instant::now()
        } else {
            scheduled
        };
        let result = op.run().await;
        let done = Instant::now();
        if scheduled >= measure_from {
            match result {
                Ok(messages) => {
                    let us = done.saturating_duration_since(from).as_micros() as u64;
                    out.histogram.saturating_record(us.max(1));
                    out.requests += 1;
                    out.messages += messages;
                }
                Err(e) => {
                    out.errors += 1;
                    if out.first_error.is_none() {
                        out.first_error = Some(e.to_string());
                    }
                }
            }
        }
        if let Some(iv) = interval {
            next += iv;
        } else if out.errors > 0 && out.requests == 0 {
            // Nothing works: do not spin at full speed on a dead endpoint.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(out)
}
