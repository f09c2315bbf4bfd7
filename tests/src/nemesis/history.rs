//! The history of a run: every operation a client or the nemesis performed, on which node, when it
//! started and ended (time since the run began), and what came of it. The checker reads nothing
//! else, so whatever it reports can be traced back to entries printed with it.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A piece of metadata clients can observe, seen as a register holding one value at a time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reg {
    /// Whether queue NAME exists.
    Queue(String),
    /// Queue NAME's `visibility_timeout_s`.
    QueueVisibility(String),
    User(String),
    Topic(String),
    /// `TOPIC/NAME`.
    Subscription(String),
    /// Whether USER may publish to QUEUE.
    Grant {
        queue: String,
        user: String,
    },
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reg::Queue(q) => write!(f, "queue {q}"),
            Reg::QueueVisibility(q) => write!(f, "queue {q}'s visibility_timeout_s"),
            Reg::User(u) => write!(f, "user {u}"),
            Reg::Topic(t) => write!(f, "topic {t}"),
            Reg::Subscription(s) => write!(f, "subscription {s}"),
            Reg::Grant { queue, user } => write!(f, "{user}'s publish grant on {queue}"),
        }
    }
}

/// A register's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Val {
    Absent,
    Present,
    Num(u64),
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Absent => f.write_str("absent"),
            Val::Present => f.write_str("present"),
            Val::Num(n) => write!(f, "{n}"),
        }
    }
}

/// One message as a receive returned it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub body: String,
    pub receive_count: u64,
}

/// Which nodes' view of the metadata a fault may hold up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One broker (killed, drained, paused, cut off): the others keep seeing changes.
    Node(usize),
    /// Every broker (ZooKeeper itself).
    Cluster,
    /// None: the fault touches messages only (Redis).
    Data,
}

/// What the nemesis was doing with a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The fault is being made (it is in force from this entry's start).
    Inject,
    /// The fault is being repaired (it is over at this entry's end).
    Heal,
}

#[derive(Debug, Clone)]
pub enum Op {
    /// A send whose body is also its `dedup_id`.
    Send {
        queue: String,
        body: String,
    },
    Receive {
        queue: String,
    },
    /// One receipt of an ack (or nack) request.
    Settle {
        queue: String,
        id: String,
        receive_count: u64,
        nack: bool,
    },
    /// A metadata change that sets `reg` to `val`.
    Write {
        reg: Reg,
        val: Val,
    },
    /// A request whose answer tells the value of `reg` on the node that answered; `via` says how.
    Read {
        reg: Reg,
        via: &'static str,
    },
    /// Fault number `n` of the schedule.
    Fault {
        n: usize,
        what: String,
        phase: Phase,
        scope: Scope,
    },
    /// A round comparing every live node's metadata and membership with ZooKeeper's, after fault
    /// `n`; every node must agree within the convergence bound counted from `since`.
    Observe {
        n: usize,
        since: Duration,
    },
    /// The nodes that said `mom_leader 1` in one sampling round, with the fencing epoch each
    /// holds in ZooKeeper (the sequence number of its lowest leader candidate; `None`: it holds
    /// none, or ZooKeeper did not answer).
    Leaders {
        claims: Vec<(String, Option<u64>)>,
    },
    /// Whether traffic flowed again after fault `n` healed.
    Progress {
        n: usize,
    },
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Ok,
    /// A send's id; `fresh` for 201, false for 200 (a dedup hit).
    Sent {
        id: String,
        fresh: bool,
    },
    Delivered(Vec<Delivery>),
    Read(Val),
    /// A definite refusal: the operation did not take effect (e.g. `receipt_invalid`).
    Failed(String),
    /// No answer, a timeout or a 503: it may or may not have taken effect.
    Unknown(String),
    /// An answer that no fault explains.
    Unexpected(String),
}

impl Outcome {
    /// True for outcomes after which the operation may have taken effect.
    pub fn may_have_happened(&self) -> bool {
        !matches!(self, Outcome::Failed(_) | Outcome::Unexpected(_))
    }
}

/// One operation of the history.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Who did it: `producer-1`, `nemesis`, ...
    pub process: String,
    /// The node (0-based slot) it was sent to, if any.
    pub node: Option<usize>,
    pub start: Duration,
    pub end: Duration,
    pub op: Op,
    pub outcome: Outcome,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let node = self.node.map(|n| format!("node-{}", n + 1)).unwrap_or_else(|| "-".into());
        write!(
            f,
            "[{:>8.3} {:>8.3}] {:<10} {:<6} ",
            self.start.as_secs_f64(),
            self.end.as_secs_f64(),
            self.process,
            node
        )?;
        match &self.op {
            Op::Send { queue, body } => write!(f, "send {body} to {queue}")?,
            Op::Receive { queue } => write!(f, "receive from {queue}")?,
            Op::Settle { queue, id, receive_count, nack } => {
                let what = if *nack { "nack" } else { "ack" };
                write!(f, "{what} {queue} id {id} delivery {receive_count}")?
            }
            Op::Write { reg, val } => write!(f, "write {reg} := {val}")?,
            Op::Read { reg, via } => write!(f, "read {reg} ({via})")?,
            Op::Fault { n, what, phase, .. } => write!(f, "fault #{n} {what}: {phase:?}")?,
            Op::Observe { n, since } => {
                write!(f, "convergence after fault #{n} (counted from {:.3})", since.as_secs_f64())?
            }
            Op::Leaders { claims } => write!(f, "mom_leader 1 on {claims:?}")?,
            Op::Progress { n } => write!(f, "traffic after fault #{n}")?,
        }
        match &self.outcome {
            Outcome::Ok => write!(f, " => ok"),
            Outcome::Sent { id, fresh } => write!(f, " => id {id}{}", if *fresh { "" } else { " (dedup)" }),
            Outcome::Delivered(got) => {
                let got: Vec<String> =
                    got.iter().map(|d| format!("{} id {} #{}", d.body, d.id, d.receive_count)).collect();
                write!(f, " => [{}]", got.join(", "))
            }
            Outcome::Read(val) => write!(f, " => {val}"),
            Outcome::Failed(why) => write!(f, " => refused: {why}"),
            Outcome::Unknown(why) => write!(f, " => unknown: {why}"),
            Outcome::Unexpected(why) => write!(f, " => UNEXPECTED: {why}"),
        }
    }
}

/// The shared, append-only history of one run; cheap to clone.
#[derive(Debug, Clone)]
pub struct History {
    began: Instant,
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    pub fn new() -> Self {
        Self { began: Instant::now(), entries: Arc::default() }
    }

    /// Time since the run began.
    pub fn now(&self) -> Duration {
        self.began.elapsed()
    }

    /// Records an operation that started at `start` and ends now.
    pub fn push(&self, process: &str, node: Option<usize>, start: Duration, op: Op, outcome: Outcome) {
        let entry = Entry { process: process.to_string(), node, start, end: self.now(), op, outcome };
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
    }

    /// Every entry so far, by start time.
    pub fn entries(&self) -> Vec<Entry> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner()).clone();
        entries.sort_by_key(|e| e.start);
        entries
    }

    /// Reads over the entries so far without copying them.
    pub fn with<T>(&self, f: impl FnOnce(&[Entry]) -> T) -> T {
        f(&self.entries.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Writes every entry, one a line, to `path`.
    pub fn dump(&self, path: &std::path::Path) -> std::io::Result<()> {
        let text: String = self.entries().iter().map(|e| format!("{e}\n")).collect();
        std::fs::write(path, text)
    }
}
