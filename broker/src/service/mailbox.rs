//! What queues and subscriptions share: receive (with long polling), ack, nack, visibility,
//! and moving dead letters on. Queue and topic operations call these; nothing here is copied.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use tokio::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Broker, Principal};
use crate::error::{Error, Result};
use crate::message_id;
use crate::meta::QueueMeta;
use crate::metrics::Event;
use crate::model::{rfc3339_ms, Attributes, Message, ReceiveRequest, MAX_BATCH, MAX_VISIBILITY_S};
use crate::receipt::ReceiptKey;
use crate::store::{Mailbox, Outgoing, RawDelivery, ReceiveParams, Settle, STREAM_MARK_RENEW};
use crate::waiters::{Room, Seen};

pub const SOURCE_ATTR: &str = "mom.source_queue";

/// A message as stored: body, attributes, and who sent or published it; serialized once.
#[derive(Serialize, Deserialize)]
pub struct Payload {
    pub b: String,
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub a: Attributes,
    /// The sender's user name (on topics, what `no_local` compares); absent in messages sent to a
    /// queue before brokers recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<String>,
    /// Its message group, when sent with one (FIFO queues, fair queues); it follows the message
    /// through dead-lettering and redrive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub g: Option<String>,
    /// FIFO queues: the dedup id it was stored under (SQS `MessageDeduplicationId` on receive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
}

/// How a mailbox delivers: the settings of its queue or subscription.
pub struct Delivering<'a> {
    pub visibility_s: u32,
    pub max_receives: Option<u32>,
    pub dead_letter_queue: Option<&'a str>,
    pub retention_s: u32,
}

/// The most unacked deliveries one push stream may ask for (`max_in_flight`, gRPC `credit`) on
/// the routes that bound it: what a stream tracks is kept in memory and re-checked in one script
/// call when it is full, so the credit a client can claim is bounded like every other resource.
pub const MAX_IN_FLIGHT: usize = 1000;

/// How often a stream looks again at a delivery past its deadline that is still in flight (its
/// consumer extended it).
const EXTENDED_RECHECK: Duration = Duration::from_secs(1);

/// Checks a stream's bound on unacked deliveries: 1 to [`MAX_IN_FLIGHT`], or none.
pub fn check_in_flight(field: &str, n: Option<usize>) -> Result<()> {
    match n {
        Some(n) if !(1..=MAX_IN_FLIGHT).contains(&n) => {
            Err(Error::InvalidArgument(format!("{field} must be between 1 and {MAX_IN_FLIGHT}, got {n}")))
        }
        _ => Ok(()),
    }
}

/// One server-push stream of a mailbox (a queue or a subscription): the token it was opened with
/// (re-checked as it goes, so a revoked token ends it on every front door), the deliveries it made
/// that may still be unacked, and the long-poll slot of its user that it holds until it is
/// dropped. It keeps nothing but ids: a dropped stream releases nothing early (its deliveries come
/// back after their visibility timeout or ack deadline) and loses nothing.
pub struct Stream {
    max_in_flight: Option<usize>,
    token: String,
    /// Id, delivery number and (local) deadline of each delivery that may still be unacked.
    tracked: Vec<(String, u64, Instant)>,
    credit: Arc<Credit>,
    /// When this stream last marked its mailbox as streamed (`MailboxStore::mark_streaming`).
    marked: Option<Instant>,
    /// What it hears of settles on its mailbox (held for its life, so the ids are kept for it),
    /// and how far it has read.
    room: Option<Arc<Room>>,
    heard: Option<u64>,
    _slot: super::held::Slot,
}

impl Stream {
    /// The credit granted to this stream after it opened, for the task that reads the client's
    /// requests (gRPC `Consume`) while another drives the stream.
    pub fn credit(&self) -> Arc<Credit> {
        self.credit.clone()
    }

    /// The bound on unacked deliveries now: the opening one plus what was granted since, at most
    /// [`MAX_IN_FLIGHT`]; `None`: unbounded.
    fn bound(&self) -> Option<usize> {
        self.max_in_flight
            .map(|m| m.saturating_add(self.credit.granted.load(Ordering::Acquire)).min(MAX_IN_FLIGHT))
    }
}

/// Credit granted to an open stream (gRPC `Consume`'s `credit` on a settle batch): shared between
/// the reader of the client's requests and the stream, which a grant wakes when it is full.
#[derive(Default)]
pub struct Credit {
    granted: AtomicUsize,
    changed: Notify,
}

impl Credit {
    /// Grants `more`; the stream's bound stays at most [`MAX_IN_FLIGHT`].
    pub fn grant(&self, more: usize) {
        if more == 0 {
            return;
        }
        let _ = self.granted.fetch_update(Ordering::AcqRel, Ordering::Acquire, |g| {
            Some(g.saturating_add(more).min(MAX_IN_FLIGHT))
        });
        // A stored permit when nobody waits: a grant between two rounds is never missed.
        self.changed.notify_one();
    }
}

/// What one round of a push stream came to.
pub(super) enum Step {
    /// Messages to push.
    Messages(Vec<Message>),
    /// Nothing yet (a wait ended, room came back): look the mailbox up again and go on.
    Again,
    /// The node is draining, or the stream's token was revoked.
    Ended,
}

/// Metric labels of a mailbox: kind and name.
#[derive(Clone, Copy)]
pub struct Label<'a>(pub &'static str, pub &'a str);

pub fn check_count(what: &str, n: usize) -> Result<()> {
    if (1..=MAX_BATCH).contains(&n) {
        Ok(())
    } else {
        Err(Error::invalid(format!("{what} must hold 1 to {MAX_BATCH} entries, got {n}")))
    }
}

fn check_seconds(field: &str, v: u32) -> Result<()> {
    if v <= MAX_VISIBILITY_S {
        Ok(())
    } else {
        Err(Error::invalid(format!("{field} must be between 0 and {MAX_VISIBILITY_S}, got {v}")))
    }
}

/// What a settle request asks, in the API's seconds. [`Ask::checked`] runs before anything is
/// looked up, so a malformed request is a 400 whichever queue or subscription it names.
#[derive(Debug, Clone, Copy)]
pub(super) enum Ask {
    Ack,
    Nack { delay_s: u32 },
    Visibility { timeout_s: u32 },
}

impl Ask {
    /// The store's settle for `receipts` receipts: 1 to `MAX_BATCH` of them, seconds in range.
    pub(super) fn checked(self, receipts: usize) -> Result<Settle> {
        check_count("receipts", receipts)?;
        Ok(match self {
            Ask::Ack => Settle::Ack,
            Ask::Nack { delay_s } => {
                check_seconds("delay_s", delay_s)?;
                Settle::Nack { delay_ms: delay_s as u64 * 1000 }
            }
            Ask::Visibility { timeout_s } => {
                check_seconds("visibility_timeout_s", timeout_s)?;
                Settle::Visibility { timeout_ms: timeout_s as u64 * 1000 }
            }
        })
    }
}

/// The sequence number of store id `id` (`%016d`): the number without its padding.
pub fn sequence(id: &str) -> String {
    let digits = id.trim_start_matches('0');
    if digits.is_empty() {
        "0".to_string()
    } else {
        digits.to_string()
    }
}

fn to_message(key: &ReceiptKey, mb: &Mailbox, d: RawDelivery) -> Message {
    let receive_count = d.receive_count();
    let (body, attributes, sender, group, dedup_id) = match serde_json::from_str::<Payload>(&d.payload) {
        Ok(p) => (p.b, p.a, p.p, p.g, p.d),
        Err(_) => (d.payload, Attributes::new(), None, None, None),
    };
    // A FIFO queue's sequence numbers are its store ids: increasing within a group (and across).
    let sequence = mb.is_fifo().then(|| sequence(&d.id));
    Message {
        receipt: key.issue(&mb.scope, &d.id, d.delivery),
        id: message_id::external(mb.id_space(), &d.id),
        body,
        attributes,
        receive_count,
        sent_at: rfc3339_ms(d.sent_ms),
        group,
        sequence,
        dedup_id,
        sender,
        first_received_ms: d.first_ms,
    }
}

impl Broker {
    /// Receives up to `max` messages, holding the request up to `wait_s` while none is available.
    /// The caller has checked `req.limits()` and access. Before it first waits it takes one of
    /// `holder`'s long-poll slots (429 when they are all taken), kept until it answers or is
    /// dropped; `None`: the caller holds one already (a push stream).
    pub(super) async fn receive_from(
        &self,
        mb: &Mailbox,
        label: Label<'_>,
        cfg: &Delivering<'_>,
        req: &ReceiveRequest,
        holder: Option<&str>,
    ) -> Result<Vec<Message>> {
        let (max, wait_s) = req.limits()?;
        let key = self.meta.receipt_key()?;
        let params = ReceiveParams {
            max,
            visibility_ms: req.visibility_timeout_s.unwrap_or(cfg.visibility_s) as u64 * 1000,
            max_receives: cfg.max_receives,
            dead_letter_queue: cfg.dead_letter_queue,
            retention_ms: cfg.retention_s as u64 * 1000,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait_s as u64);
        // A place in line on the mailbox, taken before the first look so that a message stored
        // between the look and the wait still wakes it; a receive that cannot wait needs none.
        let mut ticket = (wait_s > 0).then(|| self.waiters.ticket(&mb.wake_key, max));
        let mut slot = None;
        loop {
            if let Some(t) = ticket.as_mut() {
                t.look();
            }
            let got = self.mailboxes.receive(mb, &params).await?;
            self.metrics.count(Event::Expired, label.0, label.1, got.trimmed);
            if got.dead_lettered > 0 {
                self.metrics.count(Event::DeadLettered, label.0, label.1, got.dead_lettered);
                self.forward_outbox(mb).await;
            }
            let now = tokio::time::Instant::now();
            // Whom else to wake for what is still visible, and when the key's timer fires.
            let seen = Seen {
                got: got.deliveries.len(),
                more: got.more,
                next_visible: got
                    .next_visible_ms
                    .map(|next| now + Duration::from_millis((next - got.now_ms).max(0) as u64 + 1)),
            };
            match ticket.as_mut() {
                Some(t) => {
                    if t.looked(&seen) && got.deliveries.is_empty() {
                        self.metrics.receive_empty_wakes.inc();
                    }
                }
                None => self.waiters.seen(&mb.wake_key, &seen),
            }
            let waiting = match &ticket {
                Some(t) if got.deliveries.is_empty() && now < deadline && !self.draining.is_cancelled() => t,
                _ => {
                    self.metrics.count(Event::Received, label.0, label.1, got.deliveries.len() as u64);
                    return Ok(got.deliveries.into_iter().map(|d| to_message(&key, mb, d)).collect());
                }
            };
            if slot.is_none() {
                if let Some(user) = holder {
                    slot = Some(self.held.take(user)?);
                }
            }
            // Sleep until woken (an announcement, the key's timer, another waiter passing a wake
            // on), the end of the wait, or a drain.
            tokio::select! {
                _ = waiting.woken() => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = self.draining.cancelled() => {}
            }
        }
    }

    /// Opens a push stream for `who` once the caller has checked the mailbox and the right to
    /// consume: takes one of the user's long-poll slots for the stream's life (429 when none is left).
    pub(super) fn new_stream(
        &self,
        who: &Principal,
        max_in_flight: Option<usize>,
        token: String,
    ) -> Result<Stream> {
        let slot = self.held.take(&who.name)?;
        Ok(Stream {
            max_in_flight,
            token,
            tracked: Vec::new(),
            credit: Arc::default(),
            marked: None,
            room: None,
            heard: None,
            _slot: slot,
        })
    }

    /// One round of a push stream on `mb`: waits until at least one message is available and the
    /// stream has room under its `max_in_flight` (woken by the mailbox's notifications: new
    /// messages, and `room` when deliveries are settled; never by polling), then receives at most
    /// that room, so a slow consumer never makes the broker take more than its credit.
    pub(super) async fn stream_step(
        &self,
        mb: &Mailbox,
        label: Label<'_>,
        cfg: &Delivering<'_>,
        st: &mut Stream,
    ) -> Result<Step> {
        if self.draining.is_cancelled() {
            return Ok(Step::Ended);
        }
        // Listen before looking at what is in flight, so an ack landing in between wakes us.
        let room = st.room.get_or_insert_with(|| self.waiters.room(&mb.wake_key)).clone();
        let notified = room.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let credit = st.credit.clone();
        let granted = credit.changed.notified();
        tokio::pin!(granted);
        let room = match st.bound() {
            None => MAX_BATCH,
            Some(max) => {
                if st.tracked.len() >= max {
                    self.settled_since(mb, st, &room, max).await?;
                }
                max.saturating_sub(st.tracked.len()).min(MAX_BATCH)
            }
        };
        if room == 0 {
            // Full: wait for a delivery of the mailbox to be settled (acked, nacked, made visible
            // again), the first deadline to pass, a drain, or the time to renew the mark.
            let first_deadline = st.tracked.iter().map(|t| t.2).min().unwrap_or_else(Instant::now);
            tokio::select! {
                _ = notified => {}
                _ = granted => {}
                _ = tokio::time::sleep_until(first_deadline) => {}
                _ = tokio::time::sleep(STREAM_MARK_RENEW) => {}
                _ = self.draining.cancelled() => {}
            }
            return Ok(Step::Again);
        }
        let req = ReceiveRequest { max: Some(room as u32), wait_s: Some(20), visibility_timeout_s: None };
        // The stream holds its long-poll slot (taken in `new_stream`) for its whole life.
        let messages = self.receive_from(mb, label, cfg, &req, None).await?;
        // A token revoked while the stream was open ends it: what it just took comes back after
        // the visibility timeout, to a consumer that is still allowed.
        if self.authenticate(&st.token).is_err() {
            return Ok(Step::Ended);
        }
        if messages.is_empty() {
            return Ok(Step::Again);
        }
        if st.bound().is_some() {
            let key = self.meta.receipt_key()?;
            let deadline = Instant::now() + Duration::from_secs(cfg.visibility_s as u64);
            for m in &messages {
                if let Ok(d) = key.verify(&mb.scope, &m.receipt) {
                    st.tracked.push((d.id, d.delivery, deadline));
                }
            }
        }
        Ok(Step::Messages(messages))
    }

    /// Drops from a full stream's deliveries those that ended: the ids settles announced
    /// ([`Room`]) say which, so a stream whose consumer acks as it goes never asks Redis. It asks
    /// (which of them are still in flight) only when that cannot be known from here: the first
    /// time, right after (re)marking the mailbox (settles before the mark announced nothing), when
    /// what it heard is incomplete (see [`Room::since`]), or when a delivery's deadline passed
    /// (timed out, or extended: only Redis knows).
    async fn settled_since(&self, mb: &Mailbox, st: &mut Stream, room: &Room, max: usize) -> Result<()> {
        let heard = room.since(&mut st.heard);
        if !heard.ids.is_empty() {
            let ended: HashSet<&str> = heard.ids.iter().map(String::as_str).collect();
            st.tracked.retain(|(id, _, _)| !ended.contains(id.as_str()));
        }
        if st.tracked.len() < max {
            return Ok(());
        }
        let mut ask = !heard.complete;
        // Settles announce `room` only while a stream marked the mailbox: mark it before looking
        // at what is in flight, so no ack after the look goes unheard.
        if st.marked.is_none_or(|at| at.elapsed() >= STREAM_MARK_RENEW) {
            self.mailboxes.mark_streaming(mb).await?;
            st.marked = Some(Instant::now());
            ask = true;
        }
        let now = Instant::now();
        if ask || st.tracked.iter().any(|t| t.2 <= now) {
            let pairs: Vec<(String, u64)> = st.tracked.iter().map(|(id, d, _)| (id.clone(), *d)).collect();
            let live = self.mailboxes.in_flight(mb, &pairs).await?;
            let mut live = live.into_iter();
            st.tracked.retain_mut(|t| {
                let live = live.next().unwrap_or(false);
                // Past its deadline and still in flight: extended. Look again in a second
                // rather than at once (its new deadline is Redis's to know).
                if live && t.2 <= now {
                    t.2 = now + EXTENDED_RECHECK;
                }
                live
            });
        }
        Ok(())
    }

    /// Verifies receipts; the valid ones go to the store in one call. One result per receipt.
    pub(super) async fn settle_in(
        &self,
        mb: &Mailbox,
        label: Label<'_>,
        how: Settle,
        receipts: &[String],
    ) -> Result<Vec<Result<()>>> {
        let key = self.meta.receipt_key()?;
        let checked: Vec<Result<(String, u64)>> =
            receipts.iter().map(|r| key.verify(&mb.scope, r).map(|d| (d.id, d.delivery))).collect();
        let valid: Vec<(String, u64)> = checked.iter().filter_map(|c| c.as_ref().ok().cloned()).collect();
        let done = self.mailboxes.settle(mb, how, &valid).await?;
        if done.contains(&true) {
            self.announce_to_older(&mb.older_wake_key).await;
        }
        let mut done = done.into_iter();
        let results: Vec<Result<()>> = checked
            .into_iter()
            .map(|c| match c {
                Ok(_) if done.next() == Some(true) => Ok(()),
                Ok(_) => Err(Error::ReceiptInvalid),
                Err(e) => Err(e),
            })
            .collect();
        if let Settle::Ack = how {
            self.metrics.count(
                Event::Acked,
                label.0,
                label.1,
                results.iter().filter(|r| r.is_ok()).count() as u64,
            );
        }
        Ok(results)
    }

    /// Moves what waits in a mailbox's outbox to its target queues (step two of a dead-letter or
    /// redrive move); returns how many arrived at another queue. Failures stay in the outbox for
    /// the next sweep.
    pub async fn forward_outbox(&self, mb: &Mailbox) -> u64 {
        let Ok(entries) = self.mailboxes.outbox(mb).await else { return 0 };
        let source_queue = mb.scope.strip_prefix("q/");
        let mut moved = 0;
        for t in entries {
            let Ok(mut p) = serde_json::from_str::<Payload>(&t.payload) else {
                tracing::error!(mailbox = %mb.scope, id = %t.id, "dropping an unreadable outbox entry");
                let _ = self.mailboxes.outbox_done(mb, &t.id).await;
                continue;
            };
            // `p` stays: who sent it (SQS `SenderId`), the publisher for a topic's message.
            let target = if t.kind == "dlq" {
                p.a.insert(SOURCE_ATTR.into(), source_queue.unwrap_or(&mb.scope).to_string());
                t.target
            } else {
                let source = p.a.remove(SOURCE_ATTR);
                if t.target.is_empty() {
                    source.unwrap_or_default()
                } else {
                    t.target
                }
            };
            // A target that vanished: a redrive goes back where it was; a dead letter waits.
            let group = p.g.clone();
            let (target_mb, payload) = if let Some(q) = self.meta.get_versioned::<QueueMeta>(&target) {
                (
                    self.mailboxes.queue(&target).at(q.stamp.czxid).fifo(q.value.config.fifo),
                    serde_json::to_string(&p).unwrap_or_default(),
                )
            } else if t.kind == "dlq" {
                tracing::warn!(mailbox = %mb.scope, dead_letter_queue = %target, "dead-letter queue missing; keeping message in the outbox");
                continue;
            } else {
                (mb.clone(), t.payload)
            };
            let dedup = Some(self.mailboxes.transfer_key(&target_mb, mb, &t.id));
            if let Err(e) =
                self.mailboxes.send(&target_mb, vec![Outgoing { payload, delay_ms: 0, dedup, group }]).await
            {
                tracing::warn!(mailbox = %mb.scope, error = %e, "outbox transfer failed; will retry");
                return moved;
            }
            self.announce_to_older(&target_mb.older_wake_key).await;
            if self.mailboxes.outbox_done(mb, &t.id).await.is_ok() && target_mb.scope != mb.scope {
                self.metrics.count(Event::Sent, "queue", &target, 1);
                moved += 1;
            }
        }
        moved
    }
}
