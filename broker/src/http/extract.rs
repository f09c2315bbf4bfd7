//! Request extractors that answer in the API's error shape instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::body::{body_limit, read_limited};
use crate::error::Error;
use crate::service::Principal;

/// A JSON body; an empty body counts as `{}`. Malformed JSON or unknown fields are 400
/// `invalid_request`, a body over the limit (`MOM_MAX_REQUEST_BYTES`) is 413 `message_too_large`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let limit = body_limit(req.extensions());
        let bytes = read_limited(req.into_body(), limit).await?;
        parse(&bytes).map(Body)
    }
}

pub fn parse<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    serde_json::from_slice(text).map_err(|e| ApiError(Error::invalid(format!("invalid JSON body: {e}"))))
}

/// The authenticated caller, put there by the authentication layer that wraps every protected
/// route. On a route outside that layer there is no caller, and the request is refused: a
/// mistake in wiring denies rather than opens.
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ApiError(Error::Unauthenticated("a bearer token is required".into())))
    }
}

/// Path parameters, with a malformed path answered as 400 `invalid_name`.
pub struct Names<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Names<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Names(p.0))
            .map_err(|e| ApiError(Error::InvalidName(format!("bad path: {e}"))))
    }
}

/// Query parameters, with a malformed query answered as 400 `invalid_request`.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Params(q.0))
            .map_err(|e| ApiError(Error::invalid(format!("bad query: {e}"))))
    }
}
