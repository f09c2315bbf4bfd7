//! Reading a request body within the configured bounds, shared by the front doors that read
//! bodies over HTTP (the native API's `http/` and the SQS endpoint's `sqs/`; gRPC hands the same
//! limit to tonic's decoder): one reader, one limit, one answer to a body too large or too slow.

use axum::body::Bytes;

use crate::error::Error;

/// Largest request body the API reads, whatever the queue's own limit, unless
/// `MOM_MAX_REQUEST_BYTES` says otherwise: the spec's 5 MiB.
pub const MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;

/// The configured bounds on a request body, put on every request by [`crate::http::router`] so
/// that every reader of a body (`http::extract::Body`, the SQS endpoint) applies the same ones.
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
