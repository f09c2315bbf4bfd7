//! The SQS endpoint's outside input (AWS JSON 1.0 bodies and Signature V4 headers), through the
//! endpoint's own functions: `sqs::actions::{parse, to_native, spec_from_attributes, queue_name,
//! batch_ids, to_sqs_message}` and `sqs::sigv4`.
//!
//! Input: a selector byte, then
//! - 0 (message): a SendMessage entry as JSON. An accepted message's MD5 digests are the ones a
//!   receiver computes from what the broker stores (what SDKs check on both sides).
//! - 1 (queue attributes): CreateQueue/SetQueueAttributes `Attributes` as JSON, then the core's
//!   queue-spec validation.
//! - 2 (batch/URLs): a JSON array of strings, as batch entry ids and as queue URLs.
//! - 3 (signature): `authorization \n x-amz-date \n method \n path \n query \n headers... \n\n body`.

#![no_main]

mod common;

use std::collections::{BTreeMap, HashSet};

use libfuzzer_sys::fuzz_target;
use mom_broker::fuzzing::{
    batch_ids, sigv4, spec_from_attributes, sqs_parse, sqs_queue_name, system_names, to_native, SqsEntry,
};
use mom_broker::model::Message;
use serde_json::Value;

/// The body as the endpoint reads it: blank is `{}`.
fn json(body: &[u8]) -> Option<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(serde_json::json!({}));
    }
    serde_json::from_slice(body).ok()
}

fn message(body: &[u8]) {
    let Some(v) = json(body) else { return };
    let Ok(entry) = sqs_parse::<SqsEntry>(v) else { return };
    let Ok((msg, digests)) = to_native(entry) else { return };
    if !common::check_send(&msg) {
        return;
    }
    // What the broker stores (client and broker attributes together), delivered back.
    let mut attributes = msg.attributes.clone();
    attributes.extend(msg.system.clone());
    let delivered = Message {
        id: "0000000000000001".into(),
        body: msg.body.clone(),
        attributes,
        receipt: "r".into(),
        receive_count: 1,
        sent_at: "2026-01-01T00:00:00.000Z".into(),
        group: None,
        sequence: None,
        dedup_id: None,
        sender: Some("fuzz".into()),
        first_received_ms: Some(1),
    };
    let all = ["All".to_string()];
    let out = mom_broker::fuzzing::to_sqs_message(delivered, &all, &system_names(&all), "us-east-1");
    assert_eq!(out["MD5OfBody"], digests["MD5OfMessageBody"]);
    assert_eq!(out.get("MD5OfMessageAttributes"), digests.get("MD5OfMessageAttributes"), "attribute digest changed: {out}");
    assert_eq!(out["Body"].as_str(), Some(msg.body.as_str()));
}

fn queue_attributes(body: &[u8]) {
    let Some(v) = json(body) else { return };
    let Ok(attrs) = sqs_parse::<BTreeMap<String, String>>(v) else { return };
    if let Ok(spec) = spec_from_attributes(&attrs) {
        common::check_queue_spec(spec);
    }
}

fn ids_and_urls(body: &[u8]) {
    let Some(v) = json(body) else { return };
    let Ok(list) = sqs_parse::<Vec<String>>(v) else { return };
    if let Ok(ids) = batch_ids(list.iter()) {
        assert!((1..=10).contains(&ids.len()));
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    }
    for url in &list {
        if let Ok(name) = sqs_queue_name(url) {
            assert!(!name.is_empty() && !name.contains('/'));
            common::check_name(&name);
        }
    }
}

fn signature(input: &[u8]) {
    let (head, body) = match input.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&input[..i], &input[i + 2..]),
        None => (input, &[][..]),
    };
    let Ok(head) = std::str::from_utf8(head) else { return };
    let mut lines = head.split('\n');
    let authorization = lines.next().unwrap_or("");
    let date = lines.next().unwrap_or("");
    let method = lines.next().unwrap_or("");
    let path = lines.next().unwrap_or("");
    let query = lines.next().unwrap_or("");
    let mut headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.to_string()))
        .collect();
    headers.push(("x-amz-date".into(), date.to_string()));
    let _ = sigv4::parse_amz_date(date);
    let Some(auth) = sigv4::parse_authorization(authorization) else { return };
    assert_eq!(auth.scope.split('/').count(), 4);
    assert!(auth.scope.ends_with("/aws4_request"));
    // Header values by name, all values of a repeated header joined by ',' (as the endpoint does).
    let lookup = |name: &str| -> Option<String> {
        let values: Vec<&str> = headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect();
        (!values.is_empty()).then(|| values.join(","))
    };
    let signed = sigv4::Signed { method, path, query, header: &lookup, body };
    let Some(expected) = sigv4::expected_signature(&auth, &signed, "fuzz secret") else { return };
    assert_eq!(expected.len(), 64);
    assert!(sigv4::signature_matches(&expected, &expected));
    assert_eq!(sigv4::signature_matches(&expected, &auth.signature), expected == auth.signature);
    // Deterministic, and bound to the secret.
    assert_eq!(sigv4::expected_signature(&auth, &signed, "fuzz secret").as_deref(), Some(expected.as_str()));
    assert_ne!(sigv4::expected_signature(&auth, &signed, "another secret").as_deref(), Some(expected.as_str()));
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else { return };
    match kind % 4 {
        0 => message(rest),
        1 => queue_attributes(rest),
        2 => ids_and_urls(rest),
        _ => signature(rest),
    }
});
