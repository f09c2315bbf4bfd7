//! Harness for mom's end-to-end tests: broker processes against the shared Redis and ZooKeeper
//! (`MOM_TEST_REDIS_URL`, `MOM_TEST_ZK`), private Redis and ZooKeeper servers for failure tests, and
//! an HTTP client of the API that acts as the cluster's admin.
//!
//! Topics have typed helpers too ([`Topic`], [`Subscription`], whose pull routes are the
//! queue's), server push is read with [`SseStream`], and [`Nginx`] runs a real NGINX, configured
//! from the deployment template, in front of test brokers.
//!
//! Each test makes its own [`Cluster`] (a random ZooKeeper root and Redis prefix), so tests run in
//! parallel on the shared services without seeing each other.
//!
//! ```no_run
//! # async fn demo() {
//! use mom_tests::{Cluster, json};
//! let broker = Cluster::new().start_broker().await;
//! let queue = broker.client().queue("orders");
//! queue.create(json!({})).await;
//! queue.send("hello").await;
//! # }
//! ```

pub mod broker;
pub mod client;
pub mod failover;
pub mod groups;
pub mod grpc;
pub mod layout;
pub mod nemesis;
pub mod nginx;
pub mod python;
pub mod queue;
pub mod redis_ha;
pub mod redis_server;
pub mod sse;
pub mod topic;
pub mod util;
pub mod zookeeper;

pub use broker::{user_password, Broker, BrokerBuilder, Cluster, Services, ADMIN_PASSWORD, ADMIN_USER};
pub use client::{is_connection_error, Body, Client, PartialRequest, Resp};
pub use failover::{Answer, Failover, Failure, GaveUp};
pub use nginx::Nginx;
pub use queue::{
    assert_error_result, assert_ok_result, await_gauge, bodies, expect_missing_dead_letter_queue, id_set,
    ids, long_polls_held, requests_in_flight, Message, Queue, Stats, Window, DEADLINE_SLACK,
};
pub use redis_server::{Persistence, RedisServer};
pub use serde_json::{json, Value};
pub use sse::{SseEvent, SseItem, SseStream};
pub use topic::{
    broker_with_subscription, broker_with_topic, metric_sample, scrape, Subscription, Topic, TopicStats,
};
pub use util::{assert_fields, wait_until, wait_until_every, TempDir};
pub use zookeeper::ZooKeeperServer;

/// Starts one ready broker in a fresh cluster namespace.
pub async fn start_broker() -> Broker {
    Cluster::new().start_broker().await
}

/// Starts one ready broker in a fresh cluster namespace and creates a queue on it (expecting 201).
pub async fn broker_with_queue(name: &str, config: Value) -> (Broker, Queue) {
    let broker = start_broker().await;
    let queue = broker.client().queue(name);
    queue.create(config).await;
    (broker, queue)
}
