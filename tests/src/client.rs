//! The HTTP client of the tests. Every request goes through [`Client::try_request`], so adding
//! authentication (a bearer token) later is a change in one place.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::queue::Queue;

/// Time allowed for a request unless [`Client::with_timeout`] says otherwise; long polls wait at most 20 s.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A request body: JSON, raw bytes with a content type (malformed JSON), or none at all.
#[derive(Debug, Clone)]
pub enum Body {
    None,
    Json(Value),
    Raw { content_type: Option<&'static str>, bytes: Vec<u8> },
}

impl From<Value> for Body {
    fn from(value: Value) -> Self {
        Body::Json(value)
    }
}

/// Client of one broker's HTTP API.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    bearer: Option<String>,
    /// Sent on every request besides the bearer token (e.g. `X-Forwarded-For`).
    headers: HeaderMap,
    timeout: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

impl Client {
    /// A client of the broker at `base`, e.g. `http://127.0.0.1:8080`.
    pub fn new(base: impl Into<String>) -> Self {
        let http =
            reqwest::Client::builder().build().unwrap_or_else(|e| panic!("cannot build an HTTP client: {e}"));
        Self { http, base: base.into(), bearer: None, headers: HeaderMap::new(), timeout: REQUEST_TIMEOUT }
    }

    /// The same client with another time limit per request.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same client, sending `Authorization: Bearer <token>` on every request.
    pub fn with_bearer(mut self, token: impl Into<String>) -> Self {
        self.bearer = Some(token.into());
        self
    }

    /// The same client, sending `name: value` on every request.
    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        let value = HeaderValue::from_str(value)
            .unwrap_or_else(|e| panic!("bad value {value:?} for header {name}: {e}"));
        self.headers.insert(HeaderName::from_static(name), value);
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The bearer token this client sends, if any.
    pub fn bearer(&self) -> Option<&str> {
        self.bearer.as_deref()
    }

    /// Helper for the routes of one queue.
    pub fn queue(&self, name: &str) -> Queue {
        Queue::new(self.clone(), name)
    }

    /// Sends one request. Transport errors (connection refused, timeout) are returned, so a test can
    /// expect them, e.g. from a broker that is shutting down.
    pub async fn try_request(&self, method: Method, path: &str, body: Body) -> Result<Resp, reqwest::Error> {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base)).timeout(self.timeout);
        if let Some(token) = &self.bearer {
            req = req.bearer_auth(token);
        }
        req = req.headers(self.headers.clone());
        req = match body {
            Body::None => req,
            Body::Json(value) => req.json(&value),
            Body::Raw { content_type, bytes } => {
                let req = match content_type {
                    Some(ct) => req.header(CONTENT_TYPE, ct),
                    None => req,
                };
                req.body(bytes)
            }
        };
        let response = req.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Resp { method, path: path.to_string(), status, headers, text, json })
    }

    /// Sends one request; a transport error fails the test.
    pub async fn request(&self, method: Method, path: &str, body: Body) -> Resp {
        let what = format!("{method} {path}");
        self.try_request(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{what} on {}: transport error: {e}", self.base))
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.request(Method::GET, path, Body::None).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.request(Method::DELETE, path, Body::None).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.request(Method::PUT, path, body.into()).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.request(Method::POST, path, body.into()).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.request(Method::PATCH, path, body.into()).await
    }

    /// Starts `POST path` with a JSON body on a connection of its own, sending the headers and all
    /// of the body but its last byte: the request stays in flight on the broker until
    /// [`PartialRequest::finish`]. For testing what a draining broker does with requests in flight.
    pub async fn start_partial_post(&self, path: &str, body: &Value) -> PartialRequest {
        let host = self.base.trim_start_matches("http://").to_string();
        let body = body.to_string().into_bytes();
        let auth = match &self.bearer {
            Some(token) => format!("Authorization: Bearer {token}\r\n"),
            None => String::new(),
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n{auth}\r\n",
            body.len()
        );
        let (first, last) = body.split_at(body.len().saturating_sub(1));
        let what = format!("POST {path} on {host}");
        let stream = within(self.timeout, &what, async {
            let mut stream = TcpStream::connect(&host).await?;
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(first).await?;
            stream.flush().await?;
            Ok(stream)
        })
        .await;
        PartialRequest { stream, what, rest: last.to_vec(), timeout: self.timeout }
    }
}

/// True for a transport failure that says "this node is gone, try another": the connection was
/// refused, reset, or closed before the response arrived (a node killed or done draining). A
/// timeout is not one: the node may still be working on the request.
pub fn is_connection_error(e: &reqwest::Error) -> bool {
    !e.is_timeout() && (e.is_connect() || e.is_request() || e.is_body())
}

/// Runs an I/O exchange with a time limit; an error or the timeout fails the test.
async fn within<T>(
    limit: Duration,
    what: &str,
    io: impl std::future::Future<Output = std::io::Result<T>>,
) -> T {
    match tokio::time::timeout(limit, io).await {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => panic!("{what}: no answer within {limit:?}"),
    }
}

/// A request whose body is not complete yet; see [`Client::start_partial_post`].
#[derive(Debug)]
pub struct PartialRequest {
    stream: TcpStream,
    what: String,
    rest: Vec<u8>,
    timeout: Duration,
}

impl PartialRequest {
    /// Sends the rest of the body and reads the response: status and body text.
    pub async fn finish(mut self) -> (u16, String) {
        let what = self.what;
        let stream = &mut self.stream;
        let rest = &self.rest;
        let raw = within(self.timeout, &what, async {
            stream.write_all(rest).await?;
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await?;
            Ok(raw)
        })
        .await;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{what}: no HTTP status in response {text:?}"));
        (status, body.to_string())
    }
}

/// A response, with the request it answers for error messages.
#[derive(Debug, Clone)]
pub struct Resp {
    pub method: Method,
    pub path: String,
    pub status: u16,
    pub headers: HeaderMap,
    /// The body as text.
    pub text: String,
    /// The body as JSON, `Null` when it is not JSON.
    pub json: Value,
}

impl Resp {
    /// Fails the test unless the status is `status`; returns the response for chaining.
    #[track_caller]
    pub fn expect_status(self, status: u16) -> Self {
        assert_eq!(
            self.status, status,
            "{} {} answered {} (expected {status}): {}",
            self.method, self.path, self.status, self.text
        );
        self
    }

    /// Fails the test unless this is `{"error":{"code": code, "message": <non-empty>}}` with `status`.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Self {
        let me = self.expect_status(status);
        assert_error_object(&me.json["error"], code, &me.to_string());
        me
    }

    /// `error.code` of an error response.
    pub fn error_code(&self) -> Option<&str> {
        self.json["error"]["code"].as_str()
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl fmt::Display for Resp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> {} {}", self.method, self.path, self.status, self.text)
    }
}

/// Fails the test unless `error` is `{"code": code, "message": <non-empty string>}` with no
/// leaked transport or storage error text in the message. `context` goes into failure messages.
#[track_caller]
pub fn assert_error_object(error: &Value, code: &str, context: &str) {
    assert_eq!(error["code"].as_str(), Some(code), "expected error code {code:?} in {context}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(!message.trim().is_empty(), "error without a message in {context}");
    let lower = message.to_ascii_lowercase();
    for leak in ["os error", "connection refused", "ioerror", "backtrace", "panicked"] {
        assert!(!lower.contains(leak), "error message leaks internals ({leak:?}) in {context}");
    }
}
