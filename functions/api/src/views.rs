//! What the API returns (DESIGN §6), built from aggregate state, and what it accepts.

use serde::{Deserialize, Serialize};
use storefront_domain::cart::CartState;
use storefront_domain::events::OrderLine;
use storefront_domain::order::OrderState;
use storefront_domain::user::UserState;
use utoipa::ToSchema;

pub use storefront_runtime::catalog::ProductView;

/// One line of a cart or an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineView {
    /// The product.
    pub sku: String,
    /// Its name when added.
    pub name: String,
    /// Units.
    pub quantity: u32,
    /// Unit price in minor units.
    pub unit_price_cents: i64,
    /// quantity × unit price.
    pub line_total_cents: i64,
}

impl LineView {
    fn of(l: &OrderLine) -> Self {
        LineView {
            sku: l.sku.to_string(),
            name: l.name.clone(),
            quantity: l.quantity,
            unit_price_cents: l.unit_price_cents,
            line_total_cents: l.total_cents(),
        }
    }
}

/// The caller's cart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartView {
    /// Lines in the order they were added.
    pub lines: Vec<LineView>,
    /// Sum of the lines in minor units.
    pub total_cents: i64,
    /// ISO 4217 code: the currency of the cart's first line; absent while
    /// the cart has never had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub currency: Option<String>,
    /// Stream version.
    pub version: u64,
}

impl CartView {
    /// The view of a cart (an absent cart is empty at version 0).
    pub fn of(c: &CartState) -> Self {
        CartView {
            lines: c.order_lines().iter().map(LineView::of).collect(),
            total_cents: c.total_cents(),
            currency: c.currency.as_ref().map(|c| c.to_string()),
            version: c.version,
        }
    }
}

/// An order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    /// The order.
    pub order_id: String,
    /// Who placed it.
    pub user_id: String,
    /// pending, confirmed, rejected, paid, shipped, delivered or cancelled.
    pub status: String,
    /// What was ordered.
    pub lines: Vec<LineView>,
    /// Sum of the lines in minor units.
    pub total_cents: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Why it was rejected or cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Stream version.
    pub version: u64,
    /// When it was placed.
    pub created_at: String,
}

impl OrderView {
    /// The view of an order that exists.
    pub fn of(o: &OrderState) -> Option<Self> {
        Some(OrderView {
            order_id: o.order_id.as_ref()?.to_string(),
            user_id: o.user_id.as_ref()?.to_string(),
            status: o.status?.as_str().into(),
            lines: o.lines.iter().map(LineView::of).collect(),
            total_cents: o.total_cents,
            currency: o
                .currency
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            reason: o.reason.clone(),
            version: o.version,
            created_at: o.placed_at.clone(),
        })
    }
}

/// A user's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// The user (the token's `sub`).
    pub user_id: String,
    /// Contact address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// `active` or `deactivated`.
    pub status: String,
    /// Stream version.
    pub version: u64,
}

impl UserView {
    /// The view of a registered user.
    pub fn of(u: &UserState) -> Option<Self> {
        Some(UserView {
            user_id: u.user_id.as_ref()?.to_string(),
            email: u.email.clone(),
            name: u.name.clone(),
            status: if u.deactivated {
                "deactivated"
            } else {
                "active"
            }
            .into(),
            version: u.version,
        })
    }
}

/// `POST /users`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterUser {
    /// The contact address is the token's verified `email` claim; if given
    /// here it must be that address.
    #[serde(default)]
    pub email: Option<String>,
    /// Display name, 1..=100 characters.
    pub name: String,
}

/// `PATCH /users/me`: a new display name, the address the token now
/// verifies, or both.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateProfile {
    /// A new display name, 1..=100 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// A new contact address: it must be the token's verified `email`
    /// claim (change it at the identity provider first), as at registration.
    #[serde(default)]
    pub email: Option<String>,
}

/// `POST /products`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateProduct {
    /// Stock-keeping unit: letters, digits, `-`, `_`, `.`; 1..=64 characters.
    pub sku: String,
    /// Display name, 1..=200 characters.
    pub name: String,
    /// Unit price in minor units, 1..=1,000,000,000.
    pub price_cents: i64,
    /// ISO 4217 code in capitals.
    pub currency: String,
    /// Units on hand.
    pub stock: i64,
}

/// `PATCH /products/{sku}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateProduct {
    /// A new name.
    pub name: Option<String>,
    /// A new unit price in minor units.
    pub price_cents: Option<i64>,
}

/// `POST /products/{sku}/stock`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdjustStock {
    /// Change in on-hand units, positive or negative, not zero.
    pub delta: i64,
    /// Why, for the audit trail.
    pub reason: String,
}

/// `POST /cart/items`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddItem {
    /// The product.
    pub sku: String,
    /// Units to add, 1..=99 (the line may hold at most 99).
    pub quantity: i64,
}

/// `PATCH /cart/items/{sku}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeQuantity {
    /// The new quantity, 1..=99.
    pub quantity: i64,
}

/// `POST /cart/checkout` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutAccepted {
    /// The new order, `pending` until its stock is reserved.
    pub order_id: String,
}

/// `POST /orders/{id}/payment`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Payment {
    /// Must equal the order's total, in minor units.
    pub amount_cents: i64,
}

/// `POST /orders/{id}/cancel`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cancel {
    /// Why (optional).
    pub reason: Option<String>,
}

/// `POST /orders/{id}/shipment`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Shipment {
    /// The carrier.
    pub carrier: String,
    /// The carrier's tracking number.
    pub tracking_number: String,
}

pub use crate::stats::{StatsView, TopProduct};

/// An event as stored and published (`schemas/envelope.json`): what
/// `GET /admin/streams/{streamId}/events` lists. Documentation only: the
/// route serializes [`storefront_domain::EventEnvelope`], which has exactly
/// these fields (`causationId` absent when there is none).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = EventEnvelope)]
pub struct EnvelopeDoc {
    /// UUIDv7, unique across all streams.
    pub event_id: String,
    /// The dotted type from the catalogue, e.g. `cart.item.added`.
    pub event_type: String,
    /// `{aggregateType}#{aggregateId}`, e.g. `cart#u-42`.
    pub stream_id: String,
    /// 1-based position in the stream, without gaps.
    #[schema(minimum = 1)]
    pub version: u64,
    /// When the event was decided, RFC 3339 UTC with milliseconds.
    #[schema(format = DateTime)]
    pub occurred_at: String,
    /// Version of the payload's schema.
    pub schema_version: u32,
    /// The API request id that started the flow.
    pub correlation_id: String,
    /// The eventId that caused this one; absent for a command's first events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub causation_id: Option<String>,
    /// A user id or `system:<handler>`.
    pub actor: String,
    /// The payload: the event type's schema in `schemas/`.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// `sha256:` and the hex SHA-256 of the canonical (stream, version, type, data).
    #[schema(pattern = "^sha256:[0-9a-f]{64}$")]
    pub checksum: String,
}
