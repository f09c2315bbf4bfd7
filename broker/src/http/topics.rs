//! `/v1/topics`: thin handlers over [`Broker`]'s topic operations, and the server-push stream.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::extract::{Body, Caller, Names, Params};
use crate::meta::{Grant, TopicMeta};
use crate::model::{
    AckRequest, Done, Entry, ErrorBody, Messages, NackRequest, ReceiveRequest, Results, SeekRequest,
    SendBatch, SendMessage, SentId, SubscriptionInfo, SubscriptionList, SubscriptionSpec, TopicInfo,
    TopicList, TopicSpec, VisibilityRequest,
};
use crate::service::Broker;

type App = State<Arc<Broker>>;

pub fn routes() -> Router<Arc<Broker>> {
    let sub = "/v1/topics/{name}/subscriptions/{sub}";
    Router::new()
        .route("/v1/topics", get(list))
        .route("/v1/topics/{name}", put(create).get(show).delete(delete))
        .route("/v1/topics/{name}/messages", post(publish))
        .route("/v1/topics/{name}/messages/batch", post(publish_batch))
        .route("/v1/topics/{name}/grants/{username}", put(grant).delete(revoke))
        .route("/v1/topics/{name}/subscriptions", get(subscriptions))
        .route(sub, put(subscribe).delete(unsubscribe))
        .route(&format!("{sub}/receive"), post(receive))
        .route(&format!("{sub}/ack"), post(ack))
        .route(&format!("{sub}/nack"), post(nack))
        .route(&format!("{sub}/visibility"), post(visibility))
        .route(&format!("{sub}/seek"), post(seek))
        .route(&format!("{sub}/stream"), get(stream))
}

fn status(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// Create a topic (idempotent).
#[utoipa::path(put, path = "/v1/topics/{name}", request_body = TopicSpec, tag = "topics",
    responses((status = 201, body = TopicInfo), (status = 200, body = TopicInfo), (status = 409, body = ErrorBody)))]
async fn create(
    State(b): App,
    Caller(who): Caller,
    Names(name): Names<String>,
    Body(spec): Body<TopicSpec>,
) -> ApiResult<(StatusCode, Json<TopicInfo>)> {
    let (info, created) = b.create_topic(&who, &name, spec).await?;
    Ok((status(created), Json(info)))
}

/// List topics.
#[utoipa::path(get, path = "/v1/topics", tag = "topics", responses((status = 200, body = TopicList)))]
async fn list(State(b): App, Caller(who): Caller) -> Json<TopicList> {
    Json(TopicList { topics: b.list_topics(&who) })
}

/// A topic's config and stats.
#[utoipa::path(get, path = "/v1/topics/{name}", tag = "topics", responses((status = 200, body = TopicInfo), (status = 404, body = ErrorBody)))]
async fn show(State(b): App, Caller(who): Caller, Names(name): Names<String>) -> ApiResult<Json<TopicInfo>> {
    Ok(Json(b.get_topic(&who, &name).await?))
}

/// Delete a topic, its subscriptions and retained messages.
#[utoipa::path(delete, path = "/v1/topics/{name}", tag = "topics", responses((status = 204)))]
async fn delete(State(b): App, Caller(who): Caller, Names(name): Names<String>) -> ApiResult<StatusCode> {
    b.delete_topic(&who, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Publish one message to every matching subscription.
#[utoipa::path(post, path = "/v1/topics/{name}/messages", request_body = SendMessage, tag = "topics", responses((status = 201, body = SentId)))]
async fn publish(
    State(b): App,
    Caller(who): Caller,
    Names(name): Names<String>,
    Body(m): Body<SendMessage>,
) -> ApiResult<(StatusCode, Json<SentId>)> {
    let sent = b
        .publish(&who, &name, vec![m])
        .await?
        .pop()
        .ok_or(ApiError(crate::error::Error::invalid("no message")))??;
    Ok((status(sent.created), Json(SentId { id: sent.id, sequence: None })))
}

/// Publish up to 100 messages; one result per entry, in order.
#[utoipa::path(post, path = "/v1/topics/{name}/messages/batch", request_body = SendBatch, tag = "topics", responses((status = 200, body = Results<SentId>)))]
async fn publish_batch(
    State(b): App,
    Caller(who): Caller,
    Names(name): Names<String>,
    Body(batch): Body<SendBatch>,
) -> ApiResult<Json<Results<SentId>>> {
    let results = b.publish(&who, &name, batch.messages).await?;
    Ok(Json(Results {
        results: results
            .into_iter()
            .map(|r| Entry::from(r.map(|s| SentId { id: s.id, sequence: None })))
            .collect(),
    }))
}

/// Grant a user publish and/or consume rights on a restricted topic.
#[utoipa::path(put, path = "/v1/topics/{name}/grants/{username}", request_body = Grant, tag = "topics", responses((status = 204)))]
async fn grant(
    State(b): App,
    Caller(who): Caller,
    Names((name, user)): Names<(String, String)>,
    Body(g): Body<Grant>,
) -> ApiResult<StatusCode> {
    b.grant::<TopicMeta>(&who, &name, &user, Some(g)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke a user's grant on a topic.
#[utoipa::path(delete, path = "/v1/topics/{name}/grants/{username}", tag = "topics", responses((status = 204)))]
async fn revoke(
    State(b): App,
    Caller(who): Caller,
    Names((name, user)): Names<(String, String)>,
) -> ApiResult<StatusCode> {
    b.grant::<TopicMeta>(&who, &name, &user, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List a topic's subscriptions with their lag.
#[utoipa::path(get, path = "/v1/topics/{name}/subscriptions", tag = "topics", responses((status = 200, body = SubscriptionList)))]
async fn subscriptions(
    State(b): App,
    Caller(who): Caller,
    Names(name): Names<String>,
) -> ApiResult<Json<SubscriptionList>> {
    Ok(Json(SubscriptionList { subscriptions: b.list_subscriptions(&who, &name).await? }))
}

/// Create a durable subscription (idempotent).
#[utoipa::path(put, path = "/v1/topics/{name}/subscriptions/{sub}", request_body = SubscriptionSpec, tag = "topics",
    responses((status = 201, body = SubscriptionInfo), (status = 200, body = SubscriptionInfo), (status = 409, body = ErrorBody)))]
async fn subscribe(
    State(b): App,
    Caller(who): Caller,
    Names((name, sub)): Names<(String, String)>,
    Body(spec): Body<SubscriptionSpec>,
) -> ApiResult<(StatusCode, Json<SubscriptionInfo>)> {
    let (info, created) = b.create_subscription(&who, &name, &sub, spec).await?;
    Ok((status(created), Json(info)))
}

/// Delete a subscription.
#[utoipa::path(delete, path = "/v1/topics/{name}/subscriptions/{sub}", tag = "topics", responses((status = 204)))]
async fn unsubscribe(
    State(b): App,
    Caller(who): Caller,
    Names((name, sub)): Names<(String, String)>,
) -> ApiResult<StatusCode> {
    b.delete_subscription(&who, &name, &sub).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pull messages from a subscription, long-polling up to `wait_s`.
#[utoipa::path(post, path = "/v1/topics/{name}/subscriptions/{sub}/receive", request_body = ReceiveRequest, tag = "topics", responses((status = 200, body = Messages)))]
async fn receive(
    State(b): App,
    Caller(who): Caller,
    Names((name, sub)): Names<(String, String)>,
    Body(req): Body<ReceiveRequest>,
) -> ApiResult<Json<Messages>> {
    Ok(Json(Messages { messages: b.sub_receive(&who, &name, &sub, req).await? }))
}

/// Acknowledge deliveries of a subscription.
#[utoipa::path(post, path = "/v1/topics/{name}/subscriptions/{sub}/ack", request_body = AckRequest, tag = "topics", responses((status = 200, body = Results<Done>)))]
async fn ack(
    State(b): App,
    Caller(who): Caller,
    Names((name, sub)): Names<(String, String)>,
    Body(req): Body<AckRequest>,
) -> ApiResult<Json<Results<Done>>> {
    Ok(super::queues::done(b.sub_ack(&who, &name, &sub, req.receipts).await?))
}

/// Return deliveries of a subscription.
#[utoipa::path(post, path = "/v1/topics/{name}/subscriptions/{sub}/nack", request_body = NackRequest, tag = "topics", responses((status = 200, body = Results<Done>)))]
async fn nack(
    State(b): App,
    Caller(who): Caller,
    Names((name, sub)): Names<(String, String)>,
    Body(req): Body<NackRequest>,
) -> ApiResult<Json<Results<Done>>> {
    Ok(super::queues::done(b.sub_nack(&who, &name, &sub, req.receipts, req.delay_s).await?))
}

/// Change a delivery's ack deadline, counted from now.
#[utoipa::path(post, path = "/v1/topics/{name}/subscriptions/{sub}/visibility", request_body = VisibilityRequest, tag = "topics",
    responses((status = 200, body = Done), (status = 409, body = ErrorBody)))]
async fn visibility(
    State(b): App,
    Caller(who): Caller,
    Names((name, sub)): Names<(String, String)>,
    Body(req): Body<VisibilityRequest>,
) -> ApiResult<Json<Done>> {
    b.sub_extend(&who, &name, &sub, req.receipt, req.visibility_timeout_s).await?;
    Ok(Json(Done { ok: true }))
}

/// Replay retained messages from a time or id on.
#[utoipa::path(post, path = "/v1/topics/{name}/subscriptions/{sub}/seek", request_body = SeekRequest, tag = "topics", responses((status = 200)))]
async fn seek(
    State(b): App,
    Caller(who): Caller,
    Names((name, sub)): Names<(String, String)>,
    Body(req): Body<SeekRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let replayed = b.seek(&who, &name, &sub, req).await?;
    Ok(Json(serde_json::json!({ "replayed": replayed })))
}

#[derive(Deserialize)]
pub struct StreamQuery {
    max_in_flight: Option<usize>,
}

/// One server-push event: `id` the message id, `data` the message as a receive answers it.
pub(super) fn event_of(m: &crate::model::Message) -> Event {
    Event::default().id(m.id.clone()).json_data(m).unwrap_or_default()
}

/// Server push: `text/event-stream`, one event per message (`id` = message id, `data` = the
/// message with its receipt). Comment heartbeats keep idle streams open through proxies.
#[utoipa::path(get, path = "/v1/topics/{name}/subscriptions/{sub}/stream", tag = "topics",
    params(("max_in_flight" = Option<usize>, Query, description = "Bound on unacked messages of this stream")),
    responses((status = 200, content_type = "text/event-stream")))]
async fn stream(
    State(b): App,
    Caller(who): Caller,
    headers: axum::http::HeaderMap,
    Names((name, sub)): Names<(String, String)>,
    Params(q): Params<StreamQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    if q.max_in_flight == Some(0) {
        return Err(ApiError(crate::error::Error::invalid("max_in_flight must be at least 1")));
    }
    // Fail before the 200 when the subscription is missing or forbidden, or the caller holds too many.
    let token = super::auth::bearer(&headers).unwrap_or_default().to_string();
    let push = b.open_stream(&who, &name, &sub, q.max_in_flight, token).await?;
    let heartbeat = b.stream_heartbeat;
    let state = (b, who, name, sub, push, Vec::<Event>::new());
    let events = futures::stream::unfold(state, |(b, who, name, sub, mut st, mut pending)| async move {
        loop {
            if let Some(e) = pending.pop() {
                return Some((Ok(e), (b, who, name, sub, st, pending)));
            }
            match b.stream_next(&who, &name, &sub, &mut st).await {
                Ok(Some(messages)) => {
                    pending = messages.iter().rev().map(event_of).collect();
                }
                Ok(None) => return None,
                Err(e) => {
                    tracing::info!(error = %e, "ending a subscription stream");
                    return None;
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(heartbeat)))
}
