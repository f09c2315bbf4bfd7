//! Typed helpers for topics and their subscriptions. As in `queue.rs`, the `*_resp` variants
//! return the raw response for tests that check errors; the others assert success.
//!
//! The pull routes of a subscription (`/receive`, `/ack`, `/nack`, `/visibility`) have the
//! queue's bodies and semantics, so a [`Subscription`] derefs to a [`Queue`] helper at its path:
//! `sub.receive(10)`, `sub.ack_all(&messages)`, `sub.expect_receivable_after(..)` work as for a queue.

use std::ops::Deref;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::broker::Broker;
use crate::client::{Client, Resp};
use crate::queue::{message_id, Message, Queue};
use crate::sse::SseStream;

/// `stats` of `GET /v1/topics/{name}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TopicStats {
    pub messages: u64,
    pub subscriptions: u64,
    pub oldest_age_s: u64,
}

impl Client {
    /// Helper for the routes of one topic.
    pub fn topic(&self, name: &str) -> Topic {
        Topic {
            routes: Queue::at(self.clone(), name, format!("/v1/topics/{name}")),
            client: self.clone(),
            name: name.to_string(),
        }
    }
}

/// One topic on one broker.
#[derive(Debug, Clone)]
pub struct Topic {
    /// The queue helper at `/v1/topics/{name}`: create, get and delete, and publish on
    /// `/messages` and `/messages/batch`, have the queue's methods, paths and bodies.
    routes: Queue,
    client: Client,
    name: String,
}

impl Topic {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/v1/topics/{name}` followed by `suffix`.
    pub fn path(&self, suffix: &str) -> String {
        self.routes.path(suffix)
    }

    pub async fn create_resp(&self, config: Value) -> Resp {
        self.routes.create_resp(config).await
    }

    /// Creates the topic, expecting 201.
    pub async fn create(&self, config: Value) -> &Self {
        self.routes.create(config).await;
        self
    }

    pub async fn get(&self) -> Resp {
        self.routes.get().await
    }

    /// The topic's `stats`, expecting 200.
    pub async fn stats(&self) -> TopicStats {
        let resp = self.get().await.expect_status(200);
        serde_json::from_value(resp.json["stats"].clone())
            .unwrap_or_else(|e| panic!("bad topic stats ({e}) in {resp}"))
    }

    pub async fn delete(&self) -> Resp {
        self.routes.delete().await
    }

    pub async fn publish_resp(&self, message: Value) -> Resp {
        self.routes.send_resp(message).await
    }

    /// Publishes `message` (a full publish body), expecting 201; returns the new id.
    pub async fn publish_msg(&self, message: Value) -> String {
        self.routes.send_msg(message).await
    }

    /// Publishes a message with this body and nothing else, expecting 201; returns the new id.
    pub async fn publish(&self, body: &str) -> String {
        self.routes.send(body).await
    }

    /// Publishes one message per body, one request each and in order; returns the ids.
    pub async fn publish_many<S: AsRef<str>>(&self, bodies: &[S]) -> Vec<String> {
        self.routes.send_many(bodies).await
    }

    /// `POST .../messages/batch` with these entries.
    pub async fn publish_batch_resp(&self, messages: Value) -> Resp {
        self.routes.send_batch(messages).await
    }

    /// Publishes a batch whose entries must all succeed; returns the ids in order.
    pub async fn publish_batch(&self, messages: Value) -> Vec<String> {
        let resp = self.publish_batch_resp(messages).await.expect_status(200);
        let results = resp.json["results"].as_array().unwrap_or_else(|| panic!("no results array in {resp}"));
        results.iter().map(|r| message_id(r, &resp.to_string())).collect()
    }

    /// Helper for the routes of subscription `name` of this topic.
    pub fn subscription(&self, name: &str) -> Subscription {
        Subscription {
            pull: Queue::at(
                self.client.clone(),
                &format!("{}/{name}", self.name),
                self.path(&format!("/subscriptions/{name}")),
            ),
            topic: self.clone(),
            name: name.to_string(),
        }
    }

    /// `GET .../subscriptions`, expecting 200; the `subscriptions` array.
    pub async fn subscriptions(&self) -> Vec<Value> {
        let resp = self.client.get(&self.path("/subscriptions")).await.expect_status(200);
        resp.json["subscriptions"]
            .as_array()
            .unwrap_or_else(|| panic!("no subscriptions array in {resp}"))
            .clone()
    }
}

/// One subscription of a topic. Derefs to the [`Queue`] helper of its routes: besides pulling,
/// its `PUT` (create) and `DELETE` have the queue's shapes too.
#[derive(Debug, Clone)]
pub struct Subscription {
    pull: Queue,
    topic: Topic,
    name: String,
}

impl Deref for Subscription {
    type Target = Queue;

    fn deref(&self) -> &Queue {
        &self.pull
    }
}

impl Subscription {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the subscription, expecting 201; returns the answer (name, config, start, owner).
    pub async fn create(&self, config: Value) -> Value {
        self.create_resp(config).await.expect_status(201).json
    }

    /// This subscription's entry in `GET /v1/topics/{topic}/subscriptions`.
    pub async fn listed(&self) -> Value {
        let all = self.topic.subscriptions().await;
        all.iter()
            .find(|s| s["name"] == self.name.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("subscription {} not listed in {all:?}", self.name))
    }

    /// Its `lag` as listed by `GET .../subscriptions`.
    pub async fn lag(&self) -> u64 {
        let entry = self.listed().await;
        entry["lag"].as_u64().unwrap_or_else(|| panic!("no integer lag in {entry}"))
    }

    pub async fn seek_resp(&self, body: Value) -> Resp {
        self.topic.client.post(&self.path("/seek"), body).await
    }

    /// Seeks to `{"time": time}`, expecting 200.
    pub async fn seek_time(&self, time: &str) -> Resp {
        self.seek_resp(json!({ "time": time })).await.expect_status(200)
    }

    /// Seeks to `{"id": id}`, expecting 200.
    pub async fn seek_id(&self, id: &str) -> Resp {
        self.seek_resp(json!({ "id": id })).await.expect_status(200)
    }

    /// `/v1/topics/{topic}/subscriptions/{name}/stream` followed by `query` (e.g. `?max_in_flight=2`).
    pub fn stream_path(&self, query: &str) -> String {
        self.path(&format!("/stream{query}"))
    }

    /// Opens the server-push stream, expecting 200 `text/event-stream`.
    pub async fn stream(&self, query: &str) -> SseStream {
        SseStream::open(&self.topic.client, &self.stream_path(query)).await
    }

    /// Receives every message that is available now, in batches of 100, without acking.
    pub async fn drain(&self) -> Vec<Message> {
        let mut all = Vec::new();
        loop {
            let got = self.receive(100).await;
            if got.is_empty() {
                return all;
            }
            all.extend(got);
        }
    }
}

/// Starts one ready broker in a fresh cluster namespace and creates a topic on it (expecting 201).
pub async fn broker_with_topic(name: &str, config: Value) -> (Broker, Topic) {
    let broker = crate::start_broker().await;
    let topic = broker.client().topic(name);
    topic.create(config).await;
    (broker, topic)
}

/// [`broker_with_topic`] with the default topic config, plus subscription `sub` of it created
/// with `config` (expecting 201).
pub async fn broker_with_subscription(
    topic: &str,
    sub: &str,
    config: Value,
) -> (Broker, Topic, Subscription) {
    let (broker, topic) = broker_with_topic(topic, json!({})).await;
    let sub = topic.subscription(sub);
    sub.create(config).await;
    (broker, topic, sub)
}

/// The value of the series `name` whose labels include every pair of `labels` (in any order), in
/// Prometheus text `text`.
pub fn metric_sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (series_labels, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        let have: Vec<&str> = series_labels.split(',').collect();
        labels
            .iter()
            .all(|(k, v)| have.contains(&format!("{k}=\"{v}\"").as_str()))
            .then(|| value.trim().parse().ok())?
    })
}

/// `GET /metrics` (expecting 200) and the value of one labelled series; `None` when absent.
pub async fn scrape(client: &Client, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let resp = client.get("/metrics").await.expect_status(200);
    metric_sample(&resp.text, name, labels)
}

#[cfg(test)]
mod tests {
    use super::metric_sample;

    #[test]
    fn metric_sample_matches_labels_in_any_order() {
        let text = "# HELP x\nmom_subscription_lag{subscription=\"s\",topic=\"t\"} 3\n\
                    mom_subscription_lag{subscription=\"s2\",topic=\"t\"} 4\nmom_leader 1\n";
        let lag = |labels: &[(&str, &str)]| metric_sample(text, "mom_subscription_lag", labels);
        assert_eq!(lag(&[("topic", "t"), ("subscription", "s")]), Some(3.0));
        assert_eq!(lag(&[("subscription", "s2")]), Some(4.0));
        assert_eq!(lag(&[("subscription", "nope")]), None);
        assert_eq!(metric_sample(text, "mom_leader", &[]), Some(1.0));
    }
}
