//! Idle connections against everyone else (issue 13: "5,000 idle connections do not slow other
//! clients' requests by more than 2x"). Measures another client's sends (open loop, so latency is
//! comparable between runs) with no idle connection open, then opens `idle` keep-alive connections
//! (each makes one `GET /healthz`, then says nothing) and measures the same load again while they
//! are open, and reports both, their ratios, and how many idle connections were still open at the
//! end (the broker closes one left idle past `MOM_HEADER_READ_TIMEOUT_S`, 30 s by default, so the
//! whole measurement must fit in that).

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use hyper::{Method, StatusCode, Uri};
use serde::Serialize;

use super::http::{Conn, Endpoint, Setup};
use super::load::{self, Plan};
use super::{Latency, Result, Scenario};

/// Connections opened at once while setting up the idle ones.
const OPENING_AT_ONCE: usize = 64;

pub struct Config {
    /// Idle connections to hold open during the second run.
    pub idle: usize,
    /// The other client's load (run twice).
    pub plan: Plan,
    pub queue: String,
    pub body_bytes: usize,
}

/// One run of the other client's load.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub idle_open: usize,
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub requests_per_s: f64,
    pub latency: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub duration_s: f64,
    pub body_bytes: usize,
    pub before: Run,
    pub with_idle: Run,
    /// Seconds it took to open the idle connections.
    pub opening_s: f64,
    /// Idle connections still open after the second run.
    pub idle_still_open: usize,
    pub p50_ratio: f64,
    pub p99_ratio: f64,
    /// Both ratios at most 2 and no request failed.
    pub within_2x: bool,
}

pub async fn run(endpoint: Arc<Endpoint>, config: Config) -> Result<Report> {
    let mut setup = Setup::new(&endpoint, &config.queue).await?;
    let before = measure(&endpoint, &mut setup, &config, 0).await?;

    let started = std::time::Instant::now();
    let idle = open_idle(&endpoint, config.idle).await?;
    let opening_s = started.elapsed().as_secs_f64();
    let open_now = idle.iter().filter(|c| c.is_open()).count();
    eprintln!("mom-bench idle: {open_now} idle connections open in {opening_s:.1} s; measuring again");
    let with_idle = measure(&endpoint, &mut setup, &config, open_now).await?;
    let idle_still_open = idle.iter().filter(|c| c.is_open()).count();
    drop(idle);

    let ratio = |a: f64, b: f64| if a > 0.0 { b / a } else { f64::INFINITY };
    let p50_ratio = ratio(before.latency.p50_us, with_idle.latency.p50_us);
    let p99_ratio = ratio(before.latency.p99_us, with_idle.latency.p99_us);
    Ok(Report {
        concurrency: config.plan.concurrency,
        rate: config.plan.rate,
        duration_s: config.plan.duration.as_secs_f64(),
        body_bytes: config.body_bytes,
        within_2x: p50_ratio <= 2.0
            && p99_ratio <= 2.0
            && before.errors == 0
            && with_idle.errors == 0
            && idle_still_open == config.idle,
        before,
        with_idle,
        opening_s,
        idle_still_open,
        p50_ratio,
        p99_ratio,
    })
}

async fn measure(
    endpoint: &Arc<Endpoint>,
    setup: &mut Setup,
    config: &Config,
    idle_open: usize,
) -> Result<Run> {
    let workers = setup.workers(endpoint, Scenario::Send, config.plan.concurrency, config.body_bytes, 1);
    let outcome = load::drive(config.plan, workers).await?;
    setup.purge().await?;
    Ok(Run {
        idle_open,
        requests: outcome.requests,
        errors: outcome.errors,
        first_error: outcome.first_error.clone(),
        requests_per_s: outcome.requests as f64 / config.plan.duration.as_secs_f64(),
        latency: outcome.latency(),
    })
}

/// `n` keep-alive connections, each after one `GET /healthz`.
async fn open_idle(endpoint: &Arc<Endpoint>, n: usize) -> Result<Vec<Conn>> {
    let health = Uri::from_static("/healthz");
    stream::iter(0..n)
        .map(|_| {
            let (endpoint, health) = (endpoint.clone(), health.clone());
            async move {
                let mut conn = Conn::new(endpoint);
                conn.expect(Method::GET, &health, Bytes::new(), &[StatusCode::OK]).await?;
                Ok::<_, super::Error>(conn)
            }
        })
        .buffer_unordered(OPENING_AT_ONCE)
        .try_collect()
        .await
}

/// Raises this process's limit of open files to fit `n` connections and some to spare.
pub fn raise_fd_limit(n: usize) -> Result<u64> {
    let want = n as u64 + 1024;
    let got = rlimit::increase_nofile_limit(want)?;
    if got < want {
        return Err(super::Error::Input(format!(
            "{n} connections need {want} open files; the hard limit allows {got} (raise it: ulimit -Hn)"
        )));
    }
    Ok(got)
}
