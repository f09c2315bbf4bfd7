//! Peeking at a queue: `GET /v1/queues/{name}/messages?limit=N&state=...`. What an operator (and
//! the web console) uses to see what a queue holds without disturbing its consumers: no receipt is
//! issued, and no visibility deadline, receive count or order changes.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::access::Right;
use super::mailbox::Payload;
use super::{Broker, Principal};
use crate::error::{Error, Result};
use crate::message_id;
use crate::model::{rfc3339_ms, validate_queue_name, Attributes};
use crate::store::{PeekState, Peeked};

/// Messages a peek returns unless `limit` says otherwise.
pub const DEFAULT_PEEK_LIMIT: u32 = 10;
/// The most one peek returns (a receive's batch bound).
pub const MAX_PEEK_LIMIT: u32 = crate::model::MAX_BATCH as u32;

/// The query of a peek, as sent; checked by [`PeekQuery::parse`] so that a bad value is a 400 in
/// the API's words rather than a deserializer's.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeekQuery {
    /// 1 to 100 (default 10). Taken as text so that a bad value is answered by [`PeekQuery::parse`].
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `available` (default), `in_flight` or `delayed`.
    pub state: Option<String>,
}

impl PeekQuery {
    pub fn parse(&self) -> Result<(PeekState, u32)> {
        let state = match self.state.as_deref().unwrap_or("available") {
            "available" => PeekState::Available,
            "in_flight" => PeekState::InFlight,
            "delayed" => PeekState::Delayed,
            other => {
                return Err(Error::invalid(format!(
                    "state must be available, in_flight or delayed, got '{other}'"
                )))
            }
        };
        let limit = match self.limit.as_deref() {
            None => DEFAULT_PEEK_LIMIT,
            Some(text) => {
                text.parse::<u32>().ok().filter(|n| (1..=MAX_PEEK_LIMIT).contains(n)).ok_or_else(|| {
                    Error::invalid(format!("limit must be 1 to {MAX_PEEK_LIMIT}, got '{text}'"))
                })?
            }
        };
        Ok((state, limit))
    }
}

/// A message as a peek shows it: as a receive would, without a receipt, plus when it is (or
/// becomes) visible.
#[derive(Debug, Serialize, ToSchema)]
pub struct PeekedMessage {
    pub id: String,
    pub body: String,
    pub attributes: Attributes,
    pub receive_count: u32,
    pub sent_at: String,
    /// When a receive may take it: in the past for an available message, the visibility deadline
    /// of an in-flight one, the end of the delay of a delayed one.
    pub visible_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PeekedMessages {
    pub messages: Vec<PeekedMessage>,
}

impl Broker {
    /// Up to `limit` messages of queue `name` in `state`. Reading a queue's messages is consuming
    /// them in all but effect, so it takes the right to consume (owner, admin, a consume grant,
    /// or any user on an `authenticated` queue); 400 for a bad query, then 404, then 403.
    pub async fn peek(&self, who: &Principal, name: &str, query: &PeekQuery) -> Result<Vec<PeekedMessage>> {
        validate_queue_name("queue", name)?;
        let (state, limit) = query.parse()?;
        let (meta, mb) = self.queue_for(who, name, Right::Consume).await?;
        let found = mb.peek(&self.redis, state, limit, meta.config.retention_s as u64 * 1000).await?;
        Ok(found.into_iter().map(|p| shown(mb.id_space(), p)).collect())
    }
}

fn shown(id_space: i64, p: Peeked) -> PeekedMessage {
    let (body, attributes) = match serde_json::from_str::<Payload>(&p.payload) {
        Ok(stored) => (stored.b, stored.a),
        Err(_) => (p.payload, Attributes::new()),
    };
    PeekedMessage {
        id: message_id::external(id_space, &p.id),
        body,
        attributes,
        receive_count: p.receive_count,
        sent_at: rfc3339_ms(p.sent_ms),
        visible_at: rfc3339_ms(p.visible_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(limit: Option<&str>, state: Option<&str>) -> PeekQuery {
        PeekQuery { limit: limit.map(str::to_string), state: state.map(str::to_string) }
    }

    #[test]
    fn defaults_to_ten_available() {
        assert_eq!(query(None, None).parse().ok(), Some((PeekState::Available, DEFAULT_PEEK_LIMIT)));
    }

    #[test]
    fn takes_each_state_and_limits_from_1_to_100() {
        assert_eq!(query(Some("1"), Some("in_flight")).parse().ok(), Some((PeekState::InFlight, 1)));
        assert_eq!(query(Some("100"), Some("delayed")).parse().ok(), Some((PeekState::Delayed, 100)));
    }

    #[test]
    fn refuses_other_states_and_limits() {
        for (limit, state) in
            [(Some("0"), None), (Some("101"), None), (Some("x"), None), (None, Some("gone"))]
        {
            assert!(
                matches!(query(limit, state).parse(), Err(Error::InvalidRequest(_))),
                "{limit:?} {state:?}"
            );
        }
    }
}
