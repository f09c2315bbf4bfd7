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
