//! The audit Lambda: settings, stores and clients once, then the SQS batch handler.

use storefront_audit::{Audit, Settings};
use storefront_runtime::{Config, aws, lambda, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = Config::from_env();
    telemetry::init_lambda_logs(&config);
    let metrics = telemetry::init_metrics(config.function_name())?;
    let settings = Settings::from_config(&config)?;
    let sdk = aws::load_config().await;
    let stores = lambda::dynamo_stores(&config, &sdk)?;
    lambda::run_sqs_handler(metrics, Audit::new(stores, &settings)).await
}
