//! Configuration from environment variables, read once at cold start.
//!
//! A [`Config`] remembers the name of every variable read through it
//! ([`Config::read_names`]), so a test can hold what a function reads against
//! what template.yaml gives it. An operator's override (a variable no
//! template sets, such as `RUST_LOG`, added by hand to debug a function) is
//! read through [`Config::operator_override`] and recorded apart
//! ([`Config::override_names`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use storefront_store::dynamodb::TableNames;
use thiserror::Error;

use crate::settings::DEFAULT_SNAPSHOT_EVERY;

/// A setting is missing or malformed. The message names the variable and says what to set.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error(
        "environment variable {0} is not set; template.yaml sets it in AWS, the local runtime sets it from template.yaml"
    )]
    Missing(&'static str),
    /// A variable holds something that does not parse.
    #[error("environment variable {name} is {value:?}: {expected}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it should look like.
        expected: &'static str,
    },
}

/// Everything a function reads from its environment. Not every function
/// needs every field; each reads what it needs through the accessors, and
/// the names read are recorded (clones share the record).
#[derive(Clone)]
pub struct Config {
    vars: HashMap<String, String>,
    read: Arc<Mutex<BTreeSet<String>>>,
    overrides: Arc<Mutex<BTreeSet<String>>>,
}

impl PartialEq for Config {
    /// Two configurations are equal when they hold the same variables, whatever was read.
    fn eq(&self, other: &Self) -> bool {
        self.vars == other.vars
    }
}

impl Eq for Config {}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Sorted, so two configurations with the same variables print the same.
        let vars: BTreeMap<&String, &String> = self.vars.iter().collect();
        f.debug_struct("Config").field("vars", &vars).finish()
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Self {
        Config::from_pairs(std::env::vars())
    }

    /// A configuration from explicit pairs (the local runtime and tests).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Config {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            read: Arc::default(),
            overrides: Arc::default(),
        }
    }

    /// The names of the variables read so far through this configuration or
    /// any of its clones, whether they were set or not.
    pub fn read_names(&self) -> BTreeSet<String> {
        self.read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The names of the operator overrides read so far (see
    /// [`Config::operator_override`]), whether they were set or not.
    pub fn override_names(&self) -> BTreeSet<String> {
        self.overrides
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A variable no template sets, which an operator may add to a
    /// function's environment by hand to change how it runs while debugging
    /// (`RUST_LOG`). Recorded in [`Config::override_names`], not in
    /// [`Config::read_names`]: what a function reads from its template is
    /// held against the template both ways, and an override is by
    /// definition absent from it.
    pub fn operator_override(&self, name: &str) -> Option<&str> {
        self.overrides
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned());
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A variable's value (empty counts as unset), recording that it was read.
    fn get(&self, name: &str) -> Option<&str> {
        self.read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned());
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A required variable.
    pub fn required(&self, name: &'static str) -> Result<&str, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing(name))
    }

    /// An optional variable.
    pub fn optional(&self, name: &str) -> Option<&str> {
        self.get(name)
    }

    /// An optional unsigned number with a default.
    pub fn number(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        match self.optional(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
                name,
                value: v.to_owned(),
                expected: "a whole non-negative number",
            }),
        }
    }

    /// `EVENTS_TABLE` and `STATE_TABLE`.
    pub fn tables(&self) -> Result<TableNames, ConfigError> {
        Ok(TableNames {
            events: self.required("EVENTS_TABLE")?.to_owned(),
            state: self.required("STATE_TABLE")?.to_owned(),
        })
    }

    /// `EVENT_BUS_NAME`.
    pub fn bus_name(&self) -> Result<&str, ConfigError> {
        self.required("EVENT_BUS_NAME")
    }

    /// `SNAPSHOT_EVERY`: snapshot an aggregate every N events (default
    /// [`DEFAULT_SNAPSHOT_EVERY`]; 0 = never).
    pub fn snapshot_every(&self) -> Result<u64, ConfigError> {
        self.number("SNAPSHOT_EVERY", DEFAULT_SNAPSHOT_EVERY)
    }

    /// `STOREFRONT_FUNCTION` (the local runtime) or the Lambda function name
    /// (`AWS_LAMBDA_FUNCTION_NAME`): the `function` in logs and metrics.
    pub fn function_name(&self) -> &str {
        self.optional("STOREFRONT_FUNCTION")
            .or_else(|| self.optional("AWS_LAMBDA_FUNCTION_NAME"))
            .unwrap_or("storefront")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Missing and malformed variables are named in the error.
    #[test]
    fn errors_name_the_variable() {
        let c = Config::from_pairs([("EVENTS_TABLE", "e"), ("SNAPSHOT_EVERY", "ten")]);
        assert_eq!(c.tables(), Err(ConfigError::Missing("STATE_TABLE")));
        assert!(matches!(
            c.snapshot_every(),
            Err(ConfigError::Invalid {
                name: "SNAPSHOT_EVERY",
                ..
            })
        ));
        let c = Config::from_pairs([
            ("EVENTS_TABLE", "e"),
            ("STATE_TABLE", "s"),
            ("EVENT_BUS_NAME", ""),
        ]);
        assert_eq!(c.tables().map(|t| t.state), Ok("s".to_owned()));
        assert_eq!(c.bus_name(), Err(ConfigError::Missing("EVENT_BUS_NAME")));
        assert_eq!(c.snapshot_every(), Ok(100));
        assert!(
            ConfigError::Missing("X")
                .to_string()
                .contains("X is not set")
        );
    }

    /// Every accessor records the names it reads, set or not; clones share
    /// the record, and equality and Debug look at the variables only.
    #[test]
    fn records_the_names_read() {
        let c = Config::from_pairs([("EVENTS_TABLE", "e"), ("STATE_TABLE", "s"), ("UNREAD", "u")]);
        assert!(c.read_names().is_empty());
        let clone = c.clone();
        clone.tables().expect("tables");
        let _ = c.required("SENDER_EMAIL");
        let _ = c.optional("RUST_LOG");
        let _ = c.operator_override("RUST_LOG_STYLE");
        let _ = c.number("LOW_STOCK_THRESHOLD", 5);
        let _ = c.bus_name();
        let _ = c.snapshot_every();
        let _ = c.function_name();
        let expected: BTreeSet<String> = [
            "AWS_LAMBDA_FUNCTION_NAME",
            "EVENTS_TABLE",
            "EVENT_BUS_NAME",
            "LOW_STOCK_THRESHOLD",
            "RUST_LOG",
            "SENDER_EMAIL",
            "SNAPSHOT_EVERY",
            "STATE_TABLE",
            "STOREFRONT_FUNCTION",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        assert_eq!(c.read_names(), expected);
        assert_eq!(clone.read_names(), expected);
        assert_eq!(
            clone.override_names().into_iter().collect::<Vec<_>>(),
            ["RUST_LOG_STYLE"],
            "overrides are recorded apart, and shared by clones"
        );

        let fresh =
            Config::from_pairs([("EVENTS_TABLE", "e"), ("STATE_TABLE", "s"), ("UNREAD", "u")]);
        assert_eq!(
            fresh, c,
            "what was read does not make two configurations differ"
        );
        assert_eq!(format!("{fresh:?}"), format!("{c:?}"));
    }
}
