//! Property-based fuzzing of everything that decodes outside input: API
//! request bodies, the envelope decoder, DynamoDB item → event conversion,
//! SQS / EventBridge bodies and DynamoDB stream records. cargo-fuzz needs a
//! nightly toolchain, which this project's machines do not have, so these
//! run on stable with proptest: a bounded run in `make test` (PROPTEST_CASES,
//! default 256 per property), longer runs with e.g. `PROPTEST_CASES=100000
//! cargo test -p storefront-tests --test fuzz_decoders --release`.
//!
//! Not panicking is the least of it: each property says what a correct
//! decoder makes of its input, so one that let a tampered event through,
//! lost a field or took one type for another fails it.
//! - What was sealed comes back as itself: from JSON, from a DynamoDB item,
//!   from an SQS body and off a stream record.
//! - A change to what the checksum covers (stream, version, type, data, the
//!   checksum itself), a replaced field or a flipped byte, is refused with
//!   `ChecksumMismatch`; a change to what it does not cover (ids, time,
//!   actor) decodes as the changed envelope.
//! - Malformed input is refused with the decoder's typed error for it
//!   (`Corrupt`, `Malformed`, `UnknownType`, `BadPayload`,
//!   `UnsupportedSchemaVersion`) and no other.
//! - The API answers no 5xx, and appends nothing when it refuses a request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use axum::body::Body;
use axum::http::Request;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};
use storefront_domain::envelope::checksum;
use storefront_domain::events::*;
use storefront_domain::{
    Currency, EnvelopeError, EventEnvelope, EventMeta, OrderId, Sku, StreamId, UserId,
};
use storefront_runtime::sqs::{BodyError, envelope_from_body};
use storefront_store::dynamodb::{event_to_item, item_to_event};
use storefront_store::{EventLog, StoreError};
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

// ---- arbitrary events and envelopes ------------------------------------------

fn id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,20}"
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn sku() -> impl Strategy<Value = Sku> {
    id().prop_map(|s| Sku::new(s).expect("an id of the id alphabet"))
}

fn order_id() -> impl Strategy<Value = OrderId> {
    id().prop_map(|s| OrderId::new(s).expect("an id of the id alphabet"))
}

fn user_id() -> impl Strategy<Value = UserId> {
    id().prop_map(|s| UserId::new(s).expect("an id of the id alphabet"))
}

fn currency() -> impl Strategy<Value = Currency> {
    "[A-Z]{3}".prop_map(|s| Currency::new(s).expect("three capitals"))
}

/// Any event of type `ty`, with any field values its payload allows. The
/// match is exhaustive: a new type in the catalogue does not compile here
/// until it has a strategy.
fn event_of(ty: EventType) -> BoxedStrategy<Event> {
    let line = (sku(), text(), any::<u32>(), any::<i64>()).prop_map(
        |(sku, name, quantity, unit_price_cents)| OrderLine {
            sku,
            name,
            quantity,
            unit_price_cents,
        },
    );
    let shortage =
        (sku(), any::<u32>(), any::<u32>()).prop_map(|(sku, requested, available)| Shortage {
            sku,
            requested,
            available,
        });
    match ty {
        EventType::CartCreated => (user_id(), currency())
            .prop_map(|(user_id, currency)| Event::CartCreated(CartCreated { user_id, currency }))
            .boxed(),
        EventType::CartItemAdded => (sku(), text(), any::<u32>(), any::<i64>())
            .prop_map(|(sku, name, quantity, unit_price_cents)| {
                Event::CartItemAdded(CartItemAdded {
                    sku,
                    name,
                    quantity,
                    unit_price_cents,
                })
            })
            .boxed(),
        EventType::CartItemRemoved => sku()
            .prop_map(|sku| Event::CartItemRemoved(CartItemRemoved { sku }))
            .boxed(),
        EventType::CartItemQuantityChanged => (sku(), any::<u32>())
            .prop_map(|(sku, quantity)| {
                Event::CartItemQuantityChanged(CartItemQuantityChanged { sku, quantity })
            })
            .boxed(),
        EventType::CartCleared => Just(Event::CartCleared(CartCleared {})).boxed(),
        EventType::CartCheckedOut => (order_id(), any::<i64>(), currency())
            .prop_map(|(order_id, total_cents, currency)| {
                Event::CartCheckedOut(CartCheckedOut {
                    order_id,
                    total_cents,
                    currency,
                })
            })
            .boxed(),
        EventType::CartAbandoned => (text(), any::<u32>())
            .prop_map(|(last_activity_at, units)| {
                Event::CartAbandoned(CartAbandoned {
                    last_activity_at,
                    units,
                })
            })
            .boxed(),
        EventType::OrderCreated => (
            order_id(),
            user_id(),
            prop::collection::vec(line, 0..4),
            any::<i64>(),
            currency(),
            text(),
        )
            .prop_map(
                |(order_id, user_id, lines, total_cents, currency, placed_at)| {
                    Event::OrderCreated(OrderCreated {
                        order_id,
                        user_id,
                        lines,
                        total_cents,
                        currency,
                        placed_at,
                    })
                },
            )
            .boxed(),
        EventType::OrderConfirmed => order_id()
            .prop_map(|order_id| Event::OrderConfirmed(OrderConfirmed { order_id }))
            .boxed(),
        EventType::OrderRejected => (order_id(), text())
            .prop_map(|(order_id, reason)| Event::OrderRejected(OrderRejected { order_id, reason }))
            .boxed(),
        EventType::OrderPaid => (order_id(), any::<i64>(), currency())
            .prop_map(|(order_id, amount_cents, currency)| {
                Event::OrderPaid(OrderPaid {
                    order_id,
                    amount_cents,
                    currency,
                })
            })
            .boxed(),
        EventType::OrderPaymentFailed => (order_id(), any::<i64>(), text())
            .prop_map(|(order_id, amount_cents, reason)| {
                Event::OrderPaymentFailed(OrderPaymentFailed {
                    order_id,
                    amount_cents,
                    reason,
                })
            })
            .boxed(),
        EventType::OrderFulfillmentRequested => order_id()
            .prop_map(|order_id| {
                Event::OrderFulfillmentRequested(OrderFulfillmentRequested { order_id })
            })
            .boxed(),
        EventType::OrderShipped => (order_id(), text(), text())
            .prop_map(|(order_id, carrier, tracking_number)| {
                Event::OrderShipped(OrderShipped {
                    order_id,
                    carrier,
                    tracking_number,
                })
            })
            .boxed(),
        EventType::OrderDelivered => order_id()
            .prop_map(|order_id| Event::OrderDelivered(OrderDelivered { order_id }))
            .boxed(),
        EventType::OrderCancelled => (order_id(), text(), text(), any::<bool>())
            .prop_map(|(order_id, reason, cancelled_by, was_paid)| {
                Event::OrderCancelled(OrderCancelled {
                    order_id,
                    reason,
                    cancelled_by,
                    was_paid,
                })
            })
            .boxed(),
        EventType::OrderRefunded => (order_id(), any::<i64>())
            .prop_map(|(order_id, amount_cents)| {
                Event::OrderRefunded(OrderRefunded {
                    order_id,
                    amount_cents,
                })
            })
            .boxed(),
        EventType::ProductCreated => (sku(), text(), any::<i64>(), currency(), any::<u32>())
            .prop_map(|(sku, name, price_cents, currency, initial_stock)| {
                Event::ProductCreated(ProductCreated {
                    sku,
                    name,
                    price_cents,
                    currency,
                    initial_stock,
                })
            })
            .boxed(),
        EventType::ProductUpdated => text()
            .prop_map(|name| Event::ProductUpdated(ProductUpdated { name }))
            .boxed(),
        EventType::ProductPriceChanged => (any::<i64>(), any::<i64>())
            .prop_map(|(price_cents, previous_price_cents)| {
                Event::ProductPriceChanged(ProductPriceChanged {
                    price_cents,
                    previous_price_cents,
                })
            })
            .boxed(),
        EventType::ProductStockAdjusted => (any::<i64>(), text(), any::<u32>())
            .prop_map(|(delta, reason, on_hand)| {
                Event::ProductStockAdjusted(ProductStockAdjusted {
                    delta,
                    reason,
                    on_hand,
                })
            })
            .boxed(),
        EventType::ProductDiscontinued => {
            Just(Event::ProductDiscontinued(ProductDiscontinued {})).boxed()
        }
        EventType::InventoryStockReserved => (order_id(), sku(), any::<u32>())
            .prop_map(|(order_id, sku, quantity)| {
                Event::InventoryStockReserved(InventoryStockReserved {
                    order_id,
                    sku,
                    quantity,
                })
            })
            .boxed(),
        EventType::InventoryStockReleased => (order_id(), sku(), any::<u32>(), text())
            .prop_map(|(order_id, sku, quantity, reason)| {
                Event::InventoryStockReleased(InventoryStockReleased {
                    order_id,
                    sku,
                    quantity,
                    reason,
                })
            })
            .boxed(),
        EventType::InventoryReservationFailed => {
            (order_id(), prop::collection::vec(shortage, 0..4))
                .prop_map(|(order_id, shortages)| {
                    Event::InventoryReservationFailed(InventoryReservationFailed {
                        order_id,
                        shortages,
                    })
                })
                .boxed()
        }
        EventType::InventoryStockLow => (sku(), any::<u32>(), any::<u32>())
            .prop_map(|(sku, available, threshold)| {
                Event::InventoryStockLow(InventoryStockLow {
                    sku,
                    available,
                    threshold,
                })
            })
            .boxed(),
        EventType::UserRegistered => (user_id(), text(), text())
            .prop_map(|(user_id, email, name)| {
                Event::UserRegistered(UserRegistered {
                    user_id,
                    email,
                    name,
                })
            })
            .boxed(),
        EventType::UserProfileUpdated => (prop::option::of(text()), prop::option::of(text()))
            .prop_map(|(name, email)| Event::UserProfileUpdated(UserProfileUpdated { name, email }))
            .boxed(),
        EventType::UserDeactivated => text()
            .prop_map(|reason| Event::UserDeactivated(UserDeactivated { reason }))
            .boxed(),
        EventType::NotificationSent => (text(), text(), text(), text())
            .prop_map(|(source_event_id, channel, template, recipient)| {
                Event::NotificationSent(NotificationSent {
                    source_event_id,
                    channel,
                    template,
                    recipient,
                })
            })
            .boxed(),
        EventType::NotificationFailed => (text(), text(), text(), text())
            .prop_map(|(source_event_id, channel, template, reason)| {
                Event::NotificationFailed(NotificationFailed {
                    source_event_id,
                    channel,
                    template,
                    reason,
                })
            })
            .boxed(),
    }
}

/// Any event of any type in the catalogue.
fn any_event() -> impl Strategy<Value = Event> {
    prop::sample::select(EventType::ALL).prop_flat_map(event_of)
}

/// Any event, sealed at any version of a stream of its family with any metadata.
fn any_envelope() -> impl Strategy<Value = (Event, EventEnvelope)> {
    let meta = (id(), text(), text(), prop::option::of(id()), text()).prop_map(
        |(event_id, occurred_at, correlation_id, causation_id, actor)| EventMeta {
            event_id,
            occurred_at,
            correlation_id,
            causation_id,
            actor,
        },
    );
    (any_event(), id(), 1..=u64::MAX, meta).prop_map(|(event, aggregate_id, version, meta)| {
        let stream =
            StreamId::new(event.event_type().family(), &aggregate_id).expect("a valid stream");
        let sealed = EventEnvelope::seal(&stream, version, &event, &meta);
        (event, sealed)
    })
}

/// What the checksum covers: stream, version, type and data, and the checksum itself.
fn covered(e: &EventEnvelope) -> (&str, u64, &str, &Value, &str) {
    (&e.stream_id, e.version, &e.event_type, &e.data, &e.checksum)
}

/// What `decode` must answer for `seen`, read back from a changed copy of
/// `sealed` (which sealed `event`): `ChecksumMismatch` naming `seen` if the
/// change touched what the checksum covers; otherwise the event, unless the
/// schema version is one this build does not read.
fn check_decode(
    sealed: &EventEnvelope,
    event: &Event,
    seen: &EventEnvelope,
) -> Result<(), TestCaseError> {
    let decoded = seen.decode();
    if covered(seen) != covered(sealed) {
        prop_assert!(
            matches!(
                &decoded,
                Err(EnvelopeError::ChecksumMismatch { stream_id, version, stored, computed })
                    if *stream_id == seen.stream_id
                        && *version == seen.version
                        && *stored == seen.checksum
                        && computed != stored
            ),
            "a change the checksum covers was not refused: {seen:?} gave {decoded:?}"
        );
    } else if seen.schema_version == 0 || seen.schema_version > SCHEMA_VERSION {
        prop_assert_eq!(
            decoded,
            Err(EnvelopeError::Decode(
                DecodeError::UnsupportedSchemaVersion {
                    event_type: event.event_type().name(),
                    found: seen.schema_version,
                }
            ))
        );
    } else {
        prop_assert_eq!(decoded, Ok(event.clone()));
    }
    Ok(())
}

/// The envelope's fields as JSON names, and one it does not have.
const ENVELOPE_FIELDS: &[&str] = &[
    "eventId",
    "eventType",
    "streamId",
    "version",
    "occurredAt",
    "schemaVersion",
    "correlationId",
    "causationId",
    "actor",
    "data",
    "checksum",
    "unexpected",
];

/// Whether `value` is a valid JSON value for the envelope field `field`.
fn fits(field: &str, value: &Value) -> bool {
    match field {
        "version" => value.as_u64().is_some(),
        "schemaVersion" => value.as_u64().is_some_and(|v| u32::try_from(v).is_ok()),
        "data" => true,
        "causationId" => value.is_string() || value.is_null(),
        "unexpected" => false,
        _ => value.is_string(),
    }
}

/// Whether every payload of `from` is also a payload of `to`: the types whose
/// payloads have the same fields, and `user.profile.updated`, whose fields
/// are all optional, so `{}` and `{"name"}` are among its payloads. Only the
/// envelope's type (under the checksum) tells these apart.
fn reads_as(from: EventType, to: EventType) -> bool {
    use EventType::*;
    let order_id_only = [OrderConfirmed, OrderFulfillmentRequested, OrderDelivered];
    let empty = [CartCleared, ProductDiscontinued];
    (order_id_only.contains(&from) && order_id_only.contains(&to))
        || (empty.contains(&from) && (empty.contains(&to) || to == UserProfileUpdated))
        || (from == ProductUpdated && to == UserProfileUpdated)
}

/// What `item_to_event` must make of an item.
#[derive(Debug)]
enum ItemOutcome {
    /// This envelope.
    Reads(Box<EventEnvelope>),
    /// `StoreError::Corrupt`: an attribute is missing or malformed.
    Corrupt,
    /// `StoreError::Integrity(ChecksumMismatch)`: the content was changed.
    Tampered,
}

/// The outcome for the item of `sealed` with attribute `key` set to
/// `replacement`, or removed.
fn expected_item(
    sealed: &EventEnvelope,
    key: &str,
    replacement: Option<&AttributeValue>,
) -> ItemOutcome {
    use AttributeValue::{N, S};
    let mut changed = sealed.clone();
    let Some(value) = replacement else {
        return if key == "other" {
            ItemOutcome::Reads(Box::new(changed))
        } else {
            ItemOutcome::Corrupt
        };
    };
    match (key, value) {
        ("pk", S(s)) => changed.stream_id = s.clone(),
        ("eventType", S(s)) => changed.event_type = s.clone(),
        ("checksum", S(s)) => changed.checksum = s.clone(),
        ("occurredAt", S(s)) => changed.occurred_at = s.clone(),
        ("eventId", S(s)) => changed.event_id = s.clone(),
        ("actor", S(s)) => changed.actor = s.clone(),
        ("correlationId", S(s)) => changed.correlation_id = s.clone(),
        // DynamoDB numbers are text: any spelling of the same number is that number.
        ("version", N(n)) => match n.parse() {
            Ok(v) => changed.version = v,
            Err(_) => return ItemOutcome::Corrupt,
        },
        ("schemaVersion", N(n)) => match n.parse() {
            Ok(v) => changed.schema_version = v,
            Err(_) => return ItemOutcome::Corrupt,
        },
        ("data", S(s)) => match serde_json::from_str(s) {
            Ok(d) => changed.data = d,
            Err(_) => return ItemOutcome::Corrupt,
        },
        // An attribute the decoder does not read.
        ("other", _) => {}
        // A read attribute of the wrong type.
        _ => return ItemOutcome::Corrupt,
    }
    if covered(&changed) == covered(sealed) {
        ItemOutcome::Reads(Box::new(changed))
    } else {
        ItemOutcome::Tampered
    }
}

proptest! {
    /// Whatever is sealed serializes to JSON that parses back to the same
    /// envelope and re-serializes to the same bytes, and decodes to the event it sealed.
    #[test]
    fn envelope_round_trip((event, sealed) in any_envelope()) {
        let bytes = serde_json::to_vec(&sealed).expect("serializes");
        let back: EventEnvelope = serde_json::from_slice(&bytes).expect("parses");
        prop_assert_eq!(&back, &sealed);
        prop_assert_eq!(serde_json::to_vec(&back).expect("serializes"), bytes);
        prop_assert_eq!(back.decode(), Ok(event));
    }

    /// One field of a sealed envelope's JSON replaced by arbitrary JSON, or
    /// removed, or an unknown one added: the parser refuses exactly what is
    /// no envelope (a missing required field, a value of the wrong type, an
    /// unknown field), and what parses decodes as `check_decode` says.
    #[test]
    fn envelope_field_replaced((event, sealed) in any_envelope(),
                               field in prop::sample::select(ENVELOPE_FIELDS),
                               replacement in prop::option::of(json_value())) {
        let mut value = serde_json::to_value(&sealed).expect("serializes");
        let object = value.as_object_mut().expect("an object");
        let valid = match &replacement {
            Some(v) => {
                object.insert(field.to_owned(), v.clone());
                fits(field, v)
            }
            None => {
                object.remove(field);
                matches!(field, "causationId" | "unexpected")
            }
        };
        match serde_json::from_value::<EventEnvelope>(value) {
            Ok(seen) => {
                prop_assert!(valid, "{field} = {replacement:?} was accepted");
                check_decode(&sealed, &event, &seen)?;
            }
            Err(e) => prop_assert!(!valid, "{field} = {replacement:?} was refused: {e}"),
        }
    }

    /// A byte flipped anywhere in a sealed envelope's JSON: refused as JSON,
    /// or decoded as `check_decode` says. Arbitrary bytes and arbitrary JSON
    /// are never an envelope.
    #[test]
    fn envelope_byte_flip((event, sealed) in any_envelope(), at in any::<Index>(), mask in 1u8..=255,
                          bytes in prop::collection::vec(any::<u8>(), 0..512), value in json_value()) {
        let mut flipped = serde_json::to_vec(&sealed).expect("serializes");
        let i = at.index(flipped.len());
        flipped[i] ^= mask;
        if let Ok(seen) = serde_json::from_slice::<EventEnvelope>(&flipped) {
            check_decode(&sealed, &event, &seen)?;
        }
        prop_assert!(serde_json::from_slice::<EventEnvelope>(&bytes).is_err());
        prop_assert!(serde_json::from_value::<EventEnvelope>(value).is_err());
    }

    /// Every event decodes from its own type name, the current schema version and its payload to itself.
    #[test]
    fn event_round_trip(event in any_event()) {
        let name = event.event_type().name();
        prop_assert_eq!(Event::from_parts(name, SCHEMA_VERSION, &event.data()), Ok(event));
    }

    /// Any (type, version, data): an unknown type is `UnknownType`, an
    /// unsupported version `UnsupportedSchemaVersion`, a payload that does
    /// not fit `BadPayload`, each naming what it refused; what decodes is of
    /// the named type and decodes again, to itself, from its own payload.
    #[test]
    fn event_from_parts(ty in prop_oneof![
                            "[a-z.]{0,30}",
                            prop::sample::select(EventType::ALL).prop_map(|t| t.name().to_owned()),
                        ],
                        version in prop_oneof![Just(SCHEMA_VERSION), Just(0), any::<u32>()],
                        data in json_value()) {
        let decoded = Event::from_parts(&ty, version, &data);
        match EventType::ALL.iter().find(|t| t.name() == ty) {
            None => prop_assert_eq!(decoded, Err(DecodeError::UnknownType(ty.clone()))),
            Some(t) if version == 0 || version > SCHEMA_VERSION => prop_assert_eq!(
                decoded,
                Err(DecodeError::UnsupportedSchemaVersion { event_type: t.name(), found: version })
            ),
            Some(t) => match decoded {
                Ok(event) => {
                    prop_assert_eq!(event.event_type(), *t);
                    prop_assert_eq!(Event::from_parts(&ty, version, &event.data()), Ok(event));
                }
                Err(e) => prop_assert!(
                    matches!(&e, DecodeError::BadPayload { event_type, .. } if *event_type == t.name()),
                    "{ty}: {e:?}"
                ),
            },
        }
    }

    /// Another type's payload under a type's name is refused with
    /// `BadPayload` naming that type, unless every payload of the one is a
    /// payload of the other (`reads_as`), when it decodes as the named type.
    #[test]
    fn payload_of_another_type(event in any_event(), other in prop::sample::select(EventType::ALL)) {
        let own = event.event_type();
        prop_assume!(other != own);
        let decoded = Event::from_parts(other.name(), SCHEMA_VERSION, &event.data());
        if reads_as(own, other) {
            prop_assert_eq!(decoded.map(|e| e.event_type()), Ok(other));
        } else {
            prop_assert!(
                matches!(&decoded, Err(DecodeError::BadPayload { event_type, .. }) if *event_type == other.name()),
                "a {} payload read as {}: {decoded:?}", own.name(), other.name()
            );
        }
    }

    /// The item written for an envelope reads back as that envelope.
    #[test]
    fn item_round_trip((_event, sealed) in any_envelope()) {
        match item_to_event(&event_to_item(&sealed)) {
            Ok(back) => prop_assert_eq!(back, sealed),
            Err(e) => prop_assert!(false, "{e}"),
        }
    }

    /// A real item with one attribute replaced (by any string, number,
    /// boolean or JSON text) or removed: a missing or malformed attribute is
    /// `Corrupt`, a change to what the checksum covers is
    /// `Integrity(ChecksumMismatch)`, and any other change reads back as the
    /// envelope with that change.
    #[test]
    fn item_to_event_mutations((_event, sealed) in any_envelope(),
                               key in prop_oneof![Just("pk"), Just("version"), Just("data"), Just("checksum"), Just("eventType"),
                                                  Just("schemaVersion"), Just("occurredAt"), Just("eventId"), Just("actor"),
                                                  Just("correlationId"), Just("other")],
                               replacement in prop::option::of(prop_oneof![
                                   "\\PC{0,30}".prop_map(AttributeValue::S),
                                   json_value().prop_map(|v| AttributeValue::S(v.to_string())),
                                   "-?[0-9]{0,25}(\\.[0-9]{0,3})?".prop_map(AttributeValue::N),
                                   any::<bool>().prop_map(AttributeValue::Bool),
                               ])) {
        let mut item: HashMap<String, AttributeValue> = event_to_item(&sealed);
        match &replacement {
            Some(v) => { item.insert(key.to_owned(), v.clone()); }
            None => { item.remove(key); }
        }
        let read = item_to_event(&item);
        match expected_item(&sealed, key, replacement.as_ref()) {
            ItemOutcome::Reads(expected) => match read {
                Ok(back) => prop_assert_eq!(back, *expected),
                Err(e) => prop_assert!(false, "{key} = {replacement:?}: {e}"),
            },
            ItemOutcome::Corrupt => prop_assert!(
                matches!(read, Err(StoreError::Corrupt { table: "events", .. })),
                "{key} = {replacement:?}: {read:?}"
            ),
            ItemOutcome::Tampered => prop_assert!(
                matches!(read, Err(StoreError::Integrity(EnvelopeError::ChecksumMismatch { .. }))),
                "{key} = {replacement:?}: {read:?}"
            ),
        }
    }

    /// SQS bodies: an EventBridge event carrying a sealed envelope, or the
    /// bare envelope, decodes to that envelope; a truncated one, noise and
    /// JSON that holds no envelope are `Malformed`; a tampered envelope is
    /// `ChecksumMismatch`, and a correctly sealed one whose payload is not its
    /// type's is `Decode(BadPayload)`.
    #[test]
    fn sqs_bodies((_event, sealed) in any_envelope(), noise in "\\PC{0,200}", value in json_value(),
                  cut in any::<Index>(), tamper in 0usize..5) {
        let bridge_event = |envelope: &EventEnvelope| json!({
            "detail-type": envelope.event_type,
            "source": format!("storefront.{}", envelope.aggregate_type()),
            "detail": envelope,
        }).to_string();
        let good = bridge_event(&sealed);
        for body in [good.clone(), serde_json::to_string(&sealed).expect("json")] {
            match envelope_from_body(&body) {
                Ok(back) => prop_assert_eq!(&back, &sealed),
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
        let truncated: String = good.chars().take(cut.index(good.chars().count())).collect();
        for body in [noise, value.to_string(), truncated, json!({"detail": value}).to_string()] {
            let read = envelope_from_body(&body);
            prop_assert!(matches!(read, Err(BodyError::Malformed(_))), "{body}: {read:?}");
        }

        let mut tampered = sealed.clone();
        match tamper {
            0 => tampered.stream_id.push('x'),
            1 => tampered.version = tampered.version.wrapping_add(1),
            2 => tampered.event_type = if sealed.event_type == "cart.cleared" { "product.discontinued" } else { "cart.cleared" }.into(),
            3 => tampered.data["tampered"] = json!(true),
            _ => {
                let last = if tampered.checksum.ends_with('0') { '1' } else { '0' };
                tampered.checksum.pop();
                tampered.checksum.push(last);
            }
        }
        let read = envelope_from_body(&bridge_event(&tampered));
        prop_assert!(
            matches!(read, Err(BodyError::Envelope(EnvelopeError::ChecksumMismatch { .. }))),
            "tamper {tamper}: {read:?}"
        );

        let mut resealed = sealed.clone();
        resealed.data["unexpected"] = json!(1);
        resealed.checksum = checksum(&resealed.stream_id, resealed.version, &resealed.event_type, &resealed.data);
        let read = envelope_from_body(&bridge_event(&resealed));
        prop_assert!(
            matches!(
                &read,
                Err(BodyError::Envelope(EnvelopeError::Decode(DecodeError::BadPayload { event_type, .. })))
                    if *event_type == sealed.event_type
            ),
            "{read:?}"
        );
    }
}

/// A bus that takes everything and keeps what it was given.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<storefront_publisher::Entry>>>);

#[async_trait::async_trait]
impl storefront_publisher::Bus for Sink {
    async fn put_events(
        &self,
        entries: &[storefront_publisher::Entry],
    ) -> Result<Vec<storefront_publisher::EntryResult>, storefront_publisher::BusError> {
        self.0.lock().expect("sink").extend_from_slice(entries);
        Ok(entries
            .iter()
            .map(|_| storefront_publisher::EntryResult::Published { event_id: None })
            .collect())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Stream records with mangled images: a record without an event type is
    /// ignored; one whose image reads as a verified event (`item_to_event`)
    /// is published as exactly that envelope; any other is reported failed
    /// with a `Decode` error, and nothing of it reaches the bus.
    #[test]
    fn stream_records((_event, sealed) in any_envelope(),
                      mutations in prop::collection::vec((0usize..12, prop::option::of("\\PC{0,20}")), 0..6)) {
        let mut item = event_to_item(&sealed);
        let keys: Vec<String> = item.keys().cloned().collect();
        for (i, value) in mutations {
            let key = keys[i % keys.len()].clone();
            match value {
                Some(v) => { item.insert(key, AttributeValue::S(v)); }
                None => { item.remove(&key); }
            }
        }
        let records = vec![storefront_publisher::image::insert_record("1", &item)];
        let sink = Sink::default();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let report = runtime.block_on(storefront_publisher::Publisher::new(sink.clone()).publish(&records));
        let put = sink.0.lock().expect("sink").clone();
        if !item.contains_key("eventType") {
            prop_assert_eq!((report.ignored, report.published, report.failed.len(), put.len()), (1, 0, 0, 0));
        } else {
            match item_to_event(&item) {
                Ok(envelope) => {
                    prop_assert_eq!((report.published, report.ignored, report.failed.len(), put.len()), (1, 0, 0, 1));
                    prop_assert_eq!(&put[0].detail_type, &envelope.event_type);
                    let detail: EventEnvelope = serde_json::from_str(&put[0].detail).expect("detail is an envelope");
                    prop_assert_eq!(detail, envelope);
                }
                Err(_) => {
                    prop_assert_eq!((report.published, report.ignored, put.len()), (0, 0, 0));
                    prop_assert!(
                        matches!(report.failed.as_slice(), [(0, storefront_publisher::RecordError::Decode(_))]),
                        "{:?}", report.failed
                    );
                }
            }
        }
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
