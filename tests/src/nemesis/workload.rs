//! The clients of a run, all at once and through every node: producers (sends with a
//! `dedup_id`, retried on another node while the answer is unknown), consumers (receive, then ack
//! or nack through another node), a metadata writer (queues created, patched and deleted; users,
//! topics, subscriptions and a grant made and removed), a metadata reader (requests whose answer
//! shows whether a node sees those changes), and a sampler of `mom_leader`. Each request is one
//! attempt on one node, recorded in the [`History`].

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::history::{Delivery, History, Op, Outcome, Reg, Val};
use super::views::ZkState;
use crate::client::{Body, Resp};
use crate::failover::Failover;

/// Queues the producers send to and the consumers drain; never deleted.
pub const DATA_QUEUES: [&str; 2] = ["data-0", "data-1"];
/// Visibility timeout of the data queues: unacked messages come back this soon.
pub const DATA_VISIBILITY_S: u64 = 5;
/// The topic whose subscriptions the writer makes and removes.
pub const TOPIC: &str = "events";
/// A restricted queue on which the writer grants and revokes [`GRANTEE`]'s right to publish.
pub const GRANTED_QUEUE: &str = "granted";
pub const GRANTEE: &str = "grantee";

/// Time limit of each request: past it the answer is unknown.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);

const PRODUCERS: usize = 3;
const CONSUMERS: usize = 3;

/// How many more acknowledged sends, and acks answered ok, count as "traffic flows".
const PROGRESS: usize = 20;

/// Attempts of one send before its fate stays unknown.
const SEND_ATTEMPTS: u32 = 8;

/// One client per node, each as the admin, as [`GRANTEE`], and anonymous (logins). Every
/// request is one attempt on the node asked: the history records each attempt.
#[derive(Debug, Clone)]
pub struct Clients {
    pub admin: Failover,
    pub grantee: Failover,
    pub anonymous: Failover,
}

/// What one attempt got: an answer, or none that says anything (no answer, a timeout, a 503).
enum Reply {
    Answer(Resp),
    NoAnswer(String),
}

async fn call(via: &Failover, node: usize, method: Method, path: &str, body: Body) -> Reply {
    match via.request(node, method, path, body).await {
        Ok(answer) if answer.resp.status == 503 => Reply::NoAnswer(format!("503 {}", answer.resp.text)),
        Ok(answer) => Reply::Answer(answer.resp),
        Err(gave_up) => Reply::NoAnswer(gave_up.to_string()),
    }
}

fn unexpected(resp: &Resp) -> Outcome {
    Outcome::Unexpected(format!("{} {}", resp.status, resp.text))
}

/// A metadata change the writer (or the nemesis) makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    CreateQueue,
    PatchQueue,
    DeleteQueue,
    CreateUser,
    DeleteUser,
    CreateTopic,
    DeleteTopic,
    CreateSubscription,
    DeleteSubscription,
    Grant,
    Revoke,
}

const CHANGES: [Change; 11] = [
    Change::CreateQueue,
    Change::PatchQueue,
    Change::DeleteQueue,
    Change::CreateUser,
    Change::DeleteUser,
    Change::CreateTopic,
    Change::DeleteTopic,
    Change::CreateSubscription,
    Change::DeleteSubscription,
    Change::Grant,
    Change::Revoke,
];

/// Live objects of one kind the writer made, and the last few it deleted (still probed).
#[derive(Debug, Default)]
struct Pool {
    live: Vec<String>,
    dead: VecDeque<String>,
}

/// At most this many live objects of a kind: beyond, the writer deletes.
const LIVE_MAX: usize = 3;

impl Pool {
    fn retire(&mut self, name: &str) {
        self.live.retain(|n| n != name);
        self.dead.push_back(name.to_string());
        if self.dead.len() > 4 {
            self.dead.pop_front();
        }
    }

    fn any(&self, rng: &mut StdRng, dead_first: bool) -> Option<String> {
        let pick = |v: Vec<&String>, rng: &mut StdRng| {
            (!v.is_empty()).then(|| v[rng.random_range(0..v.len())].clone())
        };
        let dead: Vec<&String> = self.dead.iter().collect();
        let live: Vec<&String> = self.live.iter().collect();
        if dead_first && rng.random_bool(0.5) {
            pick(dead, rng).or_else(|| pick(live, rng))
        } else {
            pick(live, rng).or_else(|| pick(dead, rng))
        }
    }
}

#[derive(Debug, Default)]
struct Names {
    next: usize,
    queues: Pool,
    users: Pool,
    topics: Pool,
    subscriptions: Pool,
}

/// What every client shares.
pub struct Ctx {
    pub history: History,
    pub clients: Clients,
    nodes: usize,
    seed: u64,
    producing: AtomicBool,
    consuming: AtomicBool,
    churning: AtomicBool,
    /// Held by the metadata writer for each change, and by the nemesis while it checks that the
    /// nodes converged (so that no change of the writer's is in flight then).
    pub metadata_turn: tokio::sync::Mutex<()>,
    names: Mutex<Names>,
    acked_sends: AtomicUsize,
    acks: AtomicUsize,
}

/// The running clients.
pub struct Tasks {
    producers: Vec<JoinHandle<()>>,
    consumers: Vec<JoinHandle<()>>,
    others: Vec<JoinHandle<()>>,
}

impl Ctx {
    pub fn new(history: History, clients: Clients, nodes: usize, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            history,
            clients,
            nodes,
            seed,
            producing: AtomicBool::new(true),
            consuming: AtomicBool::new(true),
            churning: AtomicBool::new(true),
            metadata_turn: tokio::sync::Mutex::new(()),
            names: Mutex::default(),
            acked_sends: AtomicUsize::new(0),
            acks: AtomicUsize::new(0),
        })
    }

    fn rng(&self, stream: u64) -> StdRng {
        StdRng::seed_from_u64(self.seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn names(&self) -> std::sync::MutexGuard<'_, Names> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts every client; `zk` and `root` are for the leader sampler.
    pub fn spawn(self: &Arc<Self>, zk: String, root: String) -> Tasks {
        let producers = (0..PRODUCERS)
            .map(|k| tokio::spawn(Arc::clone(self).produce(k, self.rng(100 + k as u64))))
            .collect();
        let consumers = (0..CONSUMERS)
            .map(|k| tokio::spawn(Arc::clone(self).consume(k, self.rng(200 + k as u64))))
            .collect();
        let others = vec![
            tokio::spawn(Arc::clone(self).write_metadata(self.rng(300))),
            tokio::spawn(Arc::clone(self).read_metadata(self.rng(400))),
            tokio::spawn(Arc::clone(self).sample_leaders(zk, root)),
        ];
        Tasks { producers, consumers, others }
    }

    /// (acknowledged sends, acks answered ok) so far.
    pub fn progress(&self) -> (usize, usize) {
        (self.acked_sends.load(Ordering::Relaxed), self.acks.load(Ordering::Relaxed))
    }

    /// Waits until [`PROGRESS`] more sends were acknowledged and as many acks answered ok;
    /// false if that takes longer than `timeout`.
    pub async fn traffic_flows(&self, timeout: Duration) -> bool {
        let (sent, acked) = self.progress();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let (s, a) = self.progress();
            if s >= sent + PROGRESS && a >= acked + PROGRESS {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Stops the producers and the metadata clients, lets the consumers run until every
    /// acknowledged send was delivered and the data queues are empty (or `patience` passed),
    /// then stops them too.
    pub async fn finish(&self, tasks: Tasks, patience: Duration) {
        self.churning.store(false, Ordering::Relaxed);
        self.producing.store(false, Ordering::Relaxed);
        for task in tasks.producers.into_iter().chain(tasks.others) {
            let _ = task.await;
        }
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline && !(self.all_delivered() && self.data_queues_empty().await) {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.consuming.store(false, Ordering::Relaxed);
        for task in tasks.consumers {
            let _ = task.await;
        }
    }

    fn all_delivered(&self) -> bool {
        self.history.with(|entries| {
            let mut delivered = HashSet::new();
            let mut sent = Vec::new();
            for e in entries {
                match (&e.op, &e.outcome) {
                    (Op::Receive { queue }, Outcome::Delivered(got)) => {
                        delivered.extend(got.iter().map(|d| (queue, &d.id)))
                    }
                    (Op::Send { queue, .. }, Outcome::Sent { id, .. })
                        if DATA_QUEUES.contains(&queue.as_str()) =>
                    {
                        sent.push((queue, id))
                    }
                    _ => {}
                }
            }
            sent.iter().all(|message| delivered.contains(message))
        })
    }

    async fn data_queues_empty(&self) -> bool {
        for queue in DATA_QUEUES {
            let mut empty = None;
            for node in 0..self.nodes {
                if let Reply::Answer(resp) =
                    call(&self.clients.admin, node, Method::GET, &format!("/v1/queues/{queue}"), Body::None)
                        .await
                {
                    let stats = &resp.json["stats"];
                    empty = Some(stats["available"] == 0 && stats["in_flight"] == 0 && stats["delayed"] == 0);
                    break;
                }
            }
            if empty != Some(true) {
                return false;
            }
        }
        true
    }

    /// Sends `p<k>-<n>` (also its dedup_id) to a data queue, moving to the next node while the
    /// answer is unknown.
    async fn produce(self: Arc<Self>, k: usize, mut rng: StdRng) {
        let who = format!("producer-{}", k + 1);
        let mut n = 0;
        while self.producing.load(Ordering::Relaxed) {
            n += 1;
            let body = format!("p{}-{n}", k + 1);
            let queue = DATA_QUEUES[rng.random_range(0..DATA_QUEUES.len())];
            let mut node = rng.random_range(0..self.nodes);
            let mut backoff = Duration::from_millis(50);
            for _ in 0..SEND_ATTEMPTS {
                match self.send(&who, node, queue, &body).await {
                    Outcome::Unknown(_) => {}
                    Outcome::Sent { .. } => {
                        self.acked_sends.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    _ => break,
                }
                node = (node + 1) % self.nodes;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            // About 25 sends a second each: enough traffic, and CPU left on two cores for the
            // processes the faults restart (a JVM starved for CPU turns a short ZooKeeper
            // restart into a long one).
            tokio::time::sleep(Duration::from_millis(rng.random_range(20..60))).await;
        }
    }

    /// One attempt of a send (`body` is also its dedup_id).
    async fn send(&self, who: &str, node: usize, queue: &str, body: &str) -> Outcome {
        let start = self.history.now();
        let path = format!("/v1/queues/{queue}/messages");
        let request = json!({ "body": body, "dedup_id": body });
        let outcome = match call(&self.clients.admin, node, Method::POST, &path, request.into()).await {
            Reply::Answer(resp) if matches!(resp.status, 200 | 201) => match resp.json["id"].as_str() {
                Some(id) => Outcome::Sent { id: id.to_string(), fresh: resp.status == 201 },
                None => unexpected(&resp),
            },
            Reply::Answer(resp) => unexpected(&resp),
            Reply::NoAnswer(why) => Outcome::Unknown(why),
        };
        let op = Op::Send { queue: queue.to_string(), body: body.to_string() };
        self.history.push(who, Some(node), start, op, outcome.clone());
        outcome
    }

    /// Receives (long polls of 1 s) from a data queue, then acks nine in ten of the messages and
    /// nacks the rest, through another node.
    async fn consume(self: Arc<Self>, k: usize, mut rng: StdRng) {
        let who = format!("consumer-{}", k + 1);
        while self.consuming.load(Ordering::Relaxed) {
            let queue = DATA_QUEUES[rng.random_range(0..DATA_QUEUES.len())];
            let node = rng.random_range(0..self.nodes);
            let start = self.history.now();
            let path = format!("/v1/queues/{queue}/receive");
            let request = json!({ "max": 10, "wait_s": 1 });
            let (outcome, receipts) =
                match call(&self.clients.admin, node, Method::POST, &path, request.into()).await {
                    Reply::Answer(resp) if resp.status == 200 => match parse_messages(&resp.json) {
                        Some((got, receipts)) => (Outcome::Delivered(got), receipts),
                        None => (unexpected(&resp), Vec::new()),
                    },
                    Reply::Answer(resp) => (unexpected(&resp), Vec::new()),
                    Reply::NoAnswer(why) => (Outcome::Unknown(why), Vec::new()),
                };
            let delivered = match &outcome {
                Outcome::Delivered(got) => got.clone(),
                _ => Vec::new(),
            };
            let answered = matches!(outcome, Outcome::Delivered(_));
            self.history.push(&who, Some(node), start, Op::Receive { queue: queue.to_string() }, outcome);
            if !answered {
                // Back off from a node that is down rather than spin on it.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if delivered.is_empty() {
                continue;
            }
            let (mut acks, mut nacks) = (Vec::new(), Vec::new());
            for (d, receipt) in delivered.into_iter().zip(receipts) {
                if rng.random_bool(0.1) {
                    nacks.push((d, receipt));
                } else {
                    acks.push((d, receipt));
                }
            }
            let node = rng.random_range(0..self.nodes);
            for (nack, batch) in [(false, acks), (true, nacks)] {
                if !batch.is_empty() {
                    self.settle(&who, node, queue, nack, batch).await;
                }
            }
        }
    }

    /// One ack (or nack) request for `batch`, recorded receipt by receipt.
    async fn settle(&self, who: &str, node: usize, queue: &str, nack: bool, batch: Vec<(Delivery, String)>) {
        let start = self.history.now();
        let receipts: Vec<&str> = batch.iter().map(|(_, r)| r.as_str()).collect();
        let (path, request) = if nack {
            (format!("/v1/queues/{queue}/nack"), json!({ "receipts": receipts, "delay_s": 0 }))
        } else {
            (format!("/v1/queues/{queue}/ack"), json!({ "receipts": receipts }))
        };
        let reply = call(&self.clients.admin, node, Method::POST, &path, request.into()).await;
        for (i, (d, _)) in batch.iter().enumerate() {
            let outcome = match &reply {
                Reply::Answer(resp) if resp.status == 200 => {
                    let result = &resp.json["results"][i];
                    if result == &json!({ "ok": true }) {
                        Outcome::Ok
                    } else if result["error"]["code"] == "receipt_invalid" {
                        Outcome::Failed("receipt_invalid".into())
                    } else {
                        Outcome::Unexpected(format!("result {i} of {}", resp.text))
                    }
                }
                Reply::Answer(resp) => unexpected(resp),
                Reply::NoAnswer(why) => Outcome::Unknown(why.clone()),
            };
            if !nack && matches!(outcome, Outcome::Ok) {
                self.acks.fetch_add(1, Ordering::Relaxed);
            }
            let op = Op::Settle {
                queue: queue.to_string(),
                id: d.id.clone(),
                receive_count: d.receive_count,
                nack,
            };
            self.history.push(who, Some(node), start, op, outcome);
        }
    }

    /// Makes changes one after another, each through a random node, until the run ends.
    async fn write_metadata(self: Arc<Self>, mut rng: StdRng) {
        while self.churning.load(Ordering::Relaxed) {
            let change = CHANGES[rng.random_range(0..CHANGES.len())];
            let node = rng.random_range(0..self.nodes);
            {
                let _turn = self.metadata_turn.lock().await;
                self.change("writer", change, node, &mut rng).await;
            }
            // Think time, so that reads outnumber writes.
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..400))).await;
        }
    }

    /// Makes `change` through `node` (or the change that makes sense instead: a patch of a queue
    /// when there is none creates one); records one write per register it sets.
    pub async fn change(&self, who: &str, change: Change, node: usize, rng: &mut StdRng) -> Outcome {
        let change = self.feasible(change);
        let name = match change {
            Change::CreateQueue => self.fresh("cq"),
            Change::CreateUser => self.fresh("user"),
            Change::CreateTopic => self.fresh("ct"),
            Change::CreateSubscription => self.fresh("s"),
            Change::PatchQueue | Change::DeleteQueue => {
                self.names().queues.any(rng, false).unwrap_or_default()
            }
            Change::DeleteUser => self.names().users.any(rng, false).unwrap_or_default(),
            Change::DeleteTopic => self.names().topics.any(rng, false).unwrap_or_default(),
            Change::DeleteSubscription => self.names().subscriptions.any(rng, false).unwrap_or_default(),
            Change::Grant | Change::Revoke => GRANTEE.to_string(),
        };
        let vt: u64 = rng.random_range(5..=60);
        let sub = format!("{TOPIC}/{name}");
        let grant = Reg::Grant { queue: GRANTED_QUEUE.into(), user: GRANTEE.into() };
        use {Method as M, Reg as R, Val as V};
        let (method, path, body, writes) = match change {
            Change::CreateQueue => (
                M::PUT,
                format!("/v1/queues/{name}"),
                json!({ "visibility_timeout_s": vt }),
                vec![(R::Queue(name.clone()), V::Present), (R::QueueVisibility(name.clone()), V::Num(vt))],
            ),
            Change::PatchQueue => (
                M::PATCH,
                format!("/v1/queues/{name}"),
                json!({ "visibility_timeout_s": vt }),
                vec![(R::QueueVisibility(name.clone()), V::Num(vt))],
            ),
            Change::DeleteQueue => (
                M::DELETE,
                format!("/v1/queues/{name}"),
                Value::Null,
                vec![(R::Queue(name.clone()), V::Absent)],
            ),
            Change::CreateUser => (
                M::POST,
                "/v1/users".into(),
                json!({ "username": name, "password": crate::user_password(&name), "role": "user" }),
                vec![(R::User(name.clone()), V::Present)],
            ),
            Change::DeleteUser => (
                M::DELETE,
                format!("/v1/users/{name}"),
                Value::Null,
                vec![(R::User(name.clone()), V::Absent)],
            ),
            Change::CreateTopic => {
                (M::PUT, format!("/v1/topics/{name}"), json!({}), vec![(R::Topic(name.clone()), V::Present)])
            }
            Change::DeleteTopic => (
                M::DELETE,
                format!("/v1/topics/{name}"),
                Value::Null,
                vec![(R::Topic(name.clone()), V::Absent)],
            ),
            Change::CreateSubscription => (
                M::PUT,
                format!("/v1/topics/{TOPIC}/subscriptions/{name}"),
                json!({}),
                vec![(R::Subscription(sub), V::Present)],
            ),
            Change::DeleteSubscription => (
                M::DELETE,
                format!("/v1/topics/{TOPIC}/subscriptions/{name}"),
                Value::Null,
                vec![(R::Subscription(sub), V::Absent)],
            ),
            Change::Grant => (
                M::PUT,
                format!("/v1/queues/{GRANTED_QUEUE}/grants/{GRANTEE}"),
                json!({ "publish": true, "consume": false }),
                vec![(grant, V::Present)],
            ),
            Change::Revoke => (
                M::DELETE,
                format!("/v1/queues/{GRANTED_QUEUE}/grants/{GRANTEE}"),
                Value::Null,
                vec![(grant, V::Absent)],
            ),
        };
        let start = self.history.now();
        let body = if body.is_null() { Body::None } else { Body::Json(body) };
        let outcome = match call(&self.clients.admin, node, method, &path, body).await {
            Reply::Answer(resp) if (200..300).contains(&resp.status) => Outcome::Ok,
            // Gone already (a delete or patch of a record whose creation never took effect).
            Reply::Answer(resp) if resp.status == 404 && !writes.iter().any(|(_, v)| *v == V::Present) => {
                Outcome::Failed(format!("404 {}", resp.error_code().unwrap_or_default()))
            }
            Reply::Answer(resp) => unexpected(&resp),
            Reply::NoAnswer(why) => Outcome::Unknown(why),
        };
        for (reg, val) in writes {
            self.history.push(who, Some(node), start, Op::Write { reg, val }, outcome.clone());
        }
        if outcome.may_have_happened() || matches!(outcome, Outcome::Failed(_)) {
            let mut names = self.names();
            match change {
                Change::CreateQueue => names.queues.live.push(name),
                Change::CreateUser => names.users.live.push(name),
                Change::CreateTopic => names.topics.live.push(name),
                Change::CreateSubscription => names.subscriptions.live.push(name),
                Change::DeleteQueue => names.queues.retire(&name),
                Change::DeleteUser => names.users.retire(&name),
                Change::DeleteTopic => names.topics.retire(&name),
                Change::DeleteSubscription => names.subscriptions.retire(&name),
                Change::PatchQueue | Change::Grant | Change::Revoke => {}
            }
        }
        outcome
    }

    /// `change`, or the change to make instead when there is nothing to patch or delete, or too
    /// much alive.
    fn feasible(&self, change: Change) -> Change {
        let names = self.names();
        let (pool, create, delete) = match change {
            Change::CreateQueue | Change::PatchQueue | Change::DeleteQueue => {
                (&names.queues, Change::CreateQueue, Change::DeleteQueue)
            }
            Change::CreateUser | Change::DeleteUser => (&names.users, Change::CreateUser, Change::DeleteUser),
            Change::CreateTopic | Change::DeleteTopic => {
                (&names.topics, Change::CreateTopic, Change::DeleteTopic)
            }
            Change::CreateSubscription | Change::DeleteSubscription => {
                (&names.subscriptions, Change::CreateSubscription, Change::DeleteSubscription)
            }
            Change::Grant | Change::Revoke => return change,
        };
        if pool.live.is_empty() {
            create
        } else if change == create && pool.live.len() >= LIVE_MAX {
            delete
        } else {
            change
        }
    }

    /// A name never used before in this run: names are not reused, so each has one life.
    fn fresh(&self, prefix: &str) -> String {
        let mut names = self.names();
        names.next += 1;
        format!("{prefix}{}", names.next)
    }

    /// Asks random nodes about random objects the writer made (live or recently deleted).
    async fn read_metadata(self: Arc<Self>, mut rng: StdRng) {
        while self.churning.load(Ordering::Relaxed) {
            let node = rng.random_range(0..self.nodes);
            self.read(node, &mut rng).await;
            tokio::time::sleep(Duration::from_millis(rng.random_range(20..100))).await;
        }
    }

    async fn read(&self, node: usize, rng: &mut StdRng) {
        let start = self.history.now();
        let kind = rng.random_range(0..10);
        let (name, via_client) = {
            let names = self.names();
            let name = match kind {
                0..=3 => names.queues.any(rng, true),
                4 => names.users.any(rng, true),
                5 | 6 => names.topics.any(rng, true),
                7 | 8 => names.subscriptions.any(rng, true),
                _ => Some(GRANTEE.to_string()),
            };
            (name, if kind == 4 { &self.clients.anonymous } else { &self.clients.admin })
        };
        let Some(name) = name else { return };
        let probe = json!({ "body": "probe", "dedup_id": format!("probe-{}", rng.random::<u64>()) });
        // (register, how, request, status → value read)
        let (reg, via, method, path, body, found, missing): (
            Reg,
            &'static str,
            Method,
            String,
            Body,
            u16,
            u16,
        ) = match kind {
            0 | 1 => (
                Reg::Queue(name.clone()),
                "GET",
                Method::GET,
                format!("/v1/queues/{name}"),
                Body::None,
                200,
                404,
            ),
            2 | 3 => (
                Reg::Queue(name.clone()),
                "send",
                Method::POST,
                format!("/v1/queues/{name}/messages"),
                probe.into(),
                201,
                404,
            ),
            4 => (
                Reg::User(name.clone()),
                "login",
                Method::POST,
                "/v1/auth/token".into(),
                json!({ "username": name, "password": crate::user_password(&name) }).into(),
                200,
                401,
            ),
            5 | 6 => (
                Reg::Topic(name.clone()),
                "publish",
                Method::POST,
                format!("/v1/topics/{name}/messages"),
                json!({ "body": "probe" }).into(),
                201,
                404,
            ),
            7 | 8 => (
                Reg::Subscription(format!("{TOPIC}/{name}")),
                "receive",
                Method::POST,
                format!("/v1/topics/{TOPIC}/subscriptions/{name}/receive"),
                json!({ "max": 1 }).into(),
                200,
                404,
            ),
            _ => (
                Reg::Grant { queue: GRANTED_QUEUE.into(), user: GRANTEE.into() },
                "send as grantee",
                Method::POST,
                format!("/v1/queues/{GRANTED_QUEUE}/messages"),
                json!({ "body": "probe" }).into(),
                201,
                403,
            ),
        };
        let via_client = if kind == 9 { &self.clients.grantee } else { via_client };
        let reply = call(via_client, node, method, &path, body).await;
        let mut reads = Vec::new();
        let outcome = match &reply {
            Reply::Answer(resp) if resp.status == found || (via == "send" && resp.status == 200) => {
                if via == "GET" {
                    if let Some(vt) = resp.json["visibility_timeout_s"].as_u64() {
                        reads.push((Reg::QueueVisibility(name.clone()), Outcome::Read(Val::Num(vt))));
                    }
                }
                Outcome::Read(Val::Present)
            }
            Reply::Answer(resp) if resp.status == missing => Outcome::Read(Val::Absent),
            // Failed logins are rate limited per username and address: no information.
            Reply::Answer(resp) if resp.status == 429 && via == "login" => {
                Outcome::Unknown(resp.text.clone())
            }
            Reply::Answer(resp) => unexpected(resp),
            Reply::NoAnswer(why) => Outcome::Unknown(why.clone()),
        };
        reads.insert(0, (reg, outcome));
        for (reg, outcome) in reads {
            self.history.push("reader", Some(node), start, Op::Read { reg, via }, outcome);
        }
    }

    /// Every half second: which nodes say `mom_leader 1`, and the fencing epoch each holds in
    /// ZooKeeper.
    async fn sample_leaders(self: Arc<Self>, zk: String, root: String) {
        while self.churning.load(Ordering::Relaxed) {
            let start = self.history.now();
            let anonymous = &self.clients.anonymous;
            let scrapes = (0..self.nodes).map(|node| async move {
                match call(anonymous, node, Method::GET, "/metrics", Body::None).await {
                    Reply::Answer(resp) if resp.status == 200 => {
                        crate::topic::metric_sample(&resp.text, "mom_leader", &[]) == Some(1.0)
                    }
                    _ => false,
                }
            });
            let leads = futures::future::join_all(scrapes).await;
            if leads.iter().any(|l| *l) {
                let state = ZkState::read(&zk, &root).await.ok();
                let claims = leads
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| **l)
                    .map(|(node, _)| {
                        let id = node_id(node);
                        let epoch = state.as_ref().and_then(|s| s.epoch_of(&id));
                        (id, epoch)
                    })
                    .collect();
                self.history.push("sampler", None, start, Op::Leaders { claims }, Outcome::Ok);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The node id of broker slot `k`.
pub fn node_id(k: usize) -> String {
    format!("node-{}", k + 1)
}

/// The deliveries and receipts of a receive's answer, or `None` if it is malformed.
fn parse_messages(json: &Value) -> Option<(Vec<Delivery>, Vec<String>)> {
    let mut got = Vec::new();
    let mut receipts = Vec::new();
    for m in json["messages"].as_array()? {
        got.push(Delivery {
            id: m["id"].as_str()?.to_string(),
            body: m["body"].as_str()?.to_string(),
            receive_count: m["receive_count"].as_u64()?,
        });
        receipts.push(m["receipt"].as_str()?.to_string());
    }
    Some((got, receipts))
}
