//! Topic operations: publish/subscribe with durable, named subscriptions, filters, replay and
//! server push. A subscription is a mailbox (see `mailbox.rs`): pull, ack, nack, visibility and
//! dead letters are the queue code paths, not copies of them.

use super::access::{self, Right};
use super::mailbox::{check_count, Ask, Delivering, Label, Step, Stream};
use super::queues::encode;
use super::{Broker, Principal};
use crate::error::{Error, Result};
use crate::message_id;
use crate::meta::{SubscriptionMeta, TopicMeta, Versioned};
use crate::metrics::Event;
use crate::model::{
    now_ms, parse_time, rfc3339_ms, validate_name, Message, ReceiveRequest, SeekRequest, SendMessage, Sent,
    SubscriptionInfo, SubscriptionSpec, TopicConfig, TopicInfo, TopicSpec, TopicStats,
};
use crate::store::{Mailbox, Outgoing, Publication, Start};

const KIND: &str = "topic";
const SUB_KIND: &str = "subscription";

fn info(name: &str, meta: TopicMeta) -> TopicInfo {
    TopicInfo {
        name: name.to_string(),
        config: meta.config,
        owner: meta.owner,
        created_at: meta.created_at,
        stats: None,
    }
}

fn sub_info(meta: SubscriptionMeta, lag: Option<u64>) -> SubscriptionInfo {
    SubscriptionInfo {
        name: meta.name,
        topic: meta.topic,
        start: meta.start,
        config: meta.config,
        owner: meta.owner,
        created_at: meta.created_at,
        lag,
    }
}

/// What the Redis registry needs to route messages: the filter, and the owner for `no_local`.
fn registry_spec(meta: &SubscriptionMeta) -> String {
    serde_json::json!({ "filter": meta.config.filter, "owner": meta.owner, "no_local": meta.config.no_local })
        .to_string()
}

/// A subscription and what its mailbox needs.
pub struct Sub {
    pub topic: TopicMeta,
    pub meta: SubscriptionMeta,
    pub mailbox: Mailbox,
    label: String,
}

impl Sub {
    fn delivering(&self) -> Delivering<'_> {
        Delivering {
            visibility_s: self.meta.config.ack_deadline_s,
            max_receives: self.meta.config.max_receives,
            dead_letter_queue: self.meta.config.dead_letter_queue.as_deref(),
            retention_s: self.topic.config.retention_s,
        }
    }

    fn label(&self) -> Label<'_> {
        Label(SUB_KIND, &self.label)
    }
}

impl Broker {
    async fn topic_for(&self, who: &Principal, name: &str, right: Right) -> Result<TopicMeta> {
        self.topic_versioned(who, name, right).await.map(|v| v.value)
    }

    /// [`Broker::topic_for`] with the topic's stamp (its `czxid` is the incarnation).
    async fn topic_versioned(
        &self,
        who: &Principal,
        name: &str,
        right: Right,
    ) -> Result<Versioned<TopicMeta>> {
        validate_name("topic", name)?;
        let topic = self
            .meta
            .fetch_versioned::<TopicMeta>(name)
            .await
            .ok_or_else(|| Error::TopicNotFound(name.to_string()))?;
        access::check(who, &topic.value, right, &format!("topic '{name}'"))?;
        Ok(topic)
    }

    /// A subscription, if `who` has `right` on its topic (or owns it, for `Manage`).
    async fn sub_for(&self, who: &Principal, topic: &str, sub: &str, right: Right) -> Result<Sub> {
        validate_name("topic", topic)?;
        validate_name("subscription", sub)?;
        let Versioned { value: t, stamp } = self
            .meta
            .fetch_versioned::<TopicMeta>(topic)
            .await
            .ok_or_else(|| Error::TopicNotFound(topic.to_string()))?;
        let meta = self
            .meta
            .fetch::<SubscriptionMeta>(&SubscriptionMeta::key(topic, sub))
            .await
            .ok_or_else(|| Error::SubscriptionNotFound(format!("{topic}/{sub}")))?;
        if !(right == Right::Manage && meta.owner == who.name) {
            access::check(who, &t, right, &format!("topic '{topic}'"))?;
        }
        Ok(Sub {
            topic: t,
            mailbox: self.mailboxes.subscription(topic, sub).numbered(stamp.czxid),
            label: format!("{topic}/{sub}"),
            meta,
        })
    }

    pub async fn create_topic(
        &self,
        who: &Principal,
        name: &str,
        spec: TopicSpec,
    ) -> Result<(TopicInfo, bool)> {
        validate_name("topic", name)?;
        let config = spec.apply(TopicConfig::default())?;
        let meta = TopicMeta {
            config,
            owner: who.name.clone(),
            created_at: rfc3339_ms(now_ms()),
            grants: Default::default(),
        };
        let created = self.meta.create(name, meta.clone(), |a: &TopicMeta, b| a.config == b.config).await?;
        Ok((info(name, self.meta.get(name).unwrap_or(meta)), created))
    }

    pub fn list_topics(&self, who: &Principal) -> Vec<TopicInfo> {
        self.meta
            .list::<TopicMeta>()
            .into_iter()
            .filter(|(_, m)| access::allowed(who, m, Right::View))
            .map(|(name, m)| info(&name, m))
            .collect()
    }

    fn subscriptions_of(&self, topic: &str) -> Vec<SubscriptionMeta> {
        self.meta
            .list::<SubscriptionMeta>()
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| s.topic == topic)
            .collect()
    }

    pub async fn get_topic(&self, who: &Principal, name: &str) -> Result<TopicInfo> {
        let meta = self.topic_for(who, name, Right::View).await?;
        let (messages, oldest_age_s, trimmed) =
            self.topics.stats(name, meta.config.retention_s as u64 * 1000).await?;
        self.metrics.count(Event::Expired, KIND, name, trimmed);
        let subscriptions = self.subscriptions_of(name).len() as u64;
        Ok(TopicInfo {
            stats: Some(TopicStats { messages, subscriptions, oldest_age_s }),
            ..info(name, meta)
        })
    }

    /// Deletes a topic, its subscriptions and its retained messages.
    pub async fn delete_topic(&self, who: &Principal, name: &str) -> Result<()> {
        self.topic_for(who, name, Right::Manage).await?;
        // Metadata first: once the znode is gone no node publishes to it or subscribes to it.
        let stamp = self.meta.delete::<TopicMeta>(name).await?;
        for sub in self.subscriptions_of(name) {
            self.drop_subscription(&sub).await?;
        }
        self.topics.delete(name, stamp.czxid).await?;
        self.metrics.forget(KIND, name);
        Ok(())
    }

    async fn drop_subscription(&self, sub: &SubscriptionMeta) -> Result<()> {
        match self.meta.delete::<SubscriptionMeta>(&SubscriptionMeta::key(&sub.topic, &sub.name)).await {
            Ok(_) | Err(Error::SubscriptionNotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let mb = self.mailboxes.subscription(&sub.topic, &sub.name);
        self.topics.unsubscribe(&sub.topic, &sub.name, &mb).await?;
        let label = format!("{}/{}", sub.topic, sub.name);
        self.metrics.forget(SUB_KIND, &label);
        let _ = self.metrics.lag.remove_label_values(&[&sub.topic, &sub.name]);
        Ok(())
    }

    /// Publishes messages: each is checked on its own, and fanned out to every matching subscription.
    pub async fn publish(
        &self,
        who: &Principal,
        topic: &str,
        messages: Vec<SendMessage>,
    ) -> Result<Vec<Result<Sent>>> {
        check_count("messages", messages.len())?;
        let Versioned { value: meta, stamp } = self.topic_versioned(who, topic, Right::Publish).await?;
        let prepared: Vec<Result<Publication>> = messages
            .into_iter()
            .map(|m| {
                if m.delay_s.is_some() {
                    return Err(Error::invalid("topics take no delay_s"));
                }
                if m.group.is_some() {
                    return Err(Error::invalid("topics take no group (message groups are a queue's)"));
                }
                let dedup = m.dedup_id.as_deref().map(|d| self.topics.dedup_key(topic, &meta.created_at, d));
                let attributes_json =
                    serde_json::to_string(&m.attributes).map_err(|e| Error::invalid(e.to_string()))?;
                let payload = encode(topic, meta.config.max_message_bytes, m, Some(&who.name))?;
                Ok(Publication {
                    out: Outgoing { payload, delay_ms: 0, dedup, group: None },
                    attributes_json,
                    publisher: who.name.clone(),
                })
            })
            .collect();
        let retention_ms = meta.config.retention_s as u64 * 1000;
        let (results, stored) = self
            .store_valid(prepared, stamp.czxid, |valid| async move {
                let published = self.topics.publish(topic, stamp.czxid, retention_ms, valid).await?;
                self.metrics.count(Event::Expired, KIND, topic, published.trimmed);
                Ok(published.ids)
            })
            .await?;
        if stored > 0 {
            self.announce_to_older(&crate::store::older_topic_wake_key(topic)).await;
        }
        let mut results = results;
        results.iter_mut().flatten().for_each(|s| s.sequence = None);
        self.metrics.count(Event::Sent, KIND, topic, stored);
        Ok(results)
    }

    /// Creates a durable subscription, filled from its start point; `false` when it existed with
    /// the same config.
    pub async fn create_subscription(
        &self,
        who: &Principal,
        topic: &str,
        name: &str,
        spec: SubscriptionSpec,
    ) -> Result<(SubscriptionInfo, bool)> {
        validate_name("topic", topic)?;
        validate_name("subscription", name)?;
        let (config, from, start) = spec.resolve()?;
        self.topic_for(who, topic, Right::Consume).await?;
        self.warm(config.dead_letter_queue.as_deref()).await;
        self.check_dead_letter_queue(who, None, false, config.dead_letter_queue.as_deref())?;
        let meta = SubscriptionMeta {
            topic: topic.to_string(),
            name: name.to_string(),
            config,
            start: serde_json::to_value(&start).unwrap_or_default(),
            owner: who.name.clone(),
            created_at: rfc3339_ms(now_ms()),
        };
        let key = SubscriptionMeta::key(topic, name);
        let created = self
            .meta
            .create(&key, meta.clone(), |a: &SubscriptionMeta, b| a.config == b.config && a.start == b.start)
            .await?;
        if created {
            let start = match from {
                None => Start::Latest,
                Some(ms) => Start::Time(ms),
            };
            let mb = self.mailboxes.subscription(topic, name);
            self.topics.subscribe(topic, name, &mb, &registry_spec(&meta), &start, false).await?;
        }
        Ok((sub_info(self.meta.get(&key).unwrap_or(meta), None), created))
    }

    /// The subscriptions of a topic, each with its lag.
    pub async fn list_subscriptions(&self, who: &Principal, topic: &str) -> Result<Vec<SubscriptionInfo>> {
        let meta = self.topic_for(who, topic, Right::View).await?;
        let mut out = Vec::new();
        for sub in self.subscriptions_of(topic) {
            let lag = self.lag(&sub, meta.config.retention_s).await?;
            out.push(sub_info(sub, Some(lag)));
        }
        Ok(out)
    }

    async fn lag(&self, sub: &SubscriptionMeta, retention_s: u32) -> Result<u64> {
        let mb = self.mailboxes.subscription(&sub.topic, &sub.name);
        let (s, _, _) = self.mailboxes.stats(&mb, retention_s as u64 * 1000).await?;
        Ok(s.available + s.in_flight + s.delayed)
    }

    pub async fn delete_subscription(&self, who: &Principal, topic: &str, name: &str) -> Result<()> {
        let sub = self.sub_for(who, topic, name, Right::Manage).await?;
        self.drop_subscription(&sub.meta).await
    }

    /// Opens a push stream: 400/404/403 for one that cannot be opened, 429 when the caller holds
    /// all its long-poll slots, before any event is sent. `token` is re-checked as it goes.
    pub async fn open_stream(
        &self,
        who: &Principal,
        topic: &str,
        name: &str,
        max_in_flight: Option<usize>,
        token: String,
    ) -> Result<Stream> {
        self.sub_for(who, topic, name, Right::Consume).await?;
        self.new_stream(who, max_in_flight, token)
    }

    pub async fn sub_receive(
        &self,
        who: &Principal,
        topic: &str,
        name: &str,
        req: ReceiveRequest,
    ) -> Result<Vec<Message>> {
        req.limits()?;
        let sub = self.sub_for(who, topic, name, Right::Consume).await?;
        self.receive_from(&sub.mailbox, sub.label(), &sub.delivering(), &req, Some(&who.name)).await
    }

    pub async fn sub_ack(
        &self,
        who: &Principal,
        topic: &str,
        name: &str,
        receipts: Vec<String>,
    ) -> Result<Vec<Result<()>>> {
        self.settle_sub(who, topic, name, Ask::Ack, receipts).await
    }

    pub async fn sub_nack(
        &self,
        who: &Principal,
        topic: &str,
        name: &str,
        receipts: Vec<String>,
        delay_s: u32,
    ) -> Result<Vec<Result<()>>> {
        self.settle_sub(who, topic, name, Ask::Nack { delay_s }, receipts).await
    }

    pub async fn sub_extend(
        &self,
        who: &Principal,
        topic: &str,
        name: &str,
        receipt: String,
        timeout_s: u32,
    ) -> Result<()> {
        self.sub_extend_all(who, topic, name, vec![receipt], timeout_s)
            .await?
            .pop()
            .unwrap_or(Err(Error::ReceiptInvalid))
    }

    /// [`Broker::extend_all`] for a subscription's deliveries.
    pub async fn sub_extend_all(
        &self,
        who: &Principal,
        topic: &str,
        name: &str,
        receipts: Vec<String>,
        timeout_s: u32,
    ) -> Result<Vec<Result<()>>> {
        self.settle_sub(who, topic, name, Ask::Visibility { timeout_s }, receipts).await
    }

    /// Checks `ask`, then settles deliveries of subscription `name` in one store call.
    async fn settle_sub(
        &self,
        who: &Principal,
        topic: &str,
        name: &str,
        ask: Ask,
        receipts: Vec<String>,
    ) -> Result<Vec<Result<()>>> {
        let how = ask.checked(receipts.len())?;
        let sub = self.sub_for(who, topic, name, Right::Consume).await?;
        self.settle_in(&sub.mailbox, sub.label(), how, &receipts).await
    }

    /// Replays every retained message from a time or id on; cancels deliveries in flight. A point
    /// older than retention starts at the oldest retained message.
    pub async fn seek(&self, who: &Principal, topic: &str, name: &str, req: SeekRequest) -> Result<u64> {
        let not_an_id = |id: &str| Error::invalid(format!("{id:?} is not a message id of topic '{topic}'"));
        let (time, id) = match (req.time, req.id) {
            (Some(t), None) => (Some(parse_time(&t)?), None),
            (None, Some(id)) => {
                let parsed = message_id::parse(&id).ok_or_else(|| not_an_id(&id))?;
                (None, Some((id, parsed)))
            }
            _ => return Err(Error::invalid("give exactly one of time and id")),
        };
        let sub = self.sub_for(who, topic, name, Right::Consume).await?;
        let start = match (time, id) {
            (Some(t), _) => Start::Time(t),
            (None, Some((id, parsed))) => {
                Start::Id(parsed.internal_in(sub.mailbox.id_space()).ok_or_else(|| not_an_id(&id))?)
            }
            (None, None) => return Err(Error::invalid("give exactly one of time and id")),
        };
        self.topics.subscribe(topic, name, &sub.mailbox, &registry_spec(&sub.meta), &start, true).await
    }

    /// The next messages for a server-push stream: waits until at least one is available and the
    /// stream has room under `max_in_flight`. `None` ends the stream (the node is draining, or the
    /// token was revoked). The subscription is looked up again on every round, so one deleted or
    /// no longer allowed ends the stream with its error.
    pub async fn stream_next(
        &self,
        who: &Principal,
        topic: &str,
        name: &str,
        st: &mut Stream,
    ) -> Result<Option<Vec<Message>>> {
        loop {
            let sub = self.sub_for(who, topic, name, Right::Consume).await?;
            match self.stream_step(&sub.mailbox, sub.label(), &sub.delivering(), st).await? {
                Step::Again => continue,
                Step::Ended => return Ok(None),
                Step::Messages(m) => return Ok(Some(m)),
            }
        }
    }

    /// Topic upkeep: retention of idle topics and subscriptions, outbox moves, and subscriptions
    /// that ZooKeeper has but the Redis registry lacks (a node died between the two writes).
    pub(super) async fn sweep_topics(&self, token: u64) -> Result<()> {
        for (name, meta) in self.meta.list::<TopicMeta>() {
            let retention_ms = meta.config.retention_s as u64 * 1000;
            let (_, _, trimmed) = self.topics.stats(&name, retention_ms).await?;
            self.metrics.count(Event::Expired, KIND, &name, trimmed);
            let registered = self.topics.registered(&name).await?;
            for sub in self.subscriptions_of(&name) {
                let mb = self.mailboxes.subscription(&name, &sub.name);
                if !registered.contains(&sub.name) && self.fenced(token).await {
                    tracing::warn!(topic = %name, subscription = %sub.name, "re-registering a subscription missing from Redis");
                    self.topics
                        .subscribe(&name, &sub.name, &mb, &registry_spec(&sub), &Start::Latest, false)
                        .await?;
                }
                let (_, _, outbox) = self.mailboxes.stats(&mb, retention_ms).await?;
                if outbox > 0 && self.fenced(token).await {
                    self.forward_outbox(&mb).await;
                }
            }
        }
        Ok(())
    }

    pub(super) async fn subscription_gauges(&self) {
        for (name, meta) in self.meta.list::<TopicMeta>() {
            for sub in self.subscriptions_of(&name) {
                if let Ok(lag) = self.lag(&sub, meta.config.retention_s).await {
                    self.metrics.lag.with_label_values(&[&name, &sub.name]).set(lag as i64);
                }
            }
        }
    }
}
