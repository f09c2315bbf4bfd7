//! The native HTTP API: one module per resource, each a thin adapter over [`crate::service`].

pub(crate) mod auth;
pub mod console;
mod error;
pub(crate) mod extract;
mod ops;
mod peek;
mod queues;
pub(crate) mod topics;
pub(crate) mod users;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use utoipa::OpenApi;

pub use crate::body::{BodyLimit, MAX_REQUEST_BYTES};
pub use error::status;

use crate::service::Broker;

#[derive(OpenApi)]
#[openapi(
    info(title = "mom broker API", description = "Queues over HTTP on Redis and ZooKeeper."),
    paths(
        queues::create, queues::list, queues::show, queues::patch, queues::delete, queues::purge,
        queues::send, queues::send_batch, queues::receive, queues::ack, queues::nack,
        queues::visibility, queues::stream, queues::redrive, queues::grant, queues::revoke, queues::tags,
        queues::tag, queues::untag, peek::peek, ops::cluster,
        auth::token, users::create, users::list, users::remove, users::password,
        users::create_key, users::list_keys, users::delete_key,
        topics::create, topics::list, topics::show, topics::delete, topics::publish, topics::publish_batch,
        topics::grant, topics::revoke, topics::subscriptions, topics::subscribe, topics::unsubscribe,
        topics::receive, topics::ack, topics::nack, topics::visibility, topics::seek, topics::stream,
    ),
    components(schemas(crate::model::ErrorBody)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// The OpenAPI 3.1 document, generated from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Declares the bearer-token scheme and applies it to every operation but login.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
        doc.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    }
}

/// Every route of the HTTP API. Protected routes are the default: everything merged into
/// `protected` goes through authentication and rate limiting; only login, health, readiness,
/// metrics and the OpenAPI document are public (and `POST /`, SQS, which checks signatures).
/// Every body is read within `body_limit` (`MOM_MAX_REQUEST_BYTES`, `MOM_BODY_READ_TIMEOUT_S`).
pub fn router(broker: Arc<Broker>, sqs: crate::sqs::SqsSettings, body_limit: BodyLimit) -> Router {
    let protected = Router::new()
        .merge(queues::routes())
        .merge(peek::routes())
        .merge(topics::routes())
        .merge(users::routes())
        .merge(ops::routes())
        .route_layer(middleware::from_fn_with_state(broker.clone(), auth::require));
    Router::new()
        .merge(protected)
        .merge(auth::routes())
        .merge(ops::public())
        // The web console's static files: public, the console signs in through the API.
        .merge(console::routes())
        // The SQS-compatible front door authenticates with Signature V4 itself.
        .merge(crate::sqs::routes(sqs))
        .fallback(|| async { error::ApiError(crate::error::Error::NotFound("no such route".into())) })
        .method_not_allowed_fallback(|| async { error::method_not_allowed() })
        .layer(middleware::from_fn_with_state(broker.clone(), observe))
        .layer(axum::Extension(body_limit))
        .with_state(broker)
}

/// Counts each request by route template (not the raw path, which would explode cardinality).
async fn observe(State(b): State<Arc<Broker>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    // A guard, so a request whose client went away (its future dropped) is not counted for ever.
    struct InFlight(prometheus::IntGauge);
    impl Drop for InFlight {
        fn drop(&mut self) {
            self.0.dec();
        }
    }
    b.metrics.http_in_flight.inc();
    let _in_flight = InFlight(b.metrics.http_in_flight.clone());
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    b.metrics.http_requests.with_label_values(&[&route, &method, &status]).inc();
    b.metrics.http_latency.with_label_values(&[&route, &method]).observe(start.elapsed().as_secs_f64());
    res
}
