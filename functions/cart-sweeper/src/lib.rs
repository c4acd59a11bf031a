//! # storefront-cart-sweeper
//!
//! Runs on a schedule (an EventBridge schedule in AWS, a timer locally):
//! - carts with lines and no activity for longer than the idle limit get
//!   `cart.abandoned`, once (the cart decider refuses a second one until the
//!   cart changes again);
//! - confirmed orders left unpaid past the payment timeout are cancelled
//!   (`order.cancelled`, reason "payment expired"), which makes the inventory
//!   handler release their stock.
//!
//! It reads the indexes the cart and order-workflow handlers keep, but
//! decides on the aggregates as the store has them: an index may lag, the
//! store does not.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use storefront_domain::cart::{CartCommand, CartState};
use storefront_domain::order::{OrderCommand, OrderState, OrderStatus};
use storefront_domain::{Aggregate, EventMeta, StreamId, seal_batch};
use storefront_runtime::handler::{MAX_ATTEMPTS, load, stream_of};
use storefront_runtime::{Config, ConfigError, HandlerError, Stores};
use storefront_store::StoreError;
use storefront_store::clock::{new_event_id, now_rfc3339};

/// The handler's name.
pub const NAME: &str = "cart-sweeper";
/// Partition of the cart activity index (written by the cart handler).
pub const ACTIVITY: &str = "activity#carts";
/// Partition of the awaiting-payment index (written by the order workflow).
pub const AWAITING_PAYMENT: &str = "awaiting-payment";

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    /// Carts that got `cart.abandoned`.
    pub carts_abandoned: u32,
    /// Orders cancelled for want of payment.
    pub orders_expired: u32,
}

/// The sweeper.
#[derive(Clone)]
pub struct Sweeper {
    stores: Stores,
    cart_idle: Duration,
    payment_timeout: Duration,
}

fn epoch_of(rfc3339: &str) -> Option<u64> {
    humantime::parse_rfc3339(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}

fn meta(sweep_id: &str) -> EventMeta {
    EventMeta {
        event_id: new_event_id(),
        occurred_at: now_rfc3339(),
        correlation_id: sweep_id.to_owned(),
        causation_id: None,
        actor: format!("system:{NAME}"),
    }
}

impl Sweeper {
    /// A sweeper abandoning carts idle longer than `cart_idle` and expiring payments after `payment_timeout`.
    pub fn new(stores: Stores, cart_idle: Duration, payment_timeout: Duration) -> Self {
        Sweeper {
            stores,
            cart_idle,
            payment_timeout,
        }
    }

    /// From the function's environment: `CART_IDLE_MINUTES` (default 60), `PAYMENT_TIMEOUT_MINUTES` (default 30).
    pub fn from_config(
        config: &Config,
        sdk: &storefront_runtime::aws::SdkConfig,
    ) -> Result<Self, ConfigError> {
        Ok(Sweeper::new(
            storefront_runtime::lambda::dynamo_stores(config, sdk)?,
            Duration::from_secs(config.number("CART_IDLE_MINUTES", 60)? * 60),
            Duration::from_secs(config.number("PAYMENT_TIMEOUT_MINUTES", 30)? * 60),
        ))
    }

    /// One sweep at `now` (seconds since the epoch).
    pub async fn sweep(&self, now: u64) -> Result<SweepReport, HandlerError> {
        let sweep_id = format!("sweep-{}", new_event_id());
        let mut report = SweepReport::default();
        let cart_cutoff = now.saturating_sub(self.cart_idle.as_secs());
        for item in self.stores.state.query(ACTIVITY).await? {
            let units = item.value["units"].as_u64().unwrap_or(0);
            let last = item.value["lastActivityAt"].as_str().and_then(epoch_of);
            if units == 0 || last.is_none_or(|t| t > cart_cutoff) {
                continue;
            }
            if self.abandon(&item.sk, cart_cutoff, &sweep_id).await? {
                report.carts_abandoned += 1;
            }
        }
        let pay_cutoff = now.saturating_sub(self.payment_timeout.as_secs());
        for item in self.stores.state.query(AWAITING_PAYMENT).await? {
            let confirmed = item.value["confirmedAt"].as_str().and_then(epoch_of);
            match self
                .expire(&item.sk, confirmed, pay_cutoff, &sweep_id)
                .await?
            {
                Expiry::Expired => report.orders_expired += 1,
                Expiry::NotDue => {}
                Expiry::Gone => self.stores.state.delete(AWAITING_PAYMENT, &item.sk).await?,
            }
        }
        metrics::counter!("CartsAbandoned").increment(u64::from(report.carts_abandoned));
        metrics::counter!("PaymentsExpired").increment(u64::from(report.orders_expired));
        Ok(report)
    }

    /// Abandons one cart if the store agrees it is idle; true if it did.
    async fn abandon(
        &self,
        user_id: &str,
        cutoff: u64,
        sweep_id: &str,
    ) -> Result<bool, HandlerError> {
        let stream = stream_of("cart", user_id)?;
        for _ in 0..MAX_ATTEMPTS {
            let cart = load::<CartState>(&self.stores, &stream).await?;
            if cart.version == 0 {
                return Ok(false);
            }
            // The last event in the store, not the index, says when the cart last changed.
            let last = self.stores.events.load(&stream, cart.version - 1).await?;
            let Some(last) = last.last() else {
                return Ok(false);
            };
            if epoch_of(&last.occurred_at).is_none_or(|t| t > cutoff) {
                return Ok(false);
            }
            let events = cart
                .state
                .decide(&CartCommand::Abandon {
                    last_activity_at: last.occurred_at.clone(),
                })
                .map_err(|e| HandlerError::Permanent(e.to_string()))?;
            if events.is_empty() {
                return Ok(false);
            }
            if self
                .append(&stream, cart.version, &events, sweep_id)
                .await?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn expire(
        &self,
        order_id: &str,
        confirmed_at: Option<u64>,
        cutoff: u64,
        sweep_id: &str,
    ) -> Result<Expiry, HandlerError> {
        let stream = stream_of("order", order_id)?;
        for _ in 0..MAX_ATTEMPTS {
            let order = load::<OrderState>(&self.stores, &stream).await?;
            if order.state.status != Some(OrderStatus::Confirmed) {
                return Ok(Expiry::Gone);
            }
            if confirmed_at.is_none_or(|t| t > cutoff) {
                return Ok(Expiry::NotDue);
            }
            let events = order
                .state
                .decide(&OrderCommand::Cancel {
                    reason: "payment expired".into(),
                    by: format!("system:{NAME}"),
                })
                .map_err(|e| HandlerError::Permanent(e.to_string()))?;
            if self
                .append(&stream, order.version, &events, sweep_id)
                .await?
            {
                self.stores.state.delete(AWAITING_PAYMENT, order_id).await?;
                return Ok(Expiry::Expired);
            }
        }
        Ok(Expiry::NotDue)
    }

    /// Appends; false on a lost race (the caller reloads).
    async fn append(
        &self,
        stream: &StreamId,
        version: u64,
        events: &[storefront_domain::Event],
        sweep_id: &str,
    ) -> Result<bool, HandlerError> {
        let sealed = seal_batch(stream, version, events, |_| meta(sweep_id));
        match self.stores.events.append(stream, version, sealed).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

enum Expiry {
    Expired,
    NotDue,
    Gone,
}
