//! Peeking at a mailbox: what it holds in one state, read without touching anything. Kept apart
//! from `mailbox.rs` (an inherent `impl Mailbox` may live in any module of the crate) because it
//! is the one mailbox read that must never change a receive count, a visibility deadline or the
//! order of delivery, so its script (`lua/peek.lua`) is read-only.

use std::sync::LazyLock;

use redis::Script;

use super::mailbox::{Mailbox, EPOCH};
use super::Redis;
use crate::error::{Error, Result};

static PEEK: LazyLock<Script> = lua_script!("common.lua"; "peek.lua");

/// Which messages a peek looks at, as `GET /v1/queues/{name}/messages?state=` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeekState {
    /// Receivable now (a receive would take these, in this order).
    Available,
    /// Received and neither acked nor back yet.
    InFlight,
    /// Sent with a delay (or nacked with one) that has not ended.
    Delayed,
}

impl PeekState {
    /// The word the script and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            PeekState::Available => "available",
            PeekState::InFlight => "in_flight",
            PeekState::Delayed => "delayed",
        }
    }
}

/// One message as a peek found it.
#[derive(Debug)]
pub struct Peeked {
    /// The store's id (the decimal sequence; converted for clients by the service).
    pub id: String,
    pub payload: String,
    pub receive_count: u32,
    pub sent_ms: i64,
    /// When it is (or was) visible from, in ms by Redis's clock.
    pub visible_ms: i64,
}

impl Mailbox {
    /// Up to `limit` messages of this mailbox in `state`, changing nothing; messages past
    /// `retention_ms` are skipped (the next receive or stats call trims them).
    pub async fn peek(
        &self,
        redis: &Redis,
        state: PeekState,
        limit: u32,
        retention_ms: u64,
    ) -> Result<Vec<Peeked>> {
        let mut inv = PEEK.prepare_invoke();
        for k in self.keys() {
            inv.key(k);
        }
        // ARGV[1] of `common.lua` ("owns its payloads") matters only to scripts that remove.
        inv.arg("0").arg(state.as_str()).arg(limit).arg(retention_ms);
        type Reply = (i64, Vec<(String, String, u64, String, String)>);
        let (_now, raw): Reply = inv.invoke_async(&mut redis.conn()?).await.map_err(Error::redis)?;
        Ok(raw
            .into_iter()
            .map(|(id, payload, delivery, sent, visible)| Peeked {
                id,
                payload,
                receive_count: (delivery % EPOCH) as u32,
                sent_ms: sent.parse::<f64>().unwrap_or(0.0) as i64,
                visible_ms: visible.parse::<f64>().unwrap_or(0.0) as i64,
            })
            .collect())
    }
}
