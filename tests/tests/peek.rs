//! Peeking at a queue, `GET /v1/queues/{name}/messages?limit=N&state=available|in_flight|delayed`:
//! it shows the messages of each state without receipts and changes nothing a consumer would
//! notice (receive counts, visibility, order); its rights are those of consuming; a bad state or
//! limit is 400, an unknown queue 404, a user who may not consume 403.

use mom_tests::{broker_with_queue, json, Client, Queue, Value};

/// The peeked messages of `state` (expecting 200).
async fn peek(client: &Client, queue: &Queue, query: &str) -> Vec<Value> {
    let resp = client.get(&queue.path(&format!("/messages?{query}"))).await.expect_status(200);
    resp.json["messages"].as_array().unwrap_or_else(|| panic!("no messages array in {resp}")).clone()
}

fn bodies(messages: &[Value]) -> Vec<&str> {
    messages.iter().map(|m| m["body"].as_str().unwrap_or("?")).collect()
}

#[tokio::test]
async fn peek_shows_each_state_without_receipts() {
    let (broker, queue) = broker_with_queue("peeked", json!({ "visibility_timeout_s": 600 })).await;
    let client = broker.client();
    let first = queue.send_msg(json!({ "body": "one", "attributes": { "k": "v" } })).await;
    queue.send("two").await;
    queue.send_msg(json!({ "body": "later", "delay_s": 600 })).await;
    let got = queue.receive(1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].id, first);

    let available = peek(&client, &queue, "state=available").await;
    assert_eq!(bodies(&available), ["two"], "{available:?}");
    let in_flight = peek(&client, &queue, "state=in_flight").await;
    assert_eq!(bodies(&in_flight), ["one"], "{in_flight:?}");
    assert_eq!(in_flight[0]["id"], first.as_str());
    assert_eq!(in_flight[0]["attributes"], json!({ "k": "v" }));
    assert_eq!(in_flight[0]["receive_count"], 1);
    let delayed = peek(&client, &queue, "state=delayed").await;
    assert_eq!(bodies(&delayed), ["later"], "{delayed:?}");

    for m in available.iter().chain(&in_flight).chain(&delayed) {
        let fields: Vec<&str> =
            m.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        assert_eq!(
            fields,
            ["attributes", "body", "id", "receive_count", "sent_at", "visible_at"],
            "a peeked message has exactly these fields, no receipt: {m}"
        );
    }
    // In flight: visible again at its deadline, after it was sent; delayed: at the end of its delay.
    let (sent, visible) = (in_flight[0]["sent_at"].as_str(), in_flight[0]["visible_at"].as_str());
    assert!(visible > sent, "{in_flight:?}");
    // The default state is available.
    assert_eq!(bodies(&peek(&client, &queue, "").await), ["two"]);
}

#[tokio::test]
async fn peek_changes_no_count_visibility_or_order() {
    let (broker, queue) = broker_with_queue("untouched", json!({})).await;
    let client = broker.client();
    let ids = queue.send_many(&["a", "b", "c"]).await;
    for _ in 0..3 {
        let seen = peek(&client, &queue, "state=available&limit=10").await;
        assert_eq!(bodies(&seen), ["a", "b", "c"], "{seen:?}");
        assert!(seen.iter().all(|m| m["receive_count"] == 0), "{seen:?}");
    }
    assert_eq!(
        bodies(&peek(&client, &queue, "limit=2").await),
        ["a", "b"],
        "limit bounds the answer, in order"
    );
    let stats = queue.stats().await;
    assert_eq!(stats.counts(), (3, 0, 0), "still all available: {stats:?}");
    // A receive after peeks gets the first message, on its first delivery.
    let got = queue.receive(3).await;
    let got_ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(got_ids, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(got.iter().all(|m| m.receive_count == 1), "{got:?}");
    // Peeking at what is in flight leaves it in flight with its count.
    let in_flight = peek(&client, &queue, "state=in_flight").await;
    assert_eq!(in_flight.len(), 3, "{in_flight:?}");
    assert!(in_flight.iter().all(|m| m["receive_count"] == 1), "{in_flight:?}");
    assert_eq!(queue.stats().await.counts(), (0, 3, 0));
    let receipts: Vec<&str> = got.iter().map(|m| m.receipt.as_str()).collect();
    queue.ack(&receipts).await;
}

#[tokio::test]
async fn a_bad_state_or_limit_is_400_and_an_unknown_queue_404() {
    let (broker, queue) = broker_with_queue("checked", json!({})).await;
    let client = broker.client();
    for query in ["state=gone", "limit=0", "limit=101", "limit=ten", "state=available&limit=-1"] {
        client.get(&queue.path(&format!("/messages?{query}"))).await.expect_error(400, "invalid_request");
    }
    client.get("/v1/queues/missing/messages").await.expect_error(404, "queue_not_found");
    // 400 comes before 404.
    client.get("/v1/queues/missing/messages?state=gone").await.expect_error(400, "invalid_request");
    client.get("/v1/queues/bad.name/messages").await.expect_error(400, "invalid_name");
    // Without a token: 401 first.
    let anonymous = broker.anonymous_client();
    anonymous.get(&queue.path("/messages")).await.expect_error(401, "unauthenticated");
}

#[tokio::test]
async fn peeking_takes_the_right_to_consume() {
    let (broker, queue) = broker_with_queue("private", json!({ "access": "restricted" })).await;
    queue.send("secret").await;
    let path = queue.path("/messages");
    let stranger = broker.add_user("stranger", "user").await;
    stranger.get(&path).await.expect_error(403, "forbidden");
    // A publish-only grant is not enough; a consume grant is.
    broker
        .client()
        .put(&queue.path("/grants/stranger"), json!({ "publish": true, "consume": false }))
        .await
        .expect_status(204);
    // A grant is visible through the node that answered it at once.
    stranger.post(&queue.path("/messages"), json!({ "body": "x" })).await.expect_status(201);
    stranger.get(&path).await.expect_error(403, "forbidden");
    broker
        .client()
        .put(&queue.path("/grants/stranger"), json!({ "publish": false, "consume": true }))
        .await
        .expect_status(204);
    let resp = stranger.get(&path).await.expect_status(200);
    let shown: Vec<&str> = resp.json["messages"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["body"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(shown, ["secret", "x"], "{resp}");
    // On an `authenticated` queue any user may consume, so any user may peek.
    let open = broker.client().queue("open");
    open.create(json!({})).await;
    stranger.get(&open.path("/messages")).await.expect_status(200);
}

#[tokio::test]
async fn the_openapi_document_describes_peek_beside_send() {
    let broker = mom_tests::start_broker().await;
    let doc = broker.anonymous_client().get("/v1/openapi.json").await.expect_status(200);
    let path = &doc.json["paths"]["/v1/queues/{name}/messages"];
    assert!(path["get"].is_object() && path["post"].is_object(), "{path}");
    let params: Vec<&str> = path["get"]["parameters"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(params.contains(&"limit") && params.contains(&"state"), "{path}");
    let limit = path["get"]["parameters"].as_array().and_then(|a| a.iter().find(|p| p["name"] == "limit"));
    assert_eq!(limit.map(|l| &l["schema"]["maximum"]), Some(&json!(100)), "{path}");
}

/// SQS's name form for FIFO queues, `<name>.fifo`, peeks like any other name, with the group's
/// order as a receive would take it.
#[tokio::test]
async fn peek_reads_a_fifo_queue_named_the_sqs_way() {
    let (broker, queue) =
        broker_with_queue("peek.fifo", json!({ "fifo": true, "content_based_dedup": true })).await;
    let client = broker.client();
    for body in ["first", "second"] {
        queue.send_msg(json!({ "body": body, "group": "g" })).await;
    }
    assert_eq!(bodies(&peek(&client, &queue, "state=available").await), ["first", "second"]);
}
