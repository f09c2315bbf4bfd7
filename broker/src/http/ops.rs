//! Operations routes: health, readiness, metrics, the cluster view and the OpenAPI document.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use super::extract::Caller;
use crate::service::{Broker, Cluster};

/// Names the node that answered `/metrics`.
const NODE_HEADER: HeaderName = HeaderName::from_static("x-mom-node");

/// Routes anyone may call.
pub fn public() -> Router<Arc<Broker>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(|| async { Json(super::openapi()) }))
}

/// Routes for authenticated callers.
pub fn routes() -> Router<Arc<Broker>> {
    Router::new().route("/v1/cluster", get(cluster))
}

async fn readyz(State(b): State<Arc<Broker>>) -> impl IntoResponse {
    if b.ready() {
        (StatusCode::OK, "ready")
    } else if b.draining.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: waiting for Redis and ZooKeeper")
    }
}

async fn metrics(State(b): State<Arc<Broker>>) -> impl IntoResponse {
    b.refresh_gauges().await;
    // `X-Mom-Node` says which broker counted: behind NGINX each scrape may reach another one, and
    // the web console computes per-queue rates from each node's own counters.
    let node = HeaderValue::from_str(&b.meta.node().id).unwrap_or(HeaderValue::from_static("unknown"));
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4")), (NODE_HEADER, node)],
        b.metrics.render(),
    )
}

/// The live nodes and the leader.
#[utoipa::path(get, path = "/v1/cluster", tag = "cluster", responses((status = 200, body = Cluster)))]
async fn cluster(State(b): State<Arc<Broker>>, Caller(_who): Caller) -> Json<Cluster> {
    Json(b.cluster())
}
