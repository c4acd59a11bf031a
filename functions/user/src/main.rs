//! The user Lambda: build the stores once, then run the SQS batch handler.

use storefront_runtime::{Config, aws, lambda, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = Config::from_env();
    telemetry::init_lambda_logs(config.function_name());
    let metrics = telemetry::init_metrics(config.function_name())?;
    let sdk = aws::load_config().await;
    let handler = storefront_user::Users::from_config(&config, &sdk)?;
    lambda::run_sqs_handler(metrics, handler).await
}
