//! Core errors as gRPC statuses: the code follows the HTTP status of the same error, and the
//! API's error code travels in the details and in metadata, as every front door says it.

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::Error;

/// Domain of the `google.rpc.ErrorInfo` in error details.
pub const ERROR_DOMAIN: &str = "mom";
/// Metadata key carrying the API's error code on every error status.
pub const ERROR_CODE_KEY: &str = "mom-error-code";

/// The gRPC status of a core error: the code follows the HTTP status of the same error, and the
/// API's error code travels in the details (ErrorInfo) and in `mom-error-code` metadata.
pub fn status(e: &Error) -> Status {
    let code = match e {
        Error::InvalidRequest(_)
        | Error::InvalidArgument(_)
        | Error::InvalidName(_)
        | Error::MessageTooLarge(_) => Code::InvalidArgument,
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

pub(super) type Answer<T> = Result<Response<T>, Status>;

pub(super) fn ok<T>(v: T) -> Answer<T> {
    Ok(Response::new(v))
}

/// Maps a core result to the gRPC status.
pub(super) trait OrStatus<T> {
    fn grpc(self) -> Result<T, Status>;
}

impl<T> OrStatus<T> for Result<T, Error> {
    fn grpc(self) -> Result<T, Status> {
        self.map_err(|e| status(&e))
    }
}
