//! End to end on the local Docker engine: `momctl up` a cluster of 3 brokers from images built
//! here (scripts/images.sh, `momctl build`); through NGINX only, log in, create a queue, send,
//! receive, ack; a second `up` does nothing; 3 → 4 brokers adds one and reloads NGINX; `status`
//! and `logs` read the real containers; 4 → 2 removes two (NGINX no longer names them, nothing
//! acknowledged is lost); a changed `broker.image` moves every broker to it; upgrade, rollback and
//! a second rollback (forward again); `down --yes` leaves nothing labelled behind.
//!
//! Needs Docker and the images. Outside CI it skips (with a message) when they are missing; in
//! CI (`CI` set) that is a failure, since .ci/run builds them first.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
};
use bollard::Docker;
use serde_json::{json, Value};

use common::api::Api;
use common::cluster::{docker_or_skip, ok, run, runtime, Down, Unique, BROKER_IMAGE, PASSWORD, PASSWORD_ENV};
use common::{momctl, text, TempDir};

async fn leftovers(docker: &Docker, cluster: &str) -> Vec<String> {
    let filters = HashMap::from([("label".to_string(), vec![format!("mom.cluster={cluster}")])]);
    let mut left = Vec::new();
    let containers = docker
        .list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&filters).build()))
        .await
        .expect("list containers");
    left.extend(containers.into_iter().flat_map(|c| c.names.unwrap_or_default()));
    let networks = docker
        .list_networks(Some(ListNetworksOptionsBuilder::default().filters(&filters).build()))
        .await
        .expect("networks");
    left.extend(networks.into_iter().filter_map(|n| n.name));
    let volumes = docker
        .list_volumes(Some(ListVolumesOptionsBuilder::default().filters(&filters).build()))
        .await
        .expect("volumes");
    left.extend(volumes.volumes.unwrap_or_default().into_iter().map(|v| v.name));
    left
}

/// Each running broker's image and generation, as `status` reports them.
fn broker_images(dir: &std::path::Path) -> Vec<(String, u64)> {
    let status: Value = serde_json::from_str(&ok(dir, &["status", "--output", "json"])).expect("status json");
    status["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter(|c| c["role"] == "broker" && c["state"] == "running")
        .map(|c| (c["image"].as_str().unwrap_or_default().to_string(), c["generation"].as_u64().unwrap_or(0)))
        .collect()
}

/// The names of the cluster's containers, as Docker lists them (by the cluster's label).
async fn containers_of(docker: &Docker, cluster: &str) -> Vec<String> {
    let filters = HashMap::from([("label".to_string(), vec![format!("mom.cluster={cluster}")])]);
    let containers = docker
        .list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&filters).build()))
        .await
        .expect("list containers");
    containers.into_iter().flat_map(|c| c.names.unwrap_or_default()).collect()
}

#[test]
fn up_serves_through_nginx_scales_and_down_leaves_nothing() {
    let rt = runtime();
    let Some(docker) = docker_or_skip(&rt) else {
        return;
    };
    let unique = Unique::new("e2e");
    let cluster = unique.cluster.clone();
    let port = unique.port;
    let dir = TempDir::new("e2e");
    let yaml = |nodes: u32| unique.yaml(nodes);
    dir.write("mom.yaml", &yaml(3));
    let _down = Down(dir.path());

    // Without the password nothing is touched.
    let out = momctl(dir.path(), &["up"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(PASSWORD_ENV), "{}", text(&out.stderr));
    assert!(rt.block_on(leftovers(&docker, &cluster)).is_empty(), "a refused up touched something");

    let plan = run(dir.path(), &["plan"]);
    assert_eq!(plan.status.code(), Some(2), "changes to make");

    let up = ok(dir.path(), &["up"]);
    for step in ["create network", "create and start container", "wait until healthy", "is up at"] {
        assert!(up.contains(step), "`{step}` not reported");
    }
    assert!(!up.contains(PASSWORD), "the password is never printed");
    assert!(up.contains("web console at ") && up.contains("/console/"), "the console's URL: {up}");

    let base = format!("http://127.0.0.1:{port}");
    rt.block_on(async {
        use reqwest::Method;
        // The web console through NGINX (tests/tests/console.rs drives it in a browser).
        let console = reqwest::get(format!("{base}/console/")).await.expect("GET /console/");
        assert_eq!(console.status(), 200, "the console through NGINX");
        let api = Api::login(&base).await;
        api.nodes(3).await;
        let (status, _) =
            api.call(Method::PUT, "/v1/queues/e2e-orders", json!({"visibility_timeout_s": 30})).await;
        assert_eq!(status, 201, "create queue");
        // A new queue is visible on every broker within 1 s (the API's contract); NGINX may pick
        // another broker than the one that created it.
        let (status, sent) = api
            .call_until_found(Method::POST, "/v1/queues/e2e-orders/messages", json!({"body": "hello"}))
            .await;
        assert_eq!(status, 201, "send: {sent}");
        let (status, got) =
            api.call(Method::POST, "/v1/queues/e2e-orders/receive", json!({"max": 10, "wait_s": 5})).await;
        assert_eq!(status, 200);
        let messages = got["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 1, "{got}");
        assert_eq!(messages[0]["body"], "hello");
        assert_eq!(messages[0]["id"], sent["id"]);
        let receipt = messages[0]["receipt"].clone();
        let (status, acked) =
            api.call(Method::POST, "/v1/queues/e2e-orders/ack", json!({"receipts": [receipt]})).await;
        assert_eq!(status, 200);
        assert_eq!(acked["results"][0]["ok"], true, "{acked}");
        let (_, stats) = api.call(Method::GET, "/v1/queues/e2e-orders", Value::Null).await;
        assert_eq!(stats["stats"]["available"], 0, "{stats}");
        assert_eq!(stats["stats"]["in_flight"], 0, "{stats}");

        // gRPC through the cluster's NGINX (`nginx.grpc_port`, grpc_pass to every broker): a
        // client no one here wrote (Python grpcio, tests/grpc/client.py) does send/receive/ack,
        // errors and a Subscribe stream; what it sent is then received over HTTP.
        let root = common::repo_root();
        let out = tokio::process::Command::new("python3")
            .arg(root.join("tests/grpc/client.py"))
            .env("MOM_GRPC_TARGET", format!("127.0.0.1:{}", unique.grpc_port))
            .env("MOM_GRPC_TOKEN", &api.token)
            .env("MOM_GRPC_PROTO_DIR", root.join("broker/proto"))
            .env("MOM_GRPC_PREFIX", "e2e-py")
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(120), out)
            .await
            .expect("the Python gRPC client ran over 120 s")
            .expect("python3 with grpcio (installed by .ci/run)");
        assert!(
            out.status.success(),
            "gRPC through NGINX failed:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let (status, got) =
            api.call(Method::POST, "/v1/queues/e2e-py-cross/receive", json!({"max": 10, "wait_s": 5})).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(got["messages"][0]["body"], "from python", "{got}");
    });

    // Converged: a second up and plan have nothing to do.
    assert!(ok(dir.path(), &["up"]).contains("nothing to do"));
    assert_eq!(run(dir.path(), &["plan"]).status.code(), Some(0));

    // 3 → 4 brokers: one new container and NGINX's config, nothing else.
    dir.write("mom.yaml", &yaml(4));
    let plan = run(dir.path(), &["plan", "--output", "json"]);
    assert_eq!(plan.status.code(), Some(2));
    let plan: Value = serde_json::from_slice(&plan.stdout).expect("plan json");
    let changes: Vec<(String, String, String)> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| (c["action"].to_string(), c["kind"].to_string(), c["name"].to_string()))
        .collect();
    assert_eq!(
        changes,
        [
            ("\"create\"".into(), "\"container\"".into(), format!("\"mom-{cluster}-broker-4\"")),
            ("\"update\"".into(), "\"config\"".into(), format!("\"mom-{cluster}-nginx\"")),
        ]
    );
    let up = ok(dir.path(), &["up"]);
    assert!(up.contains("reload NGINX"), "NGINX reloaded");
    rt.block_on(async {
        let api = Api::login(&base).await;
        api.nodes(4).await;
    });

    let status = ok(dir.path(), &["status", "--output", "json"]);
    let status: Value = serde_json::from_str(&status).expect("status json");
    let containers = status["containers"].as_array().expect("containers");
    // Every container Docker has for the cluster, and only those; 4 of them brokers.
    let on_docker = rt.block_on(containers_of(&docker, &cluster));
    assert_eq!(containers.len(), on_docker.len(), "{status}\non Docker: {on_docker:?}");
    let brokers = on_docker.iter().filter(|n| n.contains(&format!("mom-{cluster}-broker-"))).count();
    assert_eq!(brokers, 4, "{on_docker:?}");
    assert_eq!(status["grpc_endpoint"], format!("127.0.0.1:{}", unique.grpc_port), "{status}");
    assert!(containers.iter().all(|c| c["state"] == "running" && c["health"] == "healthy"), "{status}");
    assert_eq!(status["api"]["nodes"].as_array().map(Vec::len), Some(4), "{status}");
    assert!(status["api"]["nodes"].as_array().into_iter().flatten().all(|n| n["version"] == "0.1.0"));
    // What the API lists (e2e-orders, and what the gRPC client made).
    let (queues, topics) = rt.block_on(async {
        let api = Api::login(&base).await;
        let count = |list: Value, key: &str| list[key].as_array().map(Vec::len).expect("a list");
        let (_, queues) = api.call(reqwest::Method::GET, "/v1/queues", Value::Null).await;
        let (_, topics) = api.call(reqwest::Method::GET, "/v1/topics", Value::Null).await;
        (count(queues, "queues"), count(topics, "topics"))
    });
    assert!(queues >= 1 && topics >= 1, "the queues and topics made above are listed");
    assert_eq!(status["api"]["queues"], queues, "{status}");
    assert_eq!(status["api"]["topics"], topics, "{status}");

    let logs = ok(dir.path(), &["logs", "nginx", "--tail", "20"]);
    assert!(logs.contains("/v1/cluster"), "NGINX's access log: {logs}");

    // 4 → 2 brokers: the removed brokers' containers go, NGINX's upstreams no longer name them,
    // and every message acknowledged before is still received.
    const KEPT: usize = 40;
    rt.block_on(async {
        let api = Api::login(&base).await;
        let (status, _) = api.call(reqwest::Method::PUT, "/v1/queues/e2e-keep", json!({})).await;
        assert_eq!(status, 201, "create queue");
        common::api::send_all(&api, "e2e-keep", 0, KEPT, Duration::from_secs(30)).await;
    });
    dir.write("mom.yaml", &yaml(2));
    ok(dir.path(), &["up"]);
    let on_docker = rt.block_on(containers_of(&docker, &cluster));
    let brokers: Vec<&String> =
        on_docker.iter().filter(|n| n.contains(&format!("mom-{cluster}-broker-"))).collect();
    assert_eq!(brokers.len(), 2, "{on_docker:?}");
    assert!(
        !brokers.iter().any(|n| n.ends_with("-broker-3") || n.ends_with("-broker-4")),
        "brokers 3 and 4 removed: {on_docker:?}"
    );
    let conf = std::process::Command::new("docker")
        .args(["exec", &format!("mom-{cluster}-nginx"), "cat", mom_operator::desired::NGINX_CONF_TARGET])
        .output()
        .expect("docker exec");
    let conf = text(&conf.stdout);
    assert!(
        conf.contains("broker-2") && !conf.contains("broker-3") && !conf.contains("broker-4"),
        "NGINX's upstreams:\n{conf}"
    );
    assert!(ok(dir.path(), &["up"]).contains("nothing to do"), "converged at 2");
    rt.block_on(async {
        let api = Api::login(&base).await;
        api.nodes(2).await;
        let seen = common::api::drain(&api, "e2e-keep", KEPT).await;
        let expected: Vec<String> = (0..KEPT).map(|i| format!("m-{i}")).collect();
        assert_eq!(seen.keys().cloned().collect::<Vec<_>>().len(), KEPT, "{seen:?}");
        assert!(expected.iter().all(|b| seen.contains_key(b)), "acknowledged messages lost: {seen:?}");
    });

    // A changed `broker.image` in the file: the file wins, and `up` moves every broker to it
    // (README, "Rolling upgrades"), starting generation 1 of each beside its old container (the
    // other upstream slot) and draining the old one once the new is healthy; the cluster keeps
    // serving what it held.
    let renamed_tag = format!("e2e-{cluster}");
    let renamed = format!("mom-broker:{renamed_tag}");
    rt.block_on(async {
        let options = bollard::query_parameters::TagImageOptionsBuilder::default()
            .repo("mom-broker")
            .tag(&renamed_tag)
            .build();
        docker.tag_image(BROKER_IMAGE, Some(options)).await.expect("tag the broker image");
    });
    dir.write("mom.yaml", &yaml(2).replace(BROKER_IMAGE, &renamed));
    assert_eq!(run(dir.path(), &["plan"]).status.code(), Some(2), "a changed image is a change");
    ok(dir.path(), &["up"]);
    let status: Value =
        serde_json::from_str(&ok(dir.path(), &["status", "--output", "json"])).expect("status json");
    let images: Vec<&str> = status["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter(|c| c["role"] == "broker")
        .map(|c| c["image"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(images, [renamed.as_str(); 2], "{status}");
    assert_eq!(broker_images(dir.path()), vec![(renamed.clone(), 1); 2], "started beside the old ones");
    assert!(ok(dir.path(), &["up"]).contains("nothing to do"), "converged on the file's image");
    rt.block_on(async {
        let api = Api::login(&base).await;
        api.nodes(2).await;
        let (status, _) = api.call(reqwest::Method::GET, "/v1/queues/e2e-keep", Value::Null).await;
        assert_eq!(status, 200, "the queue survived the image change");
    });

    // upgrade, rollback, and a second rollback, which goes forward again (README: like Kamal's).
    ok(dir.path(), &["upgrade", "--broker-image", BROKER_IMAGE]);
    assert_eq!(broker_images(dir.path()), vec![(BROKER_IMAGE.to_string(), 2); 2]);
    ok(dir.path(), &["rollback"]);
    assert_eq!(broker_images(dir.path()), vec![(renamed.clone(), 3); 2]);
    ok(dir.path(), &["rollback"]);
    assert_eq!(
        broker_images(dir.path()),
        vec![(BROKER_IMAGE.to_string(), 4); 2],
        "the second rollback goes forward"
    );
    rt.block_on(async { Api::login(&base).await.nodes(2).await });

    // Down removes every container, network and volume of the cluster, and only those.
    assert_eq!(
        momctl(dir.path(), &["down"], &[]).status.code(),
        Some(1),
        "down without --yes and no terminal"
    );
    let home = mom_operator::home::cluster_dir(&cluster);
    assert!(home.join("cluster-secrets.env").exists(), "up keeps the generated secrets in {home:?}");
    let down = ok(dir.path(), &["down", "--yes"]);
    assert!(down.contains(&format!("directory {}/", home.display())), "down names the directory: {down}");
    let left = rt.block_on(leftovers(&docker, &cluster));
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!home.exists(), "down removes {home:?}");
    assert!(ok(dir.path(), &["down", "--yes"]).contains("nothing to remove"));
    let _ = rt.block_on(docker.remove_image(
        &renamed,
        None::<bollard::query_parameters::RemoveImageOptions>,
        None,
    ));
}

/// `down` of a local cluster removes its directory (`$MOMCTL_HOME/<cluster>/`: the generated
/// secrets, the CA), after listing it, even when nothing of it is left on Docker.
#[test]
fn down_removes_the_local_cluster_directory() {
    let rt = runtime();
    if docker_or_skip(&rt).is_none() {
        return;
    }
    let unique = Unique::new("dir");
    let dir = TempDir::new("down-dir");
    dir.write("mom.yaml", &unique.yaml(1));
    let home = TempDir::new("down-home");
    let cluster_dir = home.path().join(&unique.cluster);
    std::fs::create_dir_all(&cluster_dir).expect("mkdir");
    std::fs::write(cluster_dir.join("cluster-secrets.env"), "MOM_REDIS_PASSWORD=x\n").expect("write");
    let home_env = home.path().to_str().expect("utf-8");

    let out = momctl(dir.path(), &["down", "--yes"], &[("MOMCTL_HOME", home_env)]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", text(&out.stderr));
    assert!(stdout.contains(&format!("directory {}/", cluster_dir.display())), "listed first: {stdout}");
    assert!(stdout.contains("removed"), "{stdout}");
    assert!(!cluster_dir.exists(), "down removes {cluster_dir:?}");

    let again = momctl(dir.path(), &["down", "--yes"], &[("MOMCTL_HOME", home_env)]);
    assert!(text(&again.stdout).contains("nothing to remove"), "{}", text(&again.stdout));
}

/// `momctl build --binary PATH --tag IMG` makes the broker image from `Dockerfile` and a broker
/// binary built here: the image runs that binary.
#[test]
fn build_makes_a_broker_image_that_runs_the_given_binary() {
    let rt = runtime();
    let Some(docker) = docker_or_skip(&rt) else {
        return;
    };
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| common::repo_root().join("target"));
    let Some(binary) =
        ["release", "debug"].iter().map(|p| target.join(p).join("mom-broker")).find(|p| p.is_file())
    else {
        common::skip(&format!("no mom-broker binary under {} (cargo build -p mom-broker)", target.display()));
        return;
    };
    let unique = Unique::new("build");
    let dir = TempDir::new("build");
    dir.write("mom.yaml", &unique.yaml(1));
    let tag = format!("mom-broker:e2e-{}", unique.cluster);
    let built = ok(dir.path(), &["build", "--binary", binary.to_str().expect("utf-8"), "--tag", &tag]);
    assert!(built.contains(&tag), "build names the image: {built}");
    let out = std::process::Command::new("docker")
        // No network: `--version` needs none, and the default bridge may be missing (the nemesis
        // and the simulated hosts of other tests rewire the host's networking).
        .args(["run", "--rm", "--network", "none", &tag, "/usr/local/bin/mom-broker", "--version"])
        .output()
        .expect("docker run");
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let _ =
        rt.block_on(docker.remove_image(&tag, None::<bollard::query_parameters::RemoveImageOptions>, None));
    assert!(out.status.success(), "the built image does not run mom-broker: {said}");
    assert!(said.contains(env!("CARGO_PKG_VERSION")), "mom-broker --version in the image: {said}");
}
