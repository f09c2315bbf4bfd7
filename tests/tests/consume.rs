//! Consume streams of queues (issue 25): `GET /v1/queues/{name}/stream?max_in_flight=N` pushes a
//! queue's messages as server-sent events (the subscription stream's format), in the order of
//! first delivery, never more than `max_in_flight` unacked; acks sent in batches to the ack route
//! free room at once; a dropped stream releases nothing early and loses nothing; a drain ends the
//! stream cleanly; a stream holds one of its user's long-poll slots.

use std::time::Duration;

use mom_tests::{broker_with_queue, ids, json, wait_until, Cluster, Message, Queue};

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
    let nacked = queue.nack(&[got[3].receipt.as_str()], 0).await;
    assert_eq!(nacked[0]["ok"], true, "{nacked:?}");
    let again = stream.next_message(EVENT_WAIT).await;
    assert_eq!(again.id, sent[3]);
    assert_eq!(again.receive_count, 2);
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
