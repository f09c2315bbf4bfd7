//! `mom-bench stream`: the message lifecycle through consume streams (issue 25), beside
//! RabbitMQ's `basic.consume` at the same prefetch.
//!
//! Producers send one message at a time, each then waiting until a consumer has acked it: the
//! closed loop of the `lifecycle` scenario, with the receive and the ack moved onto consumers that
//! hold one long-lived stream each and settle in batches. Over HTTP the producers send with
//! `POST /v1/queues/{name}/messages` and the consumers read `GET /v1/queues/{name}/stream?max_in_flight=N`
//! (server-sent events) and post what they hold to the ack route; over gRPC the producers call
//! `Send` and the consumers hold a `Consume` stream (credit N, acks up the same stream); over AMQP
//! the producers publish with confirms and the consumers `basic.consume` with `basic.qos` N and ack
//! with `multiple`. A consumer acks everything that arrived while its previous ack was on its way,
//! so batches grow with the load and a lone message is acked at once (nothing waits for a batch to
//! fill).
//!
//! Each message's body starts with its number, so the consumer that gets it finds when it was
//! sent: the *delivery latency* (send → arrival at the consumer) goes into a histogram of its own,
//! for messages sent in the measured window. The producers are the [`load`](super::load) engine's
//! workers, so the closed-loop figure is messages acked per second end to end and an open-loop run
//! keeps its schedule.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use hdrhistogram::Histogram;
use hyper::{Method, StatusCode, Uri};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{FieldTable, ShortString};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::http::{Conn, Endpoint, Setup};
use super::load::{latency_of, Op, START_DELAY};
use super::{amqp, grpc, Error, Latency, Result, Scenario};
use mom_tests::grpc::pb;
use mom_tests::grpc::GrpcClient;

/// How long a producer waits for its message to be acked before the operation counts as failed.
const ACK_WAIT: Duration = Duration::from_secs(10);

/// Most receipts in one ack call (the ack route's and `ConsumeSettle`'s limit).
const MAX_ACKS: usize = 100;

/// The API a run goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The broker's HTTP API: sends, an SSE stream per consumer, acks to the ack route.
    Http,
    /// The broker's gRPC API: `Send`, a `Consume` stream per consumer.
    Grpc,
    /// RabbitMQ: publish with confirms, `basic.consume`, `basic.ack` with `multiple`.
    Amqp,
}

impl Transport {
    /// The result's target, as the other scenarios name it.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Grpc => "grpc",
            Transport::Amqp => "amqp",
        }
    }
}

/// The result's scenario for a prefetch (credit) value: `stream-p1`, `stream-p100`.
pub fn scenario(prefetch: usize) -> String {
    format!("stream-p{prefetch}")
}

/// The prefetch of a scenario named by [`scenario`], if it is one.
pub fn prefetch_of(scenario: &str) -> Option<usize> {
    scenario.strip_prefix("stream-p")?.parse().ok()
}

/// Where one run goes and what it is made of.
#[derive(Clone)]
pub struct Config {
    pub transport: Transport,
    /// The broker's HTTP API (logged in): queue setup for HTTP and gRPC, and HTTP's own requests.
    pub endpoint: Option<Arc<Endpoint>>,
    /// `http://host:port` of the broker (the SSE stream's base), or `amqp://…` of RabbitMQ.
    pub url: String,
    /// `host:port` of the broker's gRPC API.
    pub grpc: Option<String>,
    /// AMQP: connections the producers' channels share.
    pub amqp_connections: usize,
    pub queue: String,
    /// Most unacked messages per consumer: `max_in_flight`, gRPC credit, AMQP prefetch.
    pub prefetch: usize,
    pub consumers: usize,
    pub producers: usize,
    pub body_bytes: usize,
}

/// A message sent and not yet acked.
struct Waiting {
    sent: Instant,
    /// When a consumer got it (the first time).
    arrived: Option<Instant>,
    acked: Option<oneshot::Sender<()>>,
}

/// What producers and consumers share: who waits for which message, and the delivery latencies.
struct Ledger {
    origin: Instant,
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, Waiting>>,
    /// µs after `origin` from which sends count; `u64::MAX` until the run is timed.
    measure_from_us: AtomicU64,
    delivery: Mutex<Histogram<u64>>,
    /// Arrival at the consumer → its ack confirmed (HTTP: answered; gRPC: `settled`; AMQP:
    /// written), for the same messages: what the consumer side adds to the lifecycle.
    settle: Mutex<Histogram<u64>>,
    /// Deliveries of messages this run did not send (none expected: the queue is emptied first).
    strangers: AtomicU64,
}

impl Ledger {
    fn new() -> Result<Self> {
        let delivery = Histogram::new_with_bounds(1, 100_000_000, 3)
            .map_err(|e| Error::Input(format!("histogram bounds: {e}")))?;
        Ok(Ledger {
            origin: Instant::now(),
            next: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
            measure_from_us: AtomicU64::new(u64::MAX),
            settle: Mutex::new(delivery.clone()),
            delivery: Mutex::new(delivery),
            strangers: AtomicU64::new(0),
        })
    }

    fn since_origin(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_micros() as u64
    }

    /// A new message's number, and what resolves once it is acked. Registered before the send, so
    /// a delivery faster than the send's answer still finds it.
    fn register(&self) -> (u64, oneshot::Receiver<()>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id, Waiting { sent: Instant::now(), arrived: None, acked: Some(tx) });
        (id, rx)
    }

    /// The send of `id` is going out now.
    fn sending(&self, id: u64) {
        if let Some(w) = self.lock().get_mut(&id) {
            w.sent = Instant::now();
        }
    }

    fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiting>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A consumer got a message whose body is `body`: its number, with the delivery latency
    /// recorded when it was sent in the measured window.
    fn arrived(&self, body: &[u8]) -> Option<u64> {
        let now = Instant::now();
        let id = body
            .split(|&b| b == b' ')
            .next()
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| d.parse::<u64>().ok());
        let sent = id.and_then(|id| {
            self.lock().get_mut(&id).map(|w| {
                w.arrived.get_or_insert(now);
                w.sent
            })
        });
        let Some(sent) = sent else {
            self.strangers.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        if self.since_origin(sent) >= self.measure_from_us.load(Ordering::Relaxed) {
            let us = now.saturating_duration_since(sent).as_micros() as u64;
            self.delivery.lock().unwrap_or_else(|p| p.into_inner()).saturating_record(us.max(1));
        }
        id
    }

    /// These messages are acked: their producers go on.
    fn acked(&self, ids: &[u64]) {
        let now = Instant::now();
        let from = self.measure_from_us.load(Ordering::Relaxed);
        let mut settle = Vec::with_capacity(ids.len());
        {
            let mut waiting = self.lock();
            for id in ids {
                if let Some(mut w) = waiting.remove(id) {
                    if let Some(tx) = w.acked.take() {
                        let _ = tx.send(());
                    }
                    if let (Some(arrived), true) = (w.arrived, self.since_origin(w.sent) >= from) {
                        settle.push(now.saturating_duration_since(arrived).as_micros() as u64);
                    }
                }
            }
        }
        let mut h = self.settle.lock().unwrap_or_else(|p| p.into_inner());
        for us in settle {
            h.saturating_record(us.max(1));
        }
    }
}

/// The body of message `id`: its number, a space, then padding up to `size` bytes.
fn body(id: u64, size: usize) -> String {
    let head = format!("{id} ");
    let pad = size.saturating_sub(head.len());
    let mut s = String::with_capacity(head.len() + pad);
    s.push_str(&head);
    s.extend(std::iter::repeat_n('x', pad));
    s
}

/// How a producer sends.
enum Sender {
    Http { conn: Conn, path: Uri },
    Grpc { client: GrpcClient, queue: String },
    Amqp(amqp::Worker),
}

/// A load-engine worker: sends one message, waits until a consumer acked it.
pub struct Producer {
    ledger: Arc<Ledger>,
    send: Sender,
    body_bytes: usize,
}

impl Op for Producer {
    async fn run(&mut self) -> Result<u64> {
        let (id, acked) = self.ledger.register();
        let body = body(id, self.body_bytes);
        self.ledger.sending(id);
        let sent = match &mut self.send {
            Sender::Http { conn, path } => {
                let json = serde_json::to_vec(&serde_json::json!({ "body": body }))?;
                conn.expect(Method::POST, path, Bytes::from(json), &[StatusCode::CREATED]).await.map(drop)
            }
            Sender::Grpc { client, queue } => {
                let message = pb::OutgoingMessage { body, ..Default::default() };
                client
                    .send(pb::SendRequest { queue: queue.clone(), message: Some(message) })
                    .await
                    .map(drop)
                    .map_err(Error::from)
            }
            Sender::Amqp(worker) => worker.send_body(body.as_bytes()).await,
        };
        if let Err(e) = sent {
            self.ledger.forget(id);
            return Err(e);
        }
        match tokio::time::timeout(ACK_WAIT, acked).await {
            Ok(Ok(())) => Ok(1),
            _ => {
                self.ledger.forget(id);
                Err(Error::Protocol(format!("message {id} not acked within {ACK_WAIT:?}")))
            }
        }
    }
}

/// The latencies of a run's messages sent in the measured window.
#[derive(Debug, Clone)]
pub struct Timings {
    /// Send → arrival at a consumer.
    pub delivery: Latency,
    /// Arrival → the ack confirmed to the consumer.
    pub settle: Latency,
}

/// One run's queue, consumers and producers: open it, drive the producers, close it.
pub struct Session {
    config: Config,
    ledger: Arc<Ledger>,
    consumers: JoinSet<Result<()>>,
    setup: Option<Setup>,
    connections: Vec<lapin::Connection>,
}

impl Session {
    /// Empties the queue, opens the consumers' streams (each is open when this returns) and
    /// connects the producers.
    pub async fn open(config: Config) -> Result<(Session, Vec<Producer>)> {
        let ledger = Arc::new(Ledger::new()?);
        let mut session =
            Session { config, ledger, consumers: JoinSet::new(), setup: None, connections: Vec::new() };
        let producers = match session.config.transport {
            Transport::Http | Transport::Grpc => session.open_broker().await?,
            Transport::Amqp => session.open_amqp().await?,
        };
        Ok((session, producers))
    }

    fn endpoint(&self) -> Result<Arc<Endpoint>> {
        self.config.endpoint.clone().ok_or_else(|| Error::Input("the broker's HTTP API is needed".into()))
    }

    fn grpc_addr(&self) -> Result<String> {
        self.config.grpc.clone().ok_or_else(|| Error::Input("gRPC needs --grpc host:port".into()))
    }

    async fn open_broker(&mut self) -> Result<Vec<Producer>> {
        let endpoint = self.endpoint()?;
        let c = self.config.clone();
        let setup = Setup::new(&endpoint, &c.queue).await?;
        let paths = setup.paths().clone();
        self.setup = Some(setup);
        let mut producers = Vec::with_capacity(c.producers);
        for _ in 0..c.producers {
            let send = match c.transport {
                Transport::Grpc => Sender::Grpc {
                    client: grpc::connect(&self.grpc_addr()?, endpoint.bearer()).await?,
                    queue: c.queue.clone(),
                },
                _ => Sender::Http { conn: Conn::new(endpoint.clone()), path: paths.send.clone() },
            };
            producers.push(Producer { ledger: self.ledger.clone(), send, body_bytes: c.body_bytes });
        }
        for _ in 0..c.consumers {
            match c.transport {
                Transport::Grpc => {
                    let client = grpc::connect(&self.grpc_addr()?, endpoint.bearer()).await?;
                    let (up, down) = open_consume(client, &c).await?;
                    self.consumers.spawn(consume_grpc(up, down, self.ledger.clone()));
                }
                _ => {
                    let events = open_sse(&endpoint, &c).await?;
                    let acker = Conn::new(endpoint.clone());
                    let ack = paths.ack.clone();
                    self.consumers.spawn(consume_sse(events, acker, ack, self.ledger.clone()));
                }
            }
        }
        Ok(producers)
    }

    async fn open_amqp(&mut self) -> Result<Vec<Producer>> {
        let c = self.config.clone();
        amqp::prepare(&c.url, &c.queue).await?;
        let shared = amqp::connections(&c.url, c.amqp_connections.clamp(1, c.producers.max(1))).await?;
        let mut producers = Vec::with_capacity(c.producers);
        for i in 0..c.producers {
            let worker =
                amqp::Worker::open(&shared[i % shared.len()], &c.queue, Scenario::Send, c.body_bytes, 1, i)
                    .await?;
            producers.push(Producer {
                ledger: self.ledger.clone(),
                send: Sender::Amqp(worker),
                body_bytes: c.body_bytes,
            });
        }
        self.connections = shared;
        for i in 0..c.consumers {
            // A connection per consumer, as the broker's consumers each have their own stream.
            let mut conn = amqp::connections(&c.url, 1).await?;
            let conn = conn.pop().ok_or_else(|| Error::Protocol("no AMQP connection".into()))?;
            let channel = conn.create_channel().await?;
            let prefetch = u16::try_from(c.prefetch)
                .map_err(|_| Error::Input(format!("prefetch {} is over 65535", c.prefetch)))?;
            channel.basic_qos(prefetch, BasicQosOptions::default()).await?;
            let consumer = channel
                .basic_consume(
                    ShortString::from(c.queue.as_str()),
                    ShortString::from(format!("stream-{i}")),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            self.consumers.spawn(consume_amqp(channel, consumer, self.ledger.clone()));
            self.connections.push(conn);
        }
        Ok(producers)
    }

    /// Times the run: messages sent from `warmup` after the load engine's start count towards the
    /// delivery latency. Call just before [`super::load::drive`].
    pub fn time_from_now(&self, warmup: Duration) {
        let from = self.ledger.since_origin(Instant::now() + START_DELAY + warmup);
        self.ledger.measure_from_us.store(from, Ordering::Relaxed);
    }

    /// Stops the consumers, empties the queue, and returns the latencies of the measured window;
    /// a consumer that failed during the run fails it.
    pub async fn close(mut self) -> Result<Timings> {
        let mut failed = None;
        while let Some(done) = self.consumers.try_join_next() {
            match done {
                Ok(Err(e)) => failed = failed.or(Some(e)),
                Err(e) if !e.is_cancelled() => {
                    failed = failed.or(Some(Error::Protocol(format!("consumer task: {e}"))))
                }
                _ => {}
            }
        }
        self.consumers.shutdown().await;
        for c in &self.connections {
            // Best effort: the measurement is done; RabbitMQ requeues what was unacked.
            let _ = c.close(200, "done".into()).await;
        }
        match self.config.transport {
            Transport::Amqp => amqp::prepare(&self.config.url, &self.config.queue).await?,
            _ => {
                if let Some(setup) = &mut self.setup {
                    setup.purge().await?;
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let strangers = self.ledger.strangers.load(Ordering::Relaxed);
        if strangers > 0 {
            return Err(Error::Protocol(format!("{strangers} deliveries of messages this run did not send")));
        }
        let delivery = latency_of(&self.ledger.delivery.lock().unwrap_or_else(|p| p.into_inner()));
        let settle = latency_of(&self.ledger.settle.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(Timings { delivery, settle })
    }
}

fn request_error(e: reqwest::Error) -> Error {
    Error::Protocol(format!("HTTP: {e}"))
}

/// `GET /v1/queues/{name}/stream?max_in_flight=N`, answered (the stream holds its place).
async fn open_sse(endpoint: &Endpoint, c: &Config) -> Result<reqwest::Response> {
    let path = format!("/v1/queues/{}/stream?max_in_flight={}", c.queue, c.prefetch);
    let mut req = reqwest::Client::new()
        .get(format!("{}{path}", c.url.trim_end_matches('/')))
        .header("Accept", "text/event-stream");
    if let Some(b) = endpoint.bearer() {
        req = req.header("Authorization", b);
    }
    let resp = req.send().await.map_err(request_error)?;
    if !resp.status().is_success() {
        let status = resp.status().as_u16();
        return Err(Error::Status { status, path, body: resp.text().await.unwrap_or_default() });
    }
    Ok(resp)
}

/// The part of a pushed message a consumer needs.
#[derive(Deserialize)]
struct Pushed {
    body: String,
    receipt: String,
}

#[derive(Deserialize)]
struct AckAnswer {
    results: Vec<serde_json::Value>,
}

/// Reads one SSE stream; a task of its own acks what arrived, one call at a time, each carrying
/// everything that arrived while the previous one was out (up to [`MAX_ACKS`]).
async fn consume_sse(
    mut events: reqwest::Response,
    mut acker: Conn,
    ack: Uri,
    ledger: Arc<Ledger>,
) -> Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Option<u64>, String)>();
    let acks = {
        let ledger = ledger.clone();
        async move {
            let mut batch = Vec::with_capacity(MAX_ACKS);
            while rx.recv_many(&mut batch, MAX_ACKS).await > 0 {
                let receipts: Vec<&str> = batch.iter().map(|(_, r)| r.as_str()).collect();
                let json = serde_json::to_vec(&serde_json::json!({ "receipts": receipts }))?;
                let answer = acker.expect(Method::POST, &ack, Bytes::from(json), &[StatusCode::OK]).await?;
                let answer: AckAnswer = serde_json::from_slice(&answer)?;
                if let Some(bad) =
                    answer.results.iter().find(|r| r.get("ok") != Some(&serde_json::Value::Bool(true)))
                {
                    return Err(Error::Protocol(format!("an ack failed: {bad}")));
                }
                let ids: Vec<u64> = batch.drain(..).filter_map(|(id, _)| id).collect();
                ledger.acked(&ids);
            }
            Ok::<_, Error>(())
        }
    };
    let reads = async move {
        let mut buf = Vec::<u8>::new();
        loop {
            let chunk = events.chunk().await.map_err(request_error)?;
            let chunk = chunk.ok_or_else(|| Error::Protocol("the stream ended".into()))?;
            buf.extend_from_slice(&chunk);
            // One `data:` line per event; comments and ids are skipped.
            while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                if let Some(data) = line.strip_prefix(b"data:") {
                    let pushed: Pushed = serde_json::from_slice(data.trim_ascii())?;
                    let id = ledger.arrived(pushed.body.as_bytes());
                    tx.send((id, pushed.receipt)).map_err(|_| Error::Protocol("the acker stopped".into()))?;
                }
            }
        }
    };
    // Either ending (an error; the run's end aborts both) ends the consumer.
    tokio::select! {
        r = acks => r,
        r = reads => r,
    }
}

type Up = mpsc::UnboundedSender<pb::ConsumeRequest>;

/// Opens a `Consume` stream on the queue with the run's credit.
async fn open_consume(
    mut client: GrpcClient,
    c: &Config,
) -> Result<(Up, tonic::Streaming<pb::ConsumeResponse>)> {
    let (up, rx) = mpsc::unbounded_channel();
    let open = pb::ConsumeOpen { queue: c.queue.clone(), credit: c.prefetch as u32, ..Default::default() };
    up.send(pb::ConsumeRequest { request: Some(pb::consume_request::Request::Open(open)) })
        .map_err(|_| Error::Protocol("the request channel closed".into()))?;
    let requests = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let down = client.consume(requests).await?.into_inner();
    Ok((up, down))
}

/// Reads one `Consume` stream; after each message, whatever else has already arrived is acked
/// with it in one settle batch sent up the stream, and the producers go on when its answer comes.
async fn consume_grpc(
    up: Up,
    mut down: tonic::Streaming<pb::ConsumeResponse>,
    ledger: Arc<Ledger>,
) -> Result<()> {
    let mut batches: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut number = 0u64;
    let (mut receipts, mut ids) = (Vec::new(), Vec::new());
    let mut next = down.next().await;
    loop {
        match next {
            None => return Err(Error::Protocol("the stream ended".into())),
            Some(r) => match r?.response {
                Some(pb::consume_response::Response::Message(m)) => {
                    ids.extend(ledger.arrived(m.body.as_bytes()));
                    receipts.push(m.receipt);
                }
                Some(pb::consume_response::Response::Settled(s)) => {
                    if let Some(e) = s.error {
                        return Err(Error::Protocol(format!(
                            "settle batch {} refused: {}",
                            s.batch, e.message
                        )));
                    }
                    if let Some(e) = s.ack.iter().find_map(|r| r.error.as_ref()) {
                        return Err(Error::Protocol(format!(
                            "an ack of batch {} failed: {}",
                            s.batch, e.message
                        )));
                    }
                    if let Some(done) = batches.remove(&s.batch) {
                        ledger.acked(&done);
                    }
                }
                None => {}
            },
        }
        // What has arrived already rides in the same batch; then wait for more.
        next = match down.next().now_or_never() {
            Some(more) if receipts.len() < MAX_ACKS => more,
            ready => {
                if !receipts.is_empty() {
                    number += 1;
                    batches.insert(number, std::mem::take(&mut ids));
                    let settle = pb::ConsumeSettle {
                        batch: number,
                        ack: std::mem::take(&mut receipts),
                        ..Default::default()
                    };
                    up.send(pb::ConsumeRequest {
                        request: Some(pb::consume_request::Request::Settle(settle)),
                    })
                    .map_err(|_| Error::Protocol("the request channel closed".into()))?;
                }
                match ready {
                    Some(more) => more,
                    None => down.next().await,
                }
            }
        };
    }
}

/// Takes deliveries from one `basic.consume`; after each, whatever else has already arrived is
/// acked with it by one `basic.ack` with `multiple` (AMQP's ack has no answer: the producers go on
/// once it is written).
async fn consume_amqp(
    channel: lapin::Channel,
    mut consumer: lapin::Consumer,
    ledger: Arc<Ledger>,
) -> Result<()> {
    let (mut ids, mut held) = (Vec::new(), 0);
    let mut next = consumer.next().await;
    loop {
        let delivery = next.ok_or_else(|| Error::Protocol("consumer cancelled".into()))??;
        ids.extend(ledger.arrived(&delivery.data));
        held += 1;
        next = match consumer.next().now_or_never() {
            Some(more) if held < MAX_ACKS => more,
            ready => {
                channel.basic_ack(delivery.delivery_tag, BasicAckOptions { multiple: true }).await?;
                ledger.acked(&std::mem::take(&mut ids));
                held = 0;
                match ready {
                    Some(more) => more,
                    None => consumer.next().await,
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_carries_its_number_and_has_the_asked_size() {
        let b = body(42, 100);
        assert_eq!(b.len(), 100);
        assert!(b.starts_with("42 x"));
        assert_eq!(body(123456, 3), "123456 ");
    }

    #[test]
    fn scenario_names_carry_the_prefetch() {
        assert_eq!(scenario(10), "stream-p10");
        assert_eq!(prefetch_of("stream-p100"), Some(100));
        assert_eq!(prefetch_of("lifecycle"), None);
    }

    #[tokio::test]
    async fn an_arrival_finds_its_send_and_an_ack_lets_its_producer_go() {
        let ledger = Ledger::new().expect("ledger");
        ledger.measure_from_us.store(0, Ordering::Relaxed);
        let (id, acked) = ledger.register();
        assert_eq!(ledger.arrived(body(id, 20).as_bytes()), Some(id));
        assert_eq!(ledger.arrived(b"999 xx"), None);
        ledger.acked(&[id]);
        assert!(acked.await.is_ok());
        assert_eq!(ledger.delivery.lock().expect("histogram").len(), 1);
        assert_eq!(ledger.settle.lock().expect("histogram").len(), 1);
    }
}
