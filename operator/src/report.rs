//! Progress: where each step of `up`, `down` and `upgrade` is announced and timed. The CLI
//! prints a line per step; library callers and tests stay [`Silent`].

use std::time::{Duration, Instant};

/// Where progress goes: the CLI prints a line per step with its duration.
pub trait Reporter: Sync {
    /// A step begins; `long` when it may take a while (waiting for health).
    fn started(&self, what: &str, long: bool);
    fn finished(&self, what: &str, took: Duration);
}

/// A reporter that says nothing (library callers, tests).
pub struct Silent;

impl Reporter for Silent {
    fn started(&self, _: &str, _: bool) {}
    fn finished(&self, _: &str, _: Duration) {}
}

/// Runs `action` as one reported step: announced, timed, and reported finished when it succeeds.
pub async fn step<T, E, F>(report: &dyn Reporter, what: String, long: bool, action: F) -> Result<T, E>
where
    F: std::future::Future<Output = Result<T, E>>,
{
    report.started(&what, long);
    tracing::debug!(step = %what, "started");
    let started = Instant::now();
    let value = action.await?;
    tracing::debug!(step = %what, took_ms = started.elapsed().as_millis() as u64, "finished");
    report.finished(&what, started.elapsed());
    Ok(value)
}
