//! Queue methods: create, list, get, delete, purge, send.

use std::sync::Arc;

use tonic::Request;

use super::auth::open;
use super::convert::{outgoing, queue_info, queue_spec, sent_results};
use super::pb;
use super::status::{ok, status, Answer, OrStatus};
use crate::error::Error;
use crate::service::Broker;

pub(super) async fn create(
    broker: &Arc<Broker>,
    req: Request<pb::CreateQueueRequest>,
) -> Answer<pb::CreateQueueResponse> {
    let (who, r) = open(req)?;
    let (info, created) = broker.create_queue(&who, &r.name, queue_spec(r.config)).await.grpc()?;
    ok(pb::CreateQueueResponse { queue: Some(queue_info(info)), created })
}

pub(super) async fn list(
    broker: &Arc<Broker>,
    req: Request<pb::ListQueuesRequest>,
) -> Answer<pb::ListQueuesResponse> {
    let (who, _) = open(req)?;
    ok(pb::ListQueuesResponse { queues: broker.list_queues(&who).into_iter().map(queue_info).collect() })
}

pub(super) async fn get(broker: &Arc<Broker>, req: Request<pb::GetQueueRequest>) -> Answer<pb::QueueInfo> {
    let (who, r) = open(req)?;
    ok(queue_info(broker.get_queue(&who, &r.name).await.grpc()?))
}

pub(super) async fn delete(broker: &Arc<Broker>, req: Request<pb::DeleteQueueRequest>) -> Answer<pb::Empty> {
    let (who, r) = open(req)?;
    broker.delete_queue(&who, &r.name).await.grpc()?;
    ok(pb::Empty {})
}

pub(super) async fn purge(broker: &Arc<Broker>, req: Request<pb::PurgeQueueRequest>) -> Answer<pb::Empty> {
    let (who, r) = open(req)?;
    broker.purge_queue(&who, &r.name).await.grpc()?;
    ok(pb::Empty {})
}

pub(super) async fn send(broker: &Arc<Broker>, req: Request<pb::SendRequest>) -> Answer<pb::SendResponse> {
    let (who, r) = open(req)?;
    let m = r.message.ok_or_else(|| status(&Error::invalid("message is required")))?;
    let sent = broker
        .send(&who, &r.queue, vec![outgoing(m)])
        .await
        .grpc()?
        .pop()
        .unwrap_or_else(|| Err(Error::invalid("no message")))
        .grpc()?;
    ok(pb::SendResponse { id: sent.id, created: sent.created, sequence: sent.sequence })
}

pub(super) async fn send_batch(
    broker: &Arc<Broker>,
    req: Request<pb::SendBatchRequest>,
) -> Answer<pb::SendBatchResponse> {
    let (who, r) = open(req)?;
    let messages = r.messages.into_iter().map(outgoing).collect();
    ok(sent_results(broker.send(&who, &r.queue, messages).await.grpc()?))
}
