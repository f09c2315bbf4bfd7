//! The native HTTP API: one module per resource, each a thin adapter over [`crate::service`].

mod error;
mod extract;
mod ops;
mod queues;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use utoipa::OpenApi;

pub use error::status;

use crate::service::Broker;

#[derive(OpenApi)]
#[openapi(
    info(title = "mom broker API", description = "Queues over HTTP on Redis and ZooKeeper."),
    paths(
        queues::create, queues::list, queues::show, queues::patch, queues::delete, queues::purge,
        queues::send, queues::send_batch, queues::receive, queues::ack, queues::nack,
        queues::visibility, queues::redrive, ops::cluster,
    ),
    components(schemas(crate::model::ErrorBody))
)]
struct ApiDoc;

/// The OpenAPI 3.1 document, generated from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Every route of the HTTP API, with request metrics around them.
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .merge(queues::routes())
        .merge(ops::routes())
        .layer(middleware::from_fn_with_state(broker.clone(), observe))
        .with_state(broker)
}

/// Counts each request by route template (not the raw path, which would explode cardinality).
async fn observe(State(b): State<Arc<Broker>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    b.metrics.http_requests.with_label_values(&[&route, &method, &status]).inc();
    b.metrics.http_latency.with_label_values(&[&route, &method]).observe(start.elapsed().as_secs_f64());
    res
}
