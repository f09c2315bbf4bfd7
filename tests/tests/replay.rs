//! Replay (issue 4, points 3 and 6): `seek` to a time or an id re-delivers every retained message
//! from that point and cancels deliveries in flight; `retention_s` trims old messages, counts them
//! in `/metrics`, and bounds how far back a seek goes.
//!
//! One test waits for a real retention period: 60 s, the smallest the API allows.

use std::time::{Duration, Instant};

use mom_tests::{
    bodies, broker_with_subscription, broker_with_topic, ids, json, scrape, wait_until_every, Body, Message,
    Subscription,
};

/// Time allowed for an available message to arrive on a stream.
const STREAM_WAIT: Duration = Duration::from_secs(5);

/// A time before every message of the tests and before any retention period.
const LONG_AGO: &str = "2000-01-01T00:00:00.000Z";

/// Receives the messages the subscription has now and acks them.
async fn receive_and_ack(sub: &Subscription) -> Vec<Message> {
    let got = sub.drain().await;
    sub.ack_all(&got).await;
    got
}

#[tokio::test]
async fn seek_to_a_time_redelivers_every_retained_message_sent_at_or_after_it() {
    let (_broker, topic, sub) = broker_with_subscription("replay-time", "s", json!({})).await;
    let published = topic.publish_many(&["m1", "m2", "m3", "m4", "m5", "m6"]).await;
    let first = receive_and_ack(&sub).await;
    assert_eq!(ids(&first), published);
    assert_eq!(sub.lag().await, 0);

    let time = first[2].sent_at.clone();
    let expected: Vec<&Message> = first.iter().filter(|m| m.sent_at >= time).collect();
    sub.seek_time(&time).await;
    assert_eq!(sub.lag().await, expected.len() as u64);
    let replayed = sub.receive(10).await;
    assert_eq!(replayed.len(), expected.len(), "{replayed:?}");
    for (again, original) in replayed.iter().zip(&expected) {
        assert_eq!(
            (&again.id, &again.body, &again.attributes, &again.sent_at),
            (&original.id, &original.body, &original.attributes, &original.sent_at)
        );
        assert_eq!(again.receive_count, 1, "a replay is a new delivery: {again:?}");
    }
    sub.ack_all(&replayed).await;

    // A time before the retention period: from the oldest retained message, i.e. everything.
    sub.seek_time(LONG_AGO).await;
    assert_eq!(ids(&receive_and_ack(&sub).await), published);
    // A time after the last message: nothing to replay.
    sub.seek_time("2999-01-01T00:00:00Z").await;
    assert!(sub.receive(10).await.is_empty());
}

#[tokio::test]
async fn seek_to_an_id_redelivers_from_that_message_on() {
    let (_broker, topic, sub) = broker_with_subscription("replay-id", "s", json!({})).await;
    let published = topic.publish_many(&["a", "b", "c", "d", "e"]).await;
    receive_and_ack(&sub).await;

    sub.seek_id(&published[3]).await;
    assert_eq!(ids(&receive_and_ack(&sub).await), published[3..]);
    sub.seek_id(&published[0]).await;
    assert_eq!(ids(&receive_and_ack(&sub).await), published);
}

#[tokio::test]
async fn seek_cancels_deliveries_in_flight() {
    let (_broker, topic, sub) =
        broker_with_subscription("replay-cancel", "s", json!({ "ack_deadline_s": 30 })).await;
    let published = topic.publish_many(&["a", "b", "c", "d"]).await;
    let in_flight = sub.receive(10).await;
    assert_eq!(ids(&in_flight), published);

    sub.seek_id(&published[1]).await;
    // Every delivery before the seek is over, whether its message is replayed or not.
    sub.ack_stale(&in_flight, "delivered before a seek").await;
    sub.extend(&in_flight[2].receipt, 60).await.expect_error(409, "receipt_invalid");

    // The replay delivers from the seek point at once (not after the old 30 s deadline).
    let replayed = sub.receive(10).await;
    assert_eq!(ids(&replayed), published[1..]);
    assert!(replayed.iter().all(|m| m.receive_count == 1), "{replayed:?}");
    sub.ack_all(&replayed).await;
    // The message before the seek point is done with.
    assert!(sub.receive(10).await.is_empty());
    assert_eq!(sub.lag().await, 0);
}

#[tokio::test]
async fn a_seek_replays_to_an_open_stream_and_cancels_what_it_had_in_flight() {
    let (_broker, topic, sub) = broker_with_subscription("replay-push", "s", json!({})).await;
    let mut stream = sub.stream("").await;
    let published = topic.publish_many(&["a", "b"]).await;
    let first = stream.next_messages(2, STREAM_WAIT).await;
    assert_eq!(ids(&first), published);

    sub.seek_id(&published[0]).await;
    let again = stream.next_messages(2, STREAM_WAIT).await;
    assert_eq!(ids(&again), published);
    assert!(again.iter().all(|m| m.receive_count == 1), "{again:?}");
    sub.ack_stale(&first, "delivered before a seek").await;
    sub.ack_all(&again).await;
    assert_eq!(sub.lag().await, 0);
}

#[tokio::test]
async fn a_seek_replays_only_what_the_subscription_matches() {
    let (broker, topic, sub) =
        broker_with_subscription("replay-filter", "ones", json!({ "filter": { "k": "1" } })).await;
    let bob = broker.add_user("bob", "user").await.topic("replay-filter");
    let mine = bob.subscription("bob-no-local");
    mine.create(json!({ "no_local": true })).await;
    for k in ["1", "2", "1"] {
        topic.publish_msg(json!({ "body": format!("k{k}"), "attributes": { "k": k } })).await;
    }
    bob.publish("from-bob").await;

    assert_eq!(bodies(&receive_and_ack(&sub).await), ["k1", "k1"]);
    sub.seek_time(LONG_AGO).await;
    assert_eq!(bodies(&receive_and_ack(&sub).await), ["k1", "k1"]);

    assert_eq!(bodies(&receive_and_ack(&mine).await), ["k1", "k2", "k1"]);
    mine.seek_time(LONG_AGO).await;
    assert_eq!(bodies(&receive_and_ack(&mine).await), ["k1", "k2", "k1"]);
}

#[tokio::test]
async fn bad_seek_requests_are_rejected() {
    let (broker, topic, sub) = broker_with_subscription("replay-bad", "s", json!({})).await;
    let id = topic.publish("x").await;
    for body in [
        json!({}),
        json!({ "time": "yesterday" }),
        json!({ "time": "2026-11-25 17:06:29" }),
        json!({ "time": 0 }),
        json!({ "id": "not-an-id" }),
        json!({ "id": "" }),
        json!({ "id": 1 }),
        json!({ "time": LONG_AGO, "id": id }),
        json!({ "position": "start" }),
    ] {
        let resp = sub.seek_resp(body.clone()).await;
        assert_eq!(resp.status, 400, "{body}: {resp}");
        resp.expect_error(400, "invalid_request");
    }
    let malformed = Body::Raw { content_type: Some("application/json"), bytes: b"{\"time\":".to_vec() };
    broker
        .client()
        .request(reqwest::Method::POST, &sub.path("/seek"), malformed)
        .await
        .expect_error(400, "invalid_request");
    topic
        .subscription("nope")
        .seek_resp(json!({ "time": LONG_AGO }))
        .await
        .expect_error(404, "subscription_not_found");
    // Nothing was replayed by the rejected requests: the message is delivered once.
    assert_eq!(ids(&sub.receive(10).await), [id]);
    assert!(sub.receive(10).await.is_empty());
}

#[tokio::test]
async fn retention_trims_old_messages_counts_them_and_bounds_a_seek() {
    let retention = Duration::from_secs(60);
    let (broker, topic) = broker_with_topic("short", json!({ "retention_s": 60 })).await;
    let sub = topic.subscription("s");
    sub.create(json!({})).await;
    let before = Instant::now();
    let old = topic.publish_many(&["old-1", "old-2", "old-3"]).await;
    let after = Instant::now();
    // One of them is delivered and never acked.
    let unacked = sub.receive(1).await;
    assert_eq!(ids(&unacked), old[..1]);
    assert_eq!(topic.stats().await.messages, 3);

    // GET of the topic trims to retention and reports what is left: nothing may go early, and
    // everything must go once 60 s passed (plus the 1 s poll interval and some slack).
    let trimmed_at = wait_until_every(
        "the topic's retention to trim its 3 messages",
        retention + Duration::from_secs(15),
        Duration::from_secs(1),
        || async {
            let stats = topic.stats().await;
            let now = Instant::now();
            if stats.messages == 0 {
                return Some(now);
            }
            assert_eq!(stats.messages, 3, "partly trimmed: {stats:?}");
            // Whole seconds, from the broker's clock: within a second or two of the test's.
            let age = now.duration_since(before).as_secs();
            assert!(
                stats.oldest_age_s + 2 >= age && stats.oldest_age_s <= age + 1,
                "oldest_age_s {} when the messages are {age} s old",
                stats.oldest_age_s
            );
            None
        },
    )
    .await;
    assert!(
        trimmed_at.duration_since(before) + Duration::from_millis(100) >= retention,
        "trimmed {:?} after publishing, before the 60 s retention",
        trimmed_at.duration_since(before)
    );
    assert!(
        trimmed_at.duration_since(after) <= retention + Duration::from_secs(3),
        "trimmed only {:?} after publishing",
        trimmed_at.duration_since(after)
    );

    // The subscription lost them too, the unacked delivery included.
    assert_eq!(sub.lag().await, 0);
    assert!(sub.receive(10).await.is_empty());
    sub.ack_stale(&unacked, "its message expired").await;
    let expired =
        scrape(&broker.client(), "mom_messages_expired_total", &[("kind", "topic"), ("name", "short")]).await;
    assert_eq!(expired, Some(3.0));

    // A seek across the retention boundary starts at the oldest retained message: by time...
    let fresh = topic.publish("fresh").await;
    receive_and_ack(&sub).await;
    sub.seek_time(LONG_AGO).await;
    assert_eq!(ids(&receive_and_ack(&sub).await), std::slice::from_ref(&fresh));
    // ... and by the id of a message that is gone.
    sub.seek_id(&old[0]).await;
    assert_eq!(ids(&receive_and_ack(&sub).await), std::slice::from_ref(&fresh));
    // A new subscription from the earliest message starts there too.
    let late = topic.subscription("late");
    late.create(json!({ "start": "earliest" })).await;
    assert_eq!(ids(&late.receive(10).await), [fresh]);
}
