//! A handler's SQS queue as a [`QueueSource`]: ReceiveMessage (a 1 s long
//! poll), DeleteMessageBatch, ChangeMessageVisibilityBatch and the queue
//! attributes; SQS itself counts receives and dead-letters.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName, QueueAttributeName,
};

use crate::service::worker::{Message, QueueSource};
use crate::service::{AwsCallError, BoxError, ServiceError};

/// A queue on SQS and its DLQ.
pub struct SqsQueue {
    sqs: aws_sdk_sqs::Client,
    url: String,
    arn: String,
    dlq: Option<String>,
    region: String,
}

impl SqsQueue {
    /// The queue at `url` (ARN `arn`) with its DLQ at `dlq`.
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        url: String,
        arn: String,
        dlq: Option<String>,
        region: String,
    ) -> SqsQueue {
        SqsQueue {
            sqs,
            url,
            arn,
            dlq,
            region,
        }
    }

    fn error(&self, operation: &'static str, source: BoxError) -> ServiceError {
        ServiceError::Queue {
            queue: self.url.clone(),
            operation,
            source,
        }
    }
}

/// Messages in a queue: visible, in flight and delayed.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<u64, AwsCallError> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(AwsCallError::new)?;
    Ok(out
        .attributes()
        .map(|a| {
            a.values()
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>()
        })
        .unwrap_or(0))
}

#[async_trait]
impl QueueSource for SqsQueue {
    fn name(&self) -> &str {
        &self.url
    }

    fn arn(&self) -> &str {
        &self.arn
    }

    fn region(&self) -> &str {
        &self.region
    }

    async fn receive(&self, max: u32) -> Result<Vec<Message>, ServiceError> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| self.error("ReceiveMessage", Box::new(AwsCallError::new(e))))?;
        Ok(received
            .messages()
            .iter()
            .filter_map(|m| {
                let attributes: std::collections::HashMap<String, String> = m
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                Some(Message {
                    message_id: m.message_id()?.to_owned(),
                    receipt: m.receipt_handle()?.to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    receive_count: attributes
                        .get("ApproximateReceiveCount")
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(1),
                    md5_of_body: m.md5_of_body().map(str::to_owned),
                    attributes,
                })
            })
            .collect())
    }

    async fn delete(&self, messages: &[&Message]) -> Result<(), ServiceError> {
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&m.receipt)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error("DeleteMessageBatch", Box::new(e)))?;
        let out = self
            .sqs
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| self.error("DeleteMessageBatch", Box::new(AwsCallError::new(e))))?;
        if !out.failed().is_empty() {
            // Not deleted means delivered again later: handlers are idempotent.
            tracing::warn!(
                queue = self.url,
                failed = out.failed().len(),
                "some handled messages could not be deleted; they will be redelivered"
            );
        }
        Ok(())
    }

    async fn retry_after(&self, messages: &[(&Message, Duration)]) -> Result<(), ServiceError> {
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, (m, delay))| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&m.receipt)
                    .visibility_timeout(i32::try_from(delay.as_secs()).unwrap_or(i32::MAX))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error("ChangeMessageVisibilityBatch", Box::new(e)))?;
        self.sqs
            .change_message_visibility_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                self.error(
                    "ChangeMessageVisibilityBatch",
                    Box::new(AwsCallError::new(e)),
                )
            })?;
        Ok(())
    }

    async fn depths(&self) -> Result<(u64, u64), ServiceError> {
        let depth = queue_depth(&self.sqs, &self.url)
            .await
            .map_err(|e| self.error("GetQueueAttributes", Box::new(e)))?;
        let dlq = match &self.dlq {
            Some(url) => queue_depth(&self.sqs, url)
                .await
                .map_err(|e| self.error("GetQueueAttributes", Box::new(e)))?,
            None => 0,
        };
        Ok((depth, dlq))
    }

    async fn idle(&self, _idle: Duration) {
        // The receive long-polled already.
    }
}
