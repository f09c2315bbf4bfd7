//! The one place the tests know how the broker lays its data out in Redis and ZooKeeper, for the
//! few tests that must look inside (sharding across a Redis Cluster, ZooKeeper ACLs). Tests of
//! behaviour read the public API; a layout change touches this file only.

/// The prefix of every Redis key of queue `queue` (one hash tag, so one cluster slot).
fn queue_base(prefix: &str, queue: &str) -> String {
    format!("{prefix}:{{q:{queue}}}")
}

/// A Redis key of queue `queue` under key prefix `prefix` (its payloads).
pub fn queue_key(prefix: &str, queue: &str) -> String {
    format!("{}:m", queue_base(prefix, queue))
}

/// The queue a Redis key belongs to, if it is a queue's.
pub fn queue_of_key(key: &str) -> Option<&str> {
    key.split_once("{q:")?.1.split_once('}').map(|(queue, _)| queue)
}

/// The znode of record `name` of `kind` (`queues`, `users`, ...) under the cluster's root.
pub fn znode(root: &str, kind: &str, name: &str) -> String {
    format!("{root}/{kind}/{name}")
}

/// Leaves a message in queue `queue`'s outbox, addressed to dead-letter queue `target`: what a
/// node that crashed between the two steps of a dead-letter move leaves behind (the move is
/// "add to the target, then drop from the outbox"; see the broker's `store/mailbox.rs`).
/// `payload` is the stored message (`{"b": body, "a": attributes}`).
pub async fn leave_in_outbox(
    redis_url: &str,
    prefix: &str,
    queue: &str,
    id: &str,
    target: &str,
    payload: &str,
) {
    let client = redis::Client::open(redis_url).unwrap_or_else(|e| panic!("redis url {redis_url}: {e}"));
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connect to {redis_url}: {e}"));
    let key = format!("{}:out", queue_base(prefix, queue));
    redis::cmd("HSET")
        .arg(&key)
        .arg(id)
        .arg(format!("dlq\n{target}\n{payload}"))
        .query_async::<()>(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("HSET {key}: {e}"));
}

/// The Redis channel on which the brokers of key prefix `prefix` announce what became receivable.
pub fn notify_channel(prefix: &str) -> String {
    format!("{prefix}:notify")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_key_names_its_queue() {
        assert_eq!(queue_of_key(&queue_key("p", "orders")), Some("orders"));
        assert_eq!(queue_of_key("p:{t:news}:m"), None);
    }
}
