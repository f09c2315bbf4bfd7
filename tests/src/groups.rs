//! What tests of FIFO queues with competing consumers keep (`tests/fifo.rs`, `tests/scale_out.rs`):
//! which groups each consumer holds right now, so that two consumers holding one group at once
//! fails the test, and in what order each group's messages arrived (bodies `GROUP:INDEX`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

#[derive(Default)]
pub struct GroupLedger {
    held: Mutex<BTreeSet<String>>,
    seen: Mutex<BTreeMap<String, Vec<usize>>>,
}

impl GroupLedger {
    /// Consumer `consumer` received messages of `groups`: fails the test if another holds one.
    pub fn hold(&self, consumer: usize, groups: &BTreeSet<String>) {
        let mut held = self.held.lock().expect("ledger lock");
        for g in groups {
            assert!(held.insert(g.clone()), "consumer {consumer} got group {g} while another holds it");
        }
    }

    /// Records the bodies (`GROUP:INDEX`) of what a consumer received, in order.
    pub fn record<'a>(&self, bodies: impl IntoIterator<Item = &'a str>) {
        let mut seen = self.seen.lock().expect("ledger lock");
        for body in bodies {
            let (g, i) = body.split_once(':').expect("a body GROUP:INDEX");
            seen.entry(g.to_string()).or_default().push(i.parse().expect("an index"));
        }
    }

    /// Gives `groups` up: called before the ack, since the broker holds a group until it has it.
    pub fn release(&self, groups: &BTreeSet<String>) {
        let mut held = self.held.lock().expect("ledger lock");
        for g in groups {
            held.remove(g);
        }
    }

    /// Messages recorded so far.
    pub fn processed(&self) -> usize {
        self.seen.lock().map(|s| s.values().map(Vec::len).sum()).unwrap_or(0)
    }

    /// Each group's indexes in arrival order.
    pub fn seen(&self) -> BTreeMap<String, Vec<usize>> {
        self.seen.lock().expect("ledger lock").clone()
    }
}
