//! The RabbitMQ baseline: a durable classic queue, persistent messages (delivery mode 2),
//! publisher confirms and manual acks, one channel per worker over `--amqp-connections`
//! connections (default: one per worker, as the HTTP side has one keep-alive connection per
//! worker).
//!
//! - send: publish one, wait for its confirm.
//! - batch: publish `batch`, then wait for every confirm.
//! - lifecycle: publish one and wait for its confirm, take one delivery from this worker's
//!   consumer (prefetch 1, competing on the shared queue), ack it. AMQP's `basic.ack` has no
//!   reply, so this is two round trips where HTTP needs three; that is the protocol's advantage
//!   and part of what the comparison shows.

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};

use super::{message_bytes, Error, Result, Scenario, Scenarios};

/// Persistent delivery mode: the broker writes the message to disk before it confirms.
const PERSISTENT: u8 = 2;
/// How long a lifecycle waits for a delivery before it counts as failed (as the HTTP side's
/// ten empty 1 s long polls).
const DELIVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

async fn open(url: &str) -> Result<(Connection, Channel)> {
    let conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    Ok((conn, channel))
}

/// Declares the durable queue and purges it.
pub async fn prepare(url: &str, queue: &str) -> Result<()> {
    let (conn, channel) = open(url).await?;
    channel
        .queue_declare(ShortString::from(queue), QueueDeclareOptions::durable(), FieldTable::default())
        .await?;
    channel.queue_purge(ShortString::from(queue), QueuePurgeOptions::default()).await?;
    conn.close(200, ShortString::from("bye")).await?;
    Ok(())
}

/// Opens `n` connections for workers to share (channel per worker, as AMQP clients usually do).
pub async fn connections(url: &str, n: usize) -> Result<Vec<Connection>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        out.push(Connection::connect(url, ConnectionProperties::default()).await?);
    }
    Ok(out)
}

/// One worker: a confirming channel of its own on a shared connection, and (for the lifecycle)
/// a consumer.
pub struct Worker {
    channel: Channel,
    consumer: Option<Consumer>,
    queue: ShortString,
    scenario: Scenario,
    body: Vec<u8>,
    batch: usize,
}

impl Worker {
    pub async fn open(
        conn: &Connection,
        queue: &str,
        scenario: Scenario,
        body_bytes: usize,
        batch: usize,
        index: usize,
    ) -> Result<Self> {
        let channel = conn.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        let queue = ShortString::from(queue);
        let consumer = if scenario == Scenario::Lifecycle {
            channel.basic_qos(1, BasicQosOptions::default()).await?;
            let tag = ShortString::from(format!("bench-{index}"));
            Some(
                channel
                    .basic_consume(queue.clone(), tag, BasicConsumeOptions::default(), FieldTable::default())
                    .await?,
            )
        } else {
            None
        };
        Ok(Worker { channel, consumer, queue, scenario, body: message_bytes(body_bytes), batch })
    }

    async fn publish(&self) -> Result<lapin::PublisherConfirm> {
        self.publish_body(&self.body).await
    }

    async fn publish_body(&self, body: &[u8]) -> Result<lapin::PublisherConfirm> {
        Ok(self
            .channel
            .basic_publish(
                ShortString::from(""),
                self.queue.clone(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(PERSISTENT),
            )
            .await?)
    }

    /// Publishes `body` (persistent) and waits for its confirm: a send whose body the caller
    /// chooses (the streamed lifecycle tags each message with its number).
    pub async fn send_body(&self, body: &[u8]) -> Result<()> {
        Self::confirmed(self.publish_body(body).await?).await
    }

    async fn confirmed(confirm: lapin::PublisherConfirm) -> Result<()> {
        if confirm.await?.is_ack() {
            Ok(())
        } else {
            Err(Error::Protocol("publish was nacked".into()))
        }
    }
}

impl Scenarios for Worker {
    fn scenario(&self) -> Scenario {
        self.scenario
    }

    async fn send(&mut self) -> Result<u64> {
        Self::confirmed(self.publish().await?).await?;
        Ok(1)
    }

    async fn send_batch(&mut self) -> Result<u64> {
        let mut confirms = Vec::with_capacity(self.batch);
        for _ in 0..self.batch {
            confirms.push(self.publish().await?);
        }
        for c in confirms {
            Self::confirmed(c).await?;
        }
        Ok(self.batch as u64)
    }

    async fn lifecycle(&mut self) -> Result<u64> {
        self.send().await?;
        let consumer = self
            .consumer
            .as_mut()
            .ok_or_else(|| Error::Protocol("lifecycle worker without a consumer".into()))?;
        let delivery = tokio::time::timeout(DELIVERY_WAIT, consumer.next())
            .await
            .map_err(|_| Error::Protocol(format!("no delivery within {DELIVERY_WAIT:?}")))?
            .ok_or_else(|| Error::Protocol("consumer cancelled".into()))??;
        delivery.ack(BasicAckOptions::default()).await?;
        Ok(1)
    }
}
