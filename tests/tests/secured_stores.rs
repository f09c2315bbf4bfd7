//! Redis with a password and ZooKeeper with digest ACLs (issue 13): a broker given
//! `MOM_REDIS_PASSWORD` and `MOM_ZK_AUTH` works, a client without the credentials is refused by
//! both stores, a tree an older broker left open is taken over, and no log line holds a secret.

use std::time::Duration;

use mom_tests::{json, layout, Cluster, Persistence, RedisServer};
use zookeeper_client as zk;

const REDIS_PASSWORD: &str = "redis-pw-5f1c9a0e7b2d4c68";
const ZK_AUTH: &str = "mom:zk-pw-8e3b1d7a9c0f2e46";

async fn zk_client(connect: &str, auth: Option<&str>) -> zk::Client {
    let mut connector = zk::Client::connector().with_session_timeout(Duration::from_secs(6));
    if let Some(a) = auth {
        connector = connector.with_auth("digest", a.as_bytes());
    }
    connector.connect(connect).await.expect("connect to ZooKeeper")
}

/// What a client without the credential (`None`) or with `auth` can do to the broker's znodes.
async fn assert_znodes_refuse(cluster: &Cluster, queue: &str, auth: Option<&str>) {
    let zk = zk_client(&cluster.zk, auth).await;
    let root = &cluster.zk_root;
    let who = auth.map_or("an unauthenticated client".to_string(), |a| format!("digest {a}"));
    let queue_path = layout::znode(root, "queues", queue);
    let secret = layout::znode(root, "secrets", "jwt-key");
    let data = zk.get_data(&queue_path).await;
    assert!(matches!(data, Err(zk::Error::NoAuth)), "{who} read {queue_path}: {data:?}");
    let data = zk.get_data(&secret).await;
    assert!(matches!(data, Err(zk::Error::NoAuth)), "{who} read the token-signing key: {data:?}");
    let set = zk.set_data(&queue_path, b"{}", None).await;
    assert!(matches!(set, Err(zk::Error::NoAuth)), "{who} changed {queue_path}: {set:?}");
    let set = zk.set_data(&secret, b"0123456789abcdef0123456789abcdef", None).await;
    assert!(matches!(set, Err(zk::Error::NoAuth)), "{who} replaced the token-signing key: {set:?}");
    let deleted = zk.delete(&queue_path, None).await;
    assert!(matches!(deleted, Err(zk::Error::NoAuth)), "{who} deleted {queue_path}: {deleted:?}");
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let created = zk.create(&layout::znode(root, "users", "intruder"), b"{}", &opts).await;
    assert!(matches!(created, Err(zk::Error::NoAuth)), "{who} created a user: {created:?}");
    let acl = zk.set_acl(root, &zk::Acls::anyone_all(), None).await;
    assert!(matches!(acl, Err(zk::Error::NoAuth)), "{who} opened the root's ACL: {acl:?}");
}

#[tokio::test]
async fn stores_refuse_clients_without_the_brokers_credentials() {
    let redis = RedisServer::started_with_password(Persistence::None, REDIS_PASSWORD).await;
    // The URL carries no password: the broker gets it from MOM_REDIS_PASSWORD.
    let cluster = Cluster::with_redis(redis.url());
    let broker = cluster
        .broker()
        .env("MOM_REDIS_PASSWORD", REDIS_PASSWORD)
        .env("MOM_ZK_AUTH", ZK_AUTH)
        .env("MOM_LOG", "debug")
        .start()
        .await;
    let queue = broker.client().queue("guarded");
    queue.create(json!({})).await;
    queue.send("hello").await;
    let got = queue.receive(1).await;
    assert_eq!(got.len(), 1, "the broker works with both credentials");

    // Redis: the broker's keys are there, and a client without the password is refused.
    let keys = redis.keys(&format!("{}*", cluster.redis_prefix)).await;
    assert!(!keys.is_empty(), "the broker wrote to the password-protected Redis");
    let mut anon = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("TCP connect");
    let refused: redis::RedisResult<Vec<String>> = redis::cmd("KEYS").arg("*").query_async(&mut anon).await;
    let e = refused.expect_err("Redis answered a client without the password");
    assert_eq!(e.code(), Some("NOAUTH"), "{e}");
    let wrong = format!("redis://:not-the-password@127.0.0.1:{}", redis.port());
    let wrong = redis::Client::open(wrong).expect("url").get_multiplexed_async_connection().await;
    assert!(wrong.is_err(), "a wrong password was accepted");

    // ZooKeeper: neither an anonymous client nor another digest identity gets in.
    assert_znodes_refuse(&cluster, "guarded", None).await;
    assert_znodes_refuse(&cluster, "guarded", Some("mom:guessed-password")).await;
    // The brokers' own credential does (so the ACL is the digest's, not a wall for everyone).
    let owner = zk_client(&cluster.zk, Some(ZK_AUTH)).await;
    let (data, _) =
        owner.get_data(&layout::znode(&cluster.zk_root, "queues", "guarded")).await.expect("owner reads");
    assert!(String::from_utf8_lossy(&data).contains("\"owner\""));

    let log = std::fs::read_to_string(broker.log_path()).expect("broker log");
    assert!(!log.is_empty());
    for secret in [REDIS_PASSWORD, "zk-pw-8e3b1d7a9c0f2e46"] {
        assert!(!log.contains(secret), "the broker logged a secret:\n{log}");
    }
}

#[tokio::test]
async fn a_broker_with_a_credential_takes_over_znodes_left_open() {
    // An older broker (no MOM_ZK_AUTH) made the tree, open to anyone.
    let cluster = Cluster::new();
    let mut old = cluster.start_broker().await;
    old.client().queue("legacy").create(json!({})).await;
    let anon = zk_client(&cluster.zk, None).await;
    let legacy = layout::znode(&cluster.zk_root, "queues", "legacy");
    anon.get_data(&legacy).await.expect("open before the upgrade");
    old.sigterm();
    old.wait_clean_exit(Duration::from_secs(20)).await;

    let broker = cluster.broker().env("MOM_ZK_AUTH", ZK_AUTH).start().await;
    // The queue made before is still served, and now closed to the anonymous client.
    broker.client().queue("legacy").get().await.expect_status(200);
    assert_znodes_refuse(&cluster, "legacy", None).await;
}
