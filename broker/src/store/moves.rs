//! Message move tasks (SQS `StartMessageMoveTask`: a redrive that reports progress and can be
//! cancelled) kept where every node sees them: one hash per source queue,
//! `PREFIX:{q:QUEUE}:moves`, field task id → the task as JSON, and field `cancel:ID` once a
//! cancel was asked (a flag of its own, so the node running the task never writes over it). At
//! most [`KEPT`] tasks per queue; the hash expires 14 days after its last write, as SQS keeps
//! tasks for 14 days.

use std::sync::Arc;

use super::Redis;
use crate::error::{Error, Result};

/// Tasks kept per queue (the oldest finished ones go first).
pub const KEPT: usize = 10;
const KEEP_S: u64 = 14 * 24 * 3600;

#[derive(Clone)]
pub struct MoveTaskStore {
    redis: Arc<Redis>,
}

impl MoveTaskStore {
    pub fn new(redis: Arc<Redis>) -> Self {
        MoveTaskStore { redis }
    }

    fn key(&self, queue: &str) -> String {
        format!("{}:{{q:{queue}}}:moves", self.redis.prefix)
    }

    /// Writes task `id` of `queue`; `drop` names tasks to forget at the same time.
    pub async fn save(&self, queue: &str, id: &str, json: &str, drop: &[String]) -> Result<()> {
        let key = self.key(queue);
        let mut pipe = redis::pipe();
        pipe.hset(&key, id, json).ignore();
        for old in drop {
            pipe.hdel(&key, old).ignore().hdel(&key, format!("cancel:{old}")).ignore();
        }
        pipe.expire(&key, KEEP_S as i64).ignore();
        pipe.query_async::<()>(&mut self.redis.conn()?).await.map_err(Error::redis)
    }

    /// Every task of `queue` as stored, with whether a cancel was asked.
    pub async fn list(&self, queue: &str) -> Result<Vec<(String, bool)>> {
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.key(queue))
            .query_async(&mut self.redis.conn()?)
            .await
            .map_err(Error::redis)?;
        let cancelled: Vec<String> =
            all.iter().filter_map(|(k, _)| k.strip_prefix("cancel:").map(str::to_string)).collect();
        Ok(all
            .into_iter()
            .filter(|(k, _)| !k.starts_with("cancel:"))
            .map(|(k, v)| (v, cancelled.contains(&k)))
            .collect())
    }

    /// Asks task `id` of `queue` to stop.
    pub async fn cancel(&self, queue: &str, id: &str) -> Result<()> {
        redis::cmd("HSET")
            .arg(self.key(queue))
            .arg(format!("cancel:{id}"))
            .arg(1)
            .query_async::<()>(&mut self.redis.conn()?)
            .await
            .map_err(Error::redis)
    }

    /// Whether a cancel was asked for task `id` of `queue`.
    pub async fn cancelled(&self, queue: &str, id: &str) -> Result<bool> {
        redis::cmd("HEXISTS")
            .arg(self.key(queue))
            .arg(format!("cancel:{id}"))
            .query_async(&mut self.redis.conn()?)
            .await
            .map_err(Error::redis)
    }
}
