//! The envelope: how an event is stored and published (DESIGN §3).
//!
//! The checksum is `sha256:<hex>` over the canonical JSON of the array
//! `[streamId, version, eventType, data]`, where canonical means: object keys
//! sorted by their UTF-8 bytes, no insignificant whitespace,
//! strings and numbers as serde_json writes them. Sorting is done here, not
//! left to `serde_json`'s map type, so the checksum does not depend on a cargo
//! feature (`preserve_order`) some other crate might switch on.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::DomainError;
use crate::events::{DecodeError, Event, SCHEMA_VERSION};
use crate::ids::validate_id;

/// An event as stored in the event table and published as EventBridge `detail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventEnvelope {
    /// UUIDv7, unique across all streams.
    pub event_id: String,
    /// The dotted type from the catalogue, e.g. `cart.item.added`.
    pub event_type: String,
    /// `{aggregateType}#{aggregateId}`, e.g. `cart#u-42`.
    pub stream_id: String,
    /// 1-based position in the stream, without gaps.
    pub version: u64,
    /// When the event was decided, RFC 3339 UTC with milliseconds.
    pub occurred_at: String,
    /// Version of the payload's schema, for upcasting.
    pub schema_version: u32,
    /// The API request id that started the flow.
    pub correlation_id: String,
    /// The eventId that caused this one, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// A user id or `system:<handler>`.
    pub actor: String,
    /// The payload.
    pub data: serde_json::Value,
    /// `sha256:<hex>` over the canonical (stream, version, type, data).
    pub checksum: String,
}

/// Everything an envelope needs besides the event and its place in a stream.
/// Supplied by the caller: the domain reads no clock and makes no ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    /// A fresh UUIDv7 for this event.
    pub event_id: String,
    /// RFC 3339 UTC with milliseconds.
    pub occurred_at: String,
    /// The request id that started the flow.
    pub correlation_id: String,
    /// The event that caused this one.
    pub causation_id: Option<String>,
    /// Who: a user id or `system:<handler>`.
    pub actor: String,
}

/// Why an envelope failed its checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The stored checksum does not match the content: the item was altered.
    #[error("checksum mismatch on {stream_id} v{version}: stored {stored}, computed {computed}")]
    ChecksumMismatch {
        /// The stream.
        stream_id: String,
        /// The version.
        version: u64,
        /// The checksum the item carries.
        stored: String,
        /// The checksum of its content.
        computed: String,
    },
    /// The payload is not a valid event of its type.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl EventEnvelope {
    /// Wraps a decided event at `version` of `stream`, computing its checksum.
    pub fn seal(stream: &StreamId, version: u64, event: &Event, meta: &EventMeta) -> Self {
        let event_type = event.event_type().name().to_owned();
        let data = event.data();
        let stream_id = stream.to_string();
        let checksum = checksum(&stream_id, version, &event_type, &data);
        EventEnvelope {
            event_id: meta.event_id.clone(),
            event_type,
            stream_id,
            version,
            occurred_at: meta.occurred_at.clone(),
            schema_version: SCHEMA_VERSION,
            correlation_id: meta.correlation_id.clone(),
            causation_id: meta.causation_id.clone(),
            actor: meta.actor.clone(),
            data,
            checksum,
        }
    }

    /// Recomputes the checksum and compares it with the stored one.
    pub fn verify(&self) -> Result<(), EnvelopeError> {
        let computed = checksum(&self.stream_id, self.version, &self.event_type, &self.data);
        if computed == self.checksum {
            Ok(())
        } else {
            Err(EnvelopeError::ChecksumMismatch {
                stream_id: self.stream_id.clone(),
                version: self.version,
                stored: self.checksum.clone(),
                computed,
            })
        }
    }

    /// Verifies the checksum, then decodes the typed event.
    pub fn decode(&self) -> Result<Event, EnvelopeError> {
        self.verify()?;
        self.decode_unchecked()
    }

    /// Decodes the typed event without recomputing the checksum, for an
    /// envelope verified a moment ago: every `EventStore::load` verifies
    /// what it returns, so folding its result needs no second SHA-256.
    pub fn decode_unchecked(&self) -> Result<Event, EnvelopeError> {
        Ok(Event::from_parts(
            &self.event_type,
            self.schema_version,
            &self.data,
        )?)
    }

    /// The aggregate type of the stream (`cart` for `cart#u-42`), which is
    /// also the EventBridge source suffix: `storefront.{aggregateType}`.
    pub fn aggregate_type(&self) -> &str {
        self.stream_id
            .split_once('#')
            .map_or(self.stream_id.as_str(), |(t, _)| t)
    }
}

/// Seals the events one decision produced, at the versions right after
/// `expected_version`: the first gets `expected_version + 1`, and so on without
/// gaps. `meta(i)` supplies the i-th event's id, time and causation.
pub fn seal_batch(
    stream: &StreamId,
    expected_version: u64,
    events: &[Event],
    mut meta: impl FnMut(usize) -> EventMeta,
) -> Vec<EventEnvelope> {
    events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            EventEnvelope::seal(stream, expected_version + 1 + i as u64, event, &meta(i))
        })
        .collect()
}

/// `sha256:<hex>` over the canonical JSON of `[stream, version, type, data]`.
pub fn checksum(
    stream_id: &str,
    version: u64,
    event_type: &str,
    data: &serde_json::Value,
) -> String {
    let mut canonical = String::with_capacity(128);
    canonical.push('[');
    write_canonical(&mut canonical, &serde_json::Value::from(stream_id));
    canonical.push(',');
    canonical.push_str(&version.to_string());
    canonical.push(',');
    write_canonical(&mut canonical, &serde_json::Value::from(event_type));
    canonical.push(',');
    write_canonical(&mut canonical, data);
    canonical.push(']');
    let digest = Sha256::digest(canonical.as_bytes());
    format!("sha256:{}", hex::encode(digest))
}

/// Canonical JSON: keys sorted by bytes, no whitespace.
pub fn write_canonical(out: &mut String, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, &Value::String(k.clone()));
                out.push(':');
                write_canonical(out, v);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, v);
            }
            out.push(']');
        }
        // Scalars have exactly one serde_json rendering.
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// A stream's id: `{aggregateType}#{aggregateId}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    aggregate_type: String,
    aggregate_id: String,
}

impl StreamId {
    /// Builds a stream id; both halves must be valid ids and the type lower-case.
    pub fn new(aggregate_type: &str, aggregate_id: &str) -> Result<Self, DomainError> {
        if aggregate_type.is_empty()
            || !aggregate_type
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '-')
        {
            return Err(DomainError::Invalid {
                field: "streamId",
                reason: "the aggregate type must be lower-case letters".into(),
            });
        }
        validate_id("streamId", aggregate_id)?;
        Ok(StreamId {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
        })
    }

    /// Parses `type#id`.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let (t, id) = text.split_once('#').ok_or_else(|| DomainError::Invalid {
            field: "streamId",
            reason: "must look like {aggregateType}#{aggregateId}, e.g. cart#u-42".into(),
        })?;
        StreamId::new(t, id)
    }

    /// `cart`, `order`, `product`, ...
    pub fn aggregate_type(&self) -> &str {
        &self.aggregate_type
    }

    /// The id within the aggregate type.
    pub fn aggregate_id(&self) -> &str {
        &self.aggregate_id
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.aggregate_type, self.aggregate_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{CartItemAdded, Event};
    use crate::ids::Sku;

    fn meta() -> EventMeta {
        EventMeta {
            event_id: "0190a000-0000-7000-8000-000000000001".into(),
            occurred_at: "2026-11-27T10:00:00.000Z".into(),
            correlation_id: "req-1".into(),
            causation_id: None,
            actor: "u1".into(),
        }
    }

    fn added() -> Event {
        Event::CartItemAdded(CartItemAdded {
            sku: Sku::new("A").expect("sku"),
            name: "Mug".into(),
            quantity: 1,
            unit_price_cents: 100,
        })
    }

    /// A sealed envelope verifies, round-trips through JSON and decodes to the same event.
    #[test]
    fn seal_verify_decode() {
        let stream = StreamId::parse("cart#u1").expect("stream");
        let env = EventEnvelope::seal(&stream, 1, &added(), &meta());
        assert!(env.checksum.starts_with("sha256:"));
        assert_eq!(env.checksum.len(), "sha256:".len() + 64);
        env.verify().expect("verifies");
        let json = serde_json::to_string(&env).expect("json");
        assert!(json.contains("\"eventType\":\"cart.item.added\""));
        let back: EventEnvelope = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.decode().expect("decode"), added());
        assert_eq!(back.aggregate_type(), "cart");
    }

    /// Changing any of stream, version, type or data breaks the checksum.
    #[test]
    fn tampering_is_detected() {
        let stream = StreamId::parse("cart#u1").expect("stream");
        let env = EventEnvelope::seal(&stream, 1, &added(), &meta());
        let mut a = env.clone();
        a.version = 2;
        let mut b = env.clone();
        b.stream_id = "cart#u2".into();
        let mut c = env.clone();
        c.data["quantity"] = 99.into();
        let mut d = env.clone();
        d.event_type = "cart.item.removed".into();
        for tampered in [a, b, c, d] {
            assert!(matches!(
                tampered.verify(),
                Err(EnvelopeError::ChecksumMismatch { .. })
            ));
            assert!(tampered.decode().is_err());
        }
    }

    /// The checksum ignores key order and whitespace: it is over canonical JSON.
    #[test]
    fn checksum_is_canonical() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,2],"x":"é"}}"#).expect("json");
        let b: serde_json::Value =
            serde_json::from_str(r#"{ "a" : { "x":"é", "y":[1, 2] }, "b" : 1 }"#).expect("json");
        assert_eq!(checksum("s#1", 1, "t", &a), checksum("s#1", 1, "t", &b));
        let mut out = String::new();
        write_canonical(&mut out, &a);
        assert_eq!(out, r#"{"a":{"x":"é","y":[1,2]},"b":1}"#);
    }

    /// A known input has a known checksum, so other languages can check ours.
    #[test]
    fn checksum_vector() {
        let data = serde_json::json!({"sku": "A", "quantity": 1});
        // sha256 of [\"cart#u1\",1,\"cart.item.added\",{\"quantity\":1,\"sku\":\"A\"}]
        let expected = {
            let digest =
                Sha256::digest(br#"["cart#u1",1,"cart.item.added",{"quantity":1,"sku":"A"}]"#);
            format!("sha256:{}", hex::encode(digest))
        };
        assert_eq!(checksum("cart#u1", 1, "cart.item.added", &data), expected);
    }

    /// Stream ids parse and refuse malformed input.
    #[test]
    fn stream_ids() {
        let s = StreamId::parse("product#MUG-1").expect("parse");
        assert_eq!(s.aggregate_type(), "product");
        assert_eq!(s.aggregate_id(), "MUG-1");
        assert_eq!(s.to_string(), "product#MUG-1");
        for bad in [
            "product",
            "#x",
            "Product#x",
            "product#",
            "product#a b",
            "product#a#b",
        ] {
            assert!(StreamId::parse(bad).is_err(), "{bad}");
        }
    }
}
