//! The native HTTP API's outside input: JSON request bodies through the `Body` extractor's parser
//! (`http::extract::parse`) into every body type, then the core's validation; and request URIs
//! through the `Names` (path) and `Params` (query) extractors.
//!
//! Input: one selector byte, then the body (selectors 0..=15) or the URI (16..).

#![no_main]

mod common;

use std::convert::Infallible;

use axum::body::{Body as HttpBody, Bytes};
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use libfuzzer_sys::fuzz_target;
use mom_broker::fuzzing::{parse_body, Login, Names, NewPassword, Params, StreamQuery};
use mom_broker::meta::Grant;
use mom_broker::model::*;
use mom_broker::service::auth::{validate_password, validate_username};
use mom_broker::service::users::NewUser;
use tower::ServiceExt;

fn body(kind: u8, bytes: Bytes) {
    match kind {
        0 => {
            if let Ok(spec) = parse_body::<QueueSpec>(&bytes) {
                common::check_queue_spec(spec);
            }
        }
        1 => {
            if let Ok(spec) = parse_body::<TopicSpec>(&bytes) {
                common::check_topic_spec(spec);
            }
        }
        2 => {
            if let Ok(spec) = parse_body::<SubscriptionSpec>(&bytes) {
                if let Some(StartSpec::Time { time }) = &spec.start {
                    common::check_time(time);
                }
                common::check_subscription_spec(spec);
            }
        }
        3 => {
            if let Ok(m) = parse_body::<SendMessage>(&bytes) {
                // `system` attributes are never taken from a client's body.
                assert!(m.system.is_empty());
                common::check_send(&m);
            }
        }
        4 => {
            if let Ok(batch) = parse_body::<SendBatch>(&bytes) {
                for m in &batch.messages {
                    assert!(m.system.is_empty());
                    common::check_send(m);
                }
            }
        }
        5 => {
            if let Ok(r) = parse_body::<ReceiveRequest>(&bytes) {
                common::check_receive(&r);
            }
        }
        6 => {
            let _ = parse_body::<AckRequest>(&bytes);
        }
        7 => {
            let _ = parse_body::<NackRequest>(&bytes);
        }
        8 => {
            let _ = parse_body::<VisibilityRequest>(&bytes);
        }
        9 => {
            if let Ok(RedriveRequest { to: Some(to) }) = parse_body::<RedriveRequest>(&bytes) {
                common::check_name(&to);
            }
        }
        10 => {
            if let Ok(SeekRequest { time: Some(t), .. }) = parse_body::<SeekRequest>(&bytes) {
                common::check_time(&t);
            }
        }
        11 => {
            let _ = parse_body::<Grant>(&bytes);
        }
        12 => {
            if let Ok(u) = parse_body::<NewUser>(&bytes) {
                let _ = validate_username(&u.username);
                let _ = validate_password(&u.password);
            }
        }
        13 => {
            let _ = parse_body::<Login>(&bytes);
        }
        14 => {
            let _ = parse_body::<NewPassword>(&bytes);
        }
        _ => {
            // An empty or all-whitespace body is `{}`, never an error of its own.
            let blank = bytes.iter().all(u8::is_ascii_whitespace);
            let parsed = parse_body::<serde_json::Value>(&bytes);
            if blank {
                assert!(matches!(parsed, Ok(serde_json::Value::Object(ref m)) if m.is_empty()));
            }
        }
    }
}

async fn one_name(Names(name): Names<String>) -> Result<&'static str, Infallible> {
    common::check_name(&name);
    Ok("ok")
}

async fn two_names(Names((topic, sub)): Names<(String, String)>, Params(_q): Params<StreamQuery>) -> &'static str {
    common::check_name(&topic);
    common::check_name(&sub);
    "ok"
}

/// The production path shapes, with handlers that run the production extractors.
fn router() -> Router {
    Router::new()
        .route("/v1/queues/{name}", get(one_name))
        .route("/v1/topics/{name}/subscriptions/{sub}/stream", get(two_names))
}

fn uri(text: &[u8]) {
    let Ok(req) = Request::get(text).body(HttpBody::empty()) else { return };
    let Ok(resp) = futures::executor::block_on(router().oneshot(req));
    // A bad path or query is the client's error (400) or no route (404), never a 500.
    let s = resp.status();
    assert!(
        s == StatusCode::OK || s == StatusCode::BAD_REQUEST || s == StatusCode::NOT_FOUND,
        "unexpected status {s} for {:?}",
        String::from_utf8_lossy(text)
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else { return };
    if kind < 16 {
        body(kind, Bytes::copy_from_slice(rest));
    } else {
        uri(rest);
    }
});
