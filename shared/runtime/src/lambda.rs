//! The few lines every handler Lambda's `main` would otherwise repeat.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use metrics_cloudwatch_embedded::Collector;

use crate::handler::{EventHandler, Stores};
use crate::sqs::run_batch;
use crate::{Config, ConfigError};

/// Serves an SQS-triggered handler: every invocation runs the batch runner
/// over its records and reports the failed ones. Metrics are flushed after
/// each invocation.
pub async fn run_sqs_handler<H: EventHandler + 'static>(
    metrics: &'static Collector,
    handler: H,
) -> Result<(), lambda_runtime::Error> {
    let handler = Arc::new(handler);
    metrics_cloudwatch_embedded::lambda::handler::run(
        metrics,
        move |event: LambdaEvent<SqsEvent>| {
            let handler = handler.clone();
            async move {
                let name = handler.name();
                let response: SqsBatchResponse = run_batch(name, event.payload, |envelope| {
                    let handler = handler.clone();
                    async move { handler.handle(&envelope).await }
                })
                .await;
                Ok::<_, lambda_runtime::Error>(response)
            }
        },
    )
    .await
}

/// The stores on DynamoDB, from `EVENTS_TABLE` and `STATE_TABLE`.
pub fn dynamo_stores(config: &Config, sdk: &crate::aws::SdkConfig) -> Result<Stores, ConfigError> {
    let store =
        storefront_store::dynamodb::DynamoStore::new(crate::aws::dynamodb(sdk), config.tables()?);
    Ok(Stores::from(store))
}
