//! The gRPC API (`proto/mom/v1/broker.proto`): a thin adapter over [`crate::service`], like
//! `http/`, with a module per part. Each method converts its request (`convert.rs`), calls one
//! `Broker` method and converts the answer; no queue or topic logic lives here. This module
//! wires: the generated service, each method handed to its part (`queues.rs`, `consume.rs`,
//! `topics.rs`), all of them behind [`Authenticate`] (`auth.rs`); errors become statuses in
//! `status.rs`.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tonic::{Request, Status};

use crate::service::Broker;

mod auth;
mod consume;
mod convert;
mod queues;
mod status;
mod topics;

pub use auth::Authenticate;
pub use convert::{outgoing, queue_spec, subscription_spec, topic_spec};
use status::Answer;
pub use status::{status, ERROR_CODE_KEY, ERROR_DOMAIN};

/// The types and service generated from the proto.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("mom.v1");
}

use pb::broker_server::BrokerServer;

/// Serves the gRPC API on the connections of `incoming` until it ends (the drain closed the
/// listener, [`crate::listen::grpc_incoming`]); requests in flight then finish. A request message over `max_request_bytes` (`MOM_MAX_REQUEST_BYTES`) is refused.
pub async fn serve(
    broker: Arc<Broker>,
    incoming: impl futures::Stream<Item = std::io::Result<crate::listen::Counted>>,
    max_request_bytes: usize,
) -> Result<(), tonic::transport::Error> {
    let heartbeat = broker.stream_heartbeat;
    let service = BrokerServer::new(Api { broker: broker.clone() })
        .max_decoding_message_size(max_request_bytes)
        .max_encoding_message_size(usize::MAX);
    tonic::transport::Server::builder()
        // Pings keep idle Subscribe streams open through proxies, as heartbeats do for SSE.
        .http2_keepalive_interval(Some(heartbeat))
        .add_service(Authenticate { inner: service, broker, max_request_bytes })
        .serve_with_incoming_shutdown(incoming, std::future::pending())
        .await
}

/// The gRPC methods over one broker core.
pub struct Api {
    broker: Arc<Broker>,
}

type MessageStream = Pin<Box<dyn Stream<Item = Result<pb::Message, Status>> + Send>>;

#[tonic::async_trait]
impl pb::broker_server::Broker for Api {
    async fn create_queue(&self, req: Request<pb::CreateQueueRequest>) -> Answer<pb::CreateQueueResponse> {
        queues::create(&self.broker, req).await
    }

    async fn list_queues(&self, req: Request<pb::ListQueuesRequest>) -> Answer<pb::ListQueuesResponse> {
        queues::list(&self.broker, req).await
    }

    async fn get_queue(&self, req: Request<pb::GetQueueRequest>) -> Answer<pb::QueueInfo> {
        queues::get(&self.broker, req).await
    }

    async fn delete_queue(&self, req: Request<pb::DeleteQueueRequest>) -> Answer<pb::Empty> {
        queues::delete(&self.broker, req).await
    }

    async fn purge_queue(&self, req: Request<pb::PurgeQueueRequest>) -> Answer<pb::Empty> {
        queues::purge(&self.broker, req).await
    }

    async fn send(&self, req: Request<pb::SendRequest>) -> Answer<pb::SendResponse> {
        queues::send(&self.broker, req).await
    }

    async fn send_batch(&self, req: Request<pb::SendBatchRequest>) -> Answer<pb::SendBatchResponse> {
        queues::send_batch(&self.broker, req).await
    }

    async fn receive(&self, req: Request<pb::ReceiveRequest>) -> Answer<pb::ReceiveResponse> {
        consume::receive(&self.broker, req).await
    }

    async fn ack(&self, req: Request<pb::AckRequest>) -> Answer<pb::SettleResponse> {
        consume::ack(&self.broker, req).await
    }

    async fn nack(&self, req: Request<pb::NackRequest>) -> Answer<pb::SettleResponse> {
        consume::nack(&self.broker, req).await
    }

    async fn extend_visibility(&self, req: Request<pb::ExtendVisibilityRequest>) -> Answer<pb::Empty> {
        consume::extend_visibility(&self.broker, req).await
    }

    async fn create_topic(&self, req: Request<pb::CreateTopicRequest>) -> Answer<pb::CreateTopicResponse> {
        topics::create(&self.broker, req).await
    }

    async fn list_topics(&self, req: Request<pb::ListTopicsRequest>) -> Answer<pb::ListTopicsResponse> {
        topics::list(&self.broker, req).await
    }

    async fn get_topic(&self, req: Request<pb::GetTopicRequest>) -> Answer<pb::TopicInfo> {
        topics::get(&self.broker, req).await
    }

    async fn delete_topic(&self, req: Request<pb::DeleteTopicRequest>) -> Answer<pb::Empty> {
        topics::delete(&self.broker, req).await
    }

    async fn publish(&self, req: Request<pb::PublishRequest>) -> Answer<pb::SendBatchResponse> {
        topics::publish(&self.broker, req).await
    }

    async fn create_subscription(
        &self,
        req: Request<pb::CreateSubscriptionRequest>,
    ) -> Answer<pb::CreateSubscriptionResponse> {
        topics::create_subscription(&self.broker, req).await
    }

    async fn list_subscriptions(
        &self,
        req: Request<pb::ListSubscriptionsRequest>,
    ) -> Answer<pb::ListSubscriptionsResponse> {
        topics::list_subscriptions(&self.broker, req).await
    }

    async fn delete_subscription(&self, req: Request<pb::DeleteSubscriptionRequest>) -> Answer<pb::Empty> {
        topics::delete_subscription(&self.broker, req).await
    }

    type SubscribeStream = MessageStream;

    async fn subscribe(&self, req: Request<pb::SubscribeRequest>) -> Answer<Self::SubscribeStream> {
        topics::subscribe(&self.broker, req).await
    }

    type ConsumeStream = consume::ConsumeStream;

    async fn consume(
        &self,
        req: Request<tonic::Streaming<pb::ConsumeRequest>>,
    ) -> Answer<Self::ConsumeStream> {
        consume::consume(&self.broker, req).await
    }
}
