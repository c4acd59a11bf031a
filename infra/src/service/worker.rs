//! The only place a queue message is received, handed to its function and
//! settled, for both modes: Lambda's SQS event source mapping.
//!
//! A [`Worker`] long-polls its function's [`QueueSource`] for a batch of up
//! to the template's batch size, invokes the function with the SQS event
//! Lambda would build, deletes what succeeded, and for each failed message
//! either shortens its visibility to the [`redelivery`] backoff or leaves it
//! to the queue's visibility timeout. Dead-lettering is the queue's own
//! business, as on SQS: a message received more than `maxReceiveCount` times
//! is moved to the DLQ by the queue, never by the consumer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};

use super::ServiceError;
use super::backoff::redelivery;
use super::function::{Faults, HandlerFunction};

/// A message as a queue hands it out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The message id (stable across receives).
    pub message_id: String,
    /// The receipt handle of this receive.
    pub receipt: String,
    /// The body.
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
    /// The MD5 of the body, where the queue computes one.
    pub md5_of_body: Option<String>,
    /// The queue's system attributes (`ApproximateReceiveCount`, `SentTimestamp` ...).
    pub attributes: HashMap<String, String>,
}

/// A queue a worker consumes: the local durable queues or SQS.
#[async_trait]
pub trait QueueSource: Send + Sync {
    /// The queue's name (a logical id locally, a URL on SQS).
    fn name(&self) -> &str;
    /// The queue's ARN, the records' `eventSourceArn`.
    fn arn(&self) -> &str;
    /// The region, the records' `awsRegion`.
    fn region(&self) -> &str;
    /// Up to `max` visible messages, each hidden for the visibility timeout
    /// (a message past its `maxReceiveCount` goes to the DLQ instead).
    async fn receive(&self, max: u32) -> Result<Vec<Message>, ServiceError>;
    /// Deletes handled messages.
    async fn delete(&self, messages: &[&Message]) -> Result<(), ServiceError>;
    /// Makes failed messages visible again after the given delays.
    async fn retry_after(&self, messages: &[(&Message, Duration)]) -> Result<(), ServiceError>;
    /// Messages in the queue (visible, in flight or delayed) and in its DLQ.
    async fn depths(&self) -> Result<(u64, u64), ServiceError>;
    /// Waits for messages after an empty receive, at most `idle` (a queue
    /// that long-polls has waited already and returns at once).
    async fn idle(&self, idle: Duration);
}

/// One function driven from its queue.
#[derive(Clone)]
pub struct Worker {
    /// The function and its wiring.
    pub function: Arc<HandlerFunction>,
    /// Its queue.
    pub source: Arc<dyn QueueSource>,
    /// The first redelivery backoff of a failed message; `None` leaves it
    /// to the queue's visibility timeout.
    pub retry_base: Option<Duration>,
    /// The fault switch.
    pub faults: Faults,
}

impl Worker {
    /// Receives and settles batches until the task is aborted.
    pub async fn run(self) {
        let mut idle = Duration::from_millis(5);
        loop {
            match self.once().await {
                Ok(0) => {
                    self.source.idle(idle).await;
                    idle = (idle * 2).min(Duration::from_millis(20));
                }
                Ok(_) => idle = Duration::from_millis(5),
                Err(e) => {
                    tracing::error!(handler = self.function.name, error = %e, "queue unavailable; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Receives, invokes and settles one batch; returns how many messages it received.
    pub async fn once(&self) -> Result<usize, ServiceError> {
        let f = &self.function;
        let messages = self.source.receive(f.batch_size).await?;
        if messages.is_empty() {
            return Ok(0);
        }
        let mut event = SqsEvent::default();
        event.records = messages
            .iter()
            .map(|m| lambda_record(m, self.source.arn(), self.source.region()))
            .collect();
        let failed = f.invoke(event, &self.faults).await;
        let (retry, done): (Vec<&Message>, Vec<&Message>) = messages
            .iter()
            .partition(|m| failed.contains(&m.message_id));
        if !done.is_empty() {
            self.source.delete(&done).await?;
        }
        if let (Some(base), false) = (self.retry_base, retry.is_empty()) {
            let delays: Vec<(&Message, Duration)> = retry
                .into_iter()
                .map(|m| (m, redelivery(base, m.receive_count, f.visibility)))
                .collect();
            self.source.retry_after(&delays).await?;
        }
        Ok(messages.len())
    }
}

/// The record Lambda hands the function for a message.
fn lambda_record(m: &Message, arn: &str, region: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(m.message_id.clone());
    record.receipt_handle = Some(m.receipt.clone());
    record.body = Some(m.body.clone());
    record.md5_of_body = m.md5_of_body.clone();
    record.attributes = m.attributes.clone();
    record
        .attributes
        .entry("ApproximateReceiveCount".into())
        .or_insert_with(|| m.receive_count.to_string());
    record.event_source = Some("aws:sqs".to_owned());
    record.event_source_arn = Some(arn.to_owned());
    record.aws_region = Some(region.to_owned());
    record
}
