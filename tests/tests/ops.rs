//! Operations routes: `/healthz`, `/readyz`, `/metrics`, `/v1/openapi.json`.

use std::time::Duration;

use mom_tests::{broker_with_queue, json, metric_sample, start_broker, wait_until, Cluster};

/// Names of the metric families declared `# TYPE <name> <kind>`.
fn families<'a>(text: &'a str, kind: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.strip_prefix("# TYPE ")?.split_whitespace();
            let name = parts.next()?;
            (parts.next()? == kind).then_some(name)
        })
        .collect()
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_request_counts_by_status_and_queue_metrics() {
    let (broker, queue) = broker_with_queue("metered", json!({})).await;
    queue.send("one").await;
    queue.receive(1).await;

    let resp = broker.client().get("/metrics").await.expect_status(200);
    let content_type = resp.header("content-type").unwrap_or_default().to_string();
    assert!(content_type.starts_with("text/plain"), "metrics content type {content_type:?}");
    let text = &resp.text;

    // Request counts by route template, method and status: the PUT that created the queue
    // answered 201, the send 201, the receive 200.
    let requests = |route: &str, method: &str, status: &str| {
        metric_sample(
            text,
            "mom_http_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(requests("/v1/queues/{name}", "PUT", "201"), Some(1.0), "{text}");
    assert_eq!(requests("/v1/queues/{name}/messages", "POST", "201"), Some(1.0), "{text}");
    assert_eq!(requests("/v1/queues/{name}/receive", "POST", "200"), Some(1.0), "{text}");
    // A latency histogram by route: one observation of the receive.
    let receive_latency = metric_sample(
        text,
        "mom_http_request_duration_seconds_count",
        &[("route", "/v1/queues/{name}/receive"), ("method", "POST")],
    );
    assert_eq!(receive_latency, Some(1.0), "{text}");
    assert!(families(text, "histogram").contains(&"mom_http_request_duration_seconds"), "{text}");
    // Messages per queue.
    let queue = [("kind", "queue"), ("name", "metered")];
    assert_eq!(metric_sample(text, "mom_messages_sent_total", &queue), Some(1.0), "{text}");
    assert_eq!(metric_sample(text, "mom_messages_received_total", &queue), Some(1.0), "{text}");
    // Depth (`mom_queue_messages`), read from Redis when scraped: the one message is in flight.
    let depth =
        |state: &str| metric_sample(text, "mom_queue_messages", &[("queue", "metered"), ("state", state)]);
    assert_eq!((depth("available"), depth("in_flight")), (Some(0.0), Some(1.0)), "{text}");
    assert!(families(text, "counter").contains(&"mom_http_requests_total"), "{text}");
}

#[tokio::test]
async fn openapi_document_is_openapi_3_1_and_describes_the_queue_routes() {
    let broker = start_broker().await;
    let resp = broker.client().get("/v1/openapi.json").await.expect_status(200);
    let version = resp.json["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1"), "openapi version {version:?} in {resp}");
    let paths = resp.json["paths"].as_object().unwrap_or_else(|| panic!("no paths object in {resp}"));
    for route in ["/v1/queues", "/v1/queues/{name}/messages", "/v1/queues/{name}/receive"] {
        assert!(
            paths.contains_key(route),
            "OpenAPI paths lack {route}: {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn a_broker_configured_by_environment_alone_joins_the_cluster_its_variables_name() {
    let cluster = Cluster::new();
    let by_env = cluster.broker().via_env().node_id("configured-by-env").start().await;
    let by_flags = cluster.start_broker().await;
    // Same MOM_ZK_ROOT and MOM_REDIS_PREFIX as the flags: one cluster.
    let queue = by_env.client().queue("from-env");
    queue.create(json!({})).await;
    let id = queue.send("hello").await;
    let on_flags = by_flags.client().queue("from-env");
    let got = wait_until("the queue to reach the other node", Duration::from_secs(2), || async {
        let got = on_flags.receive(1).await;
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(got[0].id, id);
    // MOM_NODE_ID and MOM_LISTEN as the node registered itself.
    let nodes = by_flags.client().get("/v1/cluster").await.expect_status(200);
    let listed = nodes.json["nodes"].as_array().into_iter().flatten().any(|n| {
        n["id"] == "configured-by-env" && n["address"].as_str().is_some_and(|a| a.contains(by_env.listen()))
    });
    assert!(listed, "node configured by env not in {nodes}");
}
