//! # storefront-order-workflow
//!
//! The order saga. It turns the inventory's outcome into the order's:
//! `inventory.stock.reserved` → `order.confirmed`,
//! `inventory.reservation.failed` → `order.rejected`; then
//! `order.paid` → `order.fulfillment.requested`, and, as compensation,
//! `order.cancelled` of a paid order → `order.refunded` (the inventory
//! handler gives the stock back on the same cancellation).
//!
//! It is idempotent under redelivery (its record rides in the same atomic
//! append as its events) and under out-of-order arrival: it decides on the
//! order as the store has it now, and the order decider treats a repeated
//! outcome as a no-op and a late one (confirming a cancelled order) as
//! nothing to do.
//!
//! A confirmed order also gets an `awaiting-payment` index item, which the
//! sweeper reads to cancel orders whose payment never came, and leaves the
//! `awaiting-confirmation` index the API put it in at checkout (the sweeper
//! rejects an order still pending past its confirmation deadline).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use async_trait::async_trait;
use storefront_domain::order::{OrderCommand, OrderState};
use storefront_domain::{Aggregate, DomainError, Event, EventEnvelope, EventType, OrderId};
use storefront_runtime::handler::{Decision, append_once, decode, load, stream_of};
use storefront_runtime::{EventHandler, Globals, HandlerError, Outcome, Stores};
use storefront_store::{Condition, StateItem, StateWrite};

/// The handler's name.
pub const NAME: &str = "order-workflow";

/// The event types this handler consumes.
pub const CONSUMES: &[EventType] = &[
    EventType::InventoryStockReserved,
    EventType::InventoryReservationFailed,
    EventType::OrderConfirmed,
    EventType::OrderPaid,
    EventType::OrderCancelled,
];

use storefront_store::keys::{AWAITING_CONFIRMATION, AWAITING_PAYMENT};

/// Everything the function reads from its environment: only what every
/// function gets (`SNAPSHOT_EVERY`, the log level and format).
pub type Settings = Globals;

/// The saga.
#[derive(Clone)]
pub struct OrderWorkflow {
    stores: Stores,
}

impl OrderWorkflow {
    /// A saga on these stores, with the function's settings.
    pub fn new(stores: Stores, settings: &Settings) -> Self {
        OrderWorkflow {
            stores: stores.with_snapshot_every(settings.snapshot_every),
        }
    }

    /// Decides `command` on the order and appends the result, once.
    async fn on_order(
        &self,
        cause: &EventEnvelope,
        order_id: &OrderId,
        command: OrderCommand,
        extra: impl Fn() -> Vec<StateWrite>,
    ) -> Result<Outcome, HandlerError> {
        append_once(
            &*self.stores.events,
            &*self.stores.state,
            NAME,
            cause,
            || async {
                let stream = stream_of("order", order_id.as_str())?;
                let order = load::<OrderState>(&self.stores, &stream).await?;
                let events = match order.state.decide(&command) {
                    Ok(events) => events,
                    // Late or crossed messages (confirming a cancelled order,
                    // refunding an unpaid one): the order has moved on; nothing to do.
                    Err(DomainError::InvalidTransition { status, action }) => {
                        tracing::info!(status, action, "order has moved on; nothing to do");
                        return Ok((vec![], vec![]));
                    }
                    Err(DomainError::NotFound(_)) => {
                        return Err(HandlerError::Transient(format!(
                            "order {order_id} not found yet"
                        )));
                    }
                    Err(e) => return Err(HandlerError::Permanent(e.to_string())),
                };
                let writes = if events.is_empty() { vec![] } else { extra() };
                Ok((
                    vec![Decision {
                        stream,
                        expected_version: order.version,
                        events,
                    }],
                    writes,
                ))
            },
        )
        .await
    }
}

fn awaiting_payment(order_id: &OrderId, confirmed_at: &str) -> StateWrite {
    StateWrite {
        item: StateItem {
            pk: AWAITING_PAYMENT.into(),
            sk: order_id.to_string(),
            version: 1,
            value: serde_json::json!({ "confirmedAt": confirmed_at }),
            expires_at: None,
        },
        condition: Condition::Always,
    }
}

#[async_trait]
impl EventHandler for OrderWorkflow {
    fn name(&self) -> &'static str {
        NAME
    }

    fn consumes(&self) -> &'static [EventType] {
        CONSUMES
    }

    async fn handle(&self, envelope: &EventEnvelope) -> Result<Outcome, HandlerError> {
        let event = decode(envelope)?;
        match event {
            Event::InventoryStockReserved(e) => {
                self.on_order(envelope, &e.order_id, OrderCommand::Confirm, Vec::new)
                    .await
            }
            Event::InventoryReservationFailed(e) => {
                let short: Vec<String> = e
                    .shortages
                    .iter()
                    .map(|s| format!("{} ({} of {} available)", s.sku, s.available, s.requested))
                    .collect();
                let reason = format!("not enough stock: {}", short.join(", "));
                self.on_order(
                    envelope,
                    &e.order_id,
                    OrderCommand::Reject { reason },
                    Vec::new,
                )
                .await
            }
            Event::OrderConfirmed(e) => {
                // Not a decision: index the order for the payment-expiry sweep.
                let write = awaiting_payment(&e.order_id, &envelope.occurred_at);
                let outcome = append_once(
                    &*self.stores.events,
                    &*self.stores.state,
                    NAME,
                    envelope,
                    || {
                        let write = write.clone();
                        async move { Ok((vec![], vec![write])) }
                    },
                )
                .await?;
                // Confirmed: its confirmation deadline no longer applies. (An
                // order rejected or cancelled while pending leaves that index
                // at the sweeper's next look, which finds it no longer pending.)
                self.stores
                    .state
                    .delete(AWAITING_CONFIRMATION, e.order_id.as_str())
                    .await?;
                Ok(outcome)
            }
            Event::OrderPaid(e) => {
                let order_id = e.order_id.clone();
                let outcome = self
                    .on_order(
                        envelope,
                        &e.order_id,
                        OrderCommand::RequestFulfillment,
                        Vec::new,
                    )
                    .await?;
                // Paid: no longer awaiting payment.
                self.stores
                    .state
                    .delete(AWAITING_PAYMENT, order_id.as_str())
                    .await?;
                Ok(outcome)
            }
            Event::OrderCancelled(e) if e.was_paid => {
                self.on_order(envelope, &e.order_id, OrderCommand::Refund, Vec::new)
                    .await
            }
            _ => Ok(Outcome::Ignored),
        }
    }
}
