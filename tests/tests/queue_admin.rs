//! Queue management: create (idempotent), names, config validation, list, get with stats, patch,
//! delete, purge, and the request conventions (malformed JSON, empty body, 404 on every route).

use std::time::Duration;

use mom_tests::{
    assert_fields, broker_with_queue, expect_missing_dead_letter_queue, json, start_broker, Body, Value,
};
use reqwest::Method;

/// The documented defaults of a queue created with `{}`.
fn default_config() -> Value {
    json!({
        "visibility_timeout_s": 30,
        "max_receives": null,
        "dead_letter_queue": null,
        "delay_s": 0,
        "retention_s": 345600,
        "max_message_bytes": 262144,
        "access": "authenticated",
    })
}

#[tokio::test]
async fn create_answers_201_then_200_for_the_same_config_and_409_for_another() {
    let broker = start_broker().await;
    let queue = broker.client().queue("orders");
    queue.create_resp(json!({ "visibility_timeout_s": 10 })).await.expect_status(201);
    queue.create_resp(json!({ "visibility_timeout_s": 10 })).await.expect_status(200);
    queue.create_resp(json!({ "visibility_timeout_s": 11 })).await.expect_error(409, "already_exists");
    // The rejected create changed nothing.
    let got = queue.get().await.expect_status(200);
    assert_eq!(got.json["visibility_timeout_s"], 10, "{got}");
}

#[tokio::test]
async fn create_compares_configs_after_defaults() {
    let broker = start_broker().await;
    let queue = broker.client().queue("plain");
    queue.create_resp(json!({})).await.expect_status(201);
    queue.create_resp(default_config()).await.expect_status(200);
    queue.create_resp(json!({ "visibility_timeout_s": 30 })).await.expect_status(200);
    queue.create_resp(json!({})).await.expect_status(200);
    queue.create_resp(json!({ "delay_s": 1 })).await.expect_error(409, "already_exists");
}

#[tokio::test]
async fn get_returns_name_default_config_and_zero_stats() {
    let (_broker, queue) = broker_with_queue("fresh", json!({})).await;
    let got = queue.get().await.expect_status(200);
    assert_eq!(got.json["name"], "fresh", "{got}");
    assert_fields(&got.json, &default_config());
    let stats = queue.stats().await;
    assert_eq!(stats.counts(), (0, 0, 0), "{stats:?}");
    assert!(
        stats.oldest_age_s.unwrap_or(0.0).abs() < 1e-9,
        "oldest_age_s of an empty queue is null or 0: {stats:?}"
    );
}

#[tokio::test]
async fn names_outside_the_pattern_are_invalid_name_on_create_and_get() {
    let broker = start_broker().await;
    let client = broker.client();
    let too_long = "x".repeat(81);
    for name in ["bad%20name", "a.b", "%C3%A9t%C3%A9", "star*", "a%2Bb", too_long.as_str()] {
        let path = format!("/v1/queues/{name}");
        client.put(&path, json!({})).await.expect_error(400, "invalid_name");
        // 400 for a malformed request comes before 404 for a missing resource.
        client.get(&path).await.expect_error(400, "invalid_name");
    }
    for name in ["x".repeat(80), "Az09_-".to_string(), "a".to_string()] {
        client.put(&format!("/v1/queues/{name}"), json!({})).await.expect_status(201);
    }
}

#[tokio::test]
async fn out_of_range_config_is_invalid_request_and_creates_nothing() {
    let broker = start_broker().await;
    let client = broker.client();
    let queue = client.queue("strict");
    for config in [
        json!({ "max_message_bytes": 1_048_577 }),
        json!({ "max_message_bytes": 0 }),
        json!({ "visibility_timeout_s": -1 }),
        json!({ "visibility_timeout_s": "30" }),
        json!({ "delay_s": -1 }),
        json!({ "retention_s": 0 }),
        json!({ "max_receives": 0 }),
        json!({ "access": "public" }),
    ] {
        let resp = queue.create_resp(config.clone()).await;
        assert_eq!(resp.status, 400, "config {config} must be rejected: {resp}");
        resp.expect_error(400, "invalid_request");
    }
    expect_missing_dead_letter_queue(
        queue.create_resp(json!({ "max_receives": 3, "dead_letter_queue": "nope" })).await,
    );
    queue.get().await.expect_error(404, "queue_not_found");
    // The upper bound itself is allowed.
    client.queue("big").create(json!({ "max_message_bytes": 1_048_576 })).await;
}

#[tokio::test]
async fn list_returns_every_queue_with_its_config() {
    let broker = start_broker().await;
    let client = broker.client();
    client.queue("alpha").create(json!({})).await;
    client.queue("beta").create(json!({ "visibility_timeout_s": 5 })).await;
    let resp = client.get("/v1/queues").await.expect_status(200);
    let queues = resp.json["queues"].as_array().unwrap_or_else(|| panic!("no queues array in {resp}"));
    let mut names: Vec<&str> = queues.iter().filter_map(|q| q["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["alpha", "beta"], "{resp}");
    let beta =
        queues.iter().find(|q| q["name"] == "beta").unwrap_or_else(|| panic!("beta missing in {resp}"));
    assert_fields(beta, &json!({ "visibility_timeout_s": 5, "delay_s": 0, "max_message_bytes": 262144 }));
}

#[tokio::test]
async fn patch_changes_only_the_given_fields() {
    let (broker, queue) = broker_with_queue("tunable", json!({})).await;
    queue.patch(json!({ "visibility_timeout_s": 5, "delay_s": 1 })).await.expect_status(200);
    let got = queue.get().await.expect_status(200);
    let mut expected = default_config();
    expected["visibility_timeout_s"] = json!(5);
    expected["delay_s"] = json!(1);
    assert_fields(&got.json, &expected);

    queue.patch(json!({ "max_message_bytes": 2_000_000 })).await.expect_error(400, "invalid_request");
    assert_fields(&queue.get().await.expect_status(200).json, &expected);
    // The config now differs from `{}`.
    queue.create_resp(json!({})).await.expect_error(409, "already_exists");

    let client = broker.client();
    client.queue("absent").patch(json!({ "delay_s": 1 })).await.expect_error(404, "queue_not_found");
    client.patch("/v1/queues/no.dots", json!({ "delay_s": 1 })).await.expect_error(400, "invalid_name");
}

#[tokio::test]
async fn delete_removes_the_queue_and_its_messages() {
    let (broker, queue) = broker_with_queue("doomed", json!({})).await;
    queue.send("left behind").await;
    queue.delete().await.expect_status(204);
    queue.get().await.expect_error(404, "queue_not_found");
    queue.send_resp(json!({ "body": "x" })).await.expect_error(404, "queue_not_found");
    queue.delete().await.expect_error(404, "queue_not_found");
    let list = broker.client().get("/v1/queues").await.expect_status(200);
    assert_eq!(list.json["queues"], json!([]), "{list}");

    // A new queue of the same name starts empty.
    queue.create(json!({})).await;
    assert_eq!(queue.stats().await.counts(), (0, 0, 0));
    assert!(queue.receive(10).await.is_empty());
}

#[tokio::test]
async fn purge_removes_available_delayed_and_in_flight_messages() {
    let (broker, queue) = broker_with_queue("purgeable", json!({})).await;
    queue.send_many(&["a", "b", "c"]).await;
    queue.send_msg(json!({ "body": "later", "delay_s": 30 })).await;
    assert_eq!(queue.receive(1).await.len(), 1);
    assert_eq!(queue.stats().await.counts(), (2, 1, 1));
    queue.purge().await.expect_status(204);
    assert_eq!(queue.stats().await.counts(), (0, 0, 0));
    assert!(queue.receive(10).await.is_empty());
    broker.client().queue("absent").purge().await.expect_error(404, "queue_not_found");
}

#[tokio::test]
async fn stats_are_exact_counts() {
    let (_broker, queue) = broker_with_queue("counted", json!({})).await;
    queue.send_many(&["1", "2", "3"]).await;
    for body in ["d1", "d2"] {
        queue.send_msg(json!({ "body": body, "delay_s": 60 })).await;
    }
    assert_eq!(queue.receive(1).await.len(), 1);
    assert_eq!(queue.stats().await.counts(), (2, 1, 2));
    // Waiting is the point here: the age of the oldest message grows with time.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stats = queue.stats().await;
    assert_eq!(stats.counts(), (2, 1, 2));
    let age =
        stats.oldest_age_s.unwrap_or_else(|| panic!("oldest_age_s is null with messages waiting: {stats:?}"));
    assert!((1.0..60.0).contains(&age), "oldest_age_s {age} after 1.1 s");
}

#[tokio::test]
async fn malformed_json_is_invalid_request_even_for_a_missing_queue() {
    let (broker, queue) = broker_with_queue("strict", json!({})).await;
    let client = broker.client();
    let raw = |text: &'static str| Body::Raw {
        content_type: Some("application/json"),
        bytes: text.as_bytes().to_vec(),
    };
    for path in [queue.path("/messages"), "/v1/queues/absent/messages".into()] {
        client
            .request(Method::POST, &path, raw("{\"body\": \"x\""))
            .await
            .expect_error(400, "invalid_request");
    }
    client
        .request(Method::PUT, "/v1/queues/other", raw("not json"))
        .await
        .expect_error(400, "invalid_request");
    for bad in [json!({ "body": 5 }), json!({}), json!([1, 2]), json!("body")] {
        queue.send_resp(bad).await.expect_error(400, "invalid_request");
    }
    assert_eq!(queue.stats().await.counts(), (0, 0, 0));
}

#[tokio::test]
async fn an_empty_body_is_treated_as_an_empty_object() {
    let broker = start_broker().await;
    let client = broker.client();
    client.request(Method::PUT, "/v1/queues/bare", Body::None).await.expect_status(201);
    let json_but_empty = Body::Raw { content_type: Some("application/json"), bytes: Vec::new() };
    client.request(Method::PUT, "/v1/queues/bare2", json_but_empty.clone()).await.expect_status(201);
    assert_fields(&client.queue("bare").get().await.expect_status(200).json, &default_config());
    let received =
        client.request(Method::POST, "/v1/queues/bare/receive", json_but_empty).await.expect_status(200);
    assert_eq!(received.json, json!({ "messages": [] }));
    client.request(Method::POST, "/v1/queues/bare/receive", Body::None).await.expect_status(200);
    client.request(Method::POST, "/v1/queues/bare/purge", Body::None).await.expect_status(204);
}

#[tokio::test]
async fn every_queue_route_answers_queue_not_found_for_a_missing_queue() {
    let broker = start_broker().await;
    let client = broker.client();
    let routes = [
        (Method::GET, "", Value::Null),
        (Method::PATCH, "", json!({ "delay_s": 1 })),
        (Method::DELETE, "", Value::Null),
        (Method::POST, "/purge", json!({})),
        (Method::POST, "/messages", json!({ "body": "x" })),
        (Method::POST, "/messages/batch", json!({ "messages": [{ "body": "x" }] })),
        (Method::POST, "/receive", json!({})),
        (Method::POST, "/ack", json!({ "receipts": ["r"] })),
        (Method::POST, "/nack", json!({ "receipts": ["r"] })),
        (Method::POST, "/visibility", json!({ "receipt": "r", "visibility_timeout_s": 1 })),
        (Method::POST, "/redrive", json!({})),
    ];
    for (method, suffix, body) in routes {
        let body = match body {
            Value::Null => Body::None,
            json => Body::Json(json),
        };
        client
            .request(method, &format!("/v1/queues/absent{suffix}"), body)
            .await
            .expect_error(404, "queue_not_found");
    }
}
