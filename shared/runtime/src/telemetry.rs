//! Logs and metrics.
//!
//! Logs are JSON lines through `tracing`, with the function's name; spans
//! carry the request id, correlationId, eventId and eventType so every line
//! of a flow can be found. Metrics go to stdout in CloudWatch's Embedded
//! Metric Format (namespace `Storefront`, dimension `function`), flushed
//! after each invocation by `metrics_cloudwatch_embedded`'s Lambda layer,
//! with a `ColdStart` metric on the first one.

use metrics_cloudwatch_embedded::Collector;
use tracing_subscriber::EnvFilter;

use crate::Config;
use crate::settings::{DEFAULT_LOG_FILTER, log_filter};

/// The CloudWatch metrics namespace of every function.
pub const NAMESPACE: &str = "Storefront";

/// JSON logs for Lambda: no ANSI colours, no timestamps (CloudWatch adds
/// them), level from the configuration's `RUST_LOG` (default `info`, and
/// `info` when it is not a valid filter), lines tagged with the function's
/// name. Call once, first thing in main.
pub fn init_lambda_logs(config: &Config) {
    let function = config.function_name();
    let filter = EnvFilter::try_new(log_filter(config))
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_ansi(false)
        .without_time()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .finish();
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        tracing::info!(function, "starting");
    }
}

/// The EMF collector for a function: namespace `Storefront`, dimension
/// `function`, a `ColdStart` count on the first invocation, the request id
/// as a property. Install once per process.
pub fn init_metrics(
    function: &str,
) -> Result<&'static Collector, metrics_cloudwatch_embedded::Error> {
    metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension("function", function.to_owned())
        .lambda_cold_start_metric("ColdStart")
        .with_lambda_request_id("requestId")
        .init()
}

#[cfg(test)]
mod tests {
    use crate::Config;

    /// The log filter and the function's name come through the
    /// configuration, so what a function reads can be checked.
    #[test]
    fn logs_read_their_filter_through_the_config() {
        // `warn`, so the "starting" line stays out of the test output.
        let config = Config::from_pairs([("RUST_LOG", "warn"), ("STOREFRONT_FUNCTION", "test-fn")]);
        super::init_lambda_logs(&config);
        let read = config.read_names();
        assert!(read.contains("RUST_LOG"), "{read:?}");
        assert!(read.contains("STOREFRONT_FUNCTION"), "{read:?}");
    }

    /// The collector writes CloudWatch EMF: `_aws.CloudWatchMetrics` with our namespace, dimension and metric.
    #[test]
    fn emf_format() {
        let collector = super::init_metrics("test-fn").expect("collector");
        metrics::counter!("EventsPublished").increment(3);
        let mut out = Vec::new();
        collector.flush(&mut out).expect("flush");
        let line = String::from_utf8(out).expect("utf8");
        let doc: serde_json::Value =
            serde_json::from_str(line.lines().next().expect("a line")).expect("json");
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Storefront");
        assert_eq!(directive["Dimensions"][0][0], "function");
        assert_eq!(directive["Metrics"][0]["Name"], "EventsPublished");
        assert_eq!(doc["function"], "test-fn");
        assert_eq!(doc["EventsPublished"], 3);
        assert!(doc["_aws"]["Timestamp"].is_u64());
    }
}
