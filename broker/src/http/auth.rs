//! `POST /v1/auth/token`, and the layer that authenticates and rate-limits every other `/v1` route.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::extract::Body;
use crate::error::Error;
use crate::service::Broker;

pub fn routes() -> Router<Arc<Broker>> {
    Router::new().route("/v1/auth/token", post(token))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    username: String,
    password: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// Exchange a username and password for a bearer token.
#[utoipa::path(post, path = "/v1/auth/token", request_body = Login, tag = "auth",
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::model::ErrorBody), (status = 429, body = crate::model::ErrorBody)))]
async fn token(
    State(b): State<Arc<Broker>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    Body(login): Body<Login>,
) -> ApiResult<Json<TokenResponse>> {
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client = b.auth.client_ip(peer.ip(), forwarded);
    let t = b.login(&login.username, &login.password, client).await?;
    Ok(Json(TokenResponse { access_token: t.access_token, token_type: "Bearer", expires_in: t.expires_in }))
}

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(crate::service::auth::bearer_token)
}

/// Authenticates the bearer token (401), then takes a rate-limit token (429), then hands the
/// caller to the handler.
pub async fn require(State(b): State<Arc<Broker>>, mut req: Request, next: Next) -> Response {
    let Some(token) = bearer(req.headers()) else {
        return ApiError(Error::Unauthenticated("a bearer token is required".into())).into_response();
    };
    b.meta.current().await;
    let who = match b.authenticate(token) {
        Ok(p) => p,
        Err(e) => return ApiError(e).into_response(),
    };
    if let Err(e) = b.auth.admit(&who.name).await {
        return ApiError(e).into_response();
    }
    req.extensions_mut().insert(who);
    next.run(req).await
}
