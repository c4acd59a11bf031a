//! # storefront-cart-sweeper
//!
//! Runs on a schedule (an EventBridge schedule in AWS, a timer locally) and
//! enforces every deadline of the shop, so nothing waits for ever:
//! - an order still `pending` past its confirmation deadline (its
//!   reservation went to a DLQ, say) is rejected (`order.rejected`, with the
//!   reason), which makes the inventory handler release whatever it holds and
//!   the notification handler tell the shopper;
//! - a confirmed order left unpaid past the payment deadline is cancelled
//!   (`order.cancelled`, reason "payment expired"), which releases its stock;
//! - a cart with lines and no activity for longer than the idle limit gets
//!   `cart.abandoned`, once, and leaves the activity index.
//!
//! It reads the indexes the API (`awaiting-confirmation`), the
//! order-workflow (`awaiting-payment`) and the cart handler
//! (`activity#carts`) keep, a page at a time, and decides on the aggregates
//! as the store has them: an index may lag, the store does not. An index item
//! whose aggregate has moved on (paid, confirmed, emptied, abandoned) is
//! removed when seen.
//!
//! A sweep works within a time budget: when it runs out, it records where it
//! stopped in each index (`sweep-cursors`) and the next sweep resumes there;
//! each index gets at least one item per sweep, the order indexes first. One
//! item that fails (an undecodable event, a store error) is logged, counted
//! (`SweepItemFailures`) and skipped; the rest of the sweep goes on.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::Serialize;
use storefront_domain::cart::{CartCommand, CartState};
use storefront_domain::order::{OrderCommand, OrderState, OrderStatus};
use storefront_domain::{Aggregate, EventMeta};
use storefront_runtime::handler::{load, stream_of};
use storefront_runtime::{Config, ConfigError, Globals, HandlerError, Stores};
use storefront_store::clock::{new_event_id, now_rfc3339};
use storefront_store::keys::{
    AWAITING_CONFIRMATION, AWAITING_PAYMENT, CART_ACTIVITY, SWEEP_CURSORS,
};
use storefront_store::pipeline::{self, Change, Command, Outcome as PipelineOutcome, Plan};
use storefront_store::{Condition, StateItem, StateWrite};

/// The handler's name.
pub const NAME: &str = "cart-sweeper";

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    /// Pending orders rejected past their confirmation deadline.
    pub orders_rejected: u32,
    /// Confirmed orders cancelled for want of payment.
    pub orders_expired: u32,
    /// Carts that got `cart.abandoned`.
    pub carts_abandoned: u32,
    /// Index items that failed (logged and skipped; the next sweep tries again).
    pub failures: u32,
    /// Whether the sweep ran out of time and left a cursor to resume from.
    pub stopped_early: bool,
}

/// `CART_IDLE_MINUTES` when unset: a cart idle for an hour is abandoned.
pub const DEFAULT_CART_IDLE_MINUTES: u64 = 60;
/// `PAYMENT_TIMEOUT_MINUTES` when unset: a confirmed order unpaid for half an hour is cancelled.
pub const DEFAULT_PAYMENT_TIMEOUT_MINUTES: u64 = 30;
/// `CONFIRMATION_TIMEOUT_MINUTES` when unset: an order still pending two
/// minutes after checkout is rejected.
pub const DEFAULT_CONFIRMATION_TIMEOUT_MINUTES: u64 = 2;
/// `SWEEP_BUDGET_SECONDS` when unset: a sweep stops starting new work after
/// 40 s (the function's timeout is 60 s; on Lambda the invocation's own
/// deadline, less a margin, caps it too).
pub const DEFAULT_SWEEP_BUDGET_SECONDS: u64 = 40;
/// `SWEEP_PAGE_SIZE` when unset: index items read per query.
pub const DEFAULT_SWEEP_PAGE_SIZE: u64 = 100;

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
    /// `CONFIRMATION_TIMEOUT_MINUTES`: orders still pending this long after
    /// checkout are rejected (default [`DEFAULT_CONFIRMATION_TIMEOUT_MINUTES`]).
    pub confirmation_timeout: Duration,
    /// `SWEEP_BUDGET_SECONDS`: how long one sweep may keep starting new
    /// items (default [`DEFAULT_SWEEP_BUDGET_SECONDS`]).
    pub budget: Duration,
    /// `SWEEP_PAGE_SIZE`: index items per query (default [`DEFAULT_SWEEP_PAGE_SIZE`]).
    pub page_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            globals: Globals::default(),
            cart_idle: Duration::from_secs(DEFAULT_CART_IDLE_MINUTES * 60),
            payment_timeout: Duration::from_secs(DEFAULT_PAYMENT_TIMEOUT_MINUTES * 60),
            confirmation_timeout: Duration::from_secs(DEFAULT_CONFIRMATION_TIMEOUT_MINUTES * 60),
            budget: Duration::from_secs(DEFAULT_SWEEP_BUDGET_SECONDS),
            page_size: DEFAULT_SWEEP_PAGE_SIZE as usize,
        }
    }
}

impl Settings {
    /// Reads the globals and the sweeper's limits (see the fields).
    pub fn from_config(config: &Config) -> Result<Settings, ConfigError> {
        let page_size = config.number("SWEEP_PAGE_SIZE", DEFAULT_SWEEP_PAGE_SIZE)?;
        if !(1..=1000).contains(&page_size) {
            return Err(ConfigError::Invalid {
                name: "SWEEP_PAGE_SIZE",
                value: page_size.to_string(),
                expected: "a whole number from 1 to 1000",
            });
        }
        Ok(Settings {
            globals: Globals::from_config(config)?,
            cart_idle: minutes(config, "CART_IDLE_MINUTES", DEFAULT_CART_IDLE_MINUTES)?,
            payment_timeout: minutes(
                config,
                "PAYMENT_TIMEOUT_MINUTES",
                DEFAULT_PAYMENT_TIMEOUT_MINUTES,
            )?,
            confirmation_timeout: minutes(
                config,
                "CONFIRMATION_TIMEOUT_MINUTES",
                DEFAULT_CONFIRMATION_TIMEOUT_MINUTES,
            )?,
            budget: Duration::from_secs(
                config.number("SWEEP_BUDGET_SECONDS", DEFAULT_SWEEP_BUDGET_SECONDS)?,
            ),
            page_size: page_size as usize,
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
    settings: Settings,
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

/// The indexes a sweep walks, in this order: the order deadlines first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Index {
    Confirmation,
    Payment,
    Carts,
}

impl Index {
    const ALL: [Index; 3] = [Index::Confirmation, Index::Payment, Index::Carts];

    fn pk(self) -> &'static str {
        match self {
            Index::Confirmation => AWAITING_CONFIRMATION,
            Index::Payment => AWAITING_PAYMENT,
            Index::Carts => CART_ACTIVITY,
        }
    }
}

/// What became of one index item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    /// Its deadline has not passed (or a racing writer got there first).
    NotDue,
    /// The deadline passed and the aggregate got its event.
    Acted,
    /// The aggregate has moved on: the item was removed from the index.
    Removed,
}

/// The cut-offs of one sweep, in seconds since the epoch.
struct Cutoffs {
    confirmation: u64,
    payment: u64,
    cart: u64,
}

impl Sweeper {
    /// A sweeper on these stores, with the function's settings.
    pub fn new(stores: Stores, settings: &Settings) -> Self {
        Sweeper {
            stores: stores.with_snapshot_every(settings.globals.snapshot_every),
            settings: settings.clone(),
        }
    }

    /// One sweep at `now` (seconds since the epoch), within the configured budget.
    pub async fn sweep(&self, now: u64) -> Result<SweepReport, HandlerError> {
        self.sweep_within(now, self.settings.budget).await
    }

    /// One sweep at `now` that starts no new item after `budget` (the
    /// configured one, or less: what an invocation has left), except the
    /// first item of each index, so every index moves on every sweep.
    pub async fn sweep_within(
        &self,
        now: u64,
        budget: Duration,
    ) -> Result<SweepReport, HandlerError> {
        let started = Instant::now();
        let budget = budget.min(self.settings.budget);
        let sweep_id = format!("sweep-{}", new_event_id());
        let cutoffs = Cutoffs {
            confirmation: now.saturating_sub(self.settings.confirmation_timeout.as_secs()),
            payment: now.saturating_sub(self.settings.payment_timeout.as_secs()),
            cart: now.saturating_sub(self.settings.cart_idle.as_secs()),
        };
        let mut report = SweepReport::default();
        for index in Index::ALL {
            let resumed_from = self.cursor(index).await?;
            let mut after = resumed_from.clone();
            let mut first = true;
            'pages: loop {
                let page = self
                    .stores
                    .state
                    .query_page(index.pk(), after.as_deref(), self.settings.page_size)
                    .await?;
                for item in &page.items {
                    if !first && started.elapsed() >= budget {
                        self.save_cursor(index, after.as_deref()).await?;
                        report.stopped_early = true;
                        break 'pages;
                    }
                    first = false;
                    match self.one(index, item, &cutoffs, &sweep_id).await {
                        Ok(Done::Acted) => match index {
                            Index::Confirmation => report.orders_rejected += 1,
                            Index::Payment => report.orders_expired += 1,
                            Index::Carts => report.carts_abandoned += 1,
                        },
                        Ok(Done::NotDue | Done::Removed) => {}
                        Err(error) => {
                            tracing::warn!(
                                index = index.pk(),
                                key = %item.sk,
                                error = %error,
                                "sweep item failed; skipped, the next sweep tries it again"
                            );
                            metrics::counter!("SweepItemFailures").increment(1);
                            report.failures += 1;
                        }
                    }
                    after = Some(item.sk.clone());
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => {
                        if resumed_from.is_some() {
                            self.save_cursor(index, None).await?;
                        }
                        break;
                    }
                }
            }
        }
        metrics::counter!("OrdersTimedOut").increment(u64::from(report.orders_rejected));
        metrics::counter!("PaymentsExpired").increment(u64::from(report.orders_expired));
        metrics::counter!("CartsAbandoned").increment(u64::from(report.carts_abandoned));
        Ok(report)
    }

    /// Where the last sweep stopped in `index`, if it ran out of time there.
    async fn cursor(&self, index: Index) -> Result<Option<String>, HandlerError> {
        Ok(self
            .stores
            .state
            .get(SWEEP_CURSORS, index.pk())
            .await?
            .and_then(|item| item.value["after"].as_str().map(str::to_owned)))
    }

    /// Records where to resume in `index` (`None`: from the start).
    async fn save_cursor(&self, index: Index, after: Option<&str>) -> Result<(), HandlerError> {
        match after {
            Some(after) => {
                self.stores
                    .state
                    .put(StateWrite {
                        item: StateItem {
                            pk: SWEEP_CURSORS.into(),
                            sk: index.pk().into(),
                            version: 1,
                            value: serde_json::json!({ "after": after }),
                            expires_at: None,
                        },
                        condition: Condition::Always,
                    })
                    .await?
            }
            None => self.stores.state.delete(SWEEP_CURSORS, index.pk()).await?,
        }
        Ok(())
    }

    /// Sees to one index item.
    async fn one(
        &self,
        index: Index,
        item: &StateItem,
        cutoffs: &Cutoffs,
        sweep_id: &str,
    ) -> Result<Done, HandlerError> {
        let since = |field: &str| item.value[field].as_str().and_then(epoch_of);
        match index {
            Index::Confirmation => {
                if since("placedAt").is_some_and(|t| t > cutoffs.confirmation) {
                    return Ok(Done::NotDue);
                }
                let done = self.reject_pending(&item.sk, sweep_id).await?;
                if done != Done::NotDue {
                    self.stores
                        .state
                        .delete(AWAITING_CONFIRMATION, &item.sk)
                        .await?;
                }
                Ok(done)
            }
            Index::Payment => {
                if since("confirmedAt").is_none_or(|t| t > cutoffs.payment) {
                    return Ok(Done::NotDue);
                }
                let done = self.expire(&item.sk, sweep_id).await?;
                if done != Done::NotDue {
                    self.stores.state.delete(AWAITING_PAYMENT, &item.sk).await?;
                }
                Ok(done)
            }
            Index::Carts => {
                let units = item.value["units"].as_u64().unwrap_or(0);
                let done = if units == 0 {
                    // Emptied (checked out, cleared): nothing to abandon.
                    Done::Removed
                } else if since("lastActivityAt").is_none_or(|t| t > cutoffs.cart) {
                    return Ok(Done::NotDue);
                } else {
                    self.abandon(&item.sk, cutoffs.cart, sweep_id).await?
                };
                if done != Done::NotDue {
                    // Only the version seen: if the cart changed since, the
                    // cart handler has rewritten the item, and it stays.
                    self.stores
                        .state
                        .delete_version(CART_ACTIVITY, &item.sk, item.version)
                        .await?;
                }
                Ok(done)
            }
        }
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

    /// Decides `command` on the order if it is in `status`: `Acted` when
    /// that appended its events, `Removed` when the order is in another
    /// status (or does not exist), `NotDue` when a racing writer won.
    async fn on_order(
        &self,
        order_id: &str,
        status: OrderStatus,
        command: OrderCommand,
        sweep_id: &str,
    ) -> Result<Done, HandlerError> {
        let stream = stream_of("order", order_id)?;
        let decided = self
            .decide(sweep_id, &stream.to_string(), || async {
                let order = load::<OrderState>(&self.stores, &stream).await?;
                if order.state.status != Some(status) {
                    return Ok(nothing(Done::Removed));
                }
                let events = order
                    .state
                    .decide(&command)
                    .map_err(|e| HandlerError::Permanent(e.to_string()))?;
                Ok(Plan {
                    changes: vec![Change {
                        stream: stream.clone(),
                        expected_version: order.version,
                        events,
                        snapshot: None,
                    }],
                    state: vec![],
                    answer: Done::Acted,
                })
            })
            .await?;
        Ok(match decided {
            Some((Done::Acted, true)) => Done::Acted,
            // The command decided nothing: the order is past it.
            Some((Done::Acted, false)) => Done::Removed,
            Some((done, _)) => done,
            None => Done::NotDue,
        })
    }

    /// Rejects an order still pending past its confirmation deadline.
    async fn reject_pending(&self, order_id: &str, sweep_id: &str) -> Result<Done, HandlerError> {
        let minutes = self.settings.confirmation_timeout.as_secs() / 60;
        let reason = format!(
            "not confirmed within {minutes} minute{} of checkout: its stock reservation never came back",
            if minutes == 1 { "" } else { "s" }
        );
        self.on_order(
            order_id,
            OrderStatus::Pending,
            OrderCommand::Reject { reason },
            sweep_id,
        )
        .await
    }

    /// Cancels a confirmed order whose payment never came.
    async fn expire(&self, order_id: &str, sweep_id: &str) -> Result<Done, HandlerError> {
        self.on_order(
            order_id,
            OrderStatus::Confirmed,
            OrderCommand::Cancel {
                reason: "payment expired".into(),
                by: format!("system:{NAME}"),
            },
            sweep_id,
        )
        .await
    }

    /// Abandons one cart if the store agrees it is idle.
    async fn abandon(
        &self,
        user_id: &str,
        cutoff: u64,
        sweep_id: &str,
    ) -> Result<Done, HandlerError> {
        let stream = stream_of("cart", user_id)?;
        let decided = self
            .decide(sweep_id, &stream.to_string(), || async {
                let cart = load::<CartState>(&self.stores, &stream).await?;
                if cart.version == 0 {
                    return Ok(nothing(Done::Removed));
                }
                // The last event in the store, not the index, says when the cart last changed.
                let last = self.stores.events.load(&stream, cart.version - 1).await?;
                let Some(last) = last.last() else {
                    return Ok(nothing(Done::Removed));
                };
                if epoch_of(&last.occurred_at).is_none_or(|t| t > cutoff) {
                    return Ok(nothing(Done::NotDue));
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
                    answer: Done::Acted,
                })
            })
            .await?;
        Ok(match decided {
            Some((Done::Acted, true)) => Done::Acted,
            // Empty or already abandoned: nothing left to sweep.
            Some((Done::Acted, false)) => Done::Removed,
            Some((done, _)) => done,
            None => Done::NotDue,
        })
    }
}

/// A decision that appends nothing.
fn nothing(answer: Done) -> Plan<Done> {
    Plan {
        changes: vec![],
        state: vec![],
        answer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limits default to 60, 30 and 2 minutes, a 40 s budget and pages
    /// of 100; they are read when set, and a malformed value is an error
    /// naming its variable.
    #[test]
    fn settings_from_the_environment() {
        let none = Config::from_pairs(Vec::<(String, String)>::new());
        let defaults = Settings::from_config(&none).expect("settings");
        assert_eq!(defaults, Settings::default());
        assert_eq!(defaults.cart_idle, Duration::from_secs(3600));
        assert_eq!(defaults.payment_timeout, Duration::from_secs(1800));
        assert_eq!(defaults.confirmation_timeout, Duration::from_secs(120));
        assert_eq!(defaults.budget, Duration::from_secs(40));
        assert_eq!(defaults.page_size, 100);

        let set = Config::from_pairs([
            ("CART_IDLE_MINUTES", "1"),
            ("PAYMENT_TIMEOUT_MINUTES", "2"),
            ("CONFIRMATION_TIMEOUT_MINUTES", "3"),
            ("SWEEP_BUDGET_SECONDS", "5"),
            ("SWEEP_PAGE_SIZE", "25"),
        ]);
        let settings = Settings::from_config(&set).expect("settings");
        assert_eq!(settings.cart_idle, Duration::from_secs(60));
        assert_eq!(settings.payment_timeout, Duration::from_secs(120));
        assert_eq!(settings.confirmation_timeout, Duration::from_secs(180));
        assert_eq!(settings.budget, Duration::from_secs(5));
        assert_eq!(settings.page_size, 25);

        for (name, bad) in [
            ("CART_IDLE_MINUTES", "an hour"),
            ("PAYMENT_TIMEOUT_MINUTES", "18446744073709551615"),
            ("CONFIRMATION_TIMEOUT_MINUTES", "-1"),
            ("SWEEP_BUDGET_SECONDS", "soon"),
            ("SWEEP_PAGE_SIZE", "0"),
            ("SWEEP_PAGE_SIZE", "5000"),
        ] {
            let config = Config::from_pairs([(name, bad)]);
            assert!(
                matches!(Settings::from_config(&config), Err(ConfigError::Invalid { name: n, .. }) if n == name),
                "{name}={bad}"
            );
        }
    }
}
