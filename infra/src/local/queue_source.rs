//! A handler's durable local queue as a [`QueueSource`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::queues::{QueueError, Queues, Redrive};
use crate::service::ServiceError;
use crate::service::worker::{Message, QueueSource};

/// One queue of the local queue file, with its redrive policy and visibility timeout.
pub struct LocalQueue {
    queues: Queues,
    name: String,
    arn: String,
    redrive: Option<Redrive>,
    visibility: Duration,
    filled: Arc<tokio::sync::Notify>,
}

impl LocalQueue {
    /// The queue `name` (a logical id of the template) in `queues`.
    pub fn new(
        queues: Queues,
        name: &str,
        redrive: Option<Redrive>,
        visibility: Duration,
    ) -> LocalQueue {
        LocalQueue {
            filled: queues.waker(name),
            queues,
            name: name.to_owned(),
            arn: super::queue_arn(name),
            redrive,
            visibility,
        }
    }

    fn error(&self, operation: &'static str) -> impl FnOnce(QueueError) -> ServiceError + '_ {
        move |e| ServiceError::Queue {
            queue: self.name.clone(),
            operation,
            source: Box::new(e),
        }
    }
}

fn receipt_row(m: &Message) -> Result<i64, QueueError> {
    m.receipt
        .parse()
        .map_err(|_| QueueError::Task(format!("{:?} is not a local receipt handle", m.receipt)))
}

#[async_trait]
impl QueueSource for LocalQueue {
    fn name(&self) -> &str {
        &self.name
    }

    fn arn(&self) -> &str {
        &self.arn
    }

    fn region(&self) -> &str {
        super::REGION
    }

    async fn receive(&self, max: u32) -> Result<Vec<Message>, ServiceError> {
        let (name, redrive) = (self.name.clone(), self.redrive.clone());
        let visibility = i64::try_from(self.visibility.as_millis()).unwrap_or(i64::MAX);
        let received = self
            .queues
            .call(move |q| q.receive(&name, max, visibility, redrive.as_ref()))
            .await
            .map_err(self.error("receive"))?;
        Ok(received
            .into_iter()
            .map(|m| Message {
                message_id: m.message_id,
                receipt: m.id.to_string(),
                body: m.body,
                receive_count: m.receive_count,
                ..Message::default()
            })
            .collect())
    }

    async fn delete(&self, messages: &[&Message]) -> Result<(), ServiceError> {
        let rows = messages
            .iter()
            .map(|m| receipt_row(m))
            .collect::<Result<Vec<i64>, _>>()
            .map_err(self.error("delete"))?;
        self.queues
            .call(move |q| q.delete(&rows))
            .await
            .map_err(self.error("delete"))
    }

    async fn retry_after(&self, messages: &[(&Message, Duration)]) -> Result<(), ServiceError> {
        let rows = messages
            .iter()
            .map(|(m, delay)| {
                Ok((
                    receipt_row(m)?,
                    i64::try_from(delay.as_millis()).unwrap_or(i64::MAX),
                ))
            })
            .collect::<Result<Vec<(i64, i64)>, QueueError>>()
            .map_err(self.error("retry"))?;
        self.queues
            .call(move |q| {
                for (row, delay) in rows {
                    q.retry_after(row, delay)?;
                }
                Ok(())
            })
            .await
            .map_err(self.error("retry"))
    }

    async fn depths(&self) -> Result<(u64, u64), ServiceError> {
        let depth = self.queues.depth(&self.name).map_err(self.error("depth"))?;
        let dlq = match &self.redrive {
            Some(r) => self.queues.depth(&r.dlq).map_err(self.error("depth"))?,
            None => 0,
        };
        Ok((depth, dlq))
    }

    async fn idle(&self, idle: Duration) {
        // Woken when the feed fills the queue; the timer is for retries
        // coming due and for other processes' sends.
        let _ = tokio::time::timeout(idle, self.filled.notified()).await;
    }
}
