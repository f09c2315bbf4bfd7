//! Queue operations: point to point, at-least-once, competing consumers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::access::{self, Right};
use super::{Broker, Principal};
use crate::error::{Error, Result};
use crate::meta::{Grant, QueueMeta};
use crate::metrics::Event;
use crate::model::{
    now_ms, rfc3339_ms, validate_name, Attributes, Message, QueueConfig, QueueInfo, QueueSpec, ReceiveRequest,
    SendMessage, Sent, MAX_BATCH, MAX_VISIBILITY_S,
};
use crate::store::{Outgoing, QueueStore, RawDelivery, ReceiveParams, Settle};

const KIND: &str = "queue";
const SOURCE_ATTR: &str = "mom.source_queue";

/// A message as stored: body and attributes, serialized once on send.
#[derive(Serialize, Deserialize)]
struct Payload {
    b: String,
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    a: Attributes,
}

fn receipt_scope(queue: &str) -> String {
    format!("q/{queue}")
}

fn info(name: &str, meta: QueueMeta) -> QueueInfo {
    QueueInfo { name: name.to_string(), config: meta.config, owner: meta.owner, created_at: meta.created_at, stats: None }
}

fn check_count(what: &str, n: usize) -> Result<()> {
    if (1..=MAX_BATCH).contains(&n) {
        Ok(())
    } else {
        Err(Error::invalid(format!("{what} must hold 1 to {MAX_BATCH} entries, got {n}")))
    }
}

impl Broker {
    /// The queue's metadata if `who` has `right` on it: 400 for a bad name, then 404, then 403.
    fn queue_for(&self, who: &Principal, name: &str, right: Right) -> Result<QueueMeta> {
        validate_name("queue", name)?;
        let meta = self.meta.queue(name).ok_or_else(|| Error::QueueNotFound(name.to_string()))?;
        access::check(who, &meta, right, &format!("queue '{name}'"))?;
        Ok(meta)
    }

    /// A dead-letter queue must exist, differ from the queue, and take the caller's messages.
    fn check_dead_letter_queue(&self, who: &Principal, name: &str, config: &QueueConfig) -> Result<()> {
        let Some(dlq) = config.dead_letter_queue.as_deref() else { return Ok(()) };
        if dlq == name {
            return Err(Error::invalid("a queue cannot be its own dead_letter_queue"));
        }
        let Some(target) = self.meta.queue(dlq) else {
            return Err(Error::invalid(format!("dead_letter_queue '{dlq}' does not exist")));
        };
        access::check(who, &target, Right::Publish, &format!("queue '{dlq}'"))
    }

    /// Creates a queue; `true` when created, `false` when it existed with the same config.
    pub async fn create_queue(&self, who: &Principal, name: &str, spec: QueueSpec) -> Result<(QueueInfo, bool)> {
        validate_name("queue", name)?;
        let config = spec.apply(QueueConfig::default())?;
        self.check_dead_letter_queue(who, name, &config)?;
        let meta = QueueMeta { config, owner: who.name.clone(), created_at: rfc3339_ms(now_ms()), grants: Default::default() };
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
        let meta = self.queue_for(who, name, Right::View)?;
        let retention_ms = meta.config.retention_s as u64 * 1000;
        let (stats, trimmed, _) = self.queues.stats(name, retention_ms).await?;
        self.metrics.count(Event::Expired, KIND, name, trimmed);
        Ok(QueueInfo { stats: Some(stats), ..info(name, meta) })
    }

    pub async fn patch_queue(&self, who: &Principal, name: &str, spec: QueueSpec) -> Result<QueueInfo> {
        self.queue_for(who, name, Right::Manage)?;
        let meta = self
            .meta
            .update(name, |mut meta: QueueMeta| {
                meta.config = spec.clone().apply(meta.config)?;
                self.check_dead_letter_queue(who, name, &meta.config)?;
                Ok(meta)
            })
            .await?;
        Ok(info(name, meta))
    }

    pub async fn delete_queue(&self, who: &Principal, name: &str) -> Result<()> {
        self.queue_for(who, name, Right::Manage)?;
        // Metadata first: once the znode is gone no node accepts new sends for it.
        self.meta.delete::<QueueMeta>(name).await?;
        self.queues.purge(name).await?;
        self.metrics.forget(KIND, name);
        self.waiters.wake(&QueueStore::wake_key(name));
        self.waiters.forget(&QueueStore::wake_key(name));
        Ok(())
    }

    pub async fn purge_queue(&self, who: &Principal, name: &str) -> Result<()> {
        self.queue_for(who, name, Right::Manage)?;
        self.queues.purge(name).await
    }

    /// Grants `user` rights on a queue (replacing earlier ones); `None` revokes.
    pub async fn grant_queue(&self, who: &Principal, name: &str, user: &str, grant: Option<Grant>) -> Result<()> {
        validate_name("queue", name)?;
        self.require_user(user)?;
        self.queue_for(who, name, Right::Manage)?;
        self.meta
            .update(name, |mut meta: QueueMeta| {
                match grant {
                    Some(g) => meta.grants.insert(user.to_string(), g),
                    None => meta.grants.remove(user),
                };
                Ok(meta)
            })
            .await?;
        Ok(())
    }

    /// Sends messages, each checked on its own: the answer holds one result per message, in order.
    pub async fn send(&self, who: &Principal, name: &str, messages: Vec<SendMessage>) -> Result<Vec<Result<Sent>>> {
        check_count("messages", messages.len())?;
        let meta = self.queue_for(who, name, Right::Publish)?;
        let mut results: Vec<Option<Result<Sent>>> = Vec::with_capacity(messages.len());
        let mut outgoing = Vec::with_capacity(messages.len());
        for m in messages {
            match self.prepare(name, &meta.config, m) {
                Ok(o) => {
                    outgoing.push(o);
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let mut stored = self.queues.send(name, outgoing).await?.into_iter();
        let results: Vec<Result<Sent>> = results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    let (id, created) = stored.next().ok_or_else(|| Error::Unavailable("short reply from the store".into()))?;
                    Ok(Sent { id, created })
                })
            })
            .collect();
        let created = results.iter().filter(|r| matches!(r, Ok(s) if s.created)).count();
        self.metrics.count(Event::Sent, KIND, name, created as u64);
        Ok(results)
    }

    fn prepare(&self, name: &str, config: &QueueConfig, m: SendMessage) -> Result<Outgoing> {
        m.validate()?;
        if m.body.len() > config.max_message_bytes as usize {
            return Err(Error::MessageTooLarge(format!(
                "the body has {} bytes; queue '{name}' takes at most {}",
                m.body.len(),
                config.max_message_bytes
            )));
        }
        let delay_s = m.delay_s.unwrap_or(config.delay_s);
        let dedup = m.dedup_id.as_deref().map(|d| self.queues.dedup_key(name, d));
        let payload = serde_json::to_string(&Payload { b: m.body, a: m.attributes })
            .map_err(|e| Error::invalid(e.to_string()))?;
        Ok(Outgoing { payload, delay_ms: delay_s as u64 * 1000, dedup })
    }

    /// Receives up to `max` messages, holding the request up to `wait_s` while none is available.
    pub async fn receive(&self, who: &Principal, name: &str, req: ReceiveRequest) -> Result<Vec<Message>> {
        let (max, wait_s) = req.limits()?;
        let meta = self.queue_for(who, name, Right::Consume)?;
        let key = self.meta.receipt_key()?;
        let config = &meta.config;
        let params = ReceiveParams {
            max,
            visibility_ms: req.visibility_timeout_s.unwrap_or(config.visibility_timeout_s) as u64 * 1000,
            max_receives: config.max_receives,
            dead_letter_queue: config.dead_letter_queue.as_deref(),
            retention_ms: config.retention_s as u64 * 1000,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait_s as u64);
        let notify = self.waiters.get(&QueueStore::wake_key(name));
        loop {
            // Register before looking, so a send between the look and the wait still wakes us.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let got = self.queues.receive(name, &params).await?;
            self.metrics.count(Event::Expired, KIND, name, got.trimmed);
            if got.dead_lettered > 0 {
                self.metrics.count(Event::DeadLettered, KIND, name, got.dead_lettered);
                self.forward_outbox(name).await;
            }
            let now = tokio::time::Instant::now();
            if !got.deliveries.is_empty() || now >= deadline || self.draining.is_cancelled() {
                self.metrics.count(Event::Received, KIND, name, got.deliveries.len() as u64);
                let scope = receipt_scope(name);
                return Ok(got.deliveries.into_iter().map(|d| to_message(&key, &scope, d)).collect());
            }
            // Sleep until a notification, the next visibility deadline, the end of the wait, or a drain.
            let wake_at = match got.next_visible_ms {
                Some(next) => deadline.min(now + Duration::from_millis((next - got.now_ms).max(0) as u64 + 1)),
                None => deadline,
            };
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(wake_at) => {}
                _ = self.draining.cancelled() => {}
            }
        }
    }

    /// Verifies receipts; the valid ones go to the store in one call. One result per receipt.
    async fn settle(&self, name: &str, how: Settle, receipts: &[String]) -> Result<Vec<Result<()>>> {
        let key = self.meta.receipt_key()?;
        let scope = receipt_scope(name);
        let checked: Vec<Result<(String, u32)>> = receipts
            .iter()
            .map(|r| key.verify(&scope, r).map(|d| (d.id, d.receive_count)))
            .collect();
        let valid: Vec<(String, u32)> = checked.iter().filter_map(|c| c.as_ref().ok().cloned()).collect();
        let mut done = self.queues.settle(name, how, &valid).await?.into_iter();
        Ok(checked
            .into_iter()
            .map(|c| match c {
                Ok(_) if done.next() == Some(true) => Ok(()),
                Ok(_) => Err(Error::ReceiptInvalid),
                Err(e) => Err(e),
            })
            .collect())
    }

    pub async fn ack(&self, who: &Principal, name: &str, receipts: Vec<String>) -> Result<Vec<Result<()>>> {
        check_count("receipts", receipts.len())?;
        self.queue_for(who, name, Right::Consume)?;
        let results = self.settle(name, Settle::Ack, &receipts).await?;
        self.metrics.count(Event::Acked, KIND, name, results.iter().filter(|r| r.is_ok()).count() as u64);
        Ok(results)
    }

    pub async fn nack(&self, who: &Principal, name: &str, receipts: Vec<String>, delay_s: u32) -> Result<Vec<Result<()>>> {
        check_count("receipts", receipts.len())?;
        check_seconds("delay_s", delay_s)?;
        self.queue_for(who, name, Right::Consume)?;
        self.settle(name, Settle::Nack { delay_ms: delay_s as u64 * 1000 }, &receipts).await
    }

    /// Changes the visibility timeout of one delivery, counted from now.
    pub async fn extend(&self, who: &Principal, name: &str, receipt: String, timeout_s: u32) -> Result<()> {
        check_seconds("visibility_timeout_s", timeout_s)?;
        self.queue_for(who, name, Right::Consume)?;
        let how = Settle::Visibility { timeout_ms: timeout_s as u64 * 1000 };
        self.settle(name, how, &[receipt]).await?.pop().unwrap_or(Err(Error::ReceiptInvalid))
    }

    /// Moves every dead letter that is not in flight to `to`, or back to its source queue.
    pub async fn redrive(&self, who: &Principal, name: &str, to: Option<String>) -> Result<u64> {
        if let Some(to) = &to {
            validate_name("queue", to)?;
        }
        self.queue_for(who, name, Right::Manage)?;
        if let Some(to) = &to {
            self.queue_for(who, to, Right::Publish)?;
        }
        let bound = self.queues.next_id(name).await?;
        while self.queues.take_for_redrive(name, to.as_deref(), &bound, 500).await? > 0 {}
        Ok(self.forward_outbox(name).await)
    }

    /// Moves what waits in a queue's outbox to its targets (step two of a dead-letter or redrive
    /// move); returns how many arrived at another queue. Failures stay in the outbox for the
    /// next sweep.
    pub async fn forward_outbox(&self, name: &str) -> u64 {
        let entries = match self.queues.outbox(name).await {
            Ok(e) => e,
            Err(_) => return 0,
        };
        let mut moved = 0;
        for t in entries {
            let Ok(mut p) = serde_json::from_str::<Payload>(&t.payload) else {
                tracing::error!(queue = name, id = %t.id, "dropping an unreadable outbox entry");
                let _ = self.queues.outbox_done(name, &t.id).await;
                continue;
            };
            let target = if t.kind == "dlq" {
                p.a.insert(SOURCE_ATTR.into(), name.into());
                t.target
            } else {
                let source = p.a.remove(SOURCE_ATTR);
                if t.target.is_empty() { source.unwrap_or_else(|| name.to_string()) } else { t.target }
            };
            // A target that vanished: a redrive goes back where it was; a dead letter waits.
            let (target, payload) = if self.meta.queue(&target).is_some() {
                (target, serde_json::to_string(&p).unwrap_or_default())
            } else if t.kind == "dlq" {
                tracing::warn!(queue = name, dead_letter_queue = %target, "dead-letter queue missing; keeping message in the outbox");
                continue;
            } else {
                (name.to_string(), t.payload)
            };
            let dedup = Some(self.queues.transfer_key(&target, name, &t.id));
            let out = Outgoing { payload, delay_ms: 0, dedup };
            if let Err(e) = self.queues.send(&target, vec![out]).await {
                tracing::warn!(queue = name, error = %e, "outbox transfer failed; will retry");
                return moved;
            }
            if self.queues.outbox_done(name, &t.id).await.is_ok() && target != name {
                self.metrics.count(Event::Sent, KIND, &target, 1);
                moved += 1;
            }
        }
        moved
    }

    /// Periodic upkeep (run by the leader): trims expired messages of idle queues, finishes
    /// outbox moves a crashed node left behind.
    pub async fn sweep(&self) {
        for (name, meta) in self.meta.list::<QueueMeta>() {
            match self.queues.stats(&name, meta.config.retention_s as u64 * 1000).await {
                Ok((_, trimmed, outbox)) => {
                    self.metrics.count(Event::Expired, KIND, &name, trimmed);
                    if outbox > 0 {
                        self.forward_outbox(&name).await;
                    }
                }
                Err(_) => return,
            }
        }
    }

    /// Sets the depth gauges of every queue (called when `/metrics` is scraped).
    pub async fn refresh_gauges(&self) {
        for (name, meta) in self.meta.list::<QueueMeta>() {
            if let Ok((s, _, _)) = self.queues.stats(&name, meta.config.retention_s as u64 * 1000).await {
                for (state, v) in [("available", s.available), ("in_flight", s.in_flight), ("delayed", s.delayed)] {
                    self.metrics.depth.with_label_values(&[&name, state]).set(v as i64);
                }
            }
        }
    }
}

fn check_seconds(field: &str, v: u32) -> Result<()> {
    if v <= MAX_VISIBILITY_S {
        Ok(())
    } else {
        Err(Error::invalid(format!("{field} must be between 0 and {MAX_VISIBILITY_S}, got {v}")))
    }
}

fn to_message(key: &crate::receipt::ReceiptKey, scope: &str, d: RawDelivery) -> Message {
    let (body, attributes) = match serde_json::from_str::<Payload>(&d.payload) {
        Ok(p) => (p.b, p.a),
        Err(_) => (d.payload, Attributes::new()),
    };
    Message {
        receipt: key.issue(scope, &d.id, d.receive_count),
        id: d.id,
        body,
        attributes,
        receive_count: d.receive_count,
        sent_at: rfc3339_ms(d.sent_ms),
    }
}

