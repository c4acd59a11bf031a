//! Routing: one EventBridge event through every rule of template.yaml, as the
//! local bus does (quamina over the rules' patterns, `$or` expanded). Run with
//! `cargo bench -p storefront-template`; figures in BENCHMARKS.md.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use storefront_template::Template;
use storefront_template::router::{PatternRouter, eventbridge_event};

/// A mix of the event types the journey produces, each as the publisher puts
/// it on the bus: source `storefront.{aggregate}`, detail-type the event type,
/// detail the envelope.
fn journey_events() -> Vec<Value> {
    let types = [
        (
            "cart",
            "cart.created",
            json!({"userId": "u-42", "currency": "EUR"}),
        ),
        (
            "cart",
            "cart.item.added",
            json!({"sku": "MUG-1", "name": "Mug", "quantity": 2, "unitPriceCents": 1250}),
        ),
        (
            "cart",
            "cart.checked.out",
            json!({"orderId": "o-1", "totalCents": 2500, "currency": "EUR"}),
        ),
        (
            "order",
            "order.created",
            json!({"userId": "u-42", "lines": [{"sku": "MUG-1", "quantity": 2, "unitPriceCents": 1250}], "totalCents": 2500, "currency": "EUR"}),
        ),
        (
            "product",
            "inventory.stock.reserved",
            json!({"orderId": "o-1", "quantity": 2, "available": 98}),
        ),
        ("order", "order.confirmed", json!({})),
        (
            "order",
            "order.paid",
            json!({"paymentId": "p-1", "amountCents": 2500}),
        ),
        (
            "order",
            "order.shipped",
            json!({"carrier": "DHL", "trackingNumber": "T1"}),
        ),
    ];
    types
        .iter()
        .enumerate()
        .map(|(i, (aggregate, event_type, data))| {
            let event_id = format!("0190f3c2-7a6b-7c3d-8e9f-{i:012x}");
            let detail = json!({
                "eventId": event_id,
                "eventType": event_type,
                "streamId": format!("{aggregate}#u-42"),
                "version": i + 1,
                "occurredAt": "2026-11-27T10:00:00.000Z",
                "schemaVersion": 1,
                "correlationId": "req-1",
                "actor": "u-42",
                "data": data,
                "checksum": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            });
            eventbridge_event(
                &event_id,
                &format!("storefront.{aggregate}"),
                event_type,
                "2026-11-27T10:00:00.000Z",
                &detail,
            )
        })
        .collect()
}

fn routing(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
    let template = Template::load(&path).unwrap();
    let router = PatternRouter::from_template(&template).unwrap();
    let events = journey_events();
    let bodies: Vec<String> = events.iter().map(Value::to_string).collect();
    for body in &bodies {
        assert!(
            !router.matches(body.as_bytes()).unwrap().is_empty(),
            "{body}"
        );
    }

    let mut g = c.benchmark_group("routing");
    g.throughput(Throughput::Elements(bodies.len() as u64));
    g.bench_function(
        format!("match {} rules (events/s)", router.rules().len()),
        |b| {
            b.iter(|| {
                let mut hits = 0;
                for body in black_box(&bodies) {
                    hits += router.matches(body.as_bytes()).unwrap().len();
                }
                hits
            })
        },
    );
    g.bench_function("match the projection, memo warm (the local bus)", |b| {
        b.iter(|| {
            let mut hits = 0;
            for event in black_box(&events) {
                hits += router.matches_event(event).unwrap().len();
            }
            hits
        })
    });
    // Every event a miss: a router whose memo was filled up (it stops growing
    // at 4,096 projections) with projections none of the journey's has, so
    // each event pays the look-up, then quamina on the projection.
    let missing = PatternRouter::from_template(&template).unwrap();
    for i in 0..5_000 {
        let other = eventbridge_event("x", &format!("other.{i}"), "t", "t", &json!({}));
        missing.matches_event(&other).unwrap();
    }
    g.bench_function("match the projection, memo missed", |b| {
        b.iter(|| {
            let mut hits = 0;
            for event in black_box(&events) {
                hits += missing.matches_event(event).unwrap().len();
            }
            hits
        })
    });
    g.bench_function("build event JSON + match (the local bus)", |b| {
        b.iter(|| {
            let mut hits = 0;
            for event in black_box(&events) {
                let body = event.to_string();
                hits += router.matches(body.as_bytes()).unwrap().len();
            }
            hits
        })
    });
    g.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
