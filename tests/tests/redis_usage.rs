//! How the broker uses Redis: idle long polls must not cost round trips, and the keys of a queue
//! share a hash tag so the layout works on Redis Cluster.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use mom_tests::redis_server::command_calls;
use mom_tests::{await_gauge, json, Cluster, Persistence, RedisServer};

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
