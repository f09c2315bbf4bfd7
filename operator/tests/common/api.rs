//! The broker API as the end-to-end tests use it: through NGINX, logged in as the first admin.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use super::cluster::PASSWORD;

/// A client logged in as the first admin.
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pub token: String,
}

impl Api {
    pub async fn login(base: &str) -> Api {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        let res = http
            .post(format!("{base}/v1/auth/token"))
            .json(&json!({"username": "admin", "password": PASSWORD}))
            .send()
            .await
            .expect("login through NGINX");
        assert_eq!(res.status(), 200, "login");
        let body: Value = res.json().await.expect("token");
        let token = body["access_token"].as_str().expect("access_token").to_string();
        Api { base: base.to_string(), http, token }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let res = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// `call`, repeated while it answers 404 for up to 2 s.
    pub async fn call_until_found(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let (status, value) = self.call(method.clone(), path, body.clone()).await;
            if status != 404 || Instant::now() > deadline {
                return (status, value);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until /v1/cluster lists `n` nodes.
    pub async fn nodes(&self, n: usize) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, cluster) = self.call(reqwest::Method::GET, "/v1/cluster", Value::Null).await;
            let count = cluster["nodes"].as_array().map(Vec::len).unwrap_or(0);
            if status == 200 && count == n {
                return cluster;
            }
            assert!(Instant::now() < deadline, "expected {n} nodes, got {status} {cluster}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Polls `check` every 250 ms until it gives `Some`, failing with `what` after `limit`.
pub async fn eventually<T>(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Sends `count` messages `m-<from>`… with a `dedup_id` each, retrying one until it is
/// acknowledged (201) for at most `limit`: a retried send cannot be stored twice.
/// Returns how many attempts failed.
pub async fn send_all(api: &Api, queue: &str, from: usize, count: usize, limit: Duration) -> usize {
    let mut failed = 0;
    for i in from..from + count {
        let body = json!({"body": format!("m-{i}"), "dedup_id": format!("m-{i}")});
        eventually(&format!("send m-{i}"), limit, async || {
            let (status, answer) =
                api.call(Method::POST, &format!("/v1/queues/{queue}/messages"), body.clone()).await;
            if status == 201 {
                Some(())
            } else {
                eprintln!("send m-{i}: {status} {answer}");
                failed += 1;
                None
            }
        })
        .await;
    }
    failed
}

/// Receives and acks until `expected` distinct bodies arrived; body → times delivered.
pub async fn drain(api: &Api, queue: &str, expected: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    eventually(&format!("{expected} messages received from {queue}"), Duration::from_secs(60), async || {
        let (status, got) = api
            .call(Method::POST, &format!("/v1/queues/{queue}/receive"), json!({"max": 10, "wait_s": 1}))
            .await;
        assert_eq!(status, 200, "receive: {got}");
        let messages = got["messages"].as_array().cloned().unwrap_or_default();
        let receipts: Vec<Value> = messages.iter().map(|m| m["receipt"].clone()).collect();
        for m in &messages {
            *seen.entry(m["body"].as_str().unwrap_or_default().to_string()).or_insert(0) += 1;
        }
        if !receipts.is_empty() {
            let (status, acked) = api
                .call(Method::POST, &format!("/v1/queues/{queue}/ack"), json!({"receipts": receipts}))
                .await;
            assert_eq!(status, 200, "ack: {acked}");
        }
        (seen.len() >= expected).then_some(())
    })
    .await;
    seen
}
