//! # storefront-analytics
//!
//! The numbers behind `GET /admin/stats`: orders by status, revenue,
//! conversion from carts to orders, and best sellers.
//!
//! Counters bumped per event would double-count on redelivery unless every
//! bump carried its own idempotency record. Instead each order and each cart
//! has its own small item (`analytics#orders` / `{orderId}`,
//! `analytics#carts` / `{userId}`), caught up with the store like any view:
//! duplicates and out-of-order deliveries change nothing, and the figures are
//! summed when asked for ([`read_stats`]). An admin endpoint reads a few
//! thousand small items comfortably; a shop beyond that would add a periodic
//! roll-up, noted in ARCHITECTURE.md.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use storefront_domain::cart::CartState;
use storefront_domain::order::{OrderState, OrderStatus};
use storefront_domain::{EventEnvelope, EventType};
use storefront_runtime::handler::{consumed_stream, project};
use storefront_runtime::{Config, ConfigError, EventHandler, HandlerError, Outcome, Stores};
use storefront_store::{StateStore, StoreError};
use utoipa::ToSchema;

/// The handler's name.
pub const NAME: &str = "analytics";

/// The event types this handler consumes.
pub const CONSUMES: &[EventType] = &[
    EventType::CartCreated,
    EventType::CartCheckedOut,
    EventType::OrderCreated,
    EventType::OrderConfirmed,
    EventType::OrderRejected,
    EventType::OrderPaid,
    EventType::OrderFulfillmentRequested,
    EventType::OrderShipped,
    EventType::OrderDelivered,
    EventType::OrderCancelled,
    EventType::OrderRefunded,
];

/// Partition of the per-order items.
pub const ORDERS: &str = "analytics#orders";
/// Partition of the per-cart items.
pub const CARTS: &str = "analytics#carts";
/// How many best sellers the stats list.
pub const TOP_N: usize = 10;

/// `GET /admin/stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsView {
    /// Orders per status.
    pub orders_by_status: BTreeMap<String, u64>,
    /// Paid and not refunded, in minor units, per currency.
    pub revenue_cents: BTreeMap<String, i64>,
    /// Carts that ever received an item.
    pub carts_started: u64,
    /// Checkouts (orders placed).
    pub checkouts: u64,
    /// Checkouts per cart started, 0..=1 and beyond for repeat buyers.
    pub conversion_rate: f64,
    /// Best sellers by units in orders that were not rejected or cancelled.
    pub top_products: Vec<TopProduct>,
}

/// A best seller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopProduct {
    /// The product.
    pub sku: String,
    /// Units ordered.
    pub units: u64,
}

/// The analytics handler.
#[derive(Clone)]
pub struct Analytics {
    stores: Stores,
}

impl Analytics {
    /// A handler on these stores.
    pub fn new(stores: Stores) -> Self {
        Analytics { stores }
    }

    /// From the function's environment.
    pub fn from_config(
        config: &Config,
        sdk: &storefront_runtime::aws::SdkConfig,
    ) -> Result<Self, ConfigError> {
        Ok(Analytics::new(storefront_runtime::lambda::dynamo_stores(
            config, sdk,
        )?))
    }
}

#[async_trait]
impl EventHandler for Analytics {
    fn name(&self) -> &'static str {
        NAME
    }

    fn consumes(&self) -> &'static [EventType] {
        CONSUMES
    }

    async fn handle(&self, envelope: &EventEnvelope) -> Result<Outcome, HandlerError> {
        let Some(stream) = consumed_stream(CONSUMES, envelope)? else {
            return Ok(Outcome::Ignored);
        };
        let id = stream.aggregate_id().to_owned();
        let (events, state) = (&*self.stores.events, &*self.stores.state);
        match stream.aggregate_type() {
            "order" => {
                project::<OrderState>(events, state, &stream, (ORDERS, &id), |_, _| vec![]).await
            }
            "cart" => {
                project::<CartState>(events, state, &stream, (CARTS, &id), |_, _| vec![]).await
            }
            _ => Ok(Outcome::Ignored),
        }
    }
}

/// Sums the per-order and per-cart items into the stats.
pub async fn read_stats(state: &dyn StateStore) -> Result<StatsView, StoreError> {
    let mut stats = StatsView::default();
    let mut units: BTreeMap<String, u64> = BTreeMap::new();
    for item in state.query(ORDERS).await? {
        let Ok(order) = serde_json::from_value::<OrderState>(item.value) else {
            continue;
        };
        let Some(status) = order.status else { continue };
        *stats
            .orders_by_status
            .entry(status.as_str().to_owned())
            .or_default() += 1;
        stats.checkouts += 1;
        if order.paid_cents > 0 && !order.refunded {
            let currency = order
                .currency
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default();
            *stats.revenue_cents.entry(currency).or_default() += order.paid_cents;
        }
        if !matches!(status, OrderStatus::Rejected | OrderStatus::Cancelled) {
            for line in &order.lines {
                *units.entry(line.sku.to_string()).or_default() += u64::from(line.quantity);
            }
        }
    }
    for item in state.query(CARTS).await? {
        if serde_json::from_value::<CartState>(item.value).is_ok_and(|c| c.user_id.is_some()) {
            stats.carts_started += 1;
        }
    }
    stats.conversion_rate = if stats.carts_started == 0 {
        0.0
    } else {
        stats.checkouts as f64 / stats.carts_started as f64
    };
    let mut top: Vec<TopProduct> = units
        .into_iter()
        .map(|(sku, units)| TopProduct { sku, units })
        .collect();
    top.sort_by(|a, b| b.units.cmp(&a.units).then_with(|| a.sku.cmp(&b.sku)));
    top.truncate(TOP_N);
    stats.top_products = top;
    Ok(stats)
}
