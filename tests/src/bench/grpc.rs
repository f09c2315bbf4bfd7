//! The broker's gRPC API under load, beside [`super::http`]: the client generated from the proto,
//! one HTTP/2 connection per worker (as the HTTP side has one keep-alive connection per worker),
//! messages built once up front. The queue is created and emptied over HTTP ([`super::http::Setup`])
//! so both front doors are measured on the same kind of queue.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use super::{Error, Result, Scenario, Scenarios};
use mom_tests::grpc::pb::{self, broker_client::BrokerClient};
use mom_tests::grpc::{Bearer, GrpcClient};

/// Long polls of 1 s that may come back empty before a lifecycle counts as failed (as HTTP's).
const EMPTY_RECEIVES: u32 = 10;

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Error::Protocol(format!("gRPC {:?}: {}", s.code(), s.message()))
    }
}

impl From<tonic::transport::Error> for Error {
    fn from(e: tonic::transport::Error) -> Self {
        Error::Protocol(format!("gRPC transport: {e}"))
    }
}

/// A client on a connection of its own to `addr` (`host:port`, `TCP_NODELAY`), sending `bearer`
/// (the `Authorization` value HTTP sends) with every call.
pub async fn connect(addr: &str, bearer: Option<&str>) -> Result<GrpcClient> {
    let channel: Channel = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| Error::Input(format!("gRPC address {addr}: {e}")))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let token: Option<MetadataValue<Ascii>> =
        bearer.map(|b| b.parse()).transpose().map_err(|e| Error::Protocol(format!("unusable token: {e}")))?;
    Ok(BrokerClient::with_interceptor(channel, Bearer::new(token)))
}

/// One worker of a scenario on the broker's gRPC port.
pub struct Worker {
    client: GrpcClient,
    queue: String,
    scenario: Scenario,
    message: pb::OutgoingMessage,
    batch: usize,
}

impl Worker {
    /// Opens one connection to `addr` (`host:port`); `bearer` is the `Authorization` value HTTP sends.
    pub async fn open(
        addr: &str,
        bearer: Option<&str>,
        queue: &str,
        scenario: Scenario,
        body_bytes: usize,
        batch: usize,
    ) -> Result<Self> {
        Ok(Worker {
            client: connect(addr, bearer).await?,
            queue: queue.to_string(),
            scenario,
            message: pb::OutgoingMessage { body: "x".repeat(body_bytes), ..Default::default() },
            batch,
        })
    }
}

impl Scenarios for Worker {
    fn scenario(&self) -> Scenario {
        self.scenario
    }

    async fn send(&mut self) -> Result<u64> {
        self.client
            .send(pb::SendRequest { queue: self.queue.clone(), message: Some(self.message.clone()) })
            .await?;
        Ok(1)
    }

    async fn send_batch(&mut self) -> Result<u64> {
        let results = self
            .client
            .send_batch(pb::SendBatchRequest {
                queue: self.queue.clone(),
                messages: vec![self.message.clone(); self.batch],
            })
            .await?
            .into_inner()
            .results;
        let stored =
            results.iter().filter(|r| matches!(r.result, Some(pb::send_result::Result::Id(_)))).count();
        if stored != self.batch {
            return Err(Error::Protocol(format!("batch stored {stored} of {}", self.batch)));
        }
        Ok(stored as u64)
    }

    /// Send one, receive until one arrives (a competing worker may take ours; we take the next),
    /// ack it: three calls, as on HTTP.
    async fn lifecycle(&mut self) -> Result<u64> {
        self.send().await?;
        let mut empty = 0;
        let receipt = loop {
            let got = self
                .client
                .receive(pb::ReceiveRequest {
                    queue: self.queue.clone(),
                    max: Some(1),
                    wait_s: Some(1),
                    ..Default::default()
                })
                .await?
                .into_inner();
            if let Some(m) = got.messages.into_iter().next() {
                break m.receipt;
            }
            empty += 1;
            if empty == EMPTY_RECEIVES {
                return Err(Error::Protocol(format!("{EMPTY_RECEIVES} receives in a row found nothing")));
            }
        };
        let settled = self
            .client
            .ack(pb::AckRequest { queue: self.queue.clone(), receipts: vec![receipt], ..Default::default() })
            .await?
            .into_inner();
        match settled.results.first() {
            Some(pb::SettleResult { error: None }) => Ok(1),
            other => Err(Error::Protocol(format!("ack failed: {other:?}"))),
        }
    }
}
