//! The publisher with the real AWS SDK against moto: a bus, a rule matching
//! `storefront.*` sources and an SQS queue as its target, the way
//! template.yaml wires a handler. Events go in as DynamoDB stream records
//! built from real sealed envelopes and real events-table items, and must
//! come out of the queue as EventBridge events whose detail is the same
//! envelope, checksum intact.
//!
//! Needs moto: `make test` starts it and sets `STOREFRONT_AWS_ENDPOINT`.

use std::collections::{BTreeMap, BTreeSet};

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use aws_sdk_sqs::types::QueueAttributeName;
use storefront_domain::events::{CartItemAdded, OrderConfirmed, ProductUpdated};
use storefront_domain::{Event, EventEnvelope, EventMeta, OrderId, Sku, StreamId};
use storefront_publisher::image::insert_record;
use storefront_publisher::{EventBridgeBus, MAX_REQUEST_BYTES, Publisher, RetryPolicy};
use storefront_runtime::aws;
use storefront_store::dynamodb::event_to_item;

/// The moto endpoint. Missing is a failure, not a skip: a suite that
/// silently skips its AWS path proves nothing.
fn endpoint() -> String {
    ["STOREFRONT_AWS_ENDPOINT", "STOREFRONT_DYNAMODB_ENDPOINT"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .expect(
            "neither STOREFRONT_AWS_ENDPOINT nor STOREFRONT_DYNAMODB_ENDPOINT is set: \
             run `make test`, which starts moto and sets them",
        )
}

/// A bus whose one rule sends every `storefront.*` event to a fresh queue.
struct Wiring {
    events: aws_sdk_eventbridge::Client,
    sqs: aws_sdk_sqs::Client,
    bus_name: String,
    queue_url: String,
}

async fn wire(test: &str) -> Wiring {
    let sdk = aws::local_config(&endpoint());
    let events = aws::eventbridge(&sdk);
    let sqs = aws::sqs(&sdk);
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let bus_name = format!("storefront-{test}-{suffix}");
    events
        .create_event_bus()
        .name(&bus_name)
        .send()
        .await
        .expect("create bus");
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("publisher-{test}-{suffix}"))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("queue arn");
    let rule_arn = events
        .put_rule()
        .name(format!("all-{suffix}"))
        .event_bus_name(&bus_name)
        .event_pattern(r#"{"source": [{"prefix": "storefront."}]}"#)
        .send()
        .await
        .expect("put rule")
        .rule_arn
        .expect("rule arn");
    // What AWS needs for a rule to deliver to a queue; moto does not check it.
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
        }],
    });
    sqs.set_queue_attributes()
        .queue_url(&queue_url)
        .attributes(QueueAttributeName::Policy, policy.to_string())
        .send()
        .await
        .expect("queue policy");
    events
        .put_targets()
        .rule(format!("all-{suffix}"))
        .event_bus_name(&bus_name)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(&queue_arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("put targets");
    Wiring {
        events,
        sqs,
        bus_name,
        queue_url,
    }
}

impl Wiring {
    fn publisher(&self) -> Publisher<EventBridgeBus> {
        Publisher::new(EventBridgeBus::new(self.events.clone(), &self.bus_name)).with_retry(
            RetryPolicy {
                max_retries: 3,
                base_delay: std::time::Duration::from_millis(10),
            },
        )
    }

    /// Drains the queue until `expected` messages have arrived or a receive
    /// comes back empty; returns the EventBridge events as JSON.
    async fn receive(&self, expected: usize) -> Vec<serde_json::Value> {
        let mut received = Vec::new();
        // Bounded: moto delivers synchronously inside PutEvents, so the
        // messages are there already; the bound only stops a broken run.
        for _ in 0..50 {
            if received.len() >= expected {
                break;
            }
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let body = m.body.expect("body");
                received.push(serde_json::from_str(&body).expect("message is JSON"));
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle.expect("receipt handle"))
                    .send()
                    .await
                    .expect("delete");
            }
        }
        received
    }
}

fn meta(id: String) -> EventMeta {
    EventMeta {
        event_id: id,
        occurred_at: "2026-11-27T10:00:00.000Z".into(),
        correlation_id: "req-moto".into(),
        causation_id: None,
        actor: "u-moto".into(),
    }
}

/// Event `n` of a mixed batch: cart, order and product events in turn, so
/// several sources go through one rule. `name_len` makes a cart event big.
fn envelope(run: &str, n: u64, name_len: usize) -> EventEnvelope {
    let id = format!("{run}-e{n:03}");
    match n % 3 {
        0 => EventEnvelope::seal(
            &StreamId::parse(&format!("order#o-{run}")).expect("stream"),
            n,
            &Event::OrderConfirmed(OrderConfirmed {
                order_id: OrderId::new(format!("o-{run}")).expect("order id"),
            }),
            &meta(id),
        ),
        1 => EventEnvelope::seal(
            &StreamId::parse(&format!("cart#u-{run}")).expect("stream"),
            n,
            &Event::CartItemAdded(CartItemAdded {
                sku: Sku::new("MUG-1").expect("sku"),
                name: "m".repeat(name_len),
                quantity: 2,
                unit_price_cents: 1250,
            }),
            &meta(id),
        ),
        _ => EventEnvelope::seal(
            &StreamId::parse(&format!("product#P-{run}")).expect("stream"),
            n,
            &Event::ProductUpdated(ProductUpdated {
                name: format!("Mug «{n}»"),
            }),
            &meta(id),
        ),
    }
}

/// A stream record as DynamoDB writes it for the envelope's events-table item.
fn record(e: &EventEnvelope) -> EventRecord {
    insert_record(format!("{:021}", 5000 + e.version), &event_to_item(e))
}

fn batch(records: Vec<EventRecord>) -> StreamEvent {
    let mut event = StreamEvent::default();
    event.records = records;
    event
}

/// Checks that every received EventBridge event carries the source,
/// detail-type and detail (with a valid checksum) of one sent envelope, and
/// returns the received envelopes by eventId.
fn check_received(received: &[serde_json::Value]) -> BTreeMap<String, EventEnvelope> {
    let mut by_id = BTreeMap::new();
    for event in received {
        let detail: EventEnvelope =
            serde_json::from_value(event["detail"].clone()).expect("detail is an envelope");
        detail.verify().expect("checksum verifies after the trip");
        assert_eq!(
            event["source"].as_str(),
            Some(format!("storefront.{}", detail.aggregate_type()).as_str())
        );
        assert_eq!(
            event["detail-type"].as_str(),
            Some(detail.event_type.as_str())
        );
        let previous = by_id.insert(detail.event_id.clone(), detail);
        assert!(previous.is_none(), "an event arrived twice");
    }
    by_id
}

/// An X-Ray trace header as Lambda gives an invocation.
const TRACE: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

/// 23 events (three PutEvents calls) from three aggregates all reach the
/// queue through the rule, each with the right source and detail-type, and
/// a detail that is the same envelope with its checksum intact. The entries
/// carry the invocation's `TraceHeader` (moto accepts it but does not keep
/// it; the unit tests check the request entry).
#[tokio::test]
async fn every_event_reaches_the_rule_target() {
    let wiring = wire("all").await;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let sent: Vec<EventEnvelope> = (1..=23).map(|n| envelope(&run, n, 8)).collect();
    let response = wiring
        .publisher()
        .handle_traced(batch(sent.iter().map(record).collect()), Some(TRACE))
        .await;
    assert!(
        response.batch_item_failures.is_empty(),
        "nothing should fail: {response:?}"
    );
    let received = check_received(&wiring.receive(sent.len()).await);
    assert_eq!(received.len(), sent.len());
    for e in &sent {
        assert_eq!(
            received.get(&e.event_id),
            Some(e),
            "{} arrived intact",
            e.event_id
        );
    }
}

/// A record whose envelope is over 256 KB, in the middle of a batch, is the
/// one batch item failure (by its sequence number); AWS is never asked to
/// take it, the records before it did land in the queue, and so did the
/// ones after it (they will be published again on the retry, which
/// consumers dedupe by eventId).
#[tokio::test]
async fn an_oversized_event_is_the_reported_failure() {
    let wiring = wire("big").await;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let mut sent: Vec<EventEnvelope> = (1..=6).map(|n| envelope(&run, n, 8)).collect();
    // Version 4 is a cart event (4 % 3 == 1): give it a 300 KB product name.
    sent[3] = envelope(&run, 4, 300 * 1024);
    let big = &sent[3];
    assert!(serde_json::to_string(big).expect("json").len() > MAX_REQUEST_BYTES);
    let records: Vec<EventRecord> = sent.iter().map(record).collect();
    let big_sequence = records[3].change.sequence_number.clone();

    let response = wiring.publisher().handle(batch(records)).await;
    let failed: Vec<Option<String>> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec![big_sequence]);

    let received = check_received(&wiring.receive(sent.len() - 1).await);
    let ids: BTreeSet<&str> = received.keys().map(String::as_str).collect();
    for before in &sent[..3] {
        assert!(
            ids.contains(before.event_id.as_str()),
            "{} landed",
            before.event_id
        );
    }
    assert!(
        !ids.contains(big.event_id.as_str()),
        "the big one never went out"
    );
    for after in &sent[4..] {
        assert!(
            ids.contains(after.event_id.as_str()),
            "{} landed",
            after.event_id
        );
    }
}
