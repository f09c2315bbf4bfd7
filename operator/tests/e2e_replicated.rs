//! End to end on the local Docker engine (issue 10): `redis.mode: replicated` (a primary, two
//! replicas, three Sentinels) and `zookeeper.nodes: 3` are shown by `plan` and deployed by `up`
//! as containers of their own. Killing the Redis primary, the Sentinels promote a replica and
//! the brokers follow by themselves: with `min_replicas_ack: 1` no acknowledged send is lost.
//! Killing a ZooKeeper server, sends go on without a failure and metadata changes still work.
//! A later `up` brings both back; the old primary rejoins as a replica.
//!
//! Needs Docker and the images (.ci/run builds them). The broker image is
//! `MOM_E2E_BROKER_IMAGE` when set, else the one .ci/images.sh builds.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use common::api::{drain, eventually, send_all, Api};
use common::cluster::{docker_or_skip, ok, run, runtime, Down, Unique, BROKER_IMAGE};
use common::{text, TempDir};

/// `docker ARGS`: (succeeded, stdout + stderr).
fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(args).output().expect("run docker");
    (out.status.success(), format!("{}{}", text(&out.stdout), text(&out.stderr)))
}

/// `redis-cli ARGS` inside `container`, with the generated password from its environment.
fn redis_cli(container: &str, args: &str) -> String {
    let script = format!("REDISCLI_AUTH=\"$MOM_REDIS_PASSWORD\" redis-cli {args}");
    docker(&["exec", container, "bash", "-c", &script]).1
}

/// A data node and a Sentinel refuse a client without the generated password (NOAUTH).
fn assert_password_required(data_node: &str, sentinel: &str) {
    for (name, args) in [(data_node, "info replication"), (sentinel, "-p 26379 sentinel masters")] {
        let (_, said) = docker(&["exec", name, "bash", "-c", &format!("redis-cli {args}")]);
        assert!(said.contains("NOAUTH"), "{name} answered a client without the password: {said}");
    }
}

#[test]
fn replicated_redis_and_a_zookeeper_ensemble_survive_the_loss_of_a_node() {
    let rt = runtime();
    if docker_or_skip(&rt).is_none() {
        return;
    }
    let image = std::env::var("MOM_E2E_BROKER_IMAGE").unwrap_or_else(|_| BROKER_IMAGE.to_string());
    let unique = Unique::new("repl");
    let cluster = unique.cluster.clone();
    let container = |service: &str| format!("mom-{cluster}-{service}");
    let dir = TempDir::new("e2e-replicated");
    let yaml = unique
        .yaml(2)
        .replace(BROKER_IMAGE, &image)
        .replace("mode: single,", "mode: replicated, replicas: 2, min_replicas_ack: 1,")
        .replace("nodes: 1 }", "nodes: 3 }");
    assert!(yaml.contains("replicated") && yaml.contains("nodes: 3 }"), "{yaml}");
    dir.write("mom.yaml", &yaml);
    let _down = Down(dir.path());

    // `plan` shows every container of both ensembles.
    let out = run(dir.path(), &["plan"]);
    assert_eq!(out.status.code(), Some(2), "plan: something would change");
    let plan = text(&out.stdout);
    let stores = [
        "redis",
        "redis-replica-1",
        "redis-replica-2",
        "redis-sentinel-1",
        "redis-sentinel-2",
        "redis-sentinel-3",
        "zookeeper",
        "zookeeper-2",
        "zookeeper-3",
    ];
    for service in stores {
        assert!(plan.contains(&container(service)), "plan does not show {service}:\n{plan}");
    }

    ok(dir.path(), &["up"]);
    assert_eq!(run(dir.path(), &["plan"]).status.code(), Some(0), "converged");
    let status = ok(dir.path(), &["status"]);
    for service in stores {
        assert!(status.contains(&container(service)), "status does not show {service}:\n{status}");
    }
    assert_password_required(&container("redis-replica-1"), &container("redis-sentinel-2"));
    let info = redis_cli(&container("redis"), "info replication");
    assert!(info.contains("role:master") && info.contains("connected_slaves:2"), "{info}");
    let primary = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &container("redis"),
    ])
    .1
    .trim()
    .to_string();

    rt.block_on(async {
        let api = Api::login(&unique.base()).await;
        api.nodes(2).await;
        let (status, created) = api.call(Method::PUT, "/v1/queues/repl-q", json!({})).await;
        assert_eq!(status, 201, "create queue: {created}");
        let (status, _) = api
            .call_until_found(
                Method::POST,
                "/v1/queues/repl-q/messages",
                json!({"body": "m-0", "dedup_id": "m-0"}),
            )
            .await;
        assert_eq!(status, 201);
        send_all(&api, "repl-q", 1, 49, Duration::from_secs(5)).await;

        // The primary dies. Sends fail until the Sentinels agree (5 s) and promote a replica.
        let (killed, said) = docker(&["kill", &container("redis")]);
        assert!(killed, "{said}");
        let started = Instant::now();
        let failed = send_all(&api, "repl-q", 50, 50, Duration::from_secs(60)).await;
        eprintln!(
            "failover: {failed} failed send attempts, all 50 sends acknowledged after {:?}",
            started.elapsed()
        );
        let now = redis_cli(&container("redis-sentinel-1"), "-p 26379 sentinel get-master-addr-by-name mom");
        assert!(!now.contains(&primary), "the Sentinels still name the killed primary: {now}");

        // Every acknowledged send is there (each replicated before its 201).
        let seen = drain(&api, "repl-q", 100).await;
        let missing: Vec<String> =
            (0..100).map(|i| format!("m-{i}")).filter(|m| !seen.contains_key(m)).collect();
        assert!(missing.is_empty(), "acknowledged sends lost in the failover: {missing:?}");
        let duplicates: usize = seen.values().map(|n| n - 1).sum();
        eprintln!("failover: 100 sends, none lost, {duplicates} delivered twice");

        // One ZooKeeper server dies: no request fails, metadata still changes.
        let (killed, said) = docker(&["kill", &container("zookeeper")]);
        assert!(killed, "{said}");
        assert_eq!(send_all(&api, "repl-q", 100, 20, Duration::from_secs(1)).await, 0, "a send failed");
        let (status, created) = api.call(Method::PUT, "/v1/queues/repl-after-zk", json!({})).await;
        assert_eq!(status, 201, "create a queue with one ZooKeeper server down: {created}");
        let (status, _) = api
            .call_until_found(Method::POST, "/v1/queues/repl-after-zk/messages", json!({"body": "m-0"}))
            .await;
        assert_eq!(status, 201);
        drain(&api, "repl-after-zk", 1).await;
        // Both brokers' sessions survived (their membership znodes are still there).
        api.nodes(2).await;
        drain(&api, "repl-q", 20).await;
    });

    // `up` starts what died; the old primary comes back as a replica of the new one.
    let up = ok(dir.path(), &["up"]);
    assert!(up.contains(&container("redis")) && up.contains(&container("zookeeper")), "{up}");
    rt.block_on(eventually("the old primary rejoins as a replica", Duration::from_secs(60), async || {
        let info = redis_cli(&container("redis"), "info replication");
        (info.contains("role:slave") && info.contains("master_link_status:up")).then_some(())
    }));
    // After the failover and the restart, still no way in without the password.
    assert_password_required(&container("redis-replica-1"), &container("redis-sentinel-2"));
    assert_eq!(run(dir.path(), &["plan"]).status.code(), Some(0), "converged again");
}
