//! Reads a run's history and reports every violation of what mom promises, each with the
//! entries that show it (the smallest window of the history that fails):
//!
//! - **lost**: an acknowledged send (201, or 200 for a dedup hit) to a queue that is consumed and
//!   never deleted is delivered at least once; and one `dedup_id` is stored as one message;
//! - **delivered after ack**: no delivery of a message after an ack of it was answered ok;
//! - **superseded receipt**: no ack or nack answered ok for a delivery older than one already
//!   returned;
//! - **stale metadata**: once a metadata change was acknowledged, every node serves it (a send
//!   into a deleted queue is refused, a patched attribute is read back, a new user logs in, ...)
//!   when the request starts [`CONVERGENCE`] after the change and after every fault that could
//!   hold that node up has healed;
//! - **not converged**: after each heal, every live node serves the metadata and membership
//!   ZooKeeper holds (queues and their attributes, topics, subscriptions, users, nodes, leader),
//!   ZooKeeper lists exactly the live brokers and exactly its leader says `mom_leader 1`, within
//!   [`CONVERGENCE`];
//! - **two leaders in one epoch**: no two nodes say `mom_leader 1` in one sampling round under
//!   the same fencing epoch (best effort: sampled every half second);
//! - **no progress**: sends and acks flow again after each heal;
//! - **unexpected answer**: an answer no fault explains (a 500, a 404 for a queue that exists...).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use super::history::{Delivery, Entry, Op, Outcome, Phase, Reg, Scope, Val};

/// How soon after a change (and the heal of the faults in its way) every node must serve it.
pub const CONVERGENCE: Duration = Duration::from_secs(5);

/// Most entries printed with one violation.
const WINDOW_MAX: usize = 16;

#[derive(Debug, Clone)]
pub struct Violation {
    pub kind: &'static str,
    pub what: String,
    /// When the history first shows it (run time).
    pub at: Duration,
    /// The entries that show it, by start time.
    pub window: Vec<Entry>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", self.kind, self.what)?;
        if let (Some(first), Some(last)) = (self.window.first(), self.window.iter().map(|e| e.end).max()) {
            writeln!(
                f,
                "  history window {:.3} s .. {:.3} s:",
                first.start.as_secs_f64(),
                last.as_secs_f64()
            )?;
        }
        for e in &self.window {
            writeln!(f, "    {e}")?;
        }
        Ok(())
    }
}

fn violation(kind: &'static str, what: String, at: Duration, entries: &[&Entry]) -> Violation {
    let mut window: Vec<Entry> = entries.iter().map(|e| (*e).clone()).collect();
    window.sort_by_key(|e| e.start);
    window.dedup_by(|a, b| a.start == b.start && a.process == b.process && format!("{a}") == format!("{b}"));
    if window.len() > WINDOW_MAX {
        let tail = window.split_off(window.len() - WINDOW_MAX / 2);
        window.truncate(WINDOW_MAX / 2);
        window.extend(tail);
    }
    Violation { kind, what, at, window }
}

/// Every violation in `entries`.
pub fn check(entries: &[Entry]) -> Vec<Violation> {
    let faults = Faults::of(entries);
    let mut out = Vec::new();
    out.extend(lost_or_stored_twice(entries, &faults));
    out.extend(delivered_after_ack(entries));
    out.extend(superseded_receipts(entries));
    out.extend(stale_metadata(entries, &faults));
    out.extend(not_converged(entries, &faults));
    out.extend(leaders(entries));
    out.extend(entries.iter().filter_map(|e| match (&e.op, &e.outcome) {
        (Op::Progress { n }, Outcome::Failed(why)) => {
            let mut window = faults.entries_of(*n);
            window.push(e);
            Some(violation("no progress", format!("after fault #{n}: {why}"), e.end, &window))
        }
        (_, Outcome::Unexpected(why)) => Some(violation("unexpected answer", why.clone(), e.end, &[e])),
        _ => None,
    }));
    out
}

/// The faults of the run: when each was in force and whom it held up.
struct Faults<'a> {
    /// (n, scope, from the start of its injection, to the end of its heal).
    spans: Vec<(usize, Scope, Duration, Duration)>,
    entries: Vec<&'a Entry>,
}

impl<'a> Faults<'a> {
    fn of(entries: &'a [Entry]) -> Self {
        let mut spans: BTreeMap<usize, (Scope, Duration, Duration)> = BTreeMap::new();
        let mut fault_entries = Vec::new();
        for e in entries {
            if let Op::Fault { n, phase, scope, .. } = &e.op {
                fault_entries.push(e);
                let span = spans.entry(*n).or_insert((*scope, e.start, Duration::MAX));
                match phase {
                    Phase::Inject => span.1 = e.start,
                    Phase::Heal => span.2 = e.end,
                }
            }
        }
        let spans = spans.into_iter().map(|(n, (scope, a, b))| (n, scope, a, b)).collect();
        Faults { spans, entries: fault_entries }
    }

    /// When a change acknowledged at `t` must be served by `node`: [`CONVERGENCE`] into the first
    /// stretch of that length, at or after `t`, in which no fault holds `node` up.
    fn settled(&self, t: Duration, node: Option<usize>) -> Duration {
        let holds_up = |scope: Scope| match scope {
            Scope::Cluster => true,
            Scope::Node(k) => node.is_none_or(|n| n == k),
            Scope::Data => false,
        };
        let mut from = t;
        loop {
            let blocking = self
                .spans
                .iter()
                .filter(|(_, scope, a, b)| holds_up(*scope) && *a < from + CONVERGENCE && *b > from)
                .map(|(_, _, _, b)| *b)
                .max();
            match blocking {
                Some(Duration::MAX) => return Duration::MAX,
                Some(end) => from = end,
                None => return from + CONVERGENCE,
            }
        }
    }

    /// The fault entries in force at some time in `from..to`.
    fn during(&self, from: Duration, to: Duration) -> Vec<&'a Entry> {
        let overlapping: HashSet<usize> =
            self.spans.iter().filter(|(_, _, a, b)| *a < to && *b > from).map(|(n, ..)| *n).collect();
        self.entries
            .iter()
            .copied()
            .filter(|e| matches!(&e.op, Op::Fault { n, .. } if overlapping.contains(n)))
            .collect()
    }

    fn entries_of(&self, fault: usize) -> Vec<&'a Entry> {
        self.entries.iter().copied().filter(|e| matches!(&e.op, Op::Fault { n, .. } if *n == fault)).collect()
    }
}

/// A message: its queue and its id (ids are per queue).
type Key<'a> = (&'a str, &'a str);

/// Deliveries by message, with the receive that returned each.
fn deliveries(entries: &[Entry]) -> HashMap<Key<'_>, Vec<(&Delivery, &Entry)>> {
    let mut out: HashMap<Key, Vec<(&Delivery, &Entry)>> = HashMap::new();
    for e in entries {
        if let (Op::Receive { queue }, Outcome::Delivered(got)) = (&e.op, &e.outcome) {
            for d in got {
                out.entry((queue.as_str(), d.id.as_str())).or_default().push((d, e));
            }
        }
    }
    out
}

fn lost_or_stored_twice(entries: &[Entry], faults: &Faults) -> Vec<Violation> {
    let consumed: HashSet<&str> = entries
        .iter()
        .filter_map(|e| match &e.op {
            Op::Receive { queue } => Some(queue.as_str()),
            _ => None,
        })
        .collect();
    let deleted: HashSet<&str> = entries
        .iter()
        .filter_map(|e| match &e.op {
            Op::Write { reg: Reg::Queue(q), val: Val::Absent } => Some(q.as_str()),
            _ => None,
        })
        .collect();
    let delivered = deliveries(entries);
    let end = entries.iter().map(|e| e.end).max().unwrap_or_default();
    let mut out = Vec::new();
    // body (its dedup_id) → messages it was stored as, with the entries that say so.
    let mut stored: BTreeMap<&str, BTreeMap<Key, &Entry>> = BTreeMap::new();
    for e in entries {
        let (Op::Send { queue, body }, Outcome::Sent { id, .. }) = (&e.op, &e.outcome) else { continue };
        if !consumed.contains(queue.as_str()) || deleted.contains(queue.as_str()) {
            continue;
        }
        let key = (queue.as_str(), id.as_str());
        stored.entry(body).or_default().entry(key).or_insert(e);
        if !delivered.contains_key(&key) {
            let mut window = vec![e];
            window.extend(faults.during(e.start, end));
            let what = format!("{body} sent to {queue} and acknowledged as id {id}, never delivered");
            out.push(violation("lost", what, e.end, &window));
        }
    }
    for (key, got) in &delivered {
        for (d, e) in got {
            stored.entry(d.body.as_str()).or_default().entry(*key).or_insert(e);
        }
    }
    for (body, ids) in stored.iter().filter(|(_, ids)| ids.len() > 1) {
        let what =
            format!("dedup_id {body} stored as several messages: {:?}", ids.keys().collect::<Vec<_>>());
        let shown: Vec<&Entry> = ids.values().copied().collect();
        let at = shown.iter().map(|e| e.end).max().unwrap_or_default();
        out.push(violation("stored twice", what, at, &shown));
    }
    out
}

fn delivered_after_ack(entries: &[Entry]) -> Vec<Violation> {
    let mut acked: HashMap<Key, (u64, &Entry)> = HashMap::new();
    for e in entries {
        if let (Op::Settle { queue, id, receive_count, nack: false }, Outcome::Ok) = (&e.op, &e.outcome) {
            let first = acked.entry((queue.as_str(), id.as_str())).or_insert((*receive_count, e));
            if *receive_count < first.0 {
                *first = (*receive_count, e);
            }
        }
    }
    let mut out = Vec::new();
    for ((queue, id), got) in deliveries(entries) {
        let Some((rc, ack)) = acked.get(&(queue, id)) else { continue };
        // A delivery returned before the ack started is the superseded receipt's case instead.
        for (d, e) in got.into_iter().filter(|(d, e)| d.receive_count > *rc && e.end >= ack.start) {
            let what = format!(
                "message {queue}/{id} ({}) delivered again (delivery {}) after its ack was answered ok",
                d.body, d.receive_count
            );
            out.push(violation("delivered after ack", what, e.end, &[ack, e]));
        }
    }
    out
}

fn superseded_receipts(entries: &[Entry]) -> Vec<Violation> {
    let delivered = deliveries(entries);
    let mut out = Vec::new();
    for e in entries {
        let (Op::Settle { queue, id, receive_count, nack }, Outcome::Ok) = (&e.op, &e.outcome) else {
            continue;
        };
        let newer = delivered
            .get(&(queue.as_str(), id.as_str()))
            .into_iter()
            .flatten()
            .find(|(d, r)| d.receive_count > *receive_count && r.end < e.start);
        if let Some((d, r)) = newer {
            let what = format!(
                "{} of delivery {receive_count} of message {queue}/{id} answered ok after delivery {} had been returned",
                if *nack { "nack" } else { "ack" },
                d.receive_count
            );
            out.push(violation("superseded receipt", what, e.end, &[r, e]));
        }
    }
    out
}

fn stale_metadata(entries: &[Entry], faults: &Faults) -> Vec<Violation> {
    let mut writes: HashMap<&Reg, Vec<(&Entry, Val)>> = HashMap::new();
    for e in entries {
        if let Op::Write { reg, val } = &e.op {
            writes.entry(reg).or_default().push((e, *val));
        }
    }
    let mut out = Vec::new();
    for r in entries {
        let (Op::Read { reg, via }, Outcome::Read(seen)) = (&r.op, &r.outcome) else { continue };
        let history = writes.get(reg).map(Vec::as_slice).unwrap_or_default();
        // The last change that every node had to serve by the time the read started.
        let base = history
            .iter()
            .filter(|(w, _)| matches!(w.outcome, Outcome::Ok) && faults.settled(w.end, r.node) <= r.start)
            .max_by_key(|(w, _)| w.start);
        let mut allowed = match (base, reg) {
            (Some((_, val)), _) => vec![*val],
            // Until its creation settles, an attribute may read anything.
            (None, Reg::QueueVisibility(_)) => continue,
            (None, _) => vec![Val::Absent],
        };
        let since = base.map(|(w, _)| w.start).unwrap_or_default();
        // Changes after it (or overlapping it) that may have taken effect before the read ended.
        let later: Vec<&(&Entry, Val)> = history
            .iter()
            .filter(|(w, _)| w.end > since && w.start < r.end && w.outcome.may_have_happened())
            .filter(|(w, _)| base.is_none_or(|(b, _)| !std::ptr::eq(*w, *b)))
            .collect();
        allowed.extend(later.iter().map(|(_, v)| *v));
        if allowed.contains(seen) {
            continue;
        }
        let node = r.node.map(|n| format!("node-{}", n + 1)).unwrap_or_default();
        let what = match base {
            Some((w, val)) => format!(
                "{node} served {reg} as {seen} ({via}) at {:.3} s, {:.1} s after it became {val} at {:.3} s \
                 (settled at {:.3} s)",
                r.start.as_secs_f64(),
                (r.start - w.end).as_secs_f64(),
                w.end.as_secs_f64(),
                faults.settled(w.end, r.node).as_secs_f64()
            ),
            None => format!("{node} served {reg} as {seen} ({via}) but no change made it so"),
        };
        let mut window: Vec<&Entry> = base.iter().map(|(w, _)| *w).collect();
        window.extend(later.iter().map(|(w, _)| *w));
        window.push(r);
        window.extend(faults.during(since, r.end));
        out.push(violation("stale metadata", what, r.start, &window));
    }
    out
}

fn not_converged(entries: &[Entry], faults: &Faults) -> Vec<Violation> {
    let mut rounds: BTreeMap<(usize, Duration), Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        if let Op::Observe { n, since } = &e.op {
            rounds.entry((*n, *since)).or_default().push(e);
        }
    }
    let mut out = Vec::new();
    for ((n, since), rounds) in rounds {
        let deadline = since + CONVERGENCE;
        if rounds.iter().any(|e| matches!(e.outcome, Outcome::Ok) && e.end <= deadline) {
            continue;
        }
        let last = rounds.last().copied();
        let diff = match last.map(|e| &e.outcome) {
            Some(Outcome::Failed(diff)) => diff.clone(),
            Some(Outcome::Ok) => "agreed only later".to_string(),
            _ => String::new(),
        };
        let what = format!(
            "after fault #{n}, nodes and ZooKeeper still disagreed {:.1} s after the changes made at {:.3} s: {diff}",
            last.map(|e| e.end.saturating_sub(since)).unwrap_or_default().as_secs_f64(),
            since.as_secs_f64()
        );
        let mut window = faults.entries_of(n);
        // The changes the nemesis made for this fault before the rounds, and the first and last round.
        let began = window.iter().map(|e| e.start).min().unwrap_or_default();
        window.extend(entries.iter().filter(|e| {
            e.process == "nemesis" && matches!(e.op, Op::Write { .. }) && e.start >= began && e.end <= since
        }));
        window.extend(rounds.first().copied());
        window.extend(last);
        out.push(violation("not converged", what, deadline, &window));
    }
    out
}

fn leaders(entries: &[Entry]) -> Vec<Violation> {
    entries
        .iter()
        .filter_map(|e| {
            let Op::Leaders { claims } = &e.op else { return None };
            let mut epochs = HashSet::new();
            let twice = claims.iter().filter_map(|(_, epoch)| *epoch).find(|epoch| !epochs.insert(*epoch))?;
            let what = format!("fencing epoch {twice}: {claims:?}");
            Some(violation("two leaders in one epoch", what, e.start, &[e]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(process: &str, node: usize, start: f64, end: f64, op: Op, outcome: Outcome) -> Entry {
        Entry {
            process: process.into(),
            node: Some(node),
            start: Duration::from_secs_f64(start),
            end: Duration::from_secs_f64(end),
            op,
            outcome,
        }
    }

    fn write(reg: Reg, val: Val, start: f64, end: f64) -> Entry {
        at("writer", 0, start, end, Op::Write { reg, val }, Outcome::Ok)
    }

    fn read(reg: Reg, seen: Val, node: usize, start: f64) -> Entry {
        at("reader", node, start, start + 0.01, Op::Read { reg, via: "send" }, Outcome::Read(seen))
    }

    fn fault(n: usize, scope: Scope, phase: Phase, start: f64, end: f64) -> Entry {
        let op = Op::Fault { n, what: "f".into(), phase, scope };
        Entry {
            process: "nemesis".into(),
            node: None,
            start: Duration::from_secs_f64(start),
            end: Duration::from_secs_f64(end),
            op,
            outcome: Outcome::Ok,
        }
    }

    fn kinds(entries: &[Entry]) -> Vec<&'static str> {
        check(entries).iter().map(|v| v.kind).collect()
    }

    #[test]
    fn a_send_accepted_long_after_a_delete_settled_is_stale() {
        let q = || Reg::Queue("cq1".into());
        let mut h = vec![write(q(), Val::Present, 0.0, 0.1), write(q(), Val::Absent, 1.0, 1.1)];
        // Within the bound, either answer; past it, only the deletion.
        h.push(read(q(), Val::Present, 1, 3.0));
        h.push(read(q(), Val::Absent, 1, 7.0));
        assert!(kinds(&h).is_empty(), "{:?}", check(&h));
        h.push(read(q(), Val::Present, 2, 7.0));
        assert_eq!(kinds(&h), ["stale metadata"]);
        // A fault of ZooKeeper until 10 s postpones the bound to 15 s; one of node-2 does not (for node-3).
        let mut h2 = h.clone();
        h2.extend([
            fault(1, Scope::Cluster, Phase::Inject, 2.0, 2.1),
            fault(1, Scope::Cluster, Phase::Heal, 9.0, 10.0),
        ]);
        assert!(kinds(&h2).is_empty(), "{:?}", check(&h2));
        h.extend([
            fault(1, Scope::Node(1), Phase::Inject, 2.0, 2.1),
            fault(1, Scope::Node(1), Phase::Heal, 9.0, 10.0),
        ]);
        assert_eq!(kinds(&h), ["stale metadata"]);
    }

    #[test]
    fn a_change_of_unknown_outcome_may_or_may_not_be_served() {
        let q = || Reg::QueueVisibility("cq1".into());
        let mut unknown = write(q(), Val::Num(9), 1.0, 9.0);
        unknown.outcome = Outcome::Unknown("timeout".into());
        let h = vec![
            write(q(), Val::Num(5), 0.0, 0.1),
            unknown,
            read(q(), Val::Num(5), 1, 20.0),
            read(q(), Val::Num(9), 2, 20.0),
        ];
        assert!(kinds(&h).is_empty(), "{:?}", check(&h));
    }

    #[test]
    fn lost_resurrected_and_superseded_messages_are_caught() {
        let d = |rc| Delivery { id: "7".into(), body: "p1-1".into(), receive_count: rc };
        let send = |id: &str| {
            at(
                "p",
                0,
                0.0,
                0.1,
                Op::Send { queue: "data-0".into(), body: "p1-1".into() },
                Outcome::Sent { id: id.into(), fresh: true },
            )
        };
        let receive = |start, rc| {
            at(
                "c",
                0,
                start,
                start + 0.1,
                Op::Receive { queue: "data-0".into() },
                Outcome::Delivered(vec![d(rc)]),
            )
        };
        let settle = |start, rc| {
            at(
                "c",
                1,
                start,
                start + 0.1,
                Op::Settle { queue: "data-0".into(), id: "7".into(), receive_count: rc, nack: false },
                Outcome::Ok,
            )
        };
        assert!(kinds(&[send("7"), receive(1.0, 1), settle(1.2, 1)]).is_empty());
        assert_eq!(kinds(&[send("8"), receive(1.0, 1)]), ["lost", "stored twice"]);
        assert_eq!(
            kinds(&[send("7"), receive(1.0, 1), settle(1.2, 1), receive(9.0, 2)]),
            ["delivered after ack"]
        );
        assert_eq!(
            kinds(&[send("7"), receive(1.0, 1), receive(7.0, 2), settle(8.0, 1)]),
            ["superseded receipt"]
        );
    }

    #[test]
    fn convergence_is_judged_within_the_bound() {
        let round = |start: f64, ok| {
            let outcome = if ok { Outcome::Ok } else { Outcome::Failed("node-2: queue cq1 missing".into()) };
            at(
                "nemesis",
                0,
                start,
                start + 0.2,
                Op::Observe { n: 1, since: Duration::from_secs(10) },
                outcome,
            )
        };
        assert!(kinds(&[round(10.0, false), round(12.0, true)]).is_empty());
        assert_eq!(kinds(&[round(10.0, false), round(16.0, true)]), ["not converged"]);
    }
}
