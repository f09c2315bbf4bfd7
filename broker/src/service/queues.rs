//! Queue operations: point to point, at-least-once, competing consumers.

use std::collections::BTreeMap;

use super::access::{self, Right};
use super::mailbox::{check_count, check_in_flight, Ask, Delivering, Label, Payload, Step, Stream};
use super::{Broker, Principal};
use crate::error::{Error, Result};
use crate::message_id;
use crate::meta::{QueueMeta, Versioned};
use crate::metrics::Event;
use crate::model::{
    check_tag_count, now_ms, rfc3339_ms, validate_queue_name, validate_tags, Message, QueueConfig, QueueInfo,
    QueueSpec, ReceiveRequest, SendMessage, Sent, Tags, FIFO_SUFFIX,
};
use crate::store::{Mailbox, Outgoing};

const KIND: &str = "queue";

fn info(name: &str, meta: QueueMeta) -> QueueInfo {
    QueueInfo {
        name: name.to_string(),
        config: meta.config,
        owner: meta.owner,
        created_at: meta.created_at,
        stats: None,
        modified_at: meta.modified_at,
        sqs_attributes: meta.sqs_attributes,
    }
}

/// Applies SQS attributes kept with no effect: an empty value removes one.
fn merge_sqs_attributes(into: &mut BTreeMap<String, String>, given: BTreeMap<String, String>) {
    for (k, v) in given {
        if v.is_empty() {
            into.remove(&k);
        } else {
            into.insert(k, v);
        }
    }
}

fn delivering(config: &QueueConfig) -> Delivering<'_> {
    Delivering {
        visibility_s: config.visibility_timeout_s,
        max_receives: config.max_receives,
        dead_letter_queue: config.dead_letter_queue.as_deref(),
        retention_s: config.retention_s,
    }
}

impl Broker {
    /// The queue's metadata and mailbox if `who` has `right` on it: 400 for a bad name, then 404,
    /// then 403.
    pub(super) async fn queue_for(
        &self,
        who: &Principal,
        name: &str,
        right: Right,
    ) -> Result<(QueueMeta, Mailbox)> {
        validate_queue_name("queue", name)?;
        let Versioned { value: meta, stamp } = self
            .meta
            .fetch_versioned::<QueueMeta>(name)
            .await
            .ok_or_else(|| Error::QueueNotFound(name.to_string()))?;
        access::check(who, &meta, right, &format!("queue '{name}'"))?;
        let mb = self.mailboxes.queue(name).at(stamp.czxid).fifo(meta.config.fifo);
        Ok((meta, mb))
    }

    /// Makes sure a queue named in a request is in the cache if it exists anywhere (it may have
    /// been created through another node a moment ago).
    pub(super) async fn warm(&self, queue: Option<&str>) {
        // An invalid name is refused later with a clear error; it must not reach ZooKeeper as a path.
        if let Some(q) = queue.filter(|q| validate_queue_name("queue", q).is_ok()) {
            self.meta.fetch::<QueueMeta>(q).await;
        }
    }

    /// A dead-letter queue must exist, differ from the source, be of the source's kind (a FIFO
    /// queue's is FIFO, keeping its groups' order; a standard queue's or a subscription's is
    /// standard, as on SQS), and take the caller's messages.
    pub(super) fn check_dead_letter_queue(
        &self,
        who: &Principal,
        source: Option<&str>,
        fifo: bool,
        dlq: Option<&str>,
    ) -> Result<()> {
        let Some(dlq) = dlq else { return Ok(()) };
        validate_queue_name("dead_letter_queue", dlq)?;
        if Some(dlq) == source {
            return Err(Error::invalid("a queue cannot be its own dead_letter_queue"));
        }
        let Some(target) = self.meta.queue(dlq) else {
            return Err(Error::invalid(format!("dead_letter_queue '{dlq}' does not exist")));
        };
        match (fifo, target.config.fifo) {
            (true, false) => {
                return Err(Error::invalid(format!(
                    "the dead_letter_queue of a FIFO queue must be a FIFO queue; '{dlq}' is not"
                )))
            }
            (false, true) => {
                return Err(Error::invalid(format!(
                    "'{dlq}' is a FIFO queue: only a FIFO queue may use it as its dead_letter_queue"
                )))
            }
            _ => {}
        }
        if let Some(allow) = &target.config.redrive_allow {
            if !allow.allows(source.unwrap_or("")) {
                let what = source.map_or("a subscription".to_string(), |s| format!("queue '{s}'"));
                return Err(Error::invalid(format!(
                    "queue '{dlq}' does not take dead letters from {what} (its redrive_allow)"
                )));
            }
        }
        access::check(who, &target, Right::Publish, &format!("queue '{dlq}'"))
    }

    /// Creates a queue; `true` when created, `false` when it existed with the same config.
    pub async fn create_queue(
        &self,
        who: &Principal,
        name: &str,
        spec: QueueSpec,
    ) -> Result<(QueueInfo, bool)> {
        validate_queue_name("queue", name)?;
        let tags = spec.tags.clone().unwrap_or_default();
        validate_tags(&tags)?;
        check_tag_count(tags.len())?;
        let mut sqs_attributes = BTreeMap::new();
        merge_sqs_attributes(&mut sqs_attributes, spec.sqs_attributes.clone());
        let config = spec.apply(QueueConfig::default())?;
        if name.ends_with(FIFO_SUFFIX) && !config.fifo {
            return Err(Error::invalid(format!(
                "a queue named '*{FIFO_SUFFIX}' must be a FIFO queue (\"fifo\": true)"
            )));
        }
        self.warm(config.dead_letter_queue.as_deref()).await;
        self.check_dead_letter_queue(who, Some(name), config.fifo, config.dead_letter_queue.as_deref())?;
        let meta = QueueMeta {
            config,
            owner: who.name.clone(),
            created_at: rfc3339_ms(now_ms()),
            grants: Default::default(),
            tags,
            sqs_attributes,
            modified_at: None,
        };
        let created = self.meta.create(name, meta.clone(), |a: &QueueMeta, b| a.config == b.config).await?;
        let stored = self.meta.queue(name).unwrap_or(meta);
        Ok((info(name, stored), created))
    }

    /// The queues `who` may see.
    pub fn list_queues(&self, who: &Principal) -> Vec<QueueInfo> {
        self.meta
            .list::<QueueMeta>()
            .into_iter()
            .filter(|(_, meta)| access::allowed(who, meta, Right::View))
            .map(|(name, meta)| info(&name, meta))
            .collect()
    }

    pub async fn get_queue(&self, who: &Principal, name: &str) -> Result<QueueInfo> {
        let (meta, mb) = self.queue_for(who, name, Right::View).await?;
        let (stats, trimmed, _) = self.mailboxes.stats(&mb, meta.config.retention_s as u64 * 1000).await?;
        self.metrics.count(Event::Expired, KIND, name, trimmed);
        Ok(QueueInfo { stats: Some(stats), ..info(name, meta) })
    }

    pub async fn patch_queue(&self, who: &Principal, name: &str, spec: QueueSpec) -> Result<QueueInfo> {
        if spec.tags.is_some() {
            return Err(Error::invalid("tags are changed with PUT and DELETE /v1/queues/{name}/tags"));
        }
        let (current, _) = self.queue_for(who, name, Right::Manage).await?;
        if spec.fifo.is_some_and(|f| f != current.config.fifo) {
            return Err(Error::invalid("fifo is set when a queue is created and cannot change"));
        }
        self.warm(spec.dead_letter_queue.clone().flatten().as_deref()).await;
        let meta = self
            .meta
            .update(name, |mut meta: QueueMeta| {
                meta.config = spec.clone().apply(meta.config)?;
                merge_sqs_attributes(&mut meta.sqs_attributes, spec.sqs_attributes.clone());
                meta.modified_at = Some(rfc3339_ms(now_ms()));
                let (fifo, dlq) = (meta.config.fifo, meta.config.dead_letter_queue.as_deref());
                self.check_dead_letter_queue(who, Some(name), fifo, dlq)?;
                Ok(meta)
            })
            .await?;
        Ok(info(name, meta))
    }

    /// Changes the SQS attributes kept with no effect (`Policy`, KMS, SSE) by `change`, which
    /// sees the current ones (AddPermission and RemovePermission edit `Policy`).
    pub async fn update_sqs_attributes(
        &self,
        who: &Principal,
        name: &str,
        change: impl Fn(&mut BTreeMap<String, String>) -> Result<()>,
    ) -> Result<()> {
        self.queue_for(who, name, Right::Manage).await?;
        self.meta
            .update(name, |mut meta: QueueMeta| {
                change(&mut meta.sqs_attributes)?;
                meta.sqs_attributes.retain(|_, v| !v.is_empty());
                meta.modified_at = Some(rfc3339_ms(now_ms()));
                Ok(meta)
            })
            .await?;
        Ok(())
    }

    /// A queue's tags (any user who may see the queue).
    pub async fn queue_tags(&self, who: &Principal, name: &str) -> Result<Tags> {
        Ok(self.queue_for(who, name, Right::View).await?.0.tags)
    }

    /// Adds or changes tags (owner or admin).
    pub async fn tag_queue(&self, who: &Principal, name: &str, tags: Tags) -> Result<Tags> {
        validate_tags(&tags)?;
        self.queue_for(who, name, Right::Manage).await?;
        let meta = self
            .meta
            .update(name, |mut meta: QueueMeta| {
                meta.tags.extend(tags.clone());
                check_tag_count(meta.tags.len())?;
                Ok(meta)
            })
            .await?;
        Ok(meta.tags)
    }

    /// Removes tags by key (owner or admin); keys without a tag are ignored.
    pub async fn untag_queue(&self, who: &Principal, name: &str, keys: Vec<String>) -> Result<Tags> {
        self.queue_for(who, name, Right::Manage).await?;
        let meta = self
            .meta
            .update(name, |mut meta: QueueMeta| {
                for k in &keys {
                    meta.tags.remove(k);
                }
                Ok(meta)
            })
            .await?;
        Ok(meta.tags)
    }

    /// The queues `who` may see whose dead-letter queue is `name`, sorted.
    pub async fn dead_letter_sources(&self, who: &Principal, name: &str) -> Result<Vec<String>> {
        self.queue_for(who, name, Right::View).await?;
        let mut sources: Vec<String> = self
            .meta
            .list::<QueueMeta>()
            .into_iter()
            .filter(|(_, m)| m.config.dead_letter_queue.as_deref() == Some(name))
            .filter(|(_, m)| access::allowed(who, m, Right::View))
            .map(|(n, _)| n)
            .collect();
        sources.sort();
        Ok(sources)
    }

    pub async fn delete_queue(&self, who: &Principal, name: &str) -> Result<()> {
        let (_, mb) = self.queue_for(who, name, Right::Manage).await?;
        // Metadata first: once the znode is gone no node accepts new sends for it, and once Redis
        // retired its incarnation not even a node whose cache has not heard of it yet.
        let stamp = self.meta.delete::<QueueMeta>(name).await?;
        self.mailboxes.retire(&mb, stamp.czxid).await?;
        self.metrics.forget(KIND, name);
        self.waiters.wake(&mb.wake_key);
        self.waiters.forget(&mb.wake_key);
        Ok(())
    }

    pub async fn purge_queue(&self, who: &Principal, name: &str) -> Result<()> {
        let (_, mb) = self.queue_for(who, name, Right::Manage).await?;
        self.mailboxes.purge(&mb).await
    }

    /// Sends messages, each checked on its own: the answer holds one result per message, in order.
    pub async fn send(
        &self,
        who: &Principal,
        name: &str,
        messages: Vec<SendMessage>,
    ) -> Result<Vec<Result<Sent>>> {
        check_count("messages", messages.len())?;
        let (meta, mb) = self.queue_for(who, name, Right::Publish).await?;
        let config = &meta.config;
        let prepared: Vec<Result<Outgoing>> = messages
            .into_iter()
            .map(|mut m| {
                if config.fifo {
                    fifo_checks(config, &mut m)?;
                }
                let delay_s = m.delay_s.unwrap_or(config.delay_s);
                let dedup = m.dedup_id.as_deref().map(|d| mb.dedup_key(&meta.created_at, d));
                let group = m.group.clone();
                let payload = encode(name, config.max_message_bytes, m, Some(&who.name))?;
                Ok(Outgoing { payload, delay_ms: delay_s as u64 * 1000, dedup, group })
            })
            .collect();
        let (mut results, stored) =
            self.store_valid(prepared, mb.id_space(), |valid| self.mailboxes.send(&mb, valid)).await?;
        if !config.fifo {
            results.iter_mut().flatten().for_each(|s| s.sequence = None);
        }
        if stored > 0 {
            self.announce_to_older(&mb.older_wake_key).await;
        }
        self.metrics.count(Event::Sent, KIND, name, stored);
        Ok(results)
    }

    /// Stores the entries that passed their checks in one call and merges the answers back in
    /// order, with the ids as clients see them (numbered in `id_space`) and the sequence numbers
    /// FIFO queues answer (callers of other kinds drop them); also returns how many were newly
    /// stored.
    pub(super) async fn store_valid<T, F>(
        &self,
        prepared: Vec<Result<T>>,
        id_space: i64,
        store: impl FnOnce(Vec<T>) -> F,
    ) -> Result<(Vec<Result<Sent>>, u64)>
    where
        F: std::future::Future<Output = Result<Vec<(String, bool)>>>,
    {
        let mut slots = Vec::with_capacity(prepared.len());
        let mut valid = Vec::with_capacity(prepared.len());
        for p in prepared {
            match p {
                Ok(v) => {
                    valid.push(v);
                    slots.push(None);
                }
                Err(e) => slots.push(Some(Err(e))),
            }
        }
        let mut stored = if valid.is_empty() { Vec::new() } else { store(valid).await? }.into_iter();
        let results: Vec<Result<Sent>> = slots
            .into_iter()
            .map(|slot| {
                slot.unwrap_or_else(|| {
                    let (id, created) = stored
                        .next()
                        .ok_or_else(|| Error::Unavailable("short reply from the store".into()))?;
                    let sequence = Some(super::mailbox::sequence(&id));
                    Ok(Sent { id: message_id::external(id_space, &id), created, sequence })
                })
            })
            .collect();
        let created = results.iter().filter(|r| matches!(r, Ok(s) if s.created)).count() as u64;
        Ok((results, created))
    }

    /// Receives; a request naming no `wait_s` waits the queue's `receive_wait_s`.
    pub async fn receive(
        &self,
        who: &Principal,
        name: &str,
        mut req: ReceiveRequest,
    ) -> Result<Vec<Message>> {
        req.limits()?;
        let (meta, mb) = self.queue_for(who, name, Right::Consume).await?;
        req.wait_s = req.wait_s.or(Some(meta.config.receive_wait_s));
        self.receive_from(&mb, Label(KIND, name), &delivering(&meta.config), &req, Some(&who.name)).await
    }

    /// Opens a push stream of a queue (issue 25): 400 for a bad name or `max_in_flight` (1 to
    /// [`super::mailbox::MAX_IN_FLIGHT`]), 404, 403 without the consume right, 429 when the caller
    /// holds all its long-poll slots; all before any event is sent. `token` is re-checked as it goes.
    pub async fn open_queue_stream(
        &self,
        who: &Principal,
        name: &str,
        max_in_flight: Option<usize>,
        token: String,
    ) -> Result<Stream> {
        check_in_flight("max_in_flight", max_in_flight)?;
        self.queue_for(who, name, Right::Consume).await?;
        self.new_stream(who, max_in_flight, token)
    }

    /// The next messages for a queue's push stream (as [`Broker::stream_next`] for a
    /// subscription): at least one, and no more than the stream's room under `max_in_flight`.
    /// `None` ends the stream (draining, token revoked); a queue deleted or no longer allowed ends
    /// it with its error.
    pub async fn queue_stream_next(
        &self,
        who: &Principal,
        name: &str,
        st: &mut Stream,
    ) -> Result<Option<Vec<Message>>> {
        loop {
            let (meta, mb) = self.queue_for(who, name, Right::Consume).await?;
            match self.stream_step(&mb, Label(KIND, name), &delivering(&meta.config), st).await? {
                Step::Again => continue,
                Step::Ended => return Ok(None),
                Step::Messages(m) => return Ok(Some(m)),
            }
        }
    }

    /// The answer a receive with SQS attempt id `attempt` gave `who` on queue `name` in the last
    /// five minutes, if any: a retried receive gets the same messages (and receipts).
    pub async fn earlier_attempt(
        &self,
        who: &Principal,
        name: &str,
        attempt: &str,
    ) -> Result<Option<String>> {
        let (_, mb) = self.queue_for(who, name, Right::Consume).await?;
        self.mailboxes.attempt(&mb, &who.name, attempt).await
    }

    /// Records the answer of a receive with SQS attempt id `attempt` (see [`Broker::earlier_attempt`]).
    pub async fn record_attempt(
        &self,
        who: &Principal,
        name: &str,
        attempt: &str,
        answer: &str,
    ) -> Result<()> {
        let (_, mb) = self.queue_for(who, name, Right::Consume).await?;
        self.mailboxes.record_attempt(&mb, &who.name, attempt, answer).await
    }

    pub async fn ack(&self, who: &Principal, name: &str, receipts: Vec<String>) -> Result<Vec<Result<()>>> {
        self.settle_queue(who, name, Ask::Ack, receipts).await
    }

    pub async fn nack(
        &self,
        who: &Principal,
        name: &str,
        receipts: Vec<String>,
        delay_s: u32,
    ) -> Result<Vec<Result<()>>> {
        self.settle_queue(who, name, Ask::Nack { delay_s }, receipts).await
    }

    /// Changes the visibility timeout of one delivery, counted from now.
    pub async fn extend(&self, who: &Principal, name: &str, receipt: String, timeout_s: u32) -> Result<()> {
        self.extend_all(who, name, vec![receipt], timeout_s)
            .await?
            .pop()
            .unwrap_or(Err(Error::ReceiptInvalid))
    }

    /// Changes the visibility timeout of several deliveries at once (a consume stream's batch):
    /// one store call, one result per receipt.
    pub async fn extend_all(
        &self,
        who: &Principal,
        name: &str,
        receipts: Vec<String>,
        timeout_s: u32,
    ) -> Result<Vec<Result<()>>> {
        self.settle_queue(who, name, Ask::Visibility { timeout_s }, receipts).await
    }

    /// Checks `ask`, then settles deliveries of queue `name` in one store call.
    async fn settle_queue(
        &self,
        who: &Principal,
        name: &str,
        ask: Ask,
        receipts: Vec<String>,
    ) -> Result<Vec<Result<()>>> {
        let how = ask.checked(receipts.len())?;
        let (_, mb) = self.queue_for(who, name, Right::Consume).await?;
        self.settle_in(&mb, Label(KIND, name), how, &receipts).await
    }

    /// Whether `receipt` was issued by this cluster for `queue` (stale or not).
    pub fn genuine_receipt(&self, queue: &str, receipt: &str) -> bool {
        self.meta.receipt_key().is_ok_and(|k| k.verify(&self.mailboxes.queue(queue).scope, receipt).is_ok())
    }

    /// Moves every dead letter that is not in flight to `to`, or back to its source queue.
    pub async fn redrive(&self, who: &Principal, name: &str, to: Option<String>) -> Result<u64> {
        if let Some(to) = &to {
            validate_queue_name("queue", to)?;
        }
        let (_, mb) = self.queue_for(who, name, Right::Manage).await?;
        if let Some(to) = &to {
            self.queue_for(who, to, Right::Publish).await?;
        }
        let bound = self.mailboxes.next_id(&mb).await?;
        while self.mailboxes.take_for_redrive(&mb, to.as_deref(), &bound, 500).await? > 0 {}
        Ok(self.forward_outbox(&mb).await)
    }

    /// Periodic upkeep of queues (run by the leader): trims expired messages of idle queues,
    /// finishes outbox moves a crashed node left behind.
    pub(super) async fn sweep_queues(&self, token: u64) -> Result<()> {
        for (name, meta) in self.meta.list::<QueueMeta>() {
            let mb = self.mailboxes.queue(&name).fifo(meta.config.fifo);
            let (_, trimmed, outbox) =
                self.mailboxes.stats(&mb, meta.config.retention_s as u64 * 1000).await?;
            self.metrics.count(Event::Expired, KIND, &name, trimmed);
            if outbox > 0 && self.fenced(token).await {
                self.forward_outbox(&mb).await;
            }
        }
        Ok(())
    }

    /// Sets the depth gauges of every queue (called when `/metrics` is scraped).
    pub(super) async fn queue_gauges(&self) {
        for (name, meta) in self.meta.list::<QueueMeta>() {
            let mb = self.mailboxes.queue(&name).fifo(meta.config.fifo);
            if let Ok((s, _, _)) = self.mailboxes.stats(&mb, meta.config.retention_s as u64 * 1000).await {
                for (state, v) in
                    [("available", s.available), ("in_flight", s.in_flight), ("delayed", s.delayed)]
                {
                    self.metrics.depth.with_label_values(&[&name, state]).set(v as i64);
                }
            }
        }
    }
}

/// Checks one message against its destination's limits and serializes it.
pub(super) fn encode(dest: &str, max_bytes: u32, m: SendMessage, publisher: Option<&str>) -> Result<String> {
    m.validate()?;
    if m.body.len() > max_bytes as usize {
        return Err(Error::MessageTooLarge(format!(
            "the body has {} bytes; '{dest}' takes at most {max_bytes}",
            m.body.len()
        )));
    }
    let mut attributes = m.attributes;
    attributes.extend(m.system.into_iter().filter(|(k, _)| k.starts_with("mom.")));
    let payload =
        Payload { b: m.body, a: attributes, p: publisher.map(str::to_string), g: m.group, d: m.fifo_dedup };
    serde_json::to_string(&payload).map_err(|e| Error::invalid(e.to_string()))
}

/// What a FIFO queue requires of a send (the contract's FIFO section): a group; a dedup id, or
/// content-based deduplication (then the SHA-256 of the body, in hex, is the dedup id); no
/// per-message delay (the queue's `delay_s` applies, so a group's order is its send order).
fn fifo_checks(config: &QueueConfig, m: &mut SendMessage) -> Result<()> {
    if m.group.is_none() {
        return Err(Error::InvalidArgument("a send to a FIFO queue needs a group".into()));
    }
    if m.delay_s.is_some() {
        return Err(Error::InvalidArgument(
            "FIFO queues take no per-message delay_s (the queue's delay_s applies)".into(),
        ));
    }
    if m.dedup_id.is_none() {
        if !config.content_based_dedup {
            return Err(Error::InvalidArgument(
                "a send to a FIFO queue needs a dedup_id, unless the queue has content_based_dedup".into(),
            ));
        }
        m.dedup_id = Some(content_hash(&m.body));
    }
    m.fifo_dedup = m.dedup_id.clone();
    Ok(())
}

/// The content-based dedup id of a body: its SHA-256 in hex (as SQS computes it, over the body).
pub fn content_hash(body: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(body.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}
