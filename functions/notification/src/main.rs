//! The notification Lambda: settings, stores and the SES client once, then the SQS batch handler.

use std::sync::Arc;

use storefront_notification::{Notifications, SesNotifier, Settings};
use storefront_runtime::{Config, aws, lambda, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = Config::from_env();
    telemetry::init_lambda_logs(&config);
    let metrics = telemetry::init_metrics(config.function_name())?;
    let settings = Settings::from_config(&config)?;
    let sdk = aws::load_config().await;
    let stores = lambda::dynamo_stores(&config, &sdk)?;
    let ses = aws_sdk_sesv2::Client::new(&sdk);
    let notifier = Arc::new(SesNotifier::new(ses, settings.sender_email.clone()));
    lambda::run_sqs_handler(metrics, Notifications::new(stores, &settings, notifier)).await
}
