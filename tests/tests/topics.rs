//! Topics (issue 4, points 1, 2 and 5): topic and subscription administration, publish and batch
//! publish, where a subscription starts, filters, `no_local`, ack deadlines, dead letters, fan-out
//! to several subscriptions, competing consumers on one subscription, and subscription lag in the
//! API and in `/metrics`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mom_tests::{
    assert_error_result, assert_fields, assert_ok_result, bodies, broker_with_subscription,
    broker_with_topic, expect_missing_dead_letter_queue, id_set, ids, json, scrape, start_broker, Message,
    Subscription, Topic, TopicStats, Value, Window,
};

const SECOND: Duration = Duration::from_secs(1);

/// Time allowed for messages that are already available to be received.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The names in a list answer (`topics` or `subscriptions`), sorted.
fn names(list: &[Value]) -> Vec<String> {
    let mut names: Vec<String> =
        list.iter().map(|e| e["name"].as_str().unwrap_or_default().to_string()).collect();
    names.sort();
    names
}

async fn listed_topics(client: &mom_tests::Client) -> Vec<Value> {
    let resp = client.get("/v1/topics").await.expect_status(200);
    resp.json["topics"].as_array().unwrap_or_else(|| panic!("no topics array in {resp}")).clone()
}

/// Receives and acks until `count` distinct messages arrived, then checks that nothing else is
/// available; returns the ids.
async fn consume_exactly(sub: &Subscription, count: usize) -> HashSet<String> {
    let got = sub.receive_n(count, RECEIVE_TIMEOUT).await;
    sub.ack_all(&got).await;
    let extra = sub.receive(100).await;
    assert!(
        extra.is_empty(),
        "subscription {} got more than the {count} expected messages: {extra:?}",
        sub.name()
    );
    id_set(&got)
}

#[tokio::test]
async fn topics_are_created_idempotently_listed_shown_with_stats_and_deleted() {
    let broker = start_broker().await;
    let client = broker.client();
    let topic = client.topic("news");
    let created = topic.create_resp(json!({})).await.expect_status(201);
    assert_fields(
        &created.json,
        &json!({
            "name": "news",
            "retention_s": 604800,
            "max_message_bytes": 262144,
            "access": "authenticated",
        }),
    );
    // The same config again, implicit or spelled out: 200. A different one: 409.
    for same in [json!({}), json!({ "retention_s": 604800, "max_message_bytes": 262144 })] {
        topic.create_resp(same).await.expect_status(200);
    }
    topic.create_resp(json!({ "retention_s": 3600 })).await.expect_error(409, "already_exists");
    let sports = client.topic("sports");
    sports.create(json!({ "retention_s": 3600 })).await;

    let listed = listed_topics(&client).await;
    assert_eq!(names(&listed), ["news", "sports"]);
    let entry = listed.iter().find(|t| t["name"] == "sports").cloned();
    assert_fields(&entry.unwrap_or_default(), &json!({ "retention_s": 3600 }));

    let empty = TopicStats { messages: 0, subscriptions: 0, oldest_age_s: 0 };
    assert_eq!(topic.stats().await, empty);
    topic.subscription("a").create(json!({})).await;
    topic.subscription("b").create(json!({})).await;
    topic.publish_many(&["1", "2", "3"]).await;
    let stats = topic.stats().await;
    assert_eq!((stats.messages, stats.subscriptions), (3, 2), "{stats:?}");

    topic.delete().await.expect_status(204);
    topic.get().await.expect_error(404, "topic_not_found");
    topic.delete().await.expect_error(404, "topic_not_found");
    topic.publish_resp(json!({ "body": "x" })).await.expect_error(404, "topic_not_found");
    topic.subscription("a").receive_resp(json!({})).await.expect_error(404, "topic_not_found");
    assert_eq!(names(&listed_topics(&client).await), ["sports"]);

    // A new topic of the same name starts empty: its messages and subscriptions went with it.
    topic.create(json!({})).await;
    assert_eq!(topic.stats().await, empty);
    assert!(topic.subscriptions().await.is_empty());
}

#[tokio::test]
async fn bad_topic_requests_are_rejected() {
    let broker = start_broker().await;
    let client = broker.client();
    client.topic("bad.name").create_resp(json!({})).await.expect_error(400, "invalid_name");
    let topic = client.topic("t");
    for config in [
        json!({ "retention_s": 59 }),
        json!({ "retention_s": 1_209_601 }),
        json!({ "max_message_bytes": 0 }),
        json!({ "max_message_bytes": 1_048_577 }),
        json!({ "access": "everyone" }),
        json!({ "delay_s": 1 }),
    ] {
        let resp = topic.create_resp(config.clone()).await;
        assert_eq!(resp.error_code(), Some("invalid_request"), "{config}: {resp}");
        resp.expect_error(400, "invalid_request");
    }
    topic.get().await.expect_error(404, "topic_not_found");
    topic.subscription("s").create_resp(json!({})).await.expect_error(404, "topic_not_found");
    // The limits themselves are allowed.
    topic.create(json!({ "retention_s": 60, "max_message_bytes": 1_048_576 })).await;
}

#[tokio::test]
async fn publish_answers_201_and_a_batch_answers_per_entry_in_order() {
    let (_broker, topic) = broker_with_topic("pub", json!({ "max_message_bytes": 16 })).await;
    let sub = topic.subscription("all");
    sub.create(json!({})).await;
    let too_big = "x".repeat(17);

    let hello = topic.publish_msg(json!({ "body": "hello", "attributes": { "k": "v" } })).await;
    // Topics take no delay_s; the body limit and attribute rules are the queue's.
    for (message, status, code) in [
        (json!({ "body": "later", "delay_s": 5 }), 400, "invalid_request"),
        (json!({ "body": too_big }), 413, "message_too_large"),
        (json!({ "body": "m", "attributes": { "mom.x": "y" } }), 400, "invalid_request"),
    ] {
        topic.publish_resp(message).await.expect_error(status, code);
    }

    let resp = topic
        .publish_batch_resp(json!([
            { "body": "b1" },
            { "body": "b2", "delay_s": 1 },
            { "body": too_big },
            { "body": "b3", "attributes": { "mom.k": "v" } },
            { "body": "b4", "attributes": { "a": "1" } },
        ]))
        .await
        .expect_status(200);
    let results = resp.json["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 5, "{resp}");
    assert_error_result(&results[1], "invalid_request", "delay_s on a topic");
    assert_error_result(&results[2], "message_too_large", "body over the limit");
    assert_error_result(&results[3], "invalid_request", "a mom. attribute");
    let b1 = results[0]["id"].as_str().unwrap_or_default().to_string();
    let b4 = results[4]["id"].as_str().unwrap_or_default().to_string();
    assert!(!b1.is_empty() && !b4.is_empty(), "{resp}");

    for size in [0, 101] {
        let entries: Vec<Value> = (0..size).map(|i| json!({ "body": format!("{i}") })).collect();
        topic.publish_batch_resp(json!(entries)).await.expect_error(400, "invalid_request");
    }

    // Only the valid entries were published, in order.
    let got = sub.receive(10).await;
    assert_eq!(ids(&got), [hello, b1, b4]);
    assert_eq!(bodies(&got), ["hello", "b1", "b4"]);
    assert_eq!(got[0].attributes.get("k").map(String::as_str), Some("v"));
    assert_eq!(got[2].attributes.get("a").map(String::as_str), Some("1"));
    sub.ack_all(&got).await;

    // dedup_id as for queues: stored and delivered once, the second publish answers 200.
    let mut answered = Vec::new();
    for status in [201, 200] {
        let once = json!({ "body": "once", "dedup_id": "d-1" });
        answered.push(topic.publish_resp(once).await.expect_status(status).json);
    }
    assert_eq!(answered[0]["id"], answered[1]["id"]);
    let got = sub.receive(10).await;
    assert_eq!(bodies(&got), ["once"]);
}

#[tokio::test]
async fn a_recreated_topic_does_not_remember_dedup_ids_of_the_deleted_one() {
    let (broker, topic) = broker_with_topic("dedup", json!({})).await;
    topic.publish_resp(json!({ "body": "old", "dedup_id": "k" })).await.expect_status(201);
    topic.delete().await.expect_status(204);
    let topic = broker.client().topic("dedup");
    topic.create(json!({})).await;
    let sub = topic.subscription("s");
    sub.create(json!({})).await;
    // The deleted topic's message is gone; a 200 here would name a message that does not exist.
    let resp = topic.publish_resp(json!({ "body": "new", "dedup_id": "k" })).await;
    assert_eq!(resp.status, 201, "publish to the new topic: {resp}");
    assert_eq!(bodies(&sub.receive(10).await), ["new"]);
}

#[tokio::test]
async fn subscriptions_are_created_idempotently_listed_and_deleted() {
    let (broker, topic) = broker_with_topic("subs", json!({})).await;
    broker.client().queue("dlq").create(json!({})).await;
    let a = topic.subscription("a");
    let created = a.create(json!({})).await;
    assert_fields(
        &created,
        &json!({
            "name": "a",
            "topic": "subs",
            "start": "latest",
            "filter": {},
            "no_local": false,
            "ack_deadline_s": 30,
            "max_receives": null,
            "dead_letter_queue": null,
            "owner": "admin",
        }),
    );
    a.create_resp(json!({})).await.expect_status(200);
    a.create_resp(json!({ "ack_deadline_s": 30, "no_local": false, "filter": {} })).await.expect_status(200);
    a.create_resp(json!({ "ack_deadline_s": 10 })).await.expect_error(409, "already_exists");
    a.create_resp(json!({ "filter": { "x": "1" } })).await.expect_error(409, "already_exists");

    let b = topic.subscription("b");
    let config = json!({
        "filter": { "k": "v" },
        "no_local": true,
        "ack_deadline_s": 5,
        "max_receives": 3,
        "dead_letter_queue": "dlq",
    });
    b.create(config.clone()).await;
    let listed = topic.subscriptions().await;
    assert_eq!(names(&listed), ["a", "b"]);
    for entry in &listed {
        assert_eq!(entry["lag"], 0, "{entry}");
    }
    assert_fields(&b.listed().await, &config);

    let c = topic.subscription("c");
    for body in [
        json!({ "start": "tomorrow" }),
        json!({ "start": { "time": "noon" } }),
        json!({ "ack_deadline_s": 0 }),
        json!({ "ack_deadline_s": 43_201 }),
        json!({ "max_receives": 0 }),
        json!({ "dead_letter_queue": "dlq" }),
        json!({ "filter": { "k": 1 } }),
        json!({ "colour": "blue" }),
    ] {
        let resp = c.create_resp(body.clone()).await;
        assert_eq!(resp.status, 400, "{body}: {resp}");
        resp.expect_error(400, "invalid_request");
    }
    expect_missing_dead_letter_queue(
        c.create_resp(json!({ "max_receives": 2, "dead_letter_queue": "nope" })).await,
    );
    topic.subscription("bad.name").create_resp(json!({})).await.expect_error(400, "invalid_name");
    assert_eq!(names(&topic.subscriptions().await), ["a", "b"]);

    a.delete().await.expect_status(204);
    assert_eq!(names(&topic.subscriptions().await), ["b"]);
    a.receive_resp(json!({})).await.expect_error(404, "subscription_not_found");
    a.delete().await.expect_error(404, "subscription_not_found");
    a.create(json!({})).await;
}

#[tokio::test]
async fn re_creating_a_subscription_with_another_start_is_a_conflict() {
    let (_broker, _topic, sub) = broker_with_subscription("restart", "s", json!({ "start": "latest" })).await;
    sub.create_resp(json!({ "start": "latest" })).await.expect_status(200);
    // The subscription does not start at the earliest message: "200, same config" would be false.
    sub.create_resp(json!({ "start": "earliest" })).await.expect_error(409, "already_exists");
}

#[tokio::test]
async fn start_latest_earliest_or_a_time_decides_the_first_message_of_a_subscription() {
    let (_broker, topic) = broker_with_topic("starts", json!({})).await;
    let old = topic.publish_many(&["m1", "m2", "m3"]).await;

    let earliest = topic.subscription("earliest");
    earliest.create(json!({ "start": "earliest" })).await;
    let backlog = earliest.receive(10).await;
    assert_eq!(ids(&backlog), old, "earliest starts at the first retained message, in order");
    earliest.ack_all(&backlog).await;

    // A time: every retained message with sent_at at or after it (m2 and on; m1 too if it was
    // published in the same millisecond).
    let time = backlog[1].sent_at.clone();
    let expected: Vec<String> = backlog.iter().filter(|m| m.sent_at >= time).map(|m| m.id.clone()).collect();
    let at = topic.subscription("at");
    let created = at.create(json!({ "start": { "time": time } })).await;
    assert_eq!(created["start"], json!({ "time": time }));
    let from_time = at.receive(10).await;
    assert_eq!(ids(&from_time), expected);
    at.ack_all(&from_time).await;

    let latest = topic.subscription("latest");
    latest.create(json!({})).await;
    assert!(latest.receive(10).await.is_empty(), "latest got old messages");

    // Every one of them gets what is published after it was created.
    let new = topic.publish("m4").await;
    for sub in [&earliest, &at, &latest] {
        let got = sub.receive(10).await;
        assert_eq!(ids(&got), std::slice::from_ref(&new), "subscription {}", sub.name());
    }
}

#[tokio::test]
async fn a_filter_delivers_only_messages_whose_listed_attributes_all_match() {
    let (_broker, topic, all) = broker_with_subscription("shapes", "all", json!({})).await;
    let red_large = topic.subscription("red-large");
    red_large.create(json!({ "filter": { "color": "red", "size": "L" } })).await;
    let published = [
        ("match", json!({ "color": "red", "size": "L" })),
        ("match+extra", json!({ "color": "red", "size": "L", "shape": "round" })),
        ("only-color", json!({ "color": "red" })),
        ("wrong-size", json!({ "color": "red", "size": "M" })),
        ("no-attributes", json!({})),
        ("case", json!({ "color": "Red", "size": "L" })),
    ];
    for (body, attributes) in &published {
        topic.publish_msg(json!({ "body": body, "attributes": attributes })).await;
    }
    assert_eq!(bodies(&red_large.receive(10).await), ["match", "match+extra"]);
    assert_eq!(all.receive(10).await.len(), published.len());
    // Lag counts matching messages only.
    assert_eq!(red_large.lag().await, 2);

    // A subscription filled from the retained log applies its filter too.
    let late = topic.subscription("late");
    late.create(json!({ "start": "earliest", "filter": { "size": "L" } })).await;
    assert_eq!(bodies(&late.receive(10).await), ["match", "match+extra", "case"]);
}

#[tokio::test]
async fn no_local_skips_the_messages_that_the_subscription_owner_published() {
    let broker = start_broker().await;
    let admin = broker.client().topic("chat");
    admin.create(json!({})).await;
    let alice = broker.add_user("alice", "user").await.topic("chat");

    let alice_no_local = alice.subscription("alice-no-local");
    let created = alice_no_local.create(json!({ "no_local": true })).await;
    assert_eq!(created["owner"], "alice");
    let alice_all = alice.subscription("alice-all");
    alice_all.create(json!({})).await;
    let admin_no_local = admin.subscription("admin-no-local");
    admin_no_local.create(json!({ "no_local": true })).await;

    admin.publish("from-admin-1").await;
    alice.publish("from-alice").await;
    admin.publish_batch(json!([{ "body": "from-admin-2" }])).await;

    assert_eq!(bodies(&alice_no_local.receive(10).await), ["from-admin-1", "from-admin-2"]);
    assert_eq!(bodies(&alice_all.receive(10).await), ["from-admin-1", "from-alice", "from-admin-2"]);
    assert_eq!(bodies(&admin_no_local.receive(10).await), ["from-alice"]);

    // Filling from the retained log skips them too.
    let late = alice.subscription("alice-late");
    late.create(json!({ "no_local": true, "start": "earliest" })).await;
    assert_eq!(bodies(&late.receive(10).await), ["from-admin-1", "from-admin-2"]);
}

#[tokio::test]
async fn a_subscriber_that_stops_without_acking_gets_its_messages_back_after_the_ack_deadline() {
    let (_broker, topic, sub) =
        broker_with_subscription("redeliver", "s", json!({ "ack_deadline_s": 1 })).await;
    let published = topic.publish_many(&["a", "b", "c"]).await;

    let (first, window) = Window::around(sub.receive(10)).await;
    assert_eq!(ids(&first), published);
    assert!(first.iter().all(|m| m.receive_count == 1), "{first:?}");
    assert!(sub.receive(10).await.is_empty(), "visible while in flight");
    assert_eq!(sub.lag().await, 3, "in-flight messages are not acked");

    // The consumer goes away without acking: all of it comes back once the deadline passed.
    let again = sub.expect_receivable_after(window, SECOND).await;
    assert_eq!(ids(&again), published);
    for (old, new) in first.iter().zip(&again) {
        assert_eq!(new.receive_count, 2, "{new:?}");
        assert_eq!((&new.body, &new.sent_at), (&old.body, &old.sent_at));
        assert_ne!(new.receipt, old.receipt);
    }
    sub.ack_stale(&first, "redelivered since").await;
    sub.ack_all(&again).await;
    assert_eq!(sub.lag().await, 0);
    assert!(sub.receive(10).await.is_empty());
}

#[tokio::test]
async fn nack_and_visibility_on_a_subscription_work_as_on_a_queue() {
    let (_broker, topic, sub) =
        broker_with_subscription("settle", "s", json!({ "ack_deadline_s": 30 })).await;
    topic.publish("x").await;

    let first = sub.receive(1).await.remove(0);
    // Visibility 0: visible again at once.
    sub.extend(&first.receipt, 0).await.expect_status(200);
    let second = sub.receive(1).await.remove(0);
    assert_eq!((second.id.as_str(), second.receive_count), (first.id.as_str(), 2));
    sub.extend(&first.receipt, 10).await.expect_error(409, "receipt_invalid");
    // Nack without delay: visible again at once; a stale receipt is a per-entry error.
    let results = sub.nack(&[&second.receipt, &first.receipt], 0).await;
    assert_ok_result(&results[0], "nack of the current receipt");
    assert_error_result(&results[1], "receipt_invalid", "nack of a stale receipt");
    let third = sub.receive(1).await.remove(0);
    assert_eq!(third.receive_count, 3);
    // A receive may set its own deadline, as on a queue.
    assert_ok_result(&sub.nack(&[&third.receipt], 0).await[0], "nack of the current delivery");
    let (_, window) = Window::around(sub.receive_with(json!({ "visibility_timeout_s": 1 }))).await;
    let again = sub.expect_receivable_after(window, SECOND).await;
    assert_eq!(again[0].receive_count, 5);
}

#[tokio::test]
async fn max_receives_moves_a_message_to_the_dead_letter_queue() {
    let (broker, topic) = broker_with_topic("fragile", json!({})).await;
    let dlq = broker.client().queue("dead");
    dlq.create(json!({})).await;
    let sub = topic.subscription("s");
    sub.create(json!({ "max_receives": 2, "dead_letter_queue": "dead" })).await;
    let dropping = topic.subscription("dropping");
    dropping.create(json!({ "max_receives": 1 })).await;
    let id = topic.publish_msg(json!({ "body": "poison", "attributes": { "kind": "bad" } })).await;

    for count in 1..=2 {
        let got = sub.receive(1).await;
        assert_eq!(got.len(), 1, "delivery {count}: {got:?}");
        assert_eq!(got[0].receive_count, count);
        assert_ok_result(&sub.nack(&[&got[0].receipt], 0).await[0], "nack of the current delivery");
    }
    // A third delivery would exceed max_receives: the message moves instead.
    assert!(sub.receive(1).await.is_empty());
    let dead = dlq.receive_n(1, RECEIVE_TIMEOUT).await;
    assert_eq!((dead[0].body.as_str(), dead[0].receive_count), ("poison", 1));
    assert_eq!(dead[0].attributes.get("kind").map(String::as_str), Some("bad"));
    let source = dead[0].attributes.get("mom.source_queue").cloned().unwrap_or_default();
    // Not a queue's name: the spec leaves its form open, but it must say where the message was.
    assert!(
        source.contains("fragile"),
        "mom.source_queue {source:?} does not name the topic subscription: {dead:?}"
    );
    assert_eq!(sub.lag().await, 0);

    // Without a dead-letter queue the message is dropped after max_receives.
    let got = dropping.receive(1).await;
    assert_eq!(ids(&got), [id]);
    assert_ok_result(&dropping.nack(&[&got[0].receipt], 0).await[0], "nack of the current delivery");
    assert!(dropping.receive(1).await.is_empty());
    assert_eq!(dropping.lag().await, 0);
}

/// Publishes `count` messages from three concurrent publishers; returns their ids.
async fn publish_concurrently(topic: &Topic, prefix: &str, count: usize) -> HashSet<String> {
    let publishers = (0..3).map(|p| {
        let topic = topic.clone();
        let bodies: Vec<String> =
            (0..count).filter(|i| i % 3 == p).map(|i| format!("{prefix}-{i}")).collect();
        tokio::spawn(async move { topic.publish_many(&bodies).await })
    });
    let mut all = HashSet::new();
    for publisher in publishers {
        let ids = publisher.await.unwrap_or_else(|e| panic!("publisher task failed: {e}"));
        all.extend(ids);
    }
    assert_eq!(all.len(), count, "publish answered duplicate ids");
    all
}

#[tokio::test]
async fn fan_out_gives_each_of_three_subscriptions_every_message_published_after_its_start() {
    let (_broker, topic, first) = broker_with_subscription("fan", "first", json!({})).await;
    let batch1 = publish_concurrently(&topic, "a", 30).await;
    let second = topic.subscription("second");
    second.create(json!({})).await;
    let batch2 = publish_concurrently(&topic, "b", 30).await;
    let third = topic.subscription("third");
    third.create(json!({})).await;
    let batch3 = publish_concurrently(&topic, "c", 30).await;

    let (got1, got2, got3) =
        tokio::join!(consume_exactly(&first, 90), consume_exactly(&second, 60), consume_exactly(&third, 30),);
    let union = |sets: &[&HashSet<String>]| -> HashSet<String> {
        sets.iter().flat_map(|s| s.iter().cloned()).collect()
    };
    assert_eq!(got1, union(&[&batch1, &batch2, &batch3]));
    assert_eq!(got2, union(&[&batch2, &batch3]));
    assert_eq!(got3, batch3);
}

#[tokio::test]
async fn consumers_on_one_subscription_compete_for_its_messages() {
    let (_broker, topic, sub) =
        broker_with_subscription("work", "workers", json!({ "ack_deadline_s": 60 })).await;
    let other = topic.subscription("audit");
    other.create(json!({})).await;
    let mut published = HashSet::new();
    for batch in 0..2 {
        let entries: Vec<Value> = (0..100).map(|i| json!({ "body": format!("job-{batch}-{i}") })).collect();
        published.extend(topic.publish_batch(json!(entries)).await);
    }

    // Four consumers receive small batches until the subscription has nothing visible left.
    // Within the 60 s ack deadline, no message may reach two of them.
    let seen: Arc<Mutex<HashMap<String, Vec<usize>>>> = Arc::default();
    let consumers = (0..4).map(|c| {
        let sub = sub.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            loop {
                let got = sub.receive_with(json!({ "max": 5, "wait_s": 1 })).await;
                if got.is_empty() {
                    return;
                }
                {
                    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                    for m in &got {
                        seen.entry(m.id.clone()).or_default().push(c);
                    }
                }
                sub.ack_all(&got).await;
            }
        })
    });
    for consumer in consumers.collect::<Vec<_>>() {
        consumer.await.unwrap_or_else(|e| panic!("consumer task failed: {e}"));
    }
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let twice: Vec<(&String, &Vec<usize>)> = seen.iter().filter(|(_, c)| c.len() > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let delivered: HashSet<String> = seen.keys().cloned().collect();
    assert_eq!(delivered, published);
    let busy: BTreeSet<usize> = seen.values().flatten().copied().collect();
    assert!(busy.len() >= 2, "one consumer got everything: {busy:?}");
    assert_eq!(sub.lag().await, 0);
    // The other subscription is a separate group: it still has every message.
    assert_eq!(other.lag().await, 200);
}

#[tokio::test]
async fn lag_counts_retained_matching_unacked_messages_exactly_in_the_api_and_in_metrics() {
    let (broker, topic, all) = broker_with_subscription("lagging", "all", json!({})).await;
    let blue = topic.subscription("blue");
    blue.create(json!({ "filter": { "color": "blue" } })).await;
    for color in ["blue", "red", "blue", "", "red"] {
        let attributes = if color.is_empty() { json!({}) } else { json!({ "color": color }) };
        topic.publish_msg(json!({ "body": color, "attributes": attributes })).await;
    }
    let lags = |list: Vec<Value>| -> Vec<(String, Value)> {
        let mut lags: Vec<(String, Value)> = list
            .iter()
            .map(|s| (s["name"].as_str().unwrap_or_default().to_string(), s["lag"].clone()))
            .collect();
        lags.sort_by(|a, b| a.0.cmp(&b.0));
        lags
    };
    assert_eq!(
        lags(topic.subscriptions().await),
        [("all".to_string(), json!(5)), ("blue".to_string(), json!(2))]
    );

    // In flight is not acked; acked is gone; nacked is back.
    let got: Vec<Message> = all.receive(3).await;
    assert_eq!(all.lag().await, 5);
    all.ack_all(&got[..2]).await;
    assert_eq!(all.lag().await, 3);
    all.nack(&[&got[2].receipt], 0).await;
    assert_eq!(all.lag().await, 3);

    let client = broker.client();
    let lag = |sub: &'static str| {
        let client = client.clone();
        async move {
            scrape(&client, "mom_subscription_lag", &[("topic", "lagging"), ("subscription", sub)]).await
        }
    };
    assert_eq!(lag("all").await, Some(3.0));
    assert_eq!(lag("blue").await, Some(2.0));

    // A deleted subscription's series goes away.
    blue.delete().await.expect_status(204);
    assert_eq!(lag("blue").await, None);
    assert_eq!(lag("all").await, Some(3.0));
}
