//! The gRPC API from the tests: the Rust client generated from `broker/proto/mom/v1/broker.proto`,
//! brokers that serve it (`MOM_GRPC_LISTEN`), and the error shape (status code plus the API's code
//! in the details and in `mom-error-code` metadata).

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use crate::broker::{Broker, Cluster, ADMIN_PASSWORD, ADMIN_USER};
use crate::util::free_port;

/// Types and client generated from the proto.
#[allow(clippy::all)]
pub mod pb {
    tonic::include_proto!("mom.v1");
}

pub use pb::broker_client::BrokerClient;

/// A generated client that adds `authorization: Bearer <token>` (when it has one) to every call.
pub type GrpcClient = BrokerClient<InterceptedService<Channel, Bearer>>;

/// The interceptor that sends the bearer token.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// Sends `value` (`Bearer <token>`) as `authorization`, or nothing.
    pub fn new(value: Option<MetadataValue<Ascii>>) -> Self {
        Bearer(value)
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            req.metadata_mut().insert("authorization", token.clone());
        }
        Ok(req)
    }
}

/// A broker of `cluster` serving gRPC too, and its gRPC address (`127.0.0.1:<port>`).
pub async fn start_grpc_broker(cluster: &Cluster) -> (Broker, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let broker = cluster.broker().env("MOM_GRPC_LISTEN", &addr).start().await;
    (broker, addr)
}

/// A broker of a fresh cluster serving gRPC, its gRPC address, and an admin gRPC client of it.
pub async fn grpc_broker_with_admin() -> (Broker, String, GrpcClient) {
    let (broker, addr) = start_grpc_broker(&Cluster::new()).await;
    let client = admin_grpc_client(&broker, &addr).await;
    (broker, addr, client)
}

/// A client of the gRPC API at `addr` sending `token`, or no token.
pub async fn grpc_client(addr: &str, token: Option<&str>) -> GrpcClient {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap_or_else(|e| panic!("bad gRPC address {addr}: {e}"))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to gRPC at {addr}: {e}"));
    let token = token.map(|t| {
        format!("Bearer {t}").parse().unwrap_or_else(|e| panic!("token is not valid metadata: {e}"))
    });
    BrokerClient::with_interceptor(channel, Bearer(token))
}

/// A gRPC client of `broker` (at `addr`) acting as the cluster's admin.
pub async fn admin_grpc_client(broker: &Broker, addr: &str) -> GrpcClient {
    let token = broker.token_for(ADMIN_USER, ADMIN_PASSWORD).await;
    grpc_client(addr, Some(&token)).await
}

/// The API's error code of a status, from the ErrorInfo details; checks that the
/// `mom-error-code` metadata says the same.
pub fn error_code(status: &Status) -> String {
    let details = status
        .get_error_details()
        .error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in the details of {status:?}"))
        .clone();
    assert_eq!(details.domain, "mom", "{status:?}");
    let meta = status
        .metadata()
        .get("mom-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no mom-error-code metadata in {status:?}"));
    assert_eq!(meta, details.reason, "{status:?}");
    details.reason
}

/// Asserts a call failed with `code` and the API error `api_code`.
pub fn expect_status<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, Status>,
    code: Code,
    api_code: &str,
) -> Status {
    let status = match result {
        Ok(r) => panic!("expected {code:?}/{api_code}, got {:?}", r.into_inner()),
        Err(s) => s,
    };
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(error_code(&status), api_code, "{status:?}");
    status
}

/// An outgoing message with just a body.
pub fn body(text: &str) -> pb::OutgoingMessage {
    pb::OutgoingMessage { body: text.to_string(), ..Default::default() }
}

/// One `Consume` stream (issue 25) of the test's client: requests go up through a channel,
/// responses (messages and settle answers) come down.
pub struct Consumer {
    up: tokio::sync::mpsc::Sender<pb::ConsumeRequest>,
    down: tonic::Streaming<pb::ConsumeResponse>,
}

impl Consumer {
    /// Opens a consume stream with `open` as its first request; the broker's refusal comes back
    /// as `Err`.
    pub async fn open(client: &mut GrpcClient, open: pb::ConsumeOpen) -> Result<Consumer, Status> {
        Self::open_with(client, pb::consume_request::Request::Open(open)).await
    }

    /// Opens a consume stream whose first request is `first` (to test refusals of a bad one).
    pub async fn open_with(
        client: &mut GrpcClient,
        first: pb::consume_request::Request,
    ) -> Result<Consumer, Status> {
        let (up, rx) = tokio::sync::mpsc::channel(16);
        up.send(pb::ConsumeRequest { request: Some(first) }).await.expect("the request channel is open");
        let requests = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        let down = client.consume(requests).await?.into_inner();
        Ok(Consumer { up, down })
    }

    /// Sends one settle batch.
    pub async fn settle(&self, batch: pb::ConsumeSettle) {
        let req = pb::ConsumeRequest { request: Some(pb::consume_request::Request::Settle(batch)) };
        self.up.send(req).await.expect("the request channel is open");
    }

    /// The next response within `within`; `None` when none came. Fails the test if the stream
    /// ends or fails.
    pub async fn next(&mut self, within: std::time::Duration) -> Option<pb::consume_response::Response> {
        match tokio::time::timeout(within, self.down.message()).await {
            Err(_) => None,
            Ok(Ok(Some(r))) => Some(r.response.expect("a response carries a message or a settle answer")),
            Ok(Ok(None)) => panic!("the consume stream ended"),
            Ok(Err(s)) => panic!("the consume stream failed: {s:?}"),
        }
    }

    /// The next `n` pushed messages and every settle answer met on the way, each within `within`.
    pub async fn messages(
        &mut self,
        n: usize,
        within: std::time::Duration,
    ) -> (Vec<pb::Message>, Vec<pb::ConsumeSettled>) {
        let (mut messages, mut settled) = (Vec::new(), Vec::new());
        while messages.len() < n {
            match self.next(within).await {
                Some(pb::consume_response::Response::Message(m)) => messages.push(m),
                Some(pb::consume_response::Response::Settled(s)) => settled.push(s),
                None => panic!("{} of {n} messages within {within:?}", messages.len()),
            }
        }
        (messages, settled)
    }

    /// The next settle answer within `within`, failing the test if a message comes first.
    pub async fn settled(&mut self, within: std::time::Duration) -> pb::ConsumeSettled {
        match self.next(within).await {
            Some(pb::consume_response::Response::Settled(s)) => s,
            other => panic!("expected a settle answer, got {other:?}"),
        }
    }

    /// Reads until the broker ends the stream (cleanly or with a status), failing the test if it
    /// is still open after `within`; returns what the end was.
    pub async fn end(&mut self, within: std::time::Duration) -> Result<(), Status> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.down.message()).await {
                Err(_) => panic!("the consume stream is still open after {within:?}"),
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) => return Ok(()),
                Ok(Err(s)) => return Err(s),
            }
        }
    }
}
