//! Long polls waiting on this node, keyed by the mailbox they wait on (its *wake key*: `q/QUEUE`
//! for a queue, `s/TOPIC/SUB` for a subscription). Woken by announcements on the Redis
//! notification channel (`store::Redis::listen` hands each one to [`Waiters::announce`]), by one
//! timer per key, and by each other; never by polling Redis.
//!
//! One wake per message, not per waiter (issue 27). An announcement says how many messages became
//! receivable, and only that many waiters wake, oldest first: a waiter that can take `max`
//! messages counts for `max` of them. Three things keep a message from waiting while a consumer
//! sleeps:
//! - *Passing on*: a receive that took messages learns from `receive.lua` how many are still
//!   visible, and wakes waiters for those beyond what the wakes under way (woken, not yet looking)
//!   cover; and it passes on a wake that reached it during the receive, which may have looked
//!   before that wake's message was stored. That spreads messages that became visible at once,
//!   hands on wakes spent on a receive that took another message, and ends when the messages are
//!   taken; an empty receive never wakes anyone. A waiter that leaves holding a wake it did not
//!   act on (its wait ended, its client went away, its receive failed) passes it on too.
//! - *One timer per key*, at the earliest instant a message is known to become visible (a delay or
//!   a visibility deadline, reported by every receive and by announcements of delayed sends and
//!   nacks), wakes one waiter; passing on does the rest. Each waiter still wakes by its own
//!   deadline.
//! - When the notification subscription was lost, [`Waiters::wake_all`] wakes everyone once.
//!
//! A waiter keeps its place while it waits: one woken for a message another consumer took goes
//! back where it was, so the oldest waiter always gets the next wake and none starves.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// The waiters of this node, by wake key.
#[derive(Default, Clone)]
pub struct Waiters {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    map: Mutex<HashMap<String, Entry>>,
    /// Arrival order of tickets: a ticket keeps its number for its whole wait.
    seq: AtomicU64,
}

/// What waits on one key.
#[derive(Default)]
struct Entry {
    /// Tickets that may be woken (not woken since their last look), oldest first.
    queue: BTreeMap<u64, Arc<Slot>>,
    /// Live tickets, queued or woken.
    tickets: usize,
    /// Wakes under way, in messages: the `max` of every ticket woken that has not begun the
    /// receive answering the wake. Such a receive sees whatever is visible now; one already under
    /// way may have looked before a message was stored, so it does not count here (its ticket is
    /// back in line and can be woken again).
    promised: u64,
    /// Push streams waiting for room under `max_in_flight` (woken by acks and nacks, all at once).
    room: Arc<Room>,
    /// The key's timer: when it fires, and the task that will.
    timer: Option<(Instant, AbortHandle)>,
}

/// What push streams on one key hear of settled deliveries (issue 25): a wake, and which ids were
/// settled, so that a stream learns which of its deliveries ended without asking Redis. A settle
/// announces `KEY room ID...` (the deliveries it ended: acks, nacks, visibility 0); the ids are
/// kept while a stream holds the key's room (streams hold it for their whole life), the last
/// [`ROOM_LOG`] of them. What a stream cannot know from here it hears as incomplete
/// ([`Room::since`]): a bare `KEY room` (a FIFO queue's settle, a broker before this one), a wake
/// of everyone (a lost subscription), ids it fell too far behind to read.
#[derive(Default)]
pub struct Room {
    notify: Notify,
    log: Mutex<RoomLog>,
}

/// The settled ids a key's streams may still read: entry `i` has number `first + i`; `None` stands
/// for settles whose ids are unknown.
#[derive(Default)]
struct RoomLog {
    first: u64,
    entries: VecDeque<Option<String>>,
}

/// How many settled ids a key keeps for its streams.
pub const ROOM_LOG: usize = 4096;

/// What a stream heard since it last read a key's room.
#[derive(Debug, Default)]
pub struct Heard {
    /// Ids settled since.
    pub ids: Vec<String>,
    /// False when settles since may have ended deliveries not in `ids`: the stream must ask Redis.
    pub complete: bool,
}

impl Room {
    /// Register (`Notified::enable`) before reading [`Room::since`].
    pub fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }

    /// What was settled since `cursor` (`None`: this stream has never read; incomplete), and moves
    /// `cursor` past it.
    pub fn since(&self, cursor: &mut Option<u64>) -> Heard {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let end = log.first + log.entries.len() as u64;
        let heard = match *cursor {
            Some(c) if c >= log.first => {
                let mut heard = Heard { ids: Vec::new(), complete: true };
                for e in log.entries.range((c - log.first) as usize..) {
                    match e {
                        Some(id) => heard.ids.push(id.clone()),
                        None => heard.complete = false,
                    }
                }
                heard
            }
            _ => Heard::default(),
        };
        *cursor = Some(end);
        heard
    }

    /// Settles of `ids` (`None`: unknown ones) were announced; `kept`: a stream holds the room.
    fn settled<'a>(&self, ids: Option<impl Iterator<Item = &'a str>>, kept: bool) {
        if kept {
            let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            match ids {
                Some(ids) => log.entries.extend(ids.map(|id| Some(id.to_string()))),
                None => log.entries.push_back(None),
            }
            let over = log.entries.len().saturating_sub(ROOM_LOG);
            log.entries.drain(..over);
            log.first += over as u64;
        }
        self.notify.notify_waiters();
    }
}

/// A ticket's side that the entry holds.
struct Slot {
    /// Messages the waiter can take at once.
    max: u64,
    notify: Notify,
    /// Woken (taken off the queue) and not yet looked again: for how many messages; 0 when not.
    /// Written under the map's lock.
    woken: AtomicU64,
}

/// What one receive saw, for deciding whom else to wake.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen {
    /// Messages it took.
    pub got: usize,
    /// Messages still visible right after it.
    pub more: u64,
    /// When the next message becomes visible, as far as Redis knew.
    pub next_visible: Option<Instant>,
}

impl Waiters {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.inner.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place in line on `key` for a receive that can take `max` messages, taken *before* it
    /// first looks in Redis, so a message stored between the look and the wait still wakes it.
    /// Call [`Ticket::look`] before each receive and [`Ticket::looked`] after it.
    pub fn ticket(&self, key: &str, max: u32) -> Ticket<'_> {
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let slot =
            Arc::new(Slot { max: u64::from(max.max(1)), notify: Notify::new(), woken: AtomicU64::new(0) });
        let mut map = self.lock();
        let entry = map.entry(key.to_string()).or_default();
        entry.queue.insert(seq, slot.clone());
        entry.tickets += 1;
        Ticket { waiters: self, key: key.to_string(), seq, slot, answering: 0, done: false }
    }

    /// After a receive that waits for nothing (no ticket): wakes waiters for what it left
    /// visible, and arms the key's timer.
    pub fn seen(&self, key: &str, seen: &Seen) {
        let mut map = self.lock();
        let Some(entry) = map.get_mut(key) else { return };
        if seen.got > 0 {
            entry.wake(seen.more.saturating_sub(entry.promised));
        }
        if let Some(at) = seen.next_visible {
            self.arm(key, entry, at);
        }
    }

    /// What push streams on `key` hear of settles (see [`Room`]); a stream holds it for its life.
    pub fn room(&self, key: &str) -> Arc<Room> {
        self.lock().entry(key.to_string()).or_default().room.clone()
    }

    /// Handles one announcement from the notification channel: one or more lines, each
    /// - `KEY N`: N messages became receivable on KEY now; wakes waiters for N of them;
    /// - `KEY N D`: the same, and another one becomes visible in D ms (a delayed send or nack);
    /// - `KEY room ID...`: deliveries of these ids were settled (push streams waiting for room
    ///   re-check; the ids tell them which, see [`Room`]); bare, ids unknown;
    /// - `KEY *` or `KEY` alone: wakes everyone waiting on KEY. A bare key is the announcement of
    ///   brokers from before issue 27 (a rolling upgrade); their `t/TOPIC` wakes every
    ///   subscription of the topic.
    pub fn announce(&self, payload: &str) {
        let mut map = self.lock();
        for line in payload.lines() {
            let mut words = line.split(' ');
            let Some(key) = words.next().filter(|k| !k.is_empty()) else { continue };
            match words.next() {
                None => match key.strip_prefix("t/") {
                    Some(topic) => {
                        let prefix = format!("s/{topic}/");
                        map.iter_mut()
                            .filter(|(k, _)| k.starts_with(&prefix))
                            .for_each(|(_, e)| e.everyone());
                    }
                    None => map.get_mut(key).into_iter().for_each(Entry::everyone),
                },
                Some("room") => {
                    if let Some(e) = map.get(key) {
                        let kept = Arc::strong_count(&e.room) > 1;
                        let mut ids = words.filter(|w| !w.is_empty()).peekable();
                        let known = ids.peek().is_some();
                        e.room.settled(known.then_some(ids), kept);
                    }
                }
                Some(n) => {
                    let Some(entry) = map.get_mut(key) else { continue };
                    let (Ok(n), delay) = (n.parse::<u64>(), words.next().map(str::parse::<u64>)) else {
                        entry.everyone();
                        continue;
                    };
                    entry.wake(n);
                    match delay {
                        None => {}
                        Some(Ok(ms)) => {
                            self.arm(key, entry, Instant::now() + Duration::from_millis(ms.saturating_add(1)))
                        }
                        Some(Err(_)) => entry.everyone(),
                    }
                }
            }
        }
    }

    /// Wakes everyone waiting on `key` (e.g. its queue was deleted).
    pub fn wake(&self, key: &str) {
        if let Some(e) = self.lock().get_mut(key) {
            e.everyone();
        }
    }

    /// Wakes everyone on every key: announcements may have been lost.
    pub fn wake_all(&self) {
        self.lock().values_mut().for_each(Entry::everyone);
    }

    /// Forgets a deleted queue's key once nobody waits on it.
    pub fn forget(&self, key: &str) {
        let mut map = self.lock();
        if map.get(key).is_some_and(|e| e.tickets == 0 && Arc::strong_count(&e.room) == 1) {
            if let Some((_, timer)) = map.remove(key).and_then(|mut e| e.timer.take()) {
                timer.abort();
            }
        }
    }

    /// Makes the key's timer fire at `at` at the latest, while anyone waits on it. When it fires
    /// it wakes one waiter, whose receive passes on what else became visible.
    fn arm(&self, key: &str, entry: &mut Entry, at: Instant) {
        if entry.tickets == 0 || entry.timer.as_ref().is_some_and(|(t, _)| *t <= at) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let waiters = self.clone();
        let key = key.to_string();
        let task = runtime.spawn(async move {
            tokio::time::sleep_until(at).await;
            let mut map = waiters.lock();
            if let Some(entry) = map.get_mut(&key) {
                if entry.timer.as_ref().is_some_and(|(t, _)| *t == at) {
                    entry.timer = None;
                    entry.wake(1);
                }
            }
        });
        if let Some((_, old)) = entry.timer.replace((at, task.abort_handle())) {
            old.abort();
        }
    }

    /// Waiters on `key`: (queued, woken). For tests.
    #[cfg(test)]
    fn counts(&self, key: &str) -> (usize, usize) {
        self.lock().get(key).map_or((0, 0), |e| (e.queue.len(), e.tickets - e.queue.len()))
    }
}

impl Entry {
    /// Wakes the oldest queued waiters until they can take `messages` between them.
    fn wake(&mut self, messages: u64) {
        let mut left = messages;
        while left > 0 {
            let Some((_, slot)) = self.queue.pop_first() else { return };
            let share = left.min(slot.max);
            left -= share;
            self.woke(&slot, share);
        }
    }

    /// Wakes every queued waiter and every push stream waiting for room.
    fn everyone(&mut self) {
        while let Some((_, slot)) = self.queue.pop_first() {
            self.woke(&slot, 1);
        }
        let kept = Arc::strong_count(&self.room) > 1;
        self.room.settled(None::<std::iter::Empty<&str>>, kept);
    }

    /// Wakes a waiter taken off the queue, for `messages` of what was announced.
    fn woke(&mut self, slot: &Slot, messages: u64) {
        self.promised += slot.max;
        slot.woken.store(messages.max(1), Ordering::Relaxed);
        slot.notify.notify_one();
    }

    fn release(&mut self, max: u64) {
        self.promised = self.promised.saturating_sub(max);
    }
}

/// One long poll's place in line on a key (see [`Waiters::ticket`]). Dropping it leaves the
/// line, passing on a wake it had not acted on.
pub struct Ticket<'a> {
    waiters: &'a Waiters,
    key: String,
    seq: u64,
    slot: Arc<Slot>,
    /// The receive under way answers a wake for this many messages (0: it answers none).
    answering: u64,
    /// Left the line after a receive that took messages.
    done: bool,
}

impl Ticket<'_> {
    /// Before each receive: a ticket woken since its last look answers that wake with this
    /// receive, and goes back in line at its old place, so a wake during the receive reaches it.
    pub fn look(&mut self) {
        let mut map = self.waiters.lock();
        let Some(entry) = map.get_mut(&self.key) else { return };
        let woken = self.slot.woken.swap(0, Ordering::Relaxed);
        if woken > 0 {
            self.answering = woken;
            entry.release(self.slot.max);
            // The wake's permit, if `woken` did not take it (the wait ended another way). Under
            // the lock: no other wake can come in between.
            let _ = self.slot.notify.notified().now_or_never();
            entry.queue.insert(self.seq, self.slot.clone());
        }
    }

    /// After each receive. A receive that took messages leaves the line and wakes others for
    /// what it saw still visible beyond the wakes under way, and passes on a wake that came
    /// during it (it may have looked before that message was stored); every receive arms the
    /// key's timer at the next visible instant. True when this receive answered a wake.
    pub fn looked(&mut self, seen: &Seen) -> bool {
        let mut map = self.waiters.lock();
        let answered = std::mem::take(&mut self.answering) > 0;
        let Some(entry) = map.get_mut(&self.key) else { return answered };
        if seen.got > 0 && !self.done {
            self.done = true;
            let during = self.slot.woken.swap(0, Ordering::Relaxed);
            if during > 0 {
                entry.release(self.slot.max);
            } else {
                entry.queue.remove(&self.seq);
            }
            // Every receive that begins from now on sees what is visible, and one that leaves
            // some visible wakes others in turn: one is enough for what came during this one.
            entry.wake(seen.more.saturating_sub(entry.promised).max(during));
        }
        if let Some(at) = seen.next_visible {
            self.waiters.arm(&self.key, entry, at);
        }
        answered
    }

    /// Resolves when the ticket is woken (at once when it was woken during the last receive).
    pub async fn woken(&self) {
        self.slot.notify.notified().await
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut map = self.waiters.lock();
        let Some(entry) = map.get_mut(&self.key) else { return };
        // Wakes it holds and did not act on: the one its last receive was answering when it
        // ended early (an error, the client gone), and one that came after its last receive.
        let mut held = self.answering;
        if !self.done {
            let woken = self.slot.woken.load(Ordering::Relaxed);
            if woken > 0 {
                held += woken;
                entry.release(self.slot.max);
            } else {
                entry.queue.remove(&self.seq);
            }
        }
        entry.tickets = entry.tickets.saturating_sub(1);
        if entry.tickets == 0 {
            entry.promised = 0;
            if let Some((_, timer)) = entry.timer.take() {
                timer.abort();
            }
        }
        entry.wake(held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "q/a";

    fn woken(t: &Ticket<'_>) -> bool {
        t.woken().now_or_never().is_some()
    }

    fn got(n: usize, more: u64) -> Seen {
        Seen { got: n, more, next_visible: None }
    }

    #[tokio::test]
    async fn an_announcement_wakes_as_many_waiters_as_messages_oldest_first() {
        let w = Waiters::default();
        let tickets: Vec<_> = (0..5).map(|_| w.ticket(KEY, 1)).collect();
        w.announce("q/a 2");
        let states: Vec<bool> = tickets.iter().map(woken).collect();
        assert_eq!(states, [true, true, false, false, false]);
        assert_eq!(w.counts(KEY), (3, 2));
        // Other keys and other formats.
        w.announce("q/b 3");
        assert_eq!(w.counts(KEY), (3, 2));
        w.announce("q/a room");
        assert_eq!(w.counts(KEY), (3, 2));
        w.announce("q/a");
        assert_eq!(w.counts(KEY), (0, 5));
    }

    #[tokio::test]
    async fn a_waiter_that_takes_several_counts_for_several() {
        let w = Waiters::default();
        let big = w.ticket(KEY, 10);
        let small = w.ticket(KEY, 1);
        w.announce("q/a 3");
        assert!(woken(&big));
        assert!(!woken(&small));
    }

    #[tokio::test]
    async fn a_woken_waiter_that_found_nothing_keeps_its_place() {
        let w = Waiters::default();
        let mut first = w.ticket(KEY, 1);
        let second = w.ticket(KEY, 1);
        w.announce("q/a 1");
        assert!(woken(&first));
        first.look();
        assert!(first.looked(&got(0, 0)), "answered a wake");
        // Nothing passed on after an empty receive.
        assert!(!woken(&second));
        w.announce("q/a 1");
        assert!(woken(&first), "the oldest is woken again");
        assert!(!woken(&second));
    }

    #[tokio::test]
    async fn a_receive_that_leaves_messages_visible_passes_wakes_on() {
        let w = Waiters::default();
        let mut first = w.ticket(KEY, 1);
        let second = w.ticket(KEY, 1);
        let third = w.ticket(KEY, 1);
        let fourth = w.ticket(KEY, 1);
        w.announce("q/a 1");
        assert!(woken(&first));
        first.look();
        // Took one; two more are visible: two more wake.
        assert!(first.looked(&got(1, 2)));
        drop(first);
        assert!(woken(&second) && woken(&third));
        assert!(!woken(&fourth));
        assert_eq!(w.counts(KEY), (1, 2));
    }

    #[tokio::test]
    async fn wakes_under_way_are_not_doubled() {
        let w = Waiters::default();
        let mut first = w.ticket(KEY, 1);
        let second = w.ticket(KEY, 1);
        let third = w.ticket(KEY, 1);
        w.announce("q/a 2");
        assert!(woken(&first) && woken(&second));
        first.look();
        // One still visible, but the second waiter is on its way for it.
        first.looked(&got(1, 1));
        assert!(!woken(&third));
    }

    #[tokio::test]
    async fn a_wake_during_a_receive_that_took_another_message_is_passed_on() {
        let w = Waiters::default();
        let mut first = w.ticket(KEY, 1);
        let second = w.ticket(KEY, 1);
        first.look();
        // The announcement lands while the first waiter's receive is under way.
        w.announce("q/a 1");
        // Its receive took an older message; the announced one is still visible.
        first.looked(&got(1, 1));
        drop(first);
        assert!(woken(&second));
    }

    #[tokio::test]
    async fn a_wake_whose_receive_began_before_a_message_does_not_cover_it() {
        let w = Waiters::default();
        let mut older = w.ticket(KEY, 1);
        let mut younger = w.ticket(KEY, 1);
        // m1 and m2 wake both; both begin their receives.
        w.announce("q/a 1");
        w.announce("q/a 1");
        assert!(woken(&older) && woken(&younger));
        older.look();
        younger.look();
        // m3's announcement wakes the older one during its receive, which takes m1 and sees one
        // message still visible. The younger one's receive may have looked before m3 was stored:
        // it does not cover m3, so it is woken again.
        w.announce("q/a 1");
        older.looked(&got(1, 1));
        assert!(woken(&younger), "m3 has a waiter on its way");
    }

    #[tokio::test]
    async fn a_wake_during_a_receive_that_took_an_older_message_is_passed_on() {
        let w = Waiters::default();
        let mut first = w.ticket(KEY, 1);
        let second = w.ticket(KEY, 1);
        first.look();
        // m2's announcement wakes the first waiter while its receive, which looked before m2
        // was stored, takes m1 and sees nothing more.
        w.announce("q/a 1");
        first.looked(&got(1, 0));
        assert!(woken(&second), "m2 has a waiter on its way");
    }

    #[tokio::test]
    async fn a_waiter_leaving_with_a_wake_passes_it_on() {
        let w = Waiters::default();
        let first = w.ticket(KEY, 1);
        let second = w.ticket(KEY, 1);
        w.announce("q/a 1");
        drop(first);
        assert!(woken(&second));
        assert_eq!(w.counts(KEY), (0, 1));
        drop(second);
        assert_eq!(w.counts(KEY), (0, 0));
    }

    #[tokio::test]
    async fn a_failed_receive_passes_its_wake_on() {
        let w = Waiters::default();
        let mut first = w.ticket(KEY, 1);
        let second = w.ticket(KEY, 1);
        w.announce("q/a 1");
        assert!(woken(&first));
        first.look();
        drop(first);
        assert!(woken(&second));
    }

    #[tokio::test]
    async fn an_old_topic_announcement_wakes_every_subscription() {
        let w = Waiters::default();
        let a = w.ticket("s/t/a", 1);
        let b = w.ticket("s/t/b", 1);
        let other = w.ticket("s/u/a", 1);
        w.announce("t/t");
        assert!(woken(&a) && woken(&b));
        assert!(!woken(&other));
    }

    #[tokio::test]
    async fn lines_wake_each_subscription_for_its_own_messages() {
        let w = Waiters::default();
        let a: Vec<_> = (0..3).map(|_| w.ticket("s/t/a", 1)).collect();
        let b: Vec<_> = (0..3).map(|_| w.ticket("s/t/b", 1)).collect();
        w.announce("s/t/a 1\ns/t/b 2");
        assert_eq!(a.iter().filter(|t| woken(t)).count(), 1);
        assert_eq!(b.iter().filter(|t| woken(t)).count(), 2);
    }

    #[tokio::test]
    async fn room_wakes_streams_only() {
        let w = Waiters::default();
        let poll = w.ticket(KEY, 1);
        let room = w.room(KEY);
        let notified = room.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        w.announce("q/a room");
        assert!(notified.now_or_never().is_some());
        assert!(!woken(&poll));
    }

    #[tokio::test]
    async fn streams_hear_which_ids_were_settled_and_when_they_cannot_know() {
        let w = Waiters::default();
        // No stream holds the room: nothing is kept.
        w.announce("q/a room 1 2");
        let room = w.room(KEY);
        let mut cursor = None;
        // A stream's first read is incomplete: it must ask Redis once.
        let first = room.since(&mut cursor);
        assert!(!first.complete && first.ids.is_empty());
        w.announce("q/a room 3 4\nq/b room 5");
        w.announce("q/a room 6");
        let heard = room.since(&mut cursor);
        assert!(heard.complete);
        assert_eq!(heard.ids, ["3", "4", "6"]);
        let nothing = room.since(&mut cursor);
        assert!(nothing.complete && nothing.ids.is_empty());
        // A bare `room` (ids unknown) and a wake of everyone make it incomplete.
        w.announce("q/a room");
        w.announce("q/a room 7");
        let heard = room.since(&mut cursor);
        assert!(!heard.complete);
        assert_eq!(heard.ids, ["7"]);
        w.wake_all();
        assert!(!room.since(&mut cursor).complete);
        // A stream that fell more than ROOM_LOG ids behind cannot know either.
        let mut late = cursor;
        assert!(room.since(&mut cursor).complete);
        let many: Vec<String> = (0..ROOM_LOG + 1).map(|i| i.to_string()).collect();
        w.announce(&format!("q/a room {}", many.join(" ")));
        assert!(!room.since(&mut late).complete);
        let mut recent = Some(cursor.unwrap_or(0) + 1);
        let heard = room.since(&mut recent);
        assert!(heard.complete);
        assert_eq!(heard.ids.len(), ROOM_LOG);
    }

    #[tokio::test]
    async fn the_timer_wakes_one_waiter_at_the_next_visible_instant() {
        let w = Waiters::default();
        let mut first = w.ticket(KEY, 1);
        let second = w.ticket(KEY, 1);
        let armed = Instant::now();
        let at = armed + Duration::from_millis(200);
        first.looked(&Seen { got: 0, more: 0, next_visible: Some(at) });
        // A later instant does not move it.
        first.looked(&Seen { got: 0, more: 0, next_visible: Some(at + Duration::from_secs(1)) });
        tokio::time::timeout(Duration::from_secs(2), first.woken()).await.expect("the timer fired");
        assert!(Instant::now() >= at, "fired {:?} after arming", armed.elapsed());
        assert!(!woken(&second));
        // An announced delay arms it too.
        let announced = Instant::now();
        w.announce("q/a 0 100");
        tokio::time::timeout(Duration::from_secs(2), second.woken()).await.expect("the timer fired");
        assert!(announced.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn the_timer_stops_when_nobody_waits() {
        let w = Waiters::default();
        let mut t = w.ticket(KEY, 1);
        t.looked(&Seen { got: 0, more: 0, next_visible: Some(Instant::now() + Duration::from_secs(1)) });
        drop(t);
        assert!(w.lock().get(KEY).is_some_and(|e| e.timer.is_none()));
        w.forget(KEY);
        assert!(w.lock().get(KEY).is_none());
    }

    /// A model of one node's long polls against a queue, with other consumers (another node's
    /// waiters, receives that do not wait) taking messages at any moment, and messages becoming
    /// visible together with one timer wake for them all: in every interleaving tried,
    /// once the announcements are in and the woken waiters have run, no message is left visible
    /// while a waiter sleeps.
    #[tokio::test]
    async fn no_interleaving_leaves_a_message_while_a_waiter_sleeps() {
        enum St {
            Ready { leaving: bool },
            Transit { got: u64, more: u64, leaving: bool },
            Sleeping,
        }
        struct Poll<'a> {
            t: Ticket<'a>,
            st: St,
            max: u64,
        }
        // A waiter's next step; false when it sleeps with no wake.
        fn step(p: &mut Poll<'_>, visible: &mut u64) -> Option<bool> {
            match p.st {
                St::Ready { leaving } => {
                    p.t.look();
                    let got = (*visible).min(p.max);
                    *visible -= got;
                    let more = if got == p.max { *visible } else { 0 };
                    p.st = St::Transit { got, more, leaving };
                    Some(true)
                }
                St::Transit { got, more, leaving } => {
                    p.t.looked(&got_more(got as usize, more));
                    if got > 0 || leaving {
                        return None;
                    }
                    p.st = St::Sleeping;
                    Some(true)
                }
                St::Sleeping => {
                    if woken(&p.t) {
                        p.st = St::Ready { leaving: false };
                        Some(true)
                    } else {
                        Some(false)
                    }
                }
            }
        }
        fn got_more(got: usize, more: u64) -> Seen {
            Seen { got, more, next_visible: None }
        }
        let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        for run in 0..50_000u64 {
            let w = Waiters::default();
            let mut visible = 0u64;
            let mut announcements = std::collections::VecDeque::new();
            let mut polls: Vec<Poll<'_>> = Vec::new();
            for _ in 0..next(if run % 4 == 0 { 100 } else { 25 }) + 5 {
                match next(20) {
                    0 | 1 if polls.len() < 4 => {
                        let max = next(3) + 1;
                        polls.push(Poll {
                            t: w.ticket(KEY, max as u32),
                            st: St::Ready { leaving: false },
                            max,
                        });
                    }
                    2 | 3 => {
                        let k = next(2) + 1;
                        visible += k;
                        announcements.push_back(k);
                    }
                    10 => {
                        // Several become visible at once (a delay or visibility deadline): the
                        // key's timer wakes one waiter.
                        visible += next(3) + 1;
                        announcements.push_back(1);
                    }
                    4..=6 => {
                        if let Some(k) = announcements.pop_front() {
                            w.announce(&format!("{KEY} {k}"));
                        }
                    }
                    7 if visible > 0 => {
                        // A receive that does not wait (or another node's waiter) takes one.
                        visible -= 1;
                        w.seen(KEY, &got_more(1, visible));
                    }
                    8 if !polls.is_empty() => {
                        // A client goes away, whatever its waiter was doing.
                        polls.swap_remove(next(polls.len() as u64) as usize);
                    }
                    9 if !polls.is_empty() => {
                        // A wait ends: one last receive, then the answer.
                        let i = next(polls.len() as u64) as usize;
                        if let St::Sleeping = polls[i].st {
                            polls[i].st = St::Ready { leaving: true };
                        }
                    }
                    _ if !polls.is_empty() => {
                        let i = next(polls.len() as u64) as usize;
                        if step(&mut polls[i], &mut visible).is_none() {
                            polls.swap_remove(i);
                        }
                    }
                    _ => {}
                }
            }
            while let Some(k) = announcements.pop_front() {
                w.announce(&format!("{KEY} {k}"));
            }
            loop {
                let mut progress = false;
                let mut i = 0;
                while i < polls.len() {
                    match step(&mut polls[i], &mut visible) {
                        None => {
                            polls.swap_remove(i);
                            progress = true;
                        }
                        Some(moved) => {
                            progress |= moved;
                            i += 1;
                        }
                    }
                }
                if !progress {
                    break;
                }
            }
            assert!(
                polls.is_empty() || visible == 0,
                "{visible} message(s) visible while {} waiter(s) sleep",
                polls.len()
            );
        }
    }
}
