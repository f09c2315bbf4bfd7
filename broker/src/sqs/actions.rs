//! One function per SQS action, each translating SQS's shapes to the core's and back.

use std::collections::{BTreeMap, HashSet};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::md5::{md5_hex, md5_of_attributes, SqsAttribute};
use super::{Ctx, SqsError, ACCOUNT};
use crate::error::Error;
use crate::model::{Attributes, Message, QueueInfo, QueueSpec, ReceiveRequest, SendMessage};
use crate::service::Broker;

/// Where non-String data types of message attributes are kept (a broker attribute).
const TYPES_ATTR: &str = "mom.sqs.types";
const MAX_BATCH: usize = 10;
/// SQS queue attributes a client may ask for that mom never sets.
const KNOWN_UNSET: [&str; 10] = [
    "RedrivePolicy",
    "Policy",
    "RedriveAllowPolicy",
    "SqsManagedSseEnabled",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

type Out = Result<Value, SqsError>;

pub async fn dispatch(b: &Broker, ctx: &Ctx, action: &str, input: Value) -> Out {
    match action {
        "CreateQueue" => create_queue(b, ctx, parse(input)?).await,
        "GetQueueUrl" => get_queue_url(b, ctx, parse(input)?).await,
        "ListQueues" => list_queues(b, ctx, parse(input)?),
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
        "GetQueueAttributes" => get_queue_attributes(b, ctx, parse(input)?).await,
        "SetQueueAttributes" => {
            let req: SetAttributes = parse(input)?;
            let spec = spec_from_attributes(&req.attributes)?;
            b.patch_queue(&ctx.who, &queue_name(&req.queue_url)?, spec).await?;
            Ok(json!({}))
        }
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
            let ids = batch_ids(req.entries.iter().map(|e| &e.id))?;
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
            let ids = batch_ids(req.entries.iter().map(|e| &e.id))?;
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

fn queue_url(ctx: &Ctx, name: &str) -> String {
    format!("{}/{ACCOUNT}/{name}", ctx.base_url)
}

fn queue_arn(ctx: &Ctx, name: &str) -> String {
    format!("arn:aws:sqs:{}:{ACCOUNT}:{name}", ctx.region)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QueueRef {
    queue_url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateQueue {
    queue_name: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

async fn create_queue(b: &Broker, ctx: &Ctx, req: CreateQueue) -> Out {
    if req.queue_name.ends_with(".fifo") || req.attributes.get("FifoQueue").is_some_and(|v| v == "true") {
        return Err(SqsError::invalid(
            "FIFO queues are not supported by this endpoint yet; use a standard queue",
        ));
    }
    let spec = spec_from_attributes(&req.attributes)?;
    b.create_queue(&ctx.who, &req.queue_name, spec).await?;
    Ok(json!({ "QueueUrl": queue_url(ctx, &req.queue_name) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetQueueUrl {
    queue_name: String,
}

async fn get_queue_url(b: &Broker, ctx: &Ctx, req: GetQueueUrl) -> Out {
    b.get_queue(&ctx.who, &req.queue_name).await?;
    Ok(json!({ "QueueUrl": queue_url(ctx, &req.queue_name) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListQueues {
    queue_name_prefix: Option<String>,
    max_results: Option<usize>,
    /// The last name of the previous page.
    next_token: Option<String>,
}

fn list_queues(b: &Broker, ctx: &Ctx, req: ListQueues) -> Out {
    let prefix = req.queue_name_prefix.unwrap_or_default();
    let mut names: Vec<String> = b
        .list_queues(&ctx.who)
        .into_iter()
        .map(|q| q.name)
        .filter(|n| n.starts_with(&prefix))
        .filter(|n| req.next_token.as_ref().is_none_or(|after| n > after))
        .collect();
    names.sort();
    let page = req.max_results.unwrap_or(1000).clamp(1, 1000);
    let more = req.max_results.is_some() && names.len() > page;
    names.truncate(page);
    let urls: Vec<String> = names.iter().map(|n| queue_url(ctx, n)).collect();
    let mut answer = json!({ "QueueUrls": urls });
    if more {
        answer["NextToken"] = json!(names.last());
    }
    Ok(answer)
}

/// Queue attributes SQS users set, as a native queue spec.
pub fn spec_from_attributes(attrs: &BTreeMap<String, String>) -> Result<QueueSpec, SqsError> {
    let number = |k: &str, v: &str| {
        v.parse::<u32>().map_err(|_| {
            SqsError::bad("InvalidAttributeValue", format!("Invalid value for the parameter {k}."))
        })
    };
    let mut spec = QueueSpec::default();
    for (k, v) in attrs {
        match k.as_str() {
            "VisibilityTimeout" => spec.visibility_timeout_s = Some(number(k, v)?),
            "DelaySeconds" => spec.delay_s = Some(number(k, v)?),
            "MessageRetentionPeriod" => spec.retention_s = Some(number(k, v)?),
            "MaximumMessageSize" => spec.max_message_bytes = Some(number(k, v)?),
            "RedrivePolicy" if v.is_empty() => {
                spec.max_receives = Some(None);
                spec.dead_letter_queue = Some(None);
            }
            "RedrivePolicy" => {
                let bad = || {
                    SqsError::bad("InvalidAttributeValue", "Invalid value for the parameter RedrivePolicy.")
                };
                let policy: Value = serde_json::from_str(v).map_err(|_| bad())?;
                let arn = policy.get("deadLetterTargetArn").and_then(Value::as_str).ok_or_else(bad)?;
                let max = match policy.get("maxReceiveCount") {
                    Some(Value::String(s)) => s.parse::<u32>().map_err(|_| bad())?,
                    Some(Value::Number(n)) => {
                        n.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(bad)?
                    }
                    _ => return Err(bad()),
                };
                let dlq = arn.rsplit(':').next().unwrap_or("").to_string();
                spec.max_receives = Some(Some(max));
                spec.dead_letter_queue = Some(Some(dlq));
            }
            other => {
                return Err(SqsError::bad(
                    "InvalidAttributeName",
                    format!("Unknown or unsupported attribute {other}."),
                ))
            }
        }
    }
    Ok(spec)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SetAttributes {
    queue_url: String,
    attributes: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetAttributes {
    queue_url: String,
    #[serde(default)]
    attribute_names: Vec<String>,
}

fn queue_attributes(ctx: &Ctx, q: &QueueInfo) -> Map<String, Value> {
    let c = &q.config;
    let stats = q.stats.unwrap_or(crate::model::QueueStats {
        available: 0,
        in_flight: 0,
        delayed: 0,
        oldest_age_s: 0,
    });
    let created = crate::model::parse_time(&q.created_at).map(|ms| ms / 1000).unwrap_or(0).to_string();
    let mut m = Map::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_string(), Value::String(v));
    };
    put("QueueArn", queue_arn(ctx, &q.name));
    put("ApproximateNumberOfMessages", stats.available.to_string());
    put("ApproximateNumberOfMessagesNotVisible", stats.in_flight.to_string());
    put("ApproximateNumberOfMessagesDelayed", stats.delayed.to_string());
    put("CreatedTimestamp", created.clone());
    put("LastModifiedTimestamp", created);
    put("VisibilityTimeout", c.visibility_timeout_s.to_string());
    put("DelaySeconds", c.delay_s.to_string());
    put("MessageRetentionPeriod", c.retention_s.to_string());
    put("MaximumMessageSize", c.max_message_bytes.to_string());
    put("ReceiveMessageWaitTimeSeconds", "0".into());
    if let (Some(dlq), Some(max)) = (&c.dead_letter_queue, c.max_receives) {
        put(
            "RedrivePolicy",
            json!({ "deadLetterTargetArn": queue_arn(ctx, dlq), "maxReceiveCount": max }).to_string(),
        );
    }
    m
}

async fn get_queue_attributes(b: &Broker, ctx: &Ctx, req: GetAttributes) -> Out {
    let info = b.get_queue(&ctx.who, &queue_name(&req.queue_url)?).await?;
    let all = queue_attributes(ctx, &info);
    let wanted: HashSet<&str> = req.attribute_names.iter().map(String::as_str).collect();
    if wanted.contains("All") {
        return Ok(json!({ "Attributes": all }));
    }
    let mut out = Map::new();
    for name in wanted {
        match all.get(name) {
            Some(v) => {
                out.insert(name.to_string(), v.clone());
            }
            // Real SQS attributes mom has no value for are left out, as SQS leaves out unset ones.
            None if KNOWN_UNSET.contains(&name) => {}
            None => return Err(SqsError::bad("InvalidAttributeName", format!("Unknown Attribute {name}."))),
        }
    }
    Ok(json!({ "Attributes": out }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AttributeValue {
    data_type: String,
    string_value: Option<String>,
    /// Base64, as the JSON protocol carries blobs.
    binary_value: Option<String>,
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
    delay_seconds: Option<u32>,
    #[serde(default)]
    message_attributes: BTreeMap<String, AttributeValue>,
    message_deduplication_id: Option<String>,
    message_group_id: Option<String>,
}

/// An SQS message into the core's shape, with the digests SQS would answer.
pub fn to_native(e: Entry) -> Result<(SendMessage, Value), SqsError> {
    if e.message_group_id.is_some() {
        return Err(SqsError::invalid(
            "MessageGroupId is only valid on FIFO queues, which this endpoint does not support yet",
        ));
    }
    if e.message_body.is_empty() {
        return Err(SqsError::bad("MissingParameter", "The request must contain the parameter MessageBody."));
    }
    let mut attributes = Attributes::new();
    let mut sqs_attrs = BTreeMap::new();
    let mut types = BTreeMap::new();
    for (name, v) in e.message_attributes {
        if name.starts_with("AWS.") || name.starts_with("Amazon.") {
            return Err(SqsError::invalid(format!(
                "attribute {name}: names starting AWS. or Amazon. are reserved"
            )));
        }
        let binary = v.data_type.starts_with("Binary");
        if v.data_type.starts_with("Number")
            && v.string_value.as_deref().is_some_and(|n| n.trim().parse::<f64>().is_err())
        {
            return Err(SqsError::invalid(format!("attribute {name}: a Number must hold a number")));
        }
        let (stored, raw) = match (binary, v.string_value, v.binary_value) {
            (false, Some(s), _) => (s.clone(), s.into_bytes()),
            (true, _, Some(b64)) => {
                let raw = STANDARD
                    .decode(&b64)
                    .map_err(|_| SqsError::invalid(format!("attribute {name}: BinaryValue is not base64")))?;
                (b64, raw)
            }
            _ => {
                return Err(SqsError::invalid(format!(
                    "attribute {name}: a value matching its DataType is required"
                )))
            }
        };
        if v.data_type != "String" {
            types.insert(name.clone(), v.data_type.clone());
        }
        attributes.insert(name.clone(), stored);
        sqs_attrs.insert(name, SqsAttribute { data_type: v.data_type, value: raw, binary });
    }
    let mut digests = json!({ "MD5OfMessageBody": md5_hex(e.message_body.as_bytes()) });
    if !sqs_attrs.is_empty() {
        digests["MD5OfMessageAttributes"] = json!(md5_of_attributes(&sqs_attrs));
    }
    let mut system = Attributes::new();
    if !types.is_empty() {
        system.insert(TYPES_ATTR.into(), serde_json::to_string(&types).unwrap_or_default());
    }
    let msg = SendMessage {
        body: e.message_body,
        attributes,
        delay_s: e.delay_seconds,
        dedup_id: e.message_deduplication_id,
        system,
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
    let (msg, mut answer) = to_native(req.entry)?;
    let sent =
        b.send(&ctx.who, &name, vec![msg]).await?.pop().unwrap_or(Err(Error::invalid("no message")))?;
    answer["MessageId"] = json!(sent.id);
    Ok(answer)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendBatch {
    queue_url: String,
    entries: Vec<Entry>,
}

/// Checks a batch's entry ids: 1 to 10, distinct.
pub fn batch_ids<'a>(ids: impl Iterator<Item = &'a String>) -> Result<Vec<String>, SqsError> {
    let ids: Vec<String> = ids.cloned().collect();
    if ids.is_empty() {
        return Err(SqsError::bad("EmptyBatchRequest", "There should be at least one entry in the request."));
    }
    if ids.len() > MAX_BATCH {
        return Err(SqsError::bad(
            "TooManyEntriesInBatchRequest",
            format!("Maximum number of entries per request are {MAX_BATCH}."),
        ));
    }
    if ids.iter().collect::<HashSet<_>>().len() != ids.len() {
        return Err(SqsError::bad(
            "BatchEntryIdsNotDistinct",
            "Two or more batch entries in the request have the same Id.",
        ));
    }
    Ok(ids)
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
    let ids = batch_ids(req.entries.iter().map(|e| &e.id))?;
    let converted: Vec<Result<(SendMessage, Value), SqsError>> =
        req.entries.into_iter().map(to_native).collect();
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
            Ok(answer)
        })
        .collect();
    Ok(batch_answer(ids, results, |v| v))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Receive {
    queue_url: String,
    max_number_of_messages: Option<u32>,
    wait_time_seconds: Option<u32>,
    visibility_timeout: Option<u32>,
    #[serde(default)]
    message_attribute_names: Vec<String>,
    #[serde(default)]
    attribute_names: Vec<String>,
    #[serde(default)]
    message_system_attribute_names: Vec<String>,
}

/// Does a `MessageAttributeNames` entry ("All", ".*", "prefix.*" or a name) select `name`?
fn selects(pattern: &str, name: &str) -> bool {
    match pattern {
        "All" | ".*" => true,
        p => match p.strip_suffix(".*") {
            Some(prefix) => name.starts_with(prefix),
            None => p == name,
        },
    }
}

pub fn to_sqs_message(m: Message, attr_patterns: &[String], system: &HashSet<&str>) -> Value {
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
    let all = system.contains("All");
    let mut attrs = Map::new();
    if all || system.contains("ApproximateReceiveCount") {
        attrs.insert("ApproximateReceiveCount".into(), json!(m.receive_count.to_string()));
    }
    if all || system.contains("SentTimestamp") {
        let sent = crate::model::parse_time(&m.sent_at).unwrap_or(0);
        attrs.insert("SentTimestamp".into(), json!(sent.to_string()));
    }
    if !attrs.is_empty() {
        out["Attributes"] = Value::Object(attrs);
    }
    out
}

async fn receive_message(b: &Broker, ctx: &Ctx, req: Receive) -> Out {
    let name = queue_name(&req.queue_url)?;
    let max = req.max_number_of_messages.unwrap_or(1);
    if !(1..=MAX_BATCH as u32).contains(&max) {
        return Err(SqsError::invalid(format!(
            "Value {max} for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10."
        )));
    }
    let native = ReceiveRequest {
        max: Some(max),
        wait_s: req.wait_time_seconds,
        visibility_timeout_s: req.visibility_timeout,
    };
    let messages = b.receive(&ctx.who, &name, native).await?;
    let system: HashSet<&str> =
        req.attribute_names.iter().chain(&req.message_system_attribute_names).map(String::as_str).collect();
    let out: Vec<Value> =
        messages.into_iter().map(|m| to_sqs_message(m, &req.message_attribute_names, &system)).collect();
    Ok(json!({ "Messages": out }))
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
    visibility_timeout: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VisibilityEntry {
    id: String,
    receipt_handle: String,
    visibility_timeout: u32,
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
    timeout: u32,
) -> Result<(), SqsError> {
    match b.extend(&ctx.who, name, handle.clone(), timeout).await {
        Err(Error::ReceiptInvalid) if b.genuine_receipt(name, &handle) => {
            Err(SqsError::bad("MessageNotInflight", "The message referred to isn't in flight."))
        }
        r => r.map_err(SqsError::from),
    }
}
