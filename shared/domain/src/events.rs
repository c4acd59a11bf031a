//! The event catalogue.
//!
//! Every event type is a typed payload with a stable dotted, past-tense name
//! (`cart.item.added`) and a schema version. The [`Event`] enum is the typed
//! form; [`EventType`] lists the names; [`schemas`] generates a JSON Schema per
//! type from the Rust types, which is checked in under `schemas/` as the
//! contract consumers code against.
//!
//! One macro invocation below is the single list of types: adding an event
//! there adds it to the enum, the name table, the decoder and the schemas.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{Currency, OrderId, Sku, UserId};

/// A line of an order, as captured when the cart checked out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderLine {
    /// The product.
    pub sku: Sku,
    /// The product's name at checkout.
    pub name: String,
    /// Units ordered, 1..=99.
    pub quantity: u32,
    /// Price of one unit at checkout, in minor units.
    pub unit_price_cents: i64,
}

impl OrderLine {
    /// quantity × unit price, in minor units.
    pub fn total_cents(&self) -> i64 {
        i64::from(self.quantity) * self.unit_price_cents
    }
}

/// One product that could not be reserved, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Shortage {
    /// The product.
    pub sku: Sku,
    /// Units the order asked for.
    pub requested: u32,
    /// Units on hand and not reserved (0 for an unknown or discontinued product).
    pub available: u32,
}

macro_rules! payload {
    ($(#[$doc:meta])* $name:ident { $( $(#[$fdoc:meta])* $field:ident : $ty:ty ),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name { $( $(#[$fdoc])* pub $field: $ty ),* }
    };
}

// ---- cart -------------------------------------------------------------------
payload!(/** A shopper's cart came into being (with their first item). */ CartCreated {
    /** The owner; the cart's stream is `cart#{userId}`. */ user_id: UserId,
    /** The cart's currency, fixed by its first item. */ currency: Currency,
});
payload!(/** A new line was put in the cart. */ CartItemAdded {
    /** The product. */ sku: Sku,
    /** The product's name when added. */ name: String,
    /** Units, 1..=99. */ quantity: u32,
    /** Unit price when added, in minor units. */ unit_price_cents: i64,
});
payload!(/** A line was taken out of the cart. */ CartItemRemoved { /** The product. */ sku: Sku });
payload!(/** A line's quantity was set to a new value. */ CartItemQuantityChanged {
    /** The product. */ sku: Sku,
    /** The new quantity, 1..=99. */ quantity: u32,
});
payload!(/** Every line was removed. */ CartCleared {});
payload!(/** The cart became an order; the cart is empty again afterwards. */ CartCheckedOut {
    /** The order created from it. */ order_id: OrderId,
    /** Total of the lines, in minor units. */ total_cents: i64,
    /** The cart's currency. */ currency: Currency,
});
payload!(/** The cart had lines and no activity for longer than the idle limit. */ CartAbandoned {
    /** When the cart last changed (RFC 3339). */ last_activity_at: String,
    /** Units left in the cart. */ units: u32,
});

// ---- order ------------------------------------------------------------------
payload!(/** An order was placed from a cart; it starts `pending`. */ OrderCreated {
    /** The order. */ order_id: OrderId,
    /** Who placed it. */ user_id: UserId,
    /** What was ordered. */ lines: Vec<OrderLine>,
    /** Sum of the lines, in minor units. */ total_cents: i64,
    /** Currency of all amounts. */ currency: Currency,
    /** When the shopper placed it (RFC 3339 UTC). */ placed_at: String,
});
payload!(/** Every line's stock is reserved: the order can be paid. */ OrderConfirmed { /** The order. */ order_id: OrderId });
payload!(/** The order could not be fulfilled (usually: not enough stock). */ OrderRejected {
    /** The order. */ order_id: OrderId,
    /** Why, for the shopper. */ reason: String,
});
payload!(/** The exact total was paid. */ OrderPaid {
    /** The order. */ order_id: OrderId,
    /** Amount paid, in minor units: always the order's total. */ amount_cents: i64,
    /** Currency of the amount. */ currency: Currency,
});
payload!(/** A payment attempt failed (declined by the provider). */ OrderPaymentFailed {
    /** The order. */ order_id: OrderId,
    /** Amount attempted, in minor units. */ amount_cents: i64,
    /** The provider's reason. */ reason: String,
});
payload!(/** The warehouse was asked to ship a paid order. */ OrderFulfillmentRequested { /** The order. */ order_id: OrderId });
payload!(/** The order left the warehouse. */ OrderShipped {
    /** The order. */ order_id: OrderId,
    /** The carrier. */ carrier: String,
    /** The carrier's tracking number. */ tracking_number: String,
});
payload!(/** The order reached the shopper. */ OrderDelivered { /** The order. */ order_id: OrderId });
payload!(/** The order was cancelled before shipping. */ OrderCancelled {
    /** The order. */ order_id: OrderId,
    /** Why. */ reason: String,
    /** Who cancelled: a user id or `system:<handler>`. */ cancelled_by: String,
    /** Whether the order had been paid (a refund follows). */ was_paid: bool,
});
payload!(/** Money was returned for a cancelled, paid order. */ OrderRefunded {
    /** The order. */ order_id: OrderId,
    /** Amount refunded, in minor units. */ amount_cents: i64,
});

// ---- product ----------------------------------------------------------------
payload!(/** A product was added to the catalogue. */ ProductCreated {
    /** The product. */ sku: Sku,
    /** Display name. */ name: String,
    /** Unit price, in minor units. */ price_cents: i64,
    /** Currency of the price. */ currency: Currency,
    /** Units on hand at creation. */ initial_stock: u32,
});
payload!(/** The product's name changed. */ ProductUpdated { /** The new name. */ name: String });
payload!(/** The product's price changed. */ ProductPriceChanged {
    /** The new unit price, in minor units. */ price_cents: i64,
    /** The old unit price, in minor units. */ previous_price_cents: i64,
});
payload!(/** On-hand stock was adjusted (delivery, count, breakage). */ ProductStockAdjusted {
    /** Change in units, positive or negative. */ delta: i64,
    /** Why, for the audit trail. */ reason: String,
    /** On-hand units after the adjustment. */ on_hand: u32,
});
payload!(/** The product can no longer be sold. */ ProductDiscontinued {});

// ---- inventory (recorded on product streams and on `inventory#{orderId}`) ---
payload!(/** Units of one product were reserved for an order. */ InventoryStockReserved {
    /** The order. */ order_id: OrderId,
    /** The product. */ sku: Sku,
    /** Units reserved. */ quantity: u32,
});
payload!(/** An order's reservation of one product was given back. */ InventoryStockReleased {
    /** The order. */ order_id: OrderId,
    /** The product. */ sku: Sku,
    /** Units released. */ quantity: u32,
    /** Why: cancelled, rejected, payment expired. */ reason: String,
});
payload!(/** An order's lines could not all be reserved; nothing was reserved. */ InventoryReservationFailed {
    /** The order. */ order_id: OrderId,
    /** The lines that were short. */ shortages: Vec<Shortage>,
});
payload!(/** A product's available stock fell below the low-stock threshold. */ InventoryStockLow {
    /** The product. */ sku: Sku,
    /** Units available after the change. */ available: u32,
    /** The threshold that was crossed. */ threshold: u32,
});

// ---- user -------------------------------------------------------------------
payload!(/** A shopper registered. */ UserRegistered {
    /** The user (the token's `sub`). */ user_id: UserId,
    /** Contact address. */ email: String,
    /** Display name. */ name: String,
});
payload!(/** A shopper changed their profile; absent fields are unchanged. */ UserProfileUpdated {
    /** New display name. */ name: Option<String>,
    /** New contact address. */ email: Option<String>,
});
payload!(/** The account was closed. */ UserDeactivated { /** Why. */ reason: String });

// ---- notification -----------------------------------------------------------
payload!(/** A message was handed to the provider. */ NotificationSent {
    /** The event that caused it; also the provider's idempotency key. */ source_event_id: String,
    /** `email` (SES) or `outbox` locally. */ channel: String,
    /** The message template. */ template: String,
    /** Where it went. */ recipient: String,
});
payload!(/** A message could not be sent. */ NotificationFailed {
    /** The event that caused it. */ source_event_id: String,
    /** `email` (SES) or `outbox` locally. */ channel: String,
    /** The message template. */ template: String,
    /** The provider's reason. */ reason: String,
});

macro_rules! catalogue {
    ($( $variant:ident($payload:ident) = $name:literal, $aggregate:literal; )*) => {
        /// Every domain event, typed. Serialized as `{"type": "...", "data": {...}}`.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "type", content = "data")]
        pub enum Event {
            $(
                #[doc = concat!("`", $name, "`")]
                #[serde(rename = $name)]
                $variant($payload),
            )*
        }

        /// The name of each event type, without its payload.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl EventType {
            /// Every type in the catalogue, in catalogue order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),*];

            /// The stable dotted name, e.g. `cart.item.added`.
            pub fn name(self) -> &'static str {
                match self { $(EventType::$variant => $name),* }
            }

            /// The aggregate family the type belongs to (`cart`, `order`, ...).
            pub fn family(self) -> &'static str {
                match self { $(EventType::$variant => $aggregate),* }
            }

            /// Looks a type up by its dotted name.
            pub fn from_name(name: &str) -> Option<EventType> {
                match name { $($name => Some(EventType::$variant),)* _ => None }
            }

            /// The JSON Schema of the type's payload.
            pub fn schema(self) -> schemars::Schema {
                match self { $(EventType::$variant => schemars::schema_for!($payload)),* }
            }
        }

        impl Event {
            /// The event's type.
            pub fn event_type(&self) -> EventType {
                match self { $(Event::$variant(_) => EventType::$variant),* }
            }
        }
    };
}

catalogue! {
    CartCreated(CartCreated) = "cart.created", "cart";
    CartItemAdded(CartItemAdded) = "cart.item.added", "cart";
    CartItemRemoved(CartItemRemoved) = "cart.item.removed", "cart";
    CartItemQuantityChanged(CartItemQuantityChanged) = "cart.item.quantity.changed", "cart";
    CartCleared(CartCleared) = "cart.cleared", "cart";
    CartCheckedOut(CartCheckedOut) = "cart.checked.out", "cart";
    CartAbandoned(CartAbandoned) = "cart.abandoned", "cart";
    OrderCreated(OrderCreated) = "order.created", "order";
    OrderConfirmed(OrderConfirmed) = "order.confirmed", "order";
    OrderRejected(OrderRejected) = "order.rejected", "order";
    OrderPaid(OrderPaid) = "order.paid", "order";
    OrderPaymentFailed(OrderPaymentFailed) = "order.payment.failed", "order";
    OrderFulfillmentRequested(OrderFulfillmentRequested) = "order.fulfillment.requested", "order";
    OrderShipped(OrderShipped) = "order.shipped", "order";
    OrderDelivered(OrderDelivered) = "order.delivered", "order";
    OrderCancelled(OrderCancelled) = "order.cancelled", "order";
    OrderRefunded(OrderRefunded) = "order.refunded", "order";
    ProductCreated(ProductCreated) = "product.created", "product";
    ProductUpdated(ProductUpdated) = "product.updated", "product";
    ProductPriceChanged(ProductPriceChanged) = "product.price.changed", "product";
    ProductStockAdjusted(ProductStockAdjusted) = "product.stock.adjusted", "product";
    ProductDiscontinued(ProductDiscontinued) = "product.discontinued", "product";
    InventoryStockReserved(InventoryStockReserved) = "inventory.stock.reserved", "inventory";
    InventoryStockReleased(InventoryStockReleased) = "inventory.stock.released", "inventory";
    InventoryReservationFailed(InventoryReservationFailed) = "inventory.reservation.failed", "inventory";
    InventoryStockLow(InventoryStockLow) = "inventory.stock.low", "inventory";
    UserRegistered(UserRegistered) = "user.registered", "user";
    UserProfileUpdated(UserProfileUpdated) = "user.profile.updated", "user";
    UserDeactivated(UserDeactivated) = "user.deactivated", "user";
    NotificationSent(NotificationSent) = "notification.sent", "notification";
    NotificationFailed(NotificationFailed) = "notification.failed", "notification";
}

/// The schema version every type is at today. Bump a type's version (and add
/// an upcaster in [`Event::from_parts`]) when its payload changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

/// Why a stored (type, data) pair could not be turned into an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The type is not in the catalogue.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// The payload does not match the type's schema.
    #[error("payload of {event_type} does not match its schema: {reason}")]
    BadPayload {
        /// The event type.
        event_type: &'static str,
        /// serde's explanation.
        reason: String,
    },
    /// The schema version is newer than this code understands.
    #[error(
        "{event_type} has schema version {found}, this build understands up to {SCHEMA_VERSION}"
    )]
    UnsupportedSchemaVersion {
        /// The event type.
        event_type: &'static str,
        /// The version found.
        found: u32,
    },
}

impl Event {
    /// The payload as JSON (the envelope's `data`).
    pub fn data(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut map)) => {
                map.remove("data").unwrap_or(serde_json::Value::Null)
            }
            // Every variant is a struct of plain fields: serializing cannot fail
            // and always yields {"type", "data"}.
            _ => serde_json::Value::Null,
        }
    }

    /// Rebuilds a typed event from its dotted type, schema version and payload.
    pub fn from_parts(
        event_type: &str,
        schema_version: u32,
        data: &serde_json::Value,
    ) -> Result<Event, DecodeError> {
        let ty = EventType::from_name(event_type)
            .ok_or_else(|| DecodeError::UnknownType(event_type.to_owned()))?;
        if schema_version > SCHEMA_VERSION || schema_version == 0 {
            return Err(DecodeError::UnsupportedSchemaVersion {
                event_type: ty.name(),
                found: schema_version,
            });
        }
        let tagged = serde_json::json!({ "type": ty.name(), "data": data });
        serde_json::from_value(tagged).map_err(|e| DecodeError::BadPayload {
            event_type: ty.name(),
            reason: e.to_string(),
        })
    }
}

/// Every type's JSON Schema, keyed by dotted name, as pretty JSON text: what
/// `schemas/` holds. The envelope's own schema is under the key `envelope`.
pub fn schemas() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = EventType::ALL
        .iter()
        .map(|t| (t.name().to_owned(), pretty(&t.schema())))
        .collect();
    out.push((
        "envelope".to_owned(),
        pretty(&schemars::schema_for!(crate::EventEnvelope)),
    ));
    out
}

fn pretty(schema: &schemars::Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::*;

    /// The catalogue holds every type DESIGN §3 names, and names are unique and dotted.
    #[test]
    fn catalogue_is_complete_and_unique() {
        assert!(EventType::ALL.len() >= 30);
        let mut names: Vec<_> = EventType::ALL.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
        for t in EventType::ALL {
            assert!(t.name().starts_with(&format!("{}.", t.family())));
            assert_eq!(EventType::from_name(t.name()), Some(*t));
        }
    }

    /// from_parts refuses unknown types, wrong payloads and future schema versions.
    #[test]
    fn decode_errors_are_typed() {
        let data = serde_json::json!({});
        assert!(matches!(
            Event::from_parts("cart.exploded", 1, &data),
            Err(DecodeError::UnknownType(_))
        ));
        assert!(matches!(
            Event::from_parts("cart.item.removed", 1, &data),
            Err(DecodeError::BadPayload { .. })
        ));
        assert!(matches!(
            Event::from_parts("cart.cleared", 2, &data),
            Err(DecodeError::UnsupportedSchemaVersion { found: 2, .. })
        ));
        assert!(matches!(
            Event::from_parts("cart.item.removed", 1, &serde_json::json!({"sku": "a b"})),
            Err(DecodeError::BadPayload { .. })
        ));
        assert!(matches!(
            Event::from_parts(
                "cart.item.removed",
                1,
                &serde_json::json!({"sku": "A", "extra": 1})
            ),
            Err(DecodeError::BadPayload { .. })
        ));
    }

    fn sku(s: &str) -> Sku {
        Sku::new(s).expect("valid sku")
    }
    fn order(s: &str) -> OrderId {
        OrderId::new(s).expect("valid order id")
    }
    fn user(s: &str) -> UserId {
        UserId::new(s).expect("valid user id")
    }
    fn eur() -> Currency {
        Currency::new("EUR").expect("valid currency")
    }

    /// One sample of every type in the catalogue.
    pub(crate) fn samples() -> Vec<Event> {
        let line = OrderLine {
            sku: sku("A"),
            name: "Mug".into(),
            quantity: 2,
            unit_price_cents: 1250,
        };
        vec![
            Event::CartCreated(CartCreated {
                user_id: user("u1"),
                currency: eur(),
            }),
            Event::CartItemAdded(CartItemAdded {
                sku: sku("A"),
                name: "Mug".into(),
                quantity: 2,
                unit_price_cents: 1250,
            }),
            Event::CartItemRemoved(CartItemRemoved { sku: sku("A") }),
            Event::CartItemQuantityChanged(CartItemQuantityChanged {
                sku: sku("A"),
                quantity: 3,
            }),
            Event::CartCleared(CartCleared {}),
            Event::CartCheckedOut(CartCheckedOut {
                order_id: order("o1"),
                total_cents: 2500,
                currency: eur(),
            }),
            Event::CartAbandoned(CartAbandoned {
                last_activity_at: "2026-01-01T00:00:00.000Z".into(),
                units: 2,
            }),
            Event::OrderCreated(OrderCreated {
                order_id: order("o1"),
                user_id: user("u1"),
                lines: vec![line],
                total_cents: 2500,
                currency: eur(),
                placed_at: "2026-11-27T10:00:00.000Z".into(),
            }),
            Event::OrderConfirmed(OrderConfirmed {
                order_id: order("o1"),
            }),
            Event::OrderRejected(OrderRejected {
                order_id: order("o1"),
                reason: "short".into(),
            }),
            Event::OrderPaid(OrderPaid {
                order_id: order("o1"),
                amount_cents: 2500,
                currency: eur(),
            }),
            Event::OrderPaymentFailed(OrderPaymentFailed {
                order_id: order("o1"),
                amount_cents: 2500,
                reason: "declined".into(),
            }),
            Event::OrderFulfillmentRequested(OrderFulfillmentRequested {
                order_id: order("o1"),
            }),
            Event::OrderShipped(OrderShipped {
                order_id: order("o1"),
                carrier: "DHL".into(),
                tracking_number: "T1".into(),
            }),
            Event::OrderDelivered(OrderDelivered {
                order_id: order("o1"),
            }),
            Event::OrderCancelled(OrderCancelled {
                order_id: order("o1"),
                reason: "changed mind".into(),
                cancelled_by: "u1".into(),
                was_paid: true,
            }),
            Event::OrderRefunded(OrderRefunded {
                order_id: order("o1"),
                amount_cents: 2500,
            }),
            Event::ProductCreated(ProductCreated {
                sku: sku("A"),
                name: "Mug".into(),
                price_cents: 1250,
                currency: eur(),
                initial_stock: 10,
            }),
            Event::ProductUpdated(ProductUpdated {
                name: "Big mug".into(),
            }),
            Event::ProductPriceChanged(ProductPriceChanged {
                price_cents: 1300,
                previous_price_cents: 1250,
            }),
            Event::ProductStockAdjusted(ProductStockAdjusted {
                delta: -2,
                reason: "breakage".into(),
                on_hand: 8,
            }),
            Event::ProductDiscontinued(ProductDiscontinued {}),
            Event::InventoryStockReserved(InventoryStockReserved {
                order_id: order("o1"),
                sku: sku("A"),
                quantity: 2,
            }),
            Event::InventoryStockReleased(InventoryStockReleased {
                order_id: order("o1"),
                sku: sku("A"),
                quantity: 2,
                reason: "cancelled".into(),
            }),
            Event::InventoryReservationFailed(InventoryReservationFailed {
                order_id: order("o1"),
                shortages: vec![Shortage {
                    sku: sku("A"),
                    requested: 2,
                    available: 1,
                }],
            }),
            Event::InventoryStockLow(InventoryStockLow {
                sku: sku("A"),
                available: 1,
                threshold: 3,
            }),
            Event::UserRegistered(UserRegistered {
                user_id: user("u1"),
                email: "a@example.com".into(),
                name: "Ada".into(),
            }),
            Event::UserProfileUpdated(UserProfileUpdated {
                name: Some("Ada L".into()),
                email: None,
            }),
            Event::UserDeactivated(UserDeactivated {
                reason: "asked".into(),
            }),
            Event::NotificationSent(NotificationSent {
                source_event_id: "e1".into(),
                channel: "outbox".into(),
                template: "order-confirmed".into(),
                recipient: "a@example.com".into(),
            }),
            Event::NotificationFailed(NotificationFailed {
                source_event_id: "e1".into(),
                channel: "email".into(),
                template: "order-confirmed".into(),
                reason: "bounced".into(),
            }),
        ]
    }

    /// Every type survives a serde round trip through its (type, data) parts, and the samples cover the whole catalogue.
    #[test]
    fn every_type_round_trips() {
        let samples = samples();
        let covered: std::collections::BTreeSet<_> =
            samples.iter().map(|e| e.event_type()).collect();
        assert_eq!(covered.len(), EventType::ALL.len(), "a sample per type");
        for event in samples {
            let ty = event.event_type();
            let data = event.data();
            assert!(data.is_object(), "{} data is an object", ty.name());
            let text = serde_json::to_string(&data).expect("serializes");
            let back: serde_json::Value = serde_json::from_str(&text).expect("parses");
            let decoded = Event::from_parts(ty.name(), SCHEMA_VERSION, &back).expect("decodes");
            assert_eq!(decoded, event);
        }
    }

    /// Payload keys are camelCase, as DESIGN §6 promises.
    #[test]
    fn payloads_are_camel_case() {
        let data = Event::OrderShipped(OrderShipped {
            order_id: order("o1"),
            carrier: "DHL".into(),
            tracking_number: "T".into(),
        })
        .data();
        assert!(data.get("trackingNumber").is_some());
        assert!(data.get("orderId").is_some());
    }
}
