//! Metadata in ZooKeeper, served from an in-memory cache that watches keep fresh.
//!
//! Layout under the root (`--zk-root`): `queues/NAME` (JSON [`QueueMeta`]), `topics/NAME`,
//! `subscriptions/TOPIC.NAME`, `users/NAME`, `nodes/ID` (ephemeral
//! [`NodeRecord`]), `leader/n-SEQ` (ephemeral sequential; the lowest is the leader), `secrets/...`.
//! Reads never go to ZooKeeper on the data path: a ZooKeeper outage stops metadata writes (answered
//! `unavailable`), not sends and receives. Writes go to ZooKeeper first (conditional create,
//! versioned set) and then into this node's cache, so the answering node sees them at once and the
//! others within a watch round trip.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use zookeeper_client as zk;

use crate::error::{Error, Result};
use crate::model::{QueueConfig, SubscriptionConfig, TopicConfig};
use crate::receipt::ReceiptKey;

/// A queue's definition as stored in ZooKeeper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueMeta {
    #[serde(flatten)]
    pub config: QueueConfig,
    pub owner: String,
    pub created_at: String,
    /// Per-user rights on a `restricted` queue.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub grants: BTreeMap<String, Grant>,
}

/// A topic's definition as stored in ZooKeeper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMeta {
    #[serde(flatten)]
    pub config: TopicConfig,
    pub owner: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub grants: BTreeMap<String, Grant>,
}

/// A subscription's definition, stored as `subscriptions/TOPIC.NAME` (names cannot hold '.').
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionMeta {
    pub topic: String,
    pub name: String,
    #[serde(flatten)]
    pub config: SubscriptionConfig,
    /// The start point as given at creation.
    pub start: serde_json::Value,
    pub owner: String,
    pub created_at: String,
}

impl SubscriptionMeta {
    pub fn key(topic: &str, name: &str) -> String {
        format!("{topic}.{name}")
    }
}

/// What a grantee may do on a restricted queue or topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub struct Grant {
    #[serde(default)]
    pub publish: bool,
    #[serde(default)]
    pub consume: bool,
}

/// A user as stored in ZooKeeper. The znode's data version is the user's token generation: a
/// password change or role change bumps it, and tokens minted under an older one stop working.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub role: Role,
    /// argon2id, PHC string format.
    pub password_hash: String,
    pub created_at: String,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord").field("role", &self.role).field("created_at", &self.created_at).finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

/// A live broker node, as registered in `nodes/ID`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeRecord {
    pub id: String,
    pub address: String,
    pub version: String,
    pub started_at: String,
}

/// Which write of which znode a cached record came from: the data version, and the zxid that
/// created the znode (so a znode deleted and created again never looks like the old one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub version: i32,
    pub czxid: i64,
}

impl Stamp {
    fn of(stat: &zk::Stat) -> Self {
        Stamp { version: stat.version, czxid: stat.czxid }
    }
}

/// A cached record with its stamp.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub stamp: Stamp,
}

type Slot<T> = BTreeMap<String, Versioned<T>>;

#[derive(Default)]
pub struct Cache {
    queues: Slot<QueueMeta>,
    topics: Slot<TopicMeta>,
    subscriptions: Slot<SubscriptionMeta>,
    users: Slot<UserRecord>,
    access_keys: Slot<AccessKeyRecord>,
    nodes: Slot<NodeRecord>,
    /// Leader candidates by sequence znode name, with the node id each holds.
    candidates: BTreeMap<String, String>,
}

/// Implements [`Record`] for a type kept in directory `$dir` and cache slot `$slot`.
macro_rules! record {
    ($t:ty, $dir:literal, $slot:ident, |$name:ident| $not_found:expr) => {
        impl Record for $t {
            const DIR: &'static str = $dir;
            fn slot(c: &Cache) -> &Slot<Self> {
                &c.$slot
            }
            fn slot_mut(c: &mut Cache) -> &mut Slot<Self> {
                &mut c.$slot
            }
            fn not_found($name: &str) -> Error {
                $not_found
            }
        }
    };
}

/// A kind of record kept as JSON in one ZooKeeper directory and mirrored in the cache.
pub trait Record: Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static {
    const DIR: &'static str;
    fn slot(cache: &Cache) -> &Slot<Self>;
    fn slot_mut(cache: &mut Cache) -> &mut Slot<Self>;
    /// The error for a missing record of this kind.
    fn not_found(name: &str) -> Error;
}

record!(QueueMeta, "queues", queues, |name| Error::QueueNotFound(name.to_string()));

record!(TopicMeta, "topics", topics, |name| Error::TopicNotFound(name.to_string()));

record!(SubscriptionMeta, "subscriptions", subscriptions, |key| Error::SubscriptionNotFound(
    key.replacen('.', "/", 1)
));

/// An access key for the SQS endpoint's Signature V4, stored as `access-keys/ID`. The secret
/// is kept encrypted with the cluster's vault key: verifying a signature needs it in clear.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    pub user: String,
    /// AES-256-GCM: base64 of nonce || ciphertext.
    pub secret_sealed: String,
    pub created_at: String,
}

impl std::fmt::Debug for AccessKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeyRecord")
            .field("user", &self.user)
            .field("created_at", &self.created_at)
            .finish()
    }
}

record!(AccessKeyRecord, "access-keys", access_keys, |name| Error::NotFound(format!(
    "access key '{name}' does not exist"
)));

record!(UserRecord, "users", users, |name| Error::UserNotFound(name.to_string()));

record!(NodeRecord, "nodes", nodes, |name| Error::NotFound(format!("node '{name}' is not registered")));

/// Why a session ended.
enum End {
    Stop,
    Lost,
}

/// Why this node read all of its metadata from ZooKeeper again (`mom_metadata_resyncs_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resync {
    /// A new session (the first, or after the last one expired).
    Session,
    /// The connection came back within the session: events of the outage may be lost
    /// (ZOOKEEPER-4698), and zookeeper-client does not re-add a persistent watch on its own.
    Reconnect,
    /// The periodic check found the cache behind ZooKeeper (a lost watch, a missed event).
    Drift,
}

impl Resync {
    pub const ALL: [Resync; 3] = [Resync::Session, Resync::Reconnect, Resync::Drift];

    pub fn label(self) -> &'static str {
        match self {
            Resync::Session => "session",
            Resync::Reconnect => "reconnect",
            Resync::Drift => "drift",
        }
    }
}

/// How often a node compares its cache with a summary of ZooKeeper (three small reads): the
/// revision counter every metadata write bumps, and the members and leader candidates.
const DRIFT_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The znode every metadata write bumps in the same transaction (`multi`), so one read of its
/// version tells whether this node's cache saw every write.
const REVISION: &str = "revision";

/// What the drift check compares: the revision, and the two directories of ephemeral znodes
/// (sessions that end delete them without a write of ours).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    revision: i32,
    nodes: BTreeSet<String>,
    candidates: BTreeSet<String>,
}

pub struct Meta {
    connect: String,
    root: String,
    session_timeout: Duration,
    op_timeout: Duration,
    client: RwLock<Option<zk::Client>>,
    cache: RwLock<Cache>,
    loaded: AtomicBool,
    secrets: RwLock<Option<Secrets>>,
    node: NodeRecord,
    /// Cleared on drain: the node must not come back after it deregistered.
    register: AtomicBool,
    my_candidate: RwLock<Option<String>>,
    /// A token-signing key given by the operator (`MOM_JWT_SECRET`) instead of the shared one.
    jwt_override: Option<Vec<u8>>,
    /// Digest credential `user:password` (`MOM_ZK_AUTH`): with it, every znode is created for
    /// this identity alone ([`Meta::acls`]).
    auth: Option<Vec<u8>>,
    /// The newest version of the revision znode this cache is known to include.
    seen_revision: AtomicI32,
    /// True from the moment the connection drops until the cache was reloaded after it came
    /// back: while disconnected the cache serves as it is, once connected again requests wait
    /// for the reload ([`Meta::current`]).
    stale: tokio::sync::watch::Sender<bool>,
    /// `mom_metadata_resyncs_total`, by [`Resync`] cause.
    resyncs: Option<prometheus::IntCounterVec>,
}

/// The directories under the root, each created on start.
const DIRS: [&str; 8] = [
    QueueMeta::DIR,
    TopicMeta::DIR,
    SubscriptionMeta::DIR,
    UserRecord::DIR,
    AccessKeyRecord::DIR,
    NodeRecord::DIR,
    "leader",
    "secrets",
];

/// Whether an ACL lets anyone at all in (`world:anyone`), as znodes made without a credential do.
fn is_open(acl: &[zk::Acl]) -> bool {
    acl.iter().any(|a| a.scheme() == "world" && a.id() == "anyone")
}

/// Keys every node of a cluster shares, generated once and kept in ZooKeeper.
#[derive(Clone)]
pub struct Secrets {
    pub receipt: ReceiptKey,
    pub jwt: Vec<u8>,
    /// Encrypts secrets the broker must be able to read back (SQS access keys' secrets).
    pub vault: Vec<u8>,
}

fn zk_unavailable(e: impl std::fmt::Display) -> Error {
    tracing::warn!(error = %e, "zookeeper request failed");
    Error::Unavailable("the metadata store is unavailable; retry shortly".into())
}

impl Meta {
    pub fn new(connect: &str, root: &str, session_timeout: Duration, node: NodeRecord) -> Self {
        Meta {
            connect: connect.to_string(),
            root: root.trim_end_matches('/').to_string(),
            session_timeout,
            op_timeout: Duration::from_secs(5),
            client: RwLock::new(None),
            cache: RwLock::new(Cache::default()),
            loaded: AtomicBool::new(false),
            secrets: RwLock::new(None),
            jwt_override: None,
            auth: None,
            node,
            register: AtomicBool::new(true),
            my_candidate: RwLock::new(None),
            seen_revision: AtomicI32::new(-1),
            stale: tokio::sync::watch::Sender::new(false),
            resyncs: None,
        }
    }

    /// Counts each full reload in `counter` (`mom_metadata_resyncs_total{cause}`).
    pub fn with_resync_counter(mut self, counter: prometheus::IntCounterVec) -> Self {
        self.resyncs = Some(counter);
        self
    }

    /// Waits, when the connection to ZooKeeper has just come back, until this node's cache caught
    /// up (bounded by the operation timeout): what changed elsewhere during the outage (a user
    /// deleted, a queue dropped) must not be served from the cache once the node could know
    /// better. While disconnected it returns at once: the data path keeps serving the cache.
    /// Every front door calls it before it authenticates a request.
    pub async fn current(&self) {
        if !*self.stale.borrow() || self.client().is_err() {
            return;
        }
        let mut caught_up = self.stale.subscribe();
        let _ = tokio::time::timeout(self.op_timeout, caught_up.wait_for(|stale| !*stale)).await;
    }

    /// True once queues and secrets were loaded at least once.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Relaxed)
    }

    pub fn node(&self) -> &NodeRecord {
        &self.node
    }

    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.root)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A cached record.
    pub fn get<T: Record>(&self, name: &str) -> Option<T> {
        T::slot(&self.read()).get(name).map(|v| v.value.clone())
    }

    /// A record from the cache or, when the cache lacks it and ZooKeeper answers, from ZooKeeper
    /// (after a `sync`, so a record just created through another node is found at once). Hits
    /// never leave the process; only misses pay a round trip.
    pub async fn fetch<T: Record>(&self, name: &str) -> Option<T> {
        self.fetch_versioned(name).await.map(|v| v.value)
    }

    /// [`Meta::fetch`] with the record's stamp (its incarnation is the znode's `czxid`).
    pub async fn fetch_versioned<T: Record>(&self, name: &str) -> Option<Versioned<T>> {
        if let Some(v) = self.get_versioned(name) {
            return Some(v);
        }
        let client = self.client().ok()?;
        let path = self.record_path::<T>(name);
        self.bounded(client.sync(&path)).await.ok()?;
        let (data, stat) = self.bounded(client.get_data(&path)).await.ok()?;
        let value: T = serde_json::from_slice(&data).ok()?;
        let stamp = Stamp::of(&stat);
        self.cache_put(name, value.clone(), stamp);
        Some(Versioned { value, stamp })
    }

    /// A user's token generation and role, without copying the record (checked per request).
    pub fn user_generation(&self, name: &str) -> Option<(Stamp, Role)> {
        self.read().users.get(name).map(|u| (u.stamp, u.value.role))
    }

    /// A cached record with its version.
    pub fn get_versioned<T: Record>(&self, name: &str) -> Option<Versioned<T>> {
        T::slot(&self.read()).get(name).cloned()
    }

    /// Every cached record of a kind, by name.
    pub fn list<T: Record>(&self) -> Vec<(String, T)> {
        T::slot(&self.read()).iter().map(|(k, v)| (k.clone(), v.value.clone())).collect()
    }

    pub fn queue(&self, name: &str) -> Option<QueueMeta> {
        self.get(name)
    }

    pub fn nodes(&self) -> Vec<NodeRecord> {
        self.list::<NodeRecord>().into_iter().map(|(_, n)| n).collect()
    }

    /// The id of the node holding the lowest leader znode.
    pub fn leader(&self) -> Option<String> {
        self.read().candidates.values().next().cloned()
    }

    /// This node's fencing token while it holds the lowest leader znode of a live session: the
    /// znode's sequence number, which only grows across leaders. A suspended session counts as
    /// lost leadership.
    pub fn leadership(&self) -> Option<u64> {
        let mine = self.my_candidate.read().unwrap_or_else(|e| e.into_inner()).clone()?;
        self.client().ok()?;
        // Reconnected but not caught up: the candidates (and what the leader would act on) may
        // be stale.
        if *self.stale.borrow() {
            return None;
        }
        if self.read().candidates.keys().next() != Some(&mine) {
            return None;
        }
        mine.strip_prefix("n-").and_then(|n| n.parse().ok())
    }

    /// The cluster's shared keys, once loaded.
    pub fn secrets(&self) -> Result<Secrets> {
        self.secrets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Error::Unavailable("the broker has not loaded its metadata yet".into()))
    }

    pub fn receipt_key(&self) -> Result<ReceiptKey> {
        self.secrets().map(|s| s.receipt)
    }

    /// Uses `secret` to sign tokens instead of the key shared through ZooKeeper.
    pub fn with_jwt_secret(mut self, secret: Option<Vec<u8>>) -> Self {
        self.jwt_override = secret;
        self
    }

    /// Authenticates the session with a ZooKeeper digest credential (`user:password`).
    pub fn with_auth(mut self, auth: Option<String>) -> Self {
        self.auth = auth.map(String::into_bytes);
        self
    }

    /// The ACL of every znode this broker creates: with a credential, all rights to the
    /// identity that created it (every broker of the cluster shares the credential) and none to
    /// anyone else, since `secrets/` holds the keys that sign tokens and receipts; without one,
    /// open (a development setup with ZooKeeper on loopback).
    fn acls(&self) -> zk::Acls<'static> {
        if self.auth.is_some() {
            zk::Acls::creator_all()
        } else {
            zk::Acls::anyone_all()
        }
    }

    /// A connected client, or `unavailable`: metadata writes need a live session.
    fn client(&self) -> Result<zk::Client> {
        let guard = self.client.read().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(c) if c.state() == zk::SessionState::SyncConnected => Ok(c.clone()),
            _ => Err(Error::Unavailable("the metadata store is unavailable; retry shortly".into())),
        }
    }

    /// Bounds a ZooKeeper call, so a hung connection answers `unavailable` instead of hanging.
    async fn bounded<T>(&self, f: impl Future<Output = Result<T, zk::Error>>) -> Result<T, zk::Error> {
        tokio::time::timeout(self.op_timeout, f).await.unwrap_or(Err(zk::Error::Timeout))
    }

    fn record_path<T: Record>(&self, name: &str) -> String {
        self.path(&format!("{}/{name}", T::DIR))
    }

    fn cache_put<T: Record>(&self, name: &str, value: T, stamp: Stamp) {
        T::slot_mut(&mut self.write()).insert(name.to_string(), Versioned { value, stamp });
    }

    /// Creates a record with a conditional create, so two nodes racing on one name make one.
    /// `Ok(true)`: created; `Ok(false)`: it existed and `same` says the existing one matches;
    /// otherwise 409 `already_exists`.
    pub async fn create<T: Record>(
        &self,
        name: &str,
        value: T,
        same: impl Fn(&T, &T) -> bool,
    ) -> Result<bool> {
        let client = self.client()?;
        let path = self.record_path::<T>(name);
        let data = serde_json::to_vec(&value).map_err(|e| Error::invalid(e.to_string()))?;
        let opts = zk::CreateMode::Persistent.with_acls(self.acls());
        match self.transact(&client, |w| w.add_create(&path, &data, &opts)).await {
            Ok(results) => {
                let stat = match results.into_iter().next() {
                    Some(zk::MultiWriteResult::Create { stat, .. }) if !stat.is_invalid() => stat,
                    // ZOOKEEPER-4026: a create inside a multi may come back without its stat.
                    _ => self.bounded(client.get_data(&path)).await.map_err(zk_unavailable)?.1,
                };
                self.cache_put(name, value, Stamp::of(&stat));
                Ok(true)
            }
            Err(zk::Error::NodeExists) => {
                let (data, stat) = self.bounded(client.get_data(&path)).await.map_err(zk_unavailable)?;
                let existing: T = serde_json::from_slice(&data).map_err(zk_unavailable)?;
                let matches = same(&existing, &value);
                self.cache_put(name, existing, Stamp::of(&stat));
                if matches {
                    Ok(false)
                } else {
                    Err(Error::AlreadyExists(format!(
                        "{} '{name}' exists with a different configuration",
                        T::DIR.trim_end_matches('s')
                    )))
                }
            }
            Err(e) => Err(zk_unavailable(e)),
        }
    }

    /// Changes a record with a versioned write, retrying when another writer got there first.
    pub async fn update<T: Record>(&self, name: &str, change: impl Fn(T) -> Result<T>) -> Result<T> {
        let client = self.client()?;
        let path = self.record_path::<T>(name);
        for _ in 0..10 {
            let (data, stat) = match self.bounded(client.get_data(&path)).await {
                Ok(v) => v,
                Err(zk::Error::NoNode) => return Err(T::not_found(name)),
                Err(e) => return Err(zk_unavailable(e)),
            };
            let current: T = serde_json::from_slice(&data).map_err(zk_unavailable)?;
            let next = change(current)?;
            let data = serde_json::to_vec(&next).map_err(|e| Error::invalid(e.to_string()))?;
            match self.transact(&client, |w| w.add_set_data(&path, &data, Some(stat.version))).await {
                Ok(results) => {
                    let stamp = match results.into_iter().next() {
                        Some(zk::MultiWriteResult::SetData { stat }) => Stamp::of(&stat),
                        _ => Stamp { version: stat.version + 1, czxid: stat.czxid },
                    };
                    self.cache_put(name, next.clone(), stamp);
                    return Ok(next);
                }
                Err(zk::Error::BadVersion) => continue,
                Err(zk::Error::NoNode) => return Err(T::not_found(name)),
                Err(e) => return Err(zk_unavailable(e)),
            }
        }
        Err(Error::Unavailable("too many concurrent changes; retry".into()))
    }

    /// Deletes a record; a missing one is the kind's 404. Returns the deleted record's stamp (its
    /// `czxid` names the incarnation whose messages the caller then drops).
    pub async fn delete<T: Record>(&self, name: &str) -> Result<Stamp> {
        let client = self.client()?;
        let path = self.record_path::<T>(name);
        for _ in 0..10 {
            let stat = match self.bounded(client.check_stat(&path)).await {
                Ok(Some(stat)) => stat,
                Ok(None) => {
                    T::slot_mut(&mut self.write()).remove(name);
                    return Err(T::not_found(name));
                }
                Err(e) => return Err(zk_unavailable(e)),
            };
            match self.transact(&client, |w| w.add_delete(&path, Some(stat.version))).await {
                Ok(_) => {
                    T::slot_mut(&mut self.write()).remove(name);
                    return Ok(Stamp::of(&stat));
                }
                // Changed (or deleted and created again) since the stat: look again.
                Err(zk::Error::BadVersion | zk::Error::NoNode) => continue,
                Err(e) => return Err(zk_unavailable(e)),
            }
        }
        Err(Error::Unavailable("too many concurrent changes; retry".into()))
    }

    /// Runs the write `op` adds and the bump of the revision znode as one transaction, so the
    /// revision's version counts every metadata write (the drift check reads it). The error is
    /// the first failing operation's.
    async fn transact(
        &self,
        client: &zk::Client,
        op: impl FnOnce(&mut zk::MultiWriter<'_>) -> Result<(), zk::Error>,
    ) -> Result<Vec<zk::MultiWriteResult>, zk::Error> {
        let mut writer = client.new_multi_writer();
        op(&mut writer)?;
        writer.add_set_data(&self.path(REVISION), b"", None)?;
        self.bounded(async { writer.commit().await.map_err(zk::Error::from) }).await
    }

    /// Removes this node from the cluster (drain). It will not register again.
    pub async fn deregister(&self) {
        self.register.store(false, Ordering::Relaxed);
        let Ok(client) = self.client() else { return };
        let _ = self.bounded(client.delete(&self.path(&format!("nodes/{}", self.node.id)), None)).await;
        let mine = self.my_candidate.write().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(c) = mine {
            let _ = self.bounded(client.delete(&self.path(&format!("leader/{c}")), None)).await;
        }
    }

    /// Keeps a session, the cache and this node's registration alive until `stop`.
    pub async fn run(&self, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !stop.is_cancelled() {
            let mut connector = zk::Client::connector()
                .with_session_timeout(self.session_timeout)
                .with_connection_timeout(Duration::from_secs(2))
                .with_fail_eagerly();
            if let Some(auth) = &self.auth {
                // Sent again on every reconnect of the session.
                connector = connector.with_auth("digest", auth);
            }
            let connecting = connector.connect(&self.connect);
            let client = tokio::select! {
                c = connecting => c,
                _ = stop.cancelled() => return,
            };
            match client {
                Ok(client) => {
                    backoff = Duration::from_millis(100);
                    *self.client.write().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());
                    let end = self.session(&client, &stop).await;
                    *self.client.write().unwrap_or_else(|e| e.into_inner()) = None;
                    *self.my_candidate.write().unwrap_or_else(|e| e.into_inner()) = None;
                    if let End::Stop = end {
                        return;
                    }
                    tracing::warn!("zookeeper session lost; reconnecting");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "zookeeper not reachable; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// One session: prepare the tree, load everything, register, then follow the watch. Every
    /// reconnect within the session re-arms the watch and reloads, and a check every
    /// [`DRIFT_CHECK_EVERY`] repairs whatever a lost event left behind.
    async fn session(&self, client: &zk::Client, stop: &CancellationToken) -> End {
        let resumed = self.is_loaded();
        let mut watcher = loop {
            match self.prepare(client).await {
                Ok(w) => break w,
                Err(e) => {
                    tracing::warn!(error = %e, "zookeeper setup failed; retrying");
                    if client.state().is_terminated() {
                        return End::Lost;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = stop.cancelled() => return End::Stop,
                    }
                }
            }
        };
        if resumed {
            self.count(Resync::Session);
            tracing::info!("zookeeper session replaced; metadata reloaded");
        }
        self.stale.send_replace(false);
        let mut check = tokio::time::interval(DRIFT_CHECK_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // What the previous check saw in ZooKeeper while the cache differed from it.
        let mut suspect: Option<Summary> = None;
        // Set when re-arming after a reconnect failed: the next check tries again.
        let mut rearm = false;
        loop {
            tokio::select! {
                event = watcher.changed() => match (event.event_type, event.session_state) {
                    (zk::EventType::Session, zk::SessionState::Disconnected) => {
                        self.stale.send_replace(true);
                        tracing::warn!("zookeeper connection lost; serving metadata from the cache");
                    }
                    (zk::EventType::Session, zk::SessionState::SyncConnected) => {
                        rearm = !self.resync(client, &mut watcher, Resync::Reconnect).await;
                    }
                    (zk::EventType::Session, s) if s.is_terminated() => return End::Lost,
                    (zk::EventType::Session, _) => {}
                    _ => {
                        if let Err(e) = self.refresh(client, &event.path).await {
                            tracing::warn!(error = %e, path = %event.path, "zookeeper refresh failed");
                        }
                    }
                },
                _ = check.tick() => {
                    if rearm {
                        rearm = !self.resync(client, &mut watcher, Resync::Reconnect).await;
                    } else if let Some(cause) = self.check_drift(client, &mut suspect).await {
                        rearm = !self.resync(client, &mut watcher, cause).await;
                    }
                }
                _ = stop.cancelled() => return End::Stop,
            }
        }
    }

    /// Re-arms the watch (a new one replaces `watcher`: the client does not re-add persistent
    /// watches after a reconnect) and then reloads everything, so no change falls between the
    /// two. False when ZooKeeper did not answer; the caller tries again.
    async fn resync(&self, client: &zk::Client, watcher: &mut zk::PersistentWatcher, cause: Resync) -> bool {
        if client.state() != zk::SessionState::SyncConnected {
            return false;
        }
        match self.bounded(client.watch(&self.root, zk::AddWatchMode::PersistentRecursive)).await {
            // The old watcher goes after the new one is registered, so dropping it removes
            // nothing on the server (both watch the same path in the same mode).
            Ok(fresh) => *watcher = fresh,
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-arm the zookeeper watch; retrying");
                return false;
            }
        }
        let reloaded = async {
            if self.register.load(Ordering::Relaxed) {
                self.ensure_registered(client).await?;
            }
            self.reload(client).await
        };
        match reloaded.await {
            Ok(()) => {
                self.stale.send_replace(false);
                self.count(cause);
                tracing::info!(cause = cause.label(), "metadata reloaded from zookeeper");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, cause = cause.label(), "zookeeper reload failed; retrying");
                false
            }
        }
    }

    fn count(&self, cause: Resync) {
        if let Some(c) = &self.resyncs {
            c.with_label_values(&[cause.label()]).inc();
        }
    }

    /// Compares the cache with a summary of ZooKeeper. A difference is only drift when it was
    /// already there one check ago and the events that would have closed it never came (on a
    /// healthy watch they arrive within milliseconds).
    async fn check_drift(&self, client: &zk::Client, suspect: &mut Option<Summary>) -> Option<Resync> {
        let remote = match self.summary(client).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "drift check skipped");
                return None;
            }
        };
        let local = self.local_summary();
        let behind = |r: &Summary| {
            local.revision < r.revision || local.nodes != r.nodes || local.candidates != r.candidates
        };
        let drifted = match suspect.take() {
            Some(earlier) => behind(&earlier) && behind(&remote),
            None => false,
        };
        if drifted {
            tracing::warn!(?local, ?remote, "metadata cache drifted from zookeeper; reloading");
            return Some(Resync::Drift);
        }
        if behind(&remote) {
            *suspect = Some(remote);
        }
        None
    }

    async fn summary(&self, client: &zk::Client) -> Result<Summary, zk::Error> {
        let revision = self.bounded(client.check_stat(&self.path(REVISION))).await?.map_or(-1, |s| s.version);
        let nodes = self.bounded(client.list_children(&self.path(NodeRecord::DIR))).await?;
        let candidates = self.bounded(client.list_children(&self.path("leader"))).await?;
        Ok(Summary {
            revision,
            nodes: nodes.into_iter().collect(),
            candidates: candidates.into_iter().collect(),
        })
    }

    fn local_summary(&self) -> Summary {
        let cache = self.read();
        Summary {
            revision: self.seen_revision.load(Ordering::Relaxed),
            nodes: cache.nodes.keys().cloned().collect(),
            candidates: cache.candidates.keys().cloned().collect(),
        }
    }

    async fn prepare(&self, client: &zk::Client) -> Result<zk::PersistentWatcher, zk::Error> {
        let dir = zk::CreateMode::Persistent.with_acls(self.acls());
        for d in DIRS {
            self.bounded(client.mkdir(&self.path(d), &dir)).await?;
        }
        match self.bounded(client.create(&self.path(REVISION), b"", &dir)).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(e) => return Err(e),
        }
        if self.auth.is_some() {
            self.protect(client).await?;
        }
        let watcher = self.bounded(client.watch(&self.root, zk::AddWatchMode::PersistentRecursive)).await?;
        self.load_secrets(client).await?;
        if self.register.load(Ordering::Relaxed) {
            self.register_node(client).await?;
        }
        self.reload(client).await?;
        self.loaded.store(true, Ordering::Relaxed);
        Ok(watcher)
    }

    /// Takes over a tree an older broker (or one without `MOM_ZK_AUTH`) left open to anyone:
    /// every znode gets this credential's ACL, the root last, so a root that is no longer open
    /// means an earlier walk finished and the check costs one read. A tree that belongs to
    /// another credential answers `NoAuth` here, and the broker keeps retrying (and saying so)
    /// rather than run without its metadata.
    async fn protect(&self, client: &zk::Client) -> Result<(), zk::Error> {
        let (acl, _) = self.bounded(client.get_acl(&self.root)).await?;
        if !is_open(&acl) {
            return Ok(());
        }
        tracing::info!(root = %self.root, "restricting znodes created without a credential to this cluster's");
        let acls = self.acls();
        for d in DIRS {
            let dir = self.path(d);
            for child in self.bounded(client.list_children(&dir)).await? {
                match self.bounded(client.set_acl(&format!("{dir}/{child}"), &acls, None)).await {
                    Ok(_) | Err(zk::Error::NoNode) => {}
                    Err(e) => return Err(e),
                }
            }
            self.bounded(client.set_acl(&dir, &acls, None)).await?;
        }
        self.bounded(client.set_acl(&self.root, &acls, None)).await?;
        Ok(())
    }

    /// Reads a 32-byte secret, creating it first if this is the cluster's first node.
    async fn load_secret(&self, client: &zk::Client, name: &str) -> Result<Vec<u8>, zk::Error> {
        let path = self.path(&format!("secrets/{name}"));
        let fresh: [u8; 32] = rand::random();
        let opts = zk::CreateMode::Persistent.with_acls(self.acls());
        match self.bounded(client.create(&path, &fresh, &opts)).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(e) => return Err(e),
        }
        Ok(self.bounded(client.get_data(&path)).await?.0)
    }

    async fn load_secrets(&self, client: &zk::Client) -> Result<(), zk::Error> {
        let receipt = ReceiptKey::new(&self.load_secret(client, "receipt-key").await?);
        let jwt = match &self.jwt_override {
            Some(s) => s.clone(),
            None => self.load_secret(client, "jwt-key").await?,
        };
        let vault = self.load_secret(client, "vault-key").await?;
        *self.secrets.write().unwrap_or_else(|e| e.into_inner()) = Some(Secrets { receipt, jwt, vault });
        Ok(())
    }

    /// Registers this node (`nodes/ID`) and enters the leader election with a fresh candidate
    /// (dropping a candidate of its own left from before).
    async fn register_node(&self, client: &zk::Client) -> Result<(), zk::Error> {
        let path = self.path(&format!("nodes/{}", self.node.id));
        let data = serde_json::to_vec(&self.node).unwrap_or_default();
        let eph = zk::CreateMode::Ephemeral.with_acls(self.acls());
        // A node restarted under the same id may find its previous session's znode still there.
        match self.bounded(client.create(&path, &data, &eph)).await {
            Err(zk::Error::NodeExists) => {
                let _ = self.bounded(client.delete(&path, None)).await;
                self.bounded(client.create(&path, &data, &eph)).await?;
            }
            other => {
                other?;
            }
        }
        let old = self.my_candidate.write().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(c) = old {
            match self.bounded(client.delete(&self.path(&format!("leader/{c}")), None)).await {
                Ok(()) | Err(zk::Error::NoNode) => {}
                Err(e) => return Err(e),
            }
        }
        let seq = zk::CreateMode::EphemeralSequential.with_acls(self.acls());
        let (_, n) =
            self.bounded(client.create(&self.path("leader/n-"), self.node.id.as_bytes(), &seq)).await?;
        *self.my_candidate.write().unwrap_or_else(|e| e.into_inner()) = Some(format!("n-{n}"));
        Ok(())
    }

    /// After a reconnect: registers again if this node's znodes are gone (they should outlive a
    /// reconnect within the session; this makes sure).
    async fn ensure_registered(&self, client: &zk::Client) -> Result<(), zk::Error> {
        let node = self.bounded(client.check_stat(&self.path(&format!("nodes/{}", self.node.id)))).await?;
        let mine = self.my_candidate.read().unwrap_or_else(|e| e.into_inner()).clone();
        let candidate = match mine {
            Some(c) => self.bounded(client.check_stat(&self.path(&format!("leader/{c}")))).await?,
            None => None,
        };
        if node.is_none() || candidate.is_none() {
            tracing::warn!("this node's registration was gone after a reconnect; registering again");
            self.register_node(client).await?;
        }
        Ok(())
    }

    /// Reads every record and leader candidate afresh.
    async fn reload(&self, client: &zk::Client) -> Result<(), zk::Error> {
        // Read first: what follows includes at least every write up to this revision.
        let revision = self.bounded(client.check_stat(&self.path(REVISION))).await?.map_or(-1, |s| s.version);
        let queues = self.read_dir(client, QueueMeta::DIR).await?;
        let topics = self.read_dir(client, TopicMeta::DIR).await?;
        let subscriptions = self.read_dir(client, SubscriptionMeta::DIR).await?;
        let users = self.read_dir(client, UserRecord::DIR).await?;
        let access_keys = self.read_dir(client, AccessKeyRecord::DIR).await?;
        let nodes = self.read_dir(client, NodeRecord::DIR).await?;
        let candidates = self.read_dir(client, "leader").await?;
        let mut cache = self.write();
        cache.queues = parse_all(queues);
        cache.topics = parse_all(topics);
        cache.subscriptions = parse_all(subscriptions);
        cache.users = parse_all(users);
        cache.access_keys = parse_all(access_keys);
        cache.nodes = parse_all(nodes);
        cache.candidates =
            candidates.into_iter().map(|(k, v, _)| (k, String::from_utf8_lossy(&v).into_owned())).collect();
        self.seen_revision.store(revision, Ordering::Relaxed);
        Ok(())
    }

    async fn read_dir(
        &self,
        client: &zk::Client,
        dir: &str,
    ) -> Result<Vec<(String, Vec<u8>, Stamp)>, zk::Error> {
        let path = self.path(dir);
        let children = self.bounded(client.list_children(&path)).await?;
        let mut out = Vec::with_capacity(children.len());
        for child in children {
            match self.bounded(client.get_data(&format!("{path}/{child}"))).await {
                Ok((data, stat)) => out.push((child, data, Stamp::of(&stat))),
                Err(zk::Error::NoNode) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Applies one watch event: re-reads the znode at `path`, or forgets it when it is gone.
    async fn refresh(&self, client: &zk::Client, path: &str) -> Result<(), zk::Error> {
        let Some(rel) = path.strip_prefix(&self.root).and_then(|p| p.strip_prefix('/')) else {
            return Ok(());
        };
        if rel == REVISION {
            // Events come in order: the record changes of this revision were applied before it.
            if let Some(stat) = self.bounded(client.check_stat(path)).await? {
                self.seen_revision.fetch_max(stat.version, Ordering::Relaxed);
            }
            return Ok(());
        }
        let Some((dir, name)) = rel.split_once('/') else { return Ok(()) };
        if name.contains('/') {
            return Ok(());
        }
        let data = match self.bounded(client.get_data(path)).await {
            Ok((data, stat)) => Some((data, Stamp::of(&stat))),
            Err(zk::Error::NoNode) => None,
            Err(e) => return Err(e),
        };
        let mut cache = self.write();
        match dir {
            QueueMeta::DIR => apply(&mut cache.queues, name, data),
            TopicMeta::DIR => apply(&mut cache.topics, name, data),
            SubscriptionMeta::DIR => apply(&mut cache.subscriptions, name, data),
            UserRecord::DIR => apply(&mut cache.users, name, data),
            AccessKeyRecord::DIR => apply(&mut cache.access_keys, name, data),
            NodeRecord::DIR => apply(&mut cache.nodes, name, data),
            "leader" => match data {
                Some((d, _)) => {
                    cache.candidates.insert(name.to_string(), String::from_utf8_lossy(&d).into_owned());
                }
                None => {
                    cache.candidates.remove(name);
                }
            },
            _ => {}
        }
        Ok(())
    }
}

/// Puts a re-read znode into its slot, or removes it when it is gone.
fn apply<T: serde::de::DeserializeOwned>(slot: &mut Slot<T>, name: &str, data: Option<(Vec<u8>, Stamp)>) {
    match data {
        Some((d, stamp)) => insert_parsed(slot, name.to_string(), &d, stamp),
        None => {
            slot.remove(name);
        }
    }
}

fn insert_parsed<T: serde::de::DeserializeOwned>(
    slot: &mut Slot<T>,
    name: String,
    data: &[u8],
    stamp: Stamp,
) {
    match serde_json::from_slice(data) {
        Ok(value) => {
            slot.insert(name, Versioned { value, stamp });
        }
        Err(e) => tracing::warn!(error = %e, %name, "ignoring unreadable znode"),
    }
}

fn parse_all<T: serde::de::DeserializeOwned>(entries: Vec<(String, Vec<u8>, Stamp)>) -> Slot<T> {
    let mut slot = BTreeMap::new();
    for (name, data, stamp) in entries {
        insert_parsed(&mut slot, name, &data, stamp);
    }
    slot
}
