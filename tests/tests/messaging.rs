//! Sending, receiving and acking, without waiting for deadlines: message shape, dedup, batches,
//! FIFO and `max`, size and attribute limits, ack results, long-poll basics, concurrent sends
//! sharing script calls (group commit).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mom_tests::util::timing;
use mom_tests::{assert_error_result, assert_ok_result, broker_with_queue, id_set, ids, json, Body, Value};
use reqwest::Method;
use tokio::sync::Barrier;

/// The attributes of a delivery without the broker's own `mom.` keys.
fn user_attributes(attributes: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    attributes.iter().filter(|(k, _)| !k.starts_with("mom.")).map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn bodies(messages: &[mom_tests::Message]) -> Vec<&str> {
    messages.iter().map(|m| m.body.as_str()).collect()
}

#[tokio::test]
async fn send_answers_201_with_an_id_and_receive_returns_the_message_once() {
    let (_broker, queue) = broker_with_queue("inbox", json!({})).await;
    let resp = queue
        .send_resp(json!({ "body": "héllo ✓", "attributes": { "kind": "greeting", "trace.id": "t-1" } }))
        .await
        .expect_status(201);
    let id = resp.json["id"].as_str().unwrap_or_default().to_string();
    assert!(!id.is_empty(), "{resp}");

    let got = queue.receive(1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let m = &got[0];
    assert_eq!(m.id, id);
    assert_eq!(m.body, "héllo ✓");
    assert_eq!(
        user_attributes(&m.attributes),
        BTreeMap::from([
            ("kind".to_string(), "greeting".to_string()),
            ("trace.id".to_string(), "t-1".to_string()),
        ])
    );
    assert_eq!(m.receive_count, 1);
    assert!(!m.receipt.is_empty());
    // Invisible while in flight.
    assert!(queue.receive(1).await.is_empty());
}

#[tokio::test]
async fn dedup_id_stores_a_message_once_and_answers_200_with_the_first_id() {
    let (_broker, queue) = broker_with_queue("dedup", json!({})).await;
    let first = queue.send_resp(json!({ "body": "a", "dedup_id": "order-1" })).await.expect_status(201);
    let again =
        queue.send_resp(json!({ "body": "a changed", "dedup_id": "order-1" })).await.expect_status(200);
    assert_eq!(first.json["id"], again.json["id"], "{first} / {again}");
    let other = queue.send_msg(json!({ "body": "b", "dedup_id": "order-2" })).await;
    assert_ne!(json!(other), first.json["id"]);
    queue.send("c").await;
    assert_eq!(queue.stats().await.counts(), (3, 0, 0));

    let got = queue.receive(10).await;
    assert_eq!(bodies(&got), ["a", "b", "c"]);
    queue.ack_all(&got).await;
    // Still a duplicate within the 5-minute window, even after the first was consumed.
    let late = queue.send_resp(json!({ "body": "a", "dedup_id": "order-1" })).await.expect_status(200);
    assert_eq!(late.json["id"], first.json["id"]);
    assert_eq!(queue.stats().await.counts(), (0, 0, 0));
}

#[tokio::test]
async fn batch_send_answers_one_result_per_entry_in_order() {
    let (_broker, queue) = broker_with_queue("batched", json!({ "max_message_bytes": 1024 })).await;
    let resp = queue
        .send_batch(json!([
            { "body": "one" },
            { "body": "x".repeat(1025) },
            { "body": "three", "attributes": { "bad key": "v" } },
            { "body": "four", "attributes": { "k": "v" } },
        ]))
        .await
        .expect_status(200);
    let results = resp.json["results"].as_array().unwrap_or_else(|| panic!("no results in {resp}"));
    assert_eq!(results.len(), 4, "{resp}");
    let sent: Vec<String> = [0, 3]
        .iter()
        .map(|&i| {
            let id = results[i]["id"].as_str().unwrap_or_default();
            assert!(!id.is_empty(), "entry {i} should have an id: {resp}");
            id.to_string()
        })
        .collect();
    assert_error_result(&results[1], "message_too_large", "entry 1");
    assert_error_result(&results[2], "invalid_request", "entry 2");

    let got = queue.receive(10).await;
    assert_eq!(bodies(&got), ["one", "four"]);
    assert_eq!(ids(&got), sent);
}

#[tokio::test]
async fn batch_send_takes_up_to_100_messages() {
    let (_broker, queue) = broker_with_queue("bulk", json!({})).await;
    let batch = |n: usize| Value::Array((0..n).map(|i| json!({ "body": format!("m{i}") })).collect());
    queue.send_batch(batch(101)).await.expect_error(400, "invalid_request");
    assert_eq!(queue.stats().await.counts(), (0, 0, 0));
    let resp = queue.send_batch(batch(100)).await.expect_status(200);
    assert_eq!(resp.json["results"].as_array().map(Vec::len), Some(100));
    assert_eq!(queue.stats().await.counts(), (100, 0, 0));
}

#[tokio::test]
async fn receive_returns_every_available_message_up_to_max_in_fifo_order() {
    let (_broker, queue) = broker_with_queue("fifo", json!({})).await;
    let names: Vec<String> = (0..15).map(|i| format!("m{i:02}")).collect();
    let mut sent = queue.send_many(&names[..7]).await;
    let batch: Vec<Value> = names[7..].iter().map(|b| json!({ "body": b })).collect();
    let resp = queue.send_batch(Value::Array(batch)).await.expect_status(200);
    sent.extend(
        resp.json["results"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["id"].as_str().unwrap_or_default().to_string()),
    );

    // Default max is 1.
    let first = queue.receive_with(json!({})).await;
    assert_eq!(ids(&first), sent[..1]);
    let next = queue.receive(10).await;
    assert_eq!(ids(&next), sent[1..11]);
    let rest = queue.receive(10).await;
    assert_eq!(ids(&rest), sent[11..], "all 4 remaining, though max was 10");
    assert!(queue.receive(10).await.is_empty());
}

#[tokio::test]
async fn receive_parameters_out_of_range_are_invalid_request() {
    let (_broker, queue) = broker_with_queue("picky", json!({})).await;
    for request in [
        json!({ "max": 0 }),
        json!({ "max": 101 }),
        json!({ "max": "1" }),
        json!({ "wait_s": 21 }),
        json!({ "wait_s": -1 }),
        json!({ "visibility_timeout_s": -1 }),
    ] {
        queue.receive_resp(request).await.expect_error(400, "invalid_request");
    }
    queue.receive_with(json!({ "max": 100, "wait_s": 0 })).await;
}

#[tokio::test]
async fn bodies_over_max_message_bytes_are_413_counting_utf8_bytes_only() {
    let (broker, queue) = broker_with_queue("small", json!({ "max_message_bytes": 1024 })).await;
    queue.send(&"x".repeat(1024)).await;
    queue.send(&"é".repeat(512)).await; // 1024 bytes
    queue.send_msg(json!({ "body": "x".repeat(1024), "attributes": { "big": "y".repeat(900) } })).await;
    for body in ["x".repeat(1025), "é".repeat(513)] {
        queue.send_resp(json!({ "body": body })).await.expect_error(413, "message_too_large");
    }
    assert_eq!(queue.stats().await.counts(), (3, 0, 0));

    // A request over 5 MiB is refused whatever the queue allows.
    let large = broker.client().queue("large");
    large.create(json!({ "max_message_bytes": 1_048_576 })).await;
    large
        .send_resp(json!({ "body": "z".repeat(6 * 1024 * 1024) }))
        .await
        .expect_error(413, "message_too_large");
}

#[tokio::test]
async fn attributes_are_limited_to_16_string_entries_with_valid_keys() {
    let (_broker, queue) = broker_with_queue("attrs", json!({})).await;
    let attrs = |n: usize| -> Value {
        (0..n).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>().into()
    };
    queue.send_msg(json!({ "body": "ok", "attributes": attrs(16) })).await;
    let long_key = "k".repeat(65);
    for bad in
        [attrs(17), json!({ "bad key": "v" }), json!({ long_key: "v" }), json!({ "n": 1 }), json!(["k", "v"])]
    {
        queue.send_resp(json!({ "body": "x", "attributes": bad })).await.expect_error(400, "invalid_request");
    }
    let got = queue.receive(10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(user_attributes(&got[0].attributes).len(), 16);
}

#[tokio::test]
async fn ack_answers_per_receipt_and_removes_the_messages() {
    let (_broker, queue) = broker_with_queue("acked", json!({})).await;
    queue.send_many(&["a", "b"]).await;
    let got = queue.receive(2).await;
    assert_eq!(got.len(), 2);
    let results = queue.ack(&[got[0].receipt.as_str()]).await;
    assert_ok_result(&results[0], "ack of a fresh receipt");
    assert_eq!(queue.stats().await.counts(), (0, 1, 0));
    let results = queue.ack(&["not-a-receipt", got[1].receipt.as_str()]).await;
    assert_error_result(&results[0], "receipt_invalid", "unknown receipt");
    assert_ok_result(&results[1], "ack after an invalid entry");
    assert_eq!(queue.stats().await.counts(), (0, 0, 0));
    queue.extend("not-a-receipt", 10).await.expect_error(409, "receipt_invalid");
}

#[tokio::test]
async fn a_long_poll_answers_empty_when_the_wait_ends_and_at_once_on_a_send() {
    let (_broker, queue) = broker_with_queue("polled", json!({})).await;
    let start = Instant::now();
    let (got, end) = queue.spawn_receive(json!({ "wait_s": 1 })).await.expect("poll task");
    assert!(got.is_empty(), "{got:?}");
    let waited = end - start;
    timing("messaging.empty_long_poll_wait_s_1", waited);
    // Measured (20 runs, loaded 2-core machine under stress-ng --cpu 2, 2026-12-07): min 1005 ms,
    // median 1020 ms, p95 and max 1066 ms.
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_millis(2500),
        "an empty long poll with wait_s 1 took {waited:?}"
    );

    let poll = queue.hold_receive(json!({ "max": 10, "wait_s": 20 })).await;
    let sent_at = Instant::now();
    queue.send("wake up").await;
    let (got, answered) = poll.await.expect("poll task");
    assert_eq!(bodies(&got), ["wake up"]);
    let latency = answered.saturating_duration_since(sent_at);
    timing("messaging.held_receive_after_send", latency);
    // The contract's 100 ms is for normal load; on a loaded machine, 500 ms. Measured (20 runs,
    // loaded 2-core machine under stress-ng --cpu 2, 2026-12-07): median 17 ms, p95/max 129 ms.
    assert!(latency < Duration::from_millis(500), "held receive answered {latency:?} after the send");
}

/// Group commit: concurrent sends to one queue share script calls (`mom_send_batch_size`), yet
/// each caller gets exactly its own ids back, dedup ids work across callers of one burst, and
/// every message is received once, each sender's in the order it sent them.
#[tokio::test]
async fn concurrent_sends_share_script_calls_and_each_caller_gets_its_own_results() {
    // Senders sending one message at a time, each after the previous answered.
    const SENDERS: usize = 20;
    const EACH: usize = 10;
    // Dedup ids, each sent twice at once (with different bodies).
    const DEDUP_IDS: usize = 40;
    // Callers sending two batches of BATCH, one after the other.
    const BATCHERS: usize = 10;
    const BATCH: usize = 5;
    let (broker, queue) = broker_with_queue("burst", json!({})).await;
    let start = Arc::new(Barrier::new(SENDERS + 2 * DEDUP_IDS + BATCHERS));

    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let (queue, start) = (queue.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let mut sent = Vec::new();
                for i in 0..EACH {
                    let body = format!("s{s}-{i}");
                    let id = queue.send(&body).await;
                    sent.push((body, id));
                }
                sent
            })
        })
        .collect();
    let duplicates: Vec<_> = (0..2 * DEDUP_IDS)
        .map(|k| {
            let (queue, start) = (queue.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let (d, copy) = (k / 2, k % 2);
                let message = json!({ "body": format!("d{d}-{copy}"), "dedup_id": format!("d{d}") });
                let resp = queue.send_resp(message).await;
                let id = resp.json["id"].as_str().unwrap_or_default().to_string();
                assert!(matches!(resp.status, 200 | 201) && !id.is_empty(), "send of d{d}: {resp}");
                (d, resp.status, id)
            })
        })
        .collect();
    let batchers: Vec<_> = (0..BATCHERS)
        .map(|b| {
            let (queue, start) = (queue.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let mut sent = Vec::new();
                for round in 0..2 {
                    let bodies: Vec<String> = (0..BATCH).map(|i| format!("b{b}-{round}-{i}")).collect();
                    let messages: Vec<Value> = bodies.iter().map(|body| json!({ "body": body })).collect();
                    let resp = queue.send_batch(Value::Array(messages)).await.expect_status(200);
                    let results = resp.json["results"].as_array().cloned().unwrap_or_default();
                    assert_eq!(results.len(), BATCH, "{resp}");
                    for (body, result) in bodies.into_iter().zip(results) {
                        let id = result["id"].as_str().unwrap_or_default().to_string();
                        assert!(!id.is_empty(), "no id for {body} in {resp}");
                        sent.push((body, id));
                    }
                }
                sent
            })
        })
        .collect();

    // What each caller was told, per sender in sending order.
    let mut per_sender: Vec<Vec<(String, String)>> = Vec::new();
    for task in senders.into_iter().chain(batchers) {
        per_sender.push(task.await.expect("sender task"));
    }
    let mut dedup_answers: HashMap<usize, Vec<(u16, String)>> = HashMap::new();
    for task in duplicates {
        let (d, status, id) = task.await.expect("dedup sender task");
        dedup_answers.entry(d).or_default().push((status, id));
    }

    let told: Vec<&String> = per_sender.iter().flatten().map(|(_, id)| id).collect();
    let distinct: HashSet<&String> = told.iter().copied().collect();
    assert_eq!(distinct.len(), told.len(), "two callers were told the same id");
    for (d, answers) in &dedup_answers {
        assert_eq!(answers.len(), 2);
        assert_eq!(answers[0].1, answers[1].1, "the two sends of d{d} got different ids: {answers:?}");
        let mut statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
        statuses.sort();
        assert_eq!(statuses, [200, 201], "d{d}: one send stores (201), the other is a duplicate (200)");
        assert!(!distinct.contains(&answers[0].1), "d{d} got the id of another message");
    }

    let unique = SENDERS * EACH + DEDUP_IDS + BATCHERS * 2 * BATCH;
    let got = queue.receive_n(unique, Duration::from_secs(30)).await;
    assert_eq!(got.len(), unique, "{got:?}");
    id_set(&got);
    assert!(queue.receive(100).await.is_empty(), "more messages than were sent");
    let received: HashMap<&str, &str> = got.iter().map(|m| (m.body.as_str(), m.id.as_str())).collect();
    for sent in &per_sender {
        // Received in the order sent (the queue is FIFO), under the ids the caller was told.
        let order: Vec<&str> = got
            .iter()
            .filter(|m| sent.iter().any(|(body, _)| *body == m.body))
            .map(|m| m.body.as_str())
            .collect();
        let sent_bodies: Vec<&str> = sent.iter().map(|(body, _)| body.as_str()).collect();
        assert_eq!(order, sent_bodies, "a sender's messages came back out of order");
        for (body, id) in sent {
            assert_eq!(received.get(body.as_str()), Some(&id.as_str()), "{body}");
        }
    }
    for (d, answers) in &dedup_answers {
        let stored: Vec<&mom_tests::Message> =
            got.iter().filter(|m| m.body.starts_with(&format!("d{d}-"))).collect();
        assert_eq!(stored.len(), 1, "d{d} stored other than once: {stored:?}");
        assert_eq!(stored[0].id, answers[0].1);
    }

    // One script call per request would be this many; sharing makes it fewer.
    let requests = SENDERS * EACH + 2 * DEDUP_IDS + BATCHERS * 2;
    let messages = SENDERS * EACH + 2 * DEDUP_IDS + BATCHERS * 2 * BATCH;
    let calls = broker.metric("mom_send_batch_size_count").await.unwrap_or_default();
    let carried = broker.metric("mom_send_batch_size_sum").await.unwrap_or_default();
    eprintln!("{requests} send requests, {messages} messages: {calls} script calls");
    assert_eq!(carried, messages as f64, "every message rides in exactly one call");
    assert!(
        calls < requests as f64,
        "{requests} concurrent send requests made {calls} script calls: none were combined"
    );
}

/// Group commit must not let one caller's disconnect hurt the others: a burst where half the
/// senders hang up after 1 to 10 ms (their requests dropped at any point: queued for a combined call,
/// or leading one) still answers every patient sender with its own id, stores each of their
/// messages once, and leaves the queue taking sends at once afterwards.
#[tokio::test]
async fn senders_hanging_up_mid_burst_neither_stall_nor_lose_the_others() {
    const PATIENT: usize = 100;
    const HASTY: usize = 100;
    let (broker, queue) = broker_with_queue("hangups", json!({})).await;
    // Connections opened beforehand (they stay in the client's pool), so that the hasty
    // requests reach the broker before hanging up after 1 to 10 ms.
    let client = broker.client();
    let warm: Vec<_> = (0..PATIENT + HASTY)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("/healthz").await.expect_status(200) })
        })
        .collect();
    for task in warm {
        task.await.expect("warm-up");
    }
    let start = Arc::new(Barrier::new(PATIENT + HASTY));
    let patient: Vec<_> = (0..PATIENT)
        .map(|i| {
            let (queue, start) = (queue.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let body = format!("p{i}");
                let id = queue.send(&body).await;
                (body, id)
            })
        })
        .collect();
    let hasty: Vec<_> = (0..HASTY)
        .map(|i| {
            let client = client.clone().with_timeout(Duration::from_millis(1 + i as u64 % 10));
            let (start, path) = (start.clone(), queue.path("/messages"));
            tokio::spawn(async move {
                start.wait().await;
                let body = Body::Json(json!({ "body": format!("h{i}") }));
                client.try_request(Method::POST, &path, body).await.is_ok()
            })
        })
        .collect();
    let mut sent = HashMap::new();
    for task in patient {
        let (body, id) = task.await.expect("patient sender");
        sent.insert(body, id);
    }
    let mut answered = 0;
    for task in hasty {
        answered += usize::from(task.await.expect("hasty sender"));
    }
    eprintln!("{answered} of {HASTY} hasty senders were answered before hanging up");
    let distinct: HashSet<&String> = sent.values().collect();
    assert_eq!(distinct.len(), PATIENT, "two patient senders were told the same id");

    // The queue still takes a send at once: no lane was left waiting on a caller that went away.
    let before = Instant::now();
    let last = queue.send("after").await;
    let took = before.elapsed();
    timing("messaging.send_after_hasty_burst", took);
    // Measured (20 runs, loaded 2-core machine under stress-ng --cpu 2, 2026-12-07): median 9 ms,
    // p95/max 103 ms.
    assert!(took < Duration::from_secs(2), "a send after the burst took {took:?}");
    let mut got = Vec::new();
    loop {
        let batch = queue.receive(100).await;
        if batch.is_empty() {
            break;
        }
        got.extend(batch);
    }
    id_set(&got);
    let stored_hasty = got.iter().filter(|m| m.body.starts_with('h')).count();
    eprintln!("{stored_hasty} of {HASTY} hasty senders' messages were stored");
    let received: HashMap<&str, &str> = got.iter().map(|m| (m.body.as_str(), m.id.as_str())).collect();
    for (body, id) in &sent {
        assert_eq!(received.get(body.as_str()), Some(&id.as_str()), "{body}");
    }
    assert_eq!(received.get("after"), Some(&last.as_str()));
}
