//! Several broker processes: metadata propagation, long polls woken through another node, and
//! isolation between clusters that share Redis and ZooKeeper.

use std::time::{Duration, Instant};

use mom_tests::util::{is_rfc3339_millis, timing};
use mom_tests::{json, wait_until, Cluster, Queue};

use mom_tests::util::PROPAGATION;

/// Waits until `queue` (on another node) answers GET with `status`, within [`PROPAGATION`].
async fn until_status(queue: &Queue, status: u16, what: &str) {
    let start = Instant::now();
    wait_until(what, PROPAGATION, || async { (queue.get().await.status == status).then_some(()) }).await;
    timing(&format!("cluster.propagation.{what}"), start.elapsed());
}

#[tokio::test]
async fn queue_metadata_written_on_one_node_is_visible_on_another_within_1_5s() {
    let cluster = Cluster::new();
    let a = cluster.start_broker().await;
    let b = cluster.start_broker().await;
    let on_a = a.client().queue("shared");
    let on_b = b.client().queue("shared");

    on_a.create(json!({ "visibility_timeout_s": 5 })).await;
    // Read-your-writes on the node that answered.
    on_a.get().await.expect_status(200);
    until_status(&on_b, 200, "the queue created on A to appear on B").await;
    on_b.send("via b").await;
    assert_eq!(on_a.receive(1).await[0].body, "via b");
    on_b.create_resp(json!({ "visibility_timeout_s": 5 })).await.expect_status(200);

    on_a.patch(json!({ "visibility_timeout_s": 7 })).await.expect_status(200);
    let patched = Instant::now();
    wait_until("the patch on A to reach B", PROPAGATION, || async {
        (on_b.get().await.json["visibility_timeout_s"] == 7).then_some(())
    })
    .await;
    timing("cluster.propagation.the_patch_on_A_to_reach_B", patched.elapsed());

    on_a.delete().await.expect_status(204);
    until_status(&on_b, 404, "the delete on A to reach B").await;
    on_b.send_resp(json!({ "body": "x" })).await.expect_error(404, "queue_not_found");
}

#[tokio::test]
async fn a_long_poll_is_woken_by_a_send_through_another_broker() {
    let cluster = Cluster::new();
    let a = cluster.start_broker().await;
    let b = cluster.start_broker().await;
    let on_a = a.client().queue("wakeup");
    let on_b = b.client().queue("wakeup");
    on_a.create(json!({})).await;
    until_status(&on_b, 200, "the queue to appear on B").await;

    for round in 0..3 {
        let poll = on_a.hold_receive(json!({ "wait_s": 20 })).await;
        let send_started = Instant::now();
        let body = format!("wake {round}");
        on_b.send(&body).await;
        let (got, answered) = poll.await.expect("long poll task");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].body, body);
        let latency = answered - send_started;
        timing("cluster.wake_through_another_node", latency);
        // The contract's 100 ms is for normal load; on a loaded machine, 500 ms. Measured (20
        // runs x 3 rounds, loaded 2-core machine under stress-ng --cpu 2, 2026-12-07): median
        // 17 ms, p95 79 ms, max 117 ms.
        assert!(
            latency < Duration::from_millis(500),
            "round {round}: the poll on A answered {latency:?} after the send on B"
        );
        on_a.ack_all(&got).await;
    }
}

#[tokio::test]
async fn clusters_with_different_namespaces_do_not_see_each_other() {
    let a = Cluster::new().start_broker().await;
    let b = Cluster::new().start_broker().await;
    let on_a = a.client().queue("same-name");
    let on_b = b.client().queue("same-name");
    on_a.create(json!({ "visibility_timeout_s": 5 })).await;
    on_a.send("only in a").await;

    // Longer than any propagation delay: absence over time is the point.
    tokio::time::sleep(PROPAGATION).await;
    on_b.get().await.expect_error(404, "queue_not_found");
    let listed = b.client().get("/v1/queues").await.expect_status(200);
    assert_eq!(listed.json["queues"], json!([]), "{listed}");

    on_b.create_resp(json!({ "visibility_timeout_s": 9 })).await.expect_status(201);
    assert!(on_b.receive(10).await.is_empty());
    assert_eq!(on_a.receive(10).await[0].body, "only in a");
    assert_eq!(on_a.stats().await.counts(), (0, 1, 0));
    assert_eq!(on_b.stats().await.counts(), (0, 0, 0));
}

#[tokio::test]
async fn two_nodes_racing_to_create_one_name_make_one_queue() {
    let cluster = Cluster::new();
    let a = cluster.start_broker().await;
    let b = cluster.start_broker().await;
    for i in 0..5 {
        let name = format!("race-{i}");
        let on_a = a.client().queue(&name);
        let on_b = b.client().queue(&name);
        let (ra, rb) = tokio::join!(
            on_a.create_resp(json!({ "visibility_timeout_s": 10 })),
            on_b.create_resp(json!({ "visibility_timeout_s": 20 })),
        );
        let mut statuses = [ra.status, rb.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "{ra} / {rb}");
        let winner = if ra.status == 201 { 10 } else { 20 };
        for queue in [&on_a, &on_b] {
            wait_until("both nodes to agree on the winner", PROPAGATION, || async {
                (queue.get().await.json["visibility_timeout_s"] == winner).then_some(())
            })
            .await;
        }
    }
    let on_a = a.client().queue("same");
    let on_b = b.client().queue("same");
    let (ra, rb) = tokio::join!(on_a.create_resp(json!({})), on_b.create_resp(json!({})));
    let mut statuses = [ra.status, rb.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 201], "{ra} / {rb}");
}

#[tokio::test]
async fn the_cluster_lists_its_nodes_and_a_drained_node_leaves_it() {
    let cluster = Cluster::new();
    let a = cluster.broker().node_id("node-a").start().await;
    let mut b = cluster.broker().node_id("node-b").start().await;
    let view = wait_until("both nodes to be listed", PROPAGATION, || async {
        let (view, ids) = a.cluster_view().await;
        (ids == ["node-a", "node-b"]).then_some(view)
    })
    .await;
    for node in view["nodes"].as_array().into_iter().flatten() {
        let broker = if node["id"] == "node-a" { &a } else { &b };
        assert!(node["address"].as_str().is_some_and(|s| s.contains(broker.listen())), "address of {node}");
        assert!(node["version"].as_str().is_some_and(|s| !s.is_empty()), "version of {node}");
        assert!(node["started_at"].as_str().is_some_and(is_rfc3339_millis), "started_at of {node}");
    }
    let leader = view["leader"].as_str().unwrap_or_default();
    assert!(["node-a", "node-b"].contains(&leader), "leader {leader:?} in {view}");

    b.sigterm();
    b.wait_clean_exit(Duration::from_secs(10)).await;
    wait_until("the drained node to leave", PROPAGATION, || async {
        (a.cluster_view().await.1 == ["node-a"]).then_some(())
    })
    .await;
    wait_until("the remaining node to lead", Duration::from_secs(5), || async {
        (a.cluster_view().await.0["leader"] == "node-a").then_some(())
    })
    .await;
}
