//! The gRPC API (`proto/mom/v1/broker.proto`): a thin adapter over [`crate::service`], like
//! `http/`. Each method converts its request, calls one `Broker` method and converts the answer;
//! no queue or topic logic lives here.
//!
//! Every method sits behind [`Authenticate`], which wraps the whole generated service: it checks
//! the bearer token of the `authorization` metadata and takes a rate-limit token before any method
//! runs, and hands the caller on as a request extension. A method finds no caller only if that
//! wiring is missing, and then refuses (as HTTP's `Caller` extractor does).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use tonic::codegen::http;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::server::NamedService;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::Error;
use crate::model;
use crate::service::topics::Stream as PushState;
use crate::service::{Broker, Principal};

/// The types and service generated from the proto.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("mom.v1");
}

use pb::broker_server::BrokerServer;

/// Domain of the `google.rpc.ErrorInfo` in error details.
pub const ERROR_DOMAIN: &str = "mom";
/// Metadata key carrying the API's error code on every error status.
pub const ERROR_CODE_KEY: &str = "mom-error-code";

/// The gRPC status of a core error: the code follows the HTTP status of the same error, and the
/// API's error code travels in the details (ErrorInfo) and in `mom-error-code` metadata.
pub fn status(e: &Error) -> Status {
    let code = match e {
        Error::InvalidRequest(_) | Error::InvalidName(_) | Error::MessageTooLarge(_) => Code::InvalidArgument,
        Error::Unauthenticated(_) => Code::Unauthenticated,
        Error::RequestTimeout(_) => Code::DeadlineExceeded,
        Error::Forbidden(_) => Code::PermissionDenied,
        Error::QueueNotFound(_)
        | Error::TopicNotFound(_)
        | Error::SubscriptionNotFound(_)
        | Error::UserNotFound(_)
        | Error::NotFound(_) => Code::NotFound,
        Error::AlreadyExists(_) => Code::AlreadyExists,
        Error::ReceiptInvalid => Code::FailedPrecondition,
        Error::RateLimited { .. } | Error::TooManyLongPolls { .. } => Code::ResourceExhausted,
        Error::Unavailable(_) => Code::Unavailable,
    };
    let mut metadata = MetadataMap::new();
    metadata.insert(ERROR_CODE_KEY, MetadataValue::from_static(e.code()));
    if let Some(retry_after_s) = e.retry_after_s() {
        metadata.insert("retry-after", MetadataValue::from(retry_after_s));
    }
    let details = ErrorDetails::with_error_info(e.code(), ERROR_DOMAIN, std::collections::HashMap::new());
    Status::with_error_details_and_metadata(code, e.to_string(), details, metadata)
}

/// Serves the gRPC API on the connections of `incoming` until `stop` resolves; requests in flight
/// then finish. A request message over `max_request_bytes` (`MOM_MAX_REQUEST_BYTES`) is refused.
pub async fn serve(
    broker: Arc<Broker>,
    incoming: impl futures::Stream<Item = std::io::Result<crate::listen::Counted>>,
    max_request_bytes: usize,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let heartbeat = broker.stream_heartbeat;
    let service = BrokerServer::new(Api { broker: broker.clone() })
        .max_decoding_message_size(max_request_bytes)
        .max_encoding_message_size(usize::MAX);
    tonic::transport::Server::builder()
        // Pings keep idle Subscribe streams open through proxies, as heartbeats do for SSE.
        .http2_keepalive_interval(Some(heartbeat))
        .add_service(Authenticate { inner: service, broker, max_request_bytes })
        .serve_with_incoming_shutdown(incoming, stop)
        .await
}

/// Wraps the generated service: authenticates and rate-limits every call before it runs.
#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    broker: Arc<Broker>,
    max_request_bytes: usize,
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

/// The caller and the request body, for the methods' first line.
fn open<T>(req: Request<T>) -> Result<(Principal, T), Status> {
    let who = caller(&req)?;
    Ok((who, req.into_inner()))
}

type Answer<T> = Result<Response<T>, Status>;

fn ok<T>(v: T) -> Answer<T> {
    Ok(Response::new(v))
}

/// Maps a core result to the gRPC status.
trait OrStatus<T> {
    fn grpc(self) -> Result<T, Status>;
}

impl<T> OrStatus<T> for Result<T, Error> {
    fn grpc(self) -> Result<T, Status> {
        self.map_err(|e| status(&e))
    }
}

/// A queue, or a topic's subscription: what pull consumption names.
enum Target {
    Queue(String),
    Subscription(String, String),
}

fn target(queue: String, topic: String, subscription: String) -> Result<Target, Status> {
    match (queue.is_empty(), topic.is_empty(), subscription.is_empty()) {
        (false, true, true) => Ok(Target::Queue(queue)),
        (true, false, false) => Ok(Target::Subscription(topic, subscription)),
        _ => Err(status(&Error::invalid("name either queue, or topic and subscription"))),
    }
}

// ---- conversions ----

fn pb_error(e: &Error) -> pb::Error {
    pb::Error { code: e.code().to_string(), message: e.to_string() }
}

fn access_in(a: i32) -> Option<model::Access> {
    match pb::Access::try_from(a).unwrap_or(pb::Access::Unspecified) {
        pb::Access::Unspecified => None,
        pb::Access::Authenticated => Some(model::Access::Authenticated),
        pb::Access::Restricted => Some(model::Access::Restricted),
    }
}

fn access_out(a: model::Access) -> i32 {
    match a {
        model::Access::Authenticated => pb::Access::Authenticated as i32,
        model::Access::Restricted => pb::Access::Restricted as i32,
    }
}

pub fn queue_spec(c: Option<pb::QueueConfig>) -> model::QueueSpec {
    let c = c.unwrap_or_default();
    model::QueueSpec {
        visibility_timeout_s: c.visibility_timeout_s,
        max_receives: c.max_receives.map(Some),
        dead_letter_queue: c.dead_letter_queue.map(Some),
        delay_s: c.delay_s,
        retention_s: c.retention_s,
        max_message_bytes: c.max_message_bytes,
        access: access_in(c.access),
    }
}

fn queue_info(q: model::QueueInfo) -> pb::QueueInfo {
    let c = q.config;
    pb::QueueInfo {
        name: q.name,
        config: Some(pb::QueueConfig {
            visibility_timeout_s: Some(c.visibility_timeout_s),
            max_receives: c.max_receives,
            dead_letter_queue: c.dead_letter_queue,
            delay_s: Some(c.delay_s),
            retention_s: Some(c.retention_s),
            max_message_bytes: Some(c.max_message_bytes),
            access: access_out(c.access),
        }),
        owner: q.owner,
        created_at: q.created_at,
        stats: q.stats.map(|s| pb::QueueStats {
            available: s.available,
            in_flight: s.in_flight,
            delayed: s.delayed,
            oldest_age_s: s.oldest_age_s,
        }),
    }
}

pub fn topic_spec(c: Option<pb::TopicConfig>) -> model::TopicSpec {
    let c = c.unwrap_or_default();
    model::TopicSpec {
        retention_s: c.retention_s,
        max_message_bytes: c.max_message_bytes,
        access: access_in(c.access),
    }
}

fn topic_info(t: model::TopicInfo) -> pb::TopicInfo {
    let c = t.config;
    pb::TopicInfo {
        name: t.name,
        config: Some(pb::TopicConfig {
            retention_s: Some(c.retention_s),
            max_message_bytes: Some(c.max_message_bytes),
            access: access_out(c.access),
        }),
        owner: t.owner,
        created_at: t.created_at,
        stats: t.stats.map(|s| pb::TopicStats {
            messages: s.messages,
            subscriptions: s.subscriptions,
            oldest_age_s: s.oldest_age_s,
        }),
    }
}

pub fn subscription_spec(c: Option<pb::SubscriptionConfig>) -> model::SubscriptionSpec {
    let c = c.unwrap_or_default();
    let start = match c.start.as_str() {
        "" => None,
        "latest" | "earliest" => Some(model::StartSpec::Named(c.start)),
        _ => Some(model::StartSpec::Time { time: c.start }),
    };
    model::SubscriptionSpec {
        start,
        filter: Some(c.filter),
        no_local: Some(c.no_local),
        ack_deadline_s: c.ack_deadline_s,
        max_receives: c.max_receives,
        dead_letter_queue: c.dead_letter_queue,
    }
}

fn subscription_info(s: model::SubscriptionInfo) -> pb::SubscriptionInfo {
    let start = match &s.start {
        serde_json::Value::String(named) => named.clone(),
        other => other.get("time").and_then(|t| t.as_str()).unwrap_or_default().to_string(),
    };
    let c = s.config;
    pb::SubscriptionInfo {
        name: s.name,
        topic: s.topic,
        config: Some(pb::SubscriptionConfig {
            start,
            filter: c.filter,
            no_local: c.no_local,
            ack_deadline_s: Some(c.ack_deadline_s),
            max_receives: c.max_receives,
            dead_letter_queue: c.dead_letter_queue,
        }),
        owner: s.owner,
        created_at: s.created_at,
        lag: s.lag,
    }
}

pub fn outgoing(m: pb::OutgoingMessage) -> model::SendMessage {
    model::SendMessage {
        body: m.body,
        attributes: m.attributes,
        delay_s: m.delay_s,
        dedup_id: m.dedup_id,
        system: BTreeMap::new(),
    }
}

fn message(m: model::Message) -> pb::Message {
    pb::Message {
        id: m.id,
        body: m.body,
        attributes: m.attributes,
        receipt: m.receipt,
        receive_count: m.receive_count,
        sent_at: m.sent_at,
    }
}

fn sent_results(results: Vec<crate::error::Result<model::Sent>>) -> pb::SendBatchResponse {
    let results = results
        .into_iter()
        .map(|r| pb::SendResult {
            result: Some(match r {
                Ok(s) => pb::send_result::Result::Id(s.id),
                Err(e) => pb::send_result::Result::Error(pb_error(&e)),
            }),
        })
        .collect();
    pb::SendBatchResponse { results }
}

fn settled(results: Vec<crate::error::Result<()>>) -> pb::SettleResponse {
    pb::SettleResponse {
        results: results
            .into_iter()
            .map(|r| pb::SettleResult { error: r.err().map(|e| pb_error(&e)) })
            .collect(),
    }
}

fn receive_request(
    max: Option<u32>,
    wait_s: Option<u32>,
    visibility_timeout_s: Option<u32>,
) -> model::ReceiveRequest {
    model::ReceiveRequest { max, wait_s, visibility_timeout_s }
}

// ---- the service ----

/// The gRPC methods over one broker core.
pub struct Api {
    broker: Arc<Broker>,
}

type MessageStream = Pin<Box<dyn Stream<Item = Result<pb::Message, Status>> + Send>>;

#[tonic::async_trait]
impl pb::broker_server::Broker for Api {
    async fn create_queue(&self, req: Request<pb::CreateQueueRequest>) -> Answer<pb::CreateQueueResponse> {
        let (who, r) = open(req)?;
        let (info, created) = self.broker.create_queue(&who, &r.name, queue_spec(r.config)).await.grpc()?;
        ok(pb::CreateQueueResponse { queue: Some(queue_info(info)), created })
    }

    async fn list_queues(&self, req: Request<pb::ListQueuesRequest>) -> Answer<pb::ListQueuesResponse> {
        let (who, _) = open(req)?;
        ok(pb::ListQueuesResponse {
            queues: self.broker.list_queues(&who).into_iter().map(queue_info).collect(),
        })
    }

    async fn get_queue(&self, req: Request<pb::GetQueueRequest>) -> Answer<pb::QueueInfo> {
        let (who, r) = open(req)?;
        ok(queue_info(self.broker.get_queue(&who, &r.name).await.grpc()?))
    }

    async fn delete_queue(&self, req: Request<pb::DeleteQueueRequest>) -> Answer<pb::Empty> {
        let (who, r) = open(req)?;
        self.broker.delete_queue(&who, &r.name).await.grpc()?;
        ok(pb::Empty {})
    }

    async fn purge_queue(&self, req: Request<pb::PurgeQueueRequest>) -> Answer<pb::Empty> {
        let (who, r) = open(req)?;
        self.broker.purge_queue(&who, &r.name).await.grpc()?;
        ok(pb::Empty {})
    }

    async fn send(&self, req: Request<pb::SendRequest>) -> Answer<pb::SendResponse> {
        let (who, r) = open(req)?;
        let m = r.message.ok_or_else(|| status(&Error::invalid("message is required")))?;
        let sent = self
            .broker
            .send(&who, &r.queue, vec![outgoing(m)])
            .await
            .grpc()?
            .pop()
            .unwrap_or_else(|| Err(Error::invalid("no message")))
            .grpc()?;
        ok(pb::SendResponse { id: sent.id, created: sent.created })
    }

    async fn send_batch(&self, req: Request<pb::SendBatchRequest>) -> Answer<pb::SendBatchResponse> {
        let (who, r) = open(req)?;
        let messages = r.messages.into_iter().map(outgoing).collect();
        ok(sent_results(self.broker.send(&who, &r.queue, messages).await.grpc()?))
    }

    async fn receive(&self, req: Request<pb::ReceiveRequest>) -> Answer<pb::ReceiveResponse> {
        let (who, r) = open(req)?;
        let rr = receive_request(r.max, r.wait_s, r.visibility_timeout_s);
        let messages = match target(r.queue, r.topic, r.subscription)? {
            Target::Queue(q) => self.broker.receive(&who, &q, rr).await,
            Target::Subscription(t, s) => self.broker.sub_receive(&who, &t, &s, rr).await,
        }
        .grpc()?;
        ok(pb::ReceiveResponse { messages: messages.into_iter().map(message).collect() })
    }

    async fn ack(&self, req: Request<pb::AckRequest>) -> Answer<pb::SettleResponse> {
        let (who, r) = open(req)?;
        let results = match target(r.queue, r.topic, r.subscription)? {
            Target::Queue(q) => self.broker.ack(&who, &q, r.receipts).await,
            Target::Subscription(t, s) => self.broker.sub_ack(&who, &t, &s, r.receipts).await,
        }
        .grpc()?;
        ok(settled(results))
    }

    async fn nack(&self, req: Request<pb::NackRequest>) -> Answer<pb::SettleResponse> {
        let (who, r) = open(req)?;
        let results = match target(r.queue, r.topic, r.subscription)? {
            Target::Queue(q) => self.broker.nack(&who, &q, r.receipts, r.delay_s).await,
            Target::Subscription(t, s) => self.broker.sub_nack(&who, &t, &s, r.receipts, r.delay_s).await,
        }
        .grpc()?;
        ok(settled(results))
    }

    async fn extend_visibility(&self, req: Request<pb::ExtendVisibilityRequest>) -> Answer<pb::Empty> {
        let (who, r) = open(req)?;
        match target(r.queue, r.topic, r.subscription)? {
            Target::Queue(q) => self.broker.extend(&who, &q, r.receipt, r.visibility_timeout_s).await,
            Target::Subscription(t, s) => {
                self.broker.sub_extend(&who, &t, &s, r.receipt, r.visibility_timeout_s).await
            }
        }
        .grpc()?;
        ok(pb::Empty {})
    }

    async fn create_topic(&self, req: Request<pb::CreateTopicRequest>) -> Answer<pb::CreateTopicResponse> {
        let (who, r) = open(req)?;
        let (info, created) = self.broker.create_topic(&who, &r.name, topic_spec(r.config)).await.grpc()?;
        ok(pb::CreateTopicResponse { topic: Some(topic_info(info)), created })
    }

    async fn list_topics(&self, req: Request<pb::ListTopicsRequest>) -> Answer<pb::ListTopicsResponse> {
        let (who, _) = open(req)?;
        ok(pb::ListTopicsResponse {
            topics: self.broker.list_topics(&who).into_iter().map(topic_info).collect(),
        })
    }

    async fn get_topic(&self, req: Request<pb::GetTopicRequest>) -> Answer<pb::TopicInfo> {
        let (who, r) = open(req)?;
        ok(topic_info(self.broker.get_topic(&who, &r.name).await.grpc()?))
    }

    async fn delete_topic(&self, req: Request<pb::DeleteTopicRequest>) -> Answer<pb::Empty> {
        let (who, r) = open(req)?;
        self.broker.delete_topic(&who, &r.name).await.grpc()?;
        ok(pb::Empty {})
    }

    async fn publish(&self, req: Request<pb::PublishRequest>) -> Answer<pb::SendBatchResponse> {
        let (who, r) = open(req)?;
        let messages = r.messages.into_iter().map(outgoing).collect();
        ok(sent_results(self.broker.publish(&who, &r.topic, messages).await.grpc()?))
    }

    async fn create_subscription(
        &self,
        req: Request<pb::CreateSubscriptionRequest>,
    ) -> Answer<pb::CreateSubscriptionResponse> {
        let (who, r) = open(req)?;
        let (info, created) = self
            .broker
            .create_subscription(&who, &r.topic, &r.name, subscription_spec(r.config))
            .await
            .grpc()?;
        ok(pb::CreateSubscriptionResponse { subscription: Some(subscription_info(info)), created })
    }

    async fn list_subscriptions(
        &self,
        req: Request<pb::ListSubscriptionsRequest>,
    ) -> Answer<pb::ListSubscriptionsResponse> {
        let (who, r) = open(req)?;
        let subscriptions = self.broker.list_subscriptions(&who, &r.topic).await.grpc()?;
        ok(pb::ListSubscriptionsResponse {
            subscriptions: subscriptions.into_iter().map(subscription_info).collect(),
        })
    }

    async fn delete_subscription(&self, req: Request<pb::DeleteSubscriptionRequest>) -> Answer<pb::Empty> {
        let (who, r) = open(req)?;
        self.broker.delete_subscription(&who, &r.topic, &r.name).await.grpc()?;
        ok(pb::Empty {})
    }

    type SubscribeStream = MessageStream;

    /// Drives [`Broker::stream_next`] as the SSE route does; ends when the node drains, and with
    /// the error status when the subscription goes away.
    async fn subscribe(&self, req: Request<pb::SubscribeRequest>) -> Answer<Self::SubscribeStream> {
        // The stream re-checks its token as it goes, so a revoked one ends it.
        let token = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::service::auth::bearer_token)
            .unwrap_or_default()
            .to_string();
        let (who, r) = open(req)?;
        if r.max_in_flight == Some(0) {
            return Err(status(&Error::invalid("max_in_flight must be at least 1")));
        }
        // Fail before the stream starts when the subscription is missing or forbidden, or the
        // caller holds too many.
        let state = self
            .broker
            .open_stream(&who, &r.topic, &r.subscription, r.max_in_flight.map(|n| n as usize), token)
            .await
            .grpc()?;
        let push = Push {
            broker: self.broker.clone(),
            who,
            topic: r.topic,
            subscription: r.subscription,
            state,
            pending: std::collections::VecDeque::new(),
            done: false,
        };
        let stream = futures::stream::unfold(push, |mut p| async move {
            loop {
                if p.done {
                    return None;
                }
                if let Some(m) = p.pending.pop_front() {
                    return Some((Ok(message(m)), p));
                }
                match p.broker.stream_next(&p.who, &p.topic, &p.subscription, &mut p.state).await {
                    Ok(Some(messages)) => p.pending.extend(messages),
                    Ok(None) => return None,
                    Err(e) => {
                        tracing::info!(error = %e, "ending a gRPC subscription stream");
                        p.done = true;
                        return Some((Err(status(&e)), p));
                    }
                }
            }
        });
        ok(Box::pin(stream))
    }
}

/// The state of one Subscribe stream.
struct Push {
    broker: Arc<Broker>,
    who: Principal,
    topic: String,
    subscription: String,
    state: PushState,
    pending: std::collections::VecDeque<model::Message>,
    /// Set after an error was sent: the stream ends.
    done: bool,
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
