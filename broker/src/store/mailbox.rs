//! Mailboxes on Redis: what consumers receive from — a queue, or one subscription of a topic.
//! One Lua script call per API call on the hot path, except that concurrent sends to one mailbox
//! share one (group commit, see [`MailboxStore::send`] and `group.rs`).
//!
//! Layout (see `lua/common.lua`): every key of queue `NAME` is `PREFIX:{q:NAME}:...`, and every
//! key of topic `T` and its subscriptions is `PREFIX:{t:T}:...`: one hash tag each, so every script
//! touches a single slot and the layout works on Redis Cluster. Moves between two queues (dead
//! letters, redrive) go through the source's outbox in two idempotent steps instead of one
//! cross-slot script: add to the target under a dedup key, then drop from the outbox. A crash
//! between the two duplicates at most; it never loses.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use prometheus::Histogram;
use redis::Script;

use super::group::{Bounds, Lanes};
use super::Redis;
use crate::error::{Error, Result};
use crate::model::{QueueStats, MAX_BATCH};

static SEND: LazyLock<Script> = lua_script!("common.lua"; "store_once.lua", "incarnation.lua", "send.lua");
static RECEIVE: LazyLock<Script> = lua_script!("common.lua"; "receive.lua");
static SETTLE: LazyLock<Script> = lua_script!("common.lua"; "settle.lua");
static STATS: LazyLock<Script> = lua_script!("common.lua"; "stats.lua");
static TAKE: LazyLock<Script> = lua_script!("common.lua"; "take.lua");
static CURRENT: LazyLock<Script> = lua_script!("common.lua"; "current.lua");
// FIFO queues: the same prelude plus `fifo.lua` (message groups); standard mailboxes never run these.
static FIFO_SEND: LazyLock<Script> =
    lua_script!("common.lua"; "store_once.lua", "incarnation.lua", "fifo.lua", "fifo_send.lua");
static FIFO_RECEIVE: LazyLock<Script> = lua_script!("common.lua"; "fifo.lua", "fifo_receive.lua");
static FIFO_SETTLE: LazyLock<Script> = lua_script!("common.lua"; "fifo.lua", "fifo_settle.lua");
static FIFO_STATS: LazyLock<Script> = lua_script!("common.lua"; "fifo.lua", "stats.lua");
static FIFO_TAKE: LazyLock<Script> = lua_script!("common.lua"; "fifo.lua", "take.lua");

/// How long a receive's answer is kept for a retry with the same attempt id (SQS: 5 minutes).
pub const ATTEMPT_WINDOW_S: u64 = 300;

/// Where the answer of a receive attempt is kept: in the queue's slot, per user (user names hold
/// no ':').
fn attempt_key(mb: &Mailbox, user: &str, attempt: &str) -> String {
    format!("{}:ra:{user}:{attempt}", mb.base)
}

/// The keys a queue's message groups add beside its mailbox keys, for purge and retire: a FIFO
/// queue's (`lua/fifo.lua`) and a fair standard queue's (`fg`, `lua/send.lua`).
const GROUP_KEYS: [&str; 6] = ["gm", "go", "rg", "hg", "hn", "fg"];

/// The group of a message that reaches a FIFO queue without one (a redrive or move from a
/// standard queue): they share one group, in the order they arrive.
const DEFAULT_GROUP: &str = "default";

/// What `lua/send.lua` answers (as the one pair `(GONE, -1)`) for a send made for an older or
/// deleted incarnation of a queue.
const GONE: &str = "MOMGONE";

/// Delivery numbers are `epoch * EPOCH + receive count`; a seek starts a new epoch.
pub const EPOCH: u64 = 1 << 20;

/// When a settle announces freed in-flight slots (`KEY room`) for push streams waiting for room.
#[derive(Debug, Clone, Copy)]
enum Room {
    /// Every settle (subscriptions: push streams are their common consumer).
    Always,
    /// Only while a stream marked the mailbox ([`MailboxStore::mark_streaming`]; queues).
    WhileMarked,
}

/// How long a stream's mark lasts, and how often a waiting stream renews it.
pub const STREAM_MARK: Duration = Duration::from_secs(60);
pub const STREAM_MARK_RENEW: Duration = Duration::from_secs(20);

/// Where a mailbox lives and how its long polls and receipts are keyed.
#[derive(Debug, Clone)]
pub struct Mailbox {
    /// Key prefix of the mailbox's own keys.
    base: String,
    /// The payload hash: the mailbox's own (a queue) or its topic's (a subscription).
    payloads: String,
    owns_payloads: bool,
    /// What long polls on it wait for, announced on the notification channel (`waiters.rs`):
    /// `q/QUEUE`, or `s/TOPIC/SUB` (each subscription its own, so a wake counted for one
    /// subscription's messages never goes to a waiter of another).
    pub wake_key: String,
    /// What brokers before counted announcements wait on, announced bare to them while any runs
    /// (`crate::meta::ANNOUNCEMENTS`): `q/QUEUE`, or the topic's `t/TOPIC` for a subscription.
    pub older_wake_key: String,
    /// What its receipts are signed for.
    pub scope: String,
    /// Whether settling announces freed in-flight slots too (push streams wait for room).
    room: Room,
    /// The queue's incarnation as this node's metadata knows it (its znode's `czxid`; 0: not
    /// checked). Redis keeps the newest one in the queue's `inc` key and refuses sends made for
    /// an older or deleted one, so a node whose cache is stale cannot store messages into a
    /// queue that was deleted (or deleted and created again) elsewhere.
    incarnation: i64,
    /// The group commit's lane: sends for different incarnations never share a call.
    lane: String,
    /// The incarnation of what numbers its messages (the queue, or a subscription's topic): the
    /// space of its message ids (`message_id.rs`); 0: unknown.
    id_space: i64,
    /// A FIFO queue: its messages are delivered by group (`lua/fifo.lua`).
    fifo: bool,
}

/// A message ready to store: its serialized payload, its delay and its dedup key, if any.
pub struct Outgoing {
    pub payload: String,
    pub delay_ms: u64,
    /// Dedup keys live `MOM_DEDUP_WINDOW_S` (5 minutes by default, `lua/store_once.lua`): a second
    /// send with the same key within them is stored once.
    pub dedup: Option<String>,
    /// Its message group: required by a FIFO queue (absent: [`DEFAULT_GROUP`]); on a standard
    /// queue it places the message fairly among the groups' (`lua/send.lua`; the group rides in
    /// the payload too, to be returned on receive).
    pub group: Option<String>,
}

impl Outgoing {
    /// Roughly what the message adds to a script call, for the group commit's byte bound.
    fn weight(&self) -> usize {
        self.payload.len() + self.dedup.as_ref().map_or(0, String::len) + 32
    }
}

/// The group commit's bounds on a combined send: a batch's worth of messages, and 1 MiB of
/// payload (a request may carry 5 MiB, but a script call of that size holds Redis's single thread
/// for milliseconds; past 1 MiB the per-call overhead is long amortised anyway).
const SEND_BOUNDS: Bounds = Bounds { messages: MAX_BATCH, bytes: 1 << 20, alone: usize::MAX };

/// The bounds on a combined settle or receive: a batch's worth of receipts or of messages to
/// take (bytes do not matter); one of 10 or more goes alone (a stream's, mostly), so that streams
/// taking and acking in bulk never wait for each other's calls.
const SETTLE_BOUNDS: Bounds = Bounds { messages: MAX_BATCH, bytes: usize::MAX, alone: 10 };

/// One delivery as the store hands it out.
#[derive(Debug)]
pub struct RawDelivery {
    pub id: String,
    pub payload: String,
    /// Epoch and receive count: what a receipt names.
    pub delivery: u64,
    pub sent_ms: i64,
    /// When it was first received (by a broker that records it), in ms.
    pub first_ms: Option<i64>,
}

impl RawDelivery {
    pub fn receive_count(&self) -> u32 {
        (self.delivery % EPOCH) as u32
    }
}

/// What one receive did.
#[derive(Debug)]
pub struct Received {
    pub deliveries: Vec<RawDelivery>,
    /// Redis's clock at the time of the call, in ms.
    pub now_ms: i64,
    /// When the next message becomes visible (a delay or a visibility deadline, including those
    /// this receive set), by Redis's clock.
    pub next_visible_ms: Option<i64>,
    /// Messages still visible after this receive (0 when it took fewer than it asked for; on a
    /// FIFO queue, groups still receivable).
    pub more: u64,
    pub trimmed: u64,
    pub dead_lettered: u64,
}

/// One place of a combined receive (see [`MailboxStore::receive`]): the delivery it got, if any,
/// and what the call saw. The call's trimmed and dead-lettered counts ride on its first place
/// only, so that they are counted once.
pub struct Place {
    delivery: Option<RawDelivery>,
    seen: Arc<Received>,
}

impl Received {
    /// Spreads a call's deliveries over `n` places, in order.
    fn into_places(mut self, n: usize) -> Vec<Place> {
        let deliveries = std::mem::take(&mut self.deliveries).into_iter().map(Some);
        let rest = Arc::new(Received { deliveries: Vec::new(), trimmed: 0, dead_lettered: 0, ..self });
        let first = Arc::new(self);
        deliveries
            .chain(std::iter::repeat_with(|| None))
            .take(n)
            .enumerate()
            .map(|(i, delivery)| Place { delivery, seen: if i == 0 { first.clone() } else { rest.clone() } })
            .collect()
    }

    /// One caller's share of a combined receive.
    fn from_places(places: Vec<Place>) -> Result<Received> {
        let seen = places
            .first()
            .map(|p| p.seen.clone())
            .ok_or_else(|| Error::Unavailable("empty receive".into()))?;
        let deliveries = places.into_iter().filter_map(|p| p.delivery).collect();
        Ok(Received { deliveries, ..*seen })
    }
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

/// The mailboxes' storage, behind one narrow type.
#[derive(Clone)]
pub struct MailboxStore {
    redis: Arc<Redis>,
    /// Sends waiting for the send call in flight on their mailbox (group commit).
    sends: Arc<Lanes<Outgoing, (String, bool)>>,
    /// Settles waiting for the settle call in flight on their mailbox, per kind (group commit).
    settles: Arc<Lanes<(String, u64), bool>>,
    /// Receives waiting for the receive call in flight on their standard mailbox, per set of
    /// parameters (group commit): one place per message each may take.
    receives: Arc<Lanes<(), Place>>,
    /// Messages per send script call (`mom_send_batch_size`).
    batch_size: Histogram,
}

/// The receive-count parameters of a queue, as the receive script needs them.
pub struct ReceiveParams<'a> {
    pub max: u32,
    pub visibility_ms: u64,
    pub max_receives: Option<u32>,
    pub dead_letter_queue: Option<&'a str>,
    pub retention_ms: u64,
}

/// A receive's parameters but its `max`: what receives sharing a call have in common.
#[derive(Clone)]
struct ReceiveCall {
    visibility_ms: u64,
    max_receives: u32,
    dead_letter_queue: String,
    retention_ms: u64,
}

/// The names of the seven mailbox keys, in the order of `lua/common.lua` (after the payloads).
const MAILBOX_KEYS: [&str; 6] = ["rc", "vis", "inf", "del", "sent", "out"];

/// The wake key of subscription `sub` of `topic`: its long polls wait on it (see `publish.lua`,
/// which announces `s/TOPIC/` followed by each subscription's name).
fn subscription_wake_key(topic: &str, sub: &str) -> String {
    format!("{}{sub}", subscription_wake_prefix(topic))
}

/// What the subscriptions' long polls of brokers before counted announcements wait on: one key
/// for the whole topic.
pub fn older_topic_wake_key(topic: &str) -> String {
    format!("t/{topic}")
}

/// What the wake keys of `topic`'s subscriptions start with.
pub(super) fn subscription_wake_prefix(topic: &str) -> String {
    format!("s/{topic}/")
}

/// The hash-tagged key prefix of a topic: the topic and all its subscriptions share one slot.
pub fn topic_base(prefix: &str, topic: &str) -> String {
    format!("{prefix}:{{t:{topic}}}")
}

impl Mailbox {
    /// The mailbox's keys in script order (payloads first).
    pub(super) fn keys(&self) -> [String; 7] {
        let mut keys: [String; 7] = Default::default();
        keys[0] = self.payloads.clone();
        for (slot, k) in keys[1..].iter_mut().zip(MAILBOX_KEYS) {
            *slot = format!("{}:{k}", self.base);
        }
        keys
    }

    /// The key recording a client's `dedup_id` on this mailbox. `incarnation` (the queue's
    /// creation time) keeps a queue re-created under the same name from matching ids sent to the
    /// deleted one; those keys simply expire.
    pub fn dedup_key(&self, incarnation: &str, dedup_id: &str) -> String {
        format!("{}:dd:{incarnation}:{dedup_id}", self.base)
    }

    /// This mailbox as incarnation `czxid` of its queue (see [`Mailbox::incarnation`]).
    pub fn at(mut self, czxid: i64) -> Self {
        self.incarnation = czxid;
        self.id_space = czxid;
        self.lane = format!("{}#{czxid}", self.base);
        self
    }

    /// This subscription's mailbox with its messages numbered by incarnation `czxid` of its topic.
    pub fn numbered(mut self, czxid: i64) -> Self {
        self.id_space = czxid;
        self
    }

    /// This queue's mailbox as a FIFO queue (`on`) or a standard one: which scripts serve it.
    pub fn fifo(mut self, on: bool) -> Self {
        self.fifo = on;
        self
    }

    pub fn is_fifo(&self) -> bool {
        self.fifo
    }

    /// Every key of the mailbox, with a queue's group keys (FIFO or fair, whichever it has:
    /// deleting a key that does not exist costs nothing, and a cache may not know what the queue
    /// was).
    fn all_keys(&self) -> Vec<String> {
        let mut keys = self.keys().to_vec();
        if self.owns_payloads {
            keys.extend(GROUP_KEYS.iter().map(|k| format!("{}:{k}", self.base)));
        }
        keys
    }

    /// The space its message ids are numbered in (see [`crate::message_id`]).
    pub fn id_space(&self) -> i64 {
        self.id_space
    }

    /// The queue's name, for a queue's mailbox.
    fn queue_name(&self) -> &str {
        self.scope.strip_prefix("q/").unwrap_or(&self.scope)
    }
}

impl MailboxStore {
    pub fn new(redis: Arc<Redis>, batch_size: Histogram) -> Self {
        MailboxStore {
            redis,
            sends: Arc::new(Lanes::new(SEND_BOUNDS)),
            settles: Arc::new(Lanes::new(SETTLE_BOUNDS)),
            receives: Arc::new(Lanes::new(SETTLE_BOUNDS)),
            batch_size,
        }
    }

    /// The mailbox of queue `name`.
    pub fn queue(&self, name: &str) -> Mailbox {
        let base = format!("{}:{{q:{name}}}", self.redis.prefix);
        Mailbox {
            payloads: format!("{base}:m"),
            lane: base.clone(),
            base,
            owns_payloads: true,
            wake_key: format!("q/{name}"),
            older_wake_key: format!("q/{name}"),
            scope: format!("q/{name}"),
            // Queues have push streams too (issue 25), but most have none: an ack announces
            // `room` only while a stream has marked the queue (one PUBLISH per ack call saved).
            room: Room::WhileMarked,
            incarnation: 0,
            id_space: 0,
            fifo: false,
        }
    }

    /// The mailbox of subscription `sub` of `topic`.
    pub fn subscription(&self, topic: &str, sub: &str) -> Mailbox {
        let topic_base = topic_base(&self.redis.prefix, topic);
        let base = format!("{topic_base}:s:{sub}");
        Mailbox {
            lane: base.clone(),
            base,
            payloads: format!("{topic_base}:m"),
            owns_payloads: false,
            wake_key: subscription_wake_key(topic, sub),
            older_wake_key: older_topic_wake_key(topic),
            scope: format!("s/{topic}/{sub}"),
            room: Room::Always,
            incarnation: 0,
            id_space: 0,
            fifo: false,
        }
    }

    /// The key making a transfer out of `source`'s outbox idempotent on the target.
    pub fn transfer_key(&self, target: &Mailbox, source: &Mailbox, id: &str) -> String {
        format!("{}:dx:{}:{id}", target.base, source.scope)
    }

    fn invocation(&self, script: &'static Script, mb: &Mailbox) -> redis::ScriptInvocation<'static> {
        let mut inv = script.prepare_invoke();
        for k in mb.keys() {
            inv.key(k);
        }
        inv.arg(if mb.owns_payloads { "1" } else { "0" });
        inv
    }

    /// Stores messages in a mailbox, in order; `201` may be answered once this returns. Returns
    /// per message its id and whether it was stored now (`false`: its dedup key named an earlier
    /// message).
    ///
    /// Group commit: when no send call is in flight for the mailbox, this one goes out at once
    /// with just these messages. Otherwise they wait, with those of other callers arriving
    /// meanwhile, and the next call carries them all (up to [`SEND_BOUNDS`]), made by a task of
    /// their own that keeps going while groups wait: a caller that goes away (client disconnect,
    /// its future dropped) never strands the others. What the call answers is split back per
    /// caller; each message's dedup key is still its own (key indexes are per call), and with
    /// `MOM_REDIS_MIN_REPLICAS_ACK` the `WAIT` after the combined call covers every message in it.
    /// All keys of a mailbox share one hash tag, so a combined call is single-slot on a cluster.
    pub async fn send(&self, mb: &Mailbox, messages: Vec<Outgoing>) -> Result<Vec<(String, bool)>> {
        let bytes = messages.iter().map(Outgoing::weight).sum();
        let later = || {
            let (store, mb) = (self.clone(), Arc::new(mb.clone()));
            move |messages| {
                let (store, mb) = (store.clone(), mb.clone());
                async move { store.send_now(&mb, messages).await }
            }
        };
        self.sends.call(&mb.lane, messages, bytes, |m| self.send_now(mb, m), later).await
    }

    /// One send script call with these messages.
    async fn send_now(&self, mb: &Mailbox, messages: Vec<Outgoing>) -> Result<Vec<(String, bool)>> {
        self.batch_size.observe(messages.len() as f64);
        let mut inv = self.invocation(if mb.fifo { &FIFO_SEND } else { &SEND }, mb);
        inv.key(format!("{}:seq", mb.base)).key(format!("{}:inc", mb.base));
        inv.arg(self.redis.channel()).arg(&mb.wake_key).arg(messages.len()).arg(mb.incarnation);
        let mut next_key = 10;
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
            // A FIFO queue needs a group; on a standard one a group makes the queue fair.
            inv.arg(m.group.as_deref().unwrap_or(if mb.fifo { DEFAULT_GROUP } else { "" }));
        }
        inv.arg(self.redis.dedup_window_s());
        let flat: Vec<(String, i64)> = self.redis.write_conn()?.invoke(&inv).await?;
        if flat.first().is_some_and(|(id, flag)| id == GONE && *flag < 0) {
            return Err(Error::QueueNotFound(mb.queue_name().to_string()));
        }
        Ok(flat.into_iter().map(|(id, new)| (id, new == 1)).collect())
    }

    /// Delivers up to `d.max` visible messages.
    ///
    /// Group commit, as [`MailboxStore::send`], on standard mailboxes: receives with the same
    /// parameters that arrive while one is in flight share the next call, which asks for all
    /// their messages at once; each caller gets the next ones in delivery order, up to its own
    /// `max` (so a caller may get none where the messages ran short, as when another consumer's
    /// receive took them first). Not on FIFO queues: two consumers sharing one call could be
    /// handed messages of one group.
    pub async fn receive(&self, mb: &Mailbox, d: &ReceiveParams<'_>) -> Result<Received> {
        let params = ReceiveCall {
            visibility_ms: d.visibility_ms,
            max_receives: d.max_receives.unwrap_or(0),
            dead_letter_queue: d.dead_letter_queue.unwrap_or("").to_string(),
            retention_ms: d.retention_ms,
        };
        if mb.fifo {
            return self.receive_now(mb, &params, d.max as usize).await;
        }
        let lane = format!(
            "{}#r{}#{}#{}#{}",
            mb.lane, params.visibility_ms, params.max_receives, params.retention_ms, params.dead_letter_queue
        );
        let now = |places: Vec<()>| {
            let n = places.len();
            let params = &params;
            async move { Ok(self.receive_now(mb, params, n).await?.into_places(n)) }
        };
        let later = || {
            let (store, mb, params) = (self.clone(), Arc::new(mb.clone()), Arc::new(params.clone()));
            move |places: Vec<()>| {
                let (store, mb, params) = (store.clone(), mb.clone(), params.clone());
                async move { Ok(store.receive_now(&mb, &params, places.len()).await?.into_places(places.len())) }
            }
        };
        let n = d.max as usize;
        Received::from_places(self.receives.call(&lane, vec![(); n], n, now, later).await?)
    }

    /// One receive script call taking up to `max` messages.
    async fn receive_now(&self, mb: &Mailbox, d: &ReceiveCall, max: usize) -> Result<Received> {
        let mut inv = self.invocation(if mb.fifo { &FIFO_RECEIVE } else { &RECEIVE }, mb);
        inv.arg(max).arg(d.visibility_ms).arg(d.max_receives).arg(&d.dead_letter_queue).arg(d.retention_ms);
        type Reply = (i64, u64, u64, String, Vec<(String, String, u64, String, String)>, u64);
        let (now_ms, trimmed, dead_lettered, next, raw, more): Reply =
            inv.invoke_async(&mut self.redis.conn()?).await.map_err(Error::redis)?;
        let deliveries = raw
            .into_iter()
            .map(|(id, payload, delivery, sent, first)| RawDelivery {
                id,
                payload,
                delivery,
                sent_ms: sent.parse::<f64>().unwrap_or(0.0) as i64,
                first_ms: first.parse::<i64>().ok(),
            })
            .collect();
        let next_visible_ms = next.parse::<f64>().ok().map(|v| v as i64);
        Ok(Received { deliveries, now_ms, next_visible_ms, more, trimmed, dead_lettered })
    }

    /// Marks `mb` as having a push stream that may wait for room, for [`STREAM_MARK`]: until the
    /// mark lapses, settles announce `room` (`Room::WhileMarked`). A stream renews it while it
    /// waits, at least every [`STREAM_MARK_RENEW`]. Nothing to do where settles always announce.
    pub async fn mark_streaming(&self, mb: &Mailbox) -> Result<()> {
        if matches!(mb.room, Room::Always) {
            return Ok(());
        }
        redis::cmd("SET")
            .arg(format!("{}:st", mb.base))
            .arg(1)
            .arg("PX")
            .arg(STREAM_MARK.as_millis() as u64)
            .query_async::<()>(&mut self.redis.conn()?)
            .await
            .map_err(Error::redis)
    }

    /// Acks, nacks or changes the visibility of deliveries; `true` per delivery that was current.
    ///
    /// Group commit, as [`MailboxStore::send`]: settles of one kind (the same mode and time) on
    /// one mailbox that arrive while one is in flight share the next call. Combining changes
    /// nothing a caller can see: each receipt is checked and applied on its own, in arrival
    /// order, and each caller gets its own answers.
    pub async fn settle(&self, mb: &Mailbox, how: Settle, deliveries: &[(String, u64)]) -> Result<Vec<bool>> {
        let (mode, ms) = match how {
            Settle::Ack => ("ack", 0),
            Settle::Nack { delay_ms } => ("nack", delay_ms),
            Settle::Visibility { timeout_ms } => ("vis", timeout_ms),
        };
        let lane = format!("{}#{mode}{ms}", mb.lane);
        let later = || {
            let (store, mb) = (self.clone(), Arc::new(mb.clone()));
            move |deliveries| {
                let (store, mb) = (store.clone(), mb.clone());
                async move { store.settle_now(&mb, mode, ms, deliveries).await }
            }
        };
        let now = |d| self.settle_now(mb, mode, ms, d);
        self.settles.call(&lane, deliveries.to_vec(), deliveries.len(), now, later).await
    }

    /// One settle script call.
    async fn settle_now(
        &self,
        mb: &Mailbox,
        mode: &str,
        ms: u64,
        deliveries: Vec<(String, u64)>,
    ) -> Result<Vec<bool>> {
        let mut inv = self.invocation(if mb.fifo { &FIFO_SETTLE } else { &SETTLE }, mb);
        inv.arg(self.redis.channel()).arg(&mb.wake_key).arg(mode).arg(ms).arg(match mb.room {
            Room::Always => "1",
            Room::WhileMarked => "2",
        });
        for (id, rc) in deliveries {
            inv.arg(id).arg(rc);
        }
        let done: Vec<i64> = inv.invoke_async(&mut self.redis.conn()?).await.map_err(Error::redis)?;
        Ok(done.into_iter().map(|d| d == 1).collect())
    }

    /// Exact counts, after trimming what retention expired. Also returns how many were trimmed and
    /// how many messages wait in the outbox.
    pub async fn stats(&self, mb: &Mailbox, retention_ms: u64) -> Result<(QueueStats, u64, u64)> {
        let mut inv = self.invocation(if mb.fifo { &FIFO_STATS } else { &STATS }, mb);
        inv.arg(retention_ms);
        let v: Vec<i64> = inv.invoke_async(&mut self.redis.conn()?).await.map_err(Error::redis)?;
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        let (oldest, now) = (at(3), at(4));
        let oldest_age_s = if oldest < 0 { 0 } else { ((now - oldest).max(0) / 1000) as u64 };
        let stats = QueueStats {
            available: at(0).max(0) as u64,
            in_flight: at(1).max(0) as u64,
            delayed: at(2).max(0) as u64,
            oldest_age_s,
            in_flight_groups: v.get(7).map(|g| (*g).max(0) as u64),
        };
        Ok((stats, at(5).max(0) as u64, at(6).max(0) as u64))
    }

    /// Which of a stream's deliveries are still in flight.
    pub async fn in_flight(&self, mb: &Mailbox, deliveries: &[(String, u64)]) -> Result<Vec<bool>> {
        let mut inv = self.invocation(&CURRENT, mb);
        for (id, d) in deliveries {
            inv.arg(id).arg(d);
        }
        let live: Vec<i64> = inv.invoke_async(&mut self.redis.conn()?).await.map_err(Error::redis)?;
        Ok(live.into_iter().map(|l| l == 1).collect())
    }

    /// Drops every message of a deleted queue's incarnation `czxid` and marks it deleted in
    /// Redis, so a send made through a node that has not heard of the deletion is refused (see
    /// [`Mailbox::incarnation`]). A newer incarnation's messages (the queue was created again
    /// meanwhile) are left alone.
    pub async fn retire(&self, mb: &Mailbox, czxid: i64) -> Result<()> {
        super::retire(&self.redis, format!("{}:inc", mb.base), &mb.all_keys(), czxid).await
    }

    /// Drops every message of the mailbox (and, for a queue, the payloads). The id sequence
    /// stays, so ids are never reused.
    pub async fn purge(&self, mb: &Mailbox) -> Result<()> {
        let mut cmd = redis::cmd("DEL");
        let keys = mb.all_keys();
        let own = if mb.owns_payloads { &keys[..] } else { &keys[1..] };
        for k in own {
            cmd.arg(k);
        }
        cmd.query_async::<()>(&mut self.redis.conn()?).await.map_err(Error::redis)
    }

    /// Redrive, step one: moves up to `limit` visible messages sent before this call into the
    /// outbox, addressed to `to` (None: each message's `mom.source_queue`). Returns how many.
    pub async fn take_for_redrive(
        &self,
        mb: &Mailbox,
        to: Option<&str>,
        bound: &str,
        limit: u32,
    ) -> Result<u64> {
        let mut inv = self.invocation(if mb.fifo { &FIFO_TAKE } else { &TAKE }, mb);
        inv.arg(to.unwrap_or("")).arg(bound).arg(limit);
        inv.invoke_async(&mut self.redis.conn()?).await.map_err(Error::redis)
    }

    /// The id the next message of the queue will get, bounding a redrive to what is already there.
    pub async fn next_id(&self, mb: &Mailbox) -> Result<String> {
        let seq: Option<u64> = redis::cmd("GET")
            .arg(format!("{}:seq", mb.base))
            .query_async(&mut self.redis.conn()?)
            .await
            .map_err(Error::redis)?;
        Ok(format!("{:016}", seq.unwrap_or(0) + 1))
    }

    pub async fn outbox(&self, mb: &Mailbox) -> Result<Vec<Transfer>> {
        let out = &mb.keys()[6];
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

    /// What a receive with attempt id `attempt` (by `user`) answered, if it was recorded in the
    /// last [`ATTEMPT_WINDOW_S`] (SQS `ReceiveRequestAttemptId`).
    pub async fn attempt(&self, mb: &Mailbox, user: &str, attempt: &str) -> Result<Option<String>> {
        redis::cmd("GET")
            .arg(attempt_key(mb, user, attempt))
            .query_async(&mut self.redis.conn()?)
            .await
            .map_err(Error::redis)
    }

    /// Records what a receive with attempt id `attempt` answered; the first record stands.
    pub async fn record_attempt(&self, mb: &Mailbox, user: &str, attempt: &str, answer: &str) -> Result<()> {
        redis::cmd("SET")
            .arg(attempt_key(mb, user, attempt))
            .arg(answer)
            .arg("NX")
            .arg("EX")
            .arg(ATTEMPT_WINDOW_S)
            .query_async::<()>(&mut self.redis.conn()?)
            .await
            .map_err(Error::redis)
    }

    pub async fn outbox_done(&self, mb: &Mailbox, id: &str) -> Result<()> {
        redis::cmd("HDEL")
            .arg(&mb.keys()[6])
            .arg(id)
            .query_async::<()>(&mut self.redis.conn()?)
            .await
            .map_err(Error::redis)
    }
}
