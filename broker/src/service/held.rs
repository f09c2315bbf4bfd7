//! Long polls and push streams held per user on this node (`MOM_MAX_LONG_POLLS_PER_USER`).
//!
//! A held receive costs the node a task and a connection for up to 20 s, a push stream for as long
//! as the client likes; without a bound one user could hold them all and starve everyone else. A
//! [`Slot`] is taken only when a receive is about to wait (one that finds messages at once never
//! counts) or when a stream opens, and is given back when it is dropped: when the request answers,
//! and also when the client goes away, since the server then drops the request's future with the
//! slot inside it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// The per-user counts of one node.
pub struct Held {
    /// Slots one user may hold at once; 0: no limit.
    max: usize,
    per_user: Mutex<HashMap<String, usize>>,
    metrics: Arc<Metrics>,
}

impl Held {
    pub fn new(max: usize, metrics: Arc<Metrics>) -> Self {
        Held { max, per_user: Mutex::new(HashMap::new()), metrics }
    }

    /// A slot for `user`, or `TooManyLongPolls` (429 `rate_limited`) when the user holds `max`.
    pub fn take(self: &Arc<Self>, user: &str) -> Result<Slot> {
        let mut map = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(user.to_string()).or_insert(0);
        if self.max > 0 && *n >= self.max {
            drop(map);
            self.metrics.long_polls_refused.inc();
            return Err(Error::TooManyLongPolls { max: self.max });
        }
        *n += 1;
        self.metrics.long_polls_held.inc();
        Ok(Slot { held: self.clone(), user: user.to_string() })
    }

    /// How many slots `user` holds now.
    pub fn count(&self, user: &str) -> usize {
        self.per_user.lock().unwrap_or_else(|e| e.into_inner()).get(user).copied().unwrap_or(0)
    }
}

/// One held long poll or stream; gives its place back when dropped.
pub struct Slot {
    held: Arc<Held>,
    user: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.held.per_user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.user);
            }
        }
        self.held.metrics.long_polls_held.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_at_the_limit_is_refused_until_a_slot_is_dropped_and_others_are_unaffected() {
        let held = Arc::new(Held::new(2, Arc::new(Metrics::new())));
        let a = held.take("bob").expect("first");
        let _b = held.take("bob").expect("second");
        assert!(matches!(held.take("bob"), Err(Error::TooManyLongPolls { max: 2 })));
        let _c = held.take("alice").expect("another user");
        drop(a);
        assert_eq!(held.count("bob"), 1);
        let _d = held.take("bob").expect("after a slot came back");
    }

    #[test]
    fn zero_means_no_limit() {
        let held = Arc::new(Held::new(0, Arc::new(Metrics::new())));
        let slots: Vec<Slot> = (0..1000).map(|_| held.take("bob").expect("unlimited")).collect();
        assert_eq!(held.count("bob"), 1000);
        drop(slots);
        assert_eq!(held.count("bob"), 0);
    }
}
