//! The publisher Lambda: logs, metrics, settings and the EventBridge client
//! once per cold start, then the batch logic of the library for each
//! DynamoDB stream batch.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::LambdaEvent;
use storefront_publisher::{EventBridgeBus, Publisher, Settings};
use storefront_runtime::{Config, aws, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::from_env();
    telemetry::init_lambda_logs(&config);
    match run(&config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line saying what to fix, instead of a Debug dump.
            tracing::error!(error = %e, "storefront-publisher cannot start");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: &Config) -> Result<(), lambda_runtime::Error> {
    let settings = Settings::from_config(config)?;
    let metrics = telemetry::init_metrics(config.function_name())?;
    let sdk = aws::load_config().await;
    let bus = EventBridgeBus::lazy(sdk, settings.event_bus_name);
    let publisher = Publisher::new(bus);
    let publisher = &publisher;
    metrics_cloudwatch_embedded::lambda::handler::run(
        metrics,
        move |event: LambdaEvent<Event>| async move {
            // The context's copy of the trace header rather than
            // _X_AMZN_TRACE_ID: the runtime leaves that variable unset when
            // it runs invocations concurrently.
            let trace_header = event.context.xray_trace_id.as_deref();
            Ok::<_, lambda_runtime::Error>(
                publisher.handle_traced(event.payload, trace_header).await,
            )
        },
    )
    .await
}
