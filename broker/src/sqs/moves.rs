//! SQS message move tasks (`StartMessageMoveTask`, `ListMessageMoveTasks`,
//! `CancelMessageMoveTask`) over the core's move tasks (`service/moves.rs`: the native redrive,
//! run as a task). A task handle is, as on SQS, base64 of `{"taskId", "sourceArn"}`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::actions::{arn_queue, queue_arn, Out};
use super::{checks, Ctx, SqsError};
use crate::error::Error;
use crate::meta::QueueMeta;
use crate::service::{Broker, MoveStatus, MoveTask};

fn not_found(what: &str) -> SqsError {
    SqsError::bad(
        "ResourceNotFoundException",
        format!("The resource that you specified for the {what} parameter doesn't exist."),
    )
}

/// The core's errors in the codes these actions document.
fn error(e: Error, what: &str) -> SqsError {
    match e {
        Error::QueueNotFound(_) | Error::NotFound(_) => not_found(what),
        Error::InvalidRequest(m) => SqsError::bad("UnsupportedOperation", m),
        e => e.into(),
    }
}

fn source_queue(arn: &str, what: &str) -> Result<String, SqsError> {
    arn_queue(arn).ok_or_else(|| {
        SqsError::invalid(format!(
            "Value {arn} for parameter {what} is invalid. Reason: not an SQS queue ARN."
        ))
    })
}

fn handle(ctx: &Ctx, t: &MoveTask) -> String {
    STANDARD.encode(json!({ "taskId": t.id, "sourceArn": queue_arn(&ctx.region, &t.source) }).to_string())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Start {
    source_arn: String,
    destination_arn: Option<String>,
    max_number_of_messages_per_second: Option<i64>,
}

pub(super) async fn start(b: &Broker, ctx: &Ctx, req: Start) -> Out {
    let source = source_queue(&req.source_arn, "SourceArn")?;
    let destination =
        req.destination_arn.as_deref().map(|a| source_queue(a, "DestinationArn")).transpose()?;
    let rate = req
        .max_number_of_messages_per_second
        .map(|r| checks::in_range("MaxNumberOfMessagesPerSecond", r, 1..=500))
        .transpose()?;
    // As on SQS, the source must be some queue's dead-letter queue.
    if b.meta.fetch::<QueueMeta>(&source).await.is_none() {
        return Err(not_found("SourceArn"));
    }
    let is_dlq = b
        .meta
        .list::<QueueMeta>()
        .iter()
        .any(|(_, m)| m.config.dead_letter_queue.as_deref() == Some(&source));
    if !is_dlq {
        return Err(SqsError::bad(
            "UnsupportedOperation",
            "Source queue must be configured as a Dead Letter Queue.",
        ));
    }
    let task = b.start_move(&ctx.who, &source, destination, rate).await.map_err(|e| error(e, "SourceArn"))?;
    Ok(json!({ "TaskHandle": handle(ctx, &task) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct List {
    source_arn: String,
    max_results: Option<i64>,
}

pub(super) async fn list(b: &Broker, ctx: &Ctx, req: List) -> Out {
    let source = source_queue(&req.source_arn, "SourceArn")?;
    let max = req.max_results.map(|m| checks::in_range("MaxResults", m, 1..=10)).transpose()?.unwrap_or(1);
    let tasks = b.list_moves(&ctx.who, &source).await.map_err(|e| error(e, "SourceArn"))?;
    let results: Vec<Value> = tasks
        .iter()
        .take(max as usize)
        .map(|t| {
            let status = match t.status {
                MoveStatus::Running => "RUNNING",
                MoveStatus::Cancelling => "CANCELLING",
                MoveStatus::Cancelled => "CANCELLED",
                MoveStatus::Completed => "COMPLETED",
                MoveStatus::Failed => "FAILED",
            };
            let mut r = json!({
                "Status": status,
                "SourceArn": queue_arn(&ctx.region, &t.source),
                "ApproximateNumberOfMessagesMoved": t.moved,
                "ApproximateNumberOfMessagesToMove": t.to_move,
                "StartedTimestamp": t.started_ms,
            });
            if t.status == MoveStatus::Running {
                r["TaskHandle"] = json!(handle(ctx, t));
            }
            if let Some(d) = &t.destination {
                r["DestinationArn"] = json!(queue_arn(&ctx.region, d));
            }
            if let Some(rate) = t.max_per_s {
                r["MaxNumberOfMessagesPerSecond"] = json!(rate);
            }
            if let Some(f) = &t.failure {
                r["FailureReason"] = json!(f);
            }
            r
        })
        .collect();
    Ok(json!({ "Results": results }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Cancel {
    task_handle: String,
}

pub(super) async fn cancel(b: &Broker, ctx: &Ctx, req: Cancel) -> Out {
    let decoded: Option<Value> =
        STANDARD.decode(req.task_handle.trim()).ok().and_then(|raw| serde_json::from_slice(&raw).ok());
    let (id, source) = decoded
        .as_ref()
        .and_then(|v| Some((v["taskId"].as_str()?.to_string(), arn_queue(v["sourceArn"].as_str()?)?)))
        .ok_or_else(|| not_found("TaskHandle"))?;
    let task = b.cancel_move(&ctx.who, &source, &id).await.map_err(|e| error(e, "TaskHandle"))?;
    Ok(json!({ "ApproximateNumberOfMessagesMoved": task.moved }))
}
