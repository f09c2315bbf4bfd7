//! Conversions between the proto's messages (`pb`) and the core's data shapes (`model`).

use std::collections::BTreeMap;

use super::pb;
use crate::error::Error;
use crate::model;

// ---- conversions ----

pub(super) fn pb_error(e: &Error) -> pb::Error {
    pb::Error { code: e.code().to_string(), message: e.to_string() }
}

pub(super) fn access_in(a: i32) -> Option<model::Access> {
    match pb::Access::try_from(a).unwrap_or(pb::Access::Unspecified) {
        pb::Access::Unspecified => None,
        pb::Access::Authenticated => Some(model::Access::Authenticated),
        pb::Access::Restricted => Some(model::Access::Restricted),
    }
}

pub(super) fn access_out(a: model::Access) -> i32 {
    match a {
        model::Access::Authenticated => pb::Access::Authenticated as i32,
        model::Access::Restricted => pb::Access::Restricted as i32,
    }
}

pub fn queue_spec(c: Option<pb::QueueConfig>) -> model::QueueSpec {
    let c = c.unwrap_or_default();
    model::QueueSpec {
        visibility_timeout_s: c.visibility_timeout_s,
        max_receives: c.max_receives.map(Some),
        dead_letter_queue: c.dead_letter_queue.map(Some),
        delay_s: c.delay_s,
        retention_s: c.retention_s,
        max_message_bytes: c.max_message_bytes,
        access: access_in(c.access),
        fifo: c.fifo,
        content_based_dedup: c.content_based_dedup,
        ..Default::default()
    }
}

pub(super) fn queue_info(q: model::QueueInfo) -> pb::QueueInfo {
    let c = q.config;
    pb::QueueInfo {
        name: q.name,
        config: Some(pb::QueueConfig {
            visibility_timeout_s: Some(c.visibility_timeout_s),
            max_receives: c.max_receives,
            dead_letter_queue: c.dead_letter_queue,
            delay_s: Some(c.delay_s),
            retention_s: Some(c.retention_s),
            max_message_bytes: Some(c.max_message_bytes),
            access: access_out(c.access),
            fifo: Some(c.fifo),
            content_based_dedup: Some(c.content_based_dedup),
        }),
        owner: q.owner,
        created_at: q.created_at,
        stats: q.stats.map(|s| pb::QueueStats {
            available: s.available,
            in_flight: s.in_flight,
            delayed: s.delayed,
            oldest_age_s: s.oldest_age_s,
            in_flight_groups: s.in_flight_groups,
        }),
    }
}

pub fn topic_spec(c: Option<pb::TopicConfig>) -> model::TopicSpec {
    let c = c.unwrap_or_default();
    model::TopicSpec {
        retention_s: c.retention_s,
        max_message_bytes: c.max_message_bytes,
        access: access_in(c.access),
    }
}

pub(super) fn topic_info(t: model::TopicInfo) -> pb::TopicInfo {
    let c = t.config;
    pb::TopicInfo {
        name: t.name,
        config: Some(pb::TopicConfig {
            retention_s: Some(c.retention_s),
            max_message_bytes: Some(c.max_message_bytes),
            access: access_out(c.access),
        }),
        owner: t.owner,
        created_at: t.created_at,
        stats: t.stats.map(|s| pb::TopicStats {
            messages: s.messages,
            subscriptions: s.subscriptions,
            oldest_age_s: s.oldest_age_s,
        }),
    }
}

pub fn subscription_spec(c: Option<pb::SubscriptionConfig>) -> model::SubscriptionSpec {
    let c = c.unwrap_or_default();
    let start = match c.start.as_str() {
        "" => None,
        "latest" | "earliest" => Some(model::StartSpec::Named(c.start)),
        _ => Some(model::StartSpec::Time { time: c.start }),
    };
    model::SubscriptionSpec {
        start,
        filter: Some(c.filter),
        no_local: Some(c.no_local),
        ack_deadline_s: c.ack_deadline_s,
        max_receives: c.max_receives,
        dead_letter_queue: c.dead_letter_queue,
    }
}

pub(super) fn subscription_info(s: model::SubscriptionInfo) -> pb::SubscriptionInfo {
    let start = match &s.start {
        serde_json::Value::String(named) => named.clone(),
        other => other.get("time").and_then(|t| t.as_str()).unwrap_or_default().to_string(),
    };
    let c = s.config;
    pb::SubscriptionInfo {
        name: s.name,
        topic: s.topic,
        config: Some(pb::SubscriptionConfig {
            start,
            filter: c.filter,
            no_local: c.no_local,
            ack_deadline_s: Some(c.ack_deadline_s),
            max_receives: c.max_receives,
            dead_letter_queue: c.dead_letter_queue,
        }),
        owner: s.owner,
        created_at: s.created_at,
        lag: s.lag,
    }
}

pub fn outgoing(m: pb::OutgoingMessage) -> model::SendMessage {
    model::SendMessage {
        body: m.body,
        attributes: m.attributes,
        delay_s: m.delay_s,
        dedup_id: m.dedup_id,
        group: m.group,
        system: BTreeMap::new(),
        fifo_dedup: None,
    }
}

pub(super) fn message(m: model::Message) -> pb::Message {
    pb::Message {
        id: m.id,
        body: m.body,
        attributes: m.attributes,
        receipt: m.receipt,
        receive_count: m.receive_count,
        sent_at: m.sent_at,
        group: m.group,
        sequence: m.sequence,
    }
}

pub(super) fn sent_results(results: Vec<crate::error::Result<model::Sent>>) -> pb::SendBatchResponse {
    let results = results
        .into_iter()
        .map(|r| match r {
            Ok(s) => pb::SendResult { result: Some(pb::send_result::Result::Id(s.id)), sequence: s.sequence },
            Err(e) => {
                pb::SendResult { result: Some(pb::send_result::Result::Error(pb_error(&e))), sequence: None }
            }
        })
        .collect();
    pb::SendBatchResponse { results }
}

pub(super) fn settled(results: Vec<crate::error::Result<()>>) -> pb::SettleResponse {
    pb::SettleResponse {
        results: results
            .into_iter()
            .map(|r| pb::SettleResult { error: r.err().map(|e| pb_error(&e)) })
            .collect(),
    }
}

pub(super) fn receive_request(
    max: Option<u32>,
    wait_s: Option<u32>,
    visibility_timeout_s: Option<u32>,
) -> model::ReceiveRequest {
    model::ReceiveRequest { max, wait_s, visibility_timeout_s }
}
