//! Checks shared by the targets: the core's validation of every request shape, with the limits
//! it promises asserted on whatever it accepts.

#![allow(dead_code)]

use mom_broker::model::{
    validate_name, QueueConfig, QueueSpec, ReceiveRequest, SendMessage, SubscriptionSpec, TopicConfig, TopicSpec,
    MAX_ATTRIBUTES, MAX_BATCH, MAX_DELAY_S, MAX_MESSAGE_BYTES, MAX_RECEIVES, MAX_VISIBILITY_S, MAX_WAIT_S,
    RETENTION_S,
};

fn name_ok(name: &str) -> bool {
    (1..=80).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `validate_name` accepts exactly the documented names.
pub fn check_name(name: &str) {
    assert_eq!(validate_name("queue", name).is_ok(), name_ok(name), "validate_name({name:?})");
}

/// A queue spec, applied on the defaults (create) and on a changed queue (patch).
pub fn check_queue_spec(spec: QueueSpec) {
    let changed = QueueConfig { max_receives: Some(5), dead_letter_queue: Some("dlq".into()), ..QueueConfig::default() };
    for base in [QueueConfig::default(), changed] {
        if let Ok(c) = spec.clone().apply(base) {
            assert!(c.visibility_timeout_s <= MAX_VISIBILITY_S);
            assert!(c.delay_s <= MAX_DELAY_S);
            assert!(RETENTION_S.contains(&c.retention_s));
            assert!((1..=MAX_MESSAGE_BYTES).contains(&c.max_message_bytes));
            if let Some(m) = c.max_receives {
                assert!((1..=MAX_RECEIVES).contains(&m));
            }
            if let Some(dlq) = &c.dead_letter_queue {
                assert!(name_ok(dlq), "accepted dead_letter_queue {dlq:?}");
                assert!(c.max_receives.is_some());
            }
        }
    }
}

pub fn check_topic_spec(spec: TopicSpec) {
    if let Ok(c) = spec.apply(TopicConfig::default()) {
        assert!(RETENTION_S.contains(&c.retention_s));
        assert!((1..=MAX_MESSAGE_BYTES).contains(&c.max_message_bytes));
    }
}

pub fn check_subscription_spec(spec: SubscriptionSpec) {
    if let Ok((c, from, _start)) = spec.resolve() {
        assert!((1..=MAX_VISIBILITY_S).contains(&c.ack_deadline_s));
        assert!(c.filter.len() <= MAX_ATTRIBUTES);
        if let Some(m) = c.max_receives {
            assert!((1..=MAX_RECEIVES).contains(&m));
        }
        assert!(c.dead_letter_queue.is_none() || c.max_receives.is_some());
        let _ = from;
    }
}

/// A message to send; true when the core accepts it.
pub fn check_send(m: &SendMessage) -> bool {
    let ok = m.validate().is_ok();
    if ok {
        assert!(m.attributes.len() <= MAX_ATTRIBUTES);
        for k in m.attributes.keys() {
            assert!((1..=64).contains(&k.len()), "accepted attribute key {k:?}");
            assert!(k.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)), "accepted attribute key {k:?}");
            assert!(!k.starts_with("mom."), "accepted broker attribute {k:?}");
        }
        assert!(m.delay_s.is_none_or(|d| d <= MAX_DELAY_S));
        assert!(m.dedup_id.as_ref().is_none_or(|d| (1..=128).contains(&d.len())));
    }
    ok
}

pub fn check_receive(r: &ReceiveRequest) {
    if let Ok((max, wait)) = r.limits() {
        assert!((1..=MAX_BATCH as u32).contains(&max));
        assert!(wait <= MAX_WAIT_S);
        assert!(r.visibility_timeout_s.is_none_or(|v| v <= MAX_VISIBILITY_S));
    }
}

/// An RFC 3339 time as the API parses it (subscription start, seek).
pub fn check_time(s: &str) {
    let _ = mom_broker::model::parse_time(s);
}
