//! Unit tests of the batch logic, against an in-memory bus. The real SDK
//! against moto is in `tests/eventbridge_moto.rs`.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::EventRecord;
use storefront_domain::events::{CartCleared, CartItemAdded};
use storefront_domain::{Event, EventEnvelope, EventMeta, Sku, StreamId};
use storefront_store::dynamodb::event_to_item;

use super::*;
use crate::image::insert_record;

/// A bus that records every call and refuses entries (or whole calls) as told.
#[derive(Default)]
struct FakeBus {
    /// Entries of each call, in order.
    calls: Mutex<Vec<Vec<Entry>>>,
    /// eventId → how many more times to refuse it (`u32::MAX`: always), and with which code.
    refuse: Mutex<HashMap<String, (u32, &'static str)>>,
    /// How many more calls to fail whole.
    failing_calls: Mutex<u32>,
}

impl FakeBus {
    fn refusing(event_id: &str, times: u32) -> Self {
        let bus = FakeBus::default();
        bus.refuse
            .lock()
            .expect("lock")
            .insert(event_id.to_owned(), (times, "ThrottlingException"));
        bus
    }

    fn calls(&self) -> Vec<Vec<Entry>> {
        self.calls.lock().expect("lock").clone()
    }

    /// The eventIds of each call.
    fn call_ids(&self) -> Vec<Vec<String>> {
        self.calls()
            .iter()
            .map(|call| call.iter().map(event_id_of).collect())
            .collect()
    }
}

fn event_id_of(entry: &Entry) -> String {
    let envelope: EventEnvelope =
        serde_json::from_str(&entry.detail).expect("detail is an envelope");
    envelope.event_id
}

#[async_trait]
impl Bus for FakeBus {
    async fn put_events(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, BusError> {
        assert!(
            entries.len() <= MAX_ENTRIES_PER_CALL,
            "too many entries in one call"
        );
        assert!(
            entries.iter().map(Entry::size).sum::<usize>() <= MAX_REQUEST_BYTES,
            "call over 256 KB"
        );
        self.calls.lock().expect("lock").push(entries.to_vec());
        {
            let mut failing = self.failing_calls.lock().expect("lock");
            if *failing > 0 {
                *failing -= 1;
                return Err(BusError::Call("connection reset".into()));
            }
        }
        let mut refuse = self.refuse.lock().expect("lock");
        Ok(entries
            .iter()
            .map(|e| {
                let id = event_id_of(e);
                match refuse.get_mut(&id) {
                    Some((left, code)) if *left > 0 => {
                        if *left != u32::MAX {
                            *left -= 1;
                        }
                        EntryResult::Failed {
                            code: (*code).into(),
                            message: "refused by the fake bus".into(),
                        }
                    }
                    _ => EntryResult::Published {
                        event_id: Some(format!("eb-{id}")),
                    },
                }
            })
            .collect())
    }
}

fn no_wait() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: Duration::ZERO,
    }
}

fn meta(n: u64) -> EventMeta {
    EventMeta {
        event_id: format!("e{n}"),
        occurred_at: "2026-11-27T10:00:00.000Z".into(),
        correlation_id: format!("req-{n}"),
        causation_id: None,
        actor: "u1".into(),
    }
}

/// Version `n` of `cart#u1`, with a product name of `name_len` bytes (to make big events).
fn envelope(n: u64, name_len: usize) -> EventEnvelope {
    let event = Event::CartItemAdded(CartItemAdded {
        sku: Sku::new("MUG-1").expect("sku"),
        name: "m".repeat(name_len),
        quantity: 1,
        unit_price_cents: 1250,
    });
    EventEnvelope::seal(
        &StreamId::parse("cart#u1").expect("stream"),
        n,
        &event,
        &meta(n),
    )
}

fn sequence_number(n: u64) -> String {
    format!("{:021}", 1000 + n)
}

fn record(e: &EventEnvelope) -> EventRecord {
    insert_record(sequence_number(e.version), &event_to_item(e))
}

/// Records for versions 1..=count of small events.
fn records(count: u64) -> Vec<EventRecord> {
    (1..=count).map(|n| record(&envelope(n, 3))).collect()
}

fn failed_identifiers(response: &DynamoDbEventResponse) -> Vec<Option<String>> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// An entry carries the source, detail-type and detail DESIGN §3 names, and
/// its size is counted the way EventBridge counts it.
#[test]
fn entry_from_envelope() {
    let e = envelope(1, 3);
    let entry = Entry::from_envelope(&e).expect("entry");
    assert_eq!(entry.source, "storefront.cart");
    assert_eq!(entry.detail_type, "cart.item.added");
    let detail: serde_json::Value = serde_json::from_str(&entry.detail).expect("json");
    assert_eq!(detail["eventId"], "e1");
    assert_eq!(detail["streamId"], "cart#u1");
    let back: EventEnvelope = serde_json::from_str(&entry.detail).expect("envelope");
    assert_eq!(back, e);
    back.verify().expect("checksum");
    assert_eq!(
        entry.size(),
        "storefront.cart".len() + "cart.item.added".len() + entry.detail.len()
    );
    // Multi-byte characters count as their UTF-8 bytes.
    let wide = Entry {
        source: "s".into(),
        detail_type: "t".into(),
        detail: "é".into(),
        trace_header: None,
    };
    assert_eq!(wide.size(), 4);
    // The trace header is not part of the size EventBridge counts.
    assert_eq!(wide.clone().traced(Some(TRACE)).size(), 4);
}

/// The X-Ray trace header of a Lambda invocation, as the context gives it.
const TRACE: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

/// The invocation's trace header goes on every entry of the batch, in every
/// call; without one (republish, the local runtime) entries carry none.
#[tokio::test]
async fn every_entry_carries_the_invocation_trace_header() {
    let publisher = Publisher::new(FakeBus::default()).with_retry(no_wait());
    let response = publisher
        .handle_traced(batch(records(12)), Some(TRACE))
        .await;
    assert!(response.batch_item_failures.is_empty());
    let calls = publisher.bus().calls();
    assert_eq!(calls.len(), 2);
    for entry in calls.concat() {
        assert_eq!(entry.trace_header.as_deref(), Some(TRACE));
    }

    let untraced = Publisher::new(FakeBus::default()).with_retry(no_wait());
    untraced.publish(&records(2)).await;
    assert!(
        untraced
            .bus()
            .calls()
            .concat()
            .iter()
            .all(|e| e.trace_header.is_none())
    );
}

/// The EventBridge adapter sends an entry's trace header as the request
/// entry's `TraceHeader` (moto does not keep it, so the request entry the
/// adapter builds is what is checked), next to the bus, source, detail-type
/// and detail.
#[test]
fn the_request_entry_carries_the_trace_header() {
    let sdk = storefront_runtime::aws::local_config("http://127.0.0.1:9");
    let bus = EventBridgeBus::new(storefront_runtime::aws::eventbridge(&sdk), "storefront-dev");
    let entry = Entry::from_envelope(&envelope(1, 3)).expect("entry");
    let traced = bus.request_entry(&entry.clone().traced(Some(TRACE)));
    assert_eq!(traced.trace_header(), Some(TRACE));
    assert_eq!(traced.event_bus_name(), Some("storefront-dev"));
    assert_eq!(traced.source(), Some("storefront.cart"));
    assert_eq!(traced.detail_type(), Some("cart.item.added"));
    assert_eq!(traced.detail(), Some(entry.detail.as_str()));
    assert_eq!(bus.request_entry(&entry).trace_header(), None);
}

/// A batch of 25 events goes out in calls of 10, 10 and 5, in stream order,
/// and nothing is reported failed.
#[tokio::test]
async fn chunks_of_at_most_ten() {
    let publisher = Publisher::new(FakeBus::default()).with_retry(no_wait());
    let response = publisher.handle(batch(records(25))).await;
    assert!(response.batch_item_failures.is_empty());
    let sizes: Vec<usize> = publisher.bus().calls().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![10, 10, 5]);
    let order: Vec<String> = publisher.bus().call_ids().concat();
    let expected: Vec<String> = (1..=25).map(|n| format!("e{n}")).collect();
    assert_eq!(order, expected);
}

/// Events of about 100 KB each go two to a call: a third would pass 256 KB.
#[tokio::test]
async fn chunks_of_at_most_256_kb() {
    let publisher = Publisher::new(FakeBus::default()).with_retry(no_wait());
    let records: Vec<EventRecord> = (1..=5).map(|n| record(&envelope(n, 100_000))).collect();
    let report = publisher.publish(&records).await;
    assert!(report.failed.is_empty());
    assert_eq!(report.published, 5);
    let sizes: Vec<usize> = publisher.bus().calls().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![2, 2, 1]);
}

/// The byte limit is inclusive: entries adding up to exactly 256 KB share a
/// call, one byte more starts a new one.
#[test]
fn byte_limit_boundary() {
    let pending = |index: usize, detail_len: usize| Pending {
        index,
        entry: Entry {
            source: "s".into(),
            detail_type: "t".into(),
            detail: "d".repeat(detail_len),
            trace_header: None,
        },
        event_id: format!("e{index}"),
        correlation_id: "c".into(),
    };
    let half = MAX_REQUEST_BYTES / 2 - 2;
    let exact = chunks(vec![pending(0, half), pending(1, half)]);
    assert_eq!(exact.len(), 1);
    assert_eq!(
        exact[0].iter().map(|p| p.entry.size()).sum::<usize>(),
        MAX_REQUEST_BYTES
    );
    let over = chunks(vec![pending(0, half), pending(1, half + 1)]);
    assert_eq!(over.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1]);
}

/// An entry the bus refuses is retried on its own until it goes through;
/// the batch then reports no failure.
#[tokio::test]
async fn refused_entries_are_retried() {
    let publisher = Publisher::new(FakeBus::refusing("e3", 2)).with_retry(no_wait());
    let report = publisher.publish(&records(5)).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.published, 5);
    assert_eq!(
        publisher.bus().call_ids(),
        vec![vec!["e1", "e2", "e3", "e4", "e5"], vec!["e3"], vec!["e3"],]
    );
    assert!(report.response().batch_item_failures.is_empty());
}

/// An entry refused with a code that fails the same way every time
/// (here: the role may not use the source) is not retried within the
/// invocation; it is reported at once and the others are published.
#[tokio::test]
async fn permanent_refusals_are_not_retried() {
    let bus = FakeBus::default();
    bus.refuse
        .lock()
        .expect("lock")
        .insert("e2".into(), (u32::MAX, "NotAuthorizedForSourceException"));
    let publisher = Publisher::new(bus).with_retry(no_wait());
    let report = publisher.publish(&records(3)).await;
    assert_eq!(report.published, 2);
    assert!(matches!(
        report.failed.as_slice(),
        [(1, RecordError::NotPublished { attempts: 1, .. })]
    ));
    assert_eq!(publisher.bus().calls().len(), 1);
    assert!(bus::is_retryable("ThrottlingException"));
    assert!(bus::is_retryable("InternalFailure"));
    assert!(bus::is_retryable("SomethingNew"));
    assert!(!bus::is_retryable("MalformedDetail"));
}

/// A call that fails whole is retried whole.
#[tokio::test]
async fn failed_calls_are_retried() {
    let bus = FakeBus::default();
    *bus.failing_calls.lock().expect("lock") = 2;
    let publisher = Publisher::new(bus).with_retry(no_wait());
    let report = publisher.publish(&records(3)).await;
    assert!(report.failed.is_empty());
    assert_eq!(report.published, 3);
    assert_eq!(publisher.bus().calls().len(), 3);
}

/// Entries the bus keeps refusing are failed after the configured retries,
/// and the response names only the FIRST failed record's sequence number,
/// so the mapping retries from there and skips nothing after it. The others
/// were published.
#[tokio::test]
async fn first_failed_sequence_number_is_reported() {
    let bus = FakeBus::refusing("e7", u32::MAX);
    bus.refuse
        .lock()
        .expect("lock")
        .insert("e4".into(), (u32::MAX, "InternalFailure"));
    let publisher = Publisher::new(bus).with_retry(no_wait());
    let records = records(12);
    let report = publisher.publish(&records).await;
    assert_eq!(report.published, 10);
    let failed: Vec<usize> = report.failed.iter().map(|(i, _)| *i).collect();
    assert_eq!(failed, vec![3, 6]);
    assert!(matches!(
        report.failed[0].1,
        RecordError::NotPublished { attempts: 4, .. }
    ));
    assert_eq!(
        failed_identifiers(&report.response()),
        vec![Some(sequence_number(4))]
    );
    // First call: e1..e10; then e4 and e7 three more times; then e11, e12.
    assert_eq!(publisher.bus().calls().len(), 5);
}

/// Whole-call failures that outlast the retries fail every record of the
/// call; the first of them is reported.
#[tokio::test]
async fn persistent_call_failure_reports_the_first_record() {
    let bus = FakeBus::default();
    *bus.failing_calls.lock().expect("lock") = u32::MAX;
    let publisher = Publisher::new(bus).with_retry(RetryPolicy {
        max_retries: 1,
        base_delay: Duration::ZERO,
    });
    let response = publisher.handle(batch(records(3))).await;
    assert_eq!(
        failed_identifiers(&response),
        vec![Some(sequence_number(1))]
    );
    assert_eq!(publisher.bus().calls().len(), 2);
}

/// MODIFY and REMOVE records, and inserts of items that are not events
/// (no `eventType`, e.g. a state-table item), are ignored: nothing is put,
/// nothing is failed.
#[tokio::test]
async fn non_inserts_and_non_events_are_ignored() {
    let item = event_to_item(&envelope(1, 3));
    let mut modify = insert_record(sequence_number(1), &item);
    modify.event_name = "MODIFY".into();
    let mut remove = insert_record(sequence_number(2), &item);
    remove.event_name = "REMOVE".into();
    let mut state_item = item.clone();
    state_item.remove("eventType");
    state_item.insert(
        "sk".into(),
        aws_sdk_dynamodb::types::AttributeValue::S("view".into()),
    );
    let not_event = insert_record(sequence_number(3), &state_item);
    let publisher = Publisher::new(FakeBus::default()).with_retry(no_wait());
    let report = publisher.publish(&[modify, remove, not_event]).await;
    assert_eq!(report.ignored, 3);
    assert_eq!(report.published, 0);
    assert!(report.failed.is_empty());
    assert!(publisher.bus().calls().is_empty());
}

/// A record whose item was altered after it was written fails its checksum:
/// it is reported (the first failed record), never put on the bus, and the
/// records around it are published.
#[tokio::test]
async fn tampered_record_is_reported() {
    let mut records = records(5);
    let image = &mut records[2].change.new_image;
    image.insert(
        "data".into(),
        serde_dynamo::AttributeValue::S(
            r#"{"sku":"MUG-1","name":"mmm","quantity":99,"unitPriceCents":1250}"#.into(),
        ),
    );
    let publisher = Publisher::new(FakeBus::default()).with_retry(no_wait());
    let report = publisher.publish(&records).await;
    assert_eq!(report.published, 4);
    assert_eq!(report.failed.len(), 1);
    assert!(matches!(
        report.failed[0],
        (2, RecordError::Decode(StoreError::Integrity(_)))
    ));
    assert_eq!(
        failed_identifiers(&report.response()),
        vec![Some(sequence_number(3))]
    );
    assert_eq!(
        publisher.bus().call_ids(),
        vec![vec!["e1", "e2", "e4", "e5"]]
    );
}

/// An entry over 256 KB is failed without asking the bus; the events before
/// and after it are published and the big one is the reported record.
#[tokio::test]
async fn oversized_entry_never_reaches_the_bus() {
    let records = vec![
        record(&envelope(1, 3)),
        record(&envelope(2, MAX_REQUEST_BYTES)),
        record(&envelope(3, 3)),
    ];
    let publisher = Publisher::new(FakeBus::default()).with_retry(no_wait());
    let report = publisher.publish(&records).await;
    assert_eq!(report.published, 2);
    assert!(matches!(
        report.failed.as_slice(),
        [(1, RecordError::TooLarge { size })] if *size > MAX_REQUEST_BYTES
    ));
    assert_eq!(
        failed_identifiers(&report.response()),
        vec![Some(sequence_number(2))]
    );
    assert_eq!(publisher.bus().call_ids(), vec![vec!["e1", "e3"]]);
}

/// Events from several aggregates get their own sources.
#[tokio::test]
async fn source_follows_the_aggregate() {
    let order = EventEnvelope::seal(
        &StreamId::parse("order#o-1").expect("stream"),
        1,
        &Event::CartCleared(CartCleared {}),
        &meta(9),
    );
    let publisher = Publisher::new(FakeBus::default()).with_retry(no_wait());
    publisher
        .publish(&[record(&envelope(1, 3)), record(&order)])
        .await;
    let sources: Vec<String> = publisher.bus().calls()[0]
        .iter()
        .map(|e| e.source.clone())
        .collect();
    assert_eq!(sources, vec!["storefront.cart", "storefront.order"]);
}

/// The default backoff waits 50, 100 and 200 ms before its three retries.
#[test]
fn default_backoff() {
    let policy = RetryPolicy::default();
    assert_eq!(policy.max_retries, 3);
    let delays: Vec<u128> = (0..3).map(|r| policy.delay(r).as_millis()).collect();
    assert_eq!(delays, vec![50, 100, 200]);
}

fn batch(records: Vec<EventRecord>) -> StreamEvent {
    let mut event = StreamEvent::default();
    event.records = records;
    event
}

/// `EVENT_BUS_NAME` is required: without it the settings name it; with it
/// the bus name is taken as is.
#[test]
fn settings_need_a_bus() {
    let none = Config::from_pairs(Vec::<(String, String)>::new());
    assert_eq!(
        Settings::from_config(&none),
        Err(ConfigError::Missing("EVENT_BUS_NAME"))
    );
    let set = Config::from_pairs([("EVENT_BUS_NAME", "storefront-dev")]);
    assert_eq!(
        Settings::from_config(&set),
        Ok(Settings {
            globals: Globals::default(),
            event_bus_name: "storefront-dev".into(),
        })
    );
}
