//! Graceful stop. On SIGTERM (or Ctrl-C) the node drains: readiness turns 503 at once, it
//! deregisters from ZooKeeper, held long polls answer with what they have, and it keeps serving
//! what arrives for a moment ([`LINGER`]) so clients that found it through ZooKeeper move away.
//! From then on every answer says `Connection: close`, so a client (NGINX) learns from the answer
//! itself that the connection ends.
//!
//! Then the listener closes without resetting anything a client made (`listen.rs`,
//! `ConnectionLimit::close`): a socket filter turns new handshakes away (unanswered, so NGINX's
//! connect times out and it tries another broker, nothing sent), the connections the kernel
//! already completed (its accept queue, and the handshakes under way, which complete into it)
//! are taken and served, and only when none arrived for a moment does the listener close; from
//! then on a connection is refused, which NGINX passes on too. Closing with connections in the
//! queue would reset them after NGINX sent a request on them, and NGINX answers 502 to a
//! POST that met a reset rather than resend it. The connections still open are left to end on
//! their own — each closes after its next answer — for at most [`IDLE_HOLD`]: closing an idle
//! one at once, as hyper's graceful shutdown does, races a request the peer may be writing onto
//! it at that instant (NGINX closes its idle upstream connections sooner, after 4 s). Requests
//! in flight finish, and the process exits — all within the drain timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::header::CONNECTION;
use axum::http::HeaderValue;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::service::Broker;

/// How long a draining node keeps accepting new requests after it deregistered.
pub const LINGER: Duration = Duration::from_secs(1);

/// The longest a draining node waits for its peers to close idle keep-alive connections.
pub const IDLE_HOLD: Duration = Duration::from_secs(5);

/// Resolves on SIGTERM or SIGINT.
pub async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// The drain steps before the listener closes: unready, deregistered, then the linger.
pub async fn drain(broker: Arc<Broker>, drain_timeout: Duration) {
    tracing::info!("draining: not ready, deregistering, answering held long polls");
    broker.draining.cancel();
    broker.meta.deregister().await;
    tokio::time::sleep(LINGER.min(drain_timeout / 2)).await;
    tracing::info!("draining: closing the listener; finishing requests in flight");
}

/// The drain of this node, from the signal to the deadline: the one place that knows when each
/// server stops taking work. Made once, before the servers, which it then runs.
pub struct Drain {
    broker: Arc<Broker>,
    timeout: Duration,
    /// Cancelled on SIGTERM or SIGINT.
    terminate: CancellationToken,
    /// HTTP's connections (see [`Drain::http`]).
    connections: Connections,
}

impl Drain {
    /// Starts waiting for the signal ([`signal`]); the drain runs once it arrives.
    pub fn on_signal(broker: Arc<Broker>, timeout: Duration) -> Self {
        let terminate = CancellationToken::new();
        tokio::spawn({
            let terminate = terminate.clone();
            async move {
                signal().await;
                terminate.cancel();
            }
        });
        Drain { broker, timeout, terminate, connections: Connections::default() }
    }

    /// What HTTP's server needs of the drain: when its listener closes (after the drain steps,
    /// [`drain`]), its connections (counted, and told `Connection: close` once the drain began),
    /// and how long those still open then are left to their peers ([`IDLE_HOLD`], a quarter of
    /// the drain timeout at most, so requests in flight keep most of it).
    pub fn http(&self) -> HttpDrain<impl Future<Output = ()> + Send + 'static> {
        let (broker, terminate, timeout) = (self.broker.clone(), self.terminate.clone(), self.timeout);
        HttpDrain {
            connections: self.connections.clone(),
            draining: self.broker.draining.clone(),
            idle_hold: IDLE_HOLD.min(timeout / 4),
            closes: async move {
                terminate.cancelled().await;
                drain(broker, timeout).await;
            },
        }
    }

    /// Resolves when gRPC's listener is to close: the linger after the drain began, when HTTP's
    /// closes; it then finishes the calls in flight (Subscribe streams end on the drain itself).
    pub fn grpc_closes(&self) -> impl Future<Output = ()> + Send + 'static {
        let (drained, terminate, timeout) =
            (self.broker.draining.clone(), self.terminate.clone(), self.timeout);
        async move {
            terminate.cancelled().await;
            drained.cancelled().await;
            tokio::time::sleep(LINGER.min(timeout / 2)).await;
        }
    }

    /// Runs the servers until both finished, or the drain timeout passed since the signal.
    pub async fn run<E: std::fmt::Display>(
        self,
        http: impl Future<Output = ()>,
        grpc: Option<tokio::task::JoinHandle<Result<(), E>>>,
    ) {
        let deadline = async {
            self.terminate.cancelled().await;
            tokio::time::sleep(self.timeout).await;
        };
        let servers = async {
            let Some(grpc) = grpc else { return http.await };
            let ((), grpc) = tokio::join!(http, grpc);
            match grpc {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "gRPC server failed"),
                Err(e) => tracing::error!(error = %e, "gRPC server task failed"),
            }
        };
        tokio::select! {
            () = servers => {}
            _ = deadline => tracing::warn!("drain timeout reached; exiting with requests still in flight"),
        }
    }
}

/// The drain as HTTP's server sees it ([`Drain::http`]).
pub struct HttpDrain<F> {
    pub connections: Connections,
    /// Cancelled when the drain begins: answers say `Connection: close` from then on.
    pub draining: CancellationToken,
    /// Resolves when the listener is to close.
    pub closes: F,
    pub idle_hold: Duration,
}

/// The HTTP connections being served, counted so that the drain can end as soon as the peers
/// closed them all.
#[derive(Clone, Default)]
pub struct Connections {
    open: Arc<AtomicUsize>,
    changed: Arc<Notify>,
}

impl Connections {
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    async fn all_closed(&self) {
        loop {
            let changed = self.changed.notified();
            if self.open() == 0 {
                return;
            }
            changed.await;
        }
    }

    /// Waits until the peers closed every connection, or `hold` passed (then says how many were
    /// left, for the caller to close).
    pub async fn left_to_peers(&self, hold: Duration) {
        if tokio::time::timeout(hold, self.all_closed()).await.is_err() {
            tracing::info!(
                open = self.open(),
                "draining: peers kept connections open for {hold:?}; closing the idle ones"
            );
        }
    }

    /// Wraps one connection's service: it counts as one open connection until the server drops
    /// it (the connection ended), and its answers say `Connection: close` once `draining` is
    /// cancelled.
    pub fn serve<S>(&self, inner: S, draining: CancellationToken) -> Tracked<S> {
        self.open.fetch_add(1, Ordering::SeqCst);
        Tracked { inner, draining, _open: Arc::new(Open(self.clone())) }
    }
}

/// One open connection; dropped with the last clone of its service.
struct Open(Connections);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One connection's service (see [`Connections::serve`]).
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    draining: CancellationToken,
    _open: Arc<Open>,
}

impl<S, R, B> tower::Service<R> for Tracked<S>
where
    S: tower::Service<R, Response = axum::http::Response<B>>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let answer = self.inner.call(request);
        let draining = self.draining.clone();
        Box::pin(async move {
            let mut response = answer.await?;
            // Checked when the answer is ready: a long poll held across the drain's start
            // closes its connection too.
            if draining.is_cancelled() {
                response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response)
        })
    }
}
