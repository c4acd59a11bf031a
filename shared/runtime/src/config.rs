//! Configuration from environment variables, read once at cold start.

use std::collections::HashMap;

use storefront_store::dynamodb::TableNames;
use thiserror::Error;

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
/// needs every field; each reads what it needs through the accessors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    vars: HashMap<String, String>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Self {
        Config {
            vars: std::env::vars().collect(),
        }
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
        }
    }

    /// A required variable.
    pub fn required(&self, name: &'static str) -> Result<&str, ConfigError> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or(ConfigError::Missing(name))
    }

    /// An optional variable.
    pub fn optional(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
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

    /// `SNAPSHOT_EVERY`: snapshot an aggregate every N events (default 100; 0 = never).
    pub fn snapshot_every(&self) -> Result<u64, ConfigError> {
        self.number("SNAPSHOT_EVERY", 100)
    }

    /// `POWERTOOLS_SERVICE_NAME` or the Lambda function name: the `function` in logs and metrics.
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
}
