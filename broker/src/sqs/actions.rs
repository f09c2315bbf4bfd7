//! One function per SQS action, each translating SQS's shapes to the core's and back: the message
//! actions here, the queue actions in `queues.rs`, message move tasks in `moves.rs`. SQS's
//! validation rules (with its codes and wording) are in `checks.rs`.

use std::collections::{BTreeMap, HashSet};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::md5::{md5_hex, md5_of_attributes, SqsAttribute};
use super::{checks, moves, queues, Ctx, SqsError, ACCOUNT};
use crate::error::Error;
use crate::meta::QueueMeta;
use crate::model::{
    validate_group, validate_queue_name, Attributes, Message, QueueConfig, ReceiveRequest, SendMessage,
    MAX_VISIBILITY_S,
};
use crate::service::Broker;

/// Where non-String data types of message attributes are kept (a broker attribute).
const TYPES_ATTR: &str = "mom.sqs.types";
/// Where the `AWSTraceHeader` message system attribute is kept (a broker attribute).
const TRACE_ATTR: &str = "mom.sqs.aws_trace_header";
const SOURCE_ATTR: &str = "mom.source_queue";

/// The message system attributes SQS defines (what `All` stands for).
const SYSTEM_ATTRIBUTES: [&str; 9] = [
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageDeduplicationId",
    "MessageGroupId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
];

pub(super) type Out = Result<Value, SqsError>;

pub async fn dispatch(b: &Broker, ctx: &Ctx, action: &str, input: Value) -> Out {
    match action {
        "CreateQueue" => queues::create_queue(b, ctx, parse(input)?).await,
        "GetQueueUrl" => queues::get_queue_url(b, ctx, parse(input)?).await,
        "ListQueues" => queues::list_queues(b, ctx, parse(input)?),
        "DeleteQueue" => {
            let q: QueueRef = parse(input)?;
            b.delete_queue(&ctx.who, &queue_name(&q.queue_url)?).await?;
            Ok(json!({}))
        }
        "PurgeQueue" => {
            let q: QueueRef = parse(input)?;
            b.purge_queue(&ctx.who, &queue_name(&q.queue_url)?).await?;
            Ok(json!({}))
        }
        "GetQueueAttributes" => queues::get_queue_attributes(b, ctx, parse(input)?).await,
        "SetQueueAttributes" => queues::set_queue_attributes(b, ctx, parse(input)?).await,
        "TagQueue" => queues::tag_queue(b, ctx, parse(input)?).await,
        "UntagQueue" => queues::untag_queue(b, ctx, parse(input)?).await,
        "ListQueueTags" => queues::list_queue_tags(b, ctx, parse(input)?).await,
        "ListDeadLetterSourceQueues" => queues::list_dead_letter_source_queues(b, ctx, parse(input)?).await,
        "AddPermission" => queues::add_permission(b, ctx, parse(input)?).await,
        "RemovePermission" => queues::remove_permission(b, ctx, parse(input)?).await,
        "StartMessageMoveTask" => moves::start(b, ctx, parse(input)?).await,
        "ListMessageMoveTasks" => moves::list(b, ctx, parse(input)?).await,
        "CancelMessageMoveTask" => moves::cancel(b, ctx, parse(input)?).await,
        "SendMessage" => send_message(b, ctx, parse(input)?).await,
        "SendMessageBatch" => send_message_batch(b, ctx, parse(input)?).await,
        "ReceiveMessage" => receive_message(b, ctx, parse(input)?).await,
        "DeleteMessage" => {
            let req: Handle = parse(input)?;
            let name = queue_name(&req.queue_url)?;
            one(delete(b, ctx, &name, vec![req.receipt_handle]).await?)
        }
        "DeleteMessageBatch" => {
            let req: HandleBatch = parse(input)?;
            let name = queue_name(&req.queue_url)?;
            let ids = checks::batch_ids(req.entries.iter().map(|e| &e.id))?;
            let results =
                delete(b, ctx, &name, req.entries.into_iter().map(|e| e.receipt_handle).collect()).await?;
            Ok(batch_answer(ids, results, |_| json!({})))
        }
        "ChangeMessageVisibility" => {
            let req: Visibility = parse(input)?;
            let name = queue_name(&req.queue_url)?;
            one(vec![change_visibility(b, ctx, &name, req.receipt_handle, req.visibility_timeout).await])
        }
        "ChangeMessageVisibilityBatch" => {
            let req: VisibilityBatch = parse(input)?;
            let name = queue_name(&req.queue_url)?;
            let ids = checks::batch_ids(req.entries.iter().map(|e| &e.id))?;
            let mut results = Vec::with_capacity(req.entries.len());
            for e in req.entries {
                results.push(change_visibility(b, ctx, &name, e.receipt_handle, e.visibility_timeout).await);
            }
            Ok(batch_answer(ids, results, |_| json!({})))
        }
        other => {
            Err(SqsError::bad("InvalidAction", format!("The action {other} is not valid for this endpoint.")))
        }
    }
}

pub fn parse<T: DeserializeOwned>(input: Value) -> Result<T, SqsError> {
    serde_json::from_value(input).map_err(|e| {
        let msg = e.to_string();
        if msg.starts_with("missing field") {
            SqsError::bad("MissingParameter", msg)
        } else {
            SqsError::invalid(msg)
        }
    })
}

/// A single-entry result as the whole answer.
fn one(mut results: Vec<Result<(), SqsError>>) -> Out {
    results.pop().unwrap_or(Ok(())).map(|()| json!({}))
}

/// The queue named by the last segment of a queue URL.
pub fn queue_name(url: &str) -> Result<String, SqsError> {
    let name = url.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if name.is_empty() {
        return Err(SqsError::bad("InvalidAddress", "The address is not a valid queue URL."));
    }
    Ok(name.to_string())
}

pub(super) fn queue_url(ctx: &Ctx, name: &str) -> String {
    format!("{}/{ACCOUNT}/{name}", ctx.base_url)
}

pub(super) fn queue_arn(region: &str, name: &str) -> String {
    format!("arn:aws:sqs:{region}:{ACCOUNT}:{name}")
}

/// The queue an SQS queue ARN (`arn:aws:sqs:REGION:ACCOUNT:NAME`) names.
pub(super) fn arn_queue(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts[..] {
        ["arn", _, "sqs", _, _, name] if validate_queue_name("queue", name).is_ok() => Some(name.to_string()),
        _ => None,
    }
}

/// The queue's config (its `MaximumMessageSize`, whether it is FIFO), when the queue exists
/// (else the core answers 404 later).
async fn queue_config(b: &Broker, queue: &str) -> Option<QueueConfig> {
    validate_queue_name("queue", queue).ok()?;
    b.meta.fetch::<QueueMeta>(queue).await.map(|m| m.config)
}

/// SQS's rules for a message to a FIFO queue (a standard queue takes `MessageDeduplicationId`
/// too: native sends had `dedup_id` on every queue before FIFO queues came), with its codes and wording,
/// checked before the core (whose messages name native fields).
fn check_kind(e: &Entry, config: Option<&QueueConfig>) -> Result<(), SqsError> {
    let Some(config) = config else { return Ok(()) };
    let not_for_kind = |p: &str, v: &str| {
        SqsError::invalid(format!(
            "Value {v} for parameter {p} is invalid. Reason: The request include parameter that is not valid for this queue type."
        ))
    };
    if config.fifo {
        if e.message_group_id.is_none() {
            return Err(SqsError::bad(
                "MissingParameter",
                "The request must contain the parameter MessageGroupId.",
            ));
        }
        if let Some(d) = e.delay_seconds {
            return Err(not_for_kind("DelaySeconds", &d.to_string()));
        }
        if e.message_deduplication_id.is_none() && !config.content_based_dedup {
            return Err(SqsError::invalid(
                "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
            ));
        }
    }
    if let Some(g) = &e.message_group_id {
        if validate_group(g).is_err() {
            return Err(SqsError::invalid(format!(
                "Value {g} for parameter MessageGroupId is invalid. Reason: MessageGroupId can only include alphanumeric and punctuation characters. 1 to 128 in length."
            )));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct QueueRef {
    pub queue_url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AttributeValue {
    pub data_type: String,
    pub string_value: Option<String>,
    /// Base64, as the JSON protocol carries blobs.
    pub binary_value: Option<String>,
}

impl AttributeValue {
    /// The value's size as SQS counts it: the string's bytes, or the blob's.
    fn size(&self) -> usize {
        match (&self.string_value, &self.binary_value) {
            (Some(s), _) if !self.data_type.starts_with("Binary") => s.len(),
            (_, Some(b64)) => STANDARD.decode(b64).map_or(b64.len(), |v| v.len()),
            (Some(s), None) => s.len(),
            (None, None) => 0,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Send {
    queue_url: String,
    #[serde(flatten)]
    entry: Entry,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    #[serde(default)]
    id: String,
    message_body: String,
    delay_seconds: Option<i64>,
    #[serde(default)]
    message_attributes: BTreeMap<String, AttributeValue>,
    #[serde(default)]
    message_system_attributes: BTreeMap<String, AttributeValue>,
    message_deduplication_id: Option<String>,
    message_group_id: Option<String>,
}

impl Entry {
    /// The message's size as SQS counts it against `MaximumMessageSize`: the body, and each
    /// attribute's name, data type and value.
    pub fn size(&self) -> usize {
        self.message_body.len()
            + self
                .message_attributes
                .iter()
                .map(|(k, v)| k.len() + v.data_type.len() + v.size())
                .sum::<usize>()
    }
}

/// One attribute in SQS's shape: checked, and as the digest counts it.
fn sqs_attribute(name: &str, v: AttributeValue) -> Result<(String, SqsAttribute), SqsError> {
    checks::data_type(name, &v.data_type)?;
    let binary = v.data_type.starts_with("Binary");
    if v.data_type.starts_with("Number")
        && v.string_value.as_deref().is_some_and(|n| n.trim().parse::<f64>().is_err())
    {
        return Err(SqsError::invalid(format!(
            "Can't cast the value of message (user) attribute '{name}' to a number."
        )));
    }
    match (binary, v.string_value, v.binary_value) {
        (false, Some(s), _) => {
            checks::attribute_value(name, &s)?;
            Ok((s.clone(), SqsAttribute { data_type: v.data_type, value: s.into_bytes(), binary }))
        }
        (true, _, Some(b64)) => {
            let raw = STANDARD
                .decode(&b64)
                .map_err(|_| SqsError::invalid(format!("The BinaryValue of message attribute '{name}' is not base64.")))?;
            Ok((b64, SqsAttribute { data_type: v.data_type, value: raw, binary }))
        }
        _ => Err(SqsError::invalid(format!(
            "The message attribute '{name}' must contain a non-empty message attribute value for message attribute type '{}'.",
            v.data_type
        ))),
    }
}

/// An SQS message into the core's shape, with the digests SQS would answer.
pub fn to_native(e: Entry) -> Result<(SendMessage, Value), SqsError> {
    if e.message_body.is_empty() {
        return Err(SqsError::bad("MissingParameter", "The request must contain the parameter MessageBody."));
    }
    checks::body(&e.message_body)?;
    let delay_s = e.delay_seconds.map(|d| checks::in_range("DelaySeconds", d, 0..=900)).transpose()?;
    if let Some(id) = &e.message_deduplication_id {
        if id.is_empty() || id.len() > 128 {
            return Err(SqsError::invalid(format!(
                "Value {id} for parameter MessageDeduplicationId is invalid. Reason: must be 1 to 128 characters."
            )));
        }
    }
    checks::attribute_count(e.message_attributes.len())?;
    let mut attributes = Attributes::new();
    let mut sqs_attrs = BTreeMap::new();
    let mut types = BTreeMap::new();
    for (name, v) in e.message_attributes {
        checks::attribute_name(&name)?;
        let (stored, attr) = sqs_attribute(&name, v)?;
        if attr.data_type != "String" {
            types.insert(name.clone(), attr.data_type.clone());
        }
        attributes.insert(name.clone(), stored);
        sqs_attrs.insert(name, attr);
    }
    let mut digests = json!({ "MD5OfMessageBody": md5_hex(e.message_body.as_bytes()) });
    if !sqs_attrs.is_empty() {
        digests["MD5OfMessageAttributes"] = json!(md5_of_attributes(&sqs_attrs));
    }
    let mut system = Attributes::new();
    let mut sqs_system = BTreeMap::new();
    for (name, v) in e.message_system_attributes {
        if name != "AWSTraceHeader" {
            return Err(SqsError::invalid(format!(
                "Message system attribute name '{name}' is invalid. Only AWSTraceHeader can be sent."
            )));
        }
        if v.data_type != "String" {
            return Err(SqsError::invalid(format!(
                "The type of message system attribute '{name}' is invalid. It must be String."
            )));
        }
        let (stored, attr) = sqs_attribute(&name, v)?;
        system.insert(TRACE_ATTR.into(), stored);
        sqs_system.insert(name, attr);
    }
    if !sqs_system.is_empty() {
        digests["MD5OfMessageSystemAttributes"] = json!(md5_of_attributes(&sqs_system));
    }
    if !types.is_empty() {
        system.insert(TYPES_ATTR.into(), serde_json::to_string(&types).unwrap_or_default());
    }
    let msg = SendMessage {
        body: e.message_body,
        attributes,
        delay_s,
        dedup_id: e.message_deduplication_id,
        group: e.message_group_id,
        system,
        fifo_dedup: None,
    };
    Ok((msg, digests))
}

/// A native message's attributes back in SQS's shape (broker-owned ones left out).
fn sqs_attributes(attrs: &Attributes) -> BTreeMap<String, SqsAttribute> {
    let types: BTreeMap<String, String> =
        attrs.get(TYPES_ATTR).and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
    attrs
        .iter()
        .filter(|(k, _)| !k.starts_with("mom."))
        .map(|(k, v)| {
            let data_type = types.get(k).cloned().unwrap_or_else(|| "String".into());
            let binary = data_type.starts_with("Binary");
            let value = if binary { STANDARD.decode(v).unwrap_or_default() } else { v.clone().into_bytes() };
            (k.clone(), SqsAttribute { data_type, value, binary })
        })
        .collect()
}

async fn send_message(b: &Broker, ctx: &Ctx, req: Send) -> Out {
    let name = queue_name(&req.queue_url)?;
    let size = req.entry.size();
    let config = queue_config(b, &name).await;
    check_kind(&req.entry, config.as_ref())?;
    let (msg, mut answer) = to_native(req.entry)?;
    if let Some(c) = &config {
        checks::size(size, c.max_message_bytes)?;
    }
    let sent =
        b.send(&ctx.who, &name, vec![msg]).await?.pop().unwrap_or(Err(Error::invalid("no message")))?;
    answer["MessageId"] = json!(sent.id);
    if let Some(s) = sent.sequence {
        answer["SequenceNumber"] = json!(s);
    }
    Ok(answer)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendBatch {
    queue_url: String,
    entries: Vec<Entry>,
}

/// `{"Successful": [...], "Failed": [...]}` from one result per entry id.
fn batch_answer<T>(ids: Vec<String>, results: Vec<Result<T, SqsError>>, ok: impl Fn(T) -> Value) -> Value {
    let (mut successful, mut failed) = (Vec::new(), Vec::new());
    for (id, r) in ids.into_iter().zip(results) {
        match r {
            Ok(v) => {
                let mut entry = ok(v);
                entry["Id"] = json!(id);
                successful.push(entry);
            }
            Err(e) => failed.push(
                json!({ "Id": id, "SenderFault": e.sender_fault(), "Code": e.code, "Message": e.message }),
            ),
        }
    }
    json!({ "Successful": successful, "Failed": failed })
}

async fn send_message_batch(b: &Broker, ctx: &Ctx, req: SendBatch) -> Out {
    let name = queue_name(&req.queue_url)?;
    let ids = checks::batch_ids(req.entries.iter().map(|e| &e.id))?;
    let config = queue_config(b, &name).await;
    let max = config.as_ref().map(|c| c.max_message_bytes);
    let sizes: Vec<usize> = req.entries.iter().map(Entry::size).collect();
    if let Some(max) = max {
        checks::batch_size(sizes.iter().sum(), max)?;
    }
    let converted: Vec<Result<(SendMessage, Value), SqsError>> = req
        .entries
        .into_iter()
        .zip(sizes)
        .map(|(e, size)| {
            check_kind(&e, config.as_ref())?;
            let native = to_native(e)?;
            if let Some(max) = max {
                checks::size(size, max)?;
            }
            Ok(native)
        })
        .collect();
    let (messages, digests): (Vec<SendMessage>, Vec<Value>) =
        converted.iter().filter_map(|c| c.as_ref().ok().cloned()).unzip();
    let mut sent =
        if messages.is_empty() { Vec::new() } else { b.send(&ctx.who, &name, messages).await? }.into_iter();
    let mut digests = digests.into_iter();
    let results = converted
        .into_iter()
        .map(|c| {
            c?;
            let mut answer = digests.next().unwrap_or_default();
            let s = sent.next().unwrap_or(Err(Error::invalid("no result")))?;
            answer["MessageId"] = json!(s.id);
            if let Some(seq) = s.sequence {
                answer["SequenceNumber"] = json!(seq);
            }
            Ok(answer)
        })
        .collect();
    Ok(batch_answer(ids, results, |v| v))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Receive {
    queue_url: String,
    max_number_of_messages: Option<i64>,
    wait_time_seconds: Option<i64>,
    visibility_timeout: Option<i64>,
    #[serde(default)]
    message_attribute_names: Vec<String>,
    #[serde(default)]
    attribute_names: Vec<String>,
    #[serde(default)]
    message_system_attribute_names: Vec<String>,
    /// FIFO: a retried receive with the same id (within 5 minutes) answers what the first did.
    receive_request_attempt_id: Option<String>,
}

/// Does a `MessageAttributeNames` entry (`All` in any case, `.*`, `prefix.*` or a name) select `name`?
fn selects(pattern: &str, name: &str) -> bool {
    if pattern.eq_ignore_ascii_case("all") || pattern == ".*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// The system attributes asked for, by SQS's names: `All` and every name in any case (clients
/// vary: kombu sends `ALL`); names SQS does not define are ignored, as SQS ignores them.
pub fn system_names<'a>(asked: impl IntoIterator<Item = &'a String>) -> HashSet<&'static str> {
    let mut names = HashSet::new();
    for a in asked {
        if a.eq_ignore_ascii_case("all") {
            names.extend(SYSTEM_ATTRIBUTES);
        } else if let Some(n) = SYSTEM_ATTRIBUTES.iter().find(|n| n.eq_ignore_ascii_case(a)) {
            names.insert(*n);
        }
    }
    names
}

/// A delivered message in SQS's shape, with the message attributes `attr_patterns` select and
/// the system attributes named in `system` (see [`system_names`]); `region` names ARNs.
pub fn to_sqs_message(m: Message, attr_patterns: &[String], system: &HashSet<&str>, region: &str) -> Value {
    let mut out = json!({
        "MessageId": m.id,
        "ReceiptHandle": m.receipt,
        "MD5OfBody": md5_hex(m.body.as_bytes()),
        "Body": m.body,
    });
    let chosen: BTreeMap<String, SqsAttribute> = sqs_attributes(&m.attributes)
        .into_iter()
        .filter(|(k, _)| attr_patterns.iter().any(|p| selects(p, k)))
        .collect();
    if !chosen.is_empty() {
        out["MD5OfMessageAttributes"] = json!(md5_of_attributes(&chosen));
        let shaped: Map<String, Value> = chosen
            .into_iter()
            .map(|(k, a)| {
                let v = if a.binary {
                    json!({ "DataType": a.data_type, "BinaryValue": STANDARD.encode(&a.value) })
                } else {
                    json!({ "DataType": a.data_type, "StringValue": String::from_utf8_lossy(&a.value) })
                };
                (k, v)
            })
            .collect();
        out["MessageAttributes"] = Value::Object(shaped);
    }
    let mut attrs = Map::new();
    let mut put = |name: &str, value: Option<String>| {
        if let Some(v) = value.filter(|_| system.contains(name) || system.contains("All")) {
            attrs.insert(name.to_string(), json!(v));
        }
    };
    put("ApproximateReceiveCount", Some(m.receive_count.to_string()));
    put("SentTimestamp", Some(crate::model::parse_time(&m.sent_at).unwrap_or(0).to_string()));
    put("SenderId", m.sender.clone());
    put("ApproximateFirstReceiveTimestamp", m.first_received_ms.map(|t| t.to_string()));
    put("AWSTraceHeader", m.attributes.get(TRACE_ATTR).cloned());
    put("DeadLetterQueueSourceArn", m.attributes.get(SOURCE_ATTR).map(|q| queue_arn(region, q)));
    put("MessageGroupId", m.group.clone());
    put("SequenceNumber", m.sequence.clone());
    put("MessageDeduplicationId", m.dedup_id.clone());
    if !attrs.is_empty() {
        out["Attributes"] = Value::Object(attrs);
    }
    out
}

async fn receive_message(b: &Broker, ctx: &Ctx, req: Receive) -> Out {
    let name = queue_name(&req.queue_url)?;
    let max = match req.max_number_of_messages {
        None => 1,
        Some(n) if (1..=checks::MAX_BATCH as i64).contains(&n) => n as u32,
        Some(n) => {
            return Err(SqsError::invalid(format!(
                "Value {n} for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided."
            )))
        }
    };
    let native = ReceiveRequest {
        max: Some(max),
        // None: the queue's ReceiveMessageWaitTimeSeconds.
        wait_s: req.wait_time_seconds.map(|w| checks::in_range("WaitTimeSeconds", w, 0..=20)).transpose()?,
        visibility_timeout_s: req
            .visibility_timeout
            .map(|v| checks::in_range("VisibilityTimeout", v, 0..=MAX_VISIBILITY_S as i64))
            .transpose()?,
    };
    if let Some(attempt) = &req.receive_request_attempt_id {
        checks::attempt_id(attempt)?;
        if let Some(earlier) = b.earlier_attempt(&ctx.who, &name, attempt).await? {
            if let Ok(answer) = serde_json::from_str::<Value>(&earlier) {
                return Ok(answer);
            }
        }
    }
    let messages = b.receive(&ctx.who, &name, native).await?;
    let system = system_names(req.attribute_names.iter().chain(&req.message_system_attribute_names));
    let out: Vec<Value> = messages
        .into_iter()
        .map(|m| to_sqs_message(m, &req.message_attribute_names, &system, &ctx.region))
        .collect();
    // SQS leaves `Messages` out of an empty answer, and clients test for the key.
    let answer = if out.is_empty() { json!({}) } else { json!({ "Messages": out }) };
    if let (Some(attempt), false) = (&req.receive_request_attempt_id, out.is_empty()) {
        b.record_attempt(&ctx.who, &name, attempt, &answer.to_string()).await?;
    }
    Ok(answer)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Handle {
    queue_url: String,
    receipt_handle: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HandleEntry {
    id: String,
    receipt_handle: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HandleBatch {
    queue_url: String,
    entries: Vec<HandleEntry>,
}

/// Deletes by receipt. Like SQS, a genuine but stale receipt succeeds (the message stays, to
/// be delivered again); only a handle this cluster never issued is an error.
async fn delete(
    b: &Broker,
    ctx: &Ctx,
    name: &str,
    handles: Vec<String>,
) -> Result<Vec<Result<(), SqsError>>, SqsError> {
    let results = b.ack(&ctx.who, name, handles.clone()).await?;
    Ok(results
        .into_iter()
        .zip(handles)
        .map(|(r, h)| match r {
            Err(Error::ReceiptInvalid) if b.genuine_receipt(name, &h) => Ok(()),
            Err(Error::ReceiptInvalid) => Err(SqsError::bad(
                "ReceiptHandleIsInvalid",
                format!("The input receipt handle \"{h}\" is not a valid receipt handle."),
            )),
            r => r.map_err(SqsError::from),
        })
        .collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Visibility {
    queue_url: String,
    receipt_handle: String,
    visibility_timeout: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VisibilityEntry {
    id: String,
    receipt_handle: String,
    visibility_timeout: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VisibilityBatch {
    queue_url: String,
    entries: Vec<VisibilityEntry>,
}

async fn change_visibility(
    b: &Broker,
    ctx: &Ctx,
    name: &str,
    handle: String,
    timeout: i64,
) -> Result<(), SqsError> {
    let timeout = checks::in_range("VisibilityTimeout", timeout, 0..=MAX_VISIBILITY_S as i64)?;
    match b.extend(&ctx.who, name, handle.clone(), timeout).await {
        Err(Error::ReceiptInvalid) if b.genuine_receipt(name, &handle) => {
            Err(SqsError::bad("MessageNotInflight", "The message referred to isn't in flight."))
        }
        r => r.map_err(SqsError::from),
    }
}
