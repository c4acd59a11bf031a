//! The few lines every handler Lambda's `main` would otherwise repeat.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use metrics_cloudwatch_embedded::Collector;

use crate::handler::{EventHandler, Stores};
use crate::sqs::run_batch;
use crate::{Config, ConfigError};

/// A handler Lambda's whole `main`: JSON logs and EMF metrics, then the SDK
/// configuration and the DynamoDB stores (`EVENTS_TABLE`, `STATE_TABLE`)
/// once per cold start; `build` makes the handler from the function's
/// environment (its typed settings), the stores and the SDK configuration
/// (for clients of its own); then every invocation runs the batch runner.
pub async fn serve_sqs<H, F>(build: F) -> Result<(), lambda_runtime::Error>
where
    H: EventHandler + 'static,
    F: FnOnce(&Config, Stores, &crate::aws::SdkConfig) -> Result<H, ConfigError>,
{
    let config = Config::from_env();
    crate::telemetry::init_lambda_logs(&config);
    let metrics = crate::telemetry::init_metrics(config.function_name())?;
    let sdk = crate::aws::load_config().await;
    let stores = dynamo_stores(&config, &sdk)?;
    let handler = build(&config, stores, &sdk)?;
    run_sqs_handler(metrics, handler).await
}

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
