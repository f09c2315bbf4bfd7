//! Metadata in ZooKeeper, served from an in-memory cache that watches keep fresh.
//!
//! Layout under the root (`--zk-root`): `queues/NAME` (JSON [`QueueMeta`]), `nodes/ID` (ephemeral
//! [`NodeRecord`]), `leader/n-SEQ` (ephemeral sequential; the lowest is the leader), `secrets/...`.
//! Reads never go to ZooKeeper on the data path: a ZooKeeper outage stops metadata writes (answered
//! `unavailable`), not sends and receives. Writes go to ZooKeeper first (conditional create,
//! versioned set) and then into this node's cache, so the answering node sees them at once and the
//! others within a watch round trip.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use zookeeper_client as zk;

use crate::error::{Error, Result};
use crate::model::QueueConfig;
use crate::receipt::ReceiptKey;

/// A queue's definition as stored in ZooKeeper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueMeta {
    #[serde(flatten)]
    pub config: QueueConfig,
    pub owner: String,
    pub created_at: String,
}

/// A live broker node, as registered in `nodes/ID`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeRecord {
    pub id: String,
    pub address: String,
    pub version: String,
    pub started_at: String,
}

#[derive(Default)]
struct Cache {
    queues: BTreeMap<String, QueueMeta>,
    nodes: BTreeMap<String, NodeRecord>,
    /// Leader candidates by sequence znode name, with the node id each holds.
    candidates: BTreeMap<String, String>,
}

/// Why a session ended.
enum End {
    Stop,
    Lost,
}

pub struct Meta {
    connect: String,
    root: String,
    session_timeout: Duration,
    op_timeout: Duration,
    client: RwLock<Option<zk::Client>>,
    cache: RwLock<Cache>,
    loaded: AtomicBool,
    receipt_key: RwLock<Option<ReceiptKey>>,
    node: NodeRecord,
    /// Cleared on drain: the node must not come back after it deregistered.
    register: AtomicBool,
    my_candidate: RwLock<Option<String>>,
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
            receipt_key: RwLock::new(None),
            node,
            register: AtomicBool::new(true),
            my_candidate: RwLock::new(None),
        }
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

    pub fn queue(&self, name: &str) -> Option<QueueMeta> {
        self.read().queues.get(name).cloned()
    }

    pub fn queues(&self) -> Vec<(String, QueueMeta)> {
        self.read().queues.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn nodes(&self) -> Vec<NodeRecord> {
        self.read().nodes.values().cloned().collect()
    }

    /// The id of the node holding the lowest leader znode.
    pub fn leader(&self) -> Option<String> {
        self.read().candidates.values().next().cloned()
    }

    /// True while this node holds the lowest leader znode of a live session.
    pub fn is_leader(&self) -> bool {
        let mine = self.my_candidate.read().unwrap_or_else(|e| e.into_inner()).clone();
        let connected = self.client().is_ok();
        connected && mine.is_some() && self.read().candidates.keys().next() == mine.as_ref()
    }

    pub fn receipt_key(&self) -> Result<ReceiptKey> {
        self.receipt_key
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Error::Unavailable("the broker has not loaded its metadata yet".into()))
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

    /// Creates a queue. `Ok(true)`: created; `Ok(false)`: it existed with the same config.
    pub async fn create_queue(&self, name: &str, meta: QueueMeta) -> Result<bool> {
        let client = self.client()?;
        let path = self.path(&format!("queues/{name}"));
        let data = serde_json::to_vec(&meta).map_err(|e| Error::invalid(e.to_string()))?;
        let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        match self.bounded(client.create(&path, &data, &opts)).await {
            Ok(_) => {
                self.write().queues.insert(name.to_string(), meta);
                Ok(true)
            }
            Err(zk::Error::NodeExists) => {
                let (data, _) = self.bounded(client.get_data(&path)).await.map_err(zk_unavailable)?;
                let existing: QueueMeta = serde_json::from_slice(&data).map_err(zk_unavailable)?;
                let same = existing.config == meta.config;
                self.write().queues.insert(name.to_string(), existing);
                if same {
                    Ok(false)
                } else {
                    Err(Error::AlreadyExists(format!("queue '{name}' exists with a different configuration")))
                }
            }
            Err(e) => Err(zk_unavailable(e)),
        }
    }

    /// Changes a queue's config with a versioned write, retrying when another writer got first.
    pub async fn update_queue(
        &self,
        name: &str,
        change: impl Fn(QueueConfig) -> Result<QueueConfig>,
    ) -> Result<QueueMeta> {
        let client = self.client()?;
        let path = self.path(&format!("queues/{name}"));
        for _ in 0..10 {
            let (data, stat) = match self.bounded(client.get_data(&path)).await {
                Ok(v) => v,
                Err(zk::Error::NoNode) => return Err(Error::QueueNotFound(name.to_string())),
                Err(e) => return Err(zk_unavailable(e)),
            };
            let mut meta: QueueMeta = serde_json::from_slice(&data).map_err(zk_unavailable)?;
            meta.config = change(meta.config)?;
            let data = serde_json::to_vec(&meta).map_err(|e| Error::invalid(e.to_string()))?;
            match self.bounded(client.set_data(&path, &data, Some(stat.version))).await {
                Ok(_) => {
                    self.write().queues.insert(name.to_string(), meta.clone());
                    return Ok(meta);
                }
                Err(zk::Error::BadVersion) => continue,
                Err(zk::Error::NoNode) => return Err(Error::QueueNotFound(name.to_string())),
                Err(e) => return Err(zk_unavailable(e)),
            }
        }
        Err(Error::Unavailable("too many concurrent changes to this queue; retry".into()))
    }

    pub async fn delete_queue(&self, name: &str) -> Result<()> {
        let client = self.client()?;
        match self.bounded(client.delete(&self.path(&format!("queues/{name}")), None)).await {
            Ok(()) | Err(zk::Error::NoNode) => {
                self.write().queues.remove(name);
                Ok(())
            }
            Err(e) => Err(zk_unavailable(e)),
        }
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
            let connecting = zk::Client::connector()
                .with_session_timeout(self.session_timeout)
                .with_connection_timeout(Duration::from_secs(2))
                .with_fail_eagerly()
                .connect(&self.connect);
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

    /// One session: prepare the tree, load everything, register, then follow the watch.
    async fn session(&self, client: &zk::Client, stop: &CancellationToken) -> End {
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
        loop {
            let event = tokio::select! {
                e = watcher.changed() => e,
                _ = stop.cancelled() => return End::Stop,
            };
            match event.event_type {
                zk::EventType::Session => match event.session_state {
                    zk::SessionState::SyncConnected => {
                        // Events during a disconnection can be lost (ZOOKEEPER-4698): reload.
                        if let Err(e) = self.reload(client).await {
                            tracing::warn!(error = %e, "zookeeper reload failed");
                        }
                    }
                    s if s.is_terminated() => return End::Lost,
                    _ => {}
                },
                _ => {
                    if let Err(e) = self.refresh(client, &event.path).await {
                        tracing::warn!(error = %e, path = %event.path, "zookeeper refresh failed");
                    }
                }
            }
        }
    }

    async fn prepare(&self, client: &zk::Client) -> Result<zk::PersistentWatcher, zk::Error> {
        let dir = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        for d in ["queues", "nodes", "leader", "secrets"] {
            self.bounded(client.mkdir(&self.path(d), &dir)).await?;
        }
        let watcher = self.bounded(client.watch(&self.root, zk::AddWatchMode::PersistentRecursive)).await?;
        self.load_receipt_key(client).await?;
        self.reload(client).await?;
        if self.register.load(Ordering::Relaxed) {
            self.register_node(client).await?;
        }
        self.loaded.store(true, Ordering::Relaxed);
        Ok(watcher)
    }

    async fn load_receipt_key(&self, client: &zk::Client) -> Result<(), zk::Error> {
        let path = self.path("secrets/receipt-key");
        let fresh: [u8; 32] = rand::random();
        let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        match self.bounded(client.create(&path, &fresh, &opts)).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(e) => return Err(e),
        }
        let (secret, _) = self.bounded(client.get_data(&path)).await?;
        *self.receipt_key.write().unwrap_or_else(|e| e.into_inner()) = Some(ReceiptKey::new(&secret));
        Ok(())
    }

    async fn register_node(&self, client: &zk::Client) -> Result<(), zk::Error> {
        let path = self.path(&format!("nodes/{}", self.node.id));
        let data = serde_json::to_vec(&self.node).unwrap_or_default();
        let eph = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
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
        let seq = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
        let (_, n) = self.bounded(client.create(&self.path("leader/n-"), self.node.id.as_bytes(), &seq)).await?;
        *self.my_candidate.write().unwrap_or_else(|e| e.into_inner()) = Some(format!("n-{n}"));
        self.reload(client).await
    }

    /// Reads every queue, node and leader candidate afresh.
    async fn reload(&self, client: &zk::Client) -> Result<(), zk::Error> {
        let queues = self.read_dir(client, "queues").await?;
        let nodes = self.read_dir(client, "nodes").await?;
        let candidates = self.read_dir(client, "leader").await?;
        let mut cache = self.write();
        cache.queues = parse_all(queues);
        cache.nodes = parse_all(nodes);
        cache.candidates = candidates.into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned())).collect();
        Ok(())
    }

    async fn read_dir(&self, client: &zk::Client, dir: &str) -> Result<Vec<(String, Vec<u8>)>, zk::Error> {
        let path = self.path(dir);
        let children = self.bounded(client.list_children(&path)).await?;
        let mut out = Vec::with_capacity(children.len());
        for child in children {
            match self.bounded(client.get_data(&format!("{path}/{child}"))).await {
                Ok((data, _)) => out.push((child, data)),
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
        let Some((dir, name)) = rel.split_once('/') else { return Ok(()) };
        if name.contains('/') || !["queues", "nodes", "leader"].contains(&dir) {
            return Ok(());
        }
        let data = match self.bounded(client.get_data(path)).await {
            Ok((data, _)) => Some(data),
            Err(zk::Error::NoNode) => None,
            Err(e) => return Err(e),
        };
        let mut cache = self.write();
        let name = name.to_string();
        match (dir, data) {
            ("queues", Some(d)) => insert_parsed(&mut cache.queues, name, &d),
            ("nodes", Some(d)) => insert_parsed(&mut cache.nodes, name, &d),
            ("leader", Some(d)) => {
                cache.candidates.insert(name, String::from_utf8_lossy(&d).into_owned());
            }
            ("queues", None) => {
                cache.queues.remove(&name);
            }
            ("nodes", None) => {
                cache.nodes.remove(&name);
            }
            (_, None) => {
                cache.candidates.remove(&name);
            }
            _ => {}
        }
        Ok(())
    }
}

fn insert_parsed<T: serde::de::DeserializeOwned>(map: &mut BTreeMap<String, T>, name: String, data: &[u8]) {
    match serde_json::from_slice(data) {
        Ok(v) => {
            map.insert(name, v);
        }
        Err(e) => tracing::warn!(error = %e, %name, "ignoring unreadable znode"),
    }
}

fn parse_all<T: serde::de::DeserializeOwned>(entries: Vec<(String, Vec<u8>)>) -> BTreeMap<String, T> {
    let mut map = BTreeMap::new();
    for (name, data) in entries {
        insert_parsed(&mut map, name, &data);
    }
    map
}
