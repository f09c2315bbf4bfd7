//! Request extractors that answer in the API's error shape instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::error::Error;
use crate::service::Principal;

/// Largest request body the API reads, whatever the queue's own limit, unless
/// `MOM_MAX_REQUEST_BYTES` says otherwise: the spec's 5 MiB.
pub const MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;

/// The configured bounds on a request body, put on every request by [`super::router`] so that
/// every reader of a body (this module's [`Body`], the SQS endpoint) applies the same ones.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    /// Largest body (`MOM_MAX_REQUEST_BYTES`).
    pub bytes: usize,
    /// How long the whole body may take to arrive (`MOM_BODY_READ_TIMEOUT_S`; None: no bound).
    /// The headers have their own bound; this one stops a client that trickles its body.
    pub read_timeout: Option<std::time::Duration>,
}

/// The bounds on the body of the request with these extensions.
pub fn body_limit(extensions: &axum::http::Extensions) -> BodyLimit {
    extensions
        .get::<BodyLimit>()
        .copied()
        .unwrap_or(BodyLimit { bytes: MAX_REQUEST_BYTES, read_timeout: None })
}

/// The whole body, read no further than `limit.bytes`: past it `MessageTooLarge` (413); not all
/// there within `limit.read_timeout`, `RequestTimeout` (408); a body the client broke off is
/// `InvalidRequest`.
pub async fn read_limited(body: axum::body::Body, limit: BodyLimit) -> Result<Bytes, Error> {
    let read = axum::body::to_bytes(body, limit.bytes);
    let read = match limit.read_timeout {
        Some(timeout) => tokio::time::timeout(timeout, read).await.map_err(|_| {
            Error::RequestTimeout(format!("the request body did not arrive within {} s", timeout.as_secs()))
        })?,
        None => read.await,
    };
    let limit = limit.bytes;
    read.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return Error::MessageTooLarge(format!("the request is over {limit} bytes"));
            }
            source = s.source();
        }
        Error::invalid(format!("cannot read the request body: {e}"))
    })
}

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
