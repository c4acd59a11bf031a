//! The api Lambda: build the stores once, then serve the Router through lambda_http.

use storefront_runtime::{Config, aws, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::from_env();
    telemetry::init_lambda_logs(config.function_name());
    let metrics = telemetry::init_metrics(config.function_name())?;
    let sdk = aws::load_config().await;
    let state = storefront_api::AppState::from_config(&config, &sdk)?;
    metrics_cloudwatch_embedded::lambda::service::run_http(metrics, storefront_api::app(state))
        .await
}
