//! Metadata in ZooKeeper, served from an in-memory cache that watches keep fresh.
//!
//! Layout under the root (`--zk-root`): `queues/NAME` (JSON [`QueueMeta`]), `topics/NAME`,
//! `subscriptions/TOPIC.NAME`, `users/NAME`, `nodes/ID` (ephemeral
//! [`NodeRecord`]), `leader/n-SEQ` (ephemeral sequential; the lowest is the leader), `secrets/...`,
//! `revision` (bumped by every metadata write).
//! Reads never go to ZooKeeper on the data path: a ZooKeeper outage stops metadata writes (answered
//! `unavailable`), not sends and receives. Writes go to ZooKeeper first (conditional create,
//! versioned set) and then into this node's cache, so the answering node sees them at once and the
//! others within a watch round trip.
//!
//! `records.rs`: what is stored (the record types and the cache); this file: the API the broker
//! uses (reads from the cache, writes to ZooKeeper); `sync.rs`: keeping the cache equal to
//! ZooKeeper through every fault (the session, the watch, reloads, the drift check).

mod records;
mod sync;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use zookeeper_client as zk;

use crate::error::{Error, Result};
use crate::receipt::ReceiptKey;
use records::Cache;
pub use records::{
    AccessKeyRecord, Grant, NodeRecord, QueueMeta, Record, Role, Stamp, SubscriptionMeta, TopicMeta,
    UserRecord, Versioned, ANNOUNCEMENTS,
};
pub use sync::Resync;

/// The znode every metadata write bumps in the same transaction (`multi`), so one read of its
/// version tells whether this node's cache saw every write.
const REVISION: &str = "revision";

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

    /// Whether a registered node reads only an older format of wake announcements than this one
    /// (see [`ANNOUNCEMENTS`]). Read from the cache on every send: no copy is made.
    pub fn older_nodes_listen(&self) -> bool {
        NodeRecord::slot(&self.read()).values().any(|n| n.value.announcements < ANNOUNCEMENTS)
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
}
