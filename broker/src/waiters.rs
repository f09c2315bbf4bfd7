//! Long polls waiting on this node, keyed by what they wait on (`q/NAME`). Woken by the Redis
//! notification channel, never by polling Redis.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

#[derive(Default)]
pub struct Waiters {
    map: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Waiters {
    /// The notifier for `key`. Register interest (`Notified::enable`) *before* checking Redis, so
    /// that a send landing between the check and the wait still wakes the waiter.
    pub fn get(&self, key: &str) -> Arc<Notify> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key.to_string()).or_default().clone()
    }

    pub fn wake(&self, key: &str) {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get(key) {
            n.notify_waiters();
        }
    }

    pub fn wake_all(&self) {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for n in map.values() {
            n.notify_waiters();
        }
    }

    /// Forgets a deleted queue's notifier once nobody waits on it.
    pub fn forget(&self, key: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(key).is_some_and(|n| Arc::strong_count(n) == 1) {
            map.remove(key);
        }
    }
}
