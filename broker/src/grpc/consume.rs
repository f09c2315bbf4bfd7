//! Pull consumption, of a queue or of a topic's subscription: receive, ack, nack, extend.

use std::sync::Arc;

use tonic::{Request, Status};

use super::auth::open;
use super::convert::{message, receive_request, settled};
use super::pb;
use super::status::{ok, status, Answer, OrStatus};
use crate::error::Error;
use crate::service::Broker;

/// A queue, or a topic's subscription: what pull consumption names.
enum Target {
    Queue(String),
    Subscription(String, String),
}

fn target(queue: String, topic: String, subscription: String) -> Result<Target, Status> {
    match (queue.is_empty(), topic.is_empty(), subscription.is_empty()) {
        (false, true, true) => Ok(Target::Queue(queue)),
        (true, false, false) => Ok(Target::Subscription(topic, subscription)),
        _ => Err(status(&Error::invalid("name either queue, or topic and subscription"))),
    }
}

pub(super) async fn receive(
    broker: &Arc<Broker>,
    req: Request<pb::ReceiveRequest>,
) -> Answer<pb::ReceiveResponse> {
    let (who, r) = open(req)?;
    let rr = receive_request(r.max, r.wait_s, r.visibility_timeout_s);
    let messages = match target(r.queue, r.topic, r.subscription)? {
        Target::Queue(q) => broker.receive(&who, &q, rr).await,
        Target::Subscription(t, s) => broker.sub_receive(&who, &t, &s, rr).await,
    }
    .grpc()?;
    ok(pb::ReceiveResponse { messages: messages.into_iter().map(message).collect() })
}

pub(super) async fn ack(broker: &Arc<Broker>, req: Request<pb::AckRequest>) -> Answer<pb::SettleResponse> {
    let (who, r) = open(req)?;
    let results = match target(r.queue, r.topic, r.subscription)? {
        Target::Queue(q) => broker.ack(&who, &q, r.receipts).await,
        Target::Subscription(t, s) => broker.sub_ack(&who, &t, &s, r.receipts).await,
    }
    .grpc()?;
    ok(settled(results))
}

pub(super) async fn nack(broker: &Arc<Broker>, req: Request<pb::NackRequest>) -> Answer<pb::SettleResponse> {
    let (who, r) = open(req)?;
    let results = match target(r.queue, r.topic, r.subscription)? {
        Target::Queue(q) => broker.nack(&who, &q, r.receipts, r.delay_s).await,
        Target::Subscription(t, s) => broker.sub_nack(&who, &t, &s, r.receipts, r.delay_s).await,
    }
    .grpc()?;
    ok(settled(results))
}

pub(super) async fn extend_visibility(
    broker: &Arc<Broker>,
    req: Request<pb::ExtendVisibilityRequest>,
) -> Answer<pb::Empty> {
    let (who, r) = open(req)?;
    match target(r.queue, r.topic, r.subscription)? {
        Target::Queue(q) => broker.extend(&who, &q, r.receipt, r.visibility_timeout_s).await,
        Target::Subscription(t, s) => {
            broker.sub_extend(&who, &t, &s, r.receipt, r.visibility_timeout_s).await
        }
    }
    .grpc()?;
    ok(pb::Empty {})
}
