//! The gRPC API (issue 11): the Rust client generated from `broker/proto/mom/v1/broker.proto`
//! against a broker serving `MOM_GRPC_LISTEN`. Send/receive/ack, long polls, cross-protocol
//! messaging with the HTTP API (same queues, same receipts), the streaming Subscribe with
//! redelivery after the ack deadline, the error mapping (status code plus the API's code in the
//! details and `mom-error-code` metadata), authentication of every method, and drain.

use std::time::{Duration, Instant};

use mom_tests::grpc::{
    admin_grpc_client, body, expect_status, grpc_broker_with_admin, grpc_client, pb, start_grpc_broker,
    GrpcClient,
};
use mom_tests::{await_gauge, bodies, json, long_polls_held, user_password, wait_until, Cluster, Nginx};
use tonic::Code;

/// Time allowed for an available message to arrive on a stream.
const EVENT_WAIT: Duration = Duration::from_secs(5);

async fn create_queue(client: &mut GrpcClient, name: &str, config: pb::QueueConfig) {
    let created = client
        .create_queue(pb::CreateQueueRequest { name: name.into(), config: Some(config) })
        .await
        .unwrap_or_else(|e| panic!("CreateQueue {name}: {e:?}"))
        .into_inner();
    assert!(created.created, "{created:?}");
}

async fn send(client: &mut GrpcClient, queue: &str, message: pb::OutgoingMessage) -> String {
    let sent = client
        .send(pb::SendRequest { queue: queue.into(), message: Some(message) })
        .await
        .unwrap_or_else(|e| panic!("Send to {queue}: {e:?}"))
        .into_inner();
    assert!(sent.created, "{sent:?}");
    sent.id
}

async fn receive(client: &mut GrpcClient, req: pb::ReceiveRequest) -> Vec<pb::Message> {
    client.receive(req).await.unwrap_or_else(|e| panic!("Receive: {e:?}")).into_inner().messages
}

fn from_queue(queue: &str, max: u32, wait_s: u32) -> pb::ReceiveRequest {
    pb::ReceiveRequest { queue: queue.into(), max: Some(max), wait_s: Some(wait_s), ..Default::default() }
}

/// Acks `receipts`; returns the error code of each result ("" for done).
async fn ack(client: &mut GrpcClient, req: pb::AckRequest) -> Vec<String> {
    let results = client.ack(req).await.unwrap_or_else(|e| panic!("Ack: {e:?}")).into_inner().results;
    results.into_iter().map(|r| r.error.map(|e| e.code).unwrap_or_default()).collect()
}

fn ack_queue(queue: &str, messages: &[pb::Message]) -> pb::AckRequest {
    pb::AckRequest {
        queue: queue.into(),
        receipts: messages.iter().map(|m| m.receipt.clone()).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn send_receive_and_ack_over_grpc() {
    let (broker, _, mut c) = grpc_broker_with_admin().await;
    create_queue(&mut c, "orders", pb::QueueConfig { visibility_timeout_s: Some(30), ..Default::default() })
        .await;

    let mut first = body("one");
    first.attributes.insert("kind".into(), "test".into());
    let id = send(&mut c, "orders", first).await;
    let batch = c
        .send_batch(pb::SendBatchRequest {
            queue: "orders".into(),
            messages: vec![
                body("two"),
                pb::OutgoingMessage {
                    body: "bad".into(),
                    attributes: [("bad key".to_string(), "v".to_string())].into(),
                    ..Default::default()
                },
                body("three"),
            ],
        })
        .await
        .unwrap_or_else(|e| panic!("SendBatch: {e:?}"))
        .into_inner();
    // One result per entry, in order; the bad one alone fails.
    let kinds: Vec<String> = batch
        .results
        .iter()
        .map(|r| match &r.result {
            Some(pb::send_result::Result::Id(_)) => "id".to_string(),
            Some(pb::send_result::Result::Error(e)) => e.code.clone(),
            None => "none".to_string(),
        })
        .collect();
    assert_eq!(kinds, ["id", "invalid_request", "id"]);

    let got = receive(&mut c, from_queue("orders", 10, 0)).await;
    let got_bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(got_bodies, ["one", "two", "three"]);
    assert_eq!(got[0].id, id);
    assert_eq!(got[0].attributes.get("kind").map(String::as_str), Some("test"));
    assert_eq!(got[0].receive_count, 1);
    assert!(!got[0].sent_at.is_empty());

    assert_eq!(ack(&mut c, ack_queue("orders", &got)).await, ["", "", ""]);
    // The same receipts again: each refused on its own.
    assert_eq!(
        ack(&mut c, ack_queue("orders", &got)).await,
        ["receipt_invalid", "receipt_invalid", "receipt_invalid"]
    );
    let info = c
        .get_queue(pb::GetQueueRequest { name: "orders".into() })
        .await
        .unwrap_or_else(|e| panic!("GetQueue: {e:?}"))
        .into_inner();
    let stats = info.stats.unwrap_or_else(|| panic!("no stats in {info:?}"));
    assert_eq!((stats.available, stats.in_flight), (0, 0));

    // A long poll is answered by the next send, not at the end of its wait.
    let mut poller = c.clone();
    let before = long_polls_held(&broker.client()).await;
    let held = tokio::spawn(async move {
        let start = Instant::now();
        let got = receive(&mut poller, from_queue("orders", 1, 10)).await;
        (got, start.elapsed())
    });
    await_gauge(&broker.client(), "mom_long_polls_held", before + 1.0, || held.is_finished()).await;
    send(&mut c, "orders", body("late")).await;
    let (got, waited) = held.await.unwrap_or_else(|e| panic!("poller: {e}"));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "late");
    assert!(waited < Duration::from_secs(5), "long poll took {waited:?}");

    // Nack makes it visible again at once; ExtendVisibility works on the new delivery.
    let nacked = c
        .nack(pb::NackRequest {
            queue: "orders".into(),
            receipts: vec![got[0].receipt.clone()],
            delay_s: 0,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("Nack: {e:?}"))
        .into_inner();
    assert!(nacked.results[0].error.is_none(), "{nacked:?}");
    let again = receive(&mut c, from_queue("orders", 1, 2)).await;
    assert_eq!((again[0].body.as_str(), again[0].receive_count), ("late", 2));
    c.extend_visibility(pb::ExtendVisibilityRequest {
        queue: "orders".into(),
        receipt: again[0].receipt.clone(),
        visibility_timeout_s: 60,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("ExtendVisibility: {e:?}"));

    let listed = c
        .list_queues(pb::ListQueuesRequest {})
        .await
        .unwrap_or_else(|e| panic!("ListQueues: {e:?}"))
        .into_inner();
    let names: Vec<&str> = listed.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["orders"]);
    c.delete_queue(pb::DeleteQueueRequest { name: "orders".into() })
        .await
        .unwrap_or_else(|e| panic!("DeleteQueue: {e:?}"));
    expect_status(
        c.get_queue(pb::GetQueueRequest { name: "orders".into() }).await,
        Code::NotFound,
        "queue_not_found",
    );
}

#[tokio::test]
async fn grpc_and_http_share_queues_and_receipts() {
    let (broker, _, mut c) = grpc_broker_with_admin().await;
    let http = broker.client().queue("shared");
    http.create(json!({})).await;

    // gRPC → HTTP, acked over gRPC with the receipt HTTP handed out.
    let id = send(&mut c, "shared", body("from grpc")).await;
    let got = http.receive(10).await;
    assert_eq!(bodies(&got), ["from grpc"]);
    assert_eq!(got[0].id, id);
    let acked = ack(
        &mut c,
        pb::AckRequest {
            queue: "shared".into(),
            receipts: vec![got[0].receipt.clone()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(acked, [""]);

    // HTTP → gRPC, acked over HTTP with the receipt gRPC handed out.
    let id = http.send_msg(json!({ "body": "from http", "attributes": { "a": "b" } })).await;
    let got = receive(&mut c, from_queue("shared", 10, 2)).await;
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].id.as_str(), got[0].body.as_str()), (id.as_str(), "from http"));
    assert_eq!(got[0].attributes.get("a").map(String::as_str), Some("b"));
    let results = http.ack(&[got[0].receipt.as_str()]).await;
    mom_tests::assert_ok_result(&results[0], "HTTP ack of a gRPC receipt");
    assert_eq!(http.stats().await.available, 0);

    // A topic published over HTTP is pulled over gRPC, and the reverse.
    let topic = broker.client().topic("events");
    topic.create(json!({})).await;
    let sub = topic.subscription("s");
    sub.create(json!({})).await;
    topic.publish("over http").await;
    let pulled = receive(
        &mut c,
        pb::ReceiveRequest {
            topic: "events".into(),
            subscription: "s".into(),
            max: Some(10),
            wait_s: Some(2),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(pulled.len(), 1);
    assert_eq!(pulled[0].body, "over http");
    c.publish(pb::PublishRequest { topic: "events".into(), messages: vec![body("over grpc")] })
        .await
        .unwrap_or_else(|e| panic!("Publish: {e:?}"));
    let got = sub.receive(10).await;
    assert_eq!(bodies(&got), ["over grpc"]);
}

#[tokio::test]
async fn subscribe_streams_published_messages_and_redelivers_unacked_ones() {
    let (broker, _, mut c) = grpc_broker_with_admin().await;
    c.create_topic(pb::CreateTopicRequest { name: "feed".into(), config: None })
        .await
        .unwrap_or_else(|e| panic!("CreateTopic: {e:?}"));
    let sub = c
        .create_subscription(pb::CreateSubscriptionRequest {
            topic: "feed".into(),
            name: "live".into(),
            config: Some(pb::SubscriptionConfig { ack_deadline_s: Some(1), ..Default::default() }),
        })
        .await
        .unwrap_or_else(|e| panic!("CreateSubscription: {e:?}"))
        .into_inner();
    assert_eq!(sub.subscription.and_then(|s| s.config).map(|c| c.start), Some("latest".to_string()));

    let mut stream = c
        .subscribe(pb::SubscribeRequest {
            topic: "feed".into(),
            subscription: "live".into(),
            max_in_flight: None,
        })
        .await
        .unwrap_or_else(|e| panic!("Subscribe: {e:?}"))
        .into_inner();
    let mut next = async || {
        tokio::time::timeout(EVENT_WAIT, stream.message())
            .await
            .unwrap_or_else(|_| panic!("no message on the stream within {EVENT_WAIT:?}"))
            .unwrap_or_else(|e| panic!("stream failed: {e:?}"))
            .unwrap_or_else(|| panic!("the stream ended"))
    };
    let published = c
        .publish(pb::PublishRequest { topic: "feed".into(), messages: vec![body("a"), body("b")] })
        .await
        .unwrap_or_else(|e| panic!("Publish: {e:?}"))
        .into_inner();
    assert_eq!(published.results.len(), 2);
    broker.client().topic("feed").publish("c").await;

    let mut got = [next().await, next().await, next().await];
    got.sort_by(|a, b| a.body.cmp(&b.body));
    let got_bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(got_bodies, ["a", "b", "c"]);
    assert!(got.iter().all(|m| m.receive_count == 1));

    // Ack "a" only: "b" and "c" come again after the 1 s ack deadline, with fresh receipts.
    let acked = ack(
        &mut c,
        pb::AckRequest {
            topic: "feed".into(),
            subscription: "live".into(),
            receipts: vec![got[0].receipt.clone()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(acked, [""]);
    let mut again = vec![next().await, next().await];
    again.sort_by(|a, b| a.body.cmp(&b.body));
    let again_bodies: Vec<&str> = again.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(again_bodies, ["b", "c"]);
    assert!(again.iter().all(|m| m.receive_count == 2), "{again:?}");
    let acked = ack(
        &mut c,
        pb::AckRequest {
            topic: "feed".into(),
            subscription: "live".into(),
            receipts: again.iter().map(|m| m.receipt.clone()).collect(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(acked, ["", ""]);
    // Everything acked: nothing more comes past another deadline.
    let quiet = tokio::time::timeout(Duration::from_millis(2500), stream.message()).await;
    assert!(quiet.is_err(), "unexpected: {quiet:?}");
}

#[tokio::test]
async fn bad_input_maps_to_grpc_status_codes_with_the_api_code() {
    let (_broker, _, mut c) = grpc_broker_with_admin().await;
    create_queue(&mut c, "small", pb::QueueConfig { max_message_bytes: Some(16), ..Default::default() })
        .await;

    expect_status(c.receive(from_queue("small", 0, 0)).await, Code::InvalidArgument, "invalid_request");
    expect_status(c.receive(from_queue("small", 1, 21)).await, Code::InvalidArgument, "invalid_request");
    expect_status(
        c.receive(pb::ReceiveRequest {
            queue: "small".into(),
            topic: "t".into(),
            subscription: "s".into(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "invalid_request",
    );
    expect_status(c.receive(from_queue("no/such name", 1, 0)).await, Code::InvalidArgument, "invalid_name");
    expect_status(c.receive(from_queue("missing", 1, 0)).await, Code::NotFound, "queue_not_found");
    expect_status(
        c.send(pb::SendRequest { queue: "small".into(), message: Some(body("far more than sixteen bytes")) })
            .await,
        Code::InvalidArgument,
        "message_too_large",
    );
    expect_status(
        c.send(pb::SendRequest { queue: "small".into(), message: None }).await,
        Code::InvalidArgument,
        "invalid_request",
    );
    expect_status(
        c.send_batch(pb::SendBatchRequest { queue: "small".into(), messages: vec![] }).await,
        Code::InvalidArgument,
        "invalid_request",
    );
    // Same name, other config.
    expect_status(
        c.create_queue(pb::CreateQueueRequest {
            name: "small".into(),
            config: Some(pb::QueueConfig { max_message_bytes: Some(32), ..Default::default() }),
        })
        .await,
        Code::AlreadyExists,
        "already_exists",
    );
    // A receipt that is over: FAILED_PRECONDITION.
    send(&mut c, "small", body("x")).await;
    let got = receive(&mut c, from_queue("small", 1, 0)).await;
    assert_eq!(ack(&mut c, ack_queue("small", &got)).await, [""]);
    expect_status(
        c.extend_visibility(pb::ExtendVisibilityRequest {
            queue: "small".into(),
            receipt: got[0].receipt.clone(),
            visibility_timeout_s: 10,
            ..Default::default()
        })
        .await,
        Code::FailedPrecondition,
        "receipt_invalid",
    );
    // Subscribe fails before streaming when the subscription is missing or the bound is 0.
    c.create_topic(pb::CreateTopicRequest { name: "t".into(), config: None })
        .await
        .unwrap_or_else(|e| panic!("CreateTopic: {e:?}"));
    expect_status(
        c.subscribe(pb::SubscribeRequest {
            topic: "t".into(),
            subscription: "nope".into(),
            max_in_flight: None,
        })
        .await,
        Code::NotFound,
        "subscription_not_found",
    );
    expect_status(
        c.subscribe(pb::SubscribeRequest {
            topic: "t".into(),
            subscription: "nope".into(),
            max_in_flight: Some(0),
        })
        .await,
        Code::InvalidArgument,
        "invalid_request",
    );
    expect_status(
        c.create_subscription(pb::CreateSubscriptionRequest {
            topic: "t".into(),
            name: "s".into(),
            config: Some(pb::SubscriptionConfig { start: "yesterday".into(), ..Default::default() }),
        })
        .await,
        Code::InvalidArgument,
        "invalid_request",
    );
}

#[tokio::test]
async fn every_method_needs_a_valid_token_and_access_rules_hold() {
    let (broker, addr) = start_grpc_broker(&Cluster::new()).await;
    let mut anonymous = grpc_client(&addr, None).await;
    expect_status(
        anonymous.list_queues(pb::ListQueuesRequest {}).await,
        Code::Unauthenticated,
        "unauthenticated",
    );
    expect_status(anonymous.receive(from_queue("q", 1, 0)).await, Code::Unauthenticated, "unauthenticated");
    expect_status(
        anonymous
            .subscribe(pb::SubscribeRequest {
                topic: "t".into(),
                subscription: "s".into(),
                max_in_flight: None,
            })
            .await,
        Code::Unauthenticated,
        "unauthenticated",
    );
    let mut forged = grpc_client(&addr, Some("not-a-token")).await;
    expect_status(
        forged.list_topics(pb::ListTopicsRequest {}).await,
        Code::Unauthenticated,
        "unauthenticated",
    );

    // A plain user cannot use a restricted queue of the admin's.
    let mut admin = admin_grpc_client(&broker, &addr).await;
    create_queue(
        &mut admin,
        "private",
        pb::QueueConfig { access: pb::Access::Restricted as i32, ..Default::default() },
    )
    .await;
    broker.add_user("bob", "user").await;
    let token = broker.token_for("bob", &user_password("bob")).await;
    let mut bob = grpc_client(&addr, Some(&token)).await;
    expect_status(
        bob.send(pb::SendRequest { queue: "private".into(), message: Some(body("hi")) }).await,
        Code::PermissionDenied,
        "forbidden",
    );
    let listed = bob
        .list_queues(pb::ListQueuesRequest {})
        .await
        .unwrap_or_else(|e| panic!("ListQueues as bob: {e:?}"))
        .into_inner();
    assert!(listed.queues.is_empty(), "{listed:?}");
}

#[tokio::test]
async fn a_drain_ends_subscribe_streams_and_stops_the_grpc_server() {
    let (mut broker, _, mut c) = grpc_broker_with_admin().await;
    let topic = broker.client().topic("d");
    topic.create(json!({})).await;
    topic.subscription("s").create(json!({})).await;
    let mut stream = c
        .subscribe(pb::SubscribeRequest {
            topic: "d".into(),
            subscription: "s".into(),
            max_in_flight: Some(10),
        })
        .await
        .unwrap_or_else(|e| panic!("Subscribe: {e:?}"))
        .into_inner();
    broker.sigterm();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .unwrap_or_else(|_| panic!("the stream outlived the drain"));
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
    let status = broker.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
}

/// Bound on one run of the Python client (it takes a few seconds).
const PYTHON_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `tests/grpc/client.py` against the gRPC server at `target` with `token`, naming what it
/// makes `prefix-...`, over TLS verified against `ca` when given; fails the test unless every
/// step passed. Returns its report.
async fn python_client(target: &str, token: &str, prefix: &str, ca: Option<&std::path::Path>) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(root.join("grpc/client.py"))
        .env("MOM_GRPC_TARGET", target)
        .env("MOM_GRPC_TOKEN", token)
        .env("MOM_GRPC_PROTO_DIR", root.join("../broker/proto"))
        .env("MOM_GRPC_PREFIX", prefix)
        .env_remove("MOM_GRPC_CA")
        .kill_on_drop(true);
    if let Some(ca) = ca {
        cmd.env("MOM_GRPC_CA", ca);
    }
    let out = tokio::time::timeout(PYTHON_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("the Python client ran over {PYTHON_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot run python3 (grpcio and grpcio-tools installed by .ci/run): {e}"));
    let report = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the Python client failed: {report}");
    report
}

/// A client no one here wrote: Python `grpcio`, with stubs generated by `grpcio-tools` from the
/// same proto (`tests/grpc/client.py`), doing send/receive/ack, errors and a streaming subscribe;
/// what it sent is then received over HTTP.
#[tokio::test]
async fn a_python_grpcio_client_works_against_the_broker() {
    let (broker, addr) = start_grpc_broker(&Cluster::new()).await;
    let token = broker.token_for(mom_tests::ADMIN_USER, mom_tests::ADMIN_PASSWORD).await;
    let report = python_client(&addr, &token, "py", None).await;
    let got = broker.client().queue("py-cross").receive(10).await;
    assert_eq!(bodies(&got), ["from python"], "{report}");
}

/// gRPC over TLS through NGINX (momctl's `nginx.tls`: the template's gRPC server with `ssl`), end
/// to end: Python `grpcio` verifying NGINX's certificate against the cluster's CA sends, receives
/// and acks, gets errors and a Subscribe stream, through NGINX to two brokers; a channel without
/// the CA is refused; what it sent is received over HTTP.
#[tokio::test]
async fn grpc_over_tls_works_through_nginx() {
    let cluster = Cluster::new();
    let (a, a_grpc) = start_grpc_broker(&cluster).await;
    let (b, b_grpc) = start_grpc_broker(&cluster).await;
    let nginx = Nginx::start_grpc_tls(&[(&a, &a_grpc), (&b, &b_grpc)]).await;
    let token = a.token_for(mom_tests::ADMIN_USER, mom_tests::ADMIN_PASSWORD).await;
    let report = python_client(&nginx.grpc_addr(), &token, "tls", Some(nginx.ca())).await;
    let got = b.client().queue("tls-cross").receive(10).await;
    assert_eq!(bodies(&got), ["from python"], "{report}");
}

/// gRPC through a real NGINX configured from `templates/nginx.conf.tera` (`grpc_pass`, HTTP/2 on
/// both sides) in front of two brokers: unary calls, a long poll, and a Subscribe stream; the
/// messages are the HTTP API's too, seen through the same NGINX.
#[tokio::test]
async fn grpc_works_through_nginx() {
    let cluster = Cluster::new();
    let (a, a_grpc) = start_grpc_broker(&cluster).await;
    let (b, b_grpc) = start_grpc_broker(&cluster).await;
    let nginx = Nginx::start_grpc(&[(&a, &a_grpc), (&b, &b_grpc)]).await;
    let token = a.token_for(mom_tests::ADMIN_USER, mom_tests::ADMIN_PASSWORD).await;
    let mut c = grpc_client(&nginx.grpc_addr(), Some(&token)).await;
    let http = nginx.client_like(&a.client());

    create_queue(&mut c, "via-nginx", pb::QueueConfig::default()).await;
    let id = send(&mut c, "via-nginx", body("through nginx")).await;
    let got = http.queue("via-nginx").receive(10).await;
    assert_eq!(bodies(&got), ["through nginx"]);
    assert_eq!(got[0].id, id);

    // A long poll held by NGINX is answered by the next send.
    let mut poller = c.clone();
    let both = || async { long_polls_held(&a.client()).await + long_polls_held(&b.client()).await };
    let before = both().await;
    let held = tokio::spawn(async move { receive(&mut poller, from_queue("via-nginx", 1, 10)).await });
    wait_until("the long poll through NGINX to be held", Duration::from_secs(10), || async {
        assert!(!held.is_finished(), "the long poll through NGINX answered before a send");
        (both().await > before).then_some(())
    })
    .await;
    http.queue("via-nginx").send("late").await;
    let got = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .unwrap_or_else(|_| panic!("the long poll through NGINX was not answered"))
        .unwrap_or_else(|e| panic!("poller: {e}"));
    assert_eq!(got[0].body, "late");
    assert_eq!(ack(&mut c, ack_queue("via-nginx", &got)).await, [""]);

    // Errors keep their status, details and metadata through NGINX.
    expect_status(c.receive(from_queue("via-nginx", 0, 0)).await, Code::InvalidArgument, "invalid_request");
    let mut anonymous = grpc_client(&nginx.grpc_addr(), None).await;
    expect_status(
        anonymous.list_queues(pb::ListQueuesRequest {}).await,
        Code::Unauthenticated,
        "unauthenticated",
    );

    // A Subscribe stream through NGINX gets what is published over HTTP.
    let topic = http.topic("news");
    topic.create(json!({})).await;
    topic.subscription("s").create(json!({})).await;
    let mut stream = c
        .subscribe(pb::SubscribeRequest {
            topic: "news".into(),
            subscription: "s".into(),
            max_in_flight: None,
        })
        .await
        .unwrap_or_else(|e| panic!("Subscribe through NGINX: {e:?}"))
        .into_inner();
    topic.publish("pushed").await;
    let m = tokio::time::timeout(EVENT_WAIT, stream.message())
        .await
        .unwrap_or_else(|_| panic!("nothing on the stream through NGINX:\n{}", nginx.log_tail(20)))
        .unwrap_or_else(|e| panic!("stream failed: {e:?}"))
        .unwrap_or_else(|| panic!("the stream ended"));
    assert_eq!(m.body, "pushed");
}

/// The value of the `mom_grpc_requests_total` series for `method` and `code` in `/metrics`.
fn grpc_count(metrics: &str, method: &str, code: &str) -> u64 {
    let series = format!("mom_grpc_requests_total{{code=\"{code}\",method=\"{method}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&series)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// gRPC calls show in `/metrics` by method and status code, with a latency histogram; a path
/// that is no method of the service cannot add label values.
#[tokio::test]
async fn grpc_calls_are_counted_by_method_and_code() {
    let (broker, addr, mut c) = grpc_broker_with_admin().await;
    create_queue(&mut c, "metered", pb::QueueConfig::default()).await;
    send(&mut c, "metered", body("one")).await;
    send(&mut c, "metered", body("two")).await;
    expect_status(c.receive(from_queue("metered", 0, 0)).await, Code::InvalidArgument, "invalid_request");
    let mut anonymous = grpc_client(&addr, None).await;
    expect_status(
        anonymous.send(pb::SendRequest { queue: "metered".into(), message: Some(body("x")) }).await,
        Code::Unauthenticated,
        "unauthenticated",
    );
    // A path the service does not have, sent by hand.
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/mom.v1.Broker/NoSuchMethod");
    let mut raw = tonic::client::Grpc::new(
        tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .expect("address")
            .connect()
            .await
            .expect("connect"),
    );
    raw.ready().await.expect("ready");
    let unknown = raw
        .unary(
            tonic::Request::new(pb::SendRequest::default()),
            path,
            tonic_prost::ProstCodec::<pb::SendRequest, pb::SendResponse>::default(),
        )
        .await;
    assert!(unknown.is_err(), "{unknown:?}");

    let metrics = broker.client().get("/metrics").await.expect_status(200).text;
    assert_eq!(grpc_count(&metrics, "Send", "Ok"), 2, "{metrics}");
    assert_eq!(grpc_count(&metrics, "CreateQueue", "Ok"), 1, "{metrics}");
    assert_eq!(grpc_count(&metrics, "Receive", "InvalidArgument"), 1, "{metrics}");
    assert_eq!(grpc_count(&metrics, "Send", "Unauthenticated"), 1, "{metrics}");
    assert!(!metrics.contains("NoSuchMethod"), "{metrics}");
    assert_eq!(grpc_count(&metrics, "unknown", "Unauthenticated"), 1, "{metrics}");
    assert!(metrics.contains("mom_grpc_request_duration_seconds_count{method=\"Send\"} 3"), "{metrics}");
}

#[tokio::test]
async fn past_the_per_user_rate_grpc_calls_get_resource_exhausted() {
    let cluster = Cluster::new();
    let addr = format!("127.0.0.1:{}", mom_tests::util::free_port());
    let broker = cluster
        .broker()
        .env("MOM_GRPC_LISTEN", &addr)
        .env("MOM_RATE_LIMIT_RPS", "1")
        .env("MOM_RATE_LIMIT_BURST", "5")
        .start()
        .await;
    let mut c = admin_grpc_client(&broker, &addr).await;
    // A burst of 5, then about one a second: 20 calls at once cannot all pass.
    let mut exhausted = None;
    for _ in 0..20 {
        if let Err(status) = c.list_queues(pb::ListQueuesRequest {}).await {
            exhausted = Some(status);
            break;
        }
    }
    let status = exhausted.expect("20 calls in a burst of 5 at 1/s all passed");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(mom_tests::grpc::error_code(&status), "rate_limited", "{status:?}");
}

#[tokio::test]
async fn a_subscribe_stream_of_a_revoked_user_stops_delivering() {
    let (broker, addr, mut admin) = grpc_broker_with_admin().await;
    admin
        .create_topic(pb::CreateTopicRequest { name: "news".into(), config: None })
        .await
        .unwrap_or_else(|e| panic!("CreateTopic: {e:?}"));
    let bob = broker.add_user("bob", "user").await;
    bob.put("/v1/topics/news/subscriptions/bobs", json!({})).await.expect_status(201);
    let token = broker.token_for("bob", &user_password("bob")).await;
    let mut c = grpc_client(&addr, Some(&token)).await;
    let mut stream = c
        .subscribe(pb::SubscribeRequest {
            topic: "news".into(),
            subscription: "bobs".into(),
            max_in_flight: None,
        })
        .await
        .unwrap_or_else(|e| panic!("Subscribe: {e:?}"))
        .into_inner();
    let publish = |text: &'static str| {
        let client = broker.client();
        async move { client.topic("news").publish(text).await }
    };
    publish("while-valid").await;
    let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a delivery while the token is valid")
        .expect("the stream works")
        .expect("the stream is open");
    assert_eq!(first.body, "while-valid");

    // Deleting bob revokes his token: the open stream must not deliver what comes after; it ends
    // (UNAUTHENTICATED, or closed) rather than go quiet for ever.
    broker.client().delete("/v1/users/bob").await.expect_status(204);
    publish("after-revocation").await;
    let after = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.message().await {
                Ok(Some(m)) if m.body == "after-revocation" => return Some(m),
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return None,
            }
        }
    })
    .await
    .expect("the stream of a deleted user neither ended nor stopped within 30 s");
    assert!(after.is_none(), "a stream of a deleted user delivered {after:?}");
}
