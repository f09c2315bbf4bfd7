//! gRPC request messages: protobuf bytes decoded into the generated types (`grpc::pb`, prost), then
//! converted by the service's own functions (`grpc::{queue_spec, topic_spec, subscription_spec,
//! outgoing}`) into the core's request types and validated, as the methods do. Decoded messages
//! must survive an encode/decode round trip.
//!
//! Input: a selector byte (which request message), then its protobuf encoding.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use mom_broker::grpc::{self, pb};
use mom_broker::model;
use mom_broker::receipt::ReceiptKey;
use prost::Message;

fn decode<M: Message + Default + PartialEq + std::fmt::Debug>(bytes: &[u8]) -> Option<M> {
    let m = M::decode(bytes).ok()?;
    let again = M::decode(m.encode_to_vec().as_slice()).expect("a re-encoded message decodes");
    assert_eq!(again, m, "round trip changed the message");
    Some(m)
}

fn receipts(target: &str, receipts: &[String]) {
    let key = ReceiptKey::new(b"fuzz");
    for r in receipts {
        let _ = key.verify(target, r);
    }
}

fn send(m: pb::OutgoingMessage) {
    let attributes = m.attributes.clone();
    let native = grpc::outgoing(m);
    assert!(native.system.is_empty(), "a gRPC client set broker attributes");
    assert_eq!(native.attributes, attributes);
    common::check_send(&native);
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else { return };
    match kind % 12 {
        0 => {
            let Some(r) = decode::<pb::CreateQueueRequest>(bytes) else { return };
            common::check_name(&r.name);
            common::check_queue_spec(grpc::queue_spec(r.config));
        }
        1 => {
            let Some(r) = decode::<pb::SendRequest>(bytes) else { return };
            if let Some(m) = r.message {
                send(m);
            }
        }
        2 => {
            let Some(r) = decode::<pb::SendBatchRequest>(bytes) else { return };
            r.messages.into_iter().for_each(send);
        }
        3 => {
            let Some(r) = decode::<pb::PublishRequest>(bytes) else { return };
            r.messages.into_iter().for_each(send);
        }
        4 => {
            let Some(r) = decode::<pb::ReceiveRequest>(bytes) else { return };
            common::check_receive(&model::ReceiveRequest {
                max: r.max,
                wait_s: r.wait_s,
                visibility_timeout_s: r.visibility_timeout_s,
            });
        }
        5 => {
            let Some(r) = decode::<pb::AckRequest>(bytes) else { return };
            receipts(&format!("q/{}", r.queue), &r.receipts);
        }
        6 => {
            let Some(r) = decode::<pb::NackRequest>(bytes) else { return };
            receipts(&format!("q/{}", r.queue), &r.receipts);
        }
        7 => {
            let Some(r) = decode::<pb::ExtendVisibilityRequest>(bytes) else { return };
            receipts(&format!("q/{}", r.queue), std::slice::from_ref(&r.receipt));
        }
        8 => {
            let Some(r) = decode::<pb::CreateTopicRequest>(bytes) else { return };
            common::check_name(&r.name);
            common::check_topic_spec(grpc::topic_spec(r.config));
        }
        9 => {
            let Some(r) = decode::<pb::CreateSubscriptionRequest>(bytes) else { return };
            let spec = grpc::subscription_spec(r.config);
            if let Some(model::StartSpec::Time { time }) = &spec.start {
                common::check_time(time);
            }
            common::check_subscription_spec(spec);
        }
        10 => {
            let _ = decode::<pb::SubscribeRequest>(bytes);
        }
        _ => {
            let _ = decode::<pb::DeleteSubscriptionRequest>(bytes);
        }
    }
});
