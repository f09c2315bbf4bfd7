//! Topic and subscription methods: create, list, get, delete, publish, and Subscribe's push
//! stream.

use std::sync::Arc;

use tonic::Request;

use super::auth::{bearer, open};
use super::convert::{
    message, outgoing, sent_results, subscription_info, subscription_spec, topic_info, topic_spec,
};
use super::status::{ok, status, Answer, OrStatus};
use super::{pb, MessageStream};
use crate::error::Error;
use crate::model;
use crate::service::Stream as PushState;
use crate::service::{Broker, Principal};

pub(super) async fn create(
    broker: &Arc<Broker>,
    req: Request<pb::CreateTopicRequest>,
) -> Answer<pb::CreateTopicResponse> {
    let (who, r) = open(req)?;
    let (info, created) = broker.create_topic(&who, &r.name, topic_spec(r.config)).await.grpc()?;
    ok(pb::CreateTopicResponse { topic: Some(topic_info(info)), created })
}

pub(super) async fn list(
    broker: &Arc<Broker>,
    req: Request<pb::ListTopicsRequest>,
) -> Answer<pb::ListTopicsResponse> {
    let (who, _) = open(req)?;
    ok(pb::ListTopicsResponse { topics: broker.list_topics(&who).into_iter().map(topic_info).collect() })
}

pub(super) async fn get(broker: &Arc<Broker>, req: Request<pb::GetTopicRequest>) -> Answer<pb::TopicInfo> {
    let (who, r) = open(req)?;
    ok(topic_info(broker.get_topic(&who, &r.name).await.grpc()?))
}

pub(super) async fn delete(broker: &Arc<Broker>, req: Request<pb::DeleteTopicRequest>) -> Answer<pb::Empty> {
    let (who, r) = open(req)?;
    broker.delete_topic(&who, &r.name).await.grpc()?;
    ok(pb::Empty {})
}

pub(super) async fn publish(
    broker: &Arc<Broker>,
    req: Request<pb::PublishRequest>,
) -> Answer<pb::SendBatchResponse> {
    let (who, r) = open(req)?;
    let messages = r.messages.into_iter().map(outgoing).collect();
    ok(sent_results(broker.publish(&who, &r.topic, messages).await.grpc()?))
}

pub(super) async fn create_subscription(
    broker: &Arc<Broker>,
    req: Request<pb::CreateSubscriptionRequest>,
) -> Answer<pb::CreateSubscriptionResponse> {
    let (who, r) = open(req)?;
    let (info, created) =
        broker.create_subscription(&who, &r.topic, &r.name, subscription_spec(r.config)).await.grpc()?;
    ok(pb::CreateSubscriptionResponse { subscription: Some(subscription_info(info)), created })
}

pub(super) async fn list_subscriptions(
    broker: &Arc<Broker>,
    req: Request<pb::ListSubscriptionsRequest>,
) -> Answer<pb::ListSubscriptionsResponse> {
    let (who, r) = open(req)?;
    let subscriptions = broker.list_subscriptions(&who, &r.topic).await.grpc()?;
    ok(pb::ListSubscriptionsResponse {
        subscriptions: subscriptions.into_iter().map(subscription_info).collect(),
    })
}

pub(super) async fn delete_subscription(
    broker: &Arc<Broker>,
    req: Request<pb::DeleteSubscriptionRequest>,
) -> Answer<pb::Empty> {
    let (who, r) = open(req)?;
    broker.delete_subscription(&who, &r.topic, &r.name).await.grpc()?;
    ok(pb::Empty {})
}

/// Drives [`Broker::stream_next`] as the SSE route does; ends when the node drains, and with
/// the error status when the subscription goes away.
pub(super) async fn subscribe(
    broker: &Arc<Broker>,
    req: Request<pb::SubscribeRequest>,
) -> Answer<MessageStream> {
    // The stream re-checks its token as it goes, so a revoked one ends it.
    let token = bearer(&req);
    let (who, r) = open(req)?;
    if r.max_in_flight == Some(0) {
        return Err(status(&Error::invalid("max_in_flight must be at least 1")));
    }
    // Fail before the stream starts when the subscription is missing or forbidden, or the
    // caller holds too many.
    let state = broker
        .open_stream(&who, &r.topic, &r.subscription, r.max_in_flight.map(|n| n as usize), token)
        .await
        .grpc()?;
    let push = Push {
        broker: broker.clone(),
        who,
        topic: r.topic,
        subscription: r.subscription,
        state,
        pending: std::collections::VecDeque::new(),
        done: false,
    };
    let stream = futures::stream::unfold(push, |mut p| async move {
        loop {
            if p.done {
                return None;
            }
            if let Some(m) = p.pending.pop_front() {
                return Some((Ok(message(m)), p));
            }
            match p.broker.stream_next(&p.who, &p.topic, &p.subscription, &mut p.state).await {
                Ok(Some(messages)) => p.pending.extend(messages),
                Ok(None) => return None,
                Err(e) => {
                    tracing::info!(error = %e, "ending a gRPC subscription stream");
                    p.done = true;
                    return Some((Err(status(&e)), p));
                }
            }
        }
    });
    ok(Box::pin(stream))
}

/// The state of one Subscribe stream.
struct Push {
    broker: Arc<Broker>,
    who: Principal,
    topic: String,
    subscription: String,
    state: PushState,
    pending: std::collections::VecDeque<model::Message>,
    /// Set after an error was sent: the stream ends.
    done: bool,
}
