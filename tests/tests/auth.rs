//! Authentication: tokens (issue, shape, expiry, forgery, acceptance across nodes), users (create,
//! list, delete, passwords, revocation on every node), the first admin, and secrets kept out of
//! logs, errors and `/metrics`.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{EncodingKey, Header};
use mom_tests::util::is_rfc3339_millis;
use mom_tests::{
    json, user_password, wait_until, Body, Broker, Client, Cluster, Resp, Value, ADMIN_PASSWORD, ADMIN_USER,
};
use reqwest::Method;

use mom_tests::util::{timing, PROPAGATION};

/// Time a broker that cannot make its first admin may take to give up: connecting to ZooKeeper and
/// loading the (empty) metadata, nothing more.
const PROMPT_EXIT: Duration = Duration::from_secs(10);

/// A route that needs only a valid token (no admin role, no resource).
const PROBE: &str = "/v1/queues";

fn now_s() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// The claims of a token, read without checking its signature.
fn claims(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .unwrap_or_else(|e| panic!("token {token:?} is not a JWT: {e}"))
        .claims
}

/// The JOSE header of a token, as JSON.
fn jose_header(token: &str) -> Value {
    let first = token.split('.').next().unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(first)
        .unwrap_or_else(|e| panic!("token header {first:?} is not base64url: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("token header is not JSON: {e}"))
}

/// `claims` signed with HS256 under `key`.
fn sign(claims: &Value, key: &[u8]) -> String {
    jsonwebtoken::encode(&Header::default(), claims, &EncodingKey::from_secret(key))
        .unwrap_or_else(|e| panic!("cannot sign {claims}: {e}"))
}

fn b64(json: &Value) -> String {
    URL_SAFE_NO_PAD.encode(json.to_string())
}

/// Fails unless `resp` is 401 `unauthenticated` in the API's error shape.
#[track_caller]
fn assert_unauthenticated(resp: Resp, what: &str) {
    assert_eq!(resp.status, 401, "{what}: expected 401, got {resp}");
    resp.expect_error(401, "unauthenticated");
}

/// Waits until every one of `nodes` refuses `token` with 401 `unauthenticated`, within
/// `PROPAGATION` of `since`, and prints how long each node took.
async fn until_revoked(token: &str, nodes: &[&Broker], since: Instant, what: &str) {
    for node in nodes {
        let client = node.client_with_token(token);
        wait_until(
            &format!("{what}: the old token to be refused by {}", node.node_id()),
            PROPAGATION.saturating_sub(since.elapsed()),
            || async { (client.get(PROBE).await.status == 401).then_some(()) },
        )
        .await;
        let resp = client.get(PROBE).await;
        assert_unauthenticated(resp, what);
        eprintln!("{what}: refused by {} after {:?}", node.node_id(), since.elapsed());
        timing("auth.propagation.revocation_refused_on_node", since.elapsed());
    }
}

/// Logs `username` in with `password` on every node (waiting, within `PROPAGATION`, until the
/// password works there) and returns the tokens, one per node.
async fn tokens_from_every_node(nodes: &[&Broker], username: &str, password: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for node in nodes {
        let what = format!("{username}'s password to work on {}", node.node_id());
        let token = wait_until(&what, PROPAGATION, || async {
            let resp = node.login_resp(username, password).await;
            if resp.status != 200 {
                return None;
            }
            resp.json["access_token"].as_str().map(str::to_string)
        })
        .await;
        tokens.push(token);
    }
    tokens
}

/// Runs `change` (a request expected to answer 204) through `through`, then expects every one of
/// `tokens` to be refused by `through` at once and by every node within `PROPAGATION` (1.5 s).
async fn expect_revoked_everywhere(
    change: impl std::future::Future<Output = Resp>,
    through: &Broker,
    nodes: &[&Broker],
    tokens: &[String],
    what: &str,
) {
    change.await.expect_status(204);
    let changed = Instant::now();
    for token in tokens {
        assert_unauthenticated(
            through.client_with_token(token).get(PROBE).await,
            &format!("{what}: an old token on the node that answered"),
        );
    }
    for token in tokens {
        until_revoked(token, nodes, changed, what).await;
    }
}

/// Fails unless `node` accepts `token` (200 on a route any user may call).
async fn assert_accepted(node: &Broker, token: &str) {
    node.client_with_token(token).get(PROBE).await.expect_status(200);
}

/// `POST /v1/users` through `admin` for `username` with `password` (the role left to default).
async fn post_user(admin: &Client, username: &str, password: &str) -> Resp {
    let body = json!({ "username": username, "password": password });
    admin.post("/v1/users", body).await
}

fn usernames(list: &Value) -> Vec<String> {
    list["users"]
        .as_array()
        .unwrap_or_else(|| panic!("no users array in {list}"))
        .iter()
        .map(|u| u["username"].as_str().unwrap_or_default().to_string())
        .collect()
}

// --- tokens ---------------------------------------------------------------------------------

#[tokio::test]
async fn login_issues_a_signed_bearer_token_with_expires_in() {
    let broker = Cluster::new().start_broker().await;
    let started = now_s();
    let resp = broker.login_resp(ADMIN_USER, ADMIN_PASSWORD).await.expect_status(200);
    let token = resp.json["access_token"].as_str().unwrap_or_else(|| panic!("no access_token in {resp}"));
    assert_eq!(resp.json["token_type"], "Bearer", "{resp}");
    let expires_in = resp.json["expires_in"]
        .as_u64()
        .unwrap_or_else(|| panic!("expires_in is not a number of seconds in {resp}"));
    assert!(expires_in > 0, "{resp}");

    assert_eq!(token.split('.').count(), 3, "not a compact JWS: {token}");
    let alg = jose_header(token)["alg"].clone();
    assert!(alg == "HS256" || alg == "EdDSA", "unexpected alg {alg}");
    let exp = claims(token)["exp"].as_u64().unwrap_or_else(|| panic!("token without exp: {}", claims(token)));
    assert!(
        exp >= started + expires_in && exp <= now_s() + expires_in + 1,
        "exp {exp} does not match expires_in {expires_in} issued at ~{started}"
    );

    assert_accepted(&broker, token).await;
}

#[tokio::test]
async fn wrong_credentials_are_unauthenticated_without_telling_which_part_was_wrong() {
    let broker = Cluster::new().start_broker().await;
    broker.add_user("bob", "user").await;
    let wrong_password =
        broker.login_resp("bob", "not-bobs-password").await.expect_error(401, "unauthenticated");
    let unknown_user =
        broker.login_resp("nobody-here", "not-bobs-password").await.expect_error(401, "unauthenticated");
    assert_eq!(
        wrong_password.json, unknown_user.json,
        "a wrong password and an unknown user must look the same"
    );
    assert!(wrong_password.json.get("access_token").is_none());

    // A malformed login is a client mistake, not an authentication failure.
    let anonymous = broker.anonymous_client();
    anonymous.post("/v1/auth/token", json!({ "username": "bob" })).await.expect_error(400, "invalid_request");
    anonymous
        .request(
            Method::POST,
            "/v1/auth/token",
            Body::Raw { content_type: Some("application/json"), bytes: b"{\"username\":".to_vec() },
        )
        .await
        .expect_error(400, "invalid_request");
}

/// Every route of the API, as the spec lists them, with a method.
const SPEC_ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/queues"),
    ("PUT", "/v1/queues/{name}"),
    ("GET", "/v1/queues/{name}"),
    ("PATCH", "/v1/queues/{name}"),
    ("DELETE", "/v1/queues/{name}"),
    ("POST", "/v1/queues/{name}/purge"),
    ("POST", "/v1/queues/{name}/messages"),
    ("POST", "/v1/queues/{name}/messages/batch"),
    ("POST", "/v1/queues/{name}/receive"),
    ("POST", "/v1/queues/{name}/ack"),
    ("POST", "/v1/queues/{name}/nack"),
    ("POST", "/v1/queues/{name}/visibility"),
    ("POST", "/v1/queues/{name}/redrive"),
    ("PUT", "/v1/queues/{name}/grants/{username}"),
    ("DELETE", "/v1/queues/{name}/grants/{username}"),
    ("GET", "/v1/topics"),
    ("PUT", "/v1/topics/{name}"),
    ("GET", "/v1/topics/{name}"),
    ("DELETE", "/v1/topics/{name}"),
    ("POST", "/v1/topics/{name}/messages"),
    ("POST", "/v1/topics/{name}/messages/batch"),
    ("PUT", "/v1/topics/{name}/grants/{username}"),
    ("DELETE", "/v1/topics/{name}/grants/{username}"),
    ("GET", "/v1/topics/{name}/subscriptions"),
    ("PUT", "/v1/topics/{name}/subscriptions/{sub}"),
    ("DELETE", "/v1/topics/{name}/subscriptions/{sub}"),
    ("POST", "/v1/topics/{name}/subscriptions/{sub}/receive"),
    ("POST", "/v1/topics/{name}/subscriptions/{sub}/ack"),
    ("POST", "/v1/topics/{name}/subscriptions/{sub}/nack"),
    ("POST", "/v1/topics/{name}/subscriptions/{sub}/visibility"),
    ("POST", "/v1/topics/{name}/subscriptions/{sub}/seek"),
    ("GET", "/v1/topics/{name}/subscriptions/{sub}/stream"),
    ("POST", "/v1/users"),
    ("GET", "/v1/users"),
    ("DELETE", "/v1/users/{username}"),
    ("PUT", "/v1/users/{username}/password"),
    ("GET", "/v1/cluster"),
];

/// Routes that need no token.
const PUBLIC: &[&str] = &["/v1/auth/token", "/v1/openapi.json"];

/// `template` with every `{param}` replaced by `value`.
fn fill(template: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close =
            rest[open..].find('}').unwrap_or_else(|| panic!("unbalanced braces in {template}")) + open;
        out.push_str(&rest[..open]);
        out.push_str(value);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn every_v1_route_but_login_and_openapi_needs_a_token_before_anything_else() {
    let broker = Cluster::new().start_broker().await;
    let anonymous = broker.anonymous_client();
    let doc = anonymous.get("/v1/openapi.json").await.expect_status(200);
    let paths = doc.json["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("no paths in the OpenAPI document: {}", doc.text));

    // The routes the document lists (new routes included), plus every route of the spec.
    let mut routes: Vec<(String, String)> = Vec::new();
    for (path, item) in paths {
        for method in ["get", "put", "post", "patch", "delete"] {
            if item.get(method).is_some() {
                routes.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    for (method, path) in SPEC_ROUTES {
        let listed = routes.iter().any(|(m, p)| m == method && p == path);
        assert!(listed, "{method} {path} is missing from the OpenAPI document");
    }
    routes.retain(|(_, path)| !PUBLIC.contains(&path.as_str()));
    assert!(routes.len() >= SPEC_ROUTES.len());

    // 401 comes first: before 400 (bad name, malformed body), 404 (missing) and 403.
    broker.client().queue("real").create(json!({})).await;
    broker.client().put("/v1/topics/real-topic", json!({})).await.expect_status(201);
    let tokens: [(&str, Option<&str>); 4] = [
        ("no Authorization header", None),
        ("an empty bearer token", Some("Bearer ")),
        ("a malformed bearer token", Some("Bearer not.a.token")),
        ("another scheme", Some("Basic YWRtaW46cGFzc3dvcmQ=")),
    ];
    for (method, template) in &routes {
        for name in ["missing-name", "bad.name!", "real", "real-topic"] {
            let path = fill(template, name);
            for (what, header) in &tokens {
                let client = match header {
                    Some(h) => anonymous.clone().with_header("authorization", h),
                    None => anonymous.clone(),
                };
                let method = Method::from_bytes(method.as_bytes()).expect("method");
                let body = Body::Raw { content_type: Some("application/json"), bytes: b"{not json".to_vec() };
                let resp = client.request(method, &path, body).await;
                assert_unauthenticated(resp, &format!("{template} as {path} with {what}"));
            }
        }
    }
}

#[tokio::test]
async fn missing_malformed_tampered_and_forged_tokens_are_unauthenticated() {
    let broker = Cluster::new().start_broker().await;
    broker.add_user("bob", "user").await;
    let token = broker.token_for("bob", &user_password("bob")).await;
    let anonymous = broker.anonymous_client();
    let as_header = |value: String| anonymous.clone().with_header("authorization", &value);

    // The genuine token works: what follows fails for the reason it names.
    assert_accepted(&broker, &token).await;

    let genuine = claims(&token);
    let parts: Vec<&str> = token.split('.').collect();
    let mut last = parts[2].to_string();
    let flipped = if last.ends_with('A') { 'B' } else { 'A' };
    last.pop();
    last.push(flipped);
    let bad_signature = format!("{}.{}.{last}", parts[0], parts[1]);
    let mut as_admin = genuine.clone();
    as_admin["sub"] = json!(ADMIN_USER);
    as_admin["role"] = json!("admin");
    let tampered = format!("{}.{}.{}", parts[0], b64(&as_admin), parts[2]);
    let alg_none = format!("{}.{}.", b64(&json!({ "alg": "none", "typ": "JWT" })), b64(&as_admin));
    let forged = sign(&genuine, b"not-the-key-of-this-cluster");
    let forged_admin = sign(&as_admin, b"not-the-key-of-this-cluster");

    let cases: Vec<(&str, Client)> = vec![
        ("no Authorization header", anonymous.clone()),
        ("Bearer without a token", as_header("Bearer".into())),
        ("Bearer and a blank", as_header("Bearer  ".into())),
        ("a token that is not a JWT", as_header("Bearer abc".into())),
        ("three empty JWT parts", as_header("Bearer ..".into())),
        ("the token without the Bearer scheme", as_header(token.clone())),
        (
            "Basic credentials",
            as_header(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN_USER}:{ADMIN_PASSWORD}"))
            )),
        ),
        ("a changed signature", broker.client_with_token(&bad_signature)),
        ("a changed payload", broker.client_with_token(&tampered)),
        ("alg none", broker.client_with_token(&alg_none)),
        ("signed with another key", broker.client_with_token(&forged)),
        ("an admin token signed with another key", broker.client_with_token(&forged_admin)),
    ];
    for (what, client) in cases {
        assert_unauthenticated(client.get(PROBE).await, what);
        assert_unauthenticated(client.get("/v1/users").await, what);
    }
}

/// The key of [`broker_with_known_key`]: the test mints tokens with it as the broker does.
const SIGNING_KEY: &[u8] = b"a-test-signing-key-of-this-cluster";

/// A broker of a fresh cluster signing tokens with `MOM_JWT_SECRET` = [`SIGNING_KEY`].
async fn broker_with_known_key() -> Broker {
    let key = std::str::from_utf8(SIGNING_KEY).expect("utf-8 key");
    Cluster::new().broker().env("MOM_JWT_SECRET", key).start().await
}

#[tokio::test]
async fn expired_tokens_are_unauthenticated() {
    let broker = broker_with_known_key().await;
    let token = broker.token_for(ADMIN_USER, ADMIN_PASSWORD).await;
    let mut c = claims(&token);

    c["iat"] = json!(now_s() - 120);
    c["exp"] = json!(now_s() + 600);
    let fresh = sign(&c, SIGNING_KEY);
    assert_accepted(&broker, &fresh).await;

    for ago in [5, 3600] {
        c["exp"] = json!(now_s() - ago);
        let expired = sign(&c, SIGNING_KEY);
        let client = broker.client_with_token(&expired);
        assert_unauthenticated(client.get(PROBE).await, &format!("expired {ago} s ago"));
        assert_unauthenticated(client.get("/v1/users").await, &format!("expired {ago} s ago"));
    }
}

#[tokio::test]
async fn a_token_gets_the_role_of_its_users_record_not_the_role_it_claims() {
    let broker = broker_with_known_key().await;
    broker.add_user("bob", "user").await;
    let mut c = claims(&broker.token_for("bob", &user_password("bob")).await);
    for field in ["role", "admin", "roles", "scope"] {
        c[field] = json!("admin");
    }
    let client = broker.client_with_token(&sign(&c, SIGNING_KEY));
    client.get(PROBE).await.expect_status(200);
    client.get("/v1/users").await.expect_error(403, "forbidden");
}

#[tokio::test]
async fn a_token_stops_working_once_mom_token_ttl_s_has_passed() {
    let broker = Cluster::new().broker().env("MOM_TOKEN_TTL_S", "1").start().await;
    let issued = Instant::now();
    let resp = broker.login_resp(ADMIN_USER, ADMIN_PASSWORD).await.expect_status(200);
    assert_eq!(resp.json["expires_in"], 1, "{resp}");
    let token = resp.json["access_token"].as_str().expect("access_token");
    let client = broker.client_with_token(token);
    client.get(PROBE).await.expect_status(200);

    wait_until("the 1 s token to expire", Duration::from_secs(5), || async {
        (client.get(PROBE).await.status == 401).then_some(())
    })
    .await;
    let lived = issued.elapsed();
    assert!(lived >= Duration::from_millis(900), "a token with expires_in 1 was refused after {lived:?}");
    assert_unauthenticated(client.get(PROBE).await, "expired token");
}

#[tokio::test]
async fn every_node_accepts_tokens_issued_by_any_node_of_the_cluster() {
    let cluster = Cluster::new();
    let a = cluster.start_broker().await;
    let b = cluster.start_broker().await;
    a.add_user("bob", "user").await;
    let tokens = tokens_from_every_node(&[&a, &b], "bob", &user_password("bob")).await;
    let (from_a, from_b) = (&tokens[0], &tokens[1]);
    for token in [from_a, from_b] {
        for node in [&a, &b] {
            assert_accepted(node, token).await;
        }
    }

    // A node that joins later shares the key too: it is kept in the cluster, not made per node.
    let c = cluster.start_broker().await;
    for token in [from_a, from_b] {
        assert_accepted(&c, token).await;
    }
    let from_c = c.token_for("bob", &user_password("bob")).await;
    assert_accepted(&a, &from_c).await;

    // A token of another cluster (another key) is refused.
    let other = Cluster::new().start_broker().await;
    let foreign = other.token_for(ADMIN_USER, ADMIN_PASSWORD).await;
    assert_unauthenticated(a.client_with_token(&foreign).get(PROBE).await, "a token of another cluster");
}

// --- users ----------------------------------------------------------------------------------

#[tokio::test]
async fn admins_create_list_and_delete_users() {
    let broker = Cluster::new().start_broker().await;
    let admin = broker.client();

    let created = admin
        .post("/v1/users", json!({ "username": "bob", "password": "bob-password-1", "role": "user" }))
        .await
        .expect_status(201);
    assert_eq!(created.json["username"], "bob", "{created}");
    assert_eq!(created.json["role"], "user", "{created}");
    let created_at = created.json["created_at"].as_str().unwrap_or_default();
    assert!(is_rfc3339_millis(created_at), "{created}");
    assert!(!created.text.contains("bob-password-1"), "{created}");

    // The role defaults to user; an admin made by an admin is an admin.
    let carol = post_user(&admin, "carol", "carol-password-1").await.expect_status(201);
    assert_eq!(carol.json["role"], "user", "{carol}");
    admin
        .post("/v1/users", json!({ "username": "ann.admin", "password": "ann-password-12", "role": "admin" }))
        .await
        .expect_status(201);
    let ann = broker.client_as("ann.admin", "ann-password-12").await;
    ann.get("/v1/users").await.expect_status(200);

    // A taken name is a conflict, whatever the password or role.
    for body in [
        json!({ "username": "bob", "password": "bob-password-1", "role": "user" }),
        json!({ "username": "bob", "password": "another-password", "role": "admin" }),
        json!({ "username": ADMIN_USER, "password": "another-password" }),
    ] {
        admin.post("/v1/users", body).await.expect_error(409, "already_exists");
    }
    broker.client_as("bob", "bob-password-1").await;

    let list = admin.get("/v1/users").await.expect_status(200);
    let users = list.json["users"].as_array().expect("users array");
    let mut names = usernames(&list.json);
    names.sort();
    assert_eq!(names, ["admin", "ann.admin", "bob", "carol"], "{list}");
    for user in users {
        let fields: Vec<&String> = user.as_object().expect("user object").keys().collect();
        let mut fields: Vec<&str> = fields.iter().map(|s| s.as_str()).collect();
        fields.sort();
        assert_eq!(fields, ["created_at", "role", "username"], "{user}");
        assert!(is_rfc3339_millis(user["created_at"].as_str().unwrap_or_default()));
        let expected_role = if ["admin", "ann.admin"].contains(&user["username"].as_str().unwrap()) {
            "admin"
        } else {
            "user"
        };
        assert_eq!(user["role"], expected_role, "{user}");
    }
    let bob = users.iter().find(|u| u["username"] == "bob").expect("bob");
    assert_eq!(bob["created_at"], created_at);

    admin.delete("/v1/users/bob").await.expect_status(204);
    assert!(!usernames(&admin.get("/v1/users").await.json).contains(&"bob".to_string()));
    admin.delete("/v1/users/bob").await.expect_error(404, "user_not_found");
    admin
        .put("/v1/users/bob/password", json!({ "password": "a-new-password" }))
        .await
        .expect_error(404, "user_not_found");
    broker.login_resp("bob", "bob-password-1").await.expect_error(401, "unauthenticated");
}

#[tokio::test]
async fn usernames_roles_and_bodies_are_validated() {
    let broker = Cluster::new().start_broker().await;
    let admin = broker.client();
    let long = "u".repeat(65);
    for name in ["ab", "bad name", "bad/name", "bäd-name", long.as_str()] {
        post_user(&admin, name, "a-good-password").await.expect_error(400, "invalid_name");
    }
    let longest = "u".repeat(64);
    for name in ["abc", "A.b_c-9", longest.as_str()] {
        post_user(&admin, name, "a-good-password").await.expect_status(201);
    }
    for body in [
        json!({ "username": "dave", "password": "a-good-password", "role": "root" }),
        json!({ "username": "dave" }),
        json!({ "password": "a-good-password" }),
        json!({ "username": "dave", "password": "a-good-password", "extra": 1 }),
    ] {
        admin.post("/v1/users", body).await.expect_error(400, "invalid_request");
    }
    admin.put("/v1/users/abc/password", json!({})).await.expect_error(400, "invalid_request");
}

#[tokio::test]
async fn passwords_are_12_to_256_characters() {
    let broker = Cluster::new().start_broker().await;
    let admin = broker.client();
    let (p11, p12, p256, p257) = ("p".repeat(11), "p".repeat(12), "p".repeat(256), "p".repeat(257));
    // Characters, not bytes: twelve two-byte characters are enough.
    let p12_wide = "é".repeat(12);

    for (name, password) in [("short", &p11), ("long", &p257)] {
        post_user(&admin, name, password).await.expect_error(400, "invalid_request");
        broker.login_resp(name, password).await.expect_error(401, "unauthenticated");
    }
    for (name, password) in [("twelve", &p12), ("most", &p256), ("wide", &p12_wide)] {
        post_user(&admin, name, password).await.expect_status(201);
        broker.client_as(name, password).await;
    }

    for password in [&p11, &p257, &String::new()] {
        admin
            .put("/v1/users/twelve/password", json!({ "password": password }))
            .await
            .expect_error(400, "invalid_request");
    }
    broker.client_as("twelve", &p12).await;
    admin.put("/v1/users/twelve/password", json!({ "password": p256 })).await.expect_status(204);
    broker.client_as("twelve", &p256).await;
}

#[tokio::test]
async fn users_may_change_their_own_password_but_only_admins_manage_other_users() {
    let broker = Cluster::new().start_broker().await;
    let admin = broker.client();
    let bob = broker.add_user("bob", "user").await;
    broker.add_user("carol", "user").await;
    let carol_password = user_password("carol");

    // Admin-only routes: 400 (bad request) and 404 (no such user) still come before 403.
    bob.get("/v1/users").await.expect_error(403, "forbidden");
    bob.post("/v1/users", json!({ "username": "mallory", "password": "mallory-password", "role": "admin" }))
        .await
        .expect_error(403, "forbidden");
    bob.post("/v1/users", json!({ "username": "mallory", "password": "short" }))
        .await
        .expect_error(400, "invalid_request");
    bob.delete("/v1/users/carol").await.expect_error(403, "forbidden");
    bob.delete("/v1/users/nobody-here").await.expect_error(404, "user_not_found");
    for target in ["carol", ADMIN_USER] {
        bob.put(&format!("/v1/users/{target}/password"), json!({ "password": "taken-over-password" }))
            .await
            .expect_error(403, "forbidden");
    }
    bob.put("/v1/users/nobody-here/password", json!({ "password": "taken-over-password" }))
        .await
        .expect_error(404, "user_not_found");
    bob.put("/v1/users/carol/password", json!({ "password": "short" }))
        .await
        .expect_error(400, "invalid_request");
    // Nothing of that took effect.
    broker.client_as("carol", &carol_password).await;
    broker.client_as(ADMIN_USER, ADMIN_PASSWORD).await;
    assert!(!usernames(&admin.get("/v1/users").await.json).contains(&"mallory".to_string()));

    // Self-service: bob changes his own password; the token he used stops working.
    bob.put("/v1/users/bob/password", json!({ "password": "bobs-new-password" })).await.expect_status(204);
    assert_unauthenticated(bob.get(PROBE).await, "bob's token after his own change");
    broker.login_resp("bob", &user_password("bob")).await.expect_error(401, "unauthenticated");
    let bob = broker.client_as("bob", "bobs-new-password").await;
    bob.get(PROBE).await.expect_status(200);

    // An admin may set anyone's password.
    admin.put("/v1/users/carol/password", json!({ "password": "set-by-the-admin" })).await.expect_status(204);
    broker.login_resp("carol", &carol_password).await.expect_error(401, "unauthenticated");
    broker.client_as("carol", "set-by-the-admin").await;
}

#[tokio::test]
async fn a_password_change_or_deletion_revokes_old_tokens_on_every_node_within_1_5s() {
    let cluster = Cluster::new();
    let a = cluster.start_broker().await;
    let b = cluster.start_broker().await;
    let nodes = [&a, &b];
    for name in ["bob", "carol"] {
        a.add_user(name, "user").await;
    }
    let carol_tokens = tokens_from_every_node(&nodes, "carol", &user_password("carol")).await;

    let tokens = tokens_from_every_node(&nodes, "bob", &user_password("bob")).await;
    let admin_on_a = a.client();
    let change = admin_on_a.put("/v1/users/bob/password", json!({ "password": "bobs-second-password" }));
    expect_revoked_everywhere(change, &a, &nodes, &tokens, "password set by the admin").await;

    let tokens = tokens_from_every_node(&nodes, "bob", "bobs-second-password").await;
    let bob_on_b = b.client_with_token(&tokens[1]);
    let change = bob_on_b.put("/v1/users/bob/password", json!({ "password": "bobs-third-password" }));
    expect_revoked_everywhere(change, &b, &nodes, &tokens, "bob's own password change").await;

    let tokens = tokens_from_every_node(&nodes, "bob", "bobs-third-password").await;
    let admin_on_b = b.client();
    let change = admin_on_b.delete("/v1/users/bob");
    expect_revoked_everywhere(change, &b, &nodes, &tokens, "deletion").await;

    // Another user's tokens were never touched.
    for token in &carol_tokens {
        for node in nodes {
            assert_accepted(node, token).await;
        }
    }
}

#[tokio::test]
async fn tokens_of_a_deleted_user_stay_revoked_when_the_name_is_taken_again() {
    let broker = Cluster::new().start_broker().await;
    let admin = broker.client();
    broker.add_user("bob", "user").await;
    let before_change = broker.token_for("bob", &user_password("bob")).await;
    admin
        .put("/v1/users/bob/password", json!({ "password": "bobs-second-password" }))
        .await
        .expect_status(204);
    let after_change = broker.token_for("bob", "bobs-second-password").await;
    admin.delete("/v1/users/bob").await.expect_status(204);
    for token in [&before_change, &after_change] {
        assert_unauthenticated(
            broker.client_with_token(token).get(PROBE).await,
            "a token of the deleted bob",
        );
    }

    // Someone else gets the name: the old bob's tokens must not become theirs.
    post_user(&admin, "bob", "the-new-bobs-password").await.expect_status(201);
    broker.client_as("bob", "the-new-bobs-password").await.get(PROBE).await.expect_status(200);
    for (what, token) in [
        ("issued before the password change", &before_change),
        ("issued after the password change", &after_change),
    ] {
        assert_unauthenticated(
            broker.client_with_token(token).get(PROBE).await,
            &format!("the deleted bob's token {what}, once a new bob exists"),
        );
    }
}

/// Each node caches the tokens it verified (skipping only the signature check and decoding on
/// their next use): a token used several times, so cached, is still refused by that same node at
/// once after a password change (by an admin or by the user, through that token), once it
/// expires, and after its user's deletion; its claims signed with another key are refused too.
/// (A user's role cannot change through the API; a deleted and re-created user is a new
/// generation, covered above.)
#[tokio::test]
async fn a_token_the_node_has_seen_before_is_refused_at_once_when_revoked_or_expired() {
    let broker = broker_with_known_key().await;
    let admin = broker.client();
    broker.add_user("bob", "user").await;
    let refused = |token: String, what: &'static str| {
        let client = broker.client_with_token(&token);
        async move { assert_unauthenticated(client.get(PROBE).await, what) }
    };

    let token = broker.token_for("bob", &user_password("bob")).await;
    for _ in 0..3 {
        assert_accepted(&broker, &token).await;
    }
    admin
        .put("/v1/users/bob/password", json!({ "password": "bobs-second-password" }))
        .await
        .expect_status(204);
    refused(token, "a cached token after the admin set a new password").await;

    let token = broker.token_for("bob", "bobs-second-password").await;
    let bob = broker.client_with_token(&token);
    bob.get(PROBE).await.expect_status(200);
    bob.put("/v1/users/bob/password", json!({ "password": "bobs-third-password" })).await.expect_status(204);
    refused(token, "a cached token after its user changed password with it").await;

    let mut c = claims(&broker.token_for("bob", "bobs-third-password").await);
    let exp = now_s() + 2;
    c["exp"] = json!(exp);
    let short_lived = sign(&c, SIGNING_KEY);
    assert_accepted(&broker, &short_lived).await;
    refused(sign(&c, b"another-key-than-the-clusters"), "a cached token's claims under another key").await;
    while now_s() <= exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    refused(short_lived, "a cached token past its exp").await;

    let token = broker.token_for("bob", "bobs-third-password").await;
    for _ in 0..3 {
        assert_accepted(&broker, &token).await;
    }
    admin.delete("/v1/users/bob").await.expect_status(204);
    refused(token, "a cached token of a deleted user").await;
}

/// Reads an event stream's raw bytes until `text` shows up, the stream ends (`false`), or `within`
/// passes (`false`).
async fn stream_shows(stream: &mut reqwest::Response, text: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = String::new();
    loop {
        match tokio::time::timeout_at(deadline, stream.chunk()).await {
            Err(_) | Ok(Ok(None)) | Ok(Err(_)) => return false,
            Ok(Ok(Some(chunk))) => {
                seen.push_str(&String::from_utf8_lossy(&chunk));
                if seen.contains(text) {
                    return true;
                }
            }
        }
    }
}

#[tokio::test]
async fn a_revoked_token_no_longer_feeds_an_open_event_stream() {
    let cluster = Cluster::new();
    let a = cluster.start_broker().await;
    let b = cluster.start_broker().await;
    let admin = a.client();
    admin.put("/v1/topics/news", json!({})).await.expect_status(201);
    a.add_user("bob", "user")
        .await
        .put("/v1/topics/news/subscriptions/bobs", json!({}))
        .await
        .expect_status(201);
    let token = tokens_from_every_node(&[&b], "bob", &user_password("bob")).await[0].clone();

    // Bob's stream on B delivers while his token is good.
    let mut stream = reqwest::Client::new()
        .get(format!("{}/v1/topics/news/subscriptions/bobs/stream", b.url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("open the stream");
    assert_eq!(stream.status(), 200);
    let publish = |body: &'static str| {
        let admin = admin.clone();
        async move {
            admin.post("/v1/topics/news/messages", json!({ "body": body })).await.expect_status(201);
        }
    };
    publish("while-valid").await;
    assert!(
        stream_shows(&mut stream, "while-valid", Duration::from_secs(5)).await,
        "the stream did not deliver while the token was valid"
    );

    // The password changes through A: the stream opened with the old token must stop delivering
    // (ending is best), like every other use of that token.
    admin
        .put("/v1/users/bob/password", json!({ "password": "bobs-second-password" }))
        .await
        .expect_status(204);
    until_revoked(&token, &[&b], Instant::now(), "password change").await;
    publish("after-revocation").await;
    assert!(
        !stream_shows(&mut stream, "after-revocation", Duration::from_secs(3)).await,
        "a stream opened with a revoked token still delivers messages"
    );
}

// --- the first admin ------------------------------------------------------------------------

/// Starts a broker of a fresh, empty cluster with `builder` and expects it to exit non-zero
/// within [`PROMPT_EXIT`], saying in its log that `MOM_ADMIN_PASSWORD` must be set.
async fn expect_refusal(builder: mom_tests::BrokerBuilder, what: &str) {
    let started = Instant::now();
    let mut broker = builder.spawn();
    let status = broker.wait_exit(PROMPT_EXIT).await;
    eprintln!("{what}: exited ({status}) after {:?}", started.elapsed());
    assert!(!status.success(), "{what}: exited with {status}");
    let log = std::fs::read_to_string(broker.log_path()).unwrap_or_default();
    assert!(log.contains("MOM_ADMIN_PASSWORD"), "{what}: the log does not name MOM_ADMIN_PASSWORD:\n{log}");
}

#[tokio::test]
async fn without_an_admin_and_without_mom_admin_password_the_broker_exits_naming_the_variable() {
    expect_refusal(Cluster::new().broker().no_admin_password(), "MOM_ADMIN_PASSWORD unset").await;
    expect_refusal(Cluster::new().broker().env("MOM_ADMIN_PASSWORD", ""), "MOM_ADMIN_PASSWORD empty").await;
    expect_refusal(
        Cluster::new().broker().env("MOM_ADMIN_PASSWORD", "too-short"),
        "MOM_ADMIN_PASSWORD shorter than 12 characters",
    )
    .await;
}

#[tokio::test]
async fn once_an_admin_exists_nodes_start_without_mom_admin_password() {
    let cluster = Cluster::new();
    let first = cluster.start_broker().await;
    let second = cluster.broker().no_admin_password().start().await;
    second.client().get("/v1/users").await.expect_status(200);
    second.client_as(ADMIN_USER, ADMIN_PASSWORD).await;
    drop(first);
    // Even with the first node gone, and after a restart of the second.
    drop(second);
    let third = cluster.broker().no_admin_password().start().await;
    third.client().get("/v1/users").await.expect_status(200);
}

#[tokio::test]
async fn the_first_admin_is_named_by_mom_admin_user() {
    let mut broker = Cluster::new().broker().env("MOM_ADMIN_USER", "chief").spawn();
    broker.wait_probe("/readyz", 200, mom_tests::broker::READY_TIMEOUT).await;
    let chief = broker.client_as("chief", ADMIN_PASSWORD).await;
    let list = chief.get("/v1/users").await.expect_status(200);
    assert_eq!(
        list.json["users"],
        json!([{ "username": "chief", "role": "admin", "created_at": list.json["users"][0]["created_at"] }]),
        "{list}"
    );
    broker.login_resp("admin", ADMIN_PASSWORD).await.expect_error(401, "unauthenticated");
}

// --- secrets --------------------------------------------------------------------------------

#[tokio::test]
async fn passwords_tokens_and_keys_never_appear_in_logs_errors_or_metrics() {
    let jwt_secret = "jwt-secret-that-must-stay-hidden";
    let bob_first = "bobs-first-secret-pw";
    let bob_second = "bobs-second-secret-pw";
    let wrong = "a-wrong-secret-guess";
    let too_short = "shortsecret";
    let mut broker =
        Cluster::new().broker().env("MOM_JWT_SECRET", jwt_secret).env("MOM_LOG", "trace").start().await;
    let admin_token = broker.token_for(ADMIN_USER, ADMIN_PASSWORD).await;
    let admin = broker.client_with_token(&admin_token);
    let mut answers: Vec<Resp> = Vec::new();

    for (username, password, status) in
        [("bob", bob_first, 201), ("bob2", too_short, 400), ("bob", bob_first, 409)]
    {
        let body = json!({ "username": username, "password": password });
        answers.push(admin.post("/v1/users", body).await.expect_status(status));
    }
    for username in ["bob", "nobody-here"] {
        let resp = broker.login_resp(username, wrong).await;
        answers.push(resp.expect_error(401, "unauthenticated"));
    }
    let first_token = broker.token_for("bob", bob_first).await;
    let bob = broker.client_with_token(&first_token);
    let change = bob.put("/v1/users/bob/password", json!({ "password": bob_second }));
    answers.push(change.await.expect_status(204));
    answers.push(bob.get(PROBE).await.expect_error(401, "unauthenticated"));
    let second_token = broker.token_for("bob", bob_second).await;
    let bob = broker.client_with_token(&second_token);
    for (user, password, status) in [("admin", wrong, 403), ("bob", too_short, 400)] {
        let path = format!("/v1/users/{user}/password");
        let resp = bob.put(&path, json!({ "password": password })).await;
        answers.push(resp.expect_status(status));
    }
    let forged = sign(&claims(&second_token), b"not-the-key");
    answers.push(broker.client_with_token(&forged).get(PROBE).await);
    let metrics = broker.anonymous_client().get("/metrics").await.expect_status(200);
    answers.push(metrics);

    broker.sigterm();
    broker.wait_clean_exit(Duration::from_secs(15)).await;
    let log = std::fs::read_to_string(broker.log_path())
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", broker.log_path().display()));
    assert!(!log.trim().is_empty(), "the broker's log is empty");

    let secrets = [
        ("the admin password", ADMIN_PASSWORD),
        ("bob's first password", bob_first),
        ("bob's second password", bob_second),
        ("a wrong password", wrong),
        ("a rejected short password", too_short),
        ("MOM_JWT_SECRET", jwt_secret),
        ("the admin's token", admin_token.as_str()),
        ("bob's first token", first_token.as_str()),
        ("bob's second token", second_token.as_str()),
        ("a forged token", forged.as_str()),
    ];
    for (what, secret) in secrets {
        // A token's signature alone is enough to replay it: look for that part too.
        let needles: Vec<&str> = match secret.rsplit_once('.') {
            Some((_, signature)) if secret.matches('.').count() == 2 => vec![secret, signature],
            _ => vec![secret],
        };
        for needle in needles {
            assert!(
                !log.contains(needle),
                "{what} appears in the broker's log {}",
                broker.log_path().display()
            );
            for answer in &answers {
                assert!(
                    !answer.text.contains(needle),
                    "{what} appears in the answer to {} {}",
                    answer.method,
                    answer.path
                );
            }
        }
    }
}
