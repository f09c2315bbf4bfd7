//! Typed queue operations on Redis: one Lua script call per API call on the hot path.
//!
//! Layout (see `lua/common.lua`): every key of queue `NAME` is `PREFIX:{q:NAME}:...`, one hash tag,
//! so every script touches a single slot and the layout works on Redis Cluster. Moves between two
//! queues (dead letters, redrive) go through the source's outbox in two idempotent steps instead of
//! one cross-slot script: add to the target under a dedup key, then drop from the outbox. A crash
//! between the two duplicates at most; it never loses.

use std::sync::{Arc, LazyLock};

use redis::Script;

use super::Redis;
use crate::error::{Error, Result};
use crate::model::QueueStats;

macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| Script::new(concat!(include_str!("lua/common.lua"), include_str!(concat!("lua/", $file)))))
    };
}

static SEND: LazyLock<Script> = script!("send.lua");
static RECEIVE: LazyLock<Script> = script!("receive.lua");
static SETTLE: LazyLock<Script> = script!("settle.lua");
static STATS: LazyLock<Script> = script!("stats.lua");
static TAKE: LazyLock<Script> = script!("take.lua");

/// Dedup keys live this long: a second send with the same id within it is stored once.
pub const DEDUP_WINDOW_S: u64 = 300;

/// A message ready to store: its serialized payload, its delay and its dedup key, if any.
pub struct Outgoing {
    pub payload: String,
    pub delay_ms: u64,
    pub dedup: Option<String>,
}

/// One delivery as the store hands it out.
#[derive(Debug)]
pub struct RawDelivery {
    pub id: String,
    pub payload: String,
    pub receive_count: u32,
    pub sent_ms: i64,
}

/// What one receive did.
#[derive(Debug)]
pub struct Received {
    pub deliveries: Vec<RawDelivery>,
    /// Redis's clock at the time of the call, in ms.
    pub now_ms: i64,
    /// When nothing was delivered: when the next message becomes visible, by Redis's clock.
    pub next_visible_ms: Option<i64>,
    pub trimmed: u64,
    pub dead_lettered: u64,
}

/// What a settle call does with each delivery.
#[derive(Debug, Clone, Copy)]
pub enum Settle {
    Ack,
    Nack { delay_ms: u64 },
    Visibility { timeout_ms: u64 },
}

/// A message in a queue's outbox, on its way to another queue.
#[derive(Debug)]
pub struct Transfer {
    pub id: String,
    pub kind: String,
    pub target: String,
    pub payload: String,
}

/// The queues' storage, behind one narrow type.
#[derive(Clone)]
pub struct QueueStore {
    redis: Arc<Redis>,
}

/// The receive-count parameters of a queue, as the receive script needs them.
pub struct ReceiveParams<'a> {
    pub max: u32,
    pub visibility_ms: u64,
    pub max_receives: Option<u32>,
    pub dead_letter_queue: Option<&'a str>,
    pub retention_ms: u64,
}

impl QueueStore {
    pub fn new(redis: Arc<Redis>) -> Self {
        QueueStore { redis }
    }

    fn base(&self, queue: &str) -> String {
        format!("{}:{{q:{queue}}}", self.redis.prefix)
    }

    /// The seven keys every queue script takes, in the order of `lua/common.lua`.
    fn keys(&self, queue: &str) -> [String; 7] {
        let b = self.base(queue);
        ["m", "rc", "vis", "inf", "del", "sent", "out"].map(|k| format!("{b}:{k}"))
    }

    /// The key recording a client's `dedup_id`.
    pub fn dedup_key(&self, queue: &str, dedup_id: &str) -> String {
        format!("{}:dd:{dedup_id}", self.base(queue))
    }

    /// The key making a transfer out of `source`'s outbox idempotent on the target.
    pub fn transfer_key(&self, target: &str, source: &str, id: &str) -> String {
        format!("{}:dx:{source}:{id}", self.base(target))
    }

    /// The notification key long polls on a queue wait on.
    pub fn wake_key(queue: &str) -> String {
        format!("q/{queue}")
    }

    fn invocation(&self, script: &'static Script, queue: &str) -> redis::ScriptInvocation<'static> {
        let mut inv = script.prepare_invoke();
        for k in self.keys(queue) {
            inv.key(k);
        }
        inv
    }

    /// Stores messages in order; `201` may be answered once this returns.
    pub async fn send(&self, queue: &str, messages: Vec<Outgoing>) -> Result<Vec<(String, bool)>> {
        let mut inv = self.invocation(&SEND, queue);
        inv.key(format!("{}:seq", self.base(queue)));
        inv.arg(self.redis.channel()).arg(Self::wake_key(queue)).arg(messages.len());
        let mut next_key = 9;
        for m in messages {
            let dk = match m.dedup {
                Some(k) => {
                    inv.key(k);
                    next_key += 1;
                    next_key - 1
                }
                None => 0,
            };
            inv.arg(m.payload).arg(m.delay_ms).arg(dk);
        }
        let flat: Vec<(String, i64)> = inv.invoke_async(&mut self.redis.conn()?).await.map_err(Error::redis)?;
        Ok(flat.into_iter().map(|(id, new)| (id, new == 1)).collect())
    }

    pub async fn receive(&self, queue: &str, d: &ReceiveParams<'_>) -> Result<Received> {
        let mut inv = self.invocation(&RECEIVE, queue);
        inv.arg(d.max)
            .arg(d.visibility_ms)
            .arg(d.max_receives.unwrap_or(0))
            .arg(d.dead_letter_queue.unwrap_or(""))
            .arg(d.retention_ms);
        type Reply = (i64, u64, u64, String, Vec<(String, String, u32, String)>);
        let (now_ms, trimmed, dead_lettered, next, raw): Reply =
            inv.invoke_async(&mut self.redis.conn()?).await.map_err(Error::redis)?;
        let deliveries = raw
            .into_iter()
            .map(|(id, payload, receive_count, sent)| RawDelivery {
                id,
                payload,
                receive_count,
                sent_ms: sent.parse::<f64>().unwrap_or(0.0) as i64,
            })
            .collect();
        let next_visible_ms = next.parse::<f64>().ok().map(|v| v as i64);
        Ok(Received { deliveries, now_ms, next_visible_ms, trimmed, dead_lettered })
    }

    /// Acks, nacks or changes the visibility of deliveries; `true` per delivery that was current.
    pub async fn settle(&self, queue: &str, how: Settle, deliveries: &[(String, u32)]) -> Result<Vec<bool>> {
        let (mode, ms) = match how {
            Settle::Ack => ("ack", 0),
            Settle::Nack { delay_ms } => ("nack", delay_ms),
            Settle::Visibility { timeout_ms } => ("vis", timeout_ms),
        };
        let mut inv = self.invocation(&SETTLE, queue);
        inv.arg(self.redis.channel()).arg(Self::wake_key(queue)).arg(mode).arg(ms);
        for (id, rc) in deliveries {
            inv.arg(id).arg(rc);
        }
        let done: Vec<i64> = inv.invoke_async(&mut self.redis.conn()?).await.map_err(Error::redis)?;
        Ok(done.into_iter().map(|d| d == 1).collect())
    }

    /// Exact counts, after trimming what retention expired. Also returns how many were trimmed and
    /// how many messages wait in the outbox.
    pub async fn stats(&self, queue: &str, retention_ms: u64) -> Result<(QueueStats, u64, u64)> {
        let mut inv = self.invocation(&STATS, queue);
        inv.arg(retention_ms);
        let (available, in_flight, delayed, oldest, now, trimmed, outbox): (u64, u64, u64, i64, i64, u64, u64) =
            inv.invoke_async(&mut self.redis.conn()?).await.map_err(Error::redis)?;
        let oldest_age_s = if oldest < 0 { 0 } else { ((now - oldest).max(0) / 1000) as u64 };
        Ok((QueueStats { available, in_flight, delayed, oldest_age_s }, trimmed, outbox))
    }

    /// Drops every message of the queue. The id sequence stays, so ids are never reused.
    pub async fn purge(&self, queue: &str) -> Result<()> {
        let mut cmd = redis::cmd("DEL");
        for k in self.keys(queue) {
            cmd.arg(k);
        }
        cmd.query_async::<()>(&mut self.redis.conn()?).await.map_err(Error::redis)
    }

    /// Redrive, step one: moves up to `limit` visible messages sent before this call into the
    /// outbox, addressed to `to` (None: each message's `mom.source_queue`). Returns how many.
    pub async fn take_for_redrive(&self, queue: &str, to: Option<&str>, bound: &str, limit: u32) -> Result<u64> {
        let mut inv = self.invocation(&TAKE, queue);
        inv.arg(to.unwrap_or("")).arg(bound).arg(limit);
        inv.invoke_async(&mut self.redis.conn()?).await.map_err(Error::redis)
    }

    /// The id the next message of `queue` will get, bounding a redrive to what is already there.
    pub async fn next_id(&self, queue: &str) -> Result<String> {
        let seq: Option<u64> = redis::cmd("GET")
            .arg(format!("{}:seq", self.base(queue)))
            .query_async(&mut self.redis.conn()?)
            .await
            .map_err(Error::redis)?;
        Ok(format!("{:016}", seq.unwrap_or(0) + 1))
    }

    pub async fn outbox(&self, queue: &str) -> Result<Vec<Transfer>> {
        let out = &self.keys(queue)[6];
        let entries: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(out)
            .query_async(&mut self.redis.conn()?)
            .await
            .map_err(Error::redis)?;
        Ok(entries
            .into_iter()
            .filter_map(|(id, v)| {
                let mut parts = v.splitn(3, '\n');
                let (kind, target, payload) = (parts.next()?, parts.next()?, parts.next()?);
                Some(Transfer { id, kind: kind.into(), target: target.into(), payload: payload.into() })
            })
            .collect())
    }

    pub async fn outbox_done(&self, queue: &str, id: &str) -> Result<()> {
        redis::cmd("HDEL")
            .arg(&self.keys(queue)[6])
            .arg(id)
            .query_async::<()>(&mut self.redis.conn()?)
            .await
            .map_err(Error::redis)
    }
}
