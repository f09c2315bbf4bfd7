//! Metadata and membership as one node serves them (through the API) and as ZooKeeper holds them,
//! in one shape, so that "every node agrees with ZooKeeper" is an equality. [`ZkState::read`] is
//! the one place that knows the broker's ZooKeeper layout (ARCHITECTURE.md, "ZooKeeper layout").

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};
use zookeeper_client as zk;

use crate::client::Client;

/// The fields of each kind of record that every node must serve as ZooKeeper has them.
const QUEUE_FIELDS: &[&str] =
    &["visibility_timeout_s", "delay_s", "retention_s", "max_message_bytes", "access", "owner", "created_at"];
const TOPIC_FIELDS: &[&str] = &["retention_s", "max_message_bytes", "access", "owner", "created_at"];
const SUBSCRIPTION_FIELDS: &[&str] = &["ack_deadline_s", "no_local", "owner", "created_at"];
const USER_FIELDS: &[&str] = &["role", "created_at"];
const NODE_FIELDS: &[&str] = &["address", "version", "started_at"];

/// Queues, topics, subscriptions (`TOPIC/NAME`), users and nodes by name, each with the fields
/// above, and the leader's node id.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct View {
    pub queues: BTreeMap<String, Value>,
    pub topics: BTreeMap<String, Value>,
    pub subscriptions: BTreeMap<String, Value>,
    pub users: BTreeMap<String, Value>,
    pub nodes: BTreeMap<String, Value>,
    pub leader: Option<String>,
}

fn pick(record: &Value, fields: &[&str]) -> Value {
    let picked: Map<String, Value> =
        fields.iter().map(|f| (f.to_string(), record.get(*f).cloned().unwrap_or(Value::Null))).collect();
    Value::Object(picked)
}

/// `GET path` (expecting 200) as JSON.
async fn get(client: &Client, path: &str) -> Result<Value, String> {
    let resp = client
        .try_request(reqwest::Method::GET, path, crate::client::Body::None)
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    if resp.status != 200 {
        return Err(format!("GET {path}: {} {}", resp.status, resp.text));
    }
    Ok(resp.json)
}

/// The records listed under `key` in `list`, by the string in field `name`.
fn by_name(list: &Value, key: &str, name: &str, fields: &[&str]) -> BTreeMap<String, Value> {
    list[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r[name].as_str()?.to_string(), pick(r, fields))))
        .collect()
}

impl View {
    /// What the node behind `client` (an admin) serves.
    pub async fn of_node(client: &Client) -> Result<View, String> {
        let queues = by_name(&get(client, "/v1/queues").await?, "queues", "name", QUEUE_FIELDS);
        let topics = by_name(&get(client, "/v1/topics").await?, "topics", "name", TOPIC_FIELDS);
        let mut subscriptions = BTreeMap::new();
        for topic in topics.keys() {
            let list = get(client, &format!("/v1/topics/{topic}/subscriptions")).await?;
            for (name, sub) in by_name(&list, "subscriptions", "name", SUBSCRIPTION_FIELDS) {
                subscriptions.insert(format!("{topic}/{name}"), sub);
            }
        }
        let users = by_name(&get(client, "/v1/users").await?, "users", "username", USER_FIELDS);
        let cluster = get(client, "/v1/cluster").await?;
        let nodes = by_name(&cluster, "nodes", "id", NODE_FIELDS);
        let leader = cluster["leader"].as_str().map(str::to_string);
        Ok(View { queues, topics, subscriptions, users, nodes, leader })
    }

    /// How `self` differs from `truth`, one short line per difference (empty when equal).
    pub fn differences(&self, truth: &View) -> Vec<String> {
        let mut out = Vec::new();
        let kinds = [
            ("queue", &self.queues, &truth.queues),
            ("topic", &self.topics, &truth.topics),
            ("subscription", &self.subscriptions, &truth.subscriptions),
            ("user", &self.users, &truth.users),
            ("node", &self.nodes, &truth.nodes),
        ];
        for (kind, mine, theirs) in kinds {
            for (name, record) in mine {
                match theirs.get(name) {
                    None => out.push(format!("{kind} {name} listed but gone from ZooKeeper")),
                    Some(other) if other != record => {
                        out.push(format!("{kind} {name} is {record}, ZooKeeper has {other}"))
                    }
                    Some(_) => {}
                }
            }
            for name in theirs.keys().filter(|n| !mine.contains_key(*n)) {
                out.push(format!("{kind} {name} missing (in ZooKeeper)"));
            }
        }
        if self.leader != truth.leader {
            out.push(format!("leader {:?}, ZooKeeper's is {:?}", self.leader, truth.leader));
        }
        out
    }
}

/// What ZooKeeper holds under a cluster's root.
#[derive(Debug, Clone, Default)]
pub struct ZkState {
    pub view: View,
    /// Leader candidates, lowest sequence number first: (sequence, node id).
    pub candidates: Vec<(u64, String)>,
    /// The session that owns each node's ephemeral `nodes/ID`.
    pub sessions: BTreeMap<String, i64>,
}

impl ZkState {
    /// Reads everything under `root` through a session of its own (closed afterwards), within
    /// a few seconds.
    pub async fn read(connect: &str, root: &str) -> Result<ZkState, String> {
        let read = async {
            let client = zk::Client::connector()
                .with_session_timeout(Duration::from_secs(4))
                .with_connection_timeout(Duration::from_secs(2))
                .connect(connect)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            Self::read_with(&client, root).await.map_err(|e| e.to_string())
        };
        tokio::time::timeout(Duration::from_secs(8), read)
            .await
            .unwrap_or_else(|_| Err("no answer within 8 s".into()))
            .map_err(|e| format!("ZooKeeper at {connect}: {e}"))
    }

    async fn read_with(client: &zk::Client, root: &str) -> Result<ZkState, zk::Error> {
        let json = |data: &[u8]| serde_json::from_slice::<Value>(data).unwrap_or(Value::Null);
        let mut state = ZkState::default();
        for (name, data, _) in children(client, &format!("{root}/queues")).await? {
            state.view.queues.insert(name, pick(&json(&data), QUEUE_FIELDS));
        }
        for (name, data, _) in children(client, &format!("{root}/topics")).await? {
            state.view.topics.insert(name, pick(&json(&data), TOPIC_FIELDS));
        }
        // `subscriptions/TOPIC.NAME` (names cannot hold '.').
        for (key, data, _) in children(client, &format!("{root}/subscriptions")).await? {
            let key = key.replacen('.', "/", 1);
            state.view.subscriptions.insert(key, pick(&json(&data), SUBSCRIPTION_FIELDS));
        }
        for (name, data, _) in children(client, &format!("{root}/users")).await? {
            state.view.users.insert(name, pick(&json(&data), USER_FIELDS));
        }
        for (id, data, stat) in children(client, &format!("{root}/nodes")).await? {
            state.view.nodes.insert(id.clone(), pick(&json(&data), NODE_FIELDS));
            state.sessions.insert(id, stat.ephemeral_owner);
        }
        // `leader/n-SEQ` (ephemeral sequential, data: the node id); the lowest leads.
        for (name, data, _) in children(client, &format!("{root}/leader")).await? {
            if let Some(seq) = name.strip_prefix("n-").and_then(|s| s.parse().ok()) {
                state.candidates.push((seq, String::from_utf8_lossy(&data).into_owned()));
            }
        }
        state.candidates.sort();
        state.view.leader = state.candidates.first().map(|(_, id)| id.clone());
        Ok(state)
    }

    /// The fencing epoch `node` leads under if it leads: its lowest candidate's sequence number.
    pub fn epoch_of(&self, node: &str) -> Option<u64> {
        self.candidates.iter().find(|(_, id)| id == node).map(|(seq, _)| *seq)
    }
}

/// Every child of `dir` with its data and stat; children deleted meanwhile are skipped.
async fn children(client: &zk::Client, dir: &str) -> Result<Vec<(String, Vec<u8>, zk::Stat)>, zk::Error> {
    let mut out = Vec::new();
    for child in client.list_children(dir).await? {
        match client.get_data(&format!("{dir}/{child}")).await {
            Ok((data, stat)) => out.push((child, data, stat)),
            Err(zk::Error::NoNode) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
