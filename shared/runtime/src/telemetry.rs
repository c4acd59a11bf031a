//! Logs and metrics.
//!
//! Logs go through `tracing` to stdout, in the format and at the level the
//! function's `LoggingConfig` gives ([`crate::settings::Logging`]). In JSON
//! (template.yaml's choice) every line is one flat object:
//!
//! ```json
//! {"timestamp":"2026-12-01T10:00:00.123Z","level":"INFO","message":"handled",
//!  "function":"storefront-dev-inventory","requestId":"8f5e…","xrayTraceId":"Root=1-…",
//!  "handler":"inventory","eventId":"0193…","eventType":"order.created","correlationId":"…"}
//! ```
//!
//! `timestamp`, `level`, `message` and `function` come first; then the fields
//! of every span the line was written in, outermost first (so `requestId`
//! and `xrayTraceId` from `lambda_runtime`'s "Lambda runtime invoke" span
//! are on every line of an invocation, next to the request's or message's
//! own ids), then the line's own fields; an inner name replaces an outer one.
//! The timestamp is there because Lambda's log-level filtering reads `level`
//! only from lines with a valid RFC 3339 `timestamp` (others count as INFO).
//!
//! Metrics go to stdout in CloudWatch's Embedded Metric Format (namespace
//! `Storefront`, dimension `function`), flushed after each invocation by
//! `metrics_cloudwatch_embedded`'s Lambda layer, with a `ColdStart` metric on
//! the first one.

use std::fmt;

use metrics_cloudwatch_embedded::Collector;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

use crate::Config;
use crate::settings::{LogFormat, Logging};

/// The CloudWatch metrics namespace of every function.
pub const NAMESPACE: &str = "Storefront";

/// Logs for Lambda, to stdout: the format and level of the function's
/// `LoggingConfig` (`AWS_LAMBDA_LOG_FORMAT`, `AWS_LAMBDA_LOG_LEVEL`), or
/// `RUST_LOG` when an operator set it; no ANSI colours; lines carry the
/// function's name and the invocation's request and trace ids. A malformed
/// setting falls back to JSON at INFO with a warning (the function's
/// settings then refuse it by name). Call once, first thing in main.
pub fn init_lambda_logs(config: &Config) {
    let function = config.function_name().to_owned();
    let (mut logging, mut problem) = match Logging::from_config(config) {
        Ok(logging) => (logging, None),
        Err(e) => (Logging::default(), Some(e.to_string())),
    };
    if let Some(rust_log) = &logging.rust_log
        && let Err(e) = EnvFilter::try_new(rust_log)
    {
        problem = Some(format!(
            "RUST_LOG {rust_log:?} is not a tracing filter: {e}"
        ));
        logging.rust_log = None;
    }
    let subscriber = lambda_subscriber(&logging, &function, std::io::stdout);
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        if let Some(problem) = problem {
            tracing::warn!(error = %problem, "logging settings refused; using the defaults instead");
        }
        tracing::info!(filter = logging.filter(), "starting");
    }
}

/// The subscriber [`init_lambda_logs`] installs, writing to `writer`.
///
/// Spans at INFO and above are always recorded, whatever the level, so a
/// WARN line still carries the ids of the INFO spans around it
/// (`lambda_runtime`'s invoke span, the API's request span, a message's
/// span); only events are filtered by the level. A filter that does not
/// parse (a bad `RUST_LOG`; [`init_lambda_logs`] checks it first) counts
/// as the Lambda level.
pub fn lambda_subscriber<W>(
    logging: &Logging,
    function: &str,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let events = EnvFilter::try_new(logging.filter())
        .unwrap_or_else(|_| EnvFilter::new(logging.level.directive()));
    let spans = filter_fn(|meta| meta.is_span() && *meta.level() <= Level::INFO)
        .with_max_level_hint(Level::INFO);
    let filter = events.or(spans);
    let base = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(false);
    let layer: Box<dyn Layer<Registry> + Send + Sync> = match logging.format {
        LogFormat::Json => base
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson {
                function: function.to_owned(),
            })
            .with_filter(filter)
            .boxed(),
        // CloudWatch stamps each line; tracing's text already shows the spans.
        LogFormat::Text => base
            .without_time()
            .with_target(false)
            .with_filter(filter)
            .boxed(),
    };
    Box::new(Registry::default().with(layer))
}

/// One flat JSON object a line (the shape in the module's doc).
struct FlatJson {
    function: String,
}

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                // JsonFields stores each span's fields as a JSON object.
                if let Some(recorded) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(recorded)
                {
                    fields.extend(map);
                }
            }
        }
        event.record(&mut JsonVisitor(&mut fields));
        let message = fields
            .remove("message")
            .unwrap_or(Value::String(String::new()));
        fields.remove("function");
        let timestamp = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let head = [
            ("timestamp", Value::String(timestamp)),
            ("level", event.metadata().level().as_str().into()),
            ("message", message),
            ("function", self.function.as_str().into()),
        ];
        // Written by hand rather than as one map, so the fixed keys come
        // first whatever order serde_json's map keeps.
        let mut joined = String::from("{");
        let pairs = head
            .iter()
            .map(|(k, v)| (*k, v))
            .chain(fields.iter().map(|(k, v)| (k.as_str(), v)));
        for (i, (key, value)) in pairs.enumerate() {
            if i > 0 {
                joined.push(',');
            }
            joined.push_str(&Value::from(key).to_string());
            joined.push(':');
            joined.push_str(&value.to_string());
        }
        joined.push('}');
        writeln!(writer, "{joined}")
    }
}

/// Records an event's fields as JSON values.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
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
    use std::io::Write;
    use std::sync::{Arc, Mutex, PoisonError};

    use serde_json::Value;

    use crate::Config;
    use crate::settings::{LogFormat, LogLevel, Logging};

    /// Captured output: a `MakeWriter` whose writers all append to one buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<String> {
            let bytes = self
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            String::from_utf8(bytes)
                .expect("utf8")
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    /// Runs `body` under the Lambda subscriber for `logging`, and returns the lines written.
    fn capture(logging: &Logging, body: impl FnOnce()) -> Vec<String> {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber =
            super::lambda_subscriber(logging, "storefront-test-fn", move || writer.clone());
        tracing::subscriber::with_default(subscriber, body);
        out.lines()
    }

    /// What `lambda_runtime` does around every invocation: an INFO span
    /// named "Lambda runtime invoke" with `requestId` and `xrayTraceId`.
    fn invoke_span() -> tracing::Span {
        tracing::info_span!(
            "Lambda runtime invoke",
            requestId = "8f5e2c1a-request",
            xrayTraceId =
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        )
    }

    /// A line written inside a child span of the invoke span is one JSON
    /// object carrying the invocation's requestId and xrayTraceId at the top
    /// level, next to the child span's fields, the line's own fields, the
    /// function's name, the level and an RFC 3339 timestamp.
    #[test]
    fn every_line_of_an_invocation_carries_the_request_and_trace_ids() {
        let lines = capture(&Logging::default(), || {
            invoke_span().in_scope(|| {
                let message =
                    tracing::info_span!("message", eventId = "e-1", eventType = "order.created");
                message.in_scope(|| tracing::info!(attempt = 2, "handled"));
            });
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line: Value = serde_json::from_str(&lines[0]).expect("one JSON object");
        assert_eq!(line["requestId"], "8f5e2c1a-request", "{line}");
        assert_eq!(
            line["xrayTraceId"],
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        );
        assert_eq!(line["eventId"], "e-1");
        assert_eq!(line["eventType"], "order.created");
        assert_eq!(line["attempt"], 2);
        assert_eq!(line["message"], "handled");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["function"], "storefront-test-fn");
        let timestamp = line["timestamp"].as_str().expect("timestamp");
        assert!(
            humantime::parse_rfc3339(timestamp).is_ok(),
            "{timestamp} is RFC 3339"
        );
        assert!(
            lines[0].starts_with(r#"{"timestamp":"#),
            "the fixed keys come first: {}",
            lines[0]
        );
    }

    /// At WARN, INFO lines are left out but a WARN line still carries the
    /// ids of the INFO spans it was written in; and RUST_LOG, when set,
    /// decides instead of the Lambda level.
    #[test]
    fn the_level_filters_lines_not_the_spans_around_them() {
        let warn = Logging {
            level: LogLevel::Warn,
            ..Logging::default()
        };
        let lines = capture(&warn, || {
            invoke_span().in_scope(|| {
                tracing::info!("quiet");
                tracing::warn!("loud");
            });
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line: Value = serde_json::from_str(&lines[0]).expect("json");
        assert_eq!(line["message"], "loud");
        assert_eq!(line["requestId"], "8f5e2c1a-request");

        let debug_here = Logging {
            level: LogLevel::Error,
            rust_log: Some("debug".into()),
            ..Logging::default()
        };
        let lines = capture(&debug_here, || tracing::debug!("detail"));
        assert_eq!(lines.len(), 1, "{lines:?}");
    }

    /// With LogFormat Text the lines are tracing's plain text, the invoke
    /// span's ids included.
    #[test]
    fn text_format_keeps_the_ids() {
        let text = Logging {
            format: LogFormat::Text,
            ..Logging::default()
        };
        let lines = capture(&text, || {
            invoke_span().in_scope(|| tracing::info!("plain"));
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("requestId=\"8f5e2c1a-request\"")
                || lines[0].contains("requestId=8f5e2c1a-request"),
            "{}",
            lines[0]
        );
        assert!(!lines[0].starts_with('{'));
    }

    /// The logging settings and the function's name come through the
    /// configuration, so what a function reads can be checked.
    #[test]
    fn logs_read_their_settings_through_the_config() {
        // `WARN`, so the "starting" line stays out of the test output.
        let config = Config::from_pairs([
            ("AWS_LAMBDA_LOG_LEVEL", "WARN"),
            ("STOREFRONT_FUNCTION", "test-fn"),
        ]);
        super::init_lambda_logs(&config);
        let read = config.read_names();
        assert!(read.contains("AWS_LAMBDA_LOG_LEVEL"), "{read:?}");
        assert!(read.contains("AWS_LAMBDA_LOG_FORMAT"), "{read:?}");
        assert!(read.contains("STOREFRONT_FUNCTION"), "{read:?}");
        assert!(config.override_names().contains("RUST_LOG"));
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
