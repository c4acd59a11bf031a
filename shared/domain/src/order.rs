//! The order: stream `order#{orderId}`.
//!
//! Life cycle: `pending` → `confirmed` (stock reserved) or `rejected`;
//! `confirmed` → `paid` (once, exact total) → `shipped` → `delivered`.
//! Cancellation is allowed before shipping and, for a paid order, is followed
//! by a refund. The saga's commands (confirm, reject, request fulfillment) are
//! idempotent: repeating one that already took effect decides no events.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cart::MAX_LINE_QUANTITY;
use crate::events::*;
use crate::ids::{Currency, OrderId, UserId, validate_text};
use crate::{Aggregate, DomainError};

/// Where an order is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OrderStatus {
    /// Placed; waiting for stock to be reserved.
    Pending,
    /// Stock reserved; waiting for payment.
    Confirmed,
    /// Could not be fulfilled.
    Rejected,
    /// Paid in full.
    Paid,
    /// Left the warehouse.
    Shipped,
    /// Reached the shopper.
    Delivered,
    /// Cancelled before shipping.
    Cancelled,
}

impl OrderStatus {
    /// The status as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Paid => "paid",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The order, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderState {
    /// The order's id, once it exists.
    pub order_id: Option<OrderId>,
    /// Who placed it.
    pub user_id: Option<UserId>,
    /// What was ordered.
    pub lines: Vec<OrderLine>,
    /// Sum of the lines, in minor units.
    pub total_cents: i64,
    /// Currency of all amounts.
    pub currency: Option<Currency>,
    /// Where it is in its life cycle; `None` before it exists.
    pub status: Option<OrderStatus>,
    /// What was paid, in minor units.
    pub paid_cents: i64,
    /// Whether the warehouse was asked to ship it.
    pub fulfillment_requested: bool,
    /// Whether a refund was recorded.
    pub refunded: bool,
    /// Why it was rejected or cancelled.
    pub reason: Option<String>,
    /// When it was placed (RFC 3339 UTC).
    pub placed_at: String,
    /// Stream version.
    pub version: u64,
}

/// What can be asked of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCommand {
    /// Place an order (the cart's checkout).
    Create {
        /// The new order's id.
        order_id: OrderId,
        /// Who places it.
        user_id: UserId,
        /// The lines, from the cart.
        lines: Vec<OrderLine>,
        /// Currency of the prices.
        currency: Currency,
        /// When the shopper placed it (RFC 3339 UTC).
        placed_at: String,
    },
    /// Every line was reserved (the saga).
    Confirm,
    /// The order cannot be fulfilled (the saga).
    Reject {
        /// Why.
        reason: String,
    },
    /// Pay the exact total of a confirmed order.
    Pay {
        /// Amount offered, in minor units.
        amount_cents: i64,
    },
    /// Record a declined payment on a confirmed order.
    FailPayment {
        /// Amount attempted, in minor units.
        amount_cents: i64,
        /// The provider's reason.
        reason: String,
    },
    /// Ask the warehouse to ship a paid order (the saga).
    RequestFulfillment,
    /// The order left the warehouse.
    Ship {
        /// The carrier.
        carrier: String,
        /// The carrier's tracking number.
        tracking_number: String,
    },
    /// The order reached the shopper.
    Deliver,
    /// Cancel before shipping.
    Cancel {
        /// Why.
        reason: String,
        /// Who: a user id or `system:<handler>`.
        by: String,
    },
    /// Return the money of a cancelled, paid order.
    Refund,
}

impl OrderState {
    fn status(&self) -> Result<OrderStatus, DomainError> {
        self.status.ok_or(DomainError::NotFound("order"))
    }

    fn order_id(&self) -> Result<OrderId, DomainError> {
        self.order_id.clone().ok_or(DomainError::NotFound("order"))
    }
}

fn refuse(status: OrderStatus, action: &'static str) -> DomainError {
    DomainError::InvalidTransition {
        status: status.as_str(),
        action,
    }
}

impl Aggregate for OrderState {
    const TYPE: &'static str = "order";
    type Command = OrderCommand;

    fn decide(&self, command: &OrderCommand) -> Result<Vec<Event>, DomainError> {
        use OrderStatus::*;
        if let (
            OrderCommand::Create {
                order_id,
                user_id,
                lines,
                currency,
                placed_at,
            },
            None,
        ) = (command, self.status)
        {
            if lines.is_empty() {
                return Err(DomainError::EmptyCart);
            }
            let mut total: i64 = 0;
            for line in lines {
                if !(1..=MAX_LINE_QUANTITY).contains(&i64::from(line.quantity)) {
                    return Err(DomainError::QuantityOutOfRange(i64::from(line.quantity)));
                }
                if line.unit_price_cents < 0 {
                    return Err(DomainError::invalid(
                        "unitPriceCents",
                        "must not be negative",
                    ));
                }
                total = total
                    .checked_add(line.total_cents())
                    .ok_or_else(|| DomainError::invalid("totalCents", "is too large"))?;
            }
            return Ok(vec![Event::OrderCreated(OrderCreated {
                order_id: order_id.clone(),
                user_id: user_id.clone(),
                lines: lines.clone(),
                total_cents: total,
                currency: currency.clone(),
                placed_at: placed_at.clone(),
            })]);
        }

        let status = self.status()?;
        let order_id = self.order_id()?;
        let events = match command {
            OrderCommand::Create { .. } => return Err(DomainError::AlreadyExists("order")),
            OrderCommand::Confirm => match status {
                Pending => vec![Event::OrderConfirmed(OrderConfirmed { order_id })],
                Confirmed | Paid | Shipped | Delivered => vec![],
                Rejected | Cancelled => return Err(refuse(status, "confirm")),
            },
            OrderCommand::Reject { reason } => match status {
                Pending => vec![Event::OrderRejected(OrderRejected {
                    order_id,
                    reason: reason.clone(),
                })],
                Rejected => vec![],
                _ => return Err(refuse(status, "reject")),
            },
            OrderCommand::Pay { amount_cents } => {
                if status != Confirmed {
                    return Err(refuse(status, "pay"));
                }
                if *amount_cents != self.total_cents {
                    return Err(DomainError::PaymentMismatch {
                        paid: *amount_cents,
                        total: self.total_cents,
                    });
                }
                vec![Event::OrderPaid(OrderPaid {
                    order_id,
                    amount_cents: *amount_cents,
                    currency: self
                        .currency
                        .clone()
                        .ok_or(DomainError::NotFound("order"))?,
                })]
            }
            OrderCommand::FailPayment {
                amount_cents,
                reason,
            } => {
                if status != Confirmed {
                    return Err(refuse(status, "record a failed payment"));
                }
                vec![Event::OrderPaymentFailed(OrderPaymentFailed {
                    order_id,
                    amount_cents: *amount_cents,
                    reason: reason.clone(),
                })]
            }
            OrderCommand::RequestFulfillment => match status {
                Paid if !self.fulfillment_requested => {
                    vec![Event::OrderFulfillmentRequested(
                        OrderFulfillmentRequested { order_id },
                    )]
                }
                Paid | Shipped | Delivered => vec![],
                _ => return Err(refuse(status, "request fulfillment")),
            },
            OrderCommand::Ship {
                carrier,
                tracking_number,
            } => {
                if status != Paid {
                    return Err(refuse(status, "ship"));
                }
                validate_text("carrier", carrier, 100)?;
                validate_text("trackingNumber", tracking_number, 100)?;
                vec![Event::OrderShipped(OrderShipped {
                    order_id,
                    carrier: carrier.clone(),
                    tracking_number: tracking_number.clone(),
                })]
            }
            OrderCommand::Deliver => {
                if status != Shipped {
                    return Err(refuse(status, "deliver"));
                }
                vec![Event::OrderDelivered(OrderDelivered { order_id })]
            }
            OrderCommand::Cancel { reason, by } => match status {
                Pending | Confirmed | Paid => vec![Event::OrderCancelled(OrderCancelled {
                    order_id,
                    reason: reason.clone(),
                    cancelled_by: by.clone(),
                    was_paid: status == Paid,
                })],
                _ => return Err(refuse(status, "cancel")),
            },
            OrderCommand::Refund => {
                if status != Cancelled || self.paid_cents == 0 {
                    return Err(refuse(status, "refund"));
                }
                if self.refunded {
                    vec![]
                } else {
                    vec![Event::OrderRefunded(OrderRefunded {
                        order_id,
                        amount_cents: self.paid_cents,
                    })]
                }
            }
        };
        Ok(events)
    }

    fn evolve(mut self, event: &Event) -> Self {
        match event {
            Event::OrderCreated(e) => {
                self.order_id = Some(e.order_id.clone());
                self.user_id = Some(e.user_id.clone());
                self.lines = e.lines.clone();
                self.total_cents = e.total_cents;
                self.currency = Some(e.currency.clone());
                self.status = Some(OrderStatus::Pending);
                self.placed_at = e.placed_at.clone();
            }
            Event::OrderConfirmed(_) => self.status = Some(OrderStatus::Confirmed),
            Event::OrderRejected(e) => {
                self.status = Some(OrderStatus::Rejected);
                self.reason = Some(e.reason.clone());
            }
            Event::OrderPaid(e) => {
                self.status = Some(OrderStatus::Paid);
                self.paid_cents = e.amount_cents;
            }
            Event::OrderPaymentFailed(_) => {}
            Event::OrderFulfillmentRequested(_) => self.fulfillment_requested = true,
            Event::OrderShipped(_) => self.status = Some(OrderStatus::Shipped),
            Event::OrderDelivered(_) => self.status = Some(OrderStatus::Delivered),
            Event::OrderCancelled(e) => {
                self.status = Some(OrderStatus::Cancelled);
                self.reason = Some(e.reason.clone());
            }
            Event::OrderRefunded(_) => self.refunded = true,
            _ => return self,
        }
        self.version += 1;
        self
    }

    fn version(&self) -> u64 {
        self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;
    use crate::ids::Sku;

    const AT: &str = "2026-11-27T10:00:00.000Z";

    fn oid() -> OrderId {
        OrderId::new("o1").expect("order")
    }
    fn eur() -> Currency {
        Currency::new("EUR").expect("eur")
    }
    fn lines() -> Vec<OrderLine> {
        vec![
            OrderLine {
                sku: Sku::new("MUG").expect("sku"),
                name: "Mug".into(),
                quantity: 2,
                unit_price_cents: 1250,
            },
            OrderLine {
                sku: Sku::new("TEE").expect("sku"),
                name: "Tee".into(),
                quantity: 1,
                unit_price_cents: 2000,
            },
        ]
    }
    fn create() -> OrderCommand {
        OrderCommand::Create {
            order_id: oid(),
            user_id: UserId::new("u1").expect("user"),
            lines: lines(),
            currency: eur(),
            placed_at: AT.into(),
        }
    }
    fn created() -> Event {
        Event::OrderCreated(OrderCreated {
            order_id: oid(),
            user_id: UserId::new("u1").expect("user"),
            lines: lines(),
            total_cents: 4500,
            currency: eur(),
            placed_at: AT.into(),
        })
    }
    fn confirmed() -> Event {
        Event::OrderConfirmed(OrderConfirmed { order_id: oid() })
    }
    fn paid() -> Event {
        Event::OrderPaid(OrderPaid {
            order_id: oid(),
            amount_cents: 4500,
            currency: eur(),
        })
    }
    fn shipped() -> Event {
        Event::OrderShipped(OrderShipped {
            order_id: oid(),
            carrier: "DHL".into(),
            tracking_number: "T1".into(),
        })
    }
    fn cancelled(was_paid: bool) -> Event {
        Event::OrderCancelled(OrderCancelled {
            order_id: oid(),
            reason: "r".into(),
            cancelled_by: "u1".into(),
            was_paid,
        })
    }
    fn cancel() -> OrderCommand {
        OrderCommand::Cancel {
            reason: "r".into(),
            by: "u1".into(),
        }
    }
    fn transition(status: &'static str, action: &'static str) -> DomainError {
        DomainError::InvalidTransition { status, action }
    }

    /// Creating computes the total; twice is refused; no lines is refused.
    #[test]
    fn create_order() {
        let state = given::<OrderState>([]).when(create()).then([created()]);
        assert_eq!(state.status, Some(OrderStatus::Pending));
        assert_eq!(state.total_cents, 4500);
        given::<OrderState>([created()])
            .when(create())
            .then_err(DomainError::AlreadyExists("order"));
        given::<OrderState>([])
            .when(OrderCommand::Create {
                order_id: oid(),
                user_id: UserId::new("u1").expect("user"),
                lines: vec![],
                currency: eur(),
                placed_at: AT.into(),
            })
            .then_err(DomainError::EmptyCart);
    }

    /// Commands on an order that does not exist are 404s.
    #[test]
    fn missing_order() {
        for cmd in [
            OrderCommand::Confirm,
            OrderCommand::Pay { amount_cents: 1 },
            OrderCommand::Deliver,
            cancel(),
        ] {
            given::<OrderState>([])
                .when(cmd)
                .then_err(DomainError::NotFound("order"));
        }
    }

    /// Confirm and reject only from pending; repeating the same outcome is a no-op.
    #[test]
    fn confirm_and_reject() {
        given::<OrderState>([created()])
            .when(OrderCommand::Confirm)
            .then([confirmed()]);
        given::<OrderState>([created(), confirmed()])
            .when(OrderCommand::Confirm)
            .then([]);
        let rejected = Event::OrderRejected(OrderRejected {
            order_id: oid(),
            reason: "short".into(),
        });
        given::<OrderState>([created()])
            .when(OrderCommand::Reject {
                reason: "short".into(),
            })
            .then([rejected.clone()]);
        given::<OrderState>([created(), rejected.clone()])
            .when(OrderCommand::Reject {
                reason: "short".into(),
            })
            .then([]);
        given::<OrderState>([created(), rejected])
            .when(OrderCommand::Confirm)
            .then_err(transition("rejected", "confirm"));
        given::<OrderState>([created(), confirmed()])
            .when(OrderCommand::Reject { reason: "x".into() })
            .then_err(transition("confirmed", "reject"));
        given::<OrderState>([created(), cancelled(false)])
            .when(OrderCommand::Confirm)
            .then_err(transition("cancelled", "confirm"));
    }

    /// Paid once, only when confirmed, only with the exact total.
    #[test]
    fn pay() {
        let state = given::<OrderState>([created(), confirmed()])
            .when(OrderCommand::Pay { amount_cents: 4500 })
            .then([paid()]);
        assert_eq!(state.paid_cents, 4500);
        given::<OrderState>([created()])
            .when(OrderCommand::Pay { amount_cents: 4500 })
            .then_err(transition("pending", "pay"));
        for wrong in [4499, 4501, 0, -4500] {
            given::<OrderState>([created(), confirmed()])
                .when(OrderCommand::Pay {
                    amount_cents: wrong,
                })
                .then_err(DomainError::PaymentMismatch {
                    paid: wrong,
                    total: 4500,
                });
        }
        given::<OrderState>([created(), confirmed(), paid()])
            .when(OrderCommand::Pay { amount_cents: 4500 })
            .then_err(transition("paid", "pay"));
    }

    /// A declined payment is recorded on a confirmed order and leaves it payable.
    #[test]
    fn failed_payment() {
        let failed = Event::OrderPaymentFailed(OrderPaymentFailed {
            order_id: oid(),
            amount_cents: 4500,
            reason: "declined".into(),
        });
        let state = given::<OrderState>([created(), confirmed()])
            .when(OrderCommand::FailPayment {
                amount_cents: 4500,
                reason: "declined".into(),
            })
            .then([failed.clone()]);
        assert_eq!(state.status, Some(OrderStatus::Confirmed));
        given::<OrderState>([created(), confirmed(), failed])
            .when(OrderCommand::Pay { amount_cents: 4500 })
            .then([paid()]);
        given::<OrderState>([created()])
            .when(OrderCommand::FailPayment {
                amount_cents: 1,
                reason: "x".into(),
            })
            .then_err(transition("pending", "record a failed payment"));
    }

    /// Fulfillment is requested once for a paid order.
    #[test]
    fn fulfillment() {
        let requested =
            Event::OrderFulfillmentRequested(OrderFulfillmentRequested { order_id: oid() });
        given::<OrderState>([created(), confirmed(), paid()])
            .when(OrderCommand::RequestFulfillment)
            .then([requested.clone()]);
        given::<OrderState>([created(), confirmed(), paid(), requested])
            .when(OrderCommand::RequestFulfillment)
            .then([]);
        given::<OrderState>([created(), confirmed()])
            .when(OrderCommand::RequestFulfillment)
            .then_err(transition("confirmed", "request fulfillment"));
    }

    /// Shipped only when paid, delivered only when shipped.
    #[test]
    fn ship_and_deliver() {
        let ship = || OrderCommand::Ship {
            carrier: "DHL".into(),
            tracking_number: "T1".into(),
        };
        given::<OrderState>([created(), confirmed(), paid()])
            .when(ship())
            .then([shipped()]);
        given::<OrderState>([created(), confirmed()])
            .when(ship())
            .then_err(transition("confirmed", "ship"));
        given::<OrderState>([created(), confirmed(), paid(), shipped()])
            .when(ship())
            .then_err(transition("shipped", "ship"));
        given::<OrderState>([created(), confirmed(), paid()])
            .when(OrderCommand::Ship {
                carrier: " ".into(),
                tracking_number: "T".into(),
            })
            .then_err(DomainError::Invalid {
                field: "carrier",
                reason: "must not be blank".into(),
            });
        let state = given::<OrderState>([created(), confirmed(), paid(), shipped()])
            .when(OrderCommand::Deliver)
            .then([Event::OrderDelivered(OrderDelivered { order_id: oid() })]);
        assert_eq!(state.status, Some(OrderStatus::Delivered));
        given::<OrderState>([created(), confirmed(), paid()])
            .when(OrderCommand::Deliver)
            .then_err(transition("paid", "deliver"));
    }

    /// Cancel only before shipping; a paid cancellation says so and can be refunded once.
    #[test]
    fn cancel_and_refund() {
        given::<OrderState>([created()])
            .when(cancel())
            .then([cancelled(false)]);
        given::<OrderState>([created(), confirmed()])
            .when(cancel())
            .then([cancelled(false)]);
        given::<OrderState>([created(), confirmed(), paid()])
            .when(cancel())
            .then([cancelled(true)]);
        given::<OrderState>([created(), confirmed(), paid(), shipped()])
            .when(cancel())
            .then_err(transition("shipped", "cancel"));
        given::<OrderState>([created(), cancelled(false)])
            .when(cancel())
            .then_err(transition("cancelled", "cancel"));
        let refunded = Event::OrderRefunded(OrderRefunded {
            order_id: oid(),
            amount_cents: 4500,
        });
        given::<OrderState>([created(), confirmed(), paid(), cancelled(true)])
            .when(OrderCommand::Refund)
            .then([refunded.clone()]);
        given::<OrderState>([created(), confirmed(), paid(), cancelled(true), refunded])
            .when(OrderCommand::Refund)
            .then([]);
        given::<OrderState>([created(), cancelled(false)])
            .when(OrderCommand::Refund)
            .then_err(transition("cancelled", "refund"));
        given::<OrderState>([created(), confirmed(), paid()])
            .when(OrderCommand::Refund)
            .then_err(transition("paid", "refund"));
    }
}
