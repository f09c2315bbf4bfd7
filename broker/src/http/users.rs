//! `/v1/users`: thin handlers over user administration.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiResult;
use super::extract::{Body, Caller, Names};
use crate::service::access_keys::{AccessKeyInfo, NewAccessKey};
use crate::service::users::{NewUser, UserInfo};
use crate::service::Broker;

type App = State<Arc<Broker>>;

pub fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .route("/v1/users", get(list).post(create))
        .route("/v1/users/{username}", delete(remove))
        .route("/v1/users/{username}/password", put(password))
        .route("/v1/users/{username}/access-keys", get(list_keys).post(create_key))
        .route("/v1/users/{username}/access-keys/{id}", delete(delete_key))
}

#[derive(Serialize, ToSchema)]
pub struct AccessKeyList {
    access_keys: Vec<AccessKeyInfo>,
}

/// Create an access key for the SQS endpoint (admin or self); the secret is shown this once.
#[utoipa::path(post, path = "/v1/users/{username}/access-keys", tag = "users", responses((status = 201, body = NewAccessKey)))]
async fn create_key(
    State(b): App,
    Caller(who): Caller,
    Names(name): Names<String>,
) -> ApiResult<(StatusCode, Json<NewAccessKey>)> {
    Ok((StatusCode::CREATED, Json(b.create_access_key(&who, &name).await?)))
}

/// List a user's access keys (ids only).
#[utoipa::path(get, path = "/v1/users/{username}/access-keys", tag = "users", responses((status = 200, body = AccessKeyList)))]
async fn list_keys(
    State(b): App,
    Caller(who): Caller,
    Names(name): Names<String>,
) -> ApiResult<Json<AccessKeyList>> {
    Ok(Json(AccessKeyList { access_keys: b.list_access_keys(&who, &name)? }))
}

/// Delete an access key.
#[utoipa::path(delete, path = "/v1/users/{username}/access-keys/{id}", tag = "users", responses((status = 204)))]
async fn delete_key(
    State(b): App,
    Caller(who): Caller,
    Names((name, id)): Names<(String, String)>,
) -> ApiResult<StatusCode> {
    b.delete_access_key(&who, &name, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct UserList {
    users: Vec<UserInfo>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    password: String,
}

/// Create a user (admin).
#[utoipa::path(post, path = "/v1/users", request_body = NewUser, tag = "users", responses((status = 201, body = UserInfo), (status = 409, body = crate::model::ErrorBody)))]
async fn create(
    State(b): App,
    Caller(who): Caller,
    Body(new): Body<NewUser>,
) -> ApiResult<(StatusCode, Json<UserInfo>)> {
    Ok((StatusCode::CREATED, Json(b.create_user(&who, new).await?)))
}

/// List users (admin).
#[utoipa::path(get, path = "/v1/users", tag = "users", responses((status = 200, body = UserList)))]
async fn list(State(b): App, Caller(who): Caller) -> ApiResult<Json<UserList>> {
    Ok(Json(UserList { users: b.list_users(&who)? }))
}

/// Delete a user (admin); the user's tokens stop working at once.
#[utoipa::path(delete, path = "/v1/users/{username}", tag = "users", responses((status = 204)))]
async fn remove(State(b): App, Caller(who): Caller, Names(name): Names<String>) -> ApiResult<StatusCode> {
    b.delete_user(&who, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change a password (admin or self); the user's earlier tokens stop working at once.
#[utoipa::path(put, path = "/v1/users/{username}/password", request_body = NewPassword, tag = "users", responses((status = 204)))]
async fn password(
    State(b): App,
    Caller(who): Caller,
    Names(name): Names<String>,
    Body(req): Body<NewPassword>,
) -> ApiResult<StatusCode> {
    b.set_password(&who, &name, req.password).await?;
    Ok(StatusCode::NO_CONTENT)
}
