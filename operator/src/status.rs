//! `momctl status`: the cluster as it really is — containers and their health from Docker, nodes,
//! versions and queue/topic counts from the brokers' API, asked through NGINX like any client.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::desired::{Desired, Role};
use crate::docker::DockerError;
use crate::hosts::Hosts;

#[derive(Debug, Serialize)]
pub struct Status {
    pub cluster: String,
    pub endpoint: String,
    /// `host:port` of the gRPC API, when it is on.
    pub grpc_endpoint: Option<String>,
    pub containers: Vec<ContainerStatus>,
    /// What the brokers say (None when the API could not be asked; see `api_error`).
    pub api: Option<ApiStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ContainerStatus {
    pub service: String,
    pub role: String,
    pub container: String,
    /// The host whose engine runs it (1 on one engine).
    pub host: u32,
    pub image: String,
    pub state: String,
    pub health: Option<String>,
    /// A broker's generation (0: made by `up`; each upgrade/rollback adds one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u32>,
    /// A broker's node id, and the version that node reports (`GET /v1/cluster`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub address: String,
    pub version: String,
    pub started_at: String,
}

#[derive(Debug, Serialize)]
pub struct ApiStatus {
    pub nodes: Vec<Node>,
    pub leader: Option<String>,
    pub queues: usize,
    pub topics: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{what}: {message}")]
    Http { what: String, message: String },
}

#[derive(Deserialize)]
struct Token {
    access_token: String,
}

#[derive(Deserialize)]
struct Cluster {
    nodes: Vec<Node>,
    leader: Option<String>,
}

#[derive(Deserialize)]
struct Queues {
    queues: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Topics {
    topics: Vec<serde_json::Value>,
}

/// Asks the brokers (through NGINX) about the cluster, logged in as the first admin.
pub async fn ask_api(base: &str, user: &str, password: &str) -> Result<ApiStatus, ApiError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| ApiError::Http { what: "HTTP client".into(), message: e.to_string() })?;
    let fail = |what: &str| {
        let what = what.to_string();
        move |e: reqwest::Error| ApiError::Http { what, message: e.to_string() }
    };
    let token: Token = client
        .post(format!("{base}/v1/auth/token"))
        .json(&serde_json::json!({ "username": user, "password": password }))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(fail("log in"))?
        .json()
        .await
        .map_err(fail("log in"))?;
    let token = token.access_token.as_str();
    let cluster: Cluster = get_json(&client, base, token, "/v1/cluster").await?;
    let queues: Queues = get_json(&client, base, token, "/v1/queues").await?;
    let topics: Topics = get_json(&client, base, token, "/v1/topics").await?;
    let mut nodes = cluster.nodes;
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(ApiStatus { nodes, leader: cluster.leader, queues: queues.queues.len(), topics: topics.topics.len() })
}

async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
) -> Result<T, ApiError> {
    let fail = |e: reqwest::Error| ApiError::Http { what: format!("GET {path}"), message: e.to_string() };
    client
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(fail)?
        .json()
        .await
        .map_err(fail)
}

/// Gathers the status; `password` (the first admin's) lets it ask the brokers too.
pub async fn gather(hosts: &Hosts, desired: &Desired, password: Option<&str>) -> Result<Status, DockerError> {
    let mut containers = hosts
        .containers(&desired.cluster)
        .await?
        .into_iter()
        .map(|c| ContainerStatus {
            generation: (c.role == Some(Role::Broker)).then_some(c.generation),
            node: match (&c.service, c.role) {
                (Some(service), Some(Role::Broker)) => {
                    Some(crate::desired::broker_node_id(service, c.generation))
                }
                _ => None,
            },
            version: None,
            service: c.service.unwrap_or_else(|| "?".to_string()),
            role: c.role.map(|r| r.as_str().to_string()).unwrap_or_else(|| "?".to_string()),
            container: c.name,
            host: c.host,
            image: c.image,
            state: c.state,
            health: c.health,
        })
        .collect::<Vec<_>>();
    containers
        .sort_by_key(|c| (Role::parse(&c.role).map(Role::tier), node_number(&c.service), c.service.clone()));
    let endpoint = desired.endpoint.url();
    let (api, api_error) = if containers.is_empty() {
        (None, Some("the cluster has no containers".to_string()))
    } else {
        match password {
            None => {
                (None, Some(format!("set {} to see nodes, versions and counts", desired.admin_password_env)))
            }
            Some(password) => match ask_api(&endpoint, "admin", password).await {
                Ok(api) => (Some(api), None),
                Err(e) => (None, Some(e.to_string())),
            },
        }
    };
    if let Some(api) = &api {
        for c in &mut containers {
            c.version = api
                .nodes
                .iter()
                .find(|n| c.node.as_deref() == Some(n.id.as_str()))
                .map(|n| n.version.clone());
        }
    }
    Ok(Status {
        cluster: desired.cluster.clone(),
        endpoint,
        grpc_endpoint: desired.endpoint.grpc_address(),
        containers,
        api,
        api_error,
    })
}

/// `broker-10` sorts after `broker-9`.
fn node_number(service: &str) -> u32 {
    service.rsplit_once('-').and_then(|(_, n)| n.parse().ok()).unwrap_or(0)
}
