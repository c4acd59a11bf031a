//! What every function gets from template.yaml's globals, typed and read
//! once, with its defaults written here and nowhere else.
//!
//! Each function crate's own `Settings` holds a [`Globals`] next to its own
//! variables, so the Lambda `main`, the local runtime and the AWS mode read
//! a function's environment the same way and fail on the same bad values.
//! The tables (`EVENTS_TABLE`, `STATE_TABLE`) are not here: only the code
//! that builds DynamoDB stores reads them ([`crate::Config::tables`],
//! [`crate::lambda::dynamo_stores`]).
//!
//! Logging comes from the function's `LoggingConfig` (`Globals.Function`
//! in template.yaml): Lambda turns its `LogFormat` and `ApplicationLogLevel`
//! into `AWS_LAMBDA_LOG_FORMAT` and `AWS_LAMBDA_LOG_LEVEL` in the function's
//! environment, and the local runtime gives them the same way (the template
//! model derives them). `RUST_LOG`, which no template sets, overrides the
//! level with a full `tracing` filter when an operator adds it by hand.

use crate::{Config, ConfigError};

/// `SNAPSHOT_EVERY` when unset: snapshot an aggregate every 100 events.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 100;

/// The application log level of a function: Lambda's `ApplicationLogLevel`,
/// given to the function as `AWS_LAMBDA_LOG_LEVEL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// `TRACE`: everything.
    Trace,
    /// `DEBUG`.
    Debug,
    /// `INFO` (Lambda's default, and ours when the variable is unset).
    #[default]
    Info,
    /// `WARN`.
    Warn,
    /// `ERROR`.
    Error,
    /// `FATAL`: `tracing` has no level above error, so this is `error`.
    Fatal,
}

impl LogLevel {
    /// Lambda's names, in any case (`TRACE`, `DEBUG`, `INFO`, `WARN`,
    /// `ERROR`, `FATAL`).
    pub fn parse(text: &str) -> Option<LogLevel> {
        Some(match text.to_ascii_uppercase().as_str() {
            "TRACE" => LogLevel::Trace,
            "DEBUG" => LogLevel::Debug,
            "INFO" => LogLevel::Info,
            "WARN" => LogLevel::Warn,
            "ERROR" => LogLevel::Error,
            "FATAL" => LogLevel::Fatal,
            _ => return None,
        })
    }

    /// The `tracing` filter directive for this level.
    pub fn directive(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error | LogLevel::Fatal => "error",
        }
    }
}

/// How log lines are written: Lambda's `LogFormat`, given to the function as
/// `AWS_LAMBDA_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object a line (template.yaml's choice, and ours when the
    /// variable is unset).
    #[default]
    Json,
    /// `tracing`'s plain text lines.
    Text,
}

impl LogFormat {
    /// `JSON` or `Text`, in any case.
    pub fn parse(text: &str) -> Option<LogFormat> {
        match text.to_ascii_uppercase().as_str() {
            "JSON" => Some(LogFormat::Json),
            "TEXT" => Some(LogFormat::Text),
            _ => None,
        }
    }
}

/// How a function logs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Logging {
    /// `AWS_LAMBDA_LOG_LEVEL` (default [`LogLevel::Info`]).
    pub level: LogLevel,
    /// `AWS_LAMBDA_LOG_FORMAT` (default [`LogFormat::Json`]).
    pub format: LogFormat,
    /// `RUST_LOG`, when an operator set it: a `tracing` filter (such as
    /// `info,storefront_publisher=debug`) used instead of `level`.
    pub rust_log: Option<String>,
}

impl Logging {
    /// Reads `AWS_LAMBDA_LOG_LEVEL`, `AWS_LAMBDA_LOG_FORMAT` and the
    /// operator override `RUST_LOG`. A level or format Lambda would not set
    /// is an error naming the variable; `RUST_LOG` is checked when the
    /// filter is built ([`Logging::filter`]).
    pub fn from_config(config: &Config) -> Result<Logging, ConfigError> {
        let level = match config.optional("AWS_LAMBDA_LOG_LEVEL") {
            None => LogLevel::default(),
            Some(v) => LogLevel::parse(v).ok_or_else(|| ConfigError::Invalid {
                name: "AWS_LAMBDA_LOG_LEVEL",
                value: v.to_owned(),
                expected: "one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL (LoggingConfig.ApplicationLogLevel)",
            })?,
        };
        let format = match config.optional("AWS_LAMBDA_LOG_FORMAT") {
            None => LogFormat::default(),
            Some(v) => LogFormat::parse(v).ok_or_else(|| ConfigError::Invalid {
                name: "AWS_LAMBDA_LOG_FORMAT",
                value: v.to_owned(),
                expected: "JSON or Text (LoggingConfig.LogFormat)",
            })?,
        };
        Ok(Logging {
            level,
            format,
            rust_log: config.operator_override("RUST_LOG").map(str::to_owned),
        })
    }

    /// The `tracing` filter: `RUST_LOG` when set, else the level's directive.
    pub fn filter(&self) -> &str {
        self.rust_log
            .as_deref()
            .unwrap_or_else(|| self.level.directive())
    }
}

/// The settings every function gets from the template's globals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Globals {
    /// `SNAPSHOT_EVERY`: write a snapshot of an aggregate every N events
    /// (default [`DEFAULT_SNAPSHOT_EVERY`]; 0 = never). A value that is not
    /// a whole non-negative number is an error, in Lambda and locally alike.
    pub snapshot_every: u64,
    /// The log level and format from `LoggingConfig`, and the `RUST_LOG`
    /// override.
    pub logging: Logging,
}

impl Default for Globals {
    fn default() -> Self {
        Globals {
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            logging: Logging::default(),
        }
    }
}

impl Globals {
    /// Reads `SNAPSHOT_EVERY`, `AWS_LAMBDA_LOG_LEVEL`,
    /// `AWS_LAMBDA_LOG_FORMAT` and (as an override) `RUST_LOG`.
    pub fn from_config(config: &Config) -> Result<Globals, ConfigError> {
        Ok(Globals {
            snapshot_every: config.snapshot_every()?,
            logging: Logging::from_config(config)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unset variables give the documented defaults, set ones are read, and a
    /// malformed SNAPSHOT_EVERY is an error naming it rather than a default.
    #[test]
    fn defaults_values_and_errors() {
        let none = Config::from_pairs(Vec::<(String, String)>::new());
        assert_eq!(Globals::from_config(&none), Ok(Globals::default()));
        assert_eq!(
            Globals::default(),
            Globals {
                snapshot_every: 100,
                logging: Logging {
                    level: LogLevel::Info,
                    format: LogFormat::Json,
                    rust_log: None,
                }
            }
        );
        assert_eq!(
            none.read_names().into_iter().collect::<Vec<_>>(),
            [
                "AWS_LAMBDA_LOG_FORMAT",
                "AWS_LAMBDA_LOG_LEVEL",
                "SNAPSHOT_EVERY"
            ]
        );
        assert_eq!(
            none.override_names().into_iter().collect::<Vec<_>>(),
            ["RUST_LOG"]
        );

        let set = Config::from_pairs([
            ("SNAPSHOT_EVERY", "0"),
            ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
            ("AWS_LAMBDA_LOG_FORMAT", "Text"),
        ]);
        assert_eq!(
            Globals::from_config(&set),
            Ok(Globals {
                snapshot_every: 0,
                logging: Logging {
                    level: LogLevel::Debug,
                    format: LogFormat::Text,
                    rust_log: None,
                }
            })
        );

        let bad = Config::from_pairs([("SNAPSHOT_EVERY", "-1")]);
        assert!(matches!(
            Globals::from_config(&bad),
            Err(ConfigError::Invalid {
                name: "SNAPSHOT_EVERY",
                ..
            })
        ));
    }

    /// Every level Lambda can set maps to a `tracing` directive (FATAL to
    /// error, the most severe `tracing` has); RUST_LOG, when set, wins; a
    /// level or format Lambda would never set is an error naming it.
    #[test]
    fn lambda_levels_map_to_filters_and_rust_log_overrides() {
        let cases = [
            ("TRACE", "trace"),
            ("DEBUG", "debug"),
            ("INFO", "info"),
            ("WARN", "warn"),
            ("ERROR", "error"),
            ("FATAL", "error"),
            ("warn", "warn"),
        ];
        for (lambda, directive) in cases {
            let config = Config::from_pairs([("AWS_LAMBDA_LOG_LEVEL", lambda)]);
            let logging = Logging::from_config(&config).expect(lambda);
            assert_eq!(logging.filter(), directive, "{lambda}");
        }

        let overridden = Config::from_pairs([
            ("AWS_LAMBDA_LOG_LEVEL", "ERROR"),
            ("RUST_LOG", "info,storefront_publisher=debug"),
        ]);
        let logging = Logging::from_config(&overridden).expect("logging");
        assert_eq!(logging.level, LogLevel::Error);
        assert_eq!(logging.filter(), "info,storefront_publisher=debug");

        for (name, value) in [
            ("AWS_LAMBDA_LOG_LEVEL", "LOUD"),
            ("AWS_LAMBDA_LOG_FORMAT", "XML"),
        ] {
            let config = Config::from_pairs([(name, value)]);
            match Logging::from_config(&config) {
                Err(ConfigError::Invalid { name: named, .. }) => assert_eq!(named, name),
                other => panic!("{name}={value}: {other:?}"),
            }
        }
    }
}
