//! Topics on Redis: a retained log of payloads, fanned out at publish time into one mailbox per
//! subscription (see `lua/topic.lua`). The subscription registry lives in Redis beside the log,
//! so registering and publishing are ordered by Redis itself: a subscription registered before a
//! publish gets every matching message of it.

use std::sync::{Arc, LazyLock};

use redis::Script;

use super::mailbox::{subscription_wake_prefix, topic_base, Mailbox};
use super::{Outgoing, Redis};
use crate::error::{Error, Result};

static PUBLISH: LazyLock<Script> =
    lua_script!("topic.lua"; "store_once.lua", "incarnation.lua", "publish.lua");
static SUBSCRIBE: LazyLock<Script> = lua_script!("topic.lua"; "subscribe.lua");
static STATS: LazyLock<Script> = lua_script!("topic.lua"; "topic_stats.lua");

/// A message to publish: the payload, the attributes filters look at, and who published it.
pub struct Publication {
    pub out: Outgoing,
    pub attributes_json: String,
    pub publisher: String,
}

/// Where a (re)filled subscription starts.
#[derive(Debug, Clone)]
pub enum Start {
    Latest,
    /// Published at or after this time (ms).
    Time(i64),
    /// This id and later ones.
    Id(String),
}

/// What a publish did.
pub struct Published {
    pub ids: Vec<(String, bool)>,
    pub trimmed: u64,
}

#[derive(Clone)]
pub struct TopicStore {
    redis: Arc<Redis>,
}

impl TopicStore {
    pub fn new(redis: Arc<Redis>) -> Self {
        TopicStore { redis }
    }

    fn base(&self, topic: &str) -> String {
        topic_base(&self.redis.prefix, topic)
    }

    /// Payloads, log and registry: the three keys every topic script starts with.
    fn invocation(&self, script: &'static Script, topic: &str) -> redis::ScriptInvocation<'static> {
        let b = self.base(topic);
        let mut inv = script.prepare_invoke();
        inv.key(format!("{b}:m")).key(format!("{b}:log")).key(format!("{b}:subs"));
        inv
    }

    /// As for queues: `incarnation` (the topic's creation time) separates a re-created topic.
    pub fn dedup_key(&self, topic: &str, incarnation: &str, dedup_id: &str) -> String {
        format!("{}:dd:{incarnation}:{dedup_id}", self.base(topic))
    }

    /// Publishes to incarnation `incarnation` of the topic (its znode's czxid; see
    /// `Mailbox::incarnation`): 404 when that one was deleted or replaced.
    pub async fn publish(
        &self,
        topic: &str,
        incarnation: i64,
        retention_ms: u64,
        messages: Vec<Publication>,
    ) -> Result<Published> {
        let b = self.base(topic);
        let mut inv = self.invocation(&PUBLISH, topic);
        inv.key(format!("{b}:seq")).key(format!("{b}:inc"));
        inv.arg(self.redis.channel())
            .arg(subscription_wake_prefix(topic))
            .arg(format!("{b}:s:"))
            .arg(retention_ms)
            .arg(messages.len())
            .arg(incarnation);
        let mut next_key = 6;
        for m in messages {
            let dk = match m.out.dedup {
                Some(k) => {
                    inv.key(k);
                    next_key += 1;
                    next_key - 1
                }
                None => 0,
            };
            inv.arg(m.out.payload).arg(m.attributes_json).arg(m.publisher).arg(dk);
        }
        inv.arg(self.redis.dedup_window_s());
        let (trimmed, flat): (i64, Vec<(String, i64)>) = self.redis.write_conn()?.invoke(&inv).await?;
        let Ok(trimmed) = u64::try_from(trimmed) else {
            return Err(Error::TopicNotFound(topic.to_string()));
        };
        Ok(Published { ids: flat.into_iter().map(|(id, new)| (id, new == 1)).collect(), trimmed })
    }

    /// Registers `mb` (subscription `name`) with its filter spec and fills it from `start`; with
    /// `reset`, first cancels its deliveries and empties it (seek). Returns how many it put in.
    pub async fn subscribe(
        &self,
        topic: &str,
        name: &str,
        mb: &Mailbox,
        spec_json: &str,
        start: &Start,
        reset: bool,
    ) -> Result<u64> {
        let mut inv = self.invocation(&SUBSCRIBE, topic);
        for k in mb.keys() {
            inv.key(k);
        }
        let (mode, from) = match start {
            Start::Latest => ("latest", String::new()),
            Start::Time(ms) => ("time", ms.to_string()),
            Start::Id(id) => ("id", id.clone()),
        };
        inv.arg(name).arg(spec_json).arg(mode).arg(from).arg(if reset { "1" } else { "0" });
        inv.arg(self.redis.channel()).arg(&mb.wake_key);
        inv.invoke_async(&mut self.redis.conn()?).await.map_err(Error::redis)
    }

    /// Unregisters a subscription and drops its mailbox.
    pub async fn unsubscribe(&self, topic: &str, name: &str, mb: &Mailbox) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("HDEL").arg(format!("{}:subs", self.base(topic))).arg(name).ignore();
        pipe.cmd("DEL").arg(&mb.keys()[1..]).ignore();
        pipe.query_async::<()>(&mut self.redis.conn()?).await.map_err(Error::redis)
    }

    /// Names in the Redis registry (to repair it against ZooKeeper).
    pub async fn registered(&self, topic: &str) -> Result<Vec<String>> {
        redis::cmd("HKEYS")
            .arg(format!("{}:subs", self.base(topic)))
            .query_async(&mut self.redis.conn()?)
            .await
            .map_err(Error::redis)
    }

    /// Drops the log and registry of the topic's deleted incarnation `czxid` (its subscriptions
    /// are dropped one by one first), and refuses publishes made for it from then on.
    pub async fn delete(&self, topic: &str, czxid: i64) -> Result<()> {
        let b = self.base(topic);
        let keys = [format!("{b}:m"), format!("{b}:log"), format!("{b}:subs")];
        super::retire(&self.redis, format!("{b}:inc"), &keys, czxid).await
    }

    /// (retained messages, age of the oldest in s, trimmed now), after trimming to retention.
    pub async fn stats(&self, topic: &str, retention_ms: u64) -> Result<(u64, u64, u64)> {
        let mut inv = self.invocation(&STATS, topic);
        inv.arg(retention_ms);
        let (count, oldest, now, trimmed): (u64, i64, i64, u64) =
            inv.invoke_async(&mut self.redis.conn()?).await.map_err(Error::redis)?;
        let age = if oldest < 0 { 0 } else { ((now - oldest).max(0) / 1000) as u64 };
        Ok((count, age, trimmed))
    }
}
