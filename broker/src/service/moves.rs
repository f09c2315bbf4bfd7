//! Message move tasks: the native redrive (`POST /v1/queues/{dlq}/redrive`) run as a task that
//! reports progress, can be throttled and cancelled, and is listed from any node (SQS
//! `StartMessageMoveTask`, `ListMessageMoveTasks`, `CancelMessageMoveTask`). The task runs on the
//! node that started it, in batches; after each it writes its progress (`store/moves.rs`) and
//! looks for a cancel. A task whose node stopped (no progress written for [`STALE_MS`]) is
//! reported `FAILED`.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::access::Right;
use super::{Broker, Principal};
use crate::error::{Error, Result};
use crate::model::{now_ms, validate_queue_name};
use crate::store::{Mailbox, MoveTaskStore, MOVE_TASKS_KEPT};

/// A running task writes its progress at least this often (a batch, or a second when throttled).
const STALE_MS: i64 = 30_000;
/// Messages one batch takes at most.
const BATCH: u32 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MoveStatus {
    Running,
    Cancelling,
    Cancelled,
    Completed,
    Failed,
}

/// A message move task as stored and listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MoveTask {
    pub id: String,
    pub source: String,
    /// `None`: each message back to the queue it was dead-lettered from.
    pub destination: Option<String>,
    pub max_per_s: Option<u32>,
    pub status: MoveStatus,
    pub moved: u64,
    pub to_move: u64,
    pub started_ms: i64,
    pub updated_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl MoveTask {
    fn finished(&self) -> bool {
        !matches!(self.status, MoveStatus::Running | MoveStatus::Cancelling)
    }
}

/// A task on its way: the broker (held, so that it outlives the request that started it).
struct Runner {
    broker: Arc<Broker>,
    tasks: MoveTaskStore,
}

impl Broker {
    fn move_tasks(&self) -> MoveTaskStore {
        MoveTaskStore::new(self.redis.clone())
    }

    /// Starts moving the messages of `source` (not in flight, sent before now) to `destination`, or
    /// each back to its source queue; at most `max_per_s` a second. Owner or admin of `source`,
    /// publish rights on `destination`. One task at a time per source queue.
    pub async fn start_move(
        &self,
        who: &Principal,
        source: &str,
        destination: Option<String>,
        max_per_s: Option<u32>,
    ) -> Result<MoveTask> {
        if let Some(d) = &destination {
            validate_queue_name("queue", d)?;
        }
        let (meta, mb) = self.queue_for(who, source, Right::Manage).await?;
        if let Some(d) = &destination {
            self.queue_for(who, d, Right::Publish).await?;
        }
        let tasks = self.list_moves(who, source).await?;
        if tasks.iter().any(|t| !t.finished()) {
            return Err(Error::invalid(format!(
                "a message move task is already running on queue '{source}': one at a time per source queue"
            )));
        }
        let (stats, _, _) = self.mailboxes.stats(&mb, meta.config.retention_s as u64 * 1000).await?;
        let now = now_ms();
        let task = MoveTask {
            id: format!("{:032x}", rand::random::<u128>()),
            source: source.to_string(),
            destination,
            max_per_s,
            status: MoveStatus::Running,
            moved: 0,
            to_move: stats.available,
            started_ms: now,
            updated_ms: now,
            failure: None,
        };
        // The oldest finished tasks make room for this one.
        let mut finished: Vec<&MoveTask> = tasks.iter().filter(|t| t.finished()).collect();
        finished.sort_by_key(|t| t.started_ms);
        let excess = (tasks.len() + 1).saturating_sub(MOVE_TASKS_KEPT);
        let drop: Vec<String> = finished.iter().take(excess).map(|t| t.id.clone()).collect();
        let broker = self.this().ok_or_else(|| Error::Unavailable("this broker runs no tasks".into()))?;
        let store = self.move_tasks();
        store.save(source, &task.id, &json(&task), &drop).await?;
        let runner = Runner { broker, tasks: store };
        let bound = self.mailboxes.next_id(&mb).await?;
        tokio::spawn(runner.run(task.clone(), mb, bound));
        Ok(task)
    }

    /// The tasks of `source`, newest first, as they stand now.
    pub async fn list_moves(&self, who: &Principal, source: &str) -> Result<Vec<MoveTask>> {
        self.queue_for(who, source, Right::View).await?;
        let now = now_ms();
        let mut tasks: Vec<MoveTask> = self
            .move_tasks()
            .list(source)
            .await?
            .into_iter()
            .filter_map(|(json, cancel)| {
                let mut t: MoveTask = serde_json::from_str(&json).ok()?;
                if !t.finished() && now - t.updated_ms > STALE_MS {
                    t.status = MoveStatus::Failed;
                    t.failure = Some("the broker running the task stopped before it finished".into());
                } else if t.status == MoveStatus::Running && cancel {
                    t.status = MoveStatus::Cancelling;
                }
                Some(t)
            })
            .collect();
        tasks.sort_by_key(|t| std::cmp::Reverse(t.started_ms));
        Ok(tasks)
    }

    /// Cancels a running task (owner or admin of its source queue); what it moved stays moved.
    pub async fn cancel_move(&self, who: &Principal, source: &str, id: &str) -> Result<MoveTask> {
        self.queue_for(who, source, Right::Manage).await?;
        let task = self
            .list_moves(who, source)
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| Error::NotFound(format!("no message move task {id} on queue '{source}'")))?;
        if task.finished() {
            return Err(Error::invalid(format!(
                "the message move task is {:?}, not running: only a running task can be cancelled",
                task.status
            )));
        }
        self.move_tasks().cancel(source, id).await?;
        Ok(MoveTask { status: MoveStatus::Cancelling, ..task })
    }
}

fn json(task: &MoveTask) -> String {
    serde_json::to_string(task).unwrap_or_default()
}

impl Runner {
    async fn run(self, mut task: MoveTask, mb: Mailbox, bound: String) {
        let (status, failure) = match self.steps(&mut task, &mb, &bound).await {
            Ok(status) => (status, None),
            Err(e) => {
                tracing::warn!(queue = %task.source, task = %task.id, error = %e, "message move task failed");
                (MoveStatus::Failed, Some(e.to_string()))
            }
        };
        task.status = status;
        task.failure = failure;
        task.updated_ms = now_ms();
        // Should this write fail too, the task shows FAILED once it is stale.
        let _ = self.tasks.save(&task.source, &task.id, &json(&task), &[]).await;
    }

    /// Moves batch after batch until nothing is left (COMPLETED) or a cancel was asked (CANCELLED).
    async fn steps(&self, task: &mut MoveTask, mb: &Mailbox, bound: &str) -> Result<MoveStatus> {
        let limit = task.max_per_s.unwrap_or(BATCH).clamp(1, BATCH);
        loop {
            if self.tasks.cancelled(&task.source, &task.id).await? {
                return Ok(MoveStatus::Cancelled);
            }
            let started = tokio::time::Instant::now();
            let b = &self.broker;
            let took = b.mailboxes.take_for_redrive(mb, task.destination.as_deref(), bound, limit).await?;
            task.moved += b.forward_outbox(mb).await;
            if took == 0 {
                return Ok(MoveStatus::Completed);
            }
            task.updated_ms = now_ms();
            self.tasks.save(&task.source, &task.id, &json(task), &[]).await?;
            if task.max_per_s.is_some() {
                tokio::time::sleep_until(started + Duration::from_secs(1)).await;
            }
        }
    }
}
