//! `storefront dlq list|redrive --aws`: the same commands against the
//! deployed queues (found by the names template.yaml gives them on the
//! stage).
//!
//! Redrive uses SQS's own `StartMessageMoveTask`, which moves messages
//! server-side at a bounded rate. Where that is not available (an older
//! region, a queue type it refuses, an emulator such as moto), it falls back
//! to receive → send to the source queue → delete from the DLQ, message by
//! message, so a message is only deleted once its copy is safely sent (a
//! crash in between can duplicate one, never lose one; handlers dedupe).

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;
use storefront_template::Template;

use super::deployment::Deployment;
use crate::cli::CliError;
use crate::error::RuntimeError;

/// The names of a handler's queue and DLQ on `stage`, as template.yaml
/// names them (their `QueueName`s, resolved for the stage).
pub fn queue_names(
    template: &Template,
    stage: &str,
    handler: &str,
) -> Result<(String, String), CliError> {
    let deployment = Deployment::for_stage(template, stage);
    let queue = template
        .function_by_binary(&format!("storefront-{handler}"))
        .and_then(|f| f.sqs.first())
        .map(|source| source.queue.clone())
        .ok_or_else(|| CliError::Usage(format!("template.yaml wires no queue to {handler}")))?;
    let dlq = template
        .queues
        .get(&queue)
        .and_then(|q| q.redrive.as_ref())
        .map(|(dlq, _)| dlq.clone())
        .ok_or_else(|| CliError::Usage(format!("{handler}'s queue {queue} has no DLQ")))?;
    let name = |logical: &str| {
        deployment.queue_name(template, logical).ok_or_else(|| {
            CliError::Usage(format!("queue {logical} has no QueueName in template.yaml"))
        })
    };
    Ok((name(&queue)?, name(&dlq)?))
}

async fn url_and_arn(sqs: &Client, name: &str) -> Result<(String, String), CliError> {
    let url = sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| RuntimeError::aws(format!("queue {name} (deployed with this --stage?)"), e))?
        .queue_url
        .ok_or_else(|| CliError::Usage(format!("queue {name} has no URL")))?;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| RuntimeError::aws(format!("attributes of {name}"), e))?;
    let arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| CliError::Usage(format!("queue {name} has no ARN")))?;
    Ok((url, arn))
}

/// How many messages a handler's DLQ holds (approximately, as SQS counts).
pub async fn depth(sqs: &Client, dlq: &str) -> Result<u64, CliError> {
    let (url, _) = url_and_arn(sqs, dlq).await?;
    let out = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| RuntimeError::aws(format!("attributes of {dlq}"), e))?;
    Ok(out
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

/// How a redrive went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redriven {
    /// SQS started a move task (it runs server-side).
    MoveTask {
        /// The task handle.
        handle: String,
    },
    /// The fallback moved this many messages itself.
    Moved(u64),
}

/// Redrives a handler's DLQ back into its queue.
pub async fn redrive(sqs: &Client, queue: &str, dlq: &str) -> Result<Redriven, CliError> {
    let (queue_url, queue_arn) = url_and_arn(sqs, queue).await?;
    let (dlq_url, dlq_arn) = url_and_arn(sqs, dlq).await?;
    match sqs
        .start_message_move_task()
        .source_arn(&dlq_arn)
        .destination_arn(&queue_arn)
        .send()
        .await
    {
        Ok(out) => {
            return Ok(Redriven::MoveTask {
                handle: out.task_handle.unwrap_or_default(),
            });
        }
        Err(e) => tracing::info!(
            error = %aws_sdk_sqs::error::DisplayErrorContext(&e),
            "StartMessageMoveTask unavailable; moving messages one by one"
        ),
    }
    let mut moved = 0;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .send()
            .await
            .map_err(|e| RuntimeError::aws(format!("receive from {dlq}"), e))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(Redriven::Moved(moved));
        }
        for m in messages {
            let body = m.body().unwrap_or_default();
            sqs.send_message()
                .queue_url(&queue_url)
                .message_body(body)
                .send()
                .await
                .map_err(|e| RuntimeError::aws(format!("send to {queue}"), e))?;
            sqs.delete_message()
                .queue_url(&dlq_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .map_err(|e| RuntimeError::aws(format!("delete from {dlq}"), e))?;
            moved += 1;
        }
    }
}
