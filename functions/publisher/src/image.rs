//! Between a DynamoDB stream record's image and an events-table item.
//!
//! Lambda hands the publisher stream records whose images are
//! `serde_dynamo` attribute values (that is what `aws_lambda_events` parses
//! them into); the store's decoder, [`storefront_store::dynamodb::item_to_event`],
//! reads `aws_sdk_dynamodb` attribute values, the form the store writes. An
//! events-table item only ever holds strings and numbers
//! ([`storefront_store::dynamodb::event_to_item`]), so only `S` and `N` are
//! carried across.

use std::collections::HashMap;

use aws_lambda_events::event::dynamodb::{EventRecord, StreamRecord, StreamViewType};
use aws_sdk_dynamodb::types::AttributeValue;

/// A stream image as an item the store can decode. Attributes of any other
/// type than `S` or `N` are left out: no events-table attribute has one, so
/// if a required attribute arrives with another type the decoder reports it
/// missing, which is the right verdict for such an item.
pub fn image_to_item(image: &serde_dynamo::Item) -> HashMap<String, AttributeValue> {
    image
        .iter()
        .filter_map(|(name, value)| {
            let value = match value {
                serde_dynamo::AttributeValue::S(s) => AttributeValue::S(s.clone()),
                serde_dynamo::AttributeValue::N(n) => AttributeValue::N(n.clone()),
                _ => return None,
            };
            Some((name.clone(), value))
        })
        .collect()
}

/// An events-table item as a stream image (`S` and `N` attributes only):
/// the inverse of [`image_to_item`], for the local runtime and for tests
/// that build stream records from real items.
pub fn item_to_image(item: &HashMap<String, AttributeValue>) -> serde_dynamo::Item {
    let image: HashMap<String, serde_dynamo::AttributeValue> = item
        .iter()
        .filter_map(|(name, value)| {
            let value = match value {
                AttributeValue::S(s) => serde_dynamo::AttributeValue::S(s.clone()),
                AttributeValue::N(n) => serde_dynamo::AttributeValue::N(n.clone()),
                _ => return None,
            };
            Some((name.clone(), value))
        })
        .collect();
    image.into()
}

/// The stream record DynamoDB writes when `item` is inserted: `INSERT`,
/// NEW_IMAGE view, keys `pk` and `version`, and the given sequence number.
pub fn insert_record(
    sequence_number: impl Into<String>,
    item: &HashMap<String, AttributeValue>,
) -> EventRecord {
    let sequence_number = sequence_number.into();
    let keys: HashMap<String, AttributeValue> = item
        .iter()
        .filter(|(name, _)| matches!(name.as_str(), "pk" | "version"))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    // Both types are non-exhaustive: start from their defaults.
    let mut change = StreamRecord::default();
    change.keys = item_to_image(&keys);
    change.new_image = item_to_image(item);
    // Roughly what DynamoDB reports: the bytes of names and values.
    let size: usize = item
        .iter()
        .map(|(name, value)| name.len() + value.as_s().or(value.as_n()).map_or(0, String::len))
        .sum();
    change.size_bytes = i64::try_from(size).unwrap_or(i64::MAX);
    change.stream_view_type = Some(StreamViewType::NewImage);
    change.sequence_number = Some(sequence_number.clone());
    let mut record = EventRecord::default();
    record.event_id = format!("insert-{sequence_number}");
    record.event_name = "INSERT".to_owned();
    record.event_source = Some("aws:dynamodb".to_owned());
    record.aws_region = "us-east-1".to_owned();
    record.change = change;
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use storefront_domain::events::CartCleared;
    use storefront_domain::{Event, EventEnvelope, EventMeta, StreamId};
    use storefront_store::dynamodb::{event_to_item, item_to_event};

    /// An events-table item survives item → stream image → item unchanged,
    /// so the publisher decodes exactly what the store wrote.
    #[test]
    fn item_image_round_trip() {
        let envelope = EventEnvelope::seal(
            &StreamId::parse("cart#u1").expect("stream"),
            1,
            &Event::CartCleared(CartCleared {}),
            &EventMeta {
                event_id: "e1".into(),
                occurred_at: "2026-11-27T10:00:00.000Z".into(),
                correlation_id: "c".into(),
                causation_id: Some("e0".into()),
                actor: "u1".into(),
            },
        );
        let item = event_to_item(&envelope);
        let back = image_to_item(&item_to_image(&item));
        assert_eq!(back, item);
        assert_eq!(item_to_event(&back).expect("decodes"), envelope);
        let record = insert_record("100", &item);
        assert_eq!(record.event_name, "INSERT");
        assert_eq!(record.change.sequence_number.as_deref(), Some("100"));
        assert_eq!(record.change.keys.len(), 2);
    }

    /// Attribute types an events item never has are dropped, not guessed at.
    #[test]
    fn other_types_are_left_out() {
        let mut image: HashMap<String, serde_dynamo::AttributeValue> = HashMap::new();
        image.insert(
            "pk".into(),
            serde_dynamo::AttributeValue::S("cart#u1".into()),
        );
        image.insert("flag".into(), serde_dynamo::AttributeValue::Bool(true));
        let item = image_to_item(&image.into());
        assert_eq!(item.len(), 1);
        assert_eq!(item.get("pk"), Some(&AttributeValue::S("cart#u1".into())));
    }
}
