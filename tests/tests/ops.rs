//! Operations routes: `/healthz`, `/readyz`, `/metrics`, `/v1/openapi.json`.

use std::time::Duration;

use mom_tests::{broker_with_queue, json, start_broker, wait_until, Cluster};

#[tokio::test]
async fn healthz_and_readyz_answer_200_on_a_ready_broker() {
    let broker = start_broker().await;
    let client = broker.client();
    client.get("/healthz").await.expect_status(200);
    client.get("/readyz").await.expect_status(200);
}

/// One sample line of the Prometheus text format.
struct Sample<'a> {
    name: &'a str,
    labels: &'a str,
    value: f64,
}

fn samples(text: &str) -> Vec<Sample<'_>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels),
                None => (series, ""),
            };
            Some(Sample { name, labels, value: value.parse().ok()? })
        })
        .collect()
}

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

    let counters = families(text, "counter");
    let request_counters: Vec<&str> =
        counters.iter().copied().filter(|name| name.contains("request")).collect();
    assert!(!request_counters.is_empty(), "no request counter among counters {counters:?}:\n{text}");
    // The PUT that created the queue answered 201: some request counter counts it, by status.
    let counted_201 = samples(text)
        .iter()
        .any(|s| request_counters.contains(&s.name) && s.labels.contains("\"201\"") && s.value >= 1.0);
    assert!(counted_201, "no request count with status 201:\n{text}");

    let histograms = families(text, "histogram");
    assert!(!histograms.is_empty(), "no latency histogram in metrics:\n{text}");
    // Per-queue metrics (messages sent/received, depth) name the queue in a label.
    assert!(
        samples(text).iter().any(|s| s.labels.contains("\"metered\"")),
        "no metric labelled with the queue name:\n{text}"
    );
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
async fn every_setting_can_come_from_the_environment() {
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
