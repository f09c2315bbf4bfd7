//! Typed helpers for the routes of one queue. The `*_resp` variants return the raw response for
//! tests that check errors; the others assert success and return the decoded result.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::client::{assert_error_object, Client, Resp};
use crate::util::is_rfc3339_millis;

/// Allowance over the spec's 100 ms ("under normal load") for a visibility or delay deadline to
/// make a message receivable, for scheduling noise on a loaded 2-core machine. Measured past the
/// deadline over 20 runs (`TIMING queue.receivable_past_deadline.*`, delivery's nack and extend;
/// `stress-ng --cpu 2` on a 2-core machine already loaded by builds and a CI run, 2026-12-07):
/// median 9 ms, p95 113 ms, max 517 ms (40 samples; the max while a CI run's three tests and a
/// release build started, load average 21); herd's and push's 1 s deadlines, up to 78 ms. Was
/// 500 ms, which that run exceeded: now 1.2 s, over 2x the max.
pub const DEADLINE_SLACK: Duration = Duration::from_millis(1200);

/// How much earlier than its deadline a message may show up, for the difference between the
/// broker's and the test's measuring points.
const EARLY_TOLERANCE: Duration = Duration::from_millis(50);

/// How long a background request may take to reach the broker (a generous bound on a loaded
/// machine; the wait ends as soon as the broker reports it).
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The broker's gauge `name` as `client` reaches it (0 when absent).
async fn gauge(client: &Client, name: &str) -> f64 {
    crate::topic::scrape(client, name, &[]).await.unwrap_or(0.0)
}

/// Waits until the broker behind `client` reports its gauge `name` at `at_least` or more (e.g.
/// `mom_long_polls_held`, `mom_http_requests_in_flight`), failing the test after
/// [`ARRIVAL_TIMEOUT`] or when `answered()` says the awaited request already ended.
pub async fn await_gauge(client: &Client, name: &str, at_least: f64, answered: impl Fn() -> bool) {
    crate::util::wait_until(&format!("{name} to reach {at_least}"), ARRIVAL_TIMEOUT, || async {
        assert!(!answered(), "the request ended before the broker reported it in {name}");
        (gauge(client, name).await >= at_least).then_some(())
    })
    .await
}

/// Long polls the broker behind `client` holds now (`mom_long_polls_held`).
pub async fn long_polls_held(client: &Client) -> f64 {
    gauge(client, "mom_long_polls_held").await
}

/// HTTP requests the broker behind `client` has begun and not answered
/// (`mom_http_requests_in_flight`), such as a POST whose body is still arriving.
pub async fn requests_in_flight(client: &Client) -> f64 {
    gauge(client, "mom_http_requests_in_flight").await
}

/// The instants just before and just after a request that set a deadline on the broker.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    /// Runs `fut` and returns its output with the window around it.
    pub async fn around<F: Future>(fut: F) -> (F::Output, Window) {
        let start = Instant::now();
        let out = fut.await;
        (out, Window { start, end: Instant::now() })
    }
}

/// A delivered message, as in `POST /v1/queues/{name}/receive`. Deserializing it asserts the field names.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Message {
    pub id: String,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    pub receipt: String,
    pub receive_count: u64,
    pub sent_at: String,
    /// Its message group (FIFO and fair queues, issue 21); absent when it was sent without one.
    #[serde(default)]
    pub group: Option<String>,
}

/// `stats` of `GET /v1/queues/{name}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Stats {
    pub available: u64,
    pub in_flight: u64,
    pub delayed: u64,
    pub oldest_age_s: Option<f64>,
}

impl Stats {
    /// `(available, in_flight, delayed)`, for compact assertions.
    pub fn counts(&self) -> (u64, u64, u64) {
        (self.available, self.in_flight, self.delayed)
    }
}

/// One queue on one broker.
#[derive(Debug, Clone)]
pub struct Queue {
    client: Client,
    name: String,
    /// The path its routes hang off: `/v1/queues/{name}`, or a topic subscription's.
    base: String,
}

impl Queue {
    pub fn new(client: Client, name: &str) -> Self {
        Self::at(client, name, format!("/v1/queues/{name}"))
    }

    /// Helpers for the pull routes (`/receive`, `/ack`, `/nack`, `/visibility`) of another mailbox
    /// at `base`: a topic subscription, whose routes have the queue's bodies and semantics.
    pub fn at(client: Client, name: &str, base: String) -> Self {
        Self { client, name: name.to_string(), base }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/v1/queues/{name}` (or the base given to [`Queue::at`]) followed by `suffix`.
    pub fn path(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.base)
    }

    /// `/v1/queues/{name}/stream` followed by `query` (e.g. `?max_in_flight=2`): a queue's
    /// server-push stream (issue 25).
    pub fn stream_path(&self, query: &str) -> String {
        self.path(&format!("/stream{query}"))
    }

    /// Opens the queue's server-push stream, expecting 200 `text/event-stream`.
    pub async fn stream(&self, query: &str) -> crate::SseStream {
        crate::SseStream::open(&self.client, &self.stream_path(query)).await
    }

    /// Tries to open the queue's server-push stream; a non-200 answer comes back as `Err`.
    pub async fn try_stream(&self, query: &str) -> Result<crate::SseStream, Resp> {
        crate::SseStream::try_open(&self.client, &self.stream_path(query)).await
    }

    pub async fn create_resp(&self, config: Value) -> Resp {
        self.client.put(&self.path(""), config).await
    }

    /// Creates the queue, expecting 201.
    pub async fn create(&self, config: Value) -> &Self {
        self.create_resp(config).await.expect_status(201);
        self
    }

    pub async fn get(&self) -> Resp {
        self.client.get(&self.path("")).await
    }

    /// The queue's `stats`, expecting 200.
    pub async fn stats(&self) -> Stats {
        let resp = self.get().await.expect_status(200);
        assert!(resp.json["stats"].get("oldest_age_s").is_some(), "stats without oldest_age_s in {resp}");
        serde_json::from_value(resp.json["stats"].clone())
            .unwrap_or_else(|e| panic!("bad stats ({e}) in {resp}"))
    }

    pub async fn patch(&self, changes: Value) -> Resp {
        self.client.patch(&self.path(""), changes).await
    }

    pub async fn delete(&self) -> Resp {
        self.client.delete(&self.path("")).await
    }

    pub async fn purge(&self) -> Resp {
        self.client.post(&self.path("/purge"), json!({})).await
    }

    pub async fn send_resp(&self, message: Value) -> Resp {
        self.client.post(&self.path("/messages"), message).await
    }

    /// Sends `message` (a full send body), expecting 201; returns the new id.
    pub async fn send_msg(&self, message: Value) -> String {
        let resp = self.send_resp(message).await.expect_status(201);
        message_id(&resp.json, &resp.to_string())
    }

    /// Sends a message with this body and nothing else, expecting 201; returns the new id.
    pub async fn send(&self, body: &str) -> String {
        self.send_msg(json!({ "body": body })).await
    }

    /// Sends one message per body, one request each and in order; returns the ids.
    pub async fn send_many<S: AsRef<str>>(&self, bodies: &[S]) -> Vec<String> {
        let mut ids = Vec::with_capacity(bodies.len());
        for body in bodies {
            ids.push(self.send(body.as_ref()).await);
        }
        ids
    }

    pub async fn send_batch(&self, messages: Value) -> Resp {
        self.client.post(&self.path("/messages/batch"), json!({ "messages": messages })).await
    }

    pub async fn receive_resp(&self, request: Value) -> Resp {
        self.client.post(&self.path("/receive"), request).await
    }

    /// Receives with this request body, expecting 200; returns the messages, each checked for shape.
    pub async fn receive_with(&self, request: Value) -> Vec<Message> {
        let resp = self.receive_resp(request).await.expect_status(200);
        let messages: Vec<Message> = serde_json::from_value(resp.json["messages"].clone())
            .unwrap_or_else(|e| panic!("bad messages ({e}) in {resp}"));
        for m in &messages {
            assert!(
                is_rfc3339_millis(&m.sent_at),
                "sent_at {:?} is not RFC 3339 UTC with milliseconds",
                m.sent_at
            );
            assert!(m.receive_count >= 1, "receive_count below 1 in {resp}");
        }
        messages
    }

    /// Receives up to `max` messages without waiting.
    pub async fn receive(&self, max: u32) -> Vec<Message> {
        self.receive_with(json!({ "max": max })).await
    }

    /// Receives until `count` messages arrived (long polls of at most 1 s), failing after `timeout`.
    pub async fn receive_n(&self, count: usize, timeout: Duration) -> Vec<Message> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < count {
            assert!(
                Instant::now() < deadline,
                "received {} of {count} messages from {} within {timeout:?}: {got:?}",
                got.len(),
                self.name
            );
            let max = (count - got.len()).min(100);
            got.extend(self.receive_with(json!({ "max": max, "wait_s": 1 })).await);
        }
        got
    }

    /// Runs a receive in the background (e.g. a held long poll); the task yields the messages and
    /// the instant the answer arrived.
    pub fn spawn_receive(&self, request: Value) -> JoinHandle<(Vec<Message>, Instant)> {
        let queue = self.clone();
        tokio::spawn(async move {
            let messages = queue.receive_with(request).await;
            (messages, Instant::now())
        })
    }

    /// Starts a long poll with this request in the background and returns once the broker holds
    /// it (its `mom_long_polls_held` went up); fails the test if it answers before.
    pub async fn hold_receive(&self, request: Value) -> JoinHandle<(Vec<Message>, Instant)> {
        let before = long_polls_held(&self.client).await;
        let poll = self.spawn_receive(request);
        await_gauge(&self.client, "mom_long_polls_held", before + 1.0, || poll.is_finished()).await;
        poll
    }

    /// Long-polls for messages that must become receivable `delay` after the request timed by
    /// `set`: not before `set.start + delay`, and at the latest `DEADLINE_SLACK` after
    /// `set.end + delay`. The poll must start before the deadline for the lower bound to mean much.
    pub async fn expect_receivable_after(&self, set: Window, delay: Duration) -> Vec<Message> {
        let wait_s = (delay + Duration::from_secs(3)).as_secs().min(20);
        let messages = self.receive_with(json!({ "max": 100, "wait_s": wait_s })).await;
        let now = Instant::now();
        assert!(
            !messages.is_empty(),
            "nothing became receivable on {} within {wait_s} s; expected a message {delay:?} after the deadline was set",
            self.name
        );
        let after_start = now - set.start;
        assert!(
            after_start + EARLY_TOLERANCE >= delay,
            "message on {} was receivable {after_start:?} after the request that set a {delay:?} deadline",
            self.name
        );
        let after_end = now.saturating_duration_since(set.end);
        crate::util::timing(
            &format!("queue.receivable_past_deadline.{}", self.name),
            after_end.saturating_sub(delay),
        );
        assert!(
            after_end <= delay + DEADLINE_SLACK,
            "message on {} became receivable only {after_end:?} after a {delay:?} deadline was set (allowed: {:?})",
            self.name,
            delay + DEADLINE_SLACK
        );
        messages
    }

    pub async fn ack_resp(&self, receipts: &[&str]) -> Resp {
        self.client.post(&self.path("/ack"), json!({ "receipts": receipts })).await
    }

    /// Acks, expecting 200; returns `results`, one per receipt.
    pub async fn ack(&self, receipts: &[&str]) -> Vec<Value> {
        results(self.ack_resp(receipts).await, receipts.len())
    }

    /// Acks receipts that must all be valid.
    pub async fn ack_all(&self, messages: &[Message]) {
        let receipts: Vec<&str> = messages.iter().map(|m| m.receipt.as_str()).collect();
        for (i, result) in self.ack(&receipts).await.iter().enumerate() {
            assert_ok_result(result, &format!("ack of {}", messages[i].id));
        }
    }

    /// Acks the receipts of deliveries that are over (redelivered, expired, cancelled by a seek):
    /// each must be refused as `receipt_invalid`; `why` says why, for failure messages.
    pub async fn ack_stale(&self, messages: &[Message], why: &str) {
        let receipts: Vec<&str> = messages.iter().map(|m| m.receipt.as_str()).collect();
        for (i, result) in self.ack(&receipts).await.iter().enumerate() {
            let context = format!("ack of {} ({why})", messages[i].id);
            assert_error_result(result, "receipt_invalid", &context);
        }
    }

    /// Nacks, expecting 200; returns `results`, one per receipt.
    pub async fn nack(&self, receipts: &[&str], delay_s: u64) -> Vec<Value> {
        let resp =
            self.client.post(&self.path("/nack"), json!({ "receipts": receipts, "delay_s": delay_s })).await;
        results(resp, receipts.len())
    }

    /// `POST /visibility` for one receipt.
    pub async fn extend(&self, receipt: &str, visibility_timeout_s: u64) -> Resp {
        self.client
            .post(
                &self.path("/visibility"),
                json!({ "receipt": receipt, "visibility_timeout_s": visibility_timeout_s }),
            )
            .await
    }

    pub async fn redrive(&self, request: Value) -> Resp {
        self.client.post(&self.path("/redrive"), request).await
    }
}

/// The `id` of a `{"id": ...}` answer, checked to be a non-empty string.
#[track_caller]
pub fn message_id(answer: &Value, context: &str) -> String {
    let id = answer["id"].as_str().unwrap_or_default();
    assert!(!id.is_empty(), "no message id in {context}");
    id.to_string()
}

/// Fails the test unless `result` is `{"ok": true}`.
#[track_caller]
pub fn assert_ok_result(result: &Value, context: &str) {
    assert_eq!(result, &json!({ "ok": true }), "{context}");
}

/// Fails the test unless `result` is `{"error": {"code": code, "message": ...}}`.
#[track_caller]
pub fn assert_error_result(result: &Value, code: &str, context: &str) {
    assert_error_object(&result["error"], code, &format!("{context}: {result}"));
}

/// Fails the test unless `resp` refuses a `dead_letter_queue` that does not exist, as a bad field
/// (400 `invalid_request`) or as a missing queue (404 `queue_not_found`): the spec allows either.
#[track_caller]
pub fn expect_missing_dead_letter_queue(resp: Resp) -> Resp {
    match resp.status {
        400 => resp.expect_error(400, "invalid_request"),
        _ => resp.expect_error(404, "queue_not_found"),
    }
}

/// The ids of `messages`, in order.
pub fn ids(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|m| m.id.clone()).collect()
}

/// The bodies of `messages`, in order.
pub fn bodies(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.body.as_str()).collect()
}

/// The ids of `messages`, as a set; fails the test on a duplicate.
#[track_caller]
pub fn id_set(messages: &[Message]) -> HashSet<String> {
    let set: HashSet<String> = messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(set.len(), messages.len(), "duplicate deliveries: {messages:?}");
    set
}

/// `results` of an ack/nack answer: 200, with one entry per receipt.
#[track_caller]
fn results(resp: Resp, expected: usize) -> Vec<Value> {
    let resp = resp.expect_status(200);
    let results =
        resp.json["results"].as_array().unwrap_or_else(|| panic!("no results array in {resp}")).clone();
    assert_eq!(results.len(), expected, "one result per receipt in {resp}");
    results
}
