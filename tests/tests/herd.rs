//! Long polls without a thundering herd (issue 27): a message wakes about one long poll per node,
//! not every long poll waiting on its queue or subscription, and no message waits for it.
//!
//! `mom_receive_empty_wakes_total` counts the receives of woken long polls that found nothing.
//! Each node wakes its own waiters for each announced message, so over two nodes a message wakes
//! about two waiters and one of them finds nothing: the bound is about one empty wake per message.
//! Waking every waiter (before issue 27), 50 long polls and 50 sends make 49 + 48 + ... + 0 =
//! 1,225 (each send wakes all the waiters left; one takes the message).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mom_tests::util::{next_note, timing};
use mom_tests::{json, long_polls_held, wait_until, Broker, Cluster, Message, Queue, DEADLINE_SLACK};
use tokio::task::JoinHandle;

/// A metadata write reaches every node within 1 s; the rest is slack. Measured (20 runs, 100
/// waits, loaded 2-core machine under stress-ng --cpu 2, 2026-12-07): median 21 ms, p95 152 ms,
/// max 247 ms.
const PROPAGATION: Duration = Duration::from_millis(1250);

/// Time for held long polls to reach the brokers.
const PARKING: Duration = Duration::from_secs(10);

/// How late a long poll may answer after the send of its message finished, on a busy machine
/// (the broker's own share is a pub/sub hop and one receive). Measured (20 runs, 1,400 wakes,
/// loaded 2-core machine under stress-ng --cpu 2, 2026-12-07): median 1 ms, p95 20 ms, max 54 ms.
const WAKE_LATENCY: Duration = Duration::from_millis(750);

/// The empty-wake counter of a node.
async fn empty_wakes(broker: &Broker) -> f64 {
    broker.metric("mom_receive_empty_wakes_total").await.expect("mom_receive_empty_wakes_total reported")
}

/// Starts `n` long polls (max 1, wait 20 s) on `queue` and waits until its broker holds `n`.
async fn park(queue: &Queue, n: usize, broker: &Broker) -> Vec<JoinHandle<(Vec<Message>, Instant)>> {
    let client = broker.client();
    let held_before = long_polls_held(&client).await;
    let polls: Vec<_> = (0..n).map(|_| queue.spawn_receive(json!({ "max": 1, "wait_s": 20 }))).collect();
    wait_until("the long polls to be held", PARKING, || async {
        (long_polls_held(&client).await >= held_before + n as f64).then_some(())
    })
    .await;
    assert!(polls.iter().all(|p| !p.is_finished()), "a long poll answered though nothing was sent");
    polls
}

/// Waits for every poll; each must have got exactly one message. Returns (body, answered at).
async fn answers(polls: Vec<JoinHandle<(Vec<Message>, Instant)>>) -> Vec<(String, Instant)> {
    let mut out = Vec::new();
    for poll in polls {
        let (got, at) = tokio::time::timeout(Duration::from_secs(25), poll)
            .await
            .expect("a long poll answered within its wait")
            .expect("poll task");
        assert_eq!(got.len(), 1, "a long poll got {} messages: {got:?}", got.len());
        out.push((got[0].body.clone(), at));
    }
    out
}

/// Checks that the polls got every one of `sent` (body, send finished at) exactly once, each
/// soon after its send; returns the slowest wake.
fn check_deliveries(got: &[(String, Instant)], sent: &[(String, Instant)]) -> Duration {
    let bodies: BTreeSet<&str> = got.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(bodies.len(), got.len(), "a message was delivered twice: {got:?}");
    assert_eq!(bodies, sent.iter().map(|(b, _)| b.as_str()).collect(), "not every message was delivered");
    let mut slowest = Duration::ZERO;
    for (body, sent_at) in sent {
        let (_, answered) = got.iter().find(|(b, _)| b == body).expect("delivered");
        let latency = answered.saturating_duration_since(*sent_at);
        timing("herd.wake_after_send", latency);
        assert!(latency < WAKE_LATENCY, "the long poll for {body} answered {latency:?} after its send");
        slowest = slowest.max(latency);
    }
    slowest
}

#[tokio::test]
async fn fifty_long_polls_on_two_nodes_take_fifty_sends_one_each_with_about_one_empty_wake_per_send() {
    let cluster = Cluster::new();
    let a = cluster.start_broker().await;
    let b = cluster.start_broker().await;
    let on_a = a.client().queue("herd");
    let on_b = b.client().queue("herd");
    on_a.create(json!({})).await;
    let propagating = Instant::now();
    wait_until("the queue to reach B", PROPAGATION, || async {
        (on_b.get().await.status == 200).then_some(())
    })
    .await;
    timing("herd.propagation.the_queue_to_reach_B", propagating.elapsed());

    let mut polls = park(&on_a, 25, &a).await;
    polls.extend(park(&on_b, 25, &b).await);
    let before = empty_wakes(&a).await + empty_wakes(&b).await;

    let mut sent = Vec::new();
    for i in 0..50 {
        let body = format!("m{i}");
        // Through both nodes in turn, one at a time.
        let queue = if i % 2 == 0 { &on_a } else { &on_b };
        queue.send(&body).await;
        sent.push((body, Instant::now()));
    }
    let got = answers(polls).await;
    let slowest = check_deliveries(&got, &sent);

    let (on_node_a, on_node_b) = (empty_wakes(&a).await, empty_wakes(&b).await);
    let empty = on_node_a + on_node_b - before;
    eprintln!("50 sends, 50 long polls over 2 nodes: {empty} empty wakes (A {on_node_a}, B {on_node_b}); slowest wake {slowest:?}");
    // About one per send (the other node's wake); 1.5 per send leaves room for races between
    // wakes under way and the next send, and is far below the 1,225 of waking everyone.
    assert!(empty <= 75.0, "{empty} empty wakes for 50 sends");
    assert_eq!(on_a.stats().await.available, 0);
}

#[tokio::test]
async fn each_subscription_wakes_its_own_long_polls() {
    let cluster = Cluster::new();
    let a = cluster.start_broker().await;
    let b = cluster.start_broker().await;
    let topic_a = a.client().topic("herd-topic");
    topic_a.create(json!({})).await;
    for name in ["x", "y"] {
        topic_a.subscription(name).create(json!({ "filter": { "to": name } })).await;
    }
    let topic_b = b.client().topic("herd-topic");
    let (x_a, y_a, x_b, y_b) = (
        topic_a.subscription("x"),
        topic_a.subscription("y"),
        topic_b.subscription("x"),
        topic_b.subscription("y"),
    );
    let propagating = Instant::now();
    wait_until("the subscriptions to reach B", PROPAGATION, || async {
        let x = x_b.receive_resp(json!({})).await.status;
        let y = y_b.receive_resp(json!({})).await.status;
        (x == 200 && y == 200).then_some(())
    })
    .await;
    timing("herd.propagation.the_subscriptions_to_reach_B", propagating.elapsed());

    // Ten long polls on each subscription, half on each node; y's are older than x's.
    let mut y_polls = park(&y_a, 5, &a).await;
    y_polls.extend(park(&y_b, 5, &b).await);
    let mut x_polls = park(&x_a, 5, &a).await;
    x_polls.extend(park(&x_b, 5, &b).await);
    let before = empty_wakes(&a).await + empty_wakes(&b).await;

    // Messages for x only: a wake counted for them must not go to y's (older) waiters.
    let mut sent = Vec::new();
    for i in 0..10 {
        let body = format!("x{i}");
        let topic = if i % 2 == 0 { &topic_a } else { &topic_b };
        topic.publish_msg(json!({ "body": body, "attributes": { "to": "x" } })).await;
        sent.push((body, Instant::now()));
    }
    let got = answers(x_polls).await;
    check_deliveries(&got, &sent);
    assert!(y_polls.iter().all(|p| !p.is_finished()), "a long poll of y answered: it has no message");

    let mut sent = Vec::new();
    for i in 0..10 {
        let body = format!("y{i}");
        topic_b.publish_msg(json!({ "body": body, "attributes": { "to": "y" } })).await;
        sent.push((body, Instant::now()));
    }
    let got = answers(y_polls).await;
    check_deliveries(&got, &sent);

    let empty = empty_wakes(&a).await + empty_wakes(&b).await - before;
    eprintln!("20 publishes, 20 long polls on 2 subscriptions over 2 nodes: {empty} empty wakes");
    assert!(empty <= 30.0, "{empty} empty wakes for 20 publishes");
}

#[tokio::test]
async fn messages_that_become_visible_together_reach_every_waiter_by_their_deadline() {
    let cluster = Cluster::new();
    let a = cluster.start_broker().await;
    let b = cluster.start_broker().await;
    let on_a = a.client().queue("herd-delayed");
    let on_b = b.client().queue("herd-delayed");
    on_a.create(json!({})).await;
    let propagating = Instant::now();
    wait_until("the queue to reach B", PROPAGATION, || async {
        (on_b.get().await.status == 200).then_some(())
    })
    .await;
    timing("herd.propagation.the_queue_to_reach_B", propagating.elapsed());
    let mut polls = park(&on_a, 10, &a).await;
    polls.extend(park(&on_b, 10, &b).await);
    let before = empty_wakes(&a).await + empty_wakes(&b).await;

    // Twenty messages due in 1 s, in one batch: one timer per node wakes one waiter, and each
    // receive that leaves messages visible wakes others for them.
    let messages: Vec<_> = (0..20).map(|i| json!({ "body": format!("d{i}"), "delay_s": 1 })).collect();
    let set = Instant::now();
    on_a.send_batch(json!(messages)).await.expect_status(200);
    let sent_at = Instant::now();
    let got = answers(polls).await;
    let bodies: BTreeSet<&str> = got.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(bodies.len(), 20, "each waiter got a different message: {got:?}");
    for (body, answered) in &got {
        let after = answered.saturating_duration_since(set);
        let late = answered.saturating_duration_since(sent_at);
        timing("herd.delayed_1s_received_after_set", after);
        timing("herd.delayed_1s_received_after_sent", late);
        // Measured (20 runs, 400 polls, loaded 2-core machine under stress-ng --cpu 2,
        // 2026-12-07): after the set, min 1008 ms; after the send, median 1017 ms, p95 1062 ms,
        // max 1078 ms.
        assert!(
            after >= Duration::from_millis(950),
            "{body} was received {after:?} after a 1 s delay was set"
        );
        assert!(
            late <= Duration::from_secs(1) + DEADLINE_SLACK,
            "{body} was received {late:?} after its 1 s delay was set"
        );
    }
    let empty = empty_wakes(&a).await + empty_wakes(&b).await - before;
    eprintln!("20 messages visible at once, 20 long polls over 2 nodes: {empty} empty wakes");
    assert!(empty <= 20.0, "{empty} empty wakes for 20 messages");
}

/// Whether `GET /v1/cluster` on `broker` lists node `id`.
async fn lists_node(broker: &Broker, id: &str) -> bool {
    let cluster = broker.client().get("/v1/cluster").await;
    cluster.json["nodes"].as_array().is_some_and(|nodes| nodes.iter().any(|n| n["id"] == id))
}

/// A rolling upgrade from (or a rollback to) a broker before counted announcements: such a
/// broker wakes its long polls only on a bare key (`q/QUEUE`, `t/TOPIC` for all of a topic's
/// subscriptions) and ignores the counted ones (`q/QUEUE 1`). While one is registered, sends,
/// publishes and nacks announce the bare key too; once it is gone, they stop. The older broker
/// is its registration only (a record without `announcements`, as it wrote them: a test double,
/// since no older binary is built here); what it would hear is read off the channel itself.
#[tokio::test]
async fn while_an_older_broker_is_registered_sends_publishes_and_nacks_also_announce_its_bare_keys() {
    use zookeeper_client as zk;
    let cluster = Cluster::new();
    let a = cluster.start_broker().await;
    let queue = a.client().queue("mixed");
    queue.create(json!({})).await;
    let topic = a.client().topic("mixed-topic");
    topic.create(json!({})).await;
    topic.subscription("s").create(json!({})).await;

    let redis = redis::Client::open(cluster.redis_url.as_str()).expect("redis url");
    let mut pubsub = redis.get_async_pubsub().await.expect("a pub/sub connection to Redis");
    pubsub.subscribe(mom_tests::layout::notify_channel(&cluster.redis_prefix)).await.expect("subscribe");
    let mut notes = pubsub.into_on_message();
    let counted = |note: &str, key: &str| note.lines().all(|l| l.starts_with(&format!("{key} ")));

    // Every node reads counted announcements: a send announces `q/mixed 1` and nothing else (the
    // publish after it is the next announcement).
    queue.send("alone").await;
    let note = next_note(&mut notes).await;
    assert!(counted(&note, "q/mixed"), "a send announced {note:?}");
    topic.publish("alone").await;
    let note = next_note(&mut notes).await;
    assert!(counted(&note, "s/mixed-topic/s"), "a publish announced {note:?}");

    // An older broker registers.
    let zk = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(6))
        .connect(&cluster.zk)
        .await
        .expect("connect to ZooKeeper");
    let older = json!({ "id": "older-1", "address": "10.0.0.9:8080", "version": "0.1.0",
                        "started_at": "2026-12-01T00:00:00.000Z" });
    let path = mom_tests::layout::znode(&cluster.zk_root, "nodes", "older-1");
    zk.create(
        &path,
        older.to_string().as_bytes(),
        &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()),
    )
    .await
    .expect("register the older broker");
    let propagating = Instant::now();
    wait_until("the older broker to be seen", PROPAGATION, || async {
        lists_node(&a, "older-1").await.then_some(())
    })
    .await;
    timing("herd.propagation.the_older_broker_to_be_seen", propagating.elapsed());

    queue.send("mixed").await;
    let note = next_note(&mut notes).await;
    assert!(counted(&note, "q/mixed"), "a send announced {note:?}");
    assert_eq!(next_note(&mut notes).await, "q/mixed", "the send's bare announcement, for the older broker");
    topic.publish("mixed").await;
    let note = next_note(&mut notes).await;
    assert!(counted(&note, "s/mixed-topic/s"), "a publish announced {note:?}");
    assert_eq!(next_note(&mut notes).await, "t/mixed-topic", "the publish's bare announcement");
    let got = queue.receive(2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    let receipts: Vec<&str> = got.iter().map(|m| m.receipt.as_str()).collect();
    queue.nack(&receipts, 0).await;
    let note = next_note(&mut notes).await;
    assert!(counted(&note, "q/mixed"), "a nack announced {note:?}");
    assert_eq!(next_note(&mut notes).await, "q/mixed", "the nack's bare announcement");

    // The older broker leaves: counted announcements only again.
    zk.delete(&path, None).await.expect("deregister the older broker");
    let propagating = Instant::now();
    wait_until("the older broker to be gone", PROPAGATION, || async {
        (!lists_node(&a, "older-1").await).then_some(())
    })
    .await;
    timing("herd.propagation.the_older_broker_to_be_gone", propagating.elapsed());
    queue.send("after").await;
    let note = next_note(&mut notes).await;
    assert!(counted(&note, "q/mixed"), "a send announced {note:?}");
    topic.publish("after").await;
    let note = next_note(&mut notes).await;
    assert!(
        counted(&note, "s/mixed-topic/s"),
        "after the send came {note:?}, not the publish's announcement"
    );
}
