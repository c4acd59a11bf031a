//! What template.yaml's `Globals.Function.Environment` gives every function,
//! typed and read once, with its defaults written here and nowhere else.
//!
//! Each function crate's own `Settings` holds a [`Globals`] next to its own
//! variables, so the Lambda `main`, the local runtime and the AWS mode read
//! a function's environment the same way and fail on the same bad values.
//! The tables (`EVENTS_TABLE`, `STATE_TABLE`) are not here: only the code
//! that builds DynamoDB stores reads them ([`crate::Config::tables`],
//! [`crate::lambda::dynamo_stores`]).

use crate::{Config, ConfigError};

/// `SNAPSHOT_EVERY` when unset: snapshot an aggregate every 100 events.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 100;

/// `RUST_LOG` when unset (or not a valid filter): `info`.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// The settings every function gets from the template's globals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Globals {
    /// `SNAPSHOT_EVERY`: write a snapshot of an aggregate every N events
    /// (default [`DEFAULT_SNAPSHOT_EVERY`]; 0 = never). A value that is not
    /// a whole non-negative number is an error, in Lambda and locally alike.
    pub snapshot_every: u64,
    /// `RUST_LOG`: the log filter (default [`DEFAULT_LOG_FILTER`]).
    pub log_filter: String,
}

impl Default for Globals {
    fn default() -> Self {
        Globals {
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            log_filter: DEFAULT_LOG_FILTER.to_owned(),
        }
    }
}

impl Globals {
    /// Reads `SNAPSHOT_EVERY` and `RUST_LOG`.
    pub fn from_config(config: &Config) -> Result<Globals, ConfigError> {
        Ok(Globals {
            snapshot_every: config.snapshot_every()?,
            log_filter: log_filter(config).to_owned(),
        })
    }
}

/// `RUST_LOG`, or [`DEFAULT_LOG_FILTER`].
pub(crate) fn log_filter(config: &Config) -> &str {
    config.optional("RUST_LOG").unwrap_or(DEFAULT_LOG_FILTER)
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
                log_filter: "info".into()
            }
        );
        assert_eq!(
            none.read_names().into_iter().collect::<Vec<_>>(),
            ["RUST_LOG", "SNAPSHOT_EVERY"]
        );

        let set = Config::from_pairs([("SNAPSHOT_EVERY", "0"), ("RUST_LOG", "debug")]);
        assert_eq!(
            Globals::from_config(&set),
            Ok(Globals {
                snapshot_every: 0,
                log_filter: "debug".into()
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
}
