//! Roles, ownership and grants. For every queue and topic route, the callers that must be let
//! through (admin, owner, grantee, anyone on an `authenticated` resource) and those that must get
//! 403 `forbidden` (everyone else), with a denied call leaving the resource as it was.

use std::time::{Duration, Instant};

use mom_tests::{json, wait_until, Broker, Client, Cluster, Resp, SseStream, Value, ADMIN_USER};

use mom_tests::util::{timing, PROPAGATION};

/// What a route needs, as the spec words it: seeing a resource, publishing to it, consuming from
/// it, or managing it (config, purge, delete, grants, redrive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Right {
    View,
    Publish,
    Consume,
    Manage,
}
use Right::{Consume, Manage, Publish, View};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Admin,
    Owner,
    Bob,
}

/// One caller in one situation, and the rights it must have there.
struct Case {
    what: &'static str,
    access: &'static str,
    /// The grant bob holds on the resource.
    grant: Option<Value>,
    caller: Who,
    rights: &'static [Right],
}

fn cases() -> Vec<Case> {
    const ALL: &[Right] = &[View, Publish, Consume, Manage];
    let restricted = |what, caller, grant, rights| Case { what, access: "restricted", grant, caller, rights };
    vec![
        restricted("an admin who is not the owner", Who::Admin, None, ALL),
        restricted("the owner, a plain user", Who::Owner, None, ALL),
        restricted("bob without a grant", Who::Bob, None, &[]),
        restricted("bob with a publish grant", Who::Bob, Some(json!({ "publish": true })), &[View, Publish]),
        restricted(
            "bob with a consume grant",
            Who::Bob,
            Some(json!({ "publish": false, "consume": true })),
            &[View, Consume],
        ),
        restricted(
            "bob with publish and consume grants",
            Who::Bob,
            Some(json!({ "publish": true, "consume": true })),
            &[View, Publish, Consume],
        ),
        Case {
            what: "bob on an `authenticated` resource",
            access: "authenticated",
            grant: None,
            caller: Who::Bob,
            rights: &[View, Publish, Consume],
        },
    ]
}

/// A broker with the admin, `olivia` (a plain user who owns the resources under test) and `bob`.
struct World {
    broker: Broker,
    admin: Client,
    olivia: Client,
    bob: Client,
}

impl World {
    async fn new() -> Self {
        let broker = Cluster::new().start_broker().await;
        let olivia = broker.add_user("olivia", "user").await;
        let bob = broker.add_user("bob", "user").await;
        let admin = broker.client();
        World { broker, admin, olivia, bob }
    }

    fn client(&self, who: Who) -> &Client {
        match who {
            Who::Admin => &self.admin,
            Who::Owner => &self.olivia,
            Who::Bob => &self.bob,
        }
    }

    fn name(who: Who) -> &'static str {
        match who {
            Who::Admin => ADMIN_USER,
            Who::Owner => "olivia",
            Who::Bob => "bob",
        }
    }
}

/// What a call showed: its answer and the status that means "allowed", whether the resource was
/// in a list, or that an event stream opened and delivered.
enum Seen {
    Answer(Box<Resp>, u16),
    Listed(bool),
    Streamed,
}

/// Fails unless `seen` is what `allowed` predicts: the success status, or 403 `forbidden`.
#[track_caller]
fn check(seen: Seen, allowed: bool, context: &str) {
    match seen {
        Seen::Answer(resp, ok) if allowed => {
            assert_eq!(resp.status, ok, "{context}: expected {ok}, got {resp}");
        }
        Seen::Answer(resp, _) => {
            assert_eq!(resp.status, 403, "{context}: expected 403, got {resp}");
            resp.expect_error(403, "forbidden");
        }
        Seen::Listed(listed) => assert_eq!(listed, allowed, "{context}: listed {listed}, expected {allowed}"),
        Seen::Streamed => assert!(allowed, "{context}: expected 403, the stream opened"),
    }
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} array in {list}"))
        .iter()
        .map(|e| e["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The receipt of one fresh delivery of `path` (a queue or subscription), received by `admin`.
async fn fresh_receipt(admin: &Client, path: &str) -> String {
    let resp = admin.post(&format!("{path}/receive"), json!({ "max": 1 })).await.expect_status(200);
    resp.json["messages"][0]["receipt"]
        .as_str()
        .unwrap_or_else(|| panic!("nothing to receive from {path}: {resp}"))
        .to_string()
}

// --- the route tables -----------------------------------------------------------------------

/// A queue, or a topic with olivia's subscription `s` as the place to consume from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Queue,
    Topic,
}

/// The routes of a queue, in the order they are tried (destructive ones last). `{r}` is the queue
/// under test, owned by olivia, and `{m}` the same queue as the place to consume from; `{new}` is
/// a resource of the caller's.
const QUEUE_ROUTES: &[(&str, Right)] = &[
    ("GET {r}", View),
    ("GET /v1/{kind} lists {r}", View),
    ("POST {r}/messages", Publish),
    ("POST {r}/messages/batch", Publish),
    ("PUT /v1/queues/{new} with dead_letter_queue {r}", Publish),
    ("PATCH /v1/queues/{new} to dead_letter_queue {r}", Publish),
    ("PUT /v1/topics/{new}/subscriptions/{new} with dead_letter_queue {r}", Publish),
    ("POST /v1/queues/{new}/redrive to {r}", Publish),
    ("POST {m}/receive", Consume),
    ("POST {m}/ack", Consume),
    ("POST {m}/nack", Consume),
    ("POST {m}/visibility", Consume),
    ("PATCH {r}", Manage),
    ("POST {r}/redrive", Manage),
    ("PUT {r}/grants/{caller}", Manage),
    ("DELETE {r}/grants/{caller}", Manage),
    // Again, after the caller tried to grant itself everything and to drop its grant.
    ("POST {r}/messages", Publish),
    ("POST {m}/receive", Consume),
    ("POST {r}/purge", Manage),
    ("DELETE {r}", Manage),
];

/// The routes of a topic, as for queues; `{m}` is olivia's subscription `s` to the topic.
const TOPIC_ROUTES: &[(&str, Right)] = &[
    ("GET {r}", View),
    ("GET /v1/{kind} lists {r}", View),
    ("GET {r}/subscriptions", View),
    ("POST {r}/messages", Publish),
    ("POST {r}/messages/batch", Publish),
    ("PUT {r}/subscriptions/{new}", Consume),
    ("POST {m}/receive", Consume),
    ("POST {m}/ack", Consume),
    ("POST {m}/nack", Consume),
    ("POST {m}/visibility", Consume),
    ("POST {m}/seek", Consume),
    ("GET {m}/stream", Consume),
    ("PUT {r}/grants/{caller}", Manage),
    ("DELETE {r}/grants/{caller}", Manage),
    // Again, after the caller tried to grant itself everything and to drop its grant.
    ("POST {r}/messages", Publish),
    ("POST {m}/receive", Consume),
    ("DELETE {m}", Manage),
    ("DELETE {r}", Manage),
];

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::Queue => "queues",
            Kind::Topic => "topics",
        }
    }

    fn routes(self) -> &'static [(&'static str, Right)] {
        match self {
            Kind::Queue => QUEUE_ROUTES,
            Kind::Topic => TOPIC_ROUTES,
        }
    }

    /// Where the resource at `path` is consumed from.
    fn mailbox(self, path: &str) -> String {
        match self {
            Kind::Queue => path.to_string(),
            Kind::Topic => format!("{path}/subscriptions/s"),
        }
    }
}

/// The receipts the consume routes use, one fresh delivery each.
struct Receipts {
    ack: String,
    nack: String,
    visibility: String,
}

/// The resource under test in one case: `/v1/{kind}/{name}`, its mailbox, and the receipts.
struct Target {
    kind: Kind,
    name: String,
    path: String,
    mailbox: String,
    receipts: Receipts,
    /// Tells the caller's own resources of this case from other cases'.
    n: usize,
}

/// Makes one call of the table as `who` and tells what it showed.
async fn call(w: &World, route: &str, who: Who, t: &Target) -> Seen {
    let c = w.client(who);
    let (r, m, r_) = (&t.path, &t.mailbox, &t.receipts);
    let own = format!("own-{}", t.n);
    let answer = |resp, ok| Seen::Answer(Box::new(resp), ok);
    let settled = |resp: Resp| {
        if resp.status == 200 {
            assert_eq!(resp.json["results"], json!([{ "ok": true }]), "{route}: {resp}");
        }
        answer(resp, 200)
    };
    match route {
        "GET {r}" => answer(c.get(r).await, 200),
        "GET /v1/{kind} lists {r}" => {
            let dir = t.kind.dir();
            let list = c.get(&format!("/v1/{dir}")).await.expect_status(200);
            Seen::Listed(names(&list.json, dir).contains(&t.name))
        }
        "POST {r}/messages" => answer(c.post(&format!("{r}/messages"), json!({ "body": "m" })).await, 201),
        "POST {r}/messages/batch" => {
            let body = json!({ "messages": [{ "body": "b1" }, { "body": "b2" }] });
            let resp = c.post(&format!("{r}/messages/batch"), body).await;
            if resp.status == 200 {
                for result in resp.json["results"].as_array().expect("results") {
                    assert!(result["id"].is_string(), "{route}: {resp}");
                }
            }
            answer(resp, 200)
        }
        "POST {m}/receive" => {
            let resp = c.post(&format!("{m}/receive"), json!({ "max": 10 })).await;
            if resp.status == 200 {
                assert!(resp.json["messages"].is_array(), "{resp}");
            }
            answer(resp, 200)
        }
        "POST {m}/ack" => settled(c.post(&format!("{m}/ack"), json!({ "receipts": [r_.ack] })).await),
        "POST {m}/nack" => settled(c.post(&format!("{m}/nack"), json!({ "receipts": [r_.nack] })).await),
        "POST {m}/visibility" => {
            let body = json!({ "receipt": r_.visibility, "visibility_timeout_s": 60 });
            answer(c.post(&format!("{m}/visibility"), body).await, 200)
        }
        "PUT {r}/grants/{caller}" => {
            let grant = format!("{r}/grants/{}", World::name(who));
            let body = json!({ "publish": true, "consume": true });
            answer(c.put(&grant, body).await, 204)
        }
        "DELETE {r}/grants/{caller}" => {
            let grant = format!("{r}/grants/{}", World::name(who));
            answer(c.delete(&grant).await, 204)
        }
        "DELETE {r}" => answer(c.delete(r).await, 204),

        // Queues only.
        "PUT /v1/queues/{new} with dead_letter_queue {r}" => {
            let own = format!("/v1/queues/{own}-dl");
            let spec = json!({ "max_receives": 3, "dead_letter_queue": t.name });
            let resp = c.put(&own, spec).await;
            if resp.status == 403 {
                w.admin.get(&own).await.expect_error(404, "queue_not_found");
            }
            answer(resp, 201)
        }
        "PATCH /v1/queues/{new} to dead_letter_queue {r}" => {
            let own = format!("/v1/queues/{own}-patched");
            c.put(&own, json!({})).await.expect_status(201);
            let spec = json!({ "max_receives": 3, "dead_letter_queue": t.name });
            let resp = c.patch(&own, spec).await;
            if resp.status == 403 {
                let now = w.admin.get(&own).await.expect_status(200);
                assert_eq!(now.json["dead_letter_queue"], Value::Null, "{now}");
            }
            answer(resp, 200)
        }
        "PUT /v1/topics/{new}/subscriptions/{new} with dead_letter_queue {r}" => {
            let topic = format!("/v1/topics/{own}-topic");
            c.put(&topic, json!({})).await.expect_status(201);
            let sub = format!("{topic}/subscriptions/{own}-sub");
            let spec = json!({ "max_receives": 3, "dead_letter_queue": t.name });
            let resp = c.put(&sub, spec).await;
            if resp.status == 403 {
                let subs = w.admin.get(&format!("{topic}/subscriptions")).await.expect_status(200);
                assert!(names(&subs.json, "subscriptions").is_empty(), "{subs}");
            }
            answer(resp, 201)
        }
        "POST /v1/queues/{new}/redrive to {r}" => {
            let own = format!("/v1/queues/{own}-source");
            c.put(&own, json!({})).await.expect_status(201);
            let body = json!({ "to": t.name });
            answer(c.post(&format!("{own}/redrive"), body).await, 200)
        }
        "PATCH {r}" => answer(c.patch(r, json!({ "visibility_timeout_s": 31 })).await, 200),
        "POST {r}/redrive" => answer(c.post(&format!("{r}/redrive"), json!({})).await, 200),
        "POST {r}/purge" => answer(c.post(&format!("{r}/purge"), json!({})).await, 204),

        // Topics only.
        "GET {r}/subscriptions" => {
            let resp = c.get(&format!("{r}/subscriptions")).await;
            if resp.status == 200 {
                assert!(names(&resp.json, "subscriptions").contains(&"s".into()), "{resp}");
            }
            answer(resp, 200)
        }
        "PUT {r}/subscriptions/{new}" => {
            let own = format!("{r}/subscriptions/{own}");
            let resp = c.put(&own, json!({ "start": "earliest" })).await;
            if resp.status == 201 {
                assert_eq!(resp.json["owner"], World::name(who), "{resp}");
            }
            answer(resp, 201)
        }
        "POST {m}/seek" => {
            let body = json!({ "time": "2020-01-01T00:00:00.000Z" });
            answer(c.post(&format!("{m}/seek"), body).await, 200)
        }
        "GET {m}/stream" => match SseStream::try_open(c, &format!("{m}/stream")).await {
            // Seek made every retained message available again: one arrives.
            Ok(mut stream) => {
                stream.next_message(Duration::from_secs(10)).await;
                Seen::Streamed
            }
            Err(resp) => answer(resp, 200),
        },
        "DELETE {m}" => answer(c.delete(m).await, 204),
        other => panic!("no call for route {other:?}"),
    }
}

/// What a denied caller must not change: config, owner, olivia's subscription, and (unless the
/// caller may publish or consume) the message counts.
async fn state(admin: &Client, t: &Target, counts: bool) -> Value {
    let mut info = admin.get(&t.path).await.expect_status(200).json;
    let stats = info["stats"].as_object_mut().expect("stats");
    stats.remove("oldest_age_s");
    if !counts {
        info["stats"] = Value::Null;
    }
    if t.kind == Kind::Topic {
        let subs = admin.get(&format!("{}/subscriptions", t.path)).await.expect_status(200);
        info["has_s"] = json!(names(&subs.json, "subscriptions").contains(&"s".into()));
    }
    info
}

/// For every case, a fresh resource owned by olivia, and every route of its table tried by the
/// case's caller: allowed exactly when the case has the route's right.
async fn every_route(kind: Kind) {
    let w = World::new().await;
    for (n, case) in cases().into_iter().enumerate() {
        let name = format!("r{n}");
        let path = format!("/v1/{}/{name}", kind.dir());
        let created = w.olivia.put(&path, json!({ "access": case.access })).await.expect_status(201);
        assert_eq!(created.json["owner"], "olivia", "{created}");
        if kind == Kind::Topic {
            w.olivia.put(&format!("{path}/subscriptions/s"), json!({})).await.expect_status(201);
        }
        if let Some(grant) = &case.grant {
            w.olivia.put(&format!("{path}/grants/bob"), grant.clone()).await.expect_status(204);
        }
        for body in ["r1", "r2", "r3", "available"] {
            w.admin.post(&format!("{path}/messages"), json!({ "body": body })).await.expect_status(201);
        }
        let mailbox = kind.mailbox(&path);
        let receipts = Receipts {
            ack: fresh_receipt(&w.admin, &mailbox).await,
            nack: fresh_receipt(&w.admin, &mailbox).await,
            visibility: fresh_receipt(&w.admin, &mailbox).await,
        };
        let target = Target { kind, name, path, mailbox, receipts, n };
        let counts = !(case.rights.contains(&Publish) || case.rights.contains(&Consume));
        let before = state(&w.admin, &target, counts).await;

        for (route, right) in kind.routes() {
            let allowed = case.rights.contains(right);
            let seen = call(&w, route, case.caller, &target).await;
            check(seen, allowed, &format!("{route} on a {kind:?} by {}", case.what));
        }

        if case.rights.contains(&Manage) {
            let resp = w.admin.get(&target.path).await;
            assert_eq!(resp.status, 404, "{kind:?} not deleted: {resp}");
        } else {
            let after = state(&w.admin, &target, counts).await;
            assert_eq!(after, before, "{}: the {kind:?} changed", case.what);
        }
    }
}

#[tokio::test]
async fn every_queue_route_lets_the_right_callers_through_and_no_one_else() {
    every_route(Kind::Queue).await;
}

#[tokio::test]
async fn every_topic_route_lets_the_right_callers_through_and_no_one_else() {
    every_route(Kind::Topic).await;
}

// --- ownership, subscriptions, grants across nodes, order of checks ------------------------

#[tokio::test]
async fn any_user_may_create_queues_and_topics_and_owns_what_they_create() {
    let w = World::new().await;
    for kind in ["queues", "topics"] {
        let path = format!("/v1/{kind}/bobs");
        let created = w.bob.put(&path, json!({ "access": "restricted" })).await.expect_status(201);
        assert_eq!(created.json["owner"], "bob", "{created}");
        // Another user creating it again (same config or not) does not take it over.
        let again = w.olivia.put(&path, json!({ "access": "restricted" })).await;
        assert!([200, 403].contains(&again.status), "re-creating bob's {kind} as olivia: {again}");
        w.olivia.put(&path, json!({ "access": "authenticated" })).await.expect_error(409, "already_exists");
        let shown = w.bob.get(&path).await.expect_status(200);
        assert_eq!(shown.json["owner"], "bob", "{shown}");
        assert_eq!(shown.json["access"], "restricted", "{shown}");
        w.olivia.get(&path).await.expect_error(403, "forbidden");
        w.olivia.delete(&path).await.expect_error(403, "forbidden");
        w.bob.put(&format!("{path}/grants/olivia"), json!({ "consume": true })).await.expect_status(204);
        w.olivia.get(&path).await.expect_status(200);
        w.bob.delete(&path).await.expect_status(204);
    }
    // The cluster view is for any user.
    w.bob.get("/v1/cluster").await.expect_status(200);
}

#[tokio::test]
async fn a_user_created_again_under_a_deleted_name_inherits_nothing() {
    let w = World::new().await;
    // bob owns a restricted queue and topic; olivia may publish and consume on both.
    let paths = ["/v1/queues/heirloom", "/v1/topics/heirloom"];
    for path in paths {
        w.bob.put(path, json!({ "access": "restricted" })).await.expect_status(201);
        w.bob
            .put(&format!("{path}/grants/olivia"), json!({ "publish": true, "consume": true }))
            .await
            .expect_status(204);
        w.olivia.get(path).await.expect_status(200);
    }
    for name in ["bob", "olivia"] {
        w.admin.delete(&format!("/v1/users/{name}")).await.expect_status(204);
    }
    // The old tokens are dead; new users of the same names are strangers to both.
    w.bob.get(paths[0]).await.expect_error(401, "unauthenticated");
    let bob = w.broker.add_user("bob", "user").await;
    let olivia = w.broker.add_user("olivia", "user").await;
    for path in paths {
        let shown = w.admin.get(path).await.expect_status(200);
        assert_eq!(shown.json["owner"], "deleted:bob", "{shown}");
        bob.delete(path).await.expect_error(403, "forbidden");
        bob.put(&format!("{path}/grants/bob"), json!({ "consume": true }))
            .await
            .expect_error(403, "forbidden");
        olivia.get(path).await.expect_error(403, "forbidden");
        // Admins still manage what the deleted user owned.
        w.admin.delete(path).await.expect_status(204);
    }
}

#[tokio::test]
async fn a_subscriber_may_delete_its_own_subscription_but_not_others() {
    let w = World::new().await;
    w.olivia.put("/v1/topics/news", json!({})).await.expect_status(201);
    w.olivia.put("/v1/topics/news/subscriptions/olivias", json!({})).await.expect_status(201);
    w.bob.put("/v1/topics/news/subscriptions/bobs", json!({})).await.expect_status(201);
    w.bob.delete("/v1/topics/news/subscriptions/olivias").await.expect_error(403, "forbidden");
    w.bob.delete("/v1/topics/news/subscriptions/bobs").await.expect_status(204);
    let subs = w.olivia.get("/v1/topics/news/subscriptions").await.expect_status(200);
    assert_eq!(names(&subs.json, "subscriptions"), ["olivias"], "{subs}");
    w.bob.delete("/v1/topics/news").await.expect_error(403, "forbidden");
}

#[tokio::test]
async fn grants_and_revocations_reach_every_node_within_1_5s() {
    let cluster = Cluster::new();
    let a = cluster.start_broker().await;
    let b = cluster.start_broker().await;
    a.add_user("bob", "user").await;
    let admin_on_a = a.client();
    admin_on_a.put("/v1/queues/vault", json!({ "access": "restricted" })).await.expect_status(201);
    admin_on_a.queue("vault").send("secret").await;
    let propagating = Instant::now();
    let bob_on_b = wait_until("bob to log in on B", PROPAGATION, || async {
        let resp = b.login_resp("bob", &mom_tests::user_password("bob")).await;
        (resp.status == 200).then(|| b.client_with_token(resp.json["access_token"].as_str().unwrap()))
    })
    .await;
    timing("access.propagation.bob_to_log_in_on_B", propagating.elapsed());
    let receive = || async { bob_on_b.post("/v1/queues/vault/receive", json!({ "max": 1 })).await };
    let propagating = Instant::now();
    wait_until("the queue to appear on B", PROPAGATION, || async {
        (receive().await.status == 403).then_some(())
    })
    .await;
    timing("access.propagation.the_queue_to_appear_on_B", propagating.elapsed());

    admin_on_a.put("/v1/queues/vault/grants/bob", json!({ "consume": true })).await.expect_status(204);
    let propagating = Instant::now();
    let granted = wait_until("the grant to reach B", PROPAGATION, || async {
        let resp = receive().await;
        (resp.status == 200).then_some(resp)
    })
    .await;
    timing("access.propagation.the_grant_to_reach_B", propagating.elapsed());
    assert_eq!(granted.json["messages"][0]["body"], "secret", "{granted}");

    admin_on_a.delete("/v1/queues/vault/grants/bob").await.expect_status(204);
    let propagating = Instant::now();
    wait_until("the revocation to reach B", PROPAGATION, || async {
        (receive().await.status == 403).then_some(())
    })
    .await;
    timing("access.propagation.the_revocation_to_reach_B", propagating.elapsed());
    receive().await.expect_error(403, "forbidden");
}

#[tokio::test]
async fn checks_run_in_order_401_400_404_403() {
    let w = World::new().await;
    w.olivia.put("/v1/queues/private", json!({ "access": "restricted" })).await.expect_status(201);
    w.olivia.put("/v1/topics/private", json!({ "access": "restricted" })).await.expect_status(201);
    w.olivia.put("/v1/topics/private/subscriptions/s", json!({})).await.expect_status(201);
    let malformed =
        || mom_tests::Body::Raw { content_type: Some("application/json"), bytes: b"{\"body\":".to_vec() };
    let post = reqwest::Method::POST;
    for base in ["/v1/queues/private", "/v1/topics/private/subscriptions/s"] {
        let receive = format!("{base}/receive");
        // 400 before 403: a malformed body or a bad field on a resource bob may not use.
        w.bob.request(post.clone(), &receive, malformed()).await.expect_error(400, "invalid_request");
        w.bob.post(&receive, json!({ "max": 0 })).await.expect_error(400, "invalid_request");
        // 403 for the resource as it is.
        w.bob.post(&receive, json!({})).await.expect_error(403, "forbidden");
    }
    // 400 for a bad name, 404 for a missing resource or user, before any 403.
    let grant = || json!({ "consume": true });
    let later: [(&Client, &str, Value, &str); 7] = [
        (&w.bob, "/v1/queues/bad.name/receive", json!({}), "invalid_name"),
        (&w.bob, "/v1/queues/missing/receive", json!({}), "queue_not_found"),
        (&w.bob, "/v1/topics/missing/messages", json!({ "body": "x" }), "topic_not_found"),
        (&w.bob, "/v1/topics/private/subscriptions/missing/receive", json!({}), "subscription_not_found"),
        (&w.bob, "PUT /v1/queues/missing/grants/bob", grant(), "queue_not_found"),
        (&w.olivia, "PUT /v1/queues/private/grants/nobody-here", grant(), "user_not_found"),
        (&w.bob, "PUT /v1/queues/private/grants/bob", grant(), "forbidden"),
    ];
    for (client, request, body, code) in later {
        let resp = match request.strip_prefix("PUT ") {
            Some(path) => client.put(path, body).await,
            None => client.post(request, body).await,
        };
        let status = match code {
            "invalid_name" => 400,
            "forbidden" => 403,
            _ => 404,
        };
        resp.expect_error(status, code);
    }
    w.bob.delete("/v1/queues/missing").await.expect_error(404, "queue_not_found");
    // And 401 before all of them.
    let anonymous = w.broker.anonymous_client();
    for path in ["/v1/queues/bad.name/receive", "/v1/queues/missing/receive", "/v1/queues/private/receive"] {
        anonymous.request(post.clone(), path, malformed()).await.expect_error(401, "unauthenticated");
    }
}
