//! mom-bench: throughput and latency (HdrHistogram p50/p99/p99.9) of the broker's HTTP and gRPC
//! APIs and of RabbitMQ, at equal concurrency and body size, in closed loop (max) and open loop (fixed rate).
//!
//! ```text
//! mom-bench http --url http://127.0.0.1:8080 --scenario send,batch,lifecycle --open-at-half --json out/http.json
//! mom-bench grpc --url http://127.0.0.1:8080 --grpc 127.0.0.1:9090 --scenario send,lifecycle --json out/grpc.json
//! mom-bench amqp --url amqp://guest:guest@127.0.0.1:5672/%2f --open-at-half --json out/amqp.json
//! mom-bench import-redis --label xadd --csv xadd.csv --requests 200000 --concurrency 50 --json out/redis-xadd.json
//! mom-bench report --dir out --json results.json > tables.md
//! mom-bench verify --url http://127.0.0.1:8080 --user admin --rate 150 --stop-file /tmp/stop --json verdict.json
//! mom-bench idle --url http://127.0.0.1:8080 --user admin --idle 5000 --rate 1000 --json idle.json
//! mom-bench fifo --url http://127.0.0.1:8080 --user admin --groups 1,10,1000 --batches 1,10 --json out/fifo.json
//! mom-bench fair --url http://127.0.0.1:8080 --user admin --backlog 100000 --json out/fair.json
//! ```
//!
//! `idle` measures another client's latency before and while 5,000 idle keep-alive connections
//! are open (issue 13's 2x bound); it raises its own open-files limit to fit them.
//!
//! `fifo` and `fair` (issue 21, `bench/fifo.rs`): FIFO queues' throughput with 1 to 1,000 groups
//! beside a standard queue's, and how long a small group's message waits behind another group's
//! backlog on a standard queue, with and without groups.
//!
//! `verify` is the correctness mode (used by the rolling-upgrade test, `operator/tests/`): sends
//! with `dedup_id`, receives and acks, and reports failed requests, lost and duplicate messages.
//!
//! `bench/run.sh` runs all of it against its own Redis, broker and RabbitMQ; see `BENCHMARKS.md`.

#[path = "../bench/mod.rs"]
mod bench;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use bench::load::{self, Plan};
use bench::{amqp, consume, cpu, fifo, grpc, http, idle, report, verify, BenchResult, Scenario};

#[derive(Parser)]
#[command(
    name = "mom-bench",
    about = "Benchmarks mom's HTTP API side by side with RabbitMQ and redis-benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the broker's HTTP API.
    Http(RunArgs),
    /// Load the broker's gRPC API (`--grpc host:port`; `--url` still names its HTTP API, which
    /// logs in and creates and empties the queue).
    Grpc(RunArgs),
    /// Load RabbitMQ over AMQP 0-9-1 (durable queue, persistent messages, confirms, manual acks).
    Amqp(RunArgs),
    /// Turn `redis-benchmark --csv` output into a result file.
    ImportRedis(ImportArgs),
    /// Replay a command captured with `redis-cli MONITOR` (e.g. the broker's send script) in
    /// `redis-benchmark`, writing its CSV: the store's own ceiling for one broker call.
    ReplayMonitor {
        /// A file of `redis-cli MONITOR` output.
        #[arg(long)]
        monitor: PathBuf,
        /// The command to replay: its first occurrence in the file.
        #[arg(long, default_value = "evalsha")]
        command: String,
        /// Only a call one of whose arguments contains this (e.g. the message body).
        #[arg(long, default_value = "")]
        containing: String,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        requests: u64,
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        #[arg(long)]
        csv: PathBuf,
    },
    /// Correctness under load: send (with dedup_id), receive and ack until --stop-file exists,
    /// then report failed requests, acknowledged sends lost, duplicates (JSON; exit 1 if any
    /// request failed or a send was lost).
    Verify(VerifyArgs),
    /// Another client's send latency (open loop) before and while `--idle` keep-alive connections
    /// sit open doing nothing; exit 1 if p50 or p99 grew more than 2x or a request failed.
    Idle(IdleArgs),
    /// Drain a queue through one consume stream (issue 25), acking in batches: over HTTP (SSE,
    /// acks to the ack route) and, with `--grpc`, over gRPC `Consume`; prints messages per second
    /// as JSON.
    Consume(ConsumeArgs),
    /// FIFO queues under load (issue 21): producers and consumers at once on a standard queue and
    /// on FIFO queues with each `--groups` count, for each `--batches` size; messages acked per
    /// second end to end.
    Fifo(FifoArgs),
    /// Fair queues (issue 21): the send-to-arrival latency of a 1-message group's messages while
    /// consumers drain another group's backlog, then the same without groups (the baseline).
    Fair(FairArgs),
    /// The lifecycle through consume streams (issue 25): producers send one message each and wait
    /// until it is acked, while `--consumers` consumers take them through streams of prefetch
    /// (credit) 1, 10, 100: SSE + ack route (`--target http`), gRPC `Consume` (`grpc`), or
    /// RabbitMQ's `basic.consume` (`amqp`). Closed loop: messages acked per second; with
    /// `--open-at-half`, the delivery latency (send → arrival at a consumer) at half that rate.
    Stream(StreamArgs),
    /// Print markdown tables of every result file in a directory (and optionally merge them to JSON).
    Report {
        #[arg(long)]
        dir: PathBuf,
        /// Also write every result as one JSON array here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

/// Where the load goes and who sends it: the options every load command shares.
#[derive(Args)]
struct Server {
    /// http://host:port of NGINX or one broker (`http`, `grpc`, `verify`, `idle`);
    /// amqp://user:pass@host:port/vhost for `amqp`.
    #[arg(long)]
    url: String,
    /// Broker user to log in as (`POST /v1/auth/token`); without it requests carry no token.
    #[arg(long, env = "MOM_BENCH_USER")]
    user: Option<String>,
    /// Password of `--user`.
    #[arg(long, env = "MOM_BENCH_PASSWORD", hide_env_values = true)]
    password: Option<String>,
}

impl Server {
    /// The broker's HTTP API, logged in as `--user` when one is given.
    async fn login(&self) -> anyhow::Result<std::sync::Arc<http::Endpoint>> {
        let credentials = self.user.as_deref().map(|u| (u, self.password.as_deref().unwrap_or("")));
        http::Endpoint::connect(&self.url, credentials).await.context("logging in")
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    server: Server,
    #[arg(long, value_delimiter = ',', default_value = "send,batch,lifecycle")]
    scenario: Vec<Scenario>,
    /// Workers, each with its own connection.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Open loop at this many requests per second over all workers (default: closed loop at max).
    #[arg(long)]
    rate: Option<f64>,
    /// After each closed-loop run, run open loop at half the rate it reached.
    #[arg(long)]
    open_at_half: bool,
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    /// Messages per batch request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Queue name prefix; each scenario uses `<prefix>-<scenario>`, emptied before each run.
    #[arg(long, default_value = "bench")]
    queue: String,
    /// Write the results as a JSON array here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// gRPC only: the broker's gRPC address (`host:port`, its `MOM_GRPC_LISTEN`).
    #[arg(long)]
    grpc: Option<String>,
    /// AMQP only: connections the workers' channels share (default: one per worker).
    #[arg(long)]
    amqp_connections: Option<usize>,
    /// `label=pid` of a process whose CPU time to record over the measured window (repeatable).
    #[arg(long)]
    watch: Vec<cpu::Watched>,
}

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    server: Server,
    #[arg(long, default_value = "verify")]
    queue: String,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Cycles per second over all workers; a cycle is a send, a receive and an ack (about 3 requests).
    #[arg(long, default_value_t = 120.0)]
    rate: f64,
    /// Stop sending once this file exists.
    #[arg(long)]
    stop_file: Option<PathBuf>,
    /// Stop sending after this many seconds at the latest.
    #[arg(long, default_value_t = 600.0)]
    max_duration: f64,
    /// Seconds to keep receiving, after sending stopped, until every acknowledged send came back.
    #[arg(long, default_value_t = 30.0)]
    drain_timeout: f64,
    #[arg(long, default_value_t = 5)]
    visibility_timeout_s: u32,
    /// Write the verdict here (else stdout).
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct ConsumeArgs {
    #[command(flatten)]
    server: Server,
    /// host:port of the broker's gRPC API; without it only HTTP runs.
    #[arg(long)]
    grpc: Option<String>,
    #[arg(long, default_value = "consume")]
    queue: String,
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Most unacked messages the stream holds (`max_in_flight`, gRPC credit), 1 to 1000.
    #[arg(long, default_value_t = 200)]
    credit: usize,
    /// Receipts per ack call, 1 to 100.
    #[arg(long, default_value_t = 50)]
    ack_batch: usize,
    #[arg(long, default_value_t = 100)]
    body_bytes: usize,
}

#[derive(Args)]
struct FifoArgs {
    #[command(flatten)]
    server: Server,
    /// The FIFO runs: messages spread over this many groups (message i in group i mod G).
    #[arg(long, value_delimiter = ',', default_value = "1,10,1000")]
    groups: Vec<usize>,
    /// Messages per send request, one set of runs each (1: `/messages`, more: `/messages/batch`).
    #[arg(long, value_delimiter = ',', default_value = "1,10")]
    batches: Vec<usize>,
    /// Workers sending, each with its own connection.
    #[arg(long, default_value_t = 8)]
    producers: usize,
    /// Workers receiving (`max` 10, `wait_s` 1) and acking, each with its own connection.
    #[arg(long, default_value_t = 8)]
    consumers: usize,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds measured, per run.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    /// Queue name prefix; each run uses `<prefix>-<scenario>`, emptied before and after.
    #[arg(long, default_value = "bench-fifo")]
    queue: String,
    #[arg(long)]
    json: Option<PathBuf>,
    /// `label=pid` of a process whose CPU time to record over the measured window (repeatable).
    #[arg(long)]
    watch: Vec<cpu::Watched>,
}

#[derive(Args)]
struct FairArgs {
    #[command(flatten)]
    server: Server,
    /// Messages of the big group waiting when the drain starts (sent in batches of 100).
    #[arg(long, default_value_t = 100_000)]
    backlog: usize,
    /// Workers draining the queue (`max` 10, `wait_s` 1, one ack call per receive).
    #[arg(long, default_value_t = 8)]
    consumers: usize,
    /// Milliseconds between two probe messages.
    #[arg(long, default_value_t = 25)]
    probe_every_ms: u64,
    /// Seconds the probe sends, from the start of the drain; the backlog must outlast them.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    #[arg(long, default_value_t = 100)]
    body_bytes: usize,
    #[arg(long, default_value = "bench-fair")]
    queue: String,
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct IdleArgs {
    #[command(flatten)]
    server: Server,
    /// Idle keep-alive connections held open during the second run.
    #[arg(long, default_value_t = 5000)]
    idle: usize,
    /// The measured client's connections.
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
    /// Sends per second over the measured client's connections (open loop).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds of load before each measured window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds measured, per run. Both runs and the opening must fit in the broker's header read
    /// timeout (30 s by default), after which it closes idle connections.
    #[arg(long, default_value_t = 8.0)]
    duration: f64,
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    #[arg(long, default_value = "bench-idle")]
    queue: String,
    /// Write the report here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct ImportArgs {
    /// Scenario label, e.g. `xadd`, `read_ack`, `send_script`.
    #[arg(long)]
    label: String,
    #[arg(long)]
    csv: PathBuf,
    /// The `-n` given to redis-benchmark.
    #[arg(long)]
    requests: u64,
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    #[arg(long)]
    json: PathBuf,
}

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Http,
    Grpc,
    Amqp,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Http => "http",
            Target::Grpc => "grpc",
            Target::Amqp => "amqp",
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Http(args) => run(Target::Http, args).await,
        Command::Grpc(args) => run(Target::Grpc, args).await,
        Command::Amqp(args) => run(Target::Amqp, args).await,
        Command::ImportRedis(a) => {
            let csv =
                std::fs::read_to_string(&a.csv).with_context(|| format!("reading {}", a.csv.display()))?;
            let r = report::import_redis_csv(&csv, &a.label, a.concurrency, a.body_bytes, a.requests)?;
            write_json(&a.json, &[r])
        }
        Command::ReplayMonitor { monitor, command, containing, host, port, requests, concurrency, csv } => {
            let text = std::fs::read_to_string(&monitor)
                .with_context(|| format!("reading {}", monitor.display()))?;
            let args = report::monitor_command(&text, &command, &containing)
                .with_context(|| format!("no {command} in {}", monitor.display()))?;
            let out = std::process::Command::new("redis-benchmark")
                .args(["-h", &host, "-p", &port.to_string(), "-c", &concurrency.to_string()])
                .args(["-n", &requests.to_string(), "--csv"])
                .args(&args)
                .output()
                .context("running redis-benchmark")?;
            anyhow::ensure!(
                out.status.success(),
                "redis-benchmark failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::write(&csv, &out.stdout).with_context(|| format!("writing {}", csv.display()))
        }
        Command::Verify(a) => verify(a).await,
        Command::Idle(a) => idle_run(a).await,
        Command::Consume(a) => consume_run(a).await,
        Command::Fifo(a) => fifo_run(a).await,
        Command::Fair(a) => fair_run(a).await,
        Command::Stream(a) => stream_run(a).await,
        Command::Report { dir, json } => {
            let results = report::load_dir(&dir)?;
            if let Some(path) = json {
                write_json(&path, &results)?;
            }
            println!("{}", report::results_table(&results));
            println!("### The issue's targets\n\n{}", report::targets_table(&results));
            let flows = report::fifo_table(&results);
            if !flows.is_empty() {
                println!("### FIFO queues (issue 21)\n\n{flows}");
            }
            let fair = report::fair_table(&results);
            if !fair.is_empty() {
                println!("### Fair queues (issue 21)\n\n{fair}");
            }
            let streams = report::stream_table(&results);
            if !streams.is_empty() {
                println!("### The lifecycle through consume streams (issue 25)\n\n{streams}");
            }
            println!(
                "### Where the CPU went (closed loop, measured window)\n\nCPU time of each process per message, from \
                 /proc, median (min–max) over the runs; \"everything else\" is the rest of the machine's busy \
                 time (the kernel's network softirqs, and other work on the machine).\n\n{}",
                report::cpu_table(&results)
            );
            Ok(())
        }
    }
}

async fn idle_run(a: IdleArgs) -> anyhow::Result<()> {
    let files = idle::raise_fd_limit(a.idle)?;
    eprintln!("mom-bench idle: open-files limit {files}");
    let endpoint = a.server.login().await?;
    let config = idle::Config {
        idle: a.idle,
        plan: Plan {
            concurrency: a.concurrency,
            warmup: Duration::from_secs_f64(a.warmup),
            duration: Duration::from_secs_f64(a.duration),
            rate: Some(a.rate),
        },
        queue: a.queue,
        body_bytes: a.body_bytes,
    };
    let r = idle::run(endpoint, config).await?;
    let row = |label: &str, run: &idle::Run| {
        format!(
            "| {label} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            run.idle_open,
            run.requests_per_s,
            run.latency.p50_us / 1000.0,
            run.latency.p99_us / 1000.0,
            run.latency.p999_us.unwrap_or(0.0) / 1000.0,
            run.latency.max_us / 1000.0,
            run.errors
        )
    };
    println!("| run | idle connections open | req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!("{}", row("before", &r.before));
    println!("{}", row("with idle connections", &r.with_idle));
    println!(
        "\np50 x{:.2}, p99 x{:.2}; {} of {} idle connections still open at the end (opened in {:.1} s); within 2x: {}",
        r.p50_ratio, r.p99_ratio, r.idle_still_open, a.idle, r.opening_s, r.within_2x
    );
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&r)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if !r.within_2x {
        std::process::exit(1);
    }
    Ok(())
}

async fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    let endpoint = a.server.login().await?;
    let config = verify::Config {
        queue: a.queue,
        concurrency: a.concurrency,
        cycles_per_s: a.rate,
        stop_file: a.stop_file,
        max_duration: Duration::from_secs_f64(a.max_duration),
        drain_timeout: Duration::from_secs_f64(a.drain_timeout),
        visibility_timeout_s: a.visibility_timeout_s,
    };
    let v = verify::run(endpoint, config).await?;
    eprintln!(
        "mom-bench verify: {} requests in {:.1} s ({:.0} req/s), failed {} {:?}, sent {} (failed {}), received {} ({} unique, {} duplicates), acked {}, lost {}, stale_connection_retries {}",
        v.requests, v.load_s, v.requests_per_s, v.failed, v.failures_by_kind, v.sent_acknowledged,
        v.send_failed, v.received, v.received_unique, v.duplicates, v.acked, v.lost,
        v.stale_connection_retries
    );
    for f in v.failures.iter().take(10) {
        eprintln!(
            "  failed at {:.2} s (unix ms {}): {} [{}] {}",
            f.at_s, f.at_unix_ms, f.request, f.kind, f.error
        );
    }
    for r in v.stale_connection_retry_log.iter().take(10) {
        eprintln!(
            "  resent at {:.2} s (unix ms {}): {} [{}] {}",
            r.at_s, r.at_unix_ms, r.request, r.kind, r.error
        );
    }
    let text = serde_json::to_string_pretty(&v)?;
    match &a.json {
        Some(path) => {
            std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?
        }
        None => println!("{text}"),
    }
    if !v.passed() {
        std::process::exit(1);
    }
    Ok(())
}

async fn consume_run(a: ConsumeArgs) -> anyhow::Result<()> {
    if !(1..=100).contains(&a.ack_batch) || !(1..=1000).contains(&a.credit) {
        anyhow::bail!("--ack-batch must be 1 to 100 and --credit 1 to 1000");
    }
    let endpoint = a.server.login().await?;
    let config = consume::Config {
        url: a.server.url.trim_end_matches('/').to_string(),
        bearer: endpoint.bearer().map(str::to_string),
        grpc: a.grpc,
        queue: a.queue,
        messages: a.messages,
        credit: a.credit,
        ack_batch: a.ack_batch,
        body_bytes: a.body_bytes,
        stall: Duration::from_secs(30),
    };
    let outcomes = consume::run(&config).await?;
    println!("{}", serde_json::to_string_pretty(&outcomes)?);
    Ok(())
}

/// Each `--batches` size: the standard queue, then a FIFO queue per `--groups` count, the same
/// producers and consumers in every run.
async fn fifo_run(a: FifoArgs) -> anyhow::Result<()> {
    let endpoint = a.server.login().await?;
    let plan = Plan {
        concurrency: a.producers + a.consumers,
        warmup: Duration::from_secs_f64(a.warmup),
        duration: Duration::from_secs_f64(a.duration),
        rate: None,
    };
    let mut results = Vec::new();
    for &batch in &a.batches {
        let kinds =
            std::iter::once(fifo::Kind::Standard).chain(a.groups.iter().map(|&g| fifo::Kind::Fifo(g)));
        for kind in kinds {
            let flow = fifo::Flow {
                kind,
                producers: a.producers,
                consumers: a.consumers,
                batch,
                body_bytes: a.body_bytes,
            };
            let scenario = flow.scenario();
            let queue = format!("{}-{scenario}", a.queue);
            eprintln!(
                "mom-bench: fifo {scenario} ({} producers, {} consumers) on queue {queue}",
                a.producers, a.consumers
            );
            let (mut setup, workers) =
                fifo::flow_workers(&endpoint, &queue, &flow).await.context("creating the queue")?;
            let (outcome, cpu) = drive(plan, workers, &a.watch).await?;
            setup.purge().await.context("emptying the queue")?;
            let r = BenchResult::of_run("fifo", scenario, &plan, a.body_bytes, batch, &outcome, cpu);
            eprintln!(
                "mom-bench:   {:.0} msg/s acked, errors {}{}",
                r.messages_per_s,
                r.errors,
                r.first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default()
            );
            results.push(r);
        }
    }
    if let Some(path) = &a.json {
        write_json(path, &results)?;
    }
    println!("{}", report::fifo_table(&results));
    Ok(())
}

/// The fairness run with groups, then the baseline without.
async fn fair_run(a: FairArgs) -> anyhow::Result<()> {
    let endpoint = a.server.login().await?;
    let mut results = Vec::new();
    for grouped in [true, false] {
        let kind = if grouped { "groups" } else { "no_groups" };
        // The backlog rides in the scenario's name, for the report's table.
        let scenario = format!("{kind}_{}", a.backlog);
        let f = fifo::Fairness {
            queue: format!("{}-{kind}", a.queue),
            backlog: a.backlog,
            grouped,
            consumers: a.consumers,
            probe_every: Duration::from_millis(a.probe_every_ms.max(1)),
            probe_for: Duration::from_secs_f64(a.duration),
            body_bytes: a.body_bytes,
            stall: Duration::from_secs(120),
        };
        eprintln!("mom-bench: fair {scenario}: {} messages of backlog, {} consumers", a.backlog, a.consumers);
        let o = fifo::fairness(&endpoint, &f).await.with_context(|| format!("fairness run {scenario}"))?;
        let secs = o.window.as_secs_f64();
        if o.drained as usize >= a.backlog {
            // Probes sent after the backlog ran out waited for nothing: the figure understates the wait.
            eprintln!(
                "mom-bench:   warning: the backlog ran out while the probe was sending; raise --backlog or lower --duration"
            );
        }
        eprintln!(
            "mom-bench:   filled in {:.1} s; {} probes: p50 {:.1} ms, p99 {:.1} ms; drained {:.0} msg/s",
            o.fill.as_secs_f64(),
            o.probes,
            o.latency.p50_us / 1000.0,
            o.latency.p99_us / 1000.0,
            o.drained as f64 / secs
        );
        results.push(BenchResult {
            target: "fair".into(),
            scenario,
            mode: "closed".into(),
            target_rate: None,
            concurrency: a.consumers,
            body_bytes: a.body_bytes,
            messages_per_request: 1,
            duration_s: secs,
            requests: o.probes,
            messages: o.drained,
            errors: 0,
            first_error: None,
            requests_per_s: o.probes as f64 / secs,
            messages_per_s: o.drained as f64 / secs,
            latency: o.latency,
            cpu: Default::default(),
        });
    }
    if let Some(path) = &a.json {
        write_json(path, &results)?;
    }
    println!("{}", report::fair_table(&results));
    Ok(())
}

fn write_json(path: &std::path::Path, results: &[BenchResult]) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(results)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

async fn run(target: Target, args: RunArgs) -> anyhow::Result<()> {
    let mut results = Vec::new();
    for &scenario in &args.scenario {
        let closed = Plan {
            concurrency: args.concurrency,
            warmup: Duration::from_secs_f64(args.warmup),
            duration: Duration::from_secs_f64(args.duration),
            rate: args.rate,
        };
        let first = measure(target, &args, scenario, closed).await?;
        let half = first.requests_per_s / 2.0;
        results.push(first);
        if args.open_at_half && args.rate.is_none() && half > 0.0 {
            results.push(measure(target, &args, scenario, Plan { rate: Some(half), ..closed }).await?);
        }
    }
    if let Some(path) = &args.json {
        write_json(path, &results)?;
    }
    println!("{}", report::results_table(&results));
    Ok(())
}

/// Runs the load and records the watched processes' CPU over the same measured window.
async fn drive<O: load::Op>(
    plan: Plan,
    workers: Vec<O>,
    watch: &[cpu::Watched],
) -> anyhow::Result<(load::Outcome, cpu::CpuUse)> {
    let window = tokio::spawn(cpu::measure(watch.to_vec(), load::START_DELAY + plan.warmup, plan.duration));
    let outcome = load::drive(plan, workers).await?;
    Ok((outcome, window.await?))
}

/// One run of one scenario on a freshly emptied queue.
async fn measure(
    target: Target,
    args: &RunArgs,
    scenario: Scenario,
    plan: Plan,
) -> anyhow::Result<BenchResult> {
    let queue = format!("{}-{}", args.queue, scenario.name());
    let per_request = if scenario == Scenario::Batch { args.batch } else { 1 };
    let what = match plan.rate {
        Some(r) => format!("open loop at {r:.0} req/s"),
        None => "closed loop".to_string(),
    };
    eprintln!(
        "mom-bench: {} {scenario} ({what}, concurrency {}) on queue {queue}",
        target.name(),
        plan.concurrency
    );
    let (outcome, cpu) = match target {
        Target::Http | Target::Grpc => {
            let endpoint = args.server.login().await?;
            let mut setup = http::Setup::new(&endpoint, &queue).await.context("creating the queue")?;
            let outcome = if target == Target::Grpc {
                let addr = args.grpc.as_deref().context("`mom-bench grpc` needs --grpc host:port")?;
                let opens = (0..plan.concurrency).map(|_| {
                    grpc::Worker::open(addr, endpoint.bearer(), &queue, scenario, args.body_bytes, args.batch)
                });
                let workers =
                    futures::future::try_join_all(opens).await.context("connecting to the gRPC API")?;
                drive(plan, workers, &args.watch).await?
            } else {
                let workers =
                    setup.workers(&endpoint, scenario, plan.concurrency, args.body_bytes, args.batch);
                drive(plan, workers, &args.watch).await?
            };
            setup.purge().await.context("emptying the queue")?;
            outcome
        }
        Target::Amqp => {
            amqp::prepare(&args.server.url, &queue).await.context("declaring the queue")?;
            let n = args.amqp_connections.unwrap_or(plan.concurrency).clamp(1, plan.concurrency.max(1));
            let conns = amqp::connections(&args.server.url, n).await.context("connecting to RabbitMQ")?;
            let opens = (0..plan.concurrency).map(|i| {
                amqp::Worker::open(&conns[i % conns.len()], &queue, scenario, args.body_bytes, args.batch, i)
            });
            let workers = futures::future::try_join_all(opens).await.context("opening channels")?;
            let outcome = drive(plan, workers, &args.watch).await?;
            for c in &conns {
                // Best effort: the measurement is done; RabbitMQ requeues what was unacked.
                let _ = c.close(200, "done".into()).await;
            }
            amqp::prepare(&args.server.url, &queue).await.context("emptying the queue")?;
            outcome
        }
    };
    let r = BenchResult::of_run(
        target.name(),
        scenario.name().into(),
        &plan,
        args.body_bytes,
        per_request,
        &outcome,
        cpu,
    );
    eprintln!(
        "mom-bench:   {:.0} msg/s, {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, errors {}{}",
        r.messages_per_s,
        r.requests_per_s,
        r.latency.p50_us / 1000.0,
        r.latency.p99_us / 1000.0,
        r.errors,
        r.first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default()
    );
    Ok(r)
}

#[derive(Args)]
struct StreamArgs {
    #[command(flatten)]
    server: Server,
    /// `http` (SSE stream, acks to the ack route), `grpc` (`Consume`) or `amqp` (RabbitMQ).
    #[arg(long, value_parser = ["http", "grpc", "amqp"])]
    target: String,
    /// Prefetch values, one run each: `max_in_flight`, gRPC credit, AMQP `basic.qos`.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    prefetch: Vec<usize>,
    /// Consumers, each with one stream (one AMQP connection and consumer) of its own.
    #[arg(long, default_value_t = 4)]
    consumers: usize,
    /// Producers, each with its own connection (AMQP: channel), one message at a time.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// After each closed-loop run, run open loop at half the rate it reached: that row's latency
    /// is the delivery latency.
    #[arg(long)]
    open_at_half: bool,
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    /// Queue name prefix; each prefetch uses `<prefix>-p<N>`, emptied before and after each run.
    #[arg(long, default_value = "bench-stream")]
    queue: String,
    /// gRPC only: the broker's gRPC address (`host:port`).
    #[arg(long)]
    grpc: Option<String>,
    /// AMQP only: connections the producers' channels share.
    #[arg(long, default_value_t = 4)]
    amqp_connections: usize,
    #[arg(long)]
    json: Option<PathBuf>,
    /// `label=pid` of a process whose CPU time to record over the measured window (repeatable).
    #[arg(long)]
    watch: Vec<cpu::Watched>,
}

/// Each prefetch: closed loop, then (with `--open-at-half`) open loop at half its rate.
async fn stream_run(a: StreamArgs) -> anyhow::Result<()> {
    use bench::stream::{self, Transport};
    let transport = match a.target.as_str() {
        "grpc" => Transport::Grpc,
        "amqp" => Transport::Amqp,
        _ => Transport::Http,
    };
    if a.prefetch.iter().any(|p| !(1..=1000).contains(p)) {
        anyhow::bail!("--prefetch values must be 1 to 1000 (the broker's bound on credit)");
    }
    let endpoint = match transport {
        Transport::Amqp => None,
        _ => Some(a.server.login().await?),
    };
    let mut results = Vec::new();
    for &prefetch in &a.prefetch {
        let config = stream::Config {
            transport,
            endpoint: endpoint.clone(),
            url: a.server.url.clone(),
            grpc: a.grpc.clone(),
            amqp_connections: a.amqp_connections,
            queue: format!("{}-p{prefetch}", a.queue),
            prefetch,
            consumers: a.consumers,
            producers: a.concurrency,
            body_bytes: a.body_bytes,
        };
        let closed = Plan {
            concurrency: a.concurrency,
            warmup: Duration::from_secs_f64(a.warmup),
            duration: Duration::from_secs_f64(a.duration),
            rate: None,
        };
        let first = stream_once(&a, config.clone(), closed).await?;
        let half = first.messages_per_s / 2.0;
        results.push(first);
        if a.open_at_half && half > 0.0 {
            results.push(stream_once(&a, config, Plan { rate: Some(half), ..closed }).await?);
        }
    }
    if let Some(path) = &a.json {
        write_json(path, &results)?;
    }
    println!("{}", report::results_table(&results));
    Ok(())
}

/// One run: a fresh queue, the consumers' streams, the producers driven by `plan`. Closed loop:
/// the latency is the whole lifecycle (send → acked); open loop: the delivery latency.
async fn stream_once(
    a: &StreamArgs,
    config: bench::stream::Config,
    plan: Plan,
) -> anyhow::Result<BenchResult> {
    let (target, prefetch) = (config.transport.name(), config.prefetch);
    let what = match plan.rate {
        Some(r) => format!("open loop at {r:.0} msg/s"),
        None => "closed loop".to_string(),
    };
    eprintln!(
        "mom-bench: {target} stream, prefetch {prefetch} ({what}, {} producers, {} consumers) on queue {}",
        plan.concurrency, config.consumers, config.queue
    );
    let (session, producers) =
        bench::stream::Session::open(config).await.context("opening the queue, streams and producers")?;
    session.time_from_now(plan.warmup);
    let (outcome, cpu) = drive(plan, producers, &a.watch).await?;
    let timings = session.close().await.context("closing the streams")?;
    let delivery = &timings.delivery;
    let mut r =
        BenchResult::of_run(target, bench::stream::scenario(prefetch), &plan, a.body_bytes, 1, &outcome, cpu);
    // Open loop: the latency that matters is the delivery's (send → arrival), not the lifecycle's.
    if plan.rate.is_some() {
        r.latency = delivery.clone();
    }
    eprintln!(
        "mom-bench:   {:.0} msg/s acked, lifecycle p50 {:.2} ms p99 {:.2} ms, delivery p50 {:.2} ms p99 {:.2} ms, \
         arrival to ack p50 {:.2} ms p99 {:.2} ms, errors {}{}",
        r.messages_per_s,
        outcome.latency().p50_us / 1000.0,
        outcome.latency().p99_us / 1000.0,
        delivery.p50_us / 1000.0,
        delivery.p99_us / 1000.0,
        timings.settle.p50_us / 1000.0,
        timings.settle.p99_us / 1000.0,
        r.errors,
        r.first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default()
    );
    Ok(r)
}
