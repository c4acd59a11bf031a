//! The cart-sweeper Lambda: triggered by an EventBridge schedule.

use std::sync::Arc;

use lambda_runtime::LambdaEvent;
use storefront_cart_sweeper::{Settings, Sweeper};
use storefront_runtime::{Config, HandlerError, aws, lambda, telemetry};

/// Time kept back from the invocation's deadline.
const MARGIN: std::time::Duration = std::time::Duration::from_secs(15);

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = Config::from_env();
    telemetry::init_lambda_logs(&config);
    let metrics = telemetry::init_metrics(config.function_name())?;
    let settings = Settings::from_config(&config)?;
    let sdk = aws::load_config().await;
    let stores = lambda::dynamo_stores(&config, &sdk)?;
    let sweeper = Arc::new(Sweeper::new(stores, &settings));
    // The service form: its error type is ours, so Lambda's errorType is
    // HandlerError.Transient or .Permanent, not a boxed error's type name.
    metrics_cloudwatch_embedded::lambda::service::run(
        metrics,
        lambda_runtime::service_fn(move |event: LambdaEvent<serde_json::Value>| {
            let sweeper = sweeper.clone();
            async move {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|e| {
                        HandlerError::Permanent(format!("the clock is before 1970: {e}"))
                    })?;
                // What the invocation has left, less a margin for the item
                // in hand and for saving the cursor.
                let left = event
                    .context
                    .deadline()
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default();
                let budget = left.saturating_sub(MARGIN);
                sweeper.sweep_within(now.as_secs(), budget).await
            }
        }),
    )
    .await
}
