//! Accepting client connections. One bound on the connections a node holds open
//! (`MOM_MAX_CONNECTIONS`), shared by the HTTP and gRPC listeners, so that a flood of clients meets
//! a quick refusal instead of exhausting the process's file descriptors (after which the node could
//! not even reach Redis); and the HTTP server loop, which cuts off a client that does not send its
//! request headers within `MOM_HEADER_READ_TIMEOUT_S` (slowloris), a knob `axum::serve` does not
//! expose (it gives hyper no timer).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// File descriptors kept for everything but client connections: Redis, ZooKeeper, the listeners,
/// logs, refusals in progress.
pub const FD_RESERVE: u64 = 256;
/// Refusals in progress at once; past that a connection over the limit is closed without a word.
const MAX_REFUSING: usize = 64;
/// How long a refused client has to read its 503 before the connection is closed.
const REFUSE_LINGER: Duration = Duration::from_secs(1);
/// How long a closing listener waits with no connection arriving before it closes: far longer
/// than a handshake in flight takes to complete on the cluster's network (well under a
/// millisecond on one host, about one in a region).
const QUIET: Duration = Duration::from_millis(50);
/// The longest a closing listener waits for handshakes under way to complete. NGINX gives up on
/// a connect after 1 s (`proxy_connect_timeout`), and then the handshake never completes.
const HANDSHAKE_WAIT: Duration = Duration::from_secs(2);

/// The connections this node holds open, and the bound on them.
pub struct ConnectionLimit {
    /// `None`: no bound of our own (the fd limit still applies).
    open: Option<Arc<Semaphore>>,
    max: usize,
    refusing: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

/// How a connection past the limit is refused.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    /// `503` `unavailable` in the API's error shape, then close: a client sees why, and a load
    /// balancer (NGINX's `proxy_next_upstream http_503`) tries another node.
    Http,
    /// Close at once: gRPC speaks HTTP/2 from the first byte; the client sees UNAVAILABLE.
    Close,
}

/// The body of the 503 a refused HTTP client reads.
const REFUSED: &str = r#"{"error":{"code":"unavailable","message":"this node holds its maximum of connections; retry shortly or use another node"}}"#;

impl ConnectionLimit {
    /// A bound of `max` connections (0: none of our own).
    pub fn new(max: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(ConnectionLimit {
            open: (max > 0).then(|| Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS)))),
            max,
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
            metrics,
        })
    }

    /// The next connection that fits under the limit; those that do not are refused on the way.
    /// Accept errors (a client gone before it was accepted, or no file descriptor left) are
    /// logged and the loop goes on.
    pub async fn accept(&self, listener: &TcpListener, refusal: Refusal) -> (Counted, SocketAddr) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            };
            if let Some(counted) = self.admit(stream, refusal) {
                return (counted, peer);
            }
        }
    }

    /// Closes `listener` without resetting a connection a client already made: first new
    /// connection attempts are turned away silently ([`refuse_new_handshakes`]), then the
    /// connections the kernel completed (its accept queue, and the handshakes still in flight,
    /// which complete into it) are taken and handed to `serve`, each admitted or refused as by
    /// [`ConnectionLimit::accept`], until none arrived for [`QUIET`]; only then does the
    /// listener close, with nothing left in its queue. Closing with a connection in the queue
    /// would reset it after the client (NGINX) may have sent a request on it, and NGINX answers
    /// 502 to a POST that met a reset rather than resend it. A client whose attempt was turned
    /// away retries it (the kernel resends a SYN after a second), meets the closed port, and
    /// NGINX passes its request on to another broker, nothing having been sent. The queue is
    /// asked of the kernel itself, not of the reactor, which learns of a connection only on its
    /// next turn.
    pub async fn close(
        &self,
        listener: TcpListener,
        refusal: Refusal,
        mut serve: impl FnMut(Counted, SocketAddr),
    ) {
        let filtered = refuse_new_handshakes(&listener);
        let listener = match listener.into_std() {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the accept queue before closing the listener");
                return;
            }
        };
        let port = listener.local_addr().map(|a| a.port()).ok();
        let started = tokio::time::Instant::now();
        let mut quiet_since = started;
        loop {
            let taken = self.take_queued(&listener, refusal, &mut serve);
            // Without the filter new connections keep coming: take what is queued once, and close.
            if !filtered || started.elapsed() >= HANDSHAKE_WAIT {
                return;
            }
            if taken > 0 {
                quiet_since = tokio::time::Instant::now();
            } else if quiet_since.elapsed() >= QUIET {
                // A handshake still under way completes into the queue once its ACK arrives,
                // which a loaded machine may delay past QUIET: wait for it, within bounds (a
                // client that gave up never completes it).
                if !port.is_some_and(handshakes_under_way) {
                    return;
                }
            }
            tokio::time::sleep(QUIET / 10).await;
        }
    }

    /// Takes every connection in `listener`'s accept queue; says how many.
    fn take_queued(
        &self,
        listener: &std::net::TcpListener,
        refusal: Refusal,
        serve: &mut impl FnMut(Counted, SocketAddr),
    ) -> usize {
        let mut taken = 0;
        loop {
            let (stream, peer) = match listener.accept() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return taken,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take a connection of the accept queue");
                    return taken;
                }
            };
            taken += 1;
            let stream = match stream.set_nonblocking(true).and_then(|()| TcpStream::from_std(stream)) {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot serve a connection of the accept queue");
                    continue;
                }
            };
            if let Some(counted) = self.admit(stream, refusal) {
                serve(counted, peer);
            }
        }
    }

    /// `stream` counted under the limit, or refused (`None`).
    fn admit(&self, stream: TcpStream, refusal: Refusal) -> Option<Counted> {
        // Without TCP_NODELAY an answer written in pieces (gRPC's HEADERS and DATA frames)
        // waits on Nagle and the client's delayed ACK: tens of milliseconds per call.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let permit = match &self.open {
            None => None,
            Some(open) => match open.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    self.refuse(stream, refusal);
                    return None;
                }
            },
        };
        self.metrics.connections_open.inc();
        Some(Counted { io: stream, _permit: permit, metrics: self.metrics.clone() })
    }

    fn refuse(&self, stream: TcpStream, refusal: Refusal) {
        self.metrics.connections_refused.inc();
        tracing::debug!(max = self.max, "refusing a connection: this node holds MOM_MAX_CONNECTIONS");
        let Refusal::Http = refusal else { return };
        let Ok(permit) = self.refusing.clone().try_acquire_owned() else { return };
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(REFUSE_LINGER, answer_refused(stream)).await;
        });
    }
}

/// Writes the 503 and closes our side, then reads what the client sent until it closes too:
/// closing with its request unread would reset the connection, and the client could lose the 503.
async fn answer_refused(mut stream: TcpStream) -> io::Result<()> {
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{REFUSED}",
        REFUSED.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 4096];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
}

/// Attaches a socket filter to `listener` that drops every segment opening a connection (SYN
/// without ACK): from then on no new handshake starts, while those already under way complete
/// (their ACK passes) into the accept queue. The connections accepted afterwards inherit the
/// filter, which never matters to them (an open connection receives no such segment). Where
/// the filter cannot be attached the listener simply closes after its queue was taken, leaving
/// the race this closes: a handshake completing between the last take and the close.
fn refuse_new_handshakes(listener: &TcpListener) -> bool {
    #[cfg(target_os = "linux")]
    {
        use socket2::SockFilter;
        // Classic BPF, as `tcpdump -d` would print it. A TCP socket's filter sees the packet
        // from its TCP header on: byte 13 holds the flags.
        const LD_B_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
        const AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
        const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
        const RET_K: u16 = 0x06; // BPF_RET | BPF_K
        const TCP_FLAGS: u32 = 13;
        const SYN: u32 = 0x02;
        const ACK: u32 = 0x10;
        let program = [
            SockFilter::new(LD_B_ABS, 0, 0, TCP_FLAGS),
            SockFilter::new(AND_K, 0, 0, SYN | ACK),
            // A SYN without ACK: drop (return 0 bytes); anything else: keep it whole.
            SockFilter::new(JEQ_K, 0, 1, SYN),
            SockFilter::new(RET_K, 0, 0, 0),
            SockFilter::new(RET_K, 0, 0, u32::MAX),
        ];
        match socket2::SockRef::from(listener).attach_filter(&program) {
            Ok(()) => true,
            Err(e) => {
                // Some kernels want CAP_NET_ADMIN for it (momctl grants it to brokers).
                tracing::warn!(error = %e, "cannot stop new connections before closing the listener (CAP_NET_ADMIN missing?); closing it as it is");
                false
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = listener;
        false
    }
}

/// Whether a connection to local `port` is half made (`SYN_RECV`: its SYN answered, its ACK not
/// yet arrived), as the kernel lists them in `/proc/net/tcp{,6}` (this network namespace's).
/// Such a connection completes into the accept queue when its ACK arrives, and a listener closed
/// before would reset it after the client sent its request. Unreadable files count as none.
fn handshakes_under_way(port: u16) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .any(|path| std::fs::read_to_string(path).is_ok_and(|table| half_made(&table, port)))
}

/// Whether the kernel's TCP table `table` (`/proc/net/tcp` format: `sl local rem st ...`, ports
/// in hex) lists a connection to local `port` in `SYN_RECV` (03).
fn half_made(table: &str, port: u16) -> bool {
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1);
        let state = fields.nth(1);
        let local_port =
            local.and_then(|l| l.rsplit(':').next()).and_then(|p| u16::from_str_radix(p, 16).ok());
        state == Some("03") && local_port == Some(port)
    })
}

/// As `axum::serve` does: errors of one connection are not the listener's; anything else (no file
/// descriptor left) would repeat at once, so wait a moment.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Raises the process's soft limit of open files as far as the hard limit allows and returns
/// how many client connections fit under it: `max` when it fits with [`FD_RESERVE`] to spare, fewer
/// (with a warning) when it does not. `max` 0 (no bound of our own) stays 0.
pub fn fit_fd_limit(max: usize) -> usize {
    let want = if max == 0 { u64::MAX } else { max as u64 + FD_RESERVE };
    let soft = match rlimit::increase_nofile_limit(want) {
        Ok(soft) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the limit of open files");
            return max;
        }
    };
    if max == 0 || soft >= want {
        return max;
    }
    let fit = soft.saturating_sub(FD_RESERVE).max(1) as usize;
    tracing::warn!(
        max_connections = max,
        open_files_limit = soft,
        using = fit,
        "MOM_MAX_CONNECTIONS does not fit under the limit of open files (ulimit -n); raise that limit to allow more"
    );
    fit
}

/// A client connection that holds its place under the limit until it is dropped.
pub struct Counted {
    io: TcpStream,
    _permit: Option<OwnedSemaphorePermit>,
    metrics: Arc<Metrics>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.metrics.connections_open.dec();
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Counted {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// The gRPC listener's connections, under the same limit as HTTP's. When `closes` resolves the
/// listener closes as HTTP's does ([`ConnectionLimit::close`]): the connections already made
/// are still yielded, then the stream ends, and tonic finishes the calls in flight.
pub fn grpc_incoming(
    bound: Bound,
    limit: Arc<ConnectionLimit>,
    closes: impl Future<Output = ()> + Send + 'static,
) -> impl futures::Stream<Item = io::Result<Counted>> {
    use futures::StreamExt;
    let (queued, taken) = tokio::sync::mpsc::unbounded_channel();
    let open = futures::stream::unfold(
        (Some(bound), Box::pin(closes), limit, queued),
        |(bound, mut closes, limit, queued)| async move {
            // With MOM_LISTEN_WHEN_READY the gRPC port listens once HTTP's does (see
            // [`serve_http`]): until then a connection is refused, which NGINX passes on.
            let listener = match bound? {
                Bound::Listening(listener) => listener,
                Bound::Reserved(socket) => {
                    let listening = async {
                        while !LISTENING.load(Ordering::SeqCst) {
                            tokio::time::sleep(READY_POLL).await;
                        }
                    };
                    tokio::select! {
                        () = listening => {}
                        () = &mut closes => return None,
                    }
                    match socket.listen(BACKLOG) {
                        Ok(listener) => listener,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot listen for gRPC once ready");
                            return None;
                        }
                    }
                }
            };
            tokio::select! {
                (io, _) = limit.accept(&listener, Refusal::Close) => {
                    Some((Some(Ok(io)), (Some(Bound::Listening(listener)), closes, limit, queued)))
                }
                () = &mut closes => {
                    limit.close(listener, Refusal::Close, |io, _| {
                        let _ = queued.send(io);
                    }).await;
                    // Ends the stream once the queue's connections (sent above) were yielded.
                    Some((None, (None, closes, limit, queued)))
                }
            }
        },
    )
    .filter_map(std::future::ready);
    let taken =
        futures::stream::unfold(
            taken,
            |mut taken| async move { taken.recv().await.map(|io| (Ok(io), taken)) },
        );
    open.chain(taken)
}

/// An address this node serves on: listening from the start, or, with MOM_LISTEN_WHEN_READY,
/// only bound (so a port in use fails the start) and listening once the node is ready. Until
/// then nothing listens, so a connection is refused, never queued and reset: NGINX passes a
/// refused connect on to another broker whatever the request.
pub enum Bound {
    Listening(TcpListener),
    Reserved(TcpSocket),
}

/// The accept queue's length, as `tokio::net::TcpListener::bind` asks for.
const BACKLOG: u32 = 1024;

/// Binds `addr` ([`Bound`]): listening at once, or not before ready with MOM_LISTEN_WHEN_READY.
pub fn bind(addr: SocketAddr) -> io::Result<Bound> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // As std and tokio do on Unix: a restarted node rebinds at once, past TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    if listen_when_ready() {
        Ok(Bound::Reserved(socket))
    } else {
        Ok(Bound::Listening(socket.listen(BACKLOG)?))
    }
}

/// Set once HTTP listens (at once, or with MOM_LISTEN_WHEN_READY once the node is ready).
static LISTENING: AtomicBool = AtomicBool::new(false);

/// How often a node waiting to be ready before it listens asks itself.
const READY_POLL: Duration = Duration::from_millis(50);

/// `MOM_LISTEN_WHEN_READY=true` (momctl sets it on its brokers): the node listens only once it
/// is first ready, so a load balancer that tries it before is refused the connection, which it
/// can pass on to another node whatever the request, where a 503 to a POST would reach the
/// client (NGINX never resends a POST that reached a node). `/healthz` and `/readyz` are not
/// answered before (Docker's health check, on `/readyz`, fails until then, as it would with a
/// 503). Without it the node listens at start and answers `/readyz` 503 while it loads.
pub fn listen_when_ready() -> bool {
    std::env::var("MOM_LISTEN_WHEN_READY").is_ok_and(|v| matches!(v.as_str(), "true" | "1"))
}

/// Whether `app` answers its own `/readyz` with 200.
async fn ready(app: &axum::Router) -> bool {
    let Ok(mut request) = axum::http::Request::get("/readyz").body(axum::body::Body::empty()) else {
        return false;
    };
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 0))));
    match tower::ServiceExt::oneshot(app.clone(), request).await {
        Ok(response) => response.status().is_success(),
        Err(_) => false,
    }
}

/// Waits until the node is ready, then listens on `socket` (bound, not listening, since the
/// start); `None` when the shutdown came first or listening failed.
async fn listen_once_ready(
    socket: TcpSocket,
    app: &axum::Router,
    shutdown: Pin<&mut impl Future<Output = ()>>,
) -> Option<TcpListener> {
    let addr = socket.local_addr().ok()?;
    tracing::info!(%addr, "not listening until ready (MOM_LISTEN_WHEN_READY)");
    let wait = async {
        while !ready(app).await {
            tokio::time::sleep(READY_POLL).await;
        }
    };
    tokio::select! {
        () = wait => {}
        () = shutdown => return None,
    }
    match socket.listen(BACKLOG) {
        Ok(listener) => {
            tracing::info!(%addr, "ready: listening");
            Some(listener)
        }
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen once ready");
            None
        }
    }
}

/// Serves `app` on `listener` until the drain closes it ([`crate::shutdown`]): then the
/// connections the kernel already completed are taken and served, the listener closes, the
/// connections still open are left to their peers for the drain's idle hold, the idle ones left
/// close, and it returns once the requests in flight have finished (the caller bounds that with
/// the drain timeout).
///
/// With a `header_read_timeout`, a connection must deliver each request's headers within it: for
/// the first request the watchdog in [`Server::serve`] closes a connection that has not (whatever
/// protocol it turns out to speak), and for later requests on a keep-alive HTTP/1.1 connection
/// hyper's own header read timeout does, which also closes a keep-alive connection left idle that
/// long.
pub async fn serve_http(
    bound: Bound,
    limit: Arc<ConnectionLimit>,
    app: axum::Router,
    header_read_timeout: Option<Duration>,
    drain: crate::shutdown::HttpDrain<impl Future<Output = ()>>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    let server = Server {
        builder,
        graceful: GracefulShutdown::new(),
        app,
        header_read_timeout,
        tracked: drain.connections,
        draining: drain.draining,
    };
    let shutdown = drain.closes;
    tokio::pin!(shutdown);
    let listener = match bound {
        Bound::Listening(listener) => listener,
        Bound::Reserved(socket) => match listen_once_ready(socket, &server.app, shutdown.as_mut()).await {
            Some(listener) => listener,
            None => return,
        },
    };
    LISTENING.store(true, Ordering::SeqCst);
    loop {
        tokio::select! {
            (io, peer) = limit.accept(&listener, Refusal::Http) => server.serve(io, peer),
            () = &mut shutdown => break,
        }
    }
    // The accept queue: connections whose peer may already have sent a request on them.
    limit.close(listener, Refusal::Http, |io, peer| server.serve(io, peer)).await;
    server.tracked.left_to_peers(drain.idle_hold).await;
    server.graceful.shutdown().await;
}

/// What serving one HTTP connection needs.
struct Server {
    builder: auto::Builder<TokioExecutor>,
    graceful: GracefulShutdown,
    app: axum::Router,
    header_read_timeout: Option<Duration>,
    tracked: crate::shutdown::Connections,
    draining: tokio_util::sync::CancellationToken,
}

impl Server {
    /// Serves one accepted connection on its own task.
    fn serve(&self, io: Counted, peer: SocketAddr) {
        let started = Arc::new(AtomicBool::new(false));
        let service = {
            let started = started.clone();
            tower::ServiceExt::map_request(self.app.clone(), move |mut req: axum::http::Request<Incoming>| {
                started.store(true, Ordering::Relaxed);
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            })
        };
        // Counted for the drain, and answering `Connection: close` once it began.
        let service = self.tracked.serve(service, self.draining.clone());
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service))
            .into_owned();
        let conn = self.graceful.watch(conn);
        let header_read_timeout = self.header_read_timeout;
        tokio::spawn(async move {
            tokio::pin!(conn);
            if let Some(timeout) = header_read_timeout {
                tokio::select! {
                    r = &mut conn => return finished(r),
                    () = tokio::time::sleep(timeout) => {}
                }
                if !started.load(Ordering::Relaxed) {
                    tracing::debug!(%peer, "closing a connection that sent no request headers within the header read timeout");
                    return;
                }
            }
            finished(conn.await)
        });
    }
}

fn finished<E: std::fmt::Display>(r: Result<(), E>) {
    if let Err(e) = r {
        tracing::trace!(error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn listener() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        (listener, addr)
    }

    /// A client that tries to connect while the listener refuses new handshakes is neither
    /// accepted nor reset: its attempt goes unanswered, and once the listener closed its retry
    /// is refused, which a proxy passes on to another node since it sent nothing.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_connection_attempt_during_the_close_is_refused_not_reset() {
        let (listener, addr) = listener().await;
        refuse_new_handshakes(&listener);
        let connect = tokio::spawn(TcpStream::connect(addr));
        // The kernel resends an unanswered SYN after a second: until then nothing happens.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!connect.is_finished(), "a new handshake completed on a listener that refuses them");
        drop(listener);
        let outcome = tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .expect("the client's retry meets the closed port within seconds")
            .expect("task");
        let error = outcome.expect_err("connected to a closed listener");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
    }

    #[test]
    fn a_half_made_connection_is_found_by_its_local_port() {
        let table =
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0B27C20A:1F90 0127C20A:A1B2 03 00000000:00000000 02:00000064 00000000     0        0 0
   1: 0B27C20A:1F91 0127C20A:A1B3 01 00000000:00000000 00:00000000 00000000     0        0 4242 1
";
        assert!(half_made(table, 8080), "SYN_RECV on port 8080 (1F90)");
        assert!(!half_made(table, 8081), "port 8081 (1F91) is established, not half made");
        assert!(!half_made(table, 9090));
    }

    /// Connections the kernel completed before the close are served, with what their clients
    /// already sent, and the port refuses connections afterwards.
    #[tokio::test]
    async fn close_serves_the_accept_queue_then_the_port_refuses() {
        let (listener, addr) = listener().await;
        let mut clients = Vec::new();
        for i in 0..3u8 {
            let mut client = TcpStream::connect(addr).await.expect("connect");
            client.write_all(&[i]).await.expect("send");
            clients.push(client);
        }
        let limit = ConnectionLimit::new(0, Arc::new(Metrics::new()));
        let mut served = Vec::new();
        limit.close(listener, Refusal::Close, |io, _| served.push(io)).await;
        assert_eq!(served.len(), 3, "every queued connection is served");
        let mut sent = Vec::new();
        for mut io in served {
            let mut byte = [0u8; 1];
            io.read_exact(&mut byte).await.expect("what the client sent before the close");
            sent.push(byte[0]);
        }
        sent.sort_unstable();
        assert_eq!(sent, vec![0, 1, 2]);
        let error = TcpStream::connect(addr).await.expect_err("the port still listens");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
    }
}
