//! The `Authenticate` layer around the whole generated service: it checks the bearer token of
//! the `authorization` metadata and takes a rate-limit token before any method runs, hands the
//! caller on as a request extension, counts every call, and answers a request message over the
//! limit as the API's `message_too_large`. A method finds no caller only if that wiring is
//! missing, and then refuses (as HTTP's `Caller` extractor does).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::{Code, Request, Status};

use super::status::status;
use crate::error::Error;
use crate::service::{Broker, Principal};

/// Wraps the generated service: authenticates and rate-limits every call before it runs.
#[derive(Clone)]
pub struct Authenticate<S> {
    pub(super) inner: S,
    pub(super) broker: Arc<Broker>,
    pub(super) max_request_bytes: usize,
}

impl<S: NamedService> NamedService for Authenticate<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Authenticate<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The clone that was polled ready is the one to call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let broker = self.broker.clone();
        let max_request_bytes = self.max_request_bytes;
        Box::pin(async move {
            let start = std::time::Instant::now();
            let method = req.uri().path().rsplit('/').next().unwrap_or_default().to_owned();
            let res = match admit(&broker, req.headers()).await {
                Ok(who) => {
                    req.extensions_mut().insert(who);
                    let res = inner.call(req).await?;
                    Ok(too_large_as_api_error(res, max_request_bytes))
                }
                Err(e) => {
                    tracing::debug!(code = e.code(), "refusing a gRPC call");
                    Ok(status(&e).into_http())
                }
            };
            if let Ok(res) = &res {
                observe(&broker, &method, res, start.elapsed());
            }
            res
        })
    }
}

/// The service's methods, as the proto names them (a test keeps this list equal to the proto's).
const METHODS: &[&str] = &[
    "CreateQueue",
    "ListQueues",
    "GetQueue",
    "DeleteQueue",
    "PurgeQueue",
    "Send",
    "SendBatch",
    "Receive",
    "Ack",
    "Nack",
    "ExtendVisibility",
    "CreateTopic",
    "ListTopics",
    "GetTopic",
    "DeleteTopic",
    "Publish",
    "CreateSubscription",
    "ListSubscriptions",
    "DeleteSubscription",
    "Subscribe",
    "Consume",
];

/// Counts a call by method and gRPC status. An error before any message is a trailers-only
/// response, with `grpc-status` in the headers; without it the call went on (unary: answered, its
/// status in the trailers; Subscribe: streaming) and counts as `Ok`. Paths that are not a method
/// of the service count as `unknown`, so no client can grow the label set.
fn observe(
    broker: &Broker,
    method: &str,
    res: &http::Response<tonic::body::Body>,
    took: std::time::Duration,
) {
    let code = res
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(Code::Ok, Code::from_i32);
    let method = METHODS.iter().find(|m| **m == method).copied().unwrap_or("unknown");
    let code = format!("{code:?}");
    broker.metrics.grpc_requests.with_label_values(&[method, &code]).inc();
    broker.metrics.grpc_latency.with_label_values(&[method]).observe(took.as_secs_f64());
}

/// Tonic refuses a request message over the decoding limit with OUT_OF_RANGE and its own text,
/// before any method runs; no method of ours answers OUT_OF_RANGE. That answer becomes the API's
/// `message_too_large` (INVALID_ARGUMENT with `mom-error-code`), as every other front door says it.
fn too_large_as_api_error(
    res: http::Response<tonic::body::Body>,
    max_request_bytes: usize,
) -> http::Response<tonic::body::Body> {
    let out_of_range = res.headers().get("grpc-status").is_some_and(|v| v.as_bytes() == b"11");
    if !out_of_range {
        return res;
    }
    status(&Error::MessageTooLarge(format!("the request is over {max_request_bytes} bytes"))).into_http()
}

/// The bearer token (401 → UNAUTHENTICATED), then a rate-limit token (RESOURCE_EXHAUSTED).
async fn admit(broker: &Broker, headers: &http::HeaderMap) -> Result<Principal, Error> {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::service::auth::bearer_token)
        .ok_or_else(|| Error::Unauthenticated("a bearer token is required".into()))?;
    broker.meta.current().await;
    let who = broker.authenticate(token)?;
    broker.auth.admit(&who.name).await?;
    Ok(who)
}

/// The caller [`Authenticate`] put on the request; none means it is not wired, and is refused.
fn caller<T>(req: &Request<T>) -> Result<Principal, Status> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| status(&Error::Unauthenticated("a bearer token is required".into())))
}

/// The bearer token a call carried (empty when none): a long-lived stream keeps it to re-check as
/// it goes, so a revoked token ends the stream.
pub(super) fn bearer<T>(req: &Request<T>) -> String {
    req.metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(crate::service::auth::bearer_token)
        .unwrap_or_default()
        .to_string()
}

/// The caller and the request body, for the methods' first line.
pub(super) fn open<T>(req: Request<T>) -> Result<(Principal, T), Status> {
    let who = caller(&req)?;
    Ok((who, req.into_inner()))
}

#[cfg(test)]
mod tests {
    /// [`super::METHODS`] lists exactly the proto's `rpc`s, in order.
    #[test]
    fn metric_labels_are_the_protos_methods() {
        let proto = include_str!("../../proto/mom/v1/broker.proto");
        let rpcs: Vec<&str> = proto
            .lines()
            .filter_map(|l| l.trim().strip_prefix("rpc "))
            .filter_map(|l| l.split('(').next())
            .map(str::trim)
            .collect();
        assert_eq!(rpcs, super::METHODS);
    }
}
