//! The API's data shapes, shared by the core and every transport. Field names here are the
//! contract of `shared/spec/broker-api.md`: renaming one breaks clients.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::error::{Error, Result};

/// Queue, topic and subscription names.
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    let ok = (1..=80).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(format!(
            "{kind} name must be 1 to 80 characters of A-Z, a-z, 0-9, '_' and '-'"
        )))
    }
}

/// Queue names: as [`validate_name`], or such a name followed by `.fifo` (80 characters in all),
/// the form SQS gives FIFO queues (only a FIFO queue may have it, see [`QueueSpec::apply`]).
pub fn validate_queue_name(kind: &str, name: &str) -> Result<()> {
    match name.strip_suffix(FIFO_SUFFIX) {
        Some(stem) if name.len() <= 80 && validate_name(kind, stem).is_ok() => Ok(()),
        _ => validate_name(kind, name).map_err(|_| {
            Error::InvalidName(format!(
                "{kind} name must be 1 to 80 characters of A-Z, a-z, 0-9, '_' and '-', optionally ending in '.fifo'"
            ))
        }),
    }
}

/// What the names of FIFO queues may end with (SQS requires it of them).
pub const FIFO_SUFFIX: &str = ".fifo";

/// Message groups (SQS `MessageGroupId`): 1 to 128 characters of A-Z, a-z, 0-9 and ASCII
/// punctuation, as SQS allows. The store relies on there being no control characters in them.
pub fn validate_group(group: &str) -> Result<()> {
    let ok = (1..=128).contains(&group.len())
        && group.bytes().all(|b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("group must be 1 to 128 characters of A-Z, a-z, 0-9 and ASCII punctuation"))
    }
}

/// Who may publish and consume besides the owner and admins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    #[default]
    Authenticated,
    Restricted,
}

/// A queue's settings, with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QueueConfig {
    pub visibility_timeout_s: u32,
    pub max_receives: Option<u32>,
    pub dead_letter_queue: Option<String>,
    pub delay_s: u32,
    pub retention_s: u32,
    pub max_message_bytes: u32,
    pub access: Access,
    /// How long a receive that names no `wait_s` waits (SQS `ReceiveMessageWaitTimeSeconds`).
    #[serde(default)]
    pub receive_wait_s: u32,
    /// Which queues may name this one their `dead_letter_queue` (SQS `RedriveAllowPolicy`);
    /// absent: any queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redrive_allow: Option<RedriveAllow>,
    /// A FIFO queue: delivery by message group, in order, one group's messages in flight at a
    /// time (set at creation only; absent in queues stored before issue 21: standard).
    #[serde(default)]
    pub fifo: bool,
    /// FIFO only: a send without `dedup_id` is deduplicated by the SHA-256 of its body.
    #[serde(default)]
    pub content_based_dedup: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            visibility_timeout_s: 30,
            max_receives: None,
            dead_letter_queue: None,
            delay_s: 0,
            retention_s: 345_600,
            max_message_bytes: 262_144,
            access: Access::Authenticated,
            receive_wait_s: 0,
            redrive_allow: None,
            fifo: false,
            content_based_dedup: false,
        }
    }
}

/// Which source queues may use a queue as their dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum RedrivePermission {
    AllowAll,
    DenyAll,
    ByQueue,
}

/// A queue's `redrive_allow`: `{"permission": "allowAll" | "denyAll" | "byQueue", "source_queues": [...]}`
/// (1 to 10 names, with `byQueue` only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveAllow {
    pub permission: RedrivePermission,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_queues: Vec<String>,
}

/// At most this many source queues in a `byQueue` redrive permission.
pub const MAX_REDRIVE_SOURCES: usize = 10;

impl RedriveAllow {
    pub fn allows(&self, source: &str) -> bool {
        match self.permission {
            RedrivePermission::AllowAll => true,
            RedrivePermission::DenyAll => false,
            RedrivePermission::ByQueue => self.source_queues.iter().any(|q| q == source),
        }
    }

    fn check(&self) -> Result<()> {
        let n = self.source_queues.len();
        match self.permission {
            RedrivePermission::ByQueue if !(1..=MAX_REDRIVE_SOURCES).contains(&n) => Err(Error::invalid(
                format!("redrive_allow byQueue names 1 to {MAX_REDRIVE_SOURCES} source_queues, got {n}"),
            )),
            RedrivePermission::AllowAll | RedrivePermission::DenyAll if n > 0 => {
                Err(Error::invalid("redrive_allow names source_queues only with byQueue"))
            }
            _ => self.source_queues.iter().try_for_each(|q| validate_name("source_queues", q)),
        }
    }
}

/// A queue's tags: at most [`MAX_TAGS`], keys of 1 to 128 characters, values of at most 256.
pub type Tags = BTreeMap<String, String>;
pub const MAX_TAGS: usize = 50;

/// Checks tags one by one (the count is checked on the merged set by the caller).
pub fn validate_tags(tags: &Tags) -> Result<()> {
    for (k, v) in tags {
        if !(1..=128).contains(&k.chars().count()) {
            return Err(Error::invalid(format!("tag key {k:?} must be 1 to 128 characters")));
        }
        if v.chars().count() > 256 {
            return Err(Error::invalid(format!("the value of tag {k:?} must be at most 256 characters")));
        }
    }
    Ok(())
}

/// Checks the number of tags a queue would have.
pub fn check_tag_count(n: usize) -> Result<()> {
    if n > MAX_TAGS {
        return Err(Error::invalid(format!("a queue has at most {MAX_TAGS} tags, this would make {n}")));
    }
    Ok(())
}

/// Body of `PUT /v1/queues/{name}/tags`: tags to add or change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagsBody {
    pub tags: Tags,
}

/// Body of `DELETE /v1/queues/{name}/tags`: the keys to remove.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UntagBody {
    pub keys: Vec<String>,
}

/// A queue's tags, as `GET /v1/queues/{name}/tags` answers them.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagList {
    pub tags: Tags,
}

pub const MAX_VISIBILITY_S: u32 = 43_200;
pub const MAX_DELAY_S: u32 = 900;
pub const RETENTION_S: std::ops::RangeInclusive<u32> = 60..=1_209_600;
pub const MAX_MESSAGE_BYTES: u32 = 1_048_576;
pub const MAX_RECEIVES: u32 = 1000;
pub const MAX_BATCH: usize = 100;
pub const MAX_WAIT_S: u32 = 20;
pub const MAX_ATTRIBUTES: usize = 16;

fn check_range(field: &str, value: u32, range: std::ops::RangeInclusive<u32>) -> Result<()> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{field} must be between {} and {}, got {value}",
            range.start(),
            range.end()
        )))
    }
}

/// Applies the settings queues and topics share (retention, size limit, access) and checks them.
fn apply_storage(
    given: (Option<u32>, Option<u32>, Option<Access>),
    into: (&mut u32, &mut u32, &mut Access),
) -> Result<()> {
    let (retention, max_bytes, access) = into;
    if let Some(v) = given.0 {
        *retention = v;
    }
    if let Some(v) = given.1 {
        *max_bytes = v;
    }
    if let Some(v) = given.2 {
        *access = v;
    }
    check_range("retention_s", *retention, RETENTION_S)?;
    check_range("max_message_bytes", *max_bytes, 1..=MAX_MESSAGE_BYTES)
}

/// Body of `PUT` and `PATCH /v1/queues/{name}`: every field optional. On `PATCH`, an absent field
/// keeps its value and `null` clears a nullable one.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    pub visibility_timeout_s: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    pub max_receives: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub dead_letter_queue: Option<Option<String>>,
    pub delay_s: Option<u32>,
    pub retention_s: Option<u32>,
    pub max_message_bytes: Option<u32>,
    pub access: Option<Access>,
    pub receive_wait_s: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RedriveAllow>)]
    pub redrive_allow: Option<Option<RedriveAllow>>,
    /// A FIFO queue (at creation only: a `PATCH` naming another value is refused).
    pub fifo: Option<bool>,
    /// FIFO queues only: deduplicate by the SHA-256 of the body when a send has no `dedup_id`.
    pub content_based_dedup: Option<bool>,
    /// Tags, at creation only (`PUT /v1/queues/{name}/tags` changes them later).
    pub tags: Option<Tags>,
    /// SQS queue attributes kept as given, with no effect here (`Policy`, the KMS and SSE ones),
    /// set by the SQS endpoint only; an empty value removes one.
    #[serde(skip)]
    pub sqs_attributes: BTreeMap<String, String>,
}

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl QueueSpec {
    /// Applies this spec over `base` and checks every limit. Whether a dead-letter queue exists is
    /// checked by the caller, which knows the metadata.
    pub fn apply(self, mut base: QueueConfig) -> Result<QueueConfig> {
        if let Some(v) = self.visibility_timeout_s {
            base.visibility_timeout_s = v;
        }
        if let Some(v) = self.max_receives {
            base.max_receives = v;
        }
        if let Some(v) = self.dead_letter_queue {
            base.dead_letter_queue = v;
        }
        if let Some(v) = self.delay_s {
            base.delay_s = v;
        }
        if let Some(v) = self.receive_wait_s {
            base.receive_wait_s = v;
        }
        if let Some(v) = self.redrive_allow {
            base.redrive_allow = v;
        }
        if let Some(v) = self.fifo {
            base.fifo = v;
        }
        if let Some(v) = self.content_based_dedup {
            base.content_based_dedup = v;
        }
        if base.content_based_dedup && !base.fifo {
            return Err(Error::invalid("content_based_dedup applies to FIFO queues only (\"fifo\": true)"));
        }
        apply_storage(
            (self.retention_s, self.max_message_bytes, self.access),
            (&mut base.retention_s, &mut base.max_message_bytes, &mut base.access),
        )?;
        check_range("visibility_timeout_s", base.visibility_timeout_s, 0..=MAX_VISIBILITY_S)?;
        check_range("delay_s", base.delay_s, 0..=MAX_DELAY_S)?;
        check_range("receive_wait_s", base.receive_wait_s, 0..=MAX_WAIT_S)?;
        if let Some(r) = &base.redrive_allow {
            r.check()?;
        }
        if let Some(m) = base.max_receives {
            check_range("max_receives", m, 1..=MAX_RECEIVES)?;
        }
        if let Some(dlq) = &base.dead_letter_queue {
            validate_queue_name("dead_letter_queue", dlq)?;
            if base.max_receives.is_none() {
                return Err(Error::invalid("dead_letter_queue needs max_receives"));
            }
        }
        Ok(base)
    }
}

/// A queue as listed: its name and settings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueueInfo {
    pub name: String,
    #[serde(flatten)]
    pub config: QueueConfig,
    pub owner: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<QueueStats>,
    /// When the config last changed (SQS `LastModifiedTimestamp`); the creation time until then.
    #[serde(skip)]
    pub modified_at: Option<String>,
    /// The SQS attributes kept with no effect (see [`QueueSpec::sqs_attributes`]).
    #[serde(skip)]
    pub sqs_attributes: BTreeMap<String, String>,
}

/// Exact counts at the time of the request.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
pub struct QueueStats {
    pub available: u64,
    pub in_flight: u64,
    pub delayed: u64,
    pub oldest_age_s: u64,
    /// FIFO queues: how many message groups have messages in flight (held groups).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight_groups: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueList {
    pub queues: Vec<QueueInfo>,
}

pub type Attributes = BTreeMap<String, String>;

/// One message to send.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    pub body: String,
    #[serde(default)]
    pub attributes: Attributes,
    pub delay_s: Option<u32>,
    pub dedup_id: Option<String>,
    /// Its message group (SQS `MessageGroupId`): required on FIFO queues, optional on standard
    /// ones (fair queues: receives spread across groups); returned on receive.
    pub group: Option<String>,
    /// Broker-owned (`mom.`) attributes set by a trusted front door, never by the client.
    #[serde(skip)]
    pub system: Attributes,
    /// FIFO queues: the dedup id the message is stored under, kept with it (set by the core).
    #[serde(skip)]
    pub fifo_dedup: Option<String>,
}

impl SendMessage {
    /// Checks what does not depend on the queue's settings.
    pub fn validate(&self) -> Result<()> {
        let own = self.attributes.keys().filter(|k| !k.starts_with("mom.")).count();
        if own > MAX_ATTRIBUTES {
            return Err(Error::invalid(format!(
                "at most {MAX_ATTRIBUTES} attributes are allowed, got {own}"
            )));
        }
        for key in self.attributes.keys() {
            let ok = (1..=64).contains(&key.len())
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !ok {
                return Err(Error::invalid(format!(
                    "attribute key {key:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '.' and '-'"
                )));
            }
            if key.starts_with("mom.") {
                return Err(Error::invalid(format!(
                    "attribute key {key:?}: keys starting 'mom.' are the broker's own"
                )));
            }
        }
        if let Some(d) = self.delay_s {
            check_range("delay_s", d, 0..=MAX_DELAY_S)?;
        }
        if let Some(id) = &self.dedup_id {
            if id.is_empty() || id.len() > 128 {
                return Err(Error::invalid("dedup_id must be 1 to 128 characters"));
            }
        }
        if let Some(g) = &self.group {
            validate_group(g)?;
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBatch {
    pub messages: Vec<SendMessage>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SentId {
    pub id: String,
    /// FIFO queues: the message's sequence number, increasing within its group (decimal string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
}

/// The outcome of a send: `created` is false when a `dedup_id` named an earlier message.
#[derive(Debug, Clone)]
pub struct Sent {
    pub id: String,
    pub created: bool,
    /// FIFO queues: the message's sequence number (the first message's, for a duplicate).
    pub sequence: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveRequest {
    pub max: Option<u32>,
    pub wait_s: Option<u32>,
    pub visibility_timeout_s: Option<u32>,
}

impl ReceiveRequest {
    /// (max, wait_s) after checking their ranges.
    pub fn limits(&self) -> Result<(u32, u32)> {
        let max = self.max.unwrap_or(1);
        check_range("max", max, 1..=MAX_BATCH as u32)?;
        let wait = self.wait_s.unwrap_or(0);
        check_range("wait_s", wait, 0..=MAX_WAIT_S)?;
        if let Some(v) = self.visibility_timeout_s {
            check_range("visibility_timeout_s", v, 0..=MAX_VISIBILITY_S)?;
        }
        Ok((max, wait))
    }
}

/// A delivered message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Message {
    pub id: String,
    pub body: String,
    pub attributes: Attributes,
    pub receipt: String,
    pub receive_count: u32,
    pub sent_at: String,
    /// Its message group, when it was sent with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// FIFO queues: its sequence number, increasing within its group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
    /// FIFO queues: the dedup id it was stored under (SQS `MessageDeduplicationId`): the
    /// sender's, or the SHA-256 of the body with content-based deduplication.
    #[serde(skip)]
    pub dedup_id: Option<String>,
    /// Who sent it (a user name), where the store knows (SQS `SenderId`).
    #[serde(skip)]
    pub sender: Option<String>,
    /// When it was first received, in ms (SQS `ApproximateFirstReceiveTimestamp`).
    #[serde(skip)]
    pub first_received_ms: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Messages {
    pub messages: Vec<Message>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    pub receipts: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NackRequest {
    pub receipts: Vec<String>,
    #[serde(default)]
    pub delay_s: u32,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisibilityRequest {
    pub receipt: String,
    pub visibility_timeout_s: u32,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    pub to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Moved {
    pub moved: u64,
}

/// The error shape of every `/v1` response that is not a success.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl From<&Error> for ErrorBody {
    fn from(e: &Error) -> Self {
        ErrorBody { error: ErrorDetail { code: e.code().to_string(), message: e.to_string() } }
    }
}

/// One entry of a batch answer: a value, or the error of that entry alone.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Entry<T> {
    Ok(T),
    Err(ErrorBody),
}

impl<T> From<Result<T>> for Entry<T> {
    fn from(r: Result<T>) -> Self {
        match r {
            Ok(v) => Entry::Ok(v),
            Err(e) => Entry::Err(ErrorBody::from(&e)),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    pub ok: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Results<T> {
    pub results: Vec<Entry<T>>,
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-25T17:06:29.123Z`.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(unix_ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_default()
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A topic's settings, with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TopicConfig {
    pub retention_s: u32,
    pub max_message_bytes: u32,
    pub access: Access,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig { retention_s: 604_800, max_message_bytes: 262_144, access: Access::Authenticated }
    }
}

/// Body of `PUT /v1/topics/{name}`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    pub retention_s: Option<u32>,
    pub max_message_bytes: Option<u32>,
    pub access: Option<Access>,
}

impl TopicSpec {
    pub fn apply(self, mut base: TopicConfig) -> Result<TopicConfig> {
        apply_storage(
            (self.retention_s, self.max_message_bytes, self.access),
            (&mut base.retention_s, &mut base.max_message_bytes, &mut base.access),
        )?;
        Ok(base)
    }
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
pub struct TopicStats {
    /// Messages retained for replay.
    pub messages: u64,
    pub subscriptions: u64,
    pub oldest_age_s: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopicInfo {
    pub name: String,
    #[serde(flatten)]
    pub config: TopicConfig,
    pub owner: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<TopicStats>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopicList {
    pub topics: Vec<TopicInfo>,
}

/// Where a new subscription starts: `"latest"`, `"earliest"`, or `{"time": RFC 3339}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum StartSpec {
    Named(String),
    Time { time: String },
}

/// A subscription's settings that decide what and how it delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionConfig {
    pub filter: Attributes,
    pub no_local: bool,
    pub ack_deadline_s: u32,
    pub max_receives: Option<u32>,
    pub dead_letter_queue: Option<String>,
}

/// Body of `PUT /v1/topics/{name}/subscriptions/{sub}`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSpec {
    pub start: Option<StartSpec>,
    pub filter: Option<Attributes>,
    pub no_local: Option<bool>,
    pub ack_deadline_s: Option<u32>,
    pub max_receives: Option<u32>,
    pub dead_letter_queue: Option<String>,
}

impl SubscriptionSpec {
    /// The config, and the start point as a time in ms (`None`: latest; `Some(0)`: earliest).
    pub fn resolve(self) -> Result<(SubscriptionConfig, Option<i64>, StartSpec)> {
        let start = self.start.unwrap_or(StartSpec::Named("latest".into()));
        let from = match &start {
            StartSpec::Named(n) if n == "latest" => None,
            StartSpec::Named(n) if n == "earliest" => Some(0),
            StartSpec::Named(n) => {
                return Err(Error::invalid(format!(
                    "start must be \"latest\", \"earliest\" or {{\"time\": RFC 3339}}, got {n:?}"
                )))
            }
            StartSpec::Time { time } => Some(parse_time(time)?),
        };
        let config = SubscriptionConfig {
            filter: self.filter.unwrap_or_default(),
            no_local: self.no_local.unwrap_or(false),
            ack_deadline_s: self.ack_deadline_s.unwrap_or(30),
            max_receives: self.max_receives,
            dead_letter_queue: self.dead_letter_queue,
        };
        check_range("ack_deadline_s", config.ack_deadline_s, 1..=MAX_VISIBILITY_S)?;
        if let Some(m) = config.max_receives {
            check_range("max_receives", m, 1..=MAX_RECEIVES)?;
        }
        if config.dead_letter_queue.is_some() && config.max_receives.is_none() {
            return Err(Error::invalid("dead_letter_queue needs max_receives"));
        }
        if config.filter.len() > MAX_ATTRIBUTES {
            return Err(Error::invalid(format!("a filter has at most {MAX_ATTRIBUTES} attributes")));
        }
        Ok((config, from, start))
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionInfo {
    pub name: String,
    pub topic: String,
    #[schema(value_type = Object)]
    pub start: serde_json::Value,
    #[serde(flatten)]
    pub config: SubscriptionConfig,
    pub owner: String,
    pub created_at: String,
    /// Retained messages matching the subscription that it has not acked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionList {
    pub subscriptions: Vec<SubscriptionInfo>,
}

/// Body of `.../seek`: a time or a message id.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeekRequest {
    pub time: Option<String>,
    pub id: Option<String>,
}

/// Parses an RFC 3339 time into ms since the epoch.
pub fn parse_time(s: &str) -> Result<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| Error::invalid(format!("{s:?} is not an RFC 3339 time, e.g. 2026-11-25T17:06:29.123Z")))
}
