//! How the broker uses Redis: idle long polls must not cost round trips, a message's lifecycle
//! costs a bounded number of Redis commands (each costs Redis about 1.5 µs inside a script beyond
//! its own work: BENCHMARKS.md, issue 27), a consume stream whose consumer acks as it goes asks
//! Redis nothing beyond its receives and the acks (issue 25), and the keys of a queue share a hash
//! tag so the layout works on Redis Cluster.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use mom_tests::queue::Queue;
use mom_tests::redis_server::command_calls;
use mom_tests::{await_gauge, json, Broker, Cluster, Persistence, RedisServer, Value};

const QUEUES: usize = 10;
const POLLS_PER_QUEUE: usize = 10;
const MAX_COMMANDS_PER_S: f64 = 200.0;
const MEASURE: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_hundred_idle_long_polls_cost_fewer_than_200_redis_commands_per_second() {
    // A Redis of its own: nothing but this broker (and the two INFO calls) talks to it.
    let redis = RedisServer::started(Persistence::None).await;
    let broker = Cluster::with_redis(redis.url()).start_broker().await;
    let client = broker.client();
    let mut polls = Vec::new();
    for q in 0..QUEUES {
        let queue = client.queue(&format!("idle-{q}"));
        queue.create(json!({})).await;
        for _ in 0..POLLS_PER_QUEUE {
            polls.push(queue.spawn_receive(json!({ "wait_s": 20 })));
        }
    }
    // Every poll reached the broker and waits.
    await_gauge(&client, "mom_long_polls_held", polls.len() as f64, || polls.iter().any(|p| p.is_finished()))
        .await;

    let before = redis.total_commands_processed().await;
    let start = Instant::now();
    tokio::time::sleep(MEASURE).await;
    let after = redis.total_commands_processed().await;
    let elapsed = start.elapsed().as_secs_f64();
    // The INFO that read `after` counts itself.
    let rate = after.saturating_sub(before + 1) as f64 / elapsed;

    eprintln!("{} idle long polls: {rate:.1} Redis commands/s", polls.len());
    let answered = polls.iter().filter(|p| p.is_finished()).count();
    assert_eq!(answered, 0, "{answered} of the idle long polls answered before wait_s ended");
    let top: Vec<(String, u64)> =
        command_calls(&redis.info("commandstats").await).into_iter().take(8).collect();
    assert!(
        rate < MAX_COMMANDS_PER_S,
        "{} idle long polls cost {rate:.0} Redis commands/s (limit {MAX_COMMANDS_PER_S}); \
         busiest commands since start: {top:?}",
        polls.len()
    );
    for poll in &polls {
        poll.abort();
    }
}

/// Commands Redis ran (`INFO commandstats` calls; a script's own commands count, as they cost)
/// between two readings, without the `INFO`s: total, and the busiest.
struct Spent {
    total: u64,
    busiest: Vec<(String, u64)>,
}

async fn command_counts(redis: &RedisServer) -> HashMap<String, u64> {
    command_calls(&redis.info("commandstats").await).into_iter().filter(|(c, _)| c != "info").collect()
}

async fn spent_since(redis: &RedisServer, before: &HashMap<String, u64>) -> Spent {
    let mut busiest: Vec<(String, u64)> = command_counts(redis)
        .await
        .into_iter()
        .map(|(c, n)| {
            let d = n.saturating_sub(before.get(&c).copied().unwrap_or(0));
            (c, d)
        })
        .filter(|(_, d)| *d > 0)
        .collect();
    busiest.sort_by_key(|c| std::cmp::Reverse(c.1));
    Spent { total: busiest.iter().map(|c| c.1).sum(), busiest }
}

/// A broker on a Redis of its own with one empty queue `name`: what the cost tests measure on.
async fn cost_setup(name: &str) -> (RedisServer, Broker, Queue) {
    let redis = RedisServer::started(Persistence::None).await;
    let broker = Cluster::with_redis(redis.url()).start_broker().await;
    let queue = broker.client().queue(name);
    queue.create(json!({})).await;
    (redis, broker, queue)
}

/// Asserts that what Redis ran since `before` stays within `limit` commands per message.
async fn assert_commands_per_message(
    redis: &RedisServer,
    before: &HashMap<String, u64>,
    what: &str,
    limit: f64,
) {
    let spent = spent_since(redis, before).await;
    let per = spent.total as f64 / MESSAGES as f64;
    eprintln!("{what}: {per:.2} Redis commands per message; {:?}", spent.busiest);
    assert!(
        per <= limit,
        "a {what} cost Redis {per:.2} commands per message (limit {limit}); by command: {:?}",
        spent.busiest
    );
}

/// Messages each of the cost tests below puts through.
const MESSAGES: usize = 100;

/// Send → long-poll receive → ack, one message at a time: what Redis does per message, with the
/// broker's own background work (its rate limiter's buckets) in the count. 32 commands before issue
/// 27's changes of 2026-12-06 (an ack that read the clock, checked flight apart from ending it and
/// dropped a delay entry a delivered message no longer has; a receive that counted what was left
/// though its look showed nothing was); 28.1 after; 27.1 since a receive's look by rank also
/// finds the next visible instant (one `ZRANGE` where there were two).
#[tokio::test]
async fn a_long_poll_lifecycle_costs_redis_at_most_27_5_commands_per_message() {
    const LIMIT: f64 = 27.5;
    let (redis, _broker, queue) = cost_setup("lifecycle-cost").await;
    let before = command_counts(&redis).await;
    for i in 0..MESSAGES {
        queue.send(&format!("m{i}")).await;
        let got = queue.receive_with(json!({ "max": 1, "wait_s": 1 })).await;
        assert_eq!(got.len(), 1, "message {i} was not received");
        queue.ack_all(&got).await;
    }
    assert_commands_per_message(&redis, &before, "lifecycle", LIMIT).await;
}

/// Send → receive → ack in batches of 10 (one request each): a script handles its messages
/// with one Redis command per key for all of them wherever Redis has a command that takes many
/// (`lua/many.lua`), the delivery counts included (read with one `HMGET`, written with one
/// `HSET`). About 16 commands per message as one at a time; 3.9 with one `HINCRBY` per delivery;
/// 2.8 now.
#[tokio::test]
async fn a_batched_lifecycle_costs_redis_at_most_3_5_commands_per_message() {
    const LIMIT: f64 = 3.5;
    const BATCH: usize = 10;
    let (redis, _broker, queue) = cost_setup("batch-cost").await;
    let before = command_counts(&redis).await;
    let mut seen = HashSet::new();
    for round in 0..MESSAGES / BATCH {
        let bodies: Vec<Value> = (0..BATCH).map(|i| json!({ "body": format!("m{round}-{i}") })).collect();
        queue.send_batch(Value::Array(bodies)).await.expect_status(200);
        let got = queue.receive_with(json!({ "max": BATCH, "wait_s": 1 })).await;
        assert_eq!(got.len(), BATCH, "round {round}: a receive of {BATCH} got {}", got.len());
        for m in &got {
            assert!(seen.insert(m.id.clone()), "message {} came twice", m.id);
            assert!(m.body.starts_with(&format!("m{round}-")), "round {round} received {:?}", m.body);
        }
        queue.ack_all(&got).await;
    }
    assert_commands_per_message(&redis, &before, "batched lifecycle", LIMIT).await;
    // Nothing is left: every message was removed from every key (Redis drops an emptied key).
    assert_eq!(queue.stats().await.counts(), (0, 0, 0));
    let left: Vec<String> = redis
        .keys("*batch-cost*")
        .await
        .into_iter()
        .filter(|k| [":m", ":rc", ":vis", ":inf", ":sent"].iter().any(|s| k.ends_with(s)))
        .collect();
    assert!(left.is_empty(), "acked messages left behind in {left:?}");
}

/// `lua/many.lua`, which every script starts with, splits a call over more members than Lua can
/// unpack at once (a bulk trim of 1,000 messages deletes 2,000 fields) into chunks, and joins the
/// answers of a reading command in order: tried here on the script text the broker loads.
#[tokio::test]
async fn many_splits_long_calls_and_joins_their_answers_in_order() {
    // 10,000 arguments to ZADD: more than one unpack can take.
    const MEMBERS: usize = 5_003;
    let redis = RedisServer::started(Persistence::None).await;
    let mut con = mom_tests::redis_server::connect(&redis.authed_url()).await.expect("connect to Redis");
    let script = redis::Script::new(concat!(
        include_str!("../../broker/src/store/lua/many.lua"),
        r#"
        local pairs_, ids = {}, {}
        for i = 1, tonumber(ARGV[1]) do
          pairs_[#pairs_ + 1] = i
          pairs_[#pairs_ + 1] = 'm' .. i
          ids[#ids + 1] = 'm' .. i
        end
        ids[#ids + 1] = 'absent'
        many('ZADD', KEYS[1], pairs_)
        local scores = many('ZMSCORE', KEYS[1], ids)
        local out = {}
        for i = 1, #ids do out[i] = scores[i] or -1 end
        return {redis.call('ZCARD', KEYS[1]), #many('ZMSCORE', KEYS[1], {}), out}
        "#
    ));
    let (card, empty, scores): (usize, usize, Vec<String>) =
        script.key("many-test").arg(MEMBERS).invoke_async(&mut con).await.expect("the script runs");
    assert_eq!(card, MEMBERS, "members stored");
    assert_eq!(empty, 0, "an empty list makes no call and answers nothing");
    let expected: Vec<String> = (1..=MEMBERS).map(|i| i.to_string()).chain(["-1".to_string()]).collect();
    assert_eq!(scores, expected, "the answers of the chunks, joined in order");
}

/// A consume stream at `max_in_flight` 1 whose consumer acks each message as it arrives: one
/// receive and one ack script per message, and no call asking which deliveries are still in flight
/// (the ack's `room` announcement names what it settled). Three before.
#[tokio::test]
async fn a_stream_whose_consumer_acks_as_it_goes_costs_two_scripts_per_message() {
    const LIMIT: f64 = 2.2;
    let redis = RedisServer::started(Persistence::None).await;
    let broker = Cluster::with_redis(redis.url()).start_broker().await;
    let queue = broker.client().queue("stream-cost");
    queue.create(json!({ "visibility_timeout_s": 60 })).await;
    let bodies: Vec<Value> = (0..MESSAGES).map(|i| json!({ "body": format!("m{i}") })).collect();
    for chunk in bodies.chunks(10) {
        queue.send_batch(Value::Array(chunk.to_vec())).await.expect_status(200);
    }
    let mut stream = queue.stream("?max_in_flight=1").await;
    let before = command_counts(&redis).await;
    let mut seen = HashSet::new();
    for _ in 0..MESSAGES {
        let m = stream.next_message(Duration::from_secs(5)).await;
        assert!(seen.insert(m.id.clone()), "message {} came twice", m.id);
        queue.ack_all(std::slice::from_ref(&m)).await;
    }
    let spent = spent_since(&redis, &before).await;
    let scripts =
        spent.busiest.iter().filter(|(c, _)| c == "evalsha" || c == "eval").map(|c| c.1).sum::<u64>();
    let per = scripts as f64 / MESSAGES as f64;
    eprintln!("stream: {per:.2} script calls per message; {:?}", spent.busiest);
    assert!(
        per <= LIMIT,
        "a stream cost Redis {per:.2} script calls per message (limit {LIMIT}); by command: {:?}",
        spent.busiest
    );
}

/// The hash tag of a key as Redis Cluster computes it: between the first `{` and the next `}`,
/// when not empty.
fn hash_tag(key: &str) -> Option<&str> {
    let start = key.find('{')? + 1;
    let len = key[start..].find('}')?;
    (len > 0).then(|| &key[start..start + len])
}

#[tokio::test]
async fn the_keys_of_one_queue_share_a_redis_cluster_hash_tag() {
    let redis = RedisServer::started(Persistence::None).await;
    let cluster = Cluster::with_redis(redis.url());
    let broker = cluster.start_broker().await;
    let names = ["tagged-alpha", "tagged-beta"];
    for name in names {
        // Exercise every kind of state: available, delayed, deduplicated, in flight.
        let queue = broker.client().queue(name);
        queue.create(json!({})).await;
        queue.send_many(&["a", "b"]).await;
        queue.send_msg(json!({ "body": "d", "delay_s": 60 })).await;
        queue.send_msg(json!({ "body": "e", "dedup_id": "once" })).await;
        assert_eq!(queue.receive(1).await.len(), 1);
    }
    let keys = redis.keys(&format!("{}*", cluster.redis_prefix)).await;
    let mut tags = Vec::new();
    for name in names {
        let own: Vec<&String> = keys.iter().filter(|k| k.contains(name)).collect();
        assert!(!own.is_empty(), "no Redis key names queue {name}: {keys:?}");
        let tag_set: HashSet<Option<&str>> = own.iter().map(|k| hash_tag(k)).collect();
        assert_eq!(tag_set.len(), 1, "keys of queue {name} have different hash tags: {own:?}");
        let tag = tag_set.into_iter().next().flatten();
        assert!(tag.is_some(), "keys of queue {name} have no hash tag: {own:?}");
        tags.push(tag);
    }
    assert_ne!(tags[0], tags[1], "two queues share one hash tag (one cluster slot)");
}

#[test]
fn hash_tags_follow_the_redis_cluster_rule() {
    assert_eq!(hash_tag("p:{q:a}:m"), Some("q:a"));
    assert_eq!(hash_tag("p:{}:m{x}"), None);
    assert_eq!(hash_tag("plain"), None);
}
