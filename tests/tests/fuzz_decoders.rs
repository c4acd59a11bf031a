//! Property-based fuzzing of everything that decodes outside input: API
//! request bodies, the envelope decoder, DynamoDB item → event conversion,
//! SQS / EventBridge bodies and DynamoDB stream records. cargo-fuzz needs a
//! nightly toolchain, which this project's machines do not have, so these
//! run on stable with proptest: a bounded run in `make test` (PROPTEST_CASES,
//! default 256 per property), longer runs with e.g. `PROPTEST_CASES=100000
//! cargo test -p storefront-tests --test fuzz_decoders --release`.
//! The property is always the same: no panic, a typed error or a valid value,
//! and for the API no 5xx and nothing appended when a request is refused.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::body::Body;
use axum::http::Request;
use proptest::prelude::*;
use serde_json::{Value, json};
use storefront_domain::events::CartItemAdded;
use storefront_domain::{Event, EventEnvelope, EventMeta, Sku, StreamId};
use storefront_store::EventLog;
use storefront_store::dynamodb::{event_to_item, item_to_event};
use tower::ServiceExt;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("MUG"),
            Just("EUR"),
            Just("a b"),
            Just(""),
            Just("🦀"),
            Just("x#y")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-zA-Z]{1,12}",
                    Just("sku".to_owned()),
                    Just("quantity".to_owned()),
                    Just("priceCents".to_owned()),
                    Just("name".to_owned()),
                    Just("currency".to_owned()),
                    Just("stock".to_owned()),
                    Just("delta".to_owned()),
                    Just("reason".to_owned()),
                    Just("amountCents".to_owned()),
                    Just("email".to_owned()),
                    Just("carrier".to_owned()),
                    Just("trackingNumber".to_owned()),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn sample_envelope() -> EventEnvelope {
    EventEnvelope::seal(
        &StreamId::parse("cart#u1").expect("stream"),
        1,
        &Event::CartItemAdded(CartItemAdded {
            sku: Sku::new("MUG").expect("sku"),
            name: "Mug".into(),
            quantity: 1,
            unit_price_cents: 100,
        }),
        &EventMeta {
            event_id: "e1".into(),
            occurred_at: "2026-11-27T10:00:00.000Z".into(),
            correlation_id: "c".into(),
            causation_id: None,
            actor: "u1".into(),
        },
    )
}

proptest! {
    /// Arbitrary bytes and JSON never panic the envelope decoder; what decodes also verifies.
    #[test]
    fn envelope_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512), value in json_value()) {
        for input in [bytes, value.to_string().into_bytes()] {
            if let Ok(e) = serde_json::from_slice::<EventEnvelope>(&input)
                && e.decode().is_ok()
            {
                prop_assert!(e.verify().is_ok());
            }
        }
    }

    /// Any (type, version, data) either decodes to an event of that type or gives a typed error.
    #[test]
    fn event_from_parts(ty in prop_oneof!["[a-z.]{0,30}", Just("cart.item.added".to_owned()), Just("order.created".to_owned())],
                        version in any::<u32>(), data in json_value()) {
        if let Ok(event) = Event::from_parts(&ty, version, &data) {
            prop_assert_eq!(event.event_type().name(), ty.as_str());
        }
    }

    /// A real item with any attribute replaced or removed converts to an error or a verified envelope, never a panic.
    #[test]
    fn item_to_event_mutations(key in prop_oneof![Just("pk"), Just("version"), Just("data"), Just("checksum"), Just("eventType"), Just("schemaVersion"), Just("occurredAt"), Just("other")],
                               replacement in prop::option::of(prop_oneof![
                                   "\\PC{0,30}".prop_map(AttributeValue::S),
                                   "-?[0-9]{0,25}(\\.[0-9]{0,3})?".prop_map(AttributeValue::N),
                                   any::<bool>().prop_map(AttributeValue::Bool),
                               ])) {
        let mut item: HashMap<String, AttributeValue> = event_to_item(&sample_envelope());
        match replacement {
            Some(v) => { item.insert(key.to_owned(), v); }
            None => { item.remove(key); }
        }
        if let Ok(e) = item_to_event(&item) {
            prop_assert!(e.verify().is_ok());
        }
    }

    /// SQS bodies (EventBridge events or bare envelopes, mangled or not) decode to a verified envelope or a typed error.
    #[test]
    fn sqs_bodies(noise in "\\PC{0,200}", value in json_value(), cut in 0usize..400) {
        let good = json!({"detail-type": "cart.item.added", "source": "storefront.cart", "detail": sample_envelope()}).to_string();
        let truncated: String = good.chars().take(cut).collect();
        for body in [noise, value.to_string(), truncated, json!({"detail": value}).to_string()] {
            if let Ok(e) = storefront_runtime::sqs::envelope_from_body(&body) {
                prop_assert!(e.verify().is_ok());
            }
        }
    }
}

/// A bus that takes everything, for stream-record fuzzing.
struct Sink;

#[async_trait::async_trait]
impl storefront_publisher::Bus for Sink {
    async fn put_events(
        &self,
        entries: &[storefront_publisher::Entry],
    ) -> Result<Vec<storefront_publisher::EntryResult>, storefront_publisher::BusError> {
        Ok(entries
            .iter()
            .map(|_| storefront_publisher::EntryResult::Published { event_id: None })
            .collect())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Stream records with mangled images never panic the publisher: each is published, ignored or reported, and the report accounts for every record.
    #[test]
    fn stream_records(mutations in prop::collection::vec((0usize..12, prop::option::of("\\PC{0,20}")), 0..6)) {
        let mut item = event_to_item(&sample_envelope());
        let keys: Vec<String> = item.keys().cloned().collect();
        for (i, value) in mutations {
            let key = keys[i % keys.len()].clone();
            match value {
                Some(v) => { item.insert(key, AttributeValue::S(v)); }
                None => { item.remove(&key); }
            }
        }
        let records = vec![storefront_publisher::image::insert_record("1", &item)];
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let report = runtime.block_on(storefront_publisher::Publisher::new(Sink).publish(&records));
        prop_assert_eq!(report.published + report.ignored + report.failed.len(), 1);
    }
}

/// Random JSON bodies (and raw bytes) to every body-taking route, as an admin: never a 5xx, errors are problems, and a refused request appends nothing.
#[test]
fn api_bodies() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let store =
        storefront_store::sqlite::SqliteStore::open(dir.path().join("fuzz.db")).expect("sqlite");
    let app = storefront_api::app(storefront_api::AppState::sqlite(
        store.clone(),
        storefront_api::Settings::default(),
    ));
    let call = |method: &str, path: &str, body: Vec<u8>| {
        let mut r = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request");
        r.extensions_mut().insert(storefront_api::Claims {
            sub: "fuzzer".into(),
            groups: vec!["admin".into()],
            email: Some("fuzzer@example.com".into()),
        });
        let app = app.clone();
        let store = store.clone();
        runtime.block_on(async move {
            let before = store.read_after(0, 1_000_000).await.expect("log").len();
            let response = app.oneshot(r).await.expect("infallible");
            let status = response.status().as_u16();
            let ct = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let after = store.read_after(0, 1_000_000).await.expect("log").len();
            (status, ct, before, after)
        })
    };
    // Something to act on.
    let (s, ..) = call(
        "POST",
        "/products",
        json!({"sku": "MUG", "name": "Mug", "priceCents": 100, "currency": "EUR", "stock": 5})
            .to_string()
            .into_bytes(),
    );
    assert_eq!(s, 201);
    let routes = [
        ("POST", "/users"),
        ("POST", "/products"),
        ("PATCH", "/products/MUG"),
        ("POST", "/products/MUG/stock"),
        ("POST", "/cart/items"),
        ("PATCH", "/cart/items/MUG"),
        ("POST", "/orders/o1/payment"),
        ("POST", "/orders/o1/cancel"),
        ("POST", "/orders/o1/shipment"),
        ("POST", "/cart/checkout"),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    });
    let strategy = (
        json_value(),
        prop::collection::vec(any::<u8>(), 0..64),
        0usize..routes.len(),
    );
    runner
        .run(&strategy, |(value, bytes, r)| {
            let (method, path) = routes[r];
            for body in [value.to_string().into_bytes(), bytes.clone()] {
                let (status, ct, before, after) = call(method, path, body);
                prop_assert!(status < 500, "{method} {path} answered {status}");
                if status >= 400 {
                    prop_assert_eq!(ct.as_str(), "application/problem+json");
                    prop_assert_eq!(
                        before,
                        after,
                        "{} {} refused with {} but appended",
                        method,
                        path,
                        status
                    );
                }
            }
            Ok(())
        })
        .expect("no 5xx, problems for errors, nothing appended on refusal");
}
