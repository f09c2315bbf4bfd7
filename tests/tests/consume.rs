//! Consume streams of queues (issue 25): `GET /v1/queues/{name}/stream?max_in_flight=N` pushes a
//! queue's messages as server-sent events (the subscription stream's format), in the order of
//! first delivery, never more than `max_in_flight` unacked; acks sent in batches to the ack route
//! free room at once; a dropped stream releases nothing early and loses nothing; a drain ends the
//! stream cleanly; a stream holds one of its user's long-poll slots. The same over gRPC `Consume`:
//! credit instead of `max_in_flight`, settle batches (acks in one call) and more credit up the
//! same stream.

use std::time::Duration;

use mom_tests::grpc::{error_code, grpc_broker_with_admin, pb, Consumer};
use mom_tests::util::next_note;
use mom_tests::{broker_with_queue, ids, json, wait_until, Cluster, Message, Queue, SseStream};
use tonic::Code;

/// Time allowed for an available message to arrive as an event.
const EVENT_WAIT: Duration = Duration::from_secs(5);

/// How long a stream is watched to show that it sends nothing (a bound holds).
const QUIET: Duration = Duration::from_secs(1);

/// Waits until the queue's stats are `(available, in_flight, delayed)`.
async fn counts(queue: &Queue, want: (u64, u64, u64)) {
    wait_until(&format!("stats of '{}' to be {want:?}", queue.name()), Duration::from_secs(10), || async {
        (queue.stats().await.counts() == want).then_some(())
    })
    .await;
}

/// Nacks `m` (no delay) through `through` and expects it back on `stream`, its second delivery:
/// a nack frees room on the stream as an ack does.
async fn expect_nack_comes_back(through: &Queue, stream: &mut SseStream, m: &Message) {
    let nacked = through.nack(&[m.receipt.as_str()], 0).await;
    assert_eq!(nacked[0]["ok"], true, "{nacked:?}");
    let again = stream.next_message(EVENT_WAIT).await;
    assert_eq!((again.id.as_str(), again.receive_count), (m.id.as_str(), 2));
}

fn receipts(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.receipt.as_str()).collect()
}

#[tokio::test]
async fn a_queue_stream_delivers_in_first_delivery_order_and_a_batch_ack_settles_them_all() {
    let (_broker, queue) = broker_with_queue("cs-order", json!({})).await;
    // Messages waiting before the stream opens come first, in send order.
    let before = queue.send_many(&["a", "b", "c"]).await;
    let mut stream = queue.stream("?max_in_flight=10").await;
    let mut got = stream.next_messages(3, EVENT_WAIT).await;
    // Messages sent while it is open follow, woken by the notifier.
    let after = queue.send_many(&["d", "e"]).await;
    got.extend(stream.next_messages(2, EVENT_WAIT).await);
    let sent: Vec<String> = before.into_iter().chain(after).collect();
    assert_eq!(ids(&got), sent);
    assert!(got.iter().all(|m| m.receive_count == 1), "{got:?}");
    counts(&queue, (0, 5, 0)).await;

    // One ack call for all five.
    let results = queue.ack(&receipts(&got)).await;
    assert!(results.iter().all(|r| r["ok"] == true), "{results:?}");
    counts(&queue, (0, 0, 0)).await;
    stream.expect_no_event_for(QUIET).await;
}

#[tokio::test]
async fn max_in_flight_bounds_the_unacked_messages_of_a_queue_stream_and_acks_free_room() {
    let (_broker, queue) = broker_with_queue("cs-bound", json!({ "visibility_timeout_s": 60 })).await;
    let sent = queue.send_many(&["1", "2", "3", "4", "5"]).await;

    let mut stream = queue.stream("?max_in_flight=2").await;
    let mut got = stream.next_messages(2, EVENT_WAIT).await;
    stream.expect_no_event_for(QUIET).await;
    // The broker took no more than the credit: the rest is still available to others.
    counts(&queue, (3, 2, 0)).await;
    // One ack frees one slot: exactly one more message.
    queue.ack_all(&got[..1]).await;
    got.push(stream.next_message(EVENT_WAIT).await);
    stream.expect_no_event_for(QUIET).await;
    counts(&queue, (2, 2, 0)).await;
    // A batch of two frees two.
    queue.ack_all(&got[1..]).await;
    got.extend(stream.next_messages(2, EVENT_WAIT).await);
    assert_eq!(ids(&got), sent);
    stream.expect_no_event_for(QUIET).await;

    // A nack frees room too: the message comes back on the stream.
    expect_nack_comes_back(&queue, &mut stream, &got[3]).await;
}

/// Acks announce freed room (`q/NAME room`) only while a bounded stream waits on the queue: on a
/// queue without one an ack publishes nothing, which saves Redis a PUBLISH per ack (issue 27).
#[tokio::test]
async fn an_ack_announces_room_only_while_a_stream_waits_on_the_queue() {
    let cluster = Cluster::new();
    let broker = cluster.start_broker().await;
    let queue = broker.client().queue("cs-room");
    queue.create(json!({ "visibility_timeout_s": 60 })).await;
    let redis = redis::Client::open(cluster.redis_url.as_str()).expect("redis url");
    let mut pubsub = redis.get_async_pubsub().await.expect("a pub/sub connection to Redis");
    pubsub.subscribe(mom_tests::layout::notify_channel(&cluster.redis_prefix)).await.expect("subscribe");
    let mut notes = pubsub.into_on_message();
    queue.send_batch(json!([{ "body": "1" }, { "body": "2" }, { "body": "3" }])).await.expect_status(200);
    assert_eq!(next_note(&mut notes).await, "q/cs-room 3");
    let got = queue.receive(2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    // No stream: the ack announces nothing, so the nack's announcement comes next, without room.
    queue.ack_all(&got[..1]).await;
    queue.nack(&[got[1].receipt.as_str()], 0).await;
    assert_eq!(next_note(&mut notes).await, "q/cs-room 1", "the ack (or the nack) announced room");

    // A stream full at its bound waits for room: now an ack announces it, and wakes the stream.
    let mut stream = queue.stream("?max_in_flight=1").await;
    let first = stream.next_message(EVENT_WAIT).await;
    stream.expect_no_event_for(QUIET).await;
    queue.ack_all(std::slice::from_ref(&first)).await;
    let note = next_note(&mut notes).await;
    // It names the one delivery it settled, so the stream needs no look at what is in flight.
    let named =
        note.lines().find_map(|l| l.strip_prefix("q/cs-room room ")).map(|ids| ids.split(' ').count());
    assert_eq!(named, Some(1), "the ack announced {note:?}");
    let second = stream.next_message(EVENT_WAIT).await;
    assert_ne!(second.id, first.id);
}

/// A stream on one node hears of settles made through another: the settle's `room` announcement
/// crosses nodes through Redis, so acks and a nack through the other node free room on the
/// stream's at once (not at the first deadline, 60 s here, nor at the 20 s renewal of its mark).
#[tokio::test]
async fn settles_through_another_node_free_room_on_the_stream_s_node() {
    let cluster = Cluster::new();
    let (a, b) = (cluster.start_broker().await, cluster.start_broker().await);
    let on_a = a.client().queue("cs-nodes");
    on_a.create(json!({ "visibility_timeout_s": 60 })).await;
    let on_b = b.client().queue("cs-nodes");
    let sent = on_a.send_many(&["1", "2", "3", "4", "5", "6"]).await;

    let mut stream = on_a.stream("?max_in_flight=2").await;
    let mut got = stream.next_messages(2, EVENT_WAIT).await;
    stream.expect_no_event_for(QUIET).await;
    for _ in 0..2 {
        // Both unacked deliveries, acked in one call through the other node.
        on_b.ack_all(&got[got.len() - 2..]).await;
        got.extend(stream.next_messages(2, EVENT_WAIT).await);
    }
    assert_eq!(ids(&got), sent);
    stream.expect_no_event_for(QUIET).await;

    // A nack through the other node frees room as well, and the message comes back here.
    expect_nack_comes_back(&on_b, &mut stream, &got[5]).await;
}

#[tokio::test]
async fn a_dropped_queue_stream_releases_nothing_early_and_its_messages_come_back_after_the_timeout() {
    let (_broker, queue) = broker_with_queue("cs-drop", json!({ "visibility_timeout_s": 2 })).await;
    let mut gone = queue.stream("?max_in_flight=5").await;
    let sent = queue.send_many(&["a", "b"]).await;
    let first = gone.next_messages(2, EVENT_WAIT).await;
    assert_eq!(ids(&first), sent);
    drop(gone);

    // Still in flight right after the drop: nothing was given back early.
    assert_eq!(queue.stats().await.counts(), (0, 2, 0));
    assert!(queue.receive(10).await.is_empty(), "a dropped stream released its messages early");

    // Another stream gets both once the visibility timeout passed, counted as second deliveries.
    let mut next = queue.stream("?max_in_flight=5").await;
    let again = next.next_messages(2, Duration::from_secs(10)).await;
    assert_eq!(ids(&again), sent);
    assert!(again.iter().all(|m| m.receive_count == 2), "{again:?}");
    // The first delivery's receipts are stale now.
    queue.ack_stale(&first, "redelivered after the stream dropped").await;
    queue.ack_all(&again).await;
    counts(&queue, (0, 0, 0)).await;
}

#[tokio::test]
async fn a_queue_stream_that_cannot_be_opened_is_refused_before_the_first_event() {
    let (broker, queue) = broker_with_queue("cs-refused", json!({})).await;
    for bad in ["?max_in_flight=0", "?max_in_flight=1001", "?max_in_flight=abc", "?max_in_flight=-1"] {
        let refused = queue.try_stream(bad).await.expect_err("a bad max_in_flight is refused");
        refused.expect_error(400, "invalid_argument");
    }
    let missing = broker.client().queue("cs-missing");
    missing
        .try_stream("")
        .await
        .expect_err("an unknown queue is refused")
        .expect_error(404, "queue_not_found");
    let bad_name = broker.client().queue("no!such");
    bad_name.try_stream("").await.expect_err("a bad name is refused").expect_error(400, "invalid_name");

    // Without the consume right: 403.
    let bob = broker.add_user("bob", "user").await;
    broker.client().queue("cs-private").create(json!({ "access": "restricted" })).await;
    let theirs = bob.queue("cs-private");
    theirs.try_stream("").await.expect_err("no consume right").expect_error(403, "forbidden");
    // With a consume grant it opens.
    broker
        .client()
        .put("/v1/queues/cs-private/grants/bob", json!({ "publish": false, "consume": true }))
        .await
        .expect_status(204);
    wait_until("bob's stream to open", Duration::from_secs(10), || async {
        theirs.try_stream("").await.ok()
    })
    .await;
}

#[tokio::test]
async fn queue_streams_count_toward_the_long_polls_a_user_holds() {
    let broker = Cluster::new().broker().env("MOM_MAX_LONG_POLLS_PER_USER", "1").start().await;
    let bob = broker.add_user("bob", "user").await;
    broker.client().queue("cs-limit").create(json!({})).await;
    let queue = bob.queue("cs-limit");
    let one = queue.stream("?max_in_flight=1").await;
    let refused = queue.try_stream("?max_in_flight=1").await.expect_err("a second stream is refused");
    refused.expect_error(429, "rate_limited");
    // Closing the stream gives its place back.
    drop(one);
    let mut two = wait_until("a new stream to open", Duration::from_secs(10), || async {
        queue.try_stream("?max_in_flight=1").await.ok()
    })
    .await;
    queue.send("hello").await;
    assert_eq!(two.next_message(EVENT_WAIT).await.body, "hello");
}

#[tokio::test]
async fn a_drain_ends_a_queue_stream_and_its_unacked_messages_come_back_elsewhere() {
    let cluster = Cluster::new();
    let mut draining = cluster.broker().drain_timeout_s(20).start().await;
    let other = cluster.start_broker().await;
    let queue = draining.client().queue("cs-drain");
    queue.create(json!({ "visibility_timeout_s": 2 })).await;
    let mut stream = queue.stream("?max_in_flight=10").await;
    let sent = queue.send("in flight at the drain").await;
    let taken = stream.next_message(EVENT_WAIT).await;
    assert_eq!(taken.id, sent);

    draining.sigterm();
    // The stream ends cleanly, with nothing more on it, and the node exits.
    let after = stream.expect_end_within(Duration::from_secs(10)).await;
    assert!(after.is_empty(), "{after:?}");
    draining.wait_clean_exit(Duration::from_secs(30)).await;

    // Nothing lost: the unacked message comes back on another node after its visibility timeout.
    let elsewhere = other.client().queue("cs-drain");
    let mut next = elsewhere.stream("?max_in_flight=10").await;
    let again = next.next_message(Duration::from_secs(10)).await;
    assert_eq!(again.id, sent);
    assert_eq!(again.receive_count, 2);
    elsewhere.ack_all(&[again]).await;
}

/// gRPC `Consume`: credit bounds what the stream holds, settle batches ack in bulk and grant more.
#[tokio::test]
async fn grpc_consume_pushes_in_order_within_its_credit_and_acks_in_batches() {
    let (broker, _addr, mut c) = grpc_broker_with_admin().await;
    let queue = broker.client().queue("gc-credit");
    queue.create(json!({ "visibility_timeout_s": 60 })).await;
    let sent = queue.send_many(&["1", "2", "3", "4", "5", "6"]).await;

    let open = pb::ConsumeOpen { queue: "gc-credit".into(), credit: 2, ..Default::default() };
    let mut consumer = Consumer::open(&mut c, open).await.unwrap_or_else(|s| panic!("Consume: {s:?}"));
    let (mut got, _) = consumer.messages(2, EVENT_WAIT).await;
    assert!(consumer.next(QUIET).await.is_none(), "more than the credit was pushed");
    counts(&queue, (4, 2, 0)).await;

    // One batch acks both (one store call) and frees two places.
    let receipts: Vec<String> = got.iter().map(|m| m.receipt.clone()).collect();
    consumer.settle(pb::ConsumeSettle { batch: 1, ack: receipts, ..Default::default() }).await;
    let (more, settled) = consumer.messages(2, EVENT_WAIT).await;
    got.extend(more);
    let answer = match settled.into_iter().next() {
        Some(a) => a,
        None => consumer.settled(EVENT_WAIT).await,
    };
    assert_eq!(answer.batch, 1);
    assert!(answer.error.is_none(), "{answer:?}");
    assert_eq!(answer.ack.len(), 2);
    assert!(answer.ack.iter().all(|r| r.error.is_none()), "{answer:?}");
    assert!(consumer.next(QUIET).await.is_none(), "more than the credit was pushed");

    // More credit, no acks: two more messages, four unacked.
    consumer.settle(pb::ConsumeSettle { batch: 2, credit: 2, ..Default::default() }).await;
    let (more, _) = consumer.messages(2, EVENT_WAIT).await;
    got.extend(more);
    let got_ids: Vec<String> = got.iter().map(|m| m.id.clone()).collect();
    assert_eq!(got_ids, sent, "first delivery in send order");
    assert!(consumer.next(QUIET).await.is_none());
    counts(&queue, (0, 4, 0)).await;

    // A nack with a delay and an extension in one batch; then the rest acked.
    let nacked = got[2].receipt.clone();
    let batch = pb::ConsumeSettle {
        batch: 3,
        nack: vec![nacked],
        nack_delay_s: 1,
        extend: vec![got[3].receipt.clone()],
        extend_visibility_timeout_s: 120,
        ack: vec![got[4].receipt.clone(), got[5].receipt.clone(), "not-a-receipt".into()],
        ..Default::default()
    };
    consumer.settle(batch).await;
    let answer = consumer.settled(EVENT_WAIT).await;
    assert_eq!((answer.ack.len(), answer.nack.len(), answer.extend.len()), (3, 1, 1), "{answer:?}");
    assert!(answer.ack[..2].iter().all(|r| r.error.is_none()) && answer.ack[2].error.is_some(), "{answer:?}");
    // The nacked message comes back on the stream after its delay, as a second delivery.
    let (again, _) = consumer.messages(1, Duration::from_secs(10)).await;
    assert_eq!(again[0].id, sent[2]);
    assert_eq!(again[0].receive_count, 2);
}

#[tokio::test]
async fn grpc_consume_is_refused_before_it_starts_and_a_dropped_one_loses_nothing() {
    let (broker, _addr, mut c) = grpc_broker_with_admin().await;
    let queue = broker.client().queue("gc-drop");
    queue.create(json!({ "visibility_timeout_s": 2 })).await;
    let open = |queue: &str, credit| pb::ConsumeOpen { queue: queue.into(), credit, ..Default::default() };

    for credit in [0, 1001] {
        let refused =
            Consumer::open(&mut c, open("gc-drop", credit)).await.err().expect("a bad credit is refused");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert_eq!(error_code(&refused), "invalid_argument");
    }
    let refused =
        Consumer::open(&mut c, open("gc-missing", 1)).await.err().expect("an unknown queue is refused");
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    assert_eq!(error_code(&refused), "queue_not_found");
    let settle_first = pb::consume_request::Request::Settle(pb::ConsumeSettle::default());
    let refused = Consumer::open_with(&mut c, settle_first).await.err().expect("a stream must open first");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");

    // A stream that goes away with deliveries unacked: nothing released early, nothing lost.
    let mut gone =
        Consumer::open(&mut c, open("gc-drop", 5)).await.unwrap_or_else(|s| panic!("Consume: {s:?}"));
    let sent = queue.send_many(&["a", "b"]).await;
    let (first, _) = gone.messages(2, EVENT_WAIT).await;
    assert_eq!(first.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), sent);
    drop(gone);
    assert_eq!(queue.stats().await.counts(), (0, 2, 0));
    let mut next =
        Consumer::open(&mut c, open("gc-drop", 5)).await.unwrap_or_else(|s| panic!("Consume: {s:?}"));
    let (again, _) = next.messages(2, Duration::from_secs(10)).await;
    assert_eq!(again.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), sent);
    assert!(again.iter().all(|m| m.receive_count == 2), "{again:?}");
}

#[tokio::test]
async fn a_drain_ends_grpc_consume_streams_cleanly() {
    let (mut broker, _addr, mut c) = grpc_broker_with_admin().await;
    let queue = broker.client().queue("gc-drain");
    queue.create(json!({ "visibility_timeout_s": 1 })).await;
    let open = pb::ConsumeOpen { queue: "gc-drain".into(), credit: 10, ..Default::default() };
    let mut consumer = Consumer::open(&mut c, open).await.unwrap_or_else(|s| panic!("Consume: {s:?}"));
    let sent = queue.send("in flight at the drain").await;
    let (got, _) = consumer.messages(1, EVENT_WAIT).await;
    assert_eq!(got[0].id, sent);
    broker.sigterm();
    let end = consumer.end(Duration::from_secs(10)).await;
    assert!(end.is_ok(), "the stream ends cleanly: {end:?}");
    broker.wait_clean_exit(Duration::from_secs(30)).await;
}

#[tokio::test]
async fn grpc_consume_serves_a_subscription_too() {
    let (broker, _addr, mut c) = grpc_broker_with_admin().await;
    let topic = broker.client().topic("gc-topic");
    topic.create(json!({})).await;
    topic.subscription("s").create(json!({})).await;
    let open = pb::ConsumeOpen {
        topic: "gc-topic".into(),
        subscription: "s".into(),
        credit: 1,
        ..Default::default()
    };
    let mut consumer = Consumer::open(&mut c, open).await.unwrap_or_else(|s| panic!("Consume: {s:?}"));
    let published = topic.publish_many(&["x", "y"]).await;
    let (first, _) = consumer.messages(1, EVENT_WAIT).await;
    assert_eq!(first[0].id, published[0]);
    assert!(consumer.next(QUIET).await.is_none(), "more than the credit was pushed");
    consumer
        .settle(pb::ConsumeSettle { batch: 7, ack: vec![first[0].receipt.clone()], ..Default::default() })
        .await;
    let (second, settled) = consumer.messages(1, EVENT_WAIT).await;
    assert_eq!(second[0].id, published[1]);
    let answer = match settled.into_iter().next() {
        Some(a) => a,
        None => consumer.settled(EVENT_WAIT).await,
    };
    assert_eq!(answer.batch, 7);
    assert!(answer.ack.iter().all(|r| r.error.is_none()) && answer.ack.len() == 1, "{answer:?}");
}

/// The `mom-bench consume` scenario (benchmark figures are not taken here): it drains a queue
/// through both kinds of stream and reports each.
#[tokio::test]
async fn mom_bench_consume_drains_a_queue_over_http_and_grpc() {
    let (broker, addr, _) = grpc_broker_with_admin().await;
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_mom-bench"))
        .args(["consume", "--url", &broker.url(), "--grpc", &addr, "--queue", "bench-consume"])
        .args(["--messages", "300", "--credit", "40", "--ack-batch", "25"])
        .env("MOM_BENCH_USER", mom_tests::ADMIN_USER)
        .env("MOM_BENCH_PASSWORD", mom_tests::ADMIN_PASSWORD)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .unwrap_or_else(|_| panic!("mom-bench consume ran over 120 s"))
        .unwrap_or_else(|e| panic!("cannot run mom-bench: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mom-bench consume failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcomes: Vec<mom_tests::Value> =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    let transports: Vec<&str> = outcomes.iter().filter_map(|o| o["transport"].as_str()).collect();
    assert_eq!(transports, ["http", "grpc"], "{stdout}");
    for o in &outcomes {
        assert_eq!(o["messages"], 300, "{o}");
        // 300 receipts in batches of at most 25.
        assert!(o["ack_calls"].as_u64().is_some_and(|n| n >= 12), "{o}");
    }
    let queue = broker.client().queue("bench-consume");
    counts(&queue, (0, 0, 0)).await;
}
