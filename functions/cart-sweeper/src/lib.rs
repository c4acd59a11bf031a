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
use storefront_domain::{Aggregate, EventMeta};
use storefront_runtime::handler::{load, stream_of};
use storefront_runtime::{Config, ConfigError, Globals, HandlerError, Stores};
use storefront_store::clock::{new_event_id, now_rfc3339};
use storefront_store::pipeline::{self, Change, Command, Outcome as PipelineOutcome, Plan};

/// The handler's name.
pub const NAME: &str = "cart-sweeper";
use storefront_store::keys::{AWAITING_PAYMENT, CART_ACTIVITY as ACTIVITY};

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    /// Carts that got `cart.abandoned`.
    pub carts_abandoned: u32,
    /// Orders cancelled for want of payment.
    pub orders_expired: u32,
}

/// `CART_IDLE_MINUTES` when unset: a cart idle for an hour is abandoned.
pub const DEFAULT_CART_IDLE_MINUTES: u64 = 60;
/// `PAYMENT_TIMEOUT_MINUTES` when unset: a confirmed order unpaid for half an hour is cancelled.
pub const DEFAULT_PAYMENT_TIMEOUT_MINUTES: u64 = 30;

/// Everything the cart-sweeper function reads from its environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// What every function gets (`SNAPSHOT_EVERY`, the log level and format).
    pub globals: Globals,
    /// `CART_IDLE_MINUTES`: carts with lines and no activity for longer get
    /// `cart.abandoned` (default [`DEFAULT_CART_IDLE_MINUTES`] minutes).
    pub cart_idle: Duration,
    /// `PAYMENT_TIMEOUT_MINUTES`: confirmed orders unpaid for longer are
    /// cancelled (default [`DEFAULT_PAYMENT_TIMEOUT_MINUTES`] minutes).
    pub payment_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            globals: Globals::default(),
            cart_idle: Duration::from_secs(DEFAULT_CART_IDLE_MINUTES * 60),
            payment_timeout: Duration::from_secs(DEFAULT_PAYMENT_TIMEOUT_MINUTES * 60),
        }
    }
}

impl Settings {
    /// Reads the globals, `CART_IDLE_MINUTES` and `PAYMENT_TIMEOUT_MINUTES`.
    pub fn from_config(config: &Config) -> Result<Settings, ConfigError> {
        Ok(Settings {
            globals: Globals::from_config(config)?,
            cart_idle: minutes(config, "CART_IDLE_MINUTES", DEFAULT_CART_IDLE_MINUTES)?,
            payment_timeout: minutes(
                config,
                "PAYMENT_TIMEOUT_MINUTES",
                DEFAULT_PAYMENT_TIMEOUT_MINUTES,
            )?,
        })
    }
}

/// A whole number of minutes as a duration; one too large to count in
/// seconds is an error rather than an overflow.
fn minutes(config: &Config, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    let m = config.number(name, default)?;
    m.checked_mul(60)
        .map(Duration::from_secs)
        .ok_or_else(|| ConfigError::Invalid {
            name,
            value: m.to_string(),
            expected: "a whole number of minutes that fits in seconds",
        })
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
    /// A sweeper on these stores, with the function's settings: carts idle
    /// longer than `settings.cart_idle` are abandoned, confirmed orders
    /// unpaid after `settings.payment_timeout` are cancelled.
    pub fn new(stores: Stores, settings: &Settings) -> Self {
        Sweeper {
            stores: stores.with_snapshot_every(settings.globals.snapshot_every),
            cart_idle: settings.cart_idle,
            payment_timeout: settings.payment_timeout,
        }
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

    /// Runs one decision through the store's command pipeline, its events
    /// stamped as this sweep's; a decision that keeps losing its race gives
    /// way (`None`), and the next sweep tries again.
    async fn decide<T, F, Fut>(
        &self,
        sweep_id: &str,
        seed: &str,
        attempt: F,
    ) -> Result<Option<(T, bool)>, HandlerError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Plan<T>, HandlerError>>,
    {
        let command = Command {
            events: &*self.stores.events,
            state: &*self.stores.state,
            meta: &|| meta(sweep_id),
            idempotency: None,
            snapshot_every: 0,
            seed,
        };
        Ok(match pipeline::execute(&command, attempt).await? {
            PipelineOutcome::Committed(answer) => Some((answer, true)),
            PipelineOutcome::Unchanged(answer) => Some((answer, false)),
            PipelineOutcome::Duplicate | PipelineOutcome::Contended { .. } => None,
        })
    }

    /// Abandons one cart if the store agrees it is idle; true if it did.
    async fn abandon(
        &self,
        user_id: &str,
        cutoff: u64,
        sweep_id: &str,
    ) -> Result<bool, HandlerError> {
        let stream = stream_of("cart", user_id)?;
        let nothing = || Plan {
            changes: vec![],
            state: vec![],
            answer: (),
        };
        let decided = self
            .decide(sweep_id, &stream.to_string(), || async {
                let cart = load::<CartState>(&self.stores, &stream).await?;
                if cart.version == 0 {
                    return Ok(nothing());
                }
                // The last event in the store, not the index, says when the cart last changed.
                let last = self.stores.events.load(&stream, cart.version - 1).await?;
                let Some(last) = last.last() else {
                    return Ok(nothing());
                };
                if epoch_of(&last.occurred_at).is_none_or(|t| t > cutoff) {
                    return Ok(nothing());
                }
                let events = cart
                    .state
                    .decide(&CartCommand::Abandon {
                        last_activity_at: last.occurred_at.clone(),
                    })
                    .map_err(|e| HandlerError::Permanent(e.to_string()))?;
                Ok(Plan {
                    changes: vec![Change {
                        stream: stream.clone(),
                        expected_version: cart.version,
                        events,
                        snapshot: None,
                    }],
                    state: vec![],
                    answer: (),
                })
            })
            .await?;
        Ok(decided.is_some_and(|(_, appended)| appended))
    }

    async fn expire(
        &self,
        order_id: &str,
        confirmed_at: Option<u64>,
        cutoff: u64,
        sweep_id: &str,
    ) -> Result<Expiry, HandlerError> {
        let stream = stream_of("order", order_id)?;
        let answer = |expiry| Plan {
            changes: vec![],
            state: vec![],
            answer: expiry,
        };
        let decided = self
            .decide(sweep_id, &stream.to_string(), || async {
                let order = load::<OrderState>(&self.stores, &stream).await?;
                if order.state.status != Some(OrderStatus::Confirmed) {
                    return Ok(answer(Expiry::Gone));
                }
                if confirmed_at.is_none_or(|t| t > cutoff) {
                    return Ok(answer(Expiry::NotDue));
                }
                let events = order
                    .state
                    .decide(&OrderCommand::Cancel {
                        reason: "payment expired".into(),
                        by: format!("system:{NAME}"),
                    })
                    .map_err(|e| HandlerError::Permanent(e.to_string()))?;
                Ok(Plan {
                    changes: vec![Change {
                        stream: stream.clone(),
                        expected_version: order.version,
                        events,
                        snapshot: None,
                    }],
                    state: vec![],
                    answer: Expiry::Expired,
                })
            })
            .await?;
        Ok(match decided {
            Some((Expiry::Expired, true)) => {
                self.stores.state.delete(AWAITING_PAYMENT, order_id).await?;
                Expiry::Expired
            }
            // Cancelling decided nothing: the order is past cancelling.
            Some((Expiry::Expired, false)) => Expiry::Gone,
            Some((expiry, _)) => expiry,
            None => Expiry::NotDue,
        })
    }
}

enum Expiry {
    Expired,
    NotDue,
    Gone,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limits default to 60 and 30 minutes, are read in minutes when
    /// set, and a malformed value is an error naming its variable.
    #[test]
    fn settings_from_the_environment() {
        let none = Config::from_pairs(Vec::<(String, String)>::new());
        let defaults = Settings::from_config(&none).expect("settings");
        assert_eq!(defaults, Settings::default());
        assert_eq!(defaults.cart_idle, Duration::from_secs(3600));
        assert_eq!(defaults.payment_timeout, Duration::from_secs(1800));

        let set =
            Config::from_pairs([("CART_IDLE_MINUTES", "1"), ("PAYMENT_TIMEOUT_MINUTES", "2")]);
        let settings = Settings::from_config(&set).expect("settings");
        assert_eq!(settings.cart_idle, Duration::from_secs(60));
        assert_eq!(settings.payment_timeout, Duration::from_secs(120));

        for (name, bad) in [
            ("CART_IDLE_MINUTES", "an hour"),
            ("PAYMENT_TIMEOUT_MINUTES", "18446744073709551615"),
        ] {
            let config = Config::from_pairs([(name, bad)]);
            assert!(
                matches!(Settings::from_config(&config), Err(ConfigError::Invalid { name: n, .. }) if n == name),
                "{name}={bad}"
            );
        }
    }
}
