//! Keeping the cache equal to ZooKeeper: one session at a time, a persistent recursive watch
//! re-armed on every reconnect, a full reload after each, and a drift check every second that
//! repairs what a lost event left (see ARCHITECTURE.md, "ZooKeeper layout").

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use zookeeper_client as zk;

use super::records::{apply, parse_all};
use super::{
    AccessKeyRecord, Meta, NodeRecord, QueueMeta, Record, Secrets, Stamp, SubscriptionMeta, TopicMeta,
    UserRecord, REVISION,
};
use crate::receipt::ReceiptKey;

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

/// What the drift check compares: the revision, and the two directories of ephemeral znodes
/// (sessions that end delete them without a write of ours).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    revision: i32,
    nodes: BTreeSet<String>,
    candidates: BTreeSet<String>,
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

impl Meta {
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
