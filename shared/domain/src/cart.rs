//! The cart: one per shopper, stream `cart#{userId}`.
//!
//! Rules: 1..=99 units per line; only existing, not discontinued products; one
//! currency per cart, fixed by its first item; an empty cart cannot check out. Checking out empties the
//! cart, so the same stream carries a shopper's next cart too: that one starts afresh
//! (`cart.created` again, with the currency of its own first item).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::events::*;
use crate::ids::{Currency, OrderId, Sku, UserId};
use crate::{Aggregate, DomainError};

/// Most units of one product a cart line may hold.
pub const MAX_LINE_QUANTITY: i64 = 99;
/// Most distinct products a cart may hold. Reserving an order's stock is one
/// atomic append of, per product, up to two events (`inventory.stock.reserved`,
/// `inventory.stock.low`) and its catalogue item, plus the handler's record:
/// 3 × 33 + 1 = 100, DynamoDB's transaction limit.
pub const MAX_CART_LINES: usize = 33;

/// A product as the catalogue knows it now; the API looks it up and puts it on the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductInfo {
    /// The product.
    pub sku: Sku,
    /// Current name.
    pub name: String,
    /// Current unit price, in minor units.
    pub price_cents: i64,
    /// Currency of the price.
    pub currency: Currency,
    /// Whether it was discontinued.
    pub discontinued: bool,
}

/// One line of the cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartLine {
    /// The product.
    pub sku: Sku,
    /// Its name when added.
    pub name: String,
    /// Units, 1..=99.
    pub quantity: u32,
    /// Unit price when added, in minor units.
    pub unit_price_cents: i64,
}

/// The cart, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CartState {
    /// The owner, once the cart exists.
    pub user_id: Option<UserId>,
    /// The currency of the current lines.
    pub currency: Option<Currency>,
    /// Lines in the order they were added.
    pub lines: Vec<CartLine>,
    /// Whether `cart.abandoned` was recorded since the last change.
    pub abandoned: bool,
    /// Orders this cart has become.
    pub checked_out: Vec<OrderId>,
    /// Stream version.
    pub version: u64,
}

impl CartState {
    /// Sum of the lines, in minor units.
    pub fn total_cents(&self) -> i64 {
        self.lines
            .iter()
            .map(|l| i64::from(l.quantity) * l.unit_price_cents)
            .sum()
    }

    /// The lines as an order will hold them.
    pub fn order_lines(&self) -> Vec<OrderLine> {
        self.lines
            .iter()
            .map(|l| OrderLine {
                sku: l.sku.clone(),
                name: l.name.clone(),
                quantity: l.quantity,
                unit_price_cents: l.unit_price_cents,
            })
            .collect()
    }

    fn line(&self, sku: &Sku) -> Option<&CartLine> {
        self.lines.iter().find(|l| &l.sku == sku)
    }
}

/// What a shopper (or the sweeper) can do to a cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CartCommand {
    /// Put units of a product in the cart (adds to an existing line).
    AddItem {
        /// The cart's owner.
        user_id: UserId,
        /// The product.
        sku: Sku,
        /// Units to add; the line's total must stay in 1..=99.
        quantity: i64,
        /// The product as the catalogue knows it, or `None` if it does not exist.
        product: Option<ProductInfo>,
    },
    /// Set a line's quantity.
    ChangeQuantity {
        /// The product.
        sku: Sku,
        /// The new quantity, 1..=99.
        quantity: i64,
    },
    /// Remove a line.
    RemoveItem {
        /// The product.
        sku: Sku,
    },
    /// Remove every line.
    Clear,
    /// Turn the cart into an order.
    Checkout {
        /// The new order's id.
        order_id: OrderId,
    },
    /// Record that the cart was left idle (the sweeper); a no-op if it is empty or already abandoned.
    Abandon {
        /// When it last changed.
        last_activity_at: String,
    },
}

fn check_quantity(quantity: i64) -> Result<u32, DomainError> {
    if (1..=MAX_LINE_QUANTITY).contains(&quantity) {
        Ok(quantity as u32)
    } else {
        Err(DomainError::QuantityOutOfRange(quantity))
    }
}

impl Aggregate for CartState {
    const TYPE: &'static str = "cart";
    type Command = CartCommand;

    fn decide(&self, command: &CartCommand) -> Result<Vec<Event>, DomainError> {
        match command {
            CartCommand::AddItem {
                user_id,
                sku,
                quantity,
                product,
            } => {
                let added = check_quantity(*quantity)?;
                let product = product
                    .as_ref()
                    .filter(|p| &p.sku == sku)
                    .ok_or_else(|| DomainError::UnknownProduct(sku.to_string()))?;
                if product.discontinued {
                    return Err(DomainError::ProductDiscontinued(sku.to_string()));
                }
                if let Some(currency) = &self.currency
                    && currency != &product.currency
                {
                    return Err(DomainError::CurrencyMismatch {
                        cart: currency.to_string(),
                        product: product.currency.to_string(),
                    });
                }
                let mut events = Vec::new();
                // A shopper's first cart, or the next one after a checkout.
                if self.currency.is_none() {
                    events.push(Event::CartCreated(CartCreated {
                        user_id: user_id.clone(),
                        currency: product.currency.clone(),
                    }));
                }
                match self.line(sku) {
                    Some(line) => {
                        let total = i64::from(line.quantity) + i64::from(added);
                        let total = check_quantity(total)?;
                        events.push(Event::CartItemQuantityChanged(CartItemQuantityChanged {
                            sku: sku.clone(),
                            quantity: total,
                        }));
                    }
                    None if self.lines.len() >= MAX_CART_LINES => {
                        return Err(DomainError::TooManyLines(MAX_CART_LINES));
                    }
                    None => events.push(Event::CartItemAdded(CartItemAdded {
                        sku: sku.clone(),
                        name: product.name.clone(),
                        quantity: added,
                        unit_price_cents: product.price_cents,
                    })),
                }
                Ok(events)
            }
            CartCommand::ChangeQuantity { sku, quantity } => {
                let quantity = check_quantity(*quantity)?;
                let line = self
                    .line(sku)
                    .ok_or_else(|| DomainError::NoSuchLine(sku.to_string()))?;
                if line.quantity == quantity {
                    return Ok(vec![]);
                }
                Ok(vec![Event::CartItemQuantityChanged(
                    CartItemQuantityChanged {
                        sku: sku.clone(),
                        quantity,
                    },
                )])
            }
            CartCommand::RemoveItem { sku } => {
                self.line(sku)
                    .ok_or_else(|| DomainError::NoSuchLine(sku.to_string()))?;
                Ok(vec![Event::CartItemRemoved(CartItemRemoved {
                    sku: sku.clone(),
                })])
            }
            CartCommand::Clear => {
                if self.lines.is_empty() {
                    Ok(vec![])
                } else {
                    Ok(vec![Event::CartCleared(CartCleared {})])
                }
            }
            CartCommand::Checkout { order_id } => {
                let currency = match (&self.currency, self.lines.is_empty()) {
                    (Some(c), false) => c.clone(),
                    _ => return Err(DomainError::EmptyCart),
                };
                if self.checked_out.contains(order_id) {
                    return Err(DomainError::AlreadyExists("order"));
                }
                Ok(vec![Event::CartCheckedOut(CartCheckedOut {
                    order_id: order_id.clone(),
                    total_cents: self.total_cents(),
                    currency,
                })])
            }
            CartCommand::Abandon { last_activity_at } => {
                if self.lines.is_empty() || self.abandoned {
                    return Ok(vec![]);
                }
                Ok(vec![Event::CartAbandoned(CartAbandoned {
                    last_activity_at: last_activity_at.clone(),
                    units: self.lines.iter().map(|l| l.quantity).sum(),
                })])
            }
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        match event {
            Event::CartCreated(e) => {
                self.user_id = Some(e.user_id.clone());
                self.currency = Some(e.currency.clone());
            }
            Event::CartItemAdded(e) => {
                self.lines.push(CartLine {
                    sku: e.sku.clone(),
                    name: e.name.clone(),
                    quantity: e.quantity,
                    unit_price_cents: e.unit_price_cents,
                });
                self.abandoned = false;
            }
            Event::CartItemRemoved(e) => {
                self.lines.retain(|l| l.sku != e.sku);
                self.abandoned = false;
            }
            Event::CartItemQuantityChanged(e) => {
                if let Some(line) = self.lines.iter_mut().find(|l| l.sku == e.sku) {
                    line.quantity = e.quantity;
                }
                self.abandoned = false;
            }
            Event::CartCleared(_) => {
                self.lines.clear();
                self.abandoned = false;
            }
            Event::CartCheckedOut(e) => {
                self.lines.clear();
                self.checked_out.push(e.order_id.clone());
                self.abandoned = false;
                // The next cart takes the currency of its first item.
                self.currency = None;
            }
            Event::CartAbandoned(_) => self.abandoned = true,
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

    fn sku(s: &str) -> Sku {
        Sku::new(s).expect("sku")
    }
    fn user() -> UserId {
        UserId::new("u1").expect("user")
    }
    fn eur() -> Currency {
        Currency::new("EUR").expect("eur")
    }
    fn mug() -> ProductInfo {
        ProductInfo {
            sku: sku("MUG"),
            name: "Mug".into(),
            price_cents: 1250,
            currency: eur(),
            discontinued: false,
        }
    }
    fn add(quantity: i64, product: Option<ProductInfo>) -> CartCommand {
        CartCommand::AddItem {
            user_id: user(),
            sku: sku("MUG"),
            quantity,
            product,
        }
    }
    fn created() -> Event {
        Event::CartCreated(CartCreated {
            user_id: user(),
            currency: eur(),
        })
    }
    fn added(q: u32) -> Event {
        Event::CartItemAdded(CartItemAdded {
            sku: sku("MUG"),
            name: "Mug".into(),
            quantity: q,
            unit_price_cents: 1250,
        })
    }

    /// The first item creates the cart and adds the line.
    #[test]
    fn first_add_creates_the_cart() {
        let state = given::<CartState>([])
            .when(add(2, Some(mug())))
            .then([created(), added(2)]);
        assert_eq!(state.total_cents(), 2500);
        assert_eq!(state.version, 2);
    }

    /// Adding a product already in the cart raises the line's quantity.
    #[test]
    fn adding_again_raises_quantity() {
        given::<CartState>([created(), added(2)])
            .when(add(3, Some(mug())))
            .then([Event::CartItemQuantityChanged(CartItemQuantityChanged {
                sku: sku("MUG"),
                quantity: 5,
            })]);
    }

    /// A line holds 1..=99 units, whether added at once or in steps.
    #[test]
    fn quantity_bounds() {
        for bad in [0, -1, 100, i64::MAX, i64::MIN] {
            given::<CartState>([])
                .when(add(bad, Some(mug())))
                .then_err(DomainError::QuantityOutOfRange(bad));
        }
        given::<CartState>([])
            .when(add(99, Some(mug())))
            .then([created(), added(99)]);
        given::<CartState>([created(), added(98)])
            .when(add(2, Some(mug())))
            .then_err(DomainError::QuantityOutOfRange(100));
    }

    /// Unknown and discontinued products cannot be added.
    #[test]
    fn unknown_or_discontinued_products() {
        given::<CartState>([])
            .when(add(1, None))
            .then_err(DomainError::UnknownProduct("MUG".into()));
        let mut gone = mug();
        gone.discontinued = true;
        given::<CartState>([])
            .when(add(1, Some(gone)))
            .then_err(DomainError::ProductDiscontinued("MUG".into()));
    }

    /// A product priced in another currency cannot join the cart, even once it is empty again.
    #[test]
    fn one_currency_per_cart() {
        let mut usd = mug();
        usd.currency = Currency::new("USD").expect("usd");
        given::<CartState>([created(), added(1)])
            .when(add(1, Some(usd.clone())))
            .then_err(DomainError::CurrencyMismatch {
                cart: "EUR".into(),
                product: "USD".into(),
            });
        given::<CartState>([created(), added(1), Event::CartCleared(CartCleared {})])
            .when(add(1, Some(usd)))
            .then_err(DomainError::CurrencyMismatch {
                cart: "EUR".into(),
                product: "USD".into(),
            });
    }

    /// After a checkout the next cart starts afresh: a product in another
    /// currency is its first item, and it is a new `cart.created`.
    #[test]
    fn the_cart_after_a_checkout_takes_its_first_items_currency() {
        let mut usd = mug();
        usd.currency = Currency::new("USD").expect("usd");
        let checked_out = Event::CartCheckedOut(CartCheckedOut {
            order_id: OrderId::new("o-1").expect("id"),
            total_cents: 1250,
            currency: eur(),
        });
        let state = given::<CartState>([created(), added(1), checked_out])
            .when(add(1, Some(usd)))
            .then([
                Event::CartCreated(CartCreated {
                    user_id: user(),
                    currency: Currency::new("USD").expect("usd"),
                }),
                added(1),
            ]);
        assert_eq!(state.currency, Some(Currency::new("USD").expect("usd")));
    }

    /// Changing and removing lines; both refuse a line that is not there.
    #[test]
    fn change_and_remove() {
        given::<CartState>([created(), added(1)])
            .when(CartCommand::ChangeQuantity {
                sku: sku("MUG"),
                quantity: 4,
            })
            .then([Event::CartItemQuantityChanged(CartItemQuantityChanged {
                sku: sku("MUG"),
                quantity: 4,
            })]);
        given::<CartState>([created(), added(4)])
            .when(CartCommand::ChangeQuantity {
                sku: sku("MUG"),
                quantity: 4,
            })
            .then([]);
        given::<CartState>([created(), added(1)])
            .when(CartCommand::ChangeQuantity {
                sku: sku("MUG"),
                quantity: 0,
            })
            .then_err(DomainError::QuantityOutOfRange(0));
        given::<CartState>([created()])
            .when(CartCommand::ChangeQuantity {
                sku: sku("MUG"),
                quantity: 1,
            })
            .then_err(DomainError::NoSuchLine("MUG".into()));
        let state = given::<CartState>([created(), added(1)])
            .when(CartCommand::RemoveItem { sku: sku("MUG") })
            .then([Event::CartItemRemoved(CartItemRemoved { sku: sku("MUG") })]);
        assert!(state.lines.is_empty());
        given::<CartState>([])
            .when(CartCommand::RemoveItem { sku: sku("MUG") })
            .then_err(DomainError::NoSuchLine("MUG".into()));
    }

    /// A cart holds at most MAX_CART_LINES distinct products.
    #[test]
    fn line_limit() {
        let mut history = vec![created()];
        for i in 0..MAX_CART_LINES {
            history.push(Event::CartItemAdded(CartItemAdded {
                sku: sku(&format!("P{i}")),
                name: "p".into(),
                quantity: 1,
                unit_price_cents: 1,
            }));
        }
        given::<CartState>(history.clone())
            .when(add(1, Some(mug())))
            .then_err(DomainError::TooManyLines(MAX_CART_LINES));
        // Raising an existing line is still fine.
        let p0 = ProductInfo {
            sku: sku("P0"),
            name: "p".into(),
            price_cents: 1,
            currency: eur(),
            discontinued: false,
        };
        given::<CartState>(history)
            .when(CartCommand::AddItem {
                user_id: user(),
                sku: sku("P0"),
                quantity: 1,
                product: Some(p0),
            })
            .then([Event::CartItemQuantityChanged(CartItemQuantityChanged {
                sku: sku("P0"),
                quantity: 2,
            })]);
    }

    /// Clearing a cart with lines records it; clearing an empty one does nothing.
    #[test]
    fn clear() {
        given::<CartState>([created(), added(1)])
            .when(CartCommand::Clear)
            .then([Event::CartCleared(CartCleared {})]);
        given::<CartState>([]).when(CartCommand::Clear).then([]);
    }

    /// Checkout records the order and total and empties the cart; an empty cart cannot check out.
    #[test]
    fn checkout() {
        let order = OrderId::new("o1").expect("order");
        let state = given::<CartState>([created(), added(2)])
            .when(CartCommand::Checkout {
                order_id: order.clone(),
            })
            .then([Event::CartCheckedOut(CartCheckedOut {
                order_id: order.clone(),
                total_cents: 2500,
                currency: eur(),
            })]);
        assert!(state.lines.is_empty());
        given::<CartState>([])
            .when(CartCommand::Checkout {
                order_id: order.clone(),
            })
            .then_err(DomainError::EmptyCart);
        given::<CartState>([created(), added(1), Event::CartCleared(CartCleared {})])
            .when(CartCommand::Checkout { order_id: order })
            .then_err(DomainError::EmptyCart);
    }

    /// The cart is reusable after checkout, and the same order cannot be checked out twice.
    #[test]
    fn reuse_after_checkout() {
        let order = OrderId::new("o1").expect("order");
        let history = [
            created(),
            added(1),
            Event::CartCheckedOut(CartCheckedOut {
                order_id: order.clone(),
                total_cents: 1250,
                currency: eur(),
            }),
        ];
        // The next cart starts afresh: created again, then the line.
        given::<CartState>(history.clone())
            .when(add(1, Some(mug())))
            .then([created(), added(1)]);
        given::<CartState>(history.clone())
            .when(CartCommand::Checkout {
                order_id: order.clone(),
            })
            .then_err(DomainError::EmptyCart);
        let mut refilled = history.to_vec();
        refilled.extend([created(), added(1)]);
        given::<CartState>(refilled)
            .when(CartCommand::Checkout { order_id: order })
            .then_err(DomainError::AlreadyExists("order"));
    }

    /// The sweeper abandons a cart with lines once; an empty cart is left alone.
    #[test]
    fn abandon_once() {
        let at = "2026-11-27T10:00:00.000Z".to_string();
        let abandoned = Event::CartAbandoned(CartAbandoned {
            last_activity_at: at.clone(),
            units: 2,
        });
        given::<CartState>([created(), added(2)])
            .when(CartCommand::Abandon {
                last_activity_at: at.clone(),
            })
            .then([abandoned.clone()]);
        given::<CartState>([created(), added(2), abandoned.clone()])
            .when(CartCommand::Abandon {
                last_activity_at: at.clone(),
            })
            .then([]);
        given::<CartState>([])
            .when(CartCommand::Abandon {
                last_activity_at: at.clone(),
            })
            .then([]);
        // Activity after abandonment makes it abandonable again.
        given::<CartState>([
            created(),
            added(2),
            abandoned,
            Event::CartItemQuantityChanged(CartItemQuantityChanged {
                sku: sku("MUG"),
                quantity: 3,
            }),
        ])
        .when(CartCommand::Abandon {
            last_activity_at: at,
        })
        .then([Event::CartAbandoned(CartAbandoned {
            last_activity_at: "2026-11-27T10:00:00.000Z".into(),
            units: 3,
        })]);
    }
}
