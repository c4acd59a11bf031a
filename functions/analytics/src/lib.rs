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
//! summed when the API is asked for them (`storefront_api::stats`). An admin endpoint reads a few
//! thousand small items comfortably; a shop beyond that would add a periodic
//! roll-up, noted in ARCHITECTURE.md.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::BTreeSet;

use async_trait::async_trait;
use storefront_domain::cart::CartState;
use storefront_domain::order::OrderState;
use storefront_domain::{EventEnvelope, EventType};
use storefront_runtime::handler::{consumed_stream, project};
use storefront_runtime::{EventHandler, Globals, HandlerError, Outcome, Projection, Stores};

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

use storefront_store::keys::{ANALYTICS_CARTS as CARTS, ANALYTICS_ORDERS as ORDERS};

/// Everything the function reads from its environment: only what every
/// function gets (`SNAPSHOT_EVERY`, the log level and format).
pub type Settings = Globals;

/// The analytics handler.
#[derive(Clone)]
pub struct Analytics {
    stores: Stores,
}

impl Analytics {
    /// A handler on these stores, with the function's settings.
    pub fn new(stores: Stores, settings: &Settings) -> Self {
        Analytics {
            stores: stores.with_snapshot_every(settings.snapshot_every),
        }
    }
}

#[async_trait]
impl EventHandler for Analytics {
    fn name(&self) -> &'static str {
        NAME
    }

    fn projection(&self) -> Option<&dyn Projection> {
        Some(self)
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

#[async_trait]
impl Projection for Analytics {
    /// Every per-order and per-cart item.
    async fn reset(&self, _streams: &BTreeSet<String>) -> Result<(), HandlerError> {
        for pk in [ORDERS, CARTS] {
            for item in self.stores.state.query(pk).await? {
                self.stores.state.delete(pk, &item.sk).await?;
            }
        }
        Ok(())
    }
}
