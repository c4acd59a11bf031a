//! # storefront-inventory
//!
//! Keeps stock honest. On `order.created` it reserves every line's stock in
//! one atomic multi-stream append (all products or none) and records
//! `inventory.stock.reserved` per product; if any line is short it appends
//! nothing to the products and records `inventory.reservation.failed` on
//! `inventory#{orderId}`. On `order.cancelled` and `order.rejected` it
//! releases what was reserved; on `order.shipped` it commits the reservation
//! (the units leave the shelf). `inventory.stock.low` is recorded when
//! available stock falls under the threshold. Every product append carries
//! the product's catalogue item (`storefront_runtime::catalog`) in the same
//! transaction, so the public catalogue shows the stock as the store has it.
//!
//! Stock cannot be oversold whatever the concurrency: each product is a
//! stream written with a conditional append, so two reservations can never
//! both take the last unit; the loser reloads and decides again.
//!
//! EventBridge gives no order, so the handler reads what it decides on from
//! the store: a reservation is made only for an order still `pending`, and a
//! reservation that lands for an order cancelled meanwhile is released when
//! its own `inventory.stock.reserved` comes back (self-healing).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::BTreeMap;

use async_trait::async_trait;
use storefront_domain::events::{InventoryReservationFailed, Shortage};
use storefront_domain::order::{OrderState, OrderStatus};
use storefront_domain::product::{ProductCommand, ProductState};
use storefront_domain::{Aggregate, DomainError, Event, EventEnvelope, EventType, OrderId, Sku};
use storefront_runtime::handler::{Decision, append_once, decode, load, stream_of};
use storefront_runtime::{
    Config, ConfigError, EventHandler, Globals, HandlerError, Outcome, Stores,
};

/// The handler's name.
pub const NAME: &str = "inventory";

/// The event types this handler consumes.
pub const CONSUMES: &[EventType] = &[
    EventType::OrderCreated,
    EventType::OrderCancelled,
    EventType::OrderRejected,
    EventType::OrderShipped,
    EventType::InventoryStockReserved,
];

/// `LOW_STOCK_THRESHOLD` when unset: `inventory.stock.low` under 5 available units.
pub const DEFAULT_LOW_STOCK_THRESHOLD: u32 = 5;

/// Everything the inventory function reads from its environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// What every function gets (`SNAPSHOT_EVERY`, the log level and format).
    pub globals: Globals,
    /// `LOW_STOCK_THRESHOLD`: record `inventory.stock.low` when available
    /// stock falls under this many units (default [`DEFAULT_LOW_STOCK_THRESHOLD`]).
    pub low_stock_threshold: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            globals: Globals::default(),
            low_stock_threshold: DEFAULT_LOW_STOCK_THRESHOLD,
        }
    }
}

impl Settings {
    /// Reads the globals and `LOW_STOCK_THRESHOLD`; a threshold that is not a
    /// whole number of units up to `u32::MAX` is an error.
    pub fn from_config(config: &Config) -> Result<Settings, ConfigError> {
        const VAR: &str = "LOW_STOCK_THRESHOLD";
        let threshold = config.number(VAR, u64::from(DEFAULT_LOW_STOCK_THRESHOLD))?;
        Ok(Settings {
            globals: Globals::from_config(config)?,
            low_stock_threshold: u32::try_from(threshold).map_err(|_| ConfigError::Invalid {
                name: VAR,
                value: threshold.to_string(),
                expected: "a whole number of units no larger than 4294967295",
            })?,
        })
    }
}

/// The inventory handler.
#[derive(Clone)]
pub struct Inventory {
    stores: Stores,
    low_stock_threshold: u32,
}

impl Inventory {
    /// A handler on these stores, with the function's settings.
    pub fn new(stores: Stores, settings: &Settings) -> Self {
        Inventory {
            stores: stores.with_snapshot_every(settings.globals.snapshot_every),
            low_stock_threshold: settings.low_stock_threshold,
        }
    }

    async fn order(&self, order_id: &OrderId) -> Result<OrderState, HandlerError> {
        Ok(
            load::<OrderState>(&self.stores, &stream_of("order", order_id.as_str())?)
                .await?
                .state,
        )
    }

    /// Reserves every line of the order, or records why not.
    async fn reserve(
        &self,
        cause: &EventEnvelope,
        order_id: &OrderId,
    ) -> Result<Outcome, HandlerError> {
        append_once(
            &*self.stores.events,
            &*self.stores.state,
            NAME,
            cause,
            || async {
                let order = self.order(order_id).await?;
                if order.status != Some(OrderStatus::Pending) {
                    // Cancelled (or already decided) before we got to it: nothing to reserve.
                    return Ok((vec![], vec![]));
                }
                let mut wanted: BTreeMap<Sku, u32> = BTreeMap::new();
                for line in &order.lines {
                    *wanted.entry(line.sku.clone()).or_default() += line.quantity;
                }
                let mut decisions = Vec::new();
                let mut catalog = Vec::new();
                let mut shortages = Vec::new();
                for (sku, quantity) in wanted {
                    let stream = stream_of("product", sku.as_str())?;
                    let product = load::<ProductState>(&self.stores, &stream).await?;
                    let command = ProductCommand::Reserve {
                        order_id: order_id.clone(),
                        quantity,
                        low_stock_threshold: self.low_stock_threshold,
                    };
                    match product.state.decide(&command) {
                        Ok(events) => {
                            catalog.extend(listing(&product.state, &events));
                            decisions.push(Decision {
                                stream,
                                expected_version: product.version,
                                events,
                            })
                        }
                        Err(DomainError::InsufficientStock { available, .. }) => {
                            shortages.push(Shortage {
                                sku,
                                requested: quantity,
                                available,
                            })
                        }
                        Err(DomainError::NotFound(_) | DomainError::ProductDiscontinued(_)) => {
                            shortages.push(Shortage {
                                sku,
                                requested: quantity,
                                available: 0,
                            })
                        }
                        Err(e) => return Err(HandlerError::Permanent(e.to_string())),
                    }
                }
                if shortages.is_empty() {
                    return Ok((decisions, catalog));
                }
                // All or nothing: no product is touched; the failure is recorded instead.
                let stream = stream_of("inventory", order_id.as_str())?;
                let version = self.stores.events.current_version(&stream).await?;
                Ok((
                    vec![Decision {
                        stream,
                        expected_version: version,
                        events: vec![Event::InventoryReservationFailed(
                            InventoryReservationFailed {
                                order_id: order_id.clone(),
                                shortages,
                            },
                        )],
                    }],
                    vec![],
                ))
            },
        )
        .await
    }

    /// Applies `command` to every product of the order (release or commit).
    async fn each_product(
        &self,
        cause: &EventEnvelope,
        order_id: &OrderId,
        command: impl Fn() -> ProductCommand,
    ) -> Result<Outcome, HandlerError> {
        append_once(
            &*self.stores.events,
            &*self.stores.state,
            NAME,
            cause,
            || async {
                let order = self.order(order_id).await?;
                let skus: std::collections::BTreeSet<&Sku> =
                    order.lines.iter().map(|l| &l.sku).collect();
                let mut decisions = Vec::new();
                let mut catalog = Vec::new();
                for sku in skus {
                    let stream = stream_of("product", sku.as_str())?;
                    let product = load::<ProductState>(&self.stores, &stream).await?;
                    let events = product
                        .state
                        .decide(&command())
                        .map_err(|e| HandlerError::Permanent(e.to_string()))?;
                    catalog.extend(listing(&product.state, &events));
                    decisions.push(Decision {
                        stream,
                        expected_version: product.version,
                        events,
                    });
                }
                Ok((decisions, catalog))
            },
        )
        .await
    }

    /// A reservation for an order that is no longer live is given back.
    async fn heal(
        &self,
        cause: &EventEnvelope,
        order_id: &OrderId,
        sku: &Sku,
    ) -> Result<Outcome, HandlerError> {
        append_once(
            &*self.stores.events,
            &*self.stores.state,
            NAME,
            cause,
            || async {
                let order = self.order(order_id).await?;
                if !matches!(
                    order.status,
                    Some(OrderStatus::Cancelled | OrderStatus::Rejected)
                ) {
                    return Ok((vec![], vec![]));
                }
                let stream = stream_of("product", sku.as_str())?;
                let product = load::<ProductState>(&self.stores, &stream).await?;
                let events = product
                    .state
                    .decide(&ProductCommand::Release {
                        order_id: order_id.clone(),
                        reason: "order no longer live".into(),
                    })
                    .map_err(|e| HandlerError::Permanent(e.to_string()))?;
                let catalog = listing(&product.state, &events);
                Ok((
                    vec![Decision {
                        stream,
                        expected_version: product.version,
                        events,
                    }],
                    catalog,
                ))
            },
        )
        .await
    }
}

/// The catalogue item of a product after `events`, to write with them
/// (nothing when they are none: the product did not change).
fn listing(product: &ProductState, events: &[Event]) -> Vec<storefront_store::StateWrite> {
    if events.is_empty() {
        return vec![];
    }
    let after = events.iter().fold(product.clone(), |p, e| p.evolve(e));
    storefront_runtime::catalog::entry(&after)
}

#[async_trait]
impl EventHandler for Inventory {
    fn name(&self) -> &'static str {
        NAME
    }

    fn consumes(&self) -> &'static [EventType] {
        CONSUMES
    }

    async fn handle(&self, envelope: &EventEnvelope) -> Result<Outcome, HandlerError> {
        let event = decode(envelope)?;
        match event {
            Event::OrderCreated(e) => self.reserve(envelope, &e.order_id).await,
            Event::OrderCancelled(e) => {
                let reason = format!("order cancelled: {}", e.reason);
                self.each_product(envelope, &e.order_id, || ProductCommand::Release {
                    order_id: e.order_id.clone(),
                    reason: reason.clone(),
                })
                .await
            }
            Event::OrderRejected(e) => {
                self.each_product(envelope, &e.order_id, || ProductCommand::Release {
                    order_id: e.order_id.clone(),
                    reason: "order rejected".into(),
                })
                .await
            }
            Event::OrderShipped(e) => {
                self.each_product(envelope, &e.order_id, || ProductCommand::Commit {
                    order_id: e.order_id.clone(),
                })
                .await
            }
            Event::InventoryStockReserved(e) => self.heal(envelope, &e.order_id, &e.sku).await,
            _ => Ok(Outcome::Ignored),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The threshold defaults to 5, is read when set, and a value past
    /// `u32::MAX` is an error naming the variable, not a silent clamp.
    #[test]
    fn settings_from_the_environment() {
        let none = Config::from_pairs(Vec::<(String, String)>::new());
        assert_eq!(Settings::from_config(&none), Ok(Settings::default()));
        assert_eq!(Settings::default().low_stock_threshold, 5);
        assert!(none.read_names().contains("LOW_STOCK_THRESHOLD"));

        let set = Config::from_pairs([("LOW_STOCK_THRESHOLD", "12"), ("SNAPSHOT_EVERY", "7")]);
        let settings = Settings::from_config(&set).expect("settings");
        assert_eq!(settings.low_stock_threshold, 12);
        assert_eq!(settings.globals.snapshot_every, 7);

        for bad in ["4294967296", "-1", "five"] {
            let config = Config::from_pairs([("LOW_STOCK_THRESHOLD", bad)]);
            assert!(
                matches!(
                    Settings::from_config(&config),
                    Err(ConfigError::Invalid {
                        name: "LOW_STOCK_THRESHOLD",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }
}
