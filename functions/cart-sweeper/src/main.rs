//! The cart-sweeper Lambda: triggered by an EventBridge schedule.

use std::sync::Arc;

use lambda_runtime::LambdaEvent;
use storefront_runtime::{Config, aws, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = Config::from_env();
    telemetry::init_lambda_logs(config.function_name());
    let metrics = telemetry::init_metrics(config.function_name())?;
    let sdk = aws::load_config().await;
    let sweeper = Arc::new(storefront_cart_sweeper::Sweeper::from_config(
        &config, &sdk,
    )?);
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
