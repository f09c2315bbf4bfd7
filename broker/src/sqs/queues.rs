//! The SQS queue actions: create, look up, list, attributes, tags, permissions and dead-letter
//! sources, each over the core's queue operations.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::actions::{arn_queue, queue_arn, queue_name, queue_url, Out, QueueRef};
use super::{Ctx, SqsError};
use crate::error::Error;
use crate::meta::QueueMeta;
use crate::model::{
    validate_queue_name, QueueInfo, QueueSpec, RedriveAllow, RedrivePermission, Tags, MAX_REDRIVE_SOURCES,
};
use crate::service::Broker;

/// Every queue attribute SQS defines (`All` aside): GetQueueAttributes knows each name.
const QUEUE_ATTRIBUTES: [&str; 21] = [
    "Policy",
    "VisibilityTimeout",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
    "ApproximateNumberOfMessagesDelayed",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    "FifoQueue",
    "ContentBasedDeduplication",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "RedriveAllowPolicy",
    "SqsManagedSseEnabled",
];

/// The FIFO attributes SQS accepts on FIFO queues only. `DeduplicationScope` and
/// `FifoThroughputLimit` take both of SQS's values and are kept as given: deduplication here is
/// always per queue (what `queue` means; `messageGroup` is a narrower scope, so a queue-wide
/// check never lets a duplicate through that SQS would have caught), and there is no per-queue
/// throughput limit to lift.
const FIFO_ONLY: [&str; 3] = ["ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreateQueue {
    queue_name: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    /// Lower case in SQS's model.
    #[serde(default, rename = "tags")]
    tags: Tags,
}

pub(super) async fn create_queue(b: &Broker, ctx: &Ctx, req: CreateQueue) -> Out {
    let fifo_name = req.queue_name.ends_with(".fifo");
    let fifo_attr = req.attributes.get("FifoQueue").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if validate_queue_name("queue", &req.queue_name).is_err() {
        return Err(SqsError::invalid(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length",
        ));
    }
    if fifo_name != fifo_attr {
        return Err(SqsError::invalid(if fifo_name {
            "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length. Set the FifoQueue attribute to true."
        } else {
            "The FifoQueue attribute is true, so the queue name must end with the .fifo suffix."
        }));
    }
    if !fifo_attr {
        if let Some(a) = FIFO_ONLY.iter().find(|a| req.attributes.contains_key(**a)) {
            return Err(SqsError::bad("InvalidAttributeName", format!("Unknown Attribute {a}.")));
        }
    }
    let mut spec = spec_from_attributes(&req.attributes)?;
    check_redrive(b, &req.queue_name, &req.attributes, &spec).await?;
    if !req.tags.is_empty() {
        spec.tags = Some(req.tags);
    }
    b.create_queue(&ctx.who, &req.queue_name, spec).await?;
    Ok(json!({ "QueueUrl": queue_url(ctx, &req.queue_name) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetQueueUrl {
    queue_name: String,
}

pub(super) async fn get_queue_url(b: &Broker, ctx: &Ctx, req: GetQueueUrl) -> Out {
    b.get_queue(&ctx.who, &req.queue_name).await?;
    Ok(json!({ "QueueUrl": queue_url(ctx, &req.queue_name) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListQueues {
    queue_name_prefix: Option<String>,
    max_results: Option<usize>,
    /// The last name of the previous page.
    next_token: Option<String>,
}

/// One page of names (sorted), as ListQueues and ListDeadLetterSourceQueues answer them.
fn page(ctx: &Ctx, mut names: Vec<String>, max: Option<usize>, after: Option<&String>, key: &str) -> Value {
    names.retain(|n| after.is_none_or(|a| n > a));
    names.sort();
    let size = max.unwrap_or(1000).clamp(1, 1000);
    let more = max.is_some() && names.len() > size;
    names.truncate(size);
    let urls: Vec<String> = names.iter().map(|n| queue_url(ctx, n)).collect();
    let mut answer = json!({ key: urls });
    if more {
        answer["NextToken"] = json!(names.last());
    }
    answer
}

pub(super) fn list_queues(b: &Broker, ctx: &Ctx, req: ListQueues) -> Out {
    let prefix = req.queue_name_prefix.unwrap_or_default();
    let names: Vec<String> =
        b.list_queues(&ctx.who).into_iter().map(|q| q.name).filter(|n| n.starts_with(&prefix)).collect();
    Ok(page(ctx, names, req.max_results, req.next_token.as_ref(), "QueueUrls"))
}

fn bad_value(k: &str) -> SqsError {
    SqsError::bad("InvalidAttributeValue", format!("Invalid value for the parameter {k}."))
}

fn number(k: &str, v: &str, range: std::ops::RangeInclusive<u32>) -> Result<u32, SqsError> {
    v.trim().parse::<u32>().ok().filter(|n| range.contains(n)).ok_or_else(|| bad_value(k))
}

/// Why a policy attribute is refused, in SQS's words.
fn bad_policy(k: &str, v: &str, reason: &str) -> SqsError {
    SqsError::invalid(format!("Value {v} for parameter {k} is invalid. Reason: {reason}"))
}

fn redrive_policy(v: &str) -> Result<(String, u32), SqsError> {
    let k = "RedrivePolicy";
    let policy: Value =
        serde_json::from_str(v).map_err(|_| bad_policy(k, v, "Redrive policy is not a valid JSON map."))?;
    let arn = policy.get("deadLetterTargetArn").and_then(Value::as_str);
    let dlq =
        arn.and_then(arn_queue).ok_or_else(|| bad_policy(k, v, "Invalid value for deadLetterTargetArn."))?;
    let max = match policy.get("maxReceiveCount") {
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    match max {
        Some(m) if (1..=1000).contains(&m) => Ok((dlq, m as u32)),
        Some(m) => Err(bad_policy(
            k,
            v,
            &format!(
                "Invalid value for maxReceiveCount: {m}, valid values are from 1 to 1000 both inclusive."
            ),
        )),
        None => {
            Err(bad_policy(k, v, "Redrive policy does not contain mandatory attribute: maxReceiveCount."))
        }
    }
}

fn redrive_allow_policy(v: &str) -> Result<RedriveAllow, SqsError> {
    let k = "RedriveAllowPolicy";
    let policy: Value = serde_json::from_str(v)
        .map_err(|_| bad_policy(k, v, "Redrive allow policy is not a valid JSON map."))?;
    let permission = match policy.get("redrivePermission").and_then(Value::as_str) {
        Some("allowAll") => RedrivePermission::AllowAll,
        Some("denyAll") => RedrivePermission::DenyAll,
        Some("byQueue") => RedrivePermission::ByQueue,
        _ => return Err(bad_policy(k, v, "redrivePermission must be one of allowAll, denyAll, byQueue.")),
    };
    let arns = policy.get("sourceQueueArns").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut sources = Vec::new();
    for a in &arns {
        let name = a
            .as_str()
            .and_then(arn_queue)
            .ok_or_else(|| bad_policy(k, v, "Invalid value for sourceQueueArns."))?;
        sources.push(name);
    }
    match permission {
        RedrivePermission::ByQueue if !(1..=MAX_REDRIVE_SOURCES).contains(&sources.len()) => {
            Err(bad_policy(k, v, &format!("byQueue needs 1 to {MAX_REDRIVE_SOURCES} sourceQueueArns.")))
        }
        RedrivePermission::AllowAll | RedrivePermission::DenyAll if !sources.is_empty() => {
            Err(bad_policy(k, v, "sourceQueueArns is only valid with redrivePermission byQueue."))
        }
        _ => Ok(RedriveAllow { permission, source_queues: sources }),
    }
}

/// Queue attributes SQS users set, as a native queue spec: the ones with a meaning here become
/// its settings, `Policy` and the KMS and SSE ones are kept as given (no effect here).
pub fn spec_from_attributes(attrs: &BTreeMap<String, String>) -> Result<QueueSpec, SqsError> {
    let mut spec = QueueSpec::default();
    for (k, v) in attrs {
        let k = k.as_str();
        match k {
            "VisibilityTimeout" => spec.visibility_timeout_s = Some(number(k, v, 0..=43_200)?),
            "DelaySeconds" => spec.delay_s = Some(number(k, v, 0..=900)?),
            "MessageRetentionPeriod" => spec.retention_s = Some(number(k, v, 60..=1_209_600)?),
            "MaximumMessageSize" => spec.max_message_bytes = Some(number(k, v, 1024..=1_048_576)?),
            "ReceiveMessageWaitTimeSeconds" => spec.receive_wait_s = Some(number(k, v, 0..=20)?),
            "RedrivePolicy" if v.is_empty() => {
                spec.max_receives = Some(None);
                spec.dead_letter_queue = Some(None);
            }
            "RedrivePolicy" => {
                let (dlq, max) = redrive_policy(v)?;
                spec.max_receives = Some(Some(max));
                spec.dead_letter_queue = Some(Some(dlq));
            }
            "RedriveAllowPolicy" if v.is_empty() => spec.redrive_allow = Some(None),
            "RedriveAllowPolicy" => spec.redrive_allow = Some(Some(redrive_allow_policy(v)?)),
            "Policy" => {
                if !v.is_empty() && !serde_json::from_str::<Value>(v).is_ok_and(|p| p.is_object()) {
                    return Err(bad_value(k));
                }
                spec.sqs_attributes.insert(k.into(), v.clone());
            }
            "KmsMasterKeyId" => {
                spec.sqs_attributes.insert(k.into(), v.clone());
            }
            "KmsDataKeyReusePeriodSeconds" => {
                spec.sqs_attributes.insert(k.into(), number(k, v, 60..=86_400)?.to_string());
            }
            "SqsManagedSseEnabled" => {
                let on = match v.to_ascii_lowercase().as_str() {
                    "true" => "true",
                    "false" => "false",
                    _ => return Err(bad_value(k)),
                };
                spec.sqs_attributes.insert(k.into(), on.into());
            }
            "FifoQueue" => {
                spec.fifo = Some(match v.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad_value(k)),
                })
            }
            "ContentBasedDeduplication" => {
                spec.content_based_dedup = Some(match v.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad_value(k)),
                })
            }
            "DeduplicationScope" if v == "queue" || v == "messageGroup" => {
                spec.sqs_attributes.insert(k.into(), v.clone());
            }
            "FifoThroughputLimit" if v == "perQueue" || v == "perMessageGroupId" => {
                spec.sqs_attributes.insert(k.into(), v.clone());
            }
            "DeduplicationScope" | "FifoThroughputLimit" => return Err(bad_value(k)),
            other => {
                return Err(SqsError::bad("InvalidAttributeName", format!("Unknown Attribute {other}.")))
            }
        }
    }
    Ok(spec)
}

/// A RedrivePolicy naming a dead-letter queue that exists, is not the queue itself, and takes this
/// queue's dead letters (its RedriveAllowPolicy), in SQS's words. The core checks again.
async fn check_redrive(
    b: &Broker,
    name: &str,
    attrs: &BTreeMap<String, String>,
    spec: &QueueSpec,
) -> Result<(), SqsError> {
    let Some(Some(dlq)) = &spec.dead_letter_queue else { return Ok(()) };
    let v = attrs.get("RedrivePolicy").map(String::as_str).unwrap_or_default();
    let bad = |reason: &str| bad_policy("RedrivePolicy", v, reason);
    if dlq == name {
        return Err(bad("Dead-letter target cannot be the queue itself."));
    }
    let Some(target) = b.meta.fetch::<QueueMeta>(dlq).await else {
        return Err(bad("Dead letter target does not exist."));
    };
    if target.config.redrive_allow.as_ref().is_some_and(|r| !r.allows(name)) {
        return Err(bad(
            "The dead-letter target's RedriveAllowPolicy does not allow this queue as a source.",
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SetAttributes {
    queue_url: String,
    attributes: BTreeMap<String, String>,
}

pub(super) async fn set_queue_attributes(b: &Broker, ctx: &Ctx, req: SetAttributes) -> Out {
    let name = queue_name(&req.queue_url)?;
    let spec = spec_from_attributes(&req.attributes)?;
    let fifo = validate_queue_name("queue", &name).is_ok()
        && b.meta.fetch::<QueueMeta>(&name).await.is_some_and(|q| q.config.fifo);
    if !fifo {
        if let Some(a) = FIFO_ONLY.iter().find(|a| req.attributes.contains_key(**a)) {
            return Err(SqsError::bad("InvalidAttributeName", format!("Unknown Attribute {a}.")));
        }
    }
    check_redrive(b, &name, &req.attributes, &spec).await?;
    b.patch_queue(&ctx.who, &name, spec).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetAttributes {
    queue_url: String,
    #[serde(default)]
    attribute_names: Vec<String>,
}

fn seconds_of(time: &str) -> String {
    crate::model::parse_time(time).map(|ms| ms / 1000).unwrap_or(0).to_string()
}

fn queue_attributes(ctx: &Ctx, q: &QueueInfo) -> Map<String, Value> {
    let c = &q.config;
    let stats = q.stats.unwrap_or(crate::model::QueueStats {
        available: 0,
        in_flight: 0,
        delayed: 0,
        oldest_age_s: 0,
        in_flight_groups: None,
    });
    let mut m = Map::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_string(), Value::String(v));
    };
    put("QueueArn", queue_arn(&ctx.region, &q.name));
    put("ApproximateNumberOfMessages", stats.available.to_string());
    put("ApproximateNumberOfMessagesNotVisible", stats.in_flight.to_string());
    put("ApproximateNumberOfMessagesDelayed", stats.delayed.to_string());
    put("CreatedTimestamp", seconds_of(&q.created_at));
    put("LastModifiedTimestamp", seconds_of(q.modified_at.as_deref().unwrap_or(&q.created_at)));
    put("VisibilityTimeout", c.visibility_timeout_s.to_string());
    put("DelaySeconds", c.delay_s.to_string());
    put("MessageRetentionPeriod", c.retention_s.to_string());
    put("MaximumMessageSize", c.max_message_bytes.to_string());
    put("ReceiveMessageWaitTimeSeconds", c.receive_wait_s.to_string());
    if let (Some(dlq), Some(max)) = (&c.dead_letter_queue, c.max_receives) {
        put(
            "RedrivePolicy",
            json!({ "deadLetterTargetArn": queue_arn(&ctx.region, dlq), "maxReceiveCount": max }).to_string(),
        );
    }
    if let Some(r) = &c.redrive_allow {
        let permission = match r.permission {
            RedrivePermission::AllowAll => "allowAll",
            RedrivePermission::DenyAll => "denyAll",
            RedrivePermission::ByQueue => "byQueue",
        };
        let mut policy = json!({ "redrivePermission": permission });
        if !r.source_queues.is_empty() {
            let arns: Vec<String> = r.source_queues.iter().map(|s| queue_arn(&ctx.region, s)).collect();
            policy["sourceQueueArns"] = json!(arns);
        }
        put("RedriveAllowPolicy", policy.to_string());
    }
    let kms = q.sqs_attributes.contains_key("KmsMasterKeyId");
    for (k, v) in &q.sqs_attributes {
        put(k, v.clone());
    }
    if kms && !q.sqs_attributes.contains_key("KmsDataKeyReusePeriodSeconds") {
        put("KmsDataKeyReusePeriodSeconds", "300".into());
    }
    if !q.sqs_attributes.contains_key("SqsManagedSseEnabled") {
        put("SqsManagedSseEnabled", "false".into());
    }
    if c.fifo {
        put("FifoQueue", "true".into());
        put("ContentBasedDeduplication", c.content_based_dedup.to_string());
        for (k, default) in [("DeduplicationScope", "queue"), ("FifoThroughputLimit", "perQueue")] {
            if !q.sqs_attributes.contains_key(k) {
                put(k, default.into());
            }
        }
    }
    m
}

pub(super) async fn get_queue_attributes(b: &Broker, ctx: &Ctx, req: GetAttributes) -> Out {
    let info = b.get_queue(&ctx.who, &queue_name(&req.queue_url)?).await?;
    let all = queue_attributes(ctx, &info);
    let mut out = Map::new();
    for asked in &req.attribute_names {
        // `All` and the names in any case: clients vary.
        if asked.eq_ignore_ascii_case("all") {
            return Ok(json!({ "Attributes": all }));
        }
        let Some(name) = QUEUE_ATTRIBUTES.iter().find(|n| n.eq_ignore_ascii_case(asked)) else {
            return Err(SqsError::bad("InvalidAttributeName", format!("Unknown Attribute {asked}.")));
        };
        // Attributes without a value (unset ones, the FIFO ones) are left out, as SQS does.
        if let Some(v) = all.get(*name) {
            out.insert(name.to_string(), v.clone());
        }
    }
    Ok(json!({ "Attributes": out }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TagQueue {
    queue_url: String,
    tags: Tags,
}

pub(super) async fn tag_queue(b: &Broker, ctx: &Ctx, req: TagQueue) -> Out {
    let name = queue_name(&req.queue_url)?;
    // The core checks tags (50 at most, key and value lengths): InvalidParameterValue here.
    b.tag_queue(&ctx.who, &name, req.tags).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct UntagQueue {
    queue_url: String,
    tag_keys: Vec<String>,
}

pub(super) async fn untag_queue(b: &Broker, ctx: &Ctx, req: UntagQueue) -> Out {
    b.untag_queue(&ctx.who, &queue_name(&req.queue_url)?, req.tag_keys).await?;
    Ok(json!({}))
}

pub(super) async fn list_queue_tags(b: &Broker, ctx: &Ctx, req: QueueRef) -> Out {
    let tags = b.queue_tags(&ctx.who, &queue_name(&req.queue_url)?).await?;
    Ok(if tags.is_empty() { json!({}) } else { json!({ "Tags": tags }) })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DeadLetterSources {
    queue_url: String,
    max_results: Option<usize>,
    next_token: Option<String>,
}

pub(super) async fn list_dead_letter_source_queues(b: &Broker, ctx: &Ctx, req: DeadLetterSources) -> Out {
    let sources = b.dead_letter_sources(&ctx.who, &queue_name(&req.queue_url)?).await?;
    // Lower case in SQS's model.
    Ok(page(ctx, sources, req.max_results, req.next_token.as_ref(), "queueUrls"))
}

/// The actions AddPermission may grant.
const PERMISSION_ACTIONS: [&str; 7] = [
    "*",
    "SendMessage",
    "ReceiveMessage",
    "DeleteMessage",
    "ChangeMessageVisibility",
    "GetQueueAttributes",
    "GetQueueUrl",
];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AddPermission {
    queue_url: String,
    label: String,
    #[serde(rename = "AWSAccountIds")]
    aws_account_ids: Vec<String>,
    actions: Vec<String>,
}

fn label_error(label: &str, reason: &str) -> Error {
    Error::invalid(format!("Value {label} for parameter Label is invalid. Reason: {reason}"))
}

/// AddPermission: a statement labelled `Label` in the queue's `Policy`, as SQS adds it. Kept
/// with no effect: access here is the native API's owner, admins and grants.
pub(super) async fn add_permission(b: &Broker, ctx: &Ctx, req: AddPermission) -> Out {
    let name = queue_name(&req.queue_url)?;
    let label_ok = (1..=80).contains(&req.label.len())
        && req.label.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if !label_ok {
        return Err(label_error(
            &req.label,
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length",
        )
        .into());
    }
    if req.aws_account_ids.is_empty() || req.actions.is_empty() {
        return Err(SqsError::bad(
            "MissingParameter",
            "AWSAccountIds and Actions need at least one entry each.",
        ));
    }
    if let Some(a) = req.actions.iter().find(|a| !PERMISSION_ACTIONS.contains(&a.as_str())) {
        return Err(SqsError::invalid(format!("Value SQS:{a} for parameter ActionName is invalid. Reason: Only the queue owner is allowed to invoke this action.")));
    }
    let arn = queue_arn(&ctx.region, &name);
    let principals: Vec<String> =
        req.aws_account_ids.iter().map(|id| format!("arn:aws:iam::{id}:root")).collect();
    let actions: Vec<String> = req.actions.iter().map(|a| format!("SQS:{a}")).collect();
    let statement = json!({
        "Sid": req.label,
        "Effect": "Allow",
        "Principal": { "AWS": if principals.len() == 1 { json!(principals[0]) } else { json!(principals) } },
        "Action": if actions.len() == 1 { json!(actions[0]) } else { json!(actions) },
        "Resource": arn,
    });
    b.update_sqs_attributes(&ctx.who, &name, |attrs| {
        let mut policy: Value = attrs
            .get("Policy")
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_else(|| json!({ "Version": "2012-10-17", "Id": format!("{arn}/SQSDefaultPolicy") }));
        let statements = policy["Statement"].as_array().cloned().unwrap_or_default();
        if statements.iter().any(|s| s["Sid"] == json!(req.label)) {
            return Err(label_error(&req.label, "Already exists."));
        }
        let mut statements = statements;
        statements.push(statement.clone());
        policy["Statement"] = json!(statements);
        attrs.insert("Policy".into(), policy.to_string());
        Ok(())
    })
    .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RemovePermission {
    queue_url: String,
    label: String,
}

/// RemovePermission: drops the statement labelled `Label` from the queue's `Policy`.
pub(super) async fn remove_permission(b: &Broker, ctx: &Ctx, req: RemovePermission) -> Out {
    let name = queue_name(&req.queue_url)?;
    b.update_sqs_attributes(&ctx.who, &name, |attrs| {
        let missing = || label_error(&req.label, "can't find label on existing policy.");
        let mut policy: Value =
            attrs.get("Policy").and_then(|p| serde_json::from_str(p).ok()).ok_or_else(missing)?;
        let mut statements = policy["Statement"].as_array().cloned().unwrap_or_default();
        let before = statements.len();
        statements.retain(|s| s["Sid"] != json!(req.label));
        if statements.len() == before {
            return Err(missing());
        }
        if statements.is_empty() {
            attrs.remove("Policy");
        } else {
            policy["Statement"] = json!(statements);
            attrs.insert("Policy".into(), policy.to_string());
        }
        Ok(())
    })
    .await?;
    Ok(json!({}))
}
