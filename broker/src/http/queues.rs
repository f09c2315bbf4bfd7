//! `/v1/queues`: thin handlers over [`Broker`]'s queue operations.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures::Stream;

use super::error::{ApiError, ApiResult};
use super::extract::{Body, Caller, Names, Params};
use super::topics::event_of;
use crate::error::Error;
use crate::meta::{Grant, QueueMeta};
use crate::model::{
    AckRequest, Done, Entry, ErrorBody, Messages, Moved, NackRequest, QueueInfo, QueueList, QueueSpec,
    ReceiveRequest, RedriveRequest, Results, SendBatch, SendMessage, SentId, TagList, TagsBody, UntagBody,
    VisibilityRequest,
};
use crate::service::Broker;

type App = State<Arc<Broker>>;

pub fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .route("/v1/queues", get(list))
        .route("/v1/queues/{name}", put(create).get(show).patch(patch).delete(delete))
        .route("/v1/queues/{name}/purge", post(purge))
        .route("/v1/queues/{name}/messages", post(send))
        .route("/v1/queues/{name}/messages/batch", post(send_batch))
        .route("/v1/queues/{name}/receive", post(receive))
        .route("/v1/queues/{name}/ack", post(ack))
        .route("/v1/queues/{name}/nack", post(nack))
        .route("/v1/queues/{name}/visibility", post(visibility))
        .route("/v1/queues/{name}/stream", get(stream))
        .route("/v1/queues/{name}/redrive", post(redrive))
        .route("/v1/queues/{name}/grants/{username}", put(grant).delete(revoke))
        .route("/v1/queues/{name}/tags", get(tags).put(tag).delete(untag))
}

pub(super) fn done(results: Vec<crate::error::Result<()>>) -> Json<Results<Done>> {
    Json(Results { results: results.into_iter().map(|r| r.map(|()| Done { ok: true }).into()).collect() })
}

/// Create a queue (idempotent).
#[utoipa::path(put, path = "/v1/queues/{name}", request_body = QueueSpec, tag = "queues",
    responses((status = 201, body = QueueInfo), (status = 200, body = QueueInfo), (status = 409, body = ErrorBody)))]
async fn create(
    State(b): App,
    Caller(who): Caller,
    Names(name): Names<String>,
    Body(spec): Body<QueueSpec>,
) -> ApiResult<(StatusCode, Json<QueueInfo>)> {
    let (info, created) = b.create_queue(&who, &name, spec).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(info)))
}

/// List queues.
#[utoipa::path(get, path = "/v1/queues", tag = "queues", responses((status = 200, body = QueueList)))]
async fn list(State(b): App, Caller(who): Caller) -> Json<QueueList> {
    Json(QueueList { queues: b.list_queues(&who) })
}

/// A queue's config and exact stats.
#[utoipa::path(get, path = "/v1/queues/{name}", tag = "queues", responses((status = 200, body = QueueInfo), (status = 404, body = ErrorBody)))]
async fn show(State(b): App, Caller(who): Caller, Names(name): Names<String>) -> ApiResult<Json<QueueInfo>> {
    Ok(Json(b.get_queue(&who, &name).await?))
}

/// Change a queue's config.
#[utoipa::path(patch, path = "/v1/queues/{name}", request_body = QueueSpec, tag = "queues", responses((status = 200, body = QueueInfo)))]
async fn patch(
    State(b): App,
    Caller(who): Caller,
    Names(name): Names<String>,
    Body(spec): Body<QueueSpec>,
) -> ApiResult<Json<QueueInfo>> {
    Ok(Json(b.patch_queue(&who, &name, spec).await?))
}

/// Delete a queue and its messages.
#[utoipa::path(delete, path = "/v1/queues/{name}", tag = "queues", responses((status = 204)))]
async fn delete(State(b): App, Caller(who): Caller, Names(name): Names<String>) -> ApiResult<StatusCode> {
    b.delete_queue(&who, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Drop every message of a queue.
#[utoipa::path(post, path = "/v1/queues/{name}/purge", tag = "queues", responses((status = 204)))]
async fn purge(State(b): App, Caller(who): Caller, Names(name): Names<String>) -> ApiResult<StatusCode> {
    b.purge_queue(&who, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send one message: 201 when stored, 200 when `dedup_id` named an earlier one.
#[utoipa::path(post, path = "/v1/queues/{name}/messages", request_body = SendMessage, tag = "queues",
    responses((status = 201, body = SentId), (status = 200, body = SentId), (status = 413, body = ErrorBody)))]
async fn send(
    State(b): App,
    Caller(who): Caller,
    Names(name): Names<String>,
    Body(m): Body<SendMessage>,
) -> ApiResult<(StatusCode, Json<SentId>)> {
    let sent = b
        .send(&who, &name, vec![m])
        .await?
        .pop()
        .ok_or(ApiError(crate::error::Error::invalid("no message")))??;
    Ok((
        if sent.created { StatusCode::CREATED } else { StatusCode::OK },
        Json(SentId { id: sent.id, sequence: sent.sequence }),
    ))
}

/// Send up to 100 messages; one result per entry, in order.
#[utoipa::path(post, path = "/v1/queues/{name}/messages/batch", request_body = SendBatch, tag = "queues", responses((status = 200, body = Results<SentId>)))]
async fn send_batch(
    State(b): App,
    Caller(who): Caller,
    Names(name): Names<String>,
    Body(batch): Body<SendBatch>,
) -> ApiResult<Json<Results<SentId>>> {
    let results = b.send(&who, &name, batch.messages).await?;
    Ok(Json(Results {
        results: results
            .into_iter()
            .map(|r| Entry::from(r.map(|s| SentId { id: s.id, sequence: s.sequence })))
            .collect(),
    }))
}

/// Receive messages, long-polling up to `wait_s`.
#[utoipa::path(post, path = "/v1/queues/{name}/receive", request_body = ReceiveRequest, tag = "queues", responses((status = 200, body = Messages)))]
async fn receive(
    State(b): App,
    Caller(who): Caller,
    Names(name): Names<String>,
    Body(req): Body<ReceiveRequest>,
) -> ApiResult<Json<Messages>> {
    Ok(Json(Messages { messages: b.receive(&who, &name, req).await? }))
}

/// Acknowledge deliveries: the messages are gone for good.
#[utoipa::path(post, path = "/v1/queues/{name}/ack", request_body = AckRequest, tag = "queues", responses((status = 200, body = Results<Done>)))]
async fn ack(
    State(b): App,
    Caller(who): Caller,
    Names(name): Names<String>,
    Body(req): Body<AckRequest>,
) -> ApiResult<Json<Results<Done>>> {
    Ok(done(b.ack(&who, &name, req.receipts).await?))
}

/// Return deliveries: visible again after `delay_s`.
#[utoipa::path(post, path = "/v1/queues/{name}/nack", request_body = NackRequest, tag = "queues", responses((status = 200, body = Results<Done>)))]
async fn nack(
    State(b): App,
    Caller(who): Caller,
    Names(name): Names<String>,
    Body(req): Body<NackRequest>,
) -> ApiResult<Json<Results<Done>>> {
    Ok(done(b.nack(&who, &name, req.receipts, req.delay_s).await?))
}

/// Change a delivery's visibility timeout, counted from now.
#[utoipa::path(post, path = "/v1/queues/{name}/visibility", request_body = VisibilityRequest, tag = "queues",
    responses((status = 200, body = Done), (status = 409, body = ErrorBody)))]
async fn visibility(
    State(b): App,
    Caller(who): Caller,
    Names(name): Names<String>,
    Body(req): Body<VisibilityRequest>,
) -> ApiResult<Json<Done>> {
    b.extend(&who, &name, req.receipt, req.visibility_timeout_s).await?;
    Ok(Json(Done { ok: true }))
}

/// Move dead letters back to their source queue, or to `to`.
#[utoipa::path(post, path = "/v1/queues/{name}/redrive", request_body = RedriveRequest, tag = "queues", responses((status = 200, body = Moved)))]
async fn redrive(
    State(b): App,
    Caller(who): Caller,
    Names(name): Names<String>,
    Body(req): Body<RedriveRequest>,
) -> ApiResult<Json<Moved>> {
    Ok(Json(Moved { moved: b.redrive(&who, &name, req.to).await? }))
}

/// Grant a user publish and/or consume rights on a restricted queue (owner or admin).
#[utoipa::path(put, path = "/v1/queues/{name}/grants/{username}", request_body = Grant, tag = "queues", responses((status = 204)))]
async fn grant(
    State(b): App,
    Caller(who): Caller,
    Names((name, user)): Names<(String, String)>,
    Body(g): Body<Grant>,
) -> ApiResult<StatusCode> {
    b.grant::<QueueMeta>(&who, &name, &user, Some(g)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke a user's grant on a queue.
#[utoipa::path(delete, path = "/v1/queues/{name}/grants/{username}", tag = "queues", responses((status = 204)))]
async fn revoke(
    State(b): App,
    Caller(who): Caller,
    Names((name, user)): Names<(String, String)>,
) -> ApiResult<StatusCode> {
    b.grant::<QueueMeta>(&who, &name, &user, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A queue's tags.
#[utoipa::path(get, path = "/v1/queues/{name}/tags", tag = "queues", responses((status = 200, body = TagList)))]
async fn tags(State(b): App, Caller(who): Caller, Names(name): Names<String>) -> ApiResult<Json<TagList>> {
    Ok(Json(TagList { tags: b.queue_tags(&who, &name).await? }))
}

/// Add or change tags (at most 50 per queue; keys of 1 to 128 characters, values of at most 256).
#[utoipa::path(put, path = "/v1/queues/{name}/tags", request_body = TagsBody, tag = "queues", responses((status = 200, body = TagList)))]
async fn tag(
    State(b): App,
    Caller(who): Caller,
    Names(name): Names<String>,
    Body(body): Body<TagsBody>,
) -> ApiResult<Json<TagList>> {
    Ok(Json(TagList { tags: b.tag_queue(&who, &name, body.tags).await? }))
}

/// Remove tags by key.
#[utoipa::path(delete, path = "/v1/queues/{name}/tags", request_body = UntagBody, tag = "queues", responses((status = 200, body = TagList)))]
async fn untag(
    State(b): App,
    Caller(who): Caller,
    Names(name): Names<String>,
    Body(body): Body<UntagBody>,
) -> ApiResult<Json<TagList>> {
    Ok(Json(TagList { tags: b.untag_queue(&who, &name, body.keys).await? }))
}

/// The query of a queue's stream: `max_in_flight` is read as text so that every bad value, not
/// only an out-of-range one, answers 400 `invalid_argument`.
#[derive(serde::Deserialize)]
struct QueueStreamQuery {
    max_in_flight: Option<String>,
}

/// Server push of a queue (issue 25): `text/event-stream`, one event per message as on a
/// subscription's stream (`id` = message id, `data` = the message with its receipt). Acks go to
/// `POST /v1/queues/{name}/ack` in batches; each frees room under `max_in_flight` at once.
#[utoipa::path(get, path = "/v1/queues/{name}/stream", tag = "queues",
    params(("max_in_flight" = Option<usize>, Query, description = "Bound on unacked messages of this stream, 1 to 1000")),
    responses((status = 200, content_type = "text/event-stream"), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn stream(
    State(b): App,
    Caller(who): Caller,
    headers: axum::http::HeaderMap,
    Names(name): Names<String>,
    Params(q): Params<QueueStreamQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let max_in_flight = match q.max_in_flight.as_deref() {
        None => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            ApiError(Error::InvalidArgument(format!("max_in_flight must be a whole number, got {n:?}")))
        })?),
    };
    // Fail before the 200 when the queue is missing or forbidden, or the caller holds too many.
    let token = super::auth::bearer(&headers).unwrap_or_default().to_string();
    let push = b.open_queue_stream(&who, &name, max_in_flight, token).await?;
    let heartbeat = b.stream_heartbeat;
    let state = (b, who, name, push, Vec::<Event>::new());
    let events = futures::stream::unfold(state, |(b, who, name, mut st, mut pending)| async move {
        loop {
            if let Some(e) = pending.pop() {
                return Some((Ok(e), (b, who, name, st, pending)));
            }
            match b.queue_stream_next(&who, &name, &mut st).await {
                Ok(Some(messages)) => pending = messages.iter().rev().map(event_of).collect(),
                Ok(None) => return None,
                Err(e) => {
                    tracing::info!(queue = %name, error = %e, "ending a queue stream");
                    return None;
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(heartbeat)))
}
