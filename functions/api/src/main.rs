//! The api Lambda: settings, stores and clients once, then serve the Router through lambda_http.

use storefront_api::{AppState, Settings, app};
use storefront_runtime::{Config, aws, lambda, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::from_env();
    telemetry::init_lambda_logs(&config);
    let metrics = telemetry::init_metrics(config.function_name())?;
    let settings = Settings::from_config(&config)?;
    let sdk = aws::load_config().await;
    let stores = lambda::dynamo_stores(&config, &sdk)?;
    let state = AppState::new(stores, &settings);
    metrics_cloudwatch_embedded::lambda::service::run_http(metrics, app(state)).await
}
