//! A nemesis in the spirit of Jepsen: a seeded, reproducible schedule of faults against three
//! brokers, a private Redis (AOF, `appendfsync always`) and a private ZooKeeper (one server, or
//! an ensemble of three), while clients send, receive, ack and nack, and create, patch and
//! delete queues, topics, subscriptions, users and grants through every node at once. Every
//! request is recorded in a [`History`]; the [`checker`] then reads it for lost or resurrected
//! messages, stale metadata, nodes that disagree with ZooKeeper after a heal, and two leaders in
//! one fencing epoch.
//!
//! - [`schedule`]: which fault, on which node, for how long (from the seed alone);
//! - [`fleet`]: the processes, and how each fault is made and healed;
//! - [`net`]: network namespaces and partitions;
//! - [`workload`]: the clients;
//! - [`views`]: what a node serves and what ZooKeeper holds, in one shape;
//! - [`history`], [`checker`].
//!
//! `tests/tests/nemesis.rs` runs it (bounded, in CI); `scripts/nemesis.sh` soaks it.

pub mod checker;
pub mod fleet;
pub mod history;
pub mod net;
pub mod schedule;
pub mod views;
pub mod workload;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

pub use checker::Violation;
pub use history::History;

use fleet::{Fleet, BROKERS};
use history::{Op, Outcome, Phase};
use schedule::Schedule;
use workload::Ctx;

/// One run: the seed decides the schedule and every client's choices.
#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    /// ZooKeeper as an ensemble of three (else one server).
    pub ensemble: bool,
    /// How long faults keep being started.
    pub length: Duration,
}

impl Config {
    /// `MOM_NEMESIS_SEED`, `MOM_NEMESIS_ZK` (1 or 3 servers) and `MOM_NEMESIS_MINUTES`, each
    /// when set, else the given values.
    pub fn from_env_or(seed: u64, ensemble: bool, minutes: f64) -> Config {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let seed = var("MOM_NEMESIS_SEED")
            .map_or(seed, |s| s.trim().parse().unwrap_or_else(|e| panic!("MOM_NEMESIS_SEED={s}: {e}")));
        let ensemble = var("MOM_NEMESIS_ZK").map_or(ensemble, |z| match z.trim() {
            "1" => false,
            "3" => true,
            other => panic!("MOM_NEMESIS_ZK={other}: 1 or 3 ZooKeeper servers"),
        });
        let minutes = var("MOM_NEMESIS_MINUTES")
            .map_or(minutes, |m| m.trim().parse().unwrap_or_else(|e| panic!("MOM_NEMESIS_MINUTES={m}: {e}")));
        Config { seed, ensemble, length: Duration::from_secs_f64(minutes * 60.0) }
    }

    /// Whether `MOM_NEMESIS_SEED` chooses the seed.
    pub fn seed_from_env() -> bool {
        std::env::var("MOM_NEMESIS_SEED").is_ok_and(|s| !s.trim().is_empty())
    }

    /// The environment that repeats this run.
    pub fn reproduce(&self) -> String {
        format!(
            "MOM_NEMESIS_SEED={} MOM_NEMESIS_ZK={} MOM_NEMESIS_MINUTES={}",
            self.seed,
            if self.ensemble { 3 } else { 1 },
            self.length.as_secs_f64() / 60.0
        )
    }
}

/// A seed that differs from run to run.
pub fn random_seed() -> u64 {
    rand::random_range(1..1_000_000)
}

/// What a run did and found.
#[derive(Debug)]
pub struct Report {
    pub config: Config,
    pub took: Duration,
    /// The faults, in order.
    pub faults: Vec<String>,
    /// Operations by kind and outcome.
    pub counts: BTreeMap<String, usize>,
    /// `mom_metadata_resyncs_total` by cause at the end (empty before brokers count them).
    pub resyncs: Vec<(String, f64)>,
    pub violations: Vec<Violation>,
    /// The fault in force, or last healed, when the first violation showed: (number, what).
    pub first_after: Option<(usize, String)>,
    /// Where the whole history was written.
    pub history_file: Option<PathBuf>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Violations of one kind printed in full; the rest are counted.
const PRINTED_PER_KIND: usize = 3;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "nemesis seed {} with {} ZooKeeper server(s): {} fault(s) in {:.0?}, {} violation(s); repeat with {}",
            c.seed,
            if c.ensemble { 3 } else { 1 },
            self.faults.len(),
            self.took,
            self.violations.len(),
            c.reproduce()
        )?;
        for (i, fault) in self.faults.iter().enumerate() {
            writeln!(f, "  fault #{}: {fault}", i + 1)?;
        }
        let counts: Vec<String> = self.counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
        writeln!(f, "  operations: {}", counts.join(", "))?;
        if !self.resyncs.is_empty() {
            writeln!(f, "  mom_metadata_resyncs_total: {:?}", self.resyncs)?;
        }
        if let Some(path) = &self.history_file {
            writeln!(f, "  history: {}", path.display())?;
        }
        if let Some(first) = self.violations.iter().min_by_key(|v| v.at) {
            let after = match &self.first_after {
                Some((n, what)) => format!(", after fault #{n}: {what}"),
                None => String::new(),
            };
            writeln!(
                f,
                "  first violation at {:.3} s{after}: {}: {}",
                first.at.as_secs_f64(),
                first.kind,
                first.what
            )?;
        }
        let mut by_kind: BTreeMap<&str, Vec<&Violation>> = BTreeMap::new();
        for v in &self.violations {
            by_kind.entry(v.kind).or_default().push(v);
        }
        for (kind, found) in by_kind {
            writeln!(f, "--- {} violation(s) of kind \"{kind}\" (seed {}):", found.len(), c.seed)?;
            for v in found.iter().take(PRINTED_PER_KIND) {
                write!(f, "{v}")?;
            }
            if found.len() > PRINTED_PER_KIND {
                writeln!(f, "  ... and {} more", found.len() - PRINTED_PER_KIND)?;
            }
        }
        Ok(())
    }
}

/// How long the consumers may take, once the faults and producers stopped, to receive what is
/// left (messages in flight come back after the data queues' visibility timeout).
const FINAL_DRAIN: Duration = Duration::from_secs(60);

/// Runs the schedule of `config` against a fresh fleet and checks the history.
pub async fn run(config: &Config) -> Report {
    let started = Instant::now();
    eprintln!("nemesis: starting; repeat with {}", config.reproduce());
    let history = History::new();
    let mut fleet = Fleet::start(config.ensemble).await;
    let ctx = Ctx::new(history.clone(), fleet.clients.clone(), BROKERS, config.seed);
    let (zk, root) = fleet.zk_root();
    let tasks = ctx.spawn(zk, root);
    let phase = |what: &str| eprintln!("nemesis [{:>6.1} s] {what}", started.elapsed().as_secs_f64());
    phase("fleet up, clients running");
    assert!(ctx.traffic_flows(Duration::from_secs(60)).await, "no traffic flowed before any fault");

    let mut schedule = Schedule::new(config.seed, fleet.setup());
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x6e65_6d65_7369_7300);
    let until = Instant::now() + config.length;
    let mut faults = Vec::new();
    while Instant::now() < until {
        let step = schedule.next_step();
        faults.push(format!("{}, held {:.1?}", step.fault, step.hold));
        phase(&format!("fault #{}: {}", faults.len(), faults[faults.len() - 1]));
        let note = fleet.apply(&ctx, faults.len(), step, &mut rng).await;
        phase(&format!("fault #{}: {note}", faults.len()));
        if let Some(last) = faults.last_mut() {
            last.push_str(&format!(": {note}"));
        }
    }
    phase("faults over; draining what is left");
    ctx.finish(tasks, FINAL_DRAIN).await;
    let resyncs = fleet.resyncs().await;
    drop(fleet);
    phase("checking the history");

    let entries = history.entries();
    let violations = checker::check(&entries);
    let first_after = violations.iter().map(|v| v.at).min().and_then(|at| {
        entries.iter().rev().find_map(|e| match &e.op {
            Op::Fault { n, what, phase: Phase::Inject, .. } if e.start <= at => Some((*n, what.clone())),
            _ => None,
        })
    });
    let path = std::env::temp_dir().join(format!(
        "mom-nemesis-seed{}-zk{}.history",
        config.seed,
        if config.ensemble { 3 } else { 1 }
    ));
    let history_file = history.dump(&path).ok().map(|()| path);
    Report {
        config: config.clone(),
        took: started.elapsed(),
        faults,
        counts: counts(&entries),
        resyncs,
        violations,
        first_after,
        history_file,
    }
}

/// Operations by kind and outcome, e.g. `send:sent 1200`.
fn counts(entries: &[history::Entry]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in entries {
        let op = match &e.op {
            Op::Send { .. } => "send",
            Op::Receive { .. } => "receive",
            Op::Settle { nack: false, .. } => "ack",
            Op::Settle { nack: true, .. } => "nack",
            Op::Write { .. } => "metadata write",
            Op::Read { .. } => "metadata read",
            Op::Fault { phase: Phase::Inject, .. } => "fault",
            Op::Fault { phase: Phase::Heal, .. } => continue,
            Op::Observe { .. } => "convergence round",
            Op::Leaders { .. } => "leader sample",
            Op::Progress { .. } => continue,
        };
        let outcome = match &e.outcome {
            Outcome::Ok => "ok",
            Outcome::Sent { fresh: true, .. } => "201",
            Outcome::Sent { fresh: false, .. } => "200 (dedup)",
            Outcome::Delivered(got) if got.is_empty() => "empty",
            Outcome::Delivered(_) => "messages",
            Outcome::Read(_) => "answered",
            Outcome::Failed(_) => "refused",
            Outcome::Unknown(_) => "unknown",
            Outcome::Unexpected(_) => "UNEXPECTED",
        };
        *counts.entry(format!("{op}:{outcome}")).or_insert(0) += 1;
    }
    counts
}
