//! What the metadata holds: the records kept as JSON in ZooKeeper, and the cache of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zookeeper_client as zk;

use crate::error::Error;
use crate::model::{QueueConfig, SubscriptionConfig, TopicConfig};

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
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// SQS attributes kept as given, with no effect here (`Policy`, KMS, SSE).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sqs_attributes: BTreeMap<String, String>,
    /// When the config or those attributes last changed; absent until they do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_at: Option<String>,
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
    /// The wake announcements this node reads ([`ANNOUNCEMENTS`]); 0 (absent from the record):
    /// a broker from before counted announcements, which reads only bare keys.
    #[serde(default)]
    pub announcements: u32,
}

/// The format of wake announcements this broker reads (`waiters.rs`): 1, counted (`q/NAME 3`,
/// one wake key per subscription). While any node reads an older one (a rolling upgrade from,
/// or a rollback to, a broker before them), every send, publish and nack also announces what
/// those nodes wait on ([`crate::store::Mailbox::older_wake_key`]).
pub const ANNOUNCEMENTS: u32 = 1;

/// Which write of which znode a cached record came from: the data version, and the zxid that
/// created the znode (so a znode deleted and created again never looks like the old one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub version: i32,
    pub czxid: i64,
}

impl Stamp {
    pub(super) fn of(stat: &zk::Stat) -> Self {
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
    pub(super) queues: Slot<QueueMeta>,
    pub(super) topics: Slot<TopicMeta>,
    pub(super) subscriptions: Slot<SubscriptionMeta>,
    pub(super) users: Slot<UserRecord>,
    pub(super) access_keys: Slot<AccessKeyRecord>,
    pub(super) nodes: Slot<NodeRecord>,
    /// Leader candidates by sequence znode name, with the node id each holds.
    pub(super) candidates: BTreeMap<String, String>,
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

/// Puts a re-read znode into its slot, or removes it when it is gone.
pub(super) fn apply<T: serde::de::DeserializeOwned>(
    slot: &mut Slot<T>,
    name: &str,
    data: Option<(Vec<u8>, Stamp)>,
) {
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

pub(super) fn parse_all<T: serde::de::DeserializeOwned>(entries: Vec<(String, Vec<u8>, Stamp)>) -> Slot<T> {
    let mut slot = BTreeMap::new();
    for (name, data, stamp) in entries {
        insert_parsed(&mut slot, name, &data, stamp);
    }
    slot
}
