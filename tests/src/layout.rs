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

/// The keys in which a FIFO queue keeps its message groups, beside its mailbox keys and in the same
/// slot (the broker's `store/lua/fifo.lua` derives them from the queue's `vis` key): id → group,
/// each group's messages in order, ready groups, held groups, and deliveries per hold.
pub fn fifo_group_keys(prefix: &str, queue: &str) -> Vec<String> {
    let base = queue_base(prefix, queue);
    ["gm", "go", "rg", "hg", "hn"].iter().map(|suffix| format!("{base}:{suffix}")).collect()
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

/// The Redis key holding the newest leader token that did leader-only work (the fence each leader
/// write checks, in the broker's `store/limits.rs`).
fn leader_fence_key(prefix: &str) -> String {
    format!("{prefix}:leader-fence")
}

async fn connect(redis_url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis_url).unwrap_or_else(|e| panic!("redis url {redis_url}: {e}"));
    client.get_multiplexed_async_connection().await.unwrap_or_else(|e| panic!("connect to {redis_url}: {e}"))
}

/// The token in the leader fence of key prefix `prefix`: the newest leader's that acted, if any did.
pub async fn leader_fence(redis_url: &str, prefix: &str) -> Option<u64> {
    let key = leader_fence_key(prefix);
    redis::cmd("GET")
        .arg(&key)
        .query_async::<Option<u64>>(&mut connect(redis_url).await)
        .await
        .unwrap_or_else(|e| panic!("GET {key}: {e}"))
}

/// Sets the leader fence of key prefix `prefix` to `token`: with a token above the leader's, what
/// a newer leader that acted leaves behind.
pub async fn set_leader_fence(redis_url: &str, prefix: &str, token: u64) {
    let key = leader_fence_key(prefix);
    redis::cmd("SET")
        .arg(&key)
        .arg(token)
        .query_async::<()>(&mut connect(redis_url).await)
        .await
        .unwrap_or_else(|e| panic!("SET {key}: {e}"));
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
