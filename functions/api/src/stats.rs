//! `GET /admin/stats`: the analytics handler's per-order and per-cart
//! items, read from the state store (their keys are
//! [`storefront_store::keys`]'s) and summed when asked for.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use storefront_domain::cart::CartState;
use storefront_domain::order::{OrderState, OrderStatus};
use storefront_store::keys::{ANALYTICS_CARTS as CARTS, ANALYTICS_ORDERS as ORDERS};
use storefront_store::{StateStore, StoreError};
use utoipa::ToSchema;

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
