//! `mom-bench consume`: drains a queue through one consume stream (issue 25) and acks in
//! batches, over HTTP (`GET /v1/queues/{name}/stream?max_in_flight=N`, acks to the ack route) and
//! over gRPC (`Consume`, acks and credit up the same stream). The queue is filled first (batch
//! sends), then the clock runs from opening the stream until every message was acked: messages
//! per second of one consumer, with `credit` bounding what it holds unacked.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint as GrpcEndpoint};

use super::{Error, Result};
use mom_tests::grpc::pb::{self, broker_client::BrokerClient};
use mom_tests::grpc::Bearer;

/// How the run goes.
#[derive(Debug, Clone)]
pub struct Config {
    /// http://host:port of the broker (or NGINX).
    pub url: String,
    /// `Authorization` header value, once logged in.
    pub bearer: Option<String>,
    /// host:port of the gRPC API; without it only HTTP runs.
    pub grpc: Option<String>,
    pub queue: String,
    pub messages: usize,
    pub credit: usize,
    /// Receipts per ack call (at most 100).
    pub ack_batch: usize,
    pub body_bytes: usize,
    /// Longest wait for the next message before the run fails.
    pub stall: Duration,
}

/// What one transport achieved.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub transport: &'static str,
    pub messages: usize,
    pub credit: usize,
    pub ack_batch: usize,
    pub seconds: f64,
    pub messages_per_s: f64,
    pub ack_calls: usize,
}

/// The part of a pushed message the consumer needs.
#[derive(Deserialize)]
struct Pushed {
    receipt: String,
}

/// Runs HTTP, then gRPC when configured.
pub async fn run(config: &Config) -> Result<Vec<Outcome>> {
    let http = reqwest::Client::new();
    let mut out = vec![over_http(&http, config).await?];
    if let Some(addr) = &config.grpc {
        out.push(over_grpc(&http, addr, config).await?);
    }
    Ok(out)
}

fn request_error(e: reqwest::Error) -> Error {
    Error::Protocol(format!("HTTP: {e}"))
}

/// `method path` with the token, expecting a 2xx answer.
async fn call(
    http: &reqwest::Client,
    c: &Config,
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> Result<()> {
    let mut req = http.request(method, format!("{}{path}", c.url)).json(&body);
    if let Some(b) = &c.bearer {
        req = req.header("Authorization", b);
    }
    let resp = req.send().await.map_err(request_error)?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(Error::Status { status: status.as_u16(), path: path.to_string(), body });
    }
    Ok(())
}

/// Creates (or empties) the queue and sends `messages` to it in batches of 100.
async fn fill(http: &reqwest::Client, c: &Config) -> Result<()> {
    let q = format!("/v1/queues/{}", c.queue);
    call(http, c, reqwest::Method::PUT, &q, serde_json::json!({ "visibility_timeout_s": 60 })).await?;
    call(http, c, reqwest::Method::POST, &format!("{q}/purge"), serde_json::json!({})).await?;
    let body = "x".repeat(c.body_bytes);
    let mut left = c.messages;
    while left > 0 {
        let n = left.min(100);
        let batch: Vec<_> = (0..n).map(|_| serde_json::json!({ "body": body })).collect();
        call(
            http,
            c,
            reqwest::Method::POST,
            &format!("{q}/messages/batch"),
            serde_json::json!({ "messages": batch }),
        )
        .await?;
        left -= n;
    }
    Ok(())
}

/// One SSE stream; acks go to the ack route in batches of `ack_batch`.
async fn over_http(http: &reqwest::Client, c: &Config) -> Result<Outcome> {
    fill(http, c).await?;
    let started = Instant::now();
    let path = format!("/v1/queues/{}/stream?max_in_flight={}", c.queue, c.credit);
    let mut req = http.get(format!("{}{path}", c.url)).header("Accept", "text/event-stream");
    if let Some(b) = &c.bearer {
        req = req.header("Authorization", b);
    }
    let resp = req.send().await.map_err(request_error)?;
    if !resp.status().is_success() {
        let status = resp.status().as_u16();
        return Err(Error::Status { status, path, body: resp.text().await.unwrap_or_default() });
    }
    let mut resp = resp;
    let (mut buf, mut pending, mut acked, mut ack_calls) = (Vec::<u8>::new(), Vec::<String>::new(), 0, 0);
    let ack_path = format!("/v1/queues/{}/ack", c.queue);
    while acked < c.messages {
        let chunk = match tokio::time::timeout(c.stall, resp.chunk()).await {
            Err(_) => {
                return Err(Error::Protocol(format!("no event within {:?} after {acked} acks", c.stall)))
            }
            Ok(r) => r.map_err(request_error)?.ok_or_else(|| Error::Protocol("the stream ended".into()))?,
        };
        buf.extend_from_slice(&chunk);
        // The broker writes `data:` on one line per event; comments and ids are skipped.
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            if let Some(data) = line.strip_prefix(b"data:") {
                let pushed: Pushed = serde_json::from_slice(data.trim_ascii())?;
                pending.push(pushed.receipt);
            }
        }
        // Ack a full batch, or whatever is pending once the stream is at its credit (it would
        // push nothing more until acks come).
        while pending.len() >= c.ack_batch
            || (!pending.is_empty() && pending.len() + acked >= c.messages)
            || (!pending.is_empty() && pending.len() >= c.credit)
        {
            let take = pending.len().min(c.ack_batch);
            let receipts: Vec<String> = pending.drain(..take).collect();
            call(http, c, reqwest::Method::POST, &ack_path, serde_json::json!({ "receipts": receipts }))
                .await?;
            acked += take;
            ack_calls += 1;
        }
    }
    Ok(outcome("http", c, started.elapsed(), ack_calls))
}

/// One `Consume` stream; acks go up it in batches of `ack_batch`.
async fn over_grpc(http: &reqwest::Client, addr: &str, c: &Config) -> Result<Outcome> {
    fill(http, c).await?;
    let channel: Channel = GrpcEndpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| Error::Input(format!("gRPC address {addr}: {e}")))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let token: Option<MetadataValue<Ascii>> = c
        .bearer
        .as_deref()
        .map(|b| b.parse())
        .transpose()
        .map_err(|e| Error::Protocol(format!("unusable token: {e}")))?;
    let mut client = BrokerClient::with_interceptor(channel, Bearer::new(token));
    let started = Instant::now();
    let (up, rx) = tokio::sync::mpsc::channel(64);
    let open = pb::ConsumeOpen { queue: c.queue.clone(), credit: c.credit as u32, ..Default::default() };
    let first = pb::ConsumeRequest { request: Some(pb::consume_request::Request::Open(open)) };
    up.send(first).await.map_err(|_| Error::Protocol("the request channel closed".into()))?;
    let requests = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let mut down = client.consume(requests).await?.into_inner();
    let (mut pending, mut acked, mut ack_calls, mut batch) = (Vec::<String>::new(), 0, 0, 0u64);
    let mut answered = 0u64;
    while acked < c.messages {
        let next = match tokio::time::timeout(c.stall, down.message()).await {
            Err(_) => {
                return Err(Error::Protocol(format!("no message within {:?} after {acked} acks", c.stall)))
            }
            Ok(r) => r?,
        };
        match next.and_then(|r| r.response) {
            None => return Err(Error::Protocol("the stream ended".into())),
            Some(pb::consume_response::Response::Message(m)) => pending.push(m.receipt),
            Some(pb::consume_response::Response::Settled(s)) => answered = check(s)?,
        }
        while pending.len() >= c.ack_batch
            || (!pending.is_empty() && pending.len() + acked >= c.messages)
            || (!pending.is_empty() && pending.len() >= c.credit)
        {
            let take = pending.len().min(c.ack_batch);
            batch += 1;
            let ack: Vec<String> = pending.drain(..take).collect();
            let settle = pb::ConsumeSettle { batch, ack, ..Default::default() };
            let req = pb::ConsumeRequest { request: Some(pb::consume_request::Request::Settle(settle)) };
            up.send(req).await.map_err(|_| Error::Protocol("the request channel closed".into()))?;
            acked += take;
            ack_calls += 1;
        }
    }
    // Done once the broker has answered the last batch: closing before would drop acks in flight.
    while answered < batch {
        let next = match tokio::time::timeout(c.stall, down.message()).await {
            Err(_) => return Err(Error::Protocol(format!("no settle answer within {:?}", c.stall))),
            Ok(r) => r?,
        };
        match next.and_then(|r| r.response) {
            None => return Err(Error::Protocol("the stream ended".into())),
            Some(pb::consume_response::Response::Message(_)) => {}
            Some(pb::consume_response::Response::Settled(s)) => answered = check(s)?,
        }
    }
    Ok(outcome("grpc", c, started.elapsed(), ack_calls))
}

/// A settle answer's batch number, or the error of a refused batch or of any receipt in it.
fn check(s: pb::ConsumeSettled) -> Result<u64> {
    if let Some(e) = s.error {
        return Err(Error::Protocol(format!("settle batch {} refused: {}", s.batch, e.message)));
    }
    if let Some(e) = s.ack.iter().find_map(|r| r.error.as_ref()) {
        return Err(Error::Protocol(format!("an ack of batch {} failed: {}", s.batch, e.message)));
    }
    Ok(s.batch)
}

fn outcome(transport: &'static str, c: &Config, took: Duration, ack_calls: usize) -> Outcome {
    let seconds = took.as_secs_f64();
    Outcome {
        transport,
        messages: c.messages,
        credit: c.credit,
        ack_batch: c.ack_batch,
        seconds,
        messages_per_s: if seconds > 0.0 { c.messages as f64 / seconds } else { 0.0 },
        ack_calls,
    }
}
