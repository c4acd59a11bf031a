//! The size limits fit inside each other: the largest envelope an append
//! accepts still makes a PutEvents entry under EventBridge's 256 KB and, once
//! a rule wraps it into an EventBridge event, an SQS message under SQS's
//! 256 KiB; and the store refuses anything larger before writing.

use storefront_domain::events::ProductUpdated;
use storefront_domain::{Event, EventEnvelope, EventMeta, StreamId};
use storefront_store::MAX_ENVELOPE_BYTES;
use storefront_template::router::eventbridge_event;

/// EventBridge: Source + DetailType + Detail ≤ 256 KB.
const EVENTBRIDGE_ENTRY: usize = 256 * 1024;
/// SQS: a message body ≤ 256 KiB.
const SQS_MESSAGE: usize = 262_144;

fn envelope_of(size: usize) -> EventEnvelope {
    let stream = StreamId::parse("product#MUG").expect("stream");
    let meta = EventMeta {
        event_id: "0190a000-0000-7000-8000-000000000001".into(),
        occurred_at: "2026-11-27T10:00:00.000Z".into(),
        correlation_id: "c".repeat(128),
        causation_id: Some("0190a000-0000-7000-8000-000000000002".into()),
        actor: "system:order-workflow".into(),
    };
    // Grow the name until the envelope is exactly `size` bytes.
    let base = serde_json::to_vec(&EventEnvelope::seal(
        &stream,
        1,
        &Event::ProductUpdated(ProductUpdated {
            name: String::new(),
        }),
        &meta,
    ))
    .expect("json")
    .len();
    let name = "x".repeat(size - base);
    let e = EventEnvelope::seal(
        &stream,
        1,
        &Event::ProductUpdated(ProductUpdated { name }),
        &meta,
    );
    assert_eq!(serde_json::to_vec(&e).expect("json").len(), size);
    e
}

/// The largest accepted envelope fits a PutEvents entry and the SQS message a rule makes of it.
#[test]
fn the_largest_event_fits_every_hop() {
    let e = envelope_of(MAX_ENVELOPE_BYTES);
    let detail = serde_json::to_string(&e).expect("json");
    let source = "storefront.notification"; // the longest source we use
    let detail_type = "inventory.reservation.failed"; // the longest type in the catalogue
    assert!(source.len() + detail_type.len() + detail.len() <= EVENTBRIDGE_ENTRY);
    let event = eventbridge_event(
        &"e".repeat(36),
        source,
        detail_type,
        "2026-11-27T10:00:00Z",
        &serde_json::to_value(&e).expect("value"),
    );
    let body = event.to_string();
    assert!(
        body.len() <= SQS_MESSAGE,
        "the SQS message would be {} bytes",
        body.len()
    );
    for t in storefront_domain::EventType::ALL {
        assert!(
            t.name().len() <= detail_type.len(),
            "{} is longer than {detail_type}",
            t.name()
        );
        // Inventory events are published from product streams too.
        for family in [t.family(), "product"] {
            assert!(
                format!("storefront.{family}").len() <= source.len(),
                "storefront.{family} is longer than {source}"
            );
        }
    }
}

/// One byte over the limit, and the store refuses the append before writing anything.
#[tokio::test]
async fn one_byte_over_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let store =
        storefront_store::sqlite::SqliteStore::open(dir.path().join("limits.db")).expect("sqlite");
    let stream = StreamId::parse("product#MUG").expect("stream");
    use storefront_store::EventStore;
    let err = store
        .append(&stream, 0, vec![envelope_of(MAX_ENVELOPE_BYTES + 1)])
        .await
        .expect_err("too large");
    assert!(
        matches!(err, storefront_store::StoreError::EventTooLarge { .. }),
        "{err}"
    );
    store
        .append(&stream, 0, vec![envelope_of(MAX_ENVELOPE_BYTES)])
        .await
        .expect("exactly the limit fits");
}
