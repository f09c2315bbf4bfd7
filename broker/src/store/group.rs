//! Group commit: concurrent writes to one mailbox ride together in one script call.
//!
//! A single send costs Redis 14–22 µs inside the send script plus a round trip, while the same
//! script storing a batch costs far less per message (BENCHMARKS.md, "Findings" §2). So sends to
//! one mailbox that arrive while a send script call for it is in flight wait in a queue of
//! *groups*, and the next call carries a whole group. There is no timer: when nothing is in
//! flight a send goes out at once, alone, so an idle broker answers as fast as before.
//!
//! Settles (acks, nacks, visibility changes) ride the same way: an ack's script call costs Redis
//! a round trip, the script's start and its clock and room checks whoever else acks on the
//! mailbox, so concurrent acks share one call (`MailboxStore::settle`).
//!
//! [`Lanes::call`] makes the calls: the caller that finds nothing in flight leads, and a task
//! drives what queued behind it. One *lane* per mailbox (and kind of write) exists while a call
//! for it is in flight; its presence is the "busy" flag, and it holds the groups waiting for the
//! next call, oldest first. A caller's messages are never split over two
//! calls and keep their order; callers keep their arrival order (a caller only joins the newest
//! group). Each caller gets exactly its own replies back; an error of a combined call reaches
//! every caller in it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// Bounds of one combined call: messages (as many as one batch request may carry) and bytes of
/// payload. A caller alone may go over the byte bound (its own batch is stored as before); others
/// join a group only while it stays under both, so a combined call is never larger than a batch
/// and never holds Redis's single thread much longer than one.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub messages: usize,
    pub bytes: usize,
    /// A caller with this many messages or more calls at once, alone, whatever is in flight: its
    /// call amortises its own overhead, and queueing it behind another call would only add that
    /// call's round trip to its wait (a stream taking 100 messages, an ack of 50).
    pub alone: usize,
}

/// The lanes of one kind of write, keyed by mailbox.
pub struct Lanes<M, R> {
    bounds: Bounds,
    lanes: Mutex<HashMap<String, VecDeque<Group<M, R>>>>,
}

/// Messages of one or more callers, to be stored by one call.
pub struct Group<M, R> {
    messages: Vec<M>,
    bytes: usize,
    callers: Vec<Caller<R>>,
}

/// One caller waiting in a group: how many of the group's messages are its own (in order), and
/// where its replies go.
struct Caller<R> {
    count: usize,
    reply: oneshot::Sender<Result<Vec<R>>>,
}

/// What a caller does after [`Lanes::join`].
pub enum Joined<M, R> {
    /// Nothing was in flight for the mailbox: the caller makes the call with its own messages,
    /// then must call [`Lanes::release`] (whatever happens, also when its future is dropped).
    Lead(Vec<M>),
    /// A call is in flight: the messages wait in a group; the answer comes through here.
    Queued(Waiting<R>),
}

/// A queued caller's answer to come.
pub struct Waiting<R>(oneshot::Receiver<Result<Vec<R>>>);

impl<M: Send + 'static, R: Send + 'static> Lanes<M, R> {
    /// Makes a call with `messages` (`bytes` long) on the lane `key`, or with other callers'
    /// messages too, and returns this caller's replies. When nothing is in flight on the lane the
    /// call goes out at once with just these messages (`now`, which may borrow); otherwise they
    /// wait, with those of other callers arriving meanwhile, and the next call carries them all
    /// (within the bounds), made by a task of its own that keeps going while groups wait: a caller
    /// that goes away (client disconnect, its future dropped) never strands the others. `later`
    /// builds that task's (owned) call; it runs only when groups wait behind this caller's call,
    /// so a call that goes out alone copies nothing.
    pub async fn call<N, NFut, L, F, Fut>(
        self: &Arc<Self>,
        key: &str,
        messages: Vec<M>,
        bytes: usize,
        now: N,
        later: L,
    ) -> Result<Vec<R>>
    where
        N: FnOnce(Vec<M>) -> NFut,
        NFut: Future<Output = Result<Vec<R>>>,
        L: FnOnce() -> F,
        F: Fn(Vec<M>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<R>>> + Send + 'static,
    {
        if messages.len() >= self.bounds.alone {
            return now(messages).await;
        }
        match self.join(key, messages, bytes) {
            Joined::Queued(waiting) => waiting.answer().await,
            Joined::Lead(messages) => {
                // Dropped when the call ends, or with this future: either way, whatever queued
                // behind this call goes out next.
                let _turn = Turn { lanes: self, key, later: Some(later) };
                now(messages).await
            }
        }
    }

    /// Makes the calls of the groups waiting on `key` one after another, until none waits.
    async fn drive<F, Fut>(self: Arc<Self>, key: String, call: F)
    where
        F: Fn(Vec<M>) -> Fut,
        Fut: Future<Output = Result<Vec<R>>>,
    {
        let mut guard = Driving { lanes: &self, key: &key, done: false };
        while let Some(mut group) = self.next(&key) {
            let messages = group.take();
            tracing::trace!(lane = %key, messages = messages.len(), callers = group.callers(), "combined call");
            group.answer(call(messages).await);
        }
        guard.done = true;
    }
}

/// A call that went out at once (see [`Lanes::call`]). When it ends, however it ends, it hands
/// the lane on: closed when nothing waits, else to a task making the calls of what waits.
struct Turn<'a, M, R, L, F, Fut>
where
    M: Send + 'static,
    R: Send + 'static,
    L: FnOnce() -> F,
    F: Fn(Vec<M>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<R>>> + Send + 'static,
{
    lanes: &'a Arc<Lanes<M, R>>,
    key: &'a str,
    later: Option<L>,
}

impl<M, R, L, F, Fut> Drop for Turn<'_, M, R, L, F, Fut>
where
    M: Send + 'static,
    R: Send + 'static,
    L: FnOnce() -> F,
    F: Fn(Vec<M>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<R>>> + Send + 'static,
{
    fn drop(&mut self) {
        if self.lanes.release(self.key) {
            return;
        }
        match (tokio::runtime::Handle::try_current(), self.later.take()) {
            (Ok(rt), Some(later)) => drop(rt.spawn(self.lanes.clone().drive(self.key.to_string(), later()))),
            // No runtime (being torn down): nothing can make the call; its callers hear
            // `unavailable` rather than wait forever.
            _ => self.lanes.abandon(self.key),
        }
    }
}

/// The task making a lane's waiting calls. Should it stop early (a panic, or the runtime shutting
/// down), the lane is closed and its waiting callers answered `unavailable`, so later calls on
/// the lane lead again instead of queueing behind a driver that is gone.
struct Driving<'a, M, R> {
    lanes: &'a Lanes<M, R>,
    key: &'a str,
    done: bool,
}

impl<M, R> Drop for Driving<'_, M, R> {
    fn drop(&mut self) {
        if !self.done {
            self.lanes.abandon(self.key);
        }
    }
}

impl<R> Waiting<R> {
    pub async fn answer(self) -> Result<Vec<R>> {
        // The sender goes away unanswered only when the driver died (a panic, or the runtime
        // shutting down): the messages may or may not have been stored.
        self.0.await.unwrap_or_else(|_| {
            Err(Error::Unavailable(
                "the write was interrupted; it may have been stored: retry with the same dedup_id to store it at most once"
                    .into(),
            ))
        })
    }
}

impl<M, R> Lanes<M, R> {
    pub fn new(bounds: Bounds) -> Self {
        Lanes { bounds, lanes: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Group<M, R>>>> {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leads when nothing is in flight for `key` (the lane is opened, i.e. marked busy), else
    /// queues `messages` (`bytes` long in all) into the newest group if they fit, or a new one.
    pub fn join(&self, key: &str, messages: Vec<M>, bytes: usize) -> Joined<M, R> {
        let mut lanes = self.lock();
        let Some(lane) = lanes.get_mut(key) else {
            lanes.insert(key.to_string(), VecDeque::new());
            return Joined::Lead(messages);
        };
        let (tx, rx) = oneshot::channel();
        let caller = Caller { count: messages.len(), reply: tx };
        let bounds = self.bounds;
        match lane.back_mut() {
            Some(g)
                if g.messages.len() + messages.len() <= bounds.messages
                    && g.bytes + bytes <= bounds.bytes =>
            {
                g.messages.extend(messages);
                g.bytes += bytes;
                g.callers.push(caller);
            }
            _ => lane.push_back(Group { messages, bytes, callers: vec![caller] }),
        }
        Joined::Queued(Waiting(rx))
    }

    /// Called when a call for `key` ended: `true` when nothing waits and the lane is closed (the
    /// next write leads), `false` when groups wait and the caller must drive them
    /// ([`Lanes::next`] until it answers `None`).
    pub fn release(&self, key: &str) -> bool {
        let mut lanes = self.lock();
        match lanes.get(key) {
            Some(lane) if !lane.is_empty() => false,
            _ => {
                lanes.remove(key);
                true
            }
        }
    }

    /// The next group to store for `key`, without the messages of callers that went away (their
    /// client disconnected before the call: not storing them is what the client saw). `None`:
    /// nothing waits, and the lane is closed.
    pub fn next(&self, key: &str) -> Option<Group<M, R>> {
        let mut lanes = self.lock();
        loop {
            let Some(mut group) = lanes.get_mut(key).and_then(VecDeque::pop_front) else {
                lanes.remove(key);
                return None;
            };
            group.prune();
            if !group.messages.is_empty() {
                return Some(group);
            }
        }
    }

    /// Closes the lane of `key` and drops whatever waits in it: each waiting caller gets
    /// `unavailable`. For a driver that cannot go on (no runtime to run on, or dying).
    pub fn abandon(&self, key: &str) {
        let dropped = self.lock().remove(key);
        if let Some(groups) = dropped {
            if !groups.is_empty() {
                tracing::warn!(mailbox = key, groups = groups.len(), "group commit abandoned waiting writes");
            }
        }
    }
}

impl<M, R> Group<M, R> {
    /// The messages to store, in order: each caller's in its own order, callers in arrival order.
    pub fn take(&mut self) -> Vec<M> {
        std::mem::take(&mut self.messages)
    }

    /// How many callers share the group.
    pub fn callers(&self) -> usize {
        self.callers.len()
    }

    /// Hands each caller its own replies (`result` holds one per message taken, in order), or the
    /// error of the call to each of them.
    pub fn answer(self, result: Result<Vec<R>>) {
        let expected: usize = self.callers.iter().map(|c| c.count).sum();
        let replies = match result {
            Ok(r) if r.len() == expected => r,
            Ok(r) => {
                tracing::warn!(expected, got = r.len(), "short reply from the store to a combined write");
                let e = Error::Unavailable("short reply from the store".into());
                return self.callers.into_iter().for_each(|c| drop(c.reply.send(Err(e.clone()))));
            }
            Err(e) => return self.callers.into_iter().for_each(|c| drop(c.reply.send(Err(e.clone())))),
        };
        let mut replies = replies.into_iter();
        for c in self.callers {
            // A caller that went away meanwhile simply does not hear its answer.
            let _ = c.reply.send(Ok(replies.by_ref().take(c.count).collect()));
        }
    }

    /// Drops the callers that stopped waiting, and their messages.
    fn prune(&mut self) {
        if !self.callers.iter().any(|c| c.reply.is_closed()) {
            return;
        }
        let mut messages = std::mem::take(&mut self.messages).into_iter();
        let mut kept = Vec::with_capacity(messages.len());
        self.callers.retain(|c| {
            let mine = messages.by_ref().take(c.count);
            if c.reply.is_closed() {
                mine.for_each(drop);
                false
            } else {
                kept.extend(mine);
                true
            }
        });
        self.messages = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lanes() -> Lanes<u32, u32> {
        Lanes::new(Bounds { messages: 4, bytes: 100, alone: usize::MAX })
    }

    fn queued(j: Joined<u32, u32>) -> Waiting<u32> {
        match j {
            Joined::Queued(w) => w,
            Joined::Lead(_) => panic!("expected to queue"),
        }
    }

    #[tokio::test]
    async fn the_first_leads_the_others_share_groups_within_bounds_and_get_their_own_replies() {
        let l = lanes();
        assert!(matches!(l.join("q", vec![1], 1), Joined::Lead(m) if m == vec![1]));
        let a = queued(l.join("q", vec![2, 3], 2));
        let b = queued(l.join("q", vec![4], 1));
        // Over the message bound: a new group.
        let c = queued(l.join("q", vec![5, 6], 2));
        // Another mailbox is independent.
        assert!(matches!(l.join("other", vec![9], 1), Joined::Lead(_)));
        assert!(!l.release("q"));
        let mut g = l.next("q").expect("a group");
        assert_eq!(g.callers(), 2);
        let taken = g.take();
        assert_eq!(taken, vec![2, 3, 4]);
        g.answer(Ok(taken.iter().map(|m| m * 10).collect()));
        assert_eq!(a.answer().await.ok(), Some(vec![20, 30]));
        assert_eq!(b.answer().await.ok(), Some(vec![40]));
        let mut g = l.next("q").expect("a second group");
        assert_eq!(g.take(), vec![5, 6]);
        g.answer(Err(Error::Unavailable("down".into())));
        assert!(matches!(c.answer().await, Err(Error::Unavailable(_))));
        assert!(l.next("q").is_none());
        // The lane closed: the next write leads again.
        assert!(matches!(l.join("q", vec![7], 1), Joined::Lead(_)));
        assert!(l.release("q"));
        assert!(l.release("other"));
    }

    #[tokio::test]
    async fn the_byte_bound_starts_a_new_group_and_a_short_reply_fails_everyone() {
        let l = lanes();
        assert!(matches!(l.join("q", vec![1], 1), Joined::Lead(_)));
        let a = queued(l.join("q", vec![2], 60));
        let b = queued(l.join("q", vec![3], 60));
        let mut g = l.next("q").expect("a group");
        assert_eq!(g.take(), vec![2]);
        g.answer(Ok(vec![]));
        assert!(matches!(a.answer().await, Err(Error::Unavailable(_))));
        l.abandon("q");
        assert!(matches!(b.answer().await, Err(Error::Unavailable(_))));
    }

    #[tokio::test]
    async fn callers_that_went_away_are_left_out_of_the_call() {
        let l = lanes();
        assert!(matches!(l.join("q", vec![1], 1), Joined::Lead(_)));
        let a = queued(l.join("q", vec![2], 1));
        let gone = queued(l.join("q", vec![3, 4], 1));
        let c = queued(l.join("q", vec![5], 1));
        drop(gone);
        let mut g = l.next("q").expect("a group");
        assert_eq!(g.callers(), 2);
        assert_eq!(g.take(), vec![2, 5]);
        g.answer(Ok(vec![20, 50]));
        assert_eq!(a.answer().await.ok(), Some(vec![20]));
        assert_eq!(c.answer().await.ok(), Some(vec![50]));
        // A group whose callers all went away is skipped.
        assert!(matches!(l.join("q", vec![6], 1), Joined::Queued(_)));
        assert!(l.next("q").is_none());
    }
}
