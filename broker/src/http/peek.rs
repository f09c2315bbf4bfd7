//! `GET /v1/queues/{name}/messages`: peeking at a queue (see [`crate::service::peek`]). Its own
//! router, merged into the protected routes beside `queues.rs`'s `POST` on the same path (axum
//! merges the two methods of one path).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::error::ApiResult;
use super::extract::{Caller, Names, Params};
use crate::model::ErrorBody;
use crate::service::peek::{PeekQuery, PeekedMessages};
use crate::service::Broker;

pub fn routes() -> Router<Arc<Broker>> {
    Router::new().route("/v1/queues/{name}/messages", get(peek))
}

/// Peek at a queue's messages in one state, changing nothing (no receipts).
#[utoipa::path(get, path = "/v1/queues/{name}/messages", tag = "queues", params(PeekQuery),
    responses((status = 200, body = PeekedMessages), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn peek(
    State(b): State<Arc<Broker>>,
    Caller(who): Caller,
    Names(name): Names<String>,
    Params(query): Params<PeekQuery>,
) -> ApiResult<Json<PeekedMessages>> {
    Ok(Json(PeekedMessages { messages: b.peek(&who, &name, &query).await? }))
}
