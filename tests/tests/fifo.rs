//! FIFO queues and message groups (issue 21), against real Redis and ZooKeeper: per-group order
//! under competing consumers on two brokers, a group held while one of its messages is in
//! flight, redelivery before later messages, dedup by id and by content, dead letters releasing
//! their group, and every refusal with its error.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mom_tests::groups::GroupLedger;
use mom_tests::{assert_error_result, assert_ok_result, broker_with_queue, json, Cluster, Queue, Value};

/// A received message with the FIFO fields the shared harness does not decode.
#[derive(Debug, Clone)]
struct Got {
    id: String,
    body: String,
    group: Option<String>,
    sequence: Option<String>,
    receipt: String,
    receive_count: u64,
}

async fn recv(queue: &Queue, request: Value) -> Vec<Got> {
    let resp = queue.receive_resp(request).await.expect_status(200);
    resp.json["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages array in {resp}"))
        .iter()
        .map(|m| Got {
            id: m["id"].as_str().unwrap_or_default().to_string(),
            body: m["body"].as_str().unwrap_or_default().to_string(),
            group: m["group"].as_str().map(str::to_string),
            sequence: m["sequence"].as_str().map(str::to_string),
            receipt: m["receipt"].as_str().unwrap_or_default().to_string(),
            receive_count: m["receive_count"].as_u64().unwrap_or(0),
        })
        .collect()
}

fn bodies(got: &[Got]) -> Vec<&str> {
    got.iter().map(|g| g.body.as_str()).collect()
}

/// Sends one message to group `group` with its body as dedup id; returns the answer's JSON.
async fn send_to(queue: &Queue, group: &str, body: &str) -> Value {
    let resp = queue.send_resp(json!({ "body": body, "group": group, "dedup_id": body })).await;
    resp.expect_status(201).json
}

async fn fifo_queue(name: &str, config: Value) -> (mom_tests::Broker, Queue) {
    let mut config = config;
    config["fifo"] = json!(true);
    broker_with_queue(name, config).await
}

#[tokio::test]
async fn a_fifo_queue_shows_its_kind_and_refuses_what_does_not_fit() {
    let (broker, queue) = fifo_queue("orders", json!({ "content_based_dedup": true })).await;
    let shown = queue.get().await.expect_status(200).json;
    assert_eq!((shown["fifo"].as_bool(), shown["content_based_dedup"].as_bool()), (Some(true), Some(true)));
    assert_eq!(shown["stats"]["in_flight_groups"], json!(0), "{shown}");

    // `fifo` cannot change; the same config again is 200, another kind 409.
    queue.patch(json!({ "fifo": false })).await.expect_error(400, "invalid_request");
    queue.create_resp(json!({ "fifo": true, "content_based_dedup": true })).await.expect_status(200);
    queue.create_resp(json!({})).await.expect_error(409, "already_exists");

    let client = broker.client();
    let standard = client.queue("plain");
    standard.create(json!({})).await;
    assert_eq!(standard.get().await.json["fifo"], json!(false));
    assert!(standard.get().await.json["stats"].get("in_flight_groups").is_none());
    client
        .queue("cbd")
        .create_resp(json!({ "content_based_dedup": true }))
        .await
        .expect_error(400, "invalid_request");
    // SQS's name form: '.fifo' only on a FIFO queue.
    client.queue("named.fifo").create_resp(json!({})).await.expect_error(400, "invalid_request");
    client.queue("named.fifo").create(json!({ "fifo": true })).await;
    client.queue("bad.name").create_resp(json!({ "fifo": true })).await.expect_error(400, "invalid_name");

    // A FIFO queue's dead-letter queue is FIFO, and a standard queue's is standard.
    client
        .queue("f2")
        .create_resp(json!({ "fifo": true, "max_receives": 2, "dead_letter_queue": "plain" }))
        .await
        .expect_error(400, "invalid_request");
    client
        .queue("s2")
        .create_resp(json!({ "max_receives": 2, "dead_letter_queue": "orders" }))
        .await
        .expect_error(400, "invalid_request");
    client
        .queue("f3")
        .create(json!({ "fifo": true, "max_receives": 2, "dead_letter_queue": "orders" }))
        .await;
}

#[tokio::test]
async fn sends_to_a_fifo_queue_need_a_group_and_a_dedup_id_and_take_no_delay() {
    let (_broker, queue) = fifo_queue("strict", json!({})).await;
    queue.send_resp(json!({ "body": "x", "dedup_id": "1" })).await.expect_error(400, "invalid_argument");
    queue.send_resp(json!({ "body": "x", "group": "g" })).await.expect_error(400, "invalid_argument");
    queue
        .send_resp(json!({ "body": "x", "group": "g", "dedup_id": "1", "delay_s": 0 }))
        .await
        .expect_error(400, "invalid_argument");
    queue
        .send_resp(json!({ "body": "x", "group": "", "dedup_id": "1" }))
        .await
        .expect_error(400, "invalid_request");
    queue
        .send_resp(json!({ "body": "x", "group": "a".repeat(129), "dedup_id": "1" }))
        .await
        .expect_error(400, "invalid_request");
    queue
        .send_resp(json!({ "body": "x", "group": "tab\there", "dedup_id": "1" }))
        .await
        .expect_error(400, "invalid_request");

    // In a batch each entry is refused on its own; the valid one is stored with its sequence.
    let batch = queue
        .send_batch(json!([
            { "body": "no group", "dedup_id": "a" },
            { "body": "ok", "group": "g", "dedup_id": "b" },
            { "body": "delayed", "group": "g", "dedup_id": "c", "delay_s": 5 },
        ]))
        .await
        .expect_status(200)
        .json;
    let results = batch["results"].as_array().cloned().unwrap_or_default();
    assert_error_result(&results[0], "invalid_argument", "no group");
    assert!(results[1]["sequence"].as_str().is_some(), "no sequence in {batch}");
    assert_error_result(&results[2], "invalid_argument", "per-message delay");
    assert_eq!(queue.stats().await.available, 1);
}

#[tokio::test]
async fn sequences_increase_within_a_group_and_messages_carry_group_and_sequence() {
    let (_broker, queue) = fifo_queue("seq", json!({})).await;
    let mut last = 0u128;
    for i in 0..5 {
        let sent = send_to(&queue, "g", &format!("m{i}")).await;
        let seq: u128 = sent["sequence"].as_str().and_then(|s| s.parse().ok()).expect("decimal sequence");
        assert!(seq > last, "sequence {seq} after {last}");
        last = seq;
    }
    let got = recv(&queue, json!({ "max": 10 })).await;
    assert_eq!(bodies(&got), ["m0", "m1", "m2", "m3", "m4"]);
    assert!(got.iter().all(|m| m.group.as_deref() == Some("g")));
    assert_eq!(got[4].sequence.as_deref(), Some(last.to_string().as_str()));
}

#[tokio::test]
async fn a_group_is_held_while_one_of_its_messages_is_in_flight() {
    let (_broker, queue) = fifo_queue("held", json!({ "visibility_timeout_s": 30 })).await;
    for (g, b) in [("a", "a1"), ("a", "a2"), ("b", "b1"), ("a", "a3")] {
        send_to(&queue, g, b).await;
    }
    let first = recv(&queue, json!({ "max": 1 })).await;
    assert_eq!(bodies(&first), ["a1"]);
    // Group a is held: another consumer gets b1 only, however many it asks for.
    let second = recv(&queue, json!({ "max": 10 })).await;
    assert_eq!(bodies(&second), ["b1"]);
    assert!(recv(&queue, json!({ "max": 10 })).await.is_empty(), "a held group delivered");
    assert_eq!(queue.get().await.json["stats"]["in_flight_groups"], json!(2));

    // A long poll waiting meanwhile gets a2 as soon as a1 is acked (no wait for its deadline).
    let waiting = {
        let queue = queue.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            (recv(&queue, json!({ "max": 10, "wait_s": 15 })).await, t.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_ok_result(&queue.ack(&[first[0].receipt.as_str()]).await[0], "ack a1");
    let (got, took) = waiting.await.expect("long poll");
    assert_eq!(bodies(&got), ["a2", "a3"], "the released group, in order");
    assert!(took < Duration::from_secs(10), "the long poll waited {took:?} after the release");
}

#[tokio::test]
async fn a_message_that_comes_back_is_delivered_before_later_ones_of_its_group() {
    let (_broker, queue) = fifo_queue("back", json!({ "visibility_timeout_s": 30 })).await;
    for b in ["x1", "x2", "x3"] {
        send_to(&queue, "x", b).await;
    }
    // Nack: x1 comes back first.
    let got = recv(&queue, json!({ "max": 1 })).await;
    assert_eq!(bodies(&got), ["x1"]);
    assert_ok_result(&queue.nack(&[got[0].receipt.as_str()], 0).await[0], "nack x1");
    let again = recv(&queue, json!({ "max": 1 })).await;
    assert_eq!((again[0].body.as_str(), again[0].receive_count), ("x1", 2));

    // Visibility end: x1 again, then x2 after it once acked.
    let started = Instant::now();
    queue.extend(&again[0].receipt, 1).await.expect_status(200);
    let third =
        mom_tests::wait_until("x1 back after its visibility timeout", Duration::from_secs(15), || async {
            let got = recv(&queue, json!({ "max": 10 })).await;
            (!got.is_empty()).then_some(got)
        })
        .await;
    assert!(started.elapsed() >= Duration::from_millis(900), "came back early");
    assert_eq!(bodies(&third), ["x1", "x2", "x3"]);
    assert_eq!(third[0].receive_count, 3);
    // A visibility change of a delivery that timed out is refused: it would put x1 in flight
    // beside a later delivery of its group.
    queue.extend(&again[0].receipt, 30).await.expect_error(409, "receipt_invalid");
}

#[tokio::test]
async fn duplicates_by_id_or_by_content_are_accepted_once_and_delivered_once() {
    let (broker, queue) = fifo_queue("dups", json!({})).await;
    let first = queue
        .send_resp(json!({ "body": "one", "group": "g", "dedup_id": "k" }))
        .await
        .expect_status(201)
        .json;
    let again = queue
        .send_resp(json!({ "body": "other", "group": "g", "dedup_id": "k" }))
        .await
        .expect_status(200)
        .json;
    assert_eq!((&again["id"], &again["sequence"]), (&first["id"], &first["sequence"]));

    let by_content = broker.client().queue("cbd-dups");
    by_content.create(json!({ "fifo": true, "content_based_dedup": true })).await;
    let a = by_content.send_resp(json!({ "body": "same", "group": "g" })).await.expect_status(201).json;
    let b = by_content.send_resp(json!({ "body": "same", "group": "h" })).await.expect_status(200).json;
    assert_eq!(a["id"], b["id"]);
    // An explicit dedup_id wins over the content.
    by_content.send_resp(json!({ "body": "same", "group": "g", "dedup_id": "x" })).await.expect_status(201);

    let got = recv(&queue, json!({ "max": 10 })).await;
    assert_eq!(bodies(&got), ["one"]);
    queue.ack(&[got[0].receipt.as_str()]).await;
    // Acked and sent again within the window: still not delivered again.
    queue.send_resp(json!({ "body": "one", "group": "g", "dedup_id": "k" })).await.expect_status(200);
    assert!(recv(&queue, json!({ "max": 10 })).await.is_empty());
    assert_eq!(recv(&by_content, json!({ "max": 10 })).await.len(), 2);
}

#[tokio::test]
async fn a_dead_lettered_message_releases_its_group() {
    let (broker, dlq) = fifo_queue("dead", json!({})).await;
    let queue = broker.client().queue("work");
    queue
        .create(json!({ "fifo": true, "visibility_timeout_s": 1, "max_receives": 1, "dead_letter_queue": "dead" }))
        .await;
    for b in ["p1", "p2"] {
        send_to(&queue, "p", b).await;
    }
    let got = recv(&queue, json!({ "max": 1 })).await;
    assert_eq!(bodies(&got), ["p1"]);
    // Never acked: past its visibility timeout p1 is dead-lettered and p2 delivered.
    let next = mom_tests::wait_until("p2 after p1 was dead-lettered", Duration::from_secs(15), || async {
        let got = recv(&queue, json!({ "max": 10, "wait_s": 2 })).await;
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(bodies(&next), ["p2"]);
    let dead = mom_tests::wait_until("p1 in the dead-letter queue", Duration::from_secs(15), || async {
        let got = recv(&dlq, json!({ "max": 10 })).await;
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(bodies(&dead), ["p1"]);
    assert_eq!(dead[0].group.as_deref(), Some("p"), "the group follows the message");
}

/// Four consumers on two brokers compete for four groups: each group's messages are processed
/// exactly in send order, and no two consumers ever hold messages of one group at once.
#[tokio::test]
async fn four_competing_consumers_on_two_brokers_keep_each_group_in_order() {
    let cluster = Cluster::new();
    let brokers = [cluster.start_broker().await, cluster.start_broker().await];
    let queue = brokers[0].client().queue("orders");
    queue.create(json!({ "fifo": true, "visibility_timeout_s": 60 })).await;
    const GROUPS: usize = 4;
    const PER_GROUP: usize = 25;
    let messages: Vec<Value> = (0..PER_GROUP)
        .flat_map(|i| (0..GROUPS).map(move |g| json!({ "body": format!("{g}:{i}"), "group": format!("g{g}"), "dedup_id": format!("{g}-{i}") })))
        .collect();
    for chunk in messages.chunks(50) {
        queue.send_batch(json!(chunk)).await.expect_status(200);
    }

    let ledger: Arc<GroupLedger> = Arc::default();
    let mut consumers = Vec::new();
    for c in 0..4 {
        let q = brokers[c % 2].client().queue("orders");
        let ledger = ledger.clone();
        consumers.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while ledger.processed() < GROUPS * PER_GROUP {
                assert!(
                    Instant::now() < deadline,
                    "consumer {c}: only {} processed in time",
                    ledger.processed()
                );
                let got = recv(&q, json!({ "max": 3, "wait_s": 1 })).await;
                let groups: BTreeSet<String> = got.iter().filter_map(|m| m.group.clone()).collect();
                ledger.hold(c, &groups);
                tokio::time::sleep(Duration::from_millis(5)).await;
                ledger.record(got.iter().map(|m| m.body.as_str()));
                ledger.release(&groups);
                let receipts: Vec<&str> = got.iter().map(|m| m.receipt.as_str()).collect();
                if !receipts.is_empty() {
                    for r in q.ack(&receipts).await {
                        assert_ok_result(&r, "ack");
                    }
                }
            }
        }));
    }
    for c in consumers {
        c.await.expect("consumer");
    }
    let seen = ledger.seen();
    for g in 0..GROUPS {
        assert_eq!(seen.get(&g.to_string()), Some(&(0..PER_GROUP).collect::<Vec<_>>()), "group {g} order");
    }
    let shown = queue.get().await.json;
    assert_eq!(
        (shown["stats"]["available"].clone(), shown["stats"]["in_flight_groups"].clone()),
        (json!(0), json!(0))
    );
}

#[tokio::test]
async fn one_receive_takes_from_several_groups_oldest_head_first() {
    let (_broker, queue) = fifo_queue("multi", json!({})).await;
    for (g, b) in [("a", "a1"), ("b", "b1"), ("a", "a2"), ("c", "c1")] {
        send_to(&queue, g, b).await;
    }
    let got = recv(&queue, json!({ "max": 10 })).await;
    let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &got {
        by_group.entry(m.group.clone().unwrap_or_default()).or_default().push(m.body.clone());
    }
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(by_group["a"], ["a1", "a2"]);
    // Groups in the order their heads were sent, each group's messages together.
    assert_eq!(bodies(&got), ["a1", "a2", "b1", "c1"]);
    assert!(got.iter().all(|m| !m.id.is_empty()));
}

/// The property test: random interleavings of sends, receives (some with a visibility timeout
/// of 0, whose deliveries time out at once and are released by the next call, the path a real
/// timeout takes), acks, nacks, visibility ends (`/visibility` to 0) and acks of receipts that
/// may be stale, checked against a simple model of the contract: a receive returns messages of
/// groups with nothing in flight only, each group's messages as the model's head of that group,
/// in order (so a message that came back comes before later ones); short of `max`, it returns
/// every message of every group with nothing in flight; a receipt acks only while its delivery
/// is the message's latest; in the end every message is delivered and acked exactly once.
mod model {
    use std::collections::{BTreeMap, HashMap, VecDeque};

    use mom_tests::{json, Queue};
    use proptest::prelude::*;

    use super::{recv, Got};

    #[derive(Debug, Clone)]
    pub enum Op {
        Send(u8),
        Receive(u8),
        ReceiveExpiring(u8),
        Ack(usize),
        Nack(usize),
        Expire(usize),
        AckOld(usize),
    }

    pub fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..3).prop_map(Op::Send),
            3 => (1u8..5).prop_map(Op::Receive),
            1 => (1u8..4).prop_map(Op::ReceiveExpiring),
            2 => any::<usize>().prop_map(Op::Ack),
            1 => any::<usize>().prop_map(Op::Nack),
            1 => any::<usize>().prop_map(Op::Expire),
            1 => any::<usize>().prop_map(Op::AckOld),
        ]
    }

    /// What the contract lets a client know: per group the messages not yet acked, in order, and
    /// the deliveries in flight.
    #[derive(Default)]
    struct Model {
        pending: BTreeMap<String, VecDeque<String>>,
        /// Deliveries in flight: (receipt, body, group).
        in_flight: Vec<(String, String, String)>,
        /// Every receipt issued, with its body.
        issued: Vec<(String, String)>,
        /// The receipt of each body's latest delivery.
        latest: HashMap<String, String>,
        acked: Vec<String>,
    }

    impl Model {
        fn held(&self, g: &str) -> bool {
            self.in_flight.iter().any(|(_, _, h)| h == g)
        }

        fn remove(&mut self, body: &str) {
            for q in self.pending.values_mut() {
                q.retain(|b| b != body);
            }
            self.acked.push(body.to_string());
        }

        /// Checks one receive's answer and records it; `expiring`: its deliveries time out at once.
        fn received(&mut self, got: &[Got], max: usize, expiring: bool) -> Result<(), String> {
            let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for m in got {
                let g = m.group.clone().ok_or("a message without its group")?;
                by_group.entry(g).or_default().push(m.body.clone());
            }
            for (g, bodies) in &by_group {
                if self.held(g) {
                    return Err(format!("group {g} delivered while in flight: {bodies:?}"));
                }
                let head: Vec<String> = self
                    .pending
                    .get(g)
                    .map(|q| q.iter().take(bodies.len()).cloned().collect())
                    .unwrap_or_default();
                if &head != bodies {
                    return Err(format!("group {g}: got {bodies:?}, its head is {head:?}"));
                }
            }
            if got.len() < max {
                for (g, q) in &self.pending {
                    let taken = by_group.get(g).map_or(0, Vec::len);
                    if !self.held(g) && taken < q.len() {
                        return Err(format!(
                            "short receive ({} of {max}) left group {g} with {:?}",
                            got.len(),
                            q
                        ));
                    }
                }
            }
            for m in got {
                self.issued.push((m.receipt.clone(), m.body.clone()));
                self.latest.insert(m.body.clone(), m.receipt.clone());
                if !expiring {
                    self.in_flight.push((
                        m.receipt.clone(),
                        m.body.clone(),
                        m.group.clone().unwrap_or_default(),
                    ));
                }
            }
            Ok(())
        }
    }

    fn ok(result: &serde_json::Value) -> bool {
        result["ok"].as_bool() == Some(true)
    }

    /// Runs `ops` on a fresh FIFO queue; Err names the first broken rule.
    pub async fn run(queue: &Queue, ops: &[Op]) -> Result<(), String> {
        let mut model = Model::default();
        let mut sent = 0;
        for op in ops {
            match op {
                Op::Send(g) => {
                    let body = format!("m{sent}");
                    sent += 1;
                    let group = format!("g{g}");
                    queue
                        .send_resp(json!({ "body": body, "group": group, "dedup_id": body }))
                        .await
                        .expect_status(201);
                    model.pending.entry(group).or_default().push_back(body);
                }
                Op::Receive(max) | Op::ReceiveExpiring(max) => {
                    let expiring = matches!(op, Op::ReceiveExpiring(_));
                    let request = if expiring {
                        json!({ "max": max, "visibility_timeout_s": 0 })
                    } else {
                        json!({ "max": max, "visibility_timeout_s": 600 })
                    };
                    let got = recv(queue, request).await;
                    model.received(&got, *max as usize, expiring)?;
                }
                Op::Ack(k) | Op::Nack(k) | Op::Expire(k) if !model.in_flight.is_empty() => {
                    let (receipt, body, _) = model.in_flight.remove(k % model.in_flight.len());
                    let done = match op {
                        Op::Ack(_) => ok(&queue.ack(&[receipt.as_str()]).await[0]),
                        Op::Nack(_) => ok(&queue.nack(&[receipt.as_str()], 0).await[0]),
                        _ => queue.extend(&receipt, 0).await.status == 200,
                    };
                    if !done {
                        return Err(format!("{op:?} of the delivery in flight of {body} refused"));
                    }
                    match op {
                        Op::Ack(_) => model.remove(&body),
                        // A nacked delivery is over: its receipt acks nothing any more.
                        Op::Nack(_) => {
                            model.latest.remove(&body);
                        }
                        // Visible again but not yet delivered again: its receipt still acks.
                        _ => {}
                    }
                }
                Op::AckOld(k) if !model.issued.is_empty() => {
                    let (receipt, body) = model.issued[k % model.issued.len()].clone();
                    if model.in_flight.iter().any(|(r, _, _)| *r == receipt) {
                        continue;
                    }
                    let valid = model.latest.get(&body) == Some(&receipt) && !model.acked.contains(&body);
                    let done = ok(&queue.ack(&[receipt.as_str()]).await[0]);
                    if done != valid {
                        return Err(format!(
                            "ack of an old receipt of {body}: {done}, the model says {valid}"
                        ));
                    }
                    if done {
                        model.remove(&body);
                    }
                }
                _ => {}
            }
        }
        // Drain: everything left is delivered in order and acked once.
        for (receipt, _, _) in std::mem::take(&mut model.in_flight) {
            queue.nack(&[receipt.as_str()], 0).await;
        }
        loop {
            let got = recv(queue, json!({ "max": 10, "visibility_timeout_s": 600 })).await;
            if got.is_empty() {
                break;
            }
            model.received(&got, 10, false)?;
            for m in &got {
                if !ok(&queue.ack(&[m.receipt.as_str()]).await[0]) {
                    return Err(format!("drain: ack of {} refused", m.body));
                }
                model.remove(&m.body);
            }
            model.in_flight.clear();
        }
        let mut acked = model.acked.clone();
        acked.sort();
        acked.dedup();
        if acked.len() != model.acked.len() || acked.len() != sent {
            return Err(format!("{sent} sent, acked {:?}", model.acked));
        }
        Ok(())
    }
}

#[test]
fn random_interleavings_keep_group_order_and_exclusivity() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let broker = rt.block_on(mom_tests::start_broker());
    let client = broker.client();
    let n = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 40,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(model::op(), 1..60), |ops| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let queue = client.queue(&format!("model-{i}"));
        let outcome = rt.block_on(async {
            queue.create(json!({ "fifo": true })).await;
            model::run(&queue, &ops).await
        });
        prop_assert!(outcome.is_ok(), "{}", outcome.err().unwrap_or_default());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// boto3 end to end on FIFO queues (`tests/sqs/fifo.py`): the FIFO attributes, `.fifo` names,
/// SQS's errors for each rule, groups, sequence numbers, content-based dedup, the system
/// attributes on receive, `ReceiveRequestAttemptId`, and `MessageGroupId` on a standard queue.
#[tokio::test]
async fn boto3_drives_fifo_queues_through_the_sqs_endpoint() {
    run_python_driver("sqs/fifo.py").await;
}

/// A Celery worker on kombu's SQS transport with a `.fifo` queue kombu makes itself
/// (`tests/sqs/celery_fifo.py`): tasks of two groups, each run once, in order per group.
#[tokio::test]
async fn celery_runs_tasks_in_order_on_a_fifo_queue() {
    run_python_driver("sqs/celery_fifo.py").await;
}

/// Runs a Python driver of `tests/` against a new broker with an access key of its admin, and
/// fails unless it exits 0.
async fn run_python_driver(script: &str) {
    let broker = mom_tests::start_broker().await;
    let path = format!("/v1/users/{}/access-keys", mom_tests::ADMIN_USER);
    let key = broker.client().post(&path, json!({})).await.expect_status(201).json;
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(script);
    let python = std::env::var("MOM_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        mom_tests::python::sqs_driver(
            &python,
            &script,
            &broker.url(),
            "us-east-1",
            key["access_key_id"].as_str().unwrap_or_default(),
            key["secret_access_key"].as_str().unwrap_or_default(),
        )
        .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{} within 120 s", script.display()))
    .unwrap_or_else(|e| panic!("cannot run {python} {}: {e}", script.display()));
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{} failed:\n{output}\n--- broker log:\n{}",
        script.display(),
        broker.log_tail(30)
    );
    println!("{output}");
}

/// Sends `count` messages of `group` (None: without one) to a standard queue in batches, bodies
/// `<prefix>-<i>`.
async fn send_group(queue: &Queue, group: Option<&str>, prefix: &str, count: usize) {
    let bodies: Vec<usize> = (0..count).collect();
    for chunk in bodies.chunks(100) {
        let messages: Vec<Value> = chunk
            .iter()
            .map(|i| match group {
                Some(g) => json!({ "body": format!("{prefix}-{i}"), "group": g }),
                None => json!({ "body": format!("{prefix}-{i}") }),
            })
            .collect();
        let resp = queue.send_batch(json!(messages)).await.expect_status(200);
        let results = resp.json["results"].as_array().cloned().unwrap_or_default();
        assert_eq!(results.len(), chunk.len(), "{resp}");
        assert!(results.iter().all(|r| r["id"].is_string()), "a send failed: {resp}");
    }
}

/// Drains `count` messages, 10 per receive, acking each batch; returns them in delivery order.
async fn drain_in_order(queue: &Queue, count: usize) -> Vec<Got> {
    let mut all = Vec::new();
    while all.len() < count {
        let got = recv(queue, json!({ "max": 10, "wait_s": 1 })).await;
        assert!(!got.is_empty(), "the queue ran dry after {} of {count}", all.len());
        let receipts: Vec<&str> = got.iter().map(|g| g.receipt.as_str()).collect();
        queue.ack(&receipts).await;
        all.extend(got);
    }
    all
}

/// The bodies of `prefix`'s messages among `got`, in delivery order, must be its send order.
fn assert_send_order(got: &[Got], prefix: &str, count: usize) {
    let seen: Vec<&str> =
        got.iter().map(|g| g.body.as_str()).filter(|b| b.starts_with(&format!("{prefix}-"))).collect();
    let sent: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    assert_eq!(seen, sent.iter().map(String::as_str).collect::<Vec<_>>(), "{prefix} out of its send order");
}

#[tokio::test]
async fn on_a_standard_queue_a_group_with_one_message_does_not_wait_behind_a_busy_group() {
    let (_broker, queue) = broker_with_queue("fair", json!({})).await;
    send_group(&queue, Some("big"), "big", 2000).await;
    send_group(&queue, Some("small"), "small", 1).await;

    // Without fair queueing the small group's message would be the 2,001st delivered.
    let first = recv(&queue, json!({ "max": 10 })).await;
    assert!(
        bodies(&first).contains(&"small-0"),
        "the small group's message is not among the first 10 delivered: {:?}",
        bodies(&first)
    );
    assert_eq!(first[0].body, "big-0", "the busy group's first message still goes first");
    let small = first.iter().find(|g| g.body == "small-0").map(|g| g.group.clone());
    assert_eq!(small, Some(Some("small".to_string())), "the group comes back on receive");
}

#[tokio::test]
async fn on_a_standard_queue_busy_groups_interleave_and_each_keeps_its_send_order() {
    let (_broker, queue) = broker_with_queue("fair-mix", json!({})).await;
    // Three senders in turn, each a burst of 30: two groups and messages without one.
    send_group(&queue, Some("a"), "a", 30).await;
    send_group(&queue, Some("b"), "b", 30).await;
    send_group(&queue, None, "none", 30).await;

    let got = drain_in_order(&queue, 90).await;
    for prefix in ["a", "b", "none"] {
        assert_send_order(&got, prefix, 30);
        // Taken in turns, each sender has about a third of the first 30 deliveries (in send
        // order, the last burst would have none of them).
        let early = got[..30].iter().filter(|g| g.body.starts_with(&format!("{prefix}-"))).count();
        assert!(early >= 8, "{prefix} had {early} of the first 30 deliveries: {:?}", bodies(&got[..30]));
    }
}

#[tokio::test]
async fn a_standard_queue_without_groups_keeps_send_order_after_its_groups_are_gone() {
    let (_broker, queue) = broker_with_queue("fair-then-plain", json!({})).await;
    send_group(&queue, None, "before", 20).await;
    send_group(&queue, Some("g"), "g", 20).await;
    send_group(&queue, None, "during", 20).await;
    let got = drain_in_order(&queue, 60).await;
    // Messages without a group keep their send order across the group's arrival.
    let plain: Vec<&str> = got.iter().map(|g| g.body.as_str()).filter(|b| !b.starts_with("g-")).collect();
    let expected: Vec<String> =
        (0..20).map(|i| format!("before-{i}")).chain((0..20).map(|i| format!("during-{i}"))).collect();
    assert_eq!(plain, expected.iter().map(String::as_str).collect::<Vec<_>>());
    assert_send_order(&got, "g", 20);
    // Once the queue is empty the group is forgotten: plain sends are in send order again.
    send_group(&queue, None, "after", 20).await;
    assert_send_order(&drain_in_order(&queue, 20).await, "after", 20);
}

/// The first group can arrive in the middle of a batch: the batch's messages without a group,
/// before and after it, keep their send order (the '' group starts after the latest of them,
/// including those of the same call not yet written: `send.lua` writes a call's messages at once).
#[tokio::test]
async fn a_group_arriving_mid_batch_keeps_the_batch_s_plain_messages_in_send_order() {
    let (_broker, queue) = broker_with_queue("fair-mid-batch", json!({})).await;
    send_group(&queue, None, "plain", 3).await;
    // Not synchronisation: the case needs the batch's send time to differ from the first one's
    // (scores are milliseconds).
    tokio::time::sleep(Duration::from_millis(5)).await;
    let batch = json!([
        { "body": "plain-3" }, { "body": "plain-4" }, { "body": "g-0", "group": "g" },
        { "body": "plain-5" }, { "body": "plain-6" }
    ]);
    queue.send_batch(batch).await.expect_status(200);
    let got = drain_in_order(&queue, 8).await;
    assert_send_order(&got, "plain", 7);
    assert_send_order(&got, "g", 1);
}
