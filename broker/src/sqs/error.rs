//! SQS's error shape: `{"__type": "com.amazonaws.sqs#Code", "message"}` plus the query-compatible
//! code in `x-amzn-query-error`, which SDKs of the older query protocol report as the code.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::Error;

#[derive(Debug)]
pub struct SqsError {
    pub status: StatusCode,
    pub code: &'static str,
    /// The code of SQS's query protocol, where it differs.
    pub query_code: Option<&'static str>,
    pub message: String,
}

impl SqsError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        SqsError { status, code, query_code: None, message: message.into() }
    }

    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::bad("InvalidParameterValue", message)
    }

    pub fn no_queue() -> Self {
        SqsError {
            query_code: Some("AWS.SimpleQueueService.NonExistentQueue"),
            ..Self::bad("QueueDoesNotExist", "The specified queue does not exist.")
        }
    }

    /// Whether the client or the service is at fault, as batch results say it.
    pub fn sender_fault(&self) -> bool {
        self.status.is_client_error()
    }
}

impl From<Error> for SqsError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::InvalidRequest(_)
            | Error::InvalidArgument(_)
            | Error::InvalidName(_)
            | Error::MessageTooLarge(_) => SqsError::invalid(message),
            Error::QueueNotFound(_) => SqsError::no_queue(),
            Error::AlreadyExists(_) => SqsError {
                query_code: Some("QueueAlreadyExists"),
                ..SqsError::bad("QueueNameExists", message)
            },
            Error::ReceiptInvalid => SqsError::bad("ReceiptHandleIsInvalid", message),
            Error::RequestTimeout(_) => SqsError::bad("RequestTimeout", message),
            Error::Unauthenticated(_) => {
                SqsError::new(StatusCode::FORBIDDEN, "InvalidClientTokenId", message)
            }
            Error::Forbidden(_) => SqsError::new(StatusCode::FORBIDDEN, "AccessDenied", message),
            Error::RateLimited { .. } => SqsError::bad("RequestThrottled", message),
            // SQS's own error for "the action violates a limit" (e.g. too many messages in flight).
            Error::TooManyLongPolls { .. } => SqsError::bad("OverLimit", message),
            Error::TopicNotFound(_)
            | Error::SubscriptionNotFound(_)
            | Error::UserNotFound(_)
            | Error::NotFound(_) => SqsError::invalid(message),
            Error::Unavailable(_) => {
                SqsError::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", message)
            }
        }
    }
}

impl IntoResponse for SqsError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "__type": format!("com.amazonaws.sqs#{}", self.code), "message": self.message });
        let mut res = (self.status, body.to_string()).into_response();
        let fault = if self.sender_fault() { "Sender" } else { "Receiver" };
        let headers = res.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.0"));
        if let Ok(v) = HeaderValue::from_str(&format!("{};{fault}", self.query_code.unwrap_or(self.code))) {
            headers.insert("x-amzn-query-error", v);
        }
        res
    }
}
