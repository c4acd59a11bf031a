//! The outside facts the domain does not produce itself: time and fresh ids.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now as RFC 3339 UTC with milliseconds, e.g. `2026-11-27T10:00:00.123Z`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Now in whole seconds since the Unix epoch (DynamoDB TTL's unit).
pub fn now_epoch_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A fresh UUIDv7: time-ordered, unique.
pub fn new_event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    /// Timestamps are RFC 3339 UTC with exactly three fractional digits.
    #[test]
    fn rfc3339_millis() {
        let now = super::now_rfc3339();
        assert_eq!(now.len(), "2026-11-27T10:00:00.123Z".len(), "{now}");
        assert!(now.ends_with('Z'));
        assert!(humantime::parse_rfc3339(&now).is_ok());
    }

    /// Event ids are version-7 UUIDs and distinct.
    #[test]
    fn event_ids() {
        let a = super::new_event_id();
        let b = super::new_event_id();
        assert_ne!(a, b);
        assert_eq!(
            uuid::Uuid::parse_str(&a).map(|u| u.get_version_num()).ok(),
            Some(7)
        );
    }
}
