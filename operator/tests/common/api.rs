//! The broker API as the end-to-end tests use it: through NGINX, logged in as the first admin.

use std::time::{Duration, Instant};

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
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let res = http
            .post(format!("{base}/v1/auth/token"))
            .json(&json!({"username": "admin", "password": PASSWORD}))
            .send()
            .await
            .expect("login through NGINX");
        assert_eq!(res.status(), 200, "login");
        let body: Value = res.json().await.expect("token");
        let token = body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string();
        Api {
            base: base.to_string(),
            http,
            token,
        }
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
    pub async fn call_until_found(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
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
            let (status, cluster) = self
                .call(reqwest::Method::GET, "/v1/cluster", Value::Null)
                .await;
            let count = cluster["nodes"].as_array().map(Vec::len).unwrap_or(0);
            if status == 200 && count == n {
                return cluster;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} nodes, got {status} {cluster}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
