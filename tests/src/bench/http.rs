//! The broker's HTTP API under load: one HTTP/1.1 keep-alive connection per worker (a pool sized
//! to the concurrency), `TCP_NODELAY`, bodies serialized once up front.
//!
//! Every request is built by [`Endpoint::request`], the one place that adds the
//! `Authorization: Bearer <token>` header obtained by [`Endpoint::login`].

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{message_json, Error, Result, Scenario, Scenarios};

/// Where the broker listens, and how each request to it is dressed.
#[derive(Debug)]
pub struct Endpoint {
    addr: SocketAddr,
    host: HeaderValue,
    bearer: Option<HeaderValue>,
}

#[derive(Deserialize)]
struct Token {
    access_token: String,
}

impl Endpoint {
    /// `base` is `http://host:port`; with `credentials` (user, password), logs in first.
    pub async fn connect(base: &str, credentials: Option<(&str, &str)>) -> Result<Arc<Self>> {
        let mut endpoint = Self::resolve(base).await?;
        if let Some((user, password)) = credentials {
            endpoint.bearer = Some(endpoint.login(user, password).await?);
        }
        Ok(Arc::new(endpoint))
    }

    /// The `Authorization` value every request carries (`Bearer <token>`), once logged in.
    pub fn bearer(&self) -> Option<&str> {
        self.bearer.as_ref().and_then(|b| b.to_str().ok())
    }

    /// `POST /v1/auth/token`; the header value to send with every later request.
    async fn login(&self, user: &str, password: &str) -> Result<HeaderValue> {
        let path = Uri::from_static("/v1/auth/token");
        let body = serde_json::to_vec(&serde_json::json!({ "username": user, "password": password }))?;
        let mut conn =
            Conn::new(Arc::new(Endpoint { addr: self.addr, host: self.host.clone(), bearer: None }));
        let bytes = conn.expect(Method::POST, &path, Bytes::from(body), &[StatusCode::OK]).await?;
        let token: Token = serde_json::from_slice(&bytes)?;
        HeaderValue::from_str(&format!("Bearer {}", token.access_token))
            .map_err(|e| Error::Protocol(format!("unusable token: {e}")))
    }

    async fn resolve(base: &str) -> Result<Self> {
        let uri: Uri = base.parse().map_err(|e| Error::Input(format!("bad --url {base}: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(Error::Input(format!("--url must be http://host:port, got {base}")));
        }
        let authority =
            uri.authority().ok_or_else(|| Error::Input(format!("--url has no host: {base}")))?.clone();
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((authority.host(), port))
            .await?
            .next()
            .ok_or_else(|| Error::Input(format!("{} resolves to no address", authority.host())))?;
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|e| Error::Input(format!("bad host {authority}: {e}")))?;
        Ok(Endpoint { addr, host, bearer: None })
    }

    /// The one place every request is built.
    fn request(&self, method: Method, path: &Uri, body: Bytes) -> Result<Request<Full<Bytes>>> {
        let mut req = Request::builder()
            .method(method)
            .uri(path.clone())
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(bearer) = &self.bearer {
            req = req.header(AUTHORIZATION, bearer.clone());
        }
        Ok(req.body(Full::new(body))?)
    }
}

/// A keep-alive connection that reconnects after an error.
pub struct Conn {
    endpoint: Arc<Endpoint>,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// Bytes read so far on the current connection (shared with its I/O).
    read: Arc<AtomicU64>,
    /// Requests answered on the current connection: more than 0 means the next one reuses it.
    answered: u64,
}

/// Why a request got no answer: the classes a client must tell apart to know what it may resend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailKind {
    /// No TCP connection could be made (refused, unreachable).
    Connect,
    /// The connection had answered requests before and ended before this request got a single
    /// byte of answer: the keep-alive race (RFC 9112 §9.3.1), where the server closed an idle
    /// connection just as the client wrote onto it. Safe to resend if the request is idempotent.
    StaleConnection,
    /// A fresh connection ended before any byte of answer: the request may have been processed.
    ClosedBeforeResponse,
    /// The connection ended after part of the answer had arrived.
    ClosedMidResponse,
    /// No whole answer within the client's timeout.
    Timeout,
    /// Anything else (a malformed answer, a local error).
    Other,
}

impl FailKind {
    pub fn name(self) -> &'static str {
        match self {
            FailKind::Connect => "connect",
            FailKind::StaleConnection => "stale_connection",
            FailKind::ClosedBeforeResponse => "closed_before_response",
            FailKind::ClosedMidResponse => "closed_mid_response",
            FailKind::Timeout => "timeout",
            FailKind::Other => "other",
        }
    }
}

/// A request that got no answer, classified.
#[derive(Debug)]
pub struct CallFailure {
    pub kind: FailKind,
    pub error: Error,
}

impl fmt::Display for CallFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.error)
    }
}

impl Conn {
    pub fn new(endpoint: Arc<Endpoint>) -> Self {
        Conn { endpoint, sender: None, read: Arc::new(AtomicU64::new(0)), answered: 0 }
    }

    async fn sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.sender = None;
            self.answered = 0;
            let stream = TcpStream::connect(self.endpoint.addr).await?;
            stream.set_nodelay(true)?;
            self.read = Arc::new(AtomicU64::new(0));
            let io = Counted { inner: stream, read: self.read.clone() };
            let (sender, conn) = http1::handshake(TokioIo::new(io)).await?;
            tokio::spawn(async move {
                // The connection ends when the sender is dropped or the peer closes; the next
                // request notices through `is_closed` and reconnects.
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        self.sender.as_mut().ok_or_else(|| Error::Protocol("no HTTP connection".into()))
    }

    /// Whether this holds a connection the broker has not closed.
    pub fn is_open(&self) -> bool {
        self.sender.as_ref().is_some_and(|s| !s.is_closed())
    }

    /// One request; the status and the whole body of the answer.
    pub async fn call(&mut self, method: Method, path: &Uri, body: Bytes) -> Result<(StatusCode, Bytes)> {
        self.call_classified(method, path, body, None).await.map_err(|f| f.error)
    }

    /// One request, at most `timeout` long; a failure says what kind it is (see [`FailKind`]),
    /// so that a caller can resend exactly what an HTTP client may resend.
    pub async fn call_classified(
        &mut self,
        method: Method,
        path: &Uri,
        body: Bytes,
        timeout: Option<Duration>,
    ) -> Result<(StatusCode, Bytes), CallFailure> {
        let req = self
            .endpoint
            .request(method, path, body)
            .map_err(|error| CallFailure { kind: FailKind::Other, error })?;
        let exchange = async {
            self.sender().await.map_err(|error| {
                let kind = match &error {
                    Error::Io(_) => FailKind::Connect,
                    _ => FailKind::Other,
                };
                CallFailure { kind, error }
            })?;
            // After `sender()`: a connection it just made has answered nothing yet.
            let reused = self.answered > 0;
            let read = self.read.clone();
            let read_before = read.load(Ordering::Relaxed);
            let sender = self.sender.as_mut().ok_or_else(|| CallFailure {
                kind: FailKind::Other,
                error: Error::Protocol("no HTTP connection".into()),
            })?;
            let answer = async {
                sender.ready().await?;
                let res = sender.send_request(req).await?;
                let status = res.status();
                let bytes = res.into_body().collect().await?.to_bytes();
                Ok::<_, Error>((status, bytes))
            };
            answer.await.map_err(|error| {
                let kind = if read.load(Ordering::Relaxed) > read_before {
                    FailKind::ClosedMidResponse
                } else if reused {
                    FailKind::StaleConnection
                } else {
                    FailKind::ClosedBeforeResponse
                };
                CallFailure { kind, error }
            })
        };
        let result = match timeout {
            Some(limit) => tokio::time::timeout(limit, exchange).await.unwrap_or_else(|_| {
                Err(CallFailure {
                    kind: FailKind::Timeout,
                    error: Error::Protocol(format!("no answer within {} s", limit.as_secs_f64())),
                })
            }),
            None => exchange.await,
        };
        match result {
            Ok(answer) => {
                self.answered += 1;
                Ok(answer)
            }
            Err(failure) => {
                self.sender = None;
                self.answered = 0;
                Err(failure)
            }
        }
    }

    /// A request that must answer `expected`.
    pub async fn expect(
        &mut self,
        method: Method,
        path: &Uri,
        body: Bytes,
        expected: &[StatusCode],
    ) -> Result<Bytes> {
        let (status, bytes) = self.call(method, path, body).await?;
        if expected.contains(&status) {
            Ok(bytes)
        } else {
            Err(Error::Status {
                status: status.as_u16(),
                path: path.to_string(),
                body: String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned(),
            })
        }
    }
}

/// The paths of one queue, parsed once.
#[derive(Clone)]
pub(super) struct Paths {
    pub(super) queue: Uri,
    pub(super) purge: Uri,
    pub(super) send: Uri,
    pub(super) batch: Uri,
    pub(super) receive: Uri,
    pub(super) ack: Uri,
}

impl Paths {
    pub(super) fn new(queue: &str) -> Result<Self> {
        let p = |suffix: &str| -> Result<Uri> {
            format!("/v1/queues/{queue}{suffix}")
                .parse()
                .map_err(|e| Error::Input(format!("bad queue name {queue}: {e}")))
        };
        Ok(Paths {
            queue: p("")?,
            purge: p("/purge")?,
            send: p("/messages")?,
            batch: p("/messages/batch")?,
            receive: p("/receive")?,
            ack: p("/ack")?,
        })
    }
}

/// One worker of a scenario on the broker.
pub struct Worker {
    conn: Conn,
    paths: Paths,
    scenario: Scenario,
    send_body: Bytes,
    batch_body: Bytes,
    batch: usize,
}

const RECEIVE_BODY: &str = r#"{"max":1,"wait_s":1}"#;
/// Long polls of 1 s that may come back empty before a lifecycle counts as failed.
const EMPTY_RECEIVES: u32 = 10;
const OK: [StatusCode; 2] = [StatusCode::OK, StatusCode::CREATED];

#[derive(Deserialize)]
struct Received {
    messages: Vec<Receipt>,
}

#[derive(Deserialize)]
struct Receipt {
    receipt: String,
}

#[derive(Deserialize)]
struct Results {
    results: Vec<serde_json::Value>,
}

impl Scenarios for Worker {
    fn scenario(&self) -> Scenario {
        self.scenario
    }

    async fn send(&mut self) -> Result<u64> {
        self.conn
            .expect(Method::POST, &self.paths.send, self.send_body.clone(), &[StatusCode::CREATED])
            .await?;
        Ok(1)
    }

    async fn send_batch(&mut self) -> Result<u64> {
        let bytes = self.conn.expect(Method::POST, &self.paths.batch, self.batch_body.clone(), &OK).await?;
        let results: Results = serde_json::from_slice(&bytes)?;
        let stored = results.results.iter().filter(|r| r.get("id").is_some()).count();
        if stored != self.batch {
            return Err(Error::Protocol(format!("batch stored {stored} of {}", self.batch)));
        }
        Ok(stored as u64)
    }

    /// Send one, then receive until one arrives (a competing worker may take ours; we take the
    /// next), then ack it. Gives up after [`EMPTY_RECEIVES`] empty long polls.
    async fn lifecycle(&mut self) -> Result<u64> {
        self.send().await?;
        let mut empty = 0;
        let receipt = loop {
            let bytes = self
                .conn
                .expect(Method::POST, &self.paths.receive, Bytes::from_static(RECEIVE_BODY.as_bytes()), &OK)
                .await?;
            let got: Received = serde_json::from_slice(&bytes)?;
            if let Some(m) = got.messages.into_iter().next() {
                break m.receipt;
            }
            empty += 1;
            if empty == EMPTY_RECEIVES {
                return Err(Error::Protocol(format!("{EMPTY_RECEIVES} receives in a row found nothing")));
            }
        };
        let body = serde_json::to_vec(&serde_json::json!({ "receipts": [receipt] }))?;
        let bytes = self.conn.expect(Method::POST, &self.paths.ack, Bytes::from(body), &OK).await?;
        let results: Results = serde_json::from_slice(&bytes)?;
        match results.results.first().and_then(|r| r.get("ok")) {
            Some(serde_json::Value::Bool(true)) => Ok(1),
            _ => Err(Error::Protocol(format!("ack failed: {}", String::from_utf8_lossy(&bytes)))),
        }
    }
}

/// A fresh queue for one run, and the workers that load it.
pub struct Setup {
    admin: Conn,
    paths: Paths,
}

impl Setup {
    /// Creates (or reuses) `queue` and empties it.
    pub async fn new(endpoint: &Arc<Endpoint>, queue: &str) -> Result<Self> {
        Self::with_config(endpoint, queue, Bytes::from_static(b"{}")).await
    }

    /// Creates (or reuses) `queue` with `config` (the JSON body of `PUT /v1/queues/{name}`, e.g.
    /// `{"fifo":true}`) and empties it.
    pub async fn with_config(endpoint: &Arc<Endpoint>, queue: &str, config: Bytes) -> Result<Self> {
        let mut admin = Conn::new(endpoint.clone());
        let paths = Paths::new(queue)?;
        admin.expect(Method::PUT, &paths.queue, config, &OK).await?;
        admin.expect(Method::POST, &paths.purge, Bytes::new(), &[StatusCode::NO_CONTENT]).await?;
        Ok(Setup { admin, paths })
    }

    pub fn workers(
        &self,
        endpoint: &Arc<Endpoint>,
        scenario: Scenario,
        n: usize,
        body_bytes: usize,
        batch: usize,
    ) -> Vec<Worker> {
        let one = message_json(body_bytes);
        let many = format!("{{\"messages\":[{}]}}", vec![one.as_str(); batch].join(","));
        let (send_body, batch_body) = (Bytes::from(one), Bytes::from(many));
        (0..n)
            .map(|_| Worker {
                conn: Conn::new(endpoint.clone()),
                paths: self.paths.clone(),
                scenario,
                send_body: send_body.clone(),
                batch_body: batch_body.clone(),
                batch,
            })
            .collect()
    }

    /// The queue's paths.
    pub(super) fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Empties the queue after a run so the next one starts from nothing.
    pub async fn purge(&mut self) -> Result<()> {
        self.admin.expect(Method::POST, &self.paths.purge, Bytes::new(), &[StatusCode::NO_CONTENT]).await?;
        Ok(())
    }
}

/// A TCP stream that counts the bytes it read, so that a failed request can tell whether any
/// byte of its answer had arrived (only then may it have been processed, for a keep-alive race).
struct Counted {
    inner: TcpStream,
    read: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let got = buf.filled().len().saturating_sub(before) as u64;
        if got > 0 {
            self.read.fetch_add(got, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
