//! The SQS-compatible front door: `POST /` with `X-Amz-Target: AmazonSQS.<Action>` (AWS JSON 1.0),
//! authenticated with Signature V4 access keys, so any AWS SDK works with only its endpoint URL
//! changed. Every action is a thin adapter over the same `service` methods as the native API:
//! the queues are the same queues. The older query protocol (form parameters, XML answers) is
//! translated to the same actions by `query.rs`, on `POST /`, `GET /` and queue URLs.

pub(crate) mod actions;
pub(crate) mod checks;
mod error;
mod md5;
mod moves;
mod query;
pub(crate) mod queues;
pub(crate) mod sigv4;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};

pub use error::SqsError;
use query::Protocol;

use crate::model::now_ms;
use crate::service::{Broker, Principal};

/// The account every queue URL and ARN names.
pub const ACCOUNT: &str = "000000000000";

/// Where queue URLs point and which region ARNs name.
#[derive(Debug, Clone)]
pub struct SqsSettings {
    /// `MOM_PUBLIC_URL`; default: the request's scheme and host.
    pub public_url: Option<String>,
    /// `MOM_REGION`.
    pub region: String,
}

pub fn routes(settings: SqsSettings) -> Router<Arc<Broker>> {
    Router::new()
        .route("/", post(handle).get(handle))
        // Query-protocol clients send queue operations to the queue's URL.
        .route(&format!("/{ACCOUNT}/{{queue}}"), post(handle).get(handle))
        .layer(Extension(Arc::new(settings)))
}

/// What an action needs besides its input: the caller and how to write queue URLs.
pub struct Ctx {
    pub who: Principal,
    pub base_url: String,
    pub region: String,
}

async fn handle(
    State(b): State<Arc<Broker>>,
    Extension(settings): Extension<Arc<SqsSettings>>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let protocol = Protocol::of(&parts.method, &parts.headers);
    let answer = |e: SqsError| match protocol {
        Protocol::Json => e.into_response(),
        Protocol::Query => query::respond(Err(e)),
    };
    // The same bound as the native API's (`MOM_MAX_REQUEST_BYTES`), answered in SQS's shape.
    let body: Bytes = match crate::body::read_limited(body, crate::body::body_limit(&parts.extensions)).await
    {
        Ok(b) => b,
        Err(e @ crate::error::Error::MessageTooLarge(_)) => {
            return answer(SqsError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                e.to_string(),
            ))
        }
        Err(e) => return answer(SqsError::from(e)),
    };
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    match (protocol, serve(&b, &settings, protocol, &method, &uri, &headers, &body).await) {
        (Protocol::Json, Ok((_, v))) => {
            ([("content-type", "application/x-amz-json-1.0")], v.to_string()).into_response()
        }
        (Protocol::Json, Err(e)) => e.into_response(),
        (Protocol::Query, result) => query::respond(result),
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<&str> = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// Runs one request of either protocol; the action's name comes back with its output, for the
/// query protocol's `<{Action}Response>`.
async fn serve(
    b: &Broker,
    settings: &SqsSettings,
    protocol: Protocol,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, serde_json::Value), SqsError> {
    let form = match protocol {
        Protocol::Query => Some(query::Request::parse(uri.query(), body)?),
        Protocol::Json => None,
    };
    let action = match &form {
        Some(form) => form.action.clone(),
        None => header(headers, "x-amz-target")
            .and_then(|t| t.strip_prefix("AmazonSQS.").map(str::to_string))
            .ok_or_else(|| {
                SqsError::bad("InvalidAction", "X-Amz-Target must name an action: AmazonSQS.<Action>")
            })?,
    };
    b.meta.current().await;
    let who = authenticate(b, method, uri, headers, body)?;
    b.auth.admit(&who.name).await?;
    let base_url = match &settings.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let scheme = header(headers, "x-forwarded-proto").unwrap_or_else(|| "http".into());
            format!("{scheme}://{}", header(headers, "host").unwrap_or_else(|| "localhost".into()))
        }
    };
    let input: serde_json::Value = if let Some(form) = form {
        let at_queue = (uri.path() != "/").then(|| format!("{base_url}{}", uri.path()));
        form.input(at_queue)?
    } else if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| SqsError::bad("SerializationException", format!("malformed JSON: {e}")))?
    };
    let ctx = Ctx { who, base_url, region: settings.region.clone() };
    let output = actions::dispatch(b, &ctx, &action, input).await?;
    Ok((action, output))
}

/// Checks the Signature V4 of a request and returns the access key's user.
fn authenticate(
    b: &Broker,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Principal, SqsError> {
    let forbidden = |code, msg: &str| SqsError::new(StatusCode::FORBIDDEN, code, msg);
    let auth = header(headers, "authorization")
        .ok_or_else(|| forbidden("MissingAuthenticationToken", "Request is missing Authentication Token"))?;
    let auth = sigv4::parse_authorization(&auth).ok_or_else(|| {
        forbidden("IncompleteSignature", "The Authorization header is not a valid AWS4-HMAC-SHA256 signature")
    })?;
    let date = header(headers, "x-amz-date").and_then(|d| sigv4::parse_amz_date(&d));
    let now_s = now_ms() / 1000;
    match date {
        Some(t) if (now_s - t).abs() <= sigv4::MAX_SKEW_S => {}
        _ => {
            return Err(SqsError::bad(
                "RequestExpired",
                "Request has expired: X-Amz-Date is missing or more than 15 minutes from the server's time",
            ))
        }
    }
    let (who, secret) = b.access_key(&auth.access_key_id).ok_or_else(|| {
        forbidden("InvalidClientTokenId", "The security token included in the request is invalid.")
    })?;
    let lookup = |name: &str| header(headers, name);
    let signed = sigv4::Signed {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        header: &lookup,
        body,
    };
    let expected = sigv4::expected_signature(&auth, &signed, &secret);
    if !expected.is_some_and(|e| sigv4::signature_matches(&e, &auth.signature)) {
        return Err(forbidden(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    Ok(who)
}
