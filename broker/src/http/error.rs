//! The HTTP face of [`Error`]: status codes and the `{"error":{"code","message"}}` body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::Error;
use crate::model::ErrorBody;

pub fn status(e: &Error) -> StatusCode {
    match e {
        Error::InvalidRequest(_) | Error::InvalidArgument(_) | Error::InvalidName(_) => {
            StatusCode::BAD_REQUEST
        }
        Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::QueueNotFound(_)
        | Error::TopicNotFound(_)
        | Error::SubscriptionNotFound(_)
        | Error::UserNotFound(_)
        | Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::AlreadyExists(_) | Error::ReceiptInvalid => StatusCode::CONFLICT,
        Error::MessageTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
        Error::RateLimited { .. } | Error::TooManyLongPolls { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Wraps the core error so handlers can use `?`.
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (status(&self.0), Json(ErrorBody::from(&self.0))).into_response();
        if let Some(retry_after_s) = self.0.retry_after_s() {
            res.headers_mut().insert(axum::http::header::RETRY_AFTER, retry_after_s.into());
        }
        res
    }
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// 405 in the API's error shape (the method is not one this route serves).
pub fn method_not_allowed() -> Response {
    let body = serde_json::json!({ "error": { "code": "method_not_allowed", "message": "this route does not take that method" } });
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}
