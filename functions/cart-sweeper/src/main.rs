//! The cart-sweeper Lambda: triggered by an EventBridge schedule.

use std::sync::Arc;

use lambda_runtime::LambdaEvent;
use storefront_cart_sweeper::{Settings, Sweeper};
use storefront_runtime::{Config, aws, lambda, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = Config::from_env();
    telemetry::init_lambda_logs(&config);
    let metrics = telemetry::init_metrics(config.function_name())?;
    let settings = Settings::from_config(&config)?;
    let sdk = aws::load_config().await;
    let stores = lambda::dynamo_stores(&config, &sdk)?;
    let sweeper = Arc::new(Sweeper::new(stores, &settings));
    metrics_cloudwatch_embedded::lambda::handler::run(
        metrics,
        move |_: LambdaEvent<serde_json::Value>| {
            let sweeper = sweeper.clone();
            async move {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_secs();
                Ok::<_, lambda_runtime::Error>(sweeper.sweep(now).await?)
            }
        },
    )
    .await
}
