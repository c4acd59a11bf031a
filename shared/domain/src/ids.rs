//! Validated identifiers and currency codes.
//!
//! Ids end up in DynamoDB keys, URL paths and log lines, so they are held to a
//! small alphabet: ASCII letters, digits, `-`, `_` and `.`, 1 to 64 characters.
//! Anything else is refused with a clear [`DomainError::Invalid`] instead of
//! being stored and tripping someone up later.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::DomainError;

/// The longest id the storefront accepts.
pub const MAX_ID_LEN: usize = 64;
/// The id alphabet as a regular expression (for JSON Schema and OpenAPI).
pub const ID_PATTERN: &str = "^[A-Za-z0-9._-]+$";

/// Checks an id against the allowed alphabet and length.
pub fn validate_id(field: &'static str, value: &str) -> Result<(), DomainError> {
    if value.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_ID_LEN} characters"),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(DomainError::invalid(
            field,
            format!("may hold only letters, digits, '-', '_' and '.', found {c:?}"),
        ));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_ID_LEN,
                    "pattern": ID_PATTERN,
                })
            }
        }

        impl $name {
            /// Validates and wraps an id.
            pub fn new(value: impl Into<String>) -> Result<Self, DomainError> {
                let value = value.into();
                validate_id($field, &value)?;
                Ok(Self(value))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A product's stock-keeping unit, e.g. `TSHIRT-RED-M`.
    Sku,
    "sku"
);
id_type!(
    /// A user's id: the `sub` claim of their token.
    UserId,
    "userId"
);
id_type!(
    /// An order's id, chosen by the API when the cart checks out.
    OrderId,
    "orderId"
);

/// An ISO 4217 currency code: three upper-case ASCII letters, e.g. `EUR`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl JsonSchema for Currency {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Currency".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "pattern": "^[A-Z]{3}$" })
    }
}

impl Currency {
    /// Validates a currency code.
    pub fn new(value: impl Into<String>) -> Result<Self, DomainError> {
        let value = value.into();
        if value.len() == 3 && value.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(Self(value))
        } else {
            Err(DomainError::invalid(
                "currency",
                "must be a three-letter ISO 4217 code in capitals, such as EUR",
            ))
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Currency {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> String {
        value.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a human-readable text field: trimmed, not empty, at most `max` characters, no control characters.
pub fn validate_text(field: &'static str, value: &str, max: usize) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        return Err(DomainError::invalid(field, "must not be blank"));
    }
    if value.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids accept the safe alphabet and refuse empty, long and odd ones.
    #[test]
    fn id_alphabet_and_length() {
        assert!(Sku::new("TSHIRT-RED_M.2").is_ok());
        for bad in ["", "a b", "a/b", "é", "a#b", &"x".repeat(65)] {
            assert!(
                matches!(
                    Sku::new(bad),
                    Err(DomainError::Invalid { field: "sku", .. })
                ),
                "{bad:?} should be refused"
            );
        }
    }

    /// Deserializing an id validates it too.
    #[test]
    fn serde_validates_ids() {
        assert!(serde_json::from_str::<OrderId>("\"o-1\"").is_ok());
        assert!(serde_json::from_str::<OrderId>("\"o 1\"").is_err());
        assert!(serde_json::from_str::<Currency>("\"eur\"").is_err());
        assert!(serde_json::from_str::<Currency>("\"EUR\"").is_ok());
    }

    /// Text fields refuse blanks, control characters and overlong values.
    #[test]
    fn text_validation() {
        assert!(validate_text("name", "Ada Lovelace", 100).is_ok());
        assert!(validate_text("name", "  ", 100).is_err());
        assert!(validate_text("name", "a\u{0}b", 100).is_err());
        assert!(validate_text("name", &"é".repeat(101), 100).is_err());
        assert!(validate_text("name", &"é".repeat(100), 100).is_ok());
    }
}
