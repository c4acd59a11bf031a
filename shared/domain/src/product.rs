//! The product and its stock: stream `product#{sku}`.
//!
//! Stock has two numbers: units on hand and units reserved for orders.
//! Available = on hand − reserved. On-hand stock never goes negative and never
//! below what is reserved; a reservation never takes more than is available.
//! Reservations are kept per order, so reserving or releasing for the same
//! order twice is a no-op (the inventory handler may see an event twice).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::events::*;
use crate::ids::{Currency, OrderId, Sku, validate_text};
use crate::{Aggregate, DomainError};

/// The highest unit price accepted, in minor units (10,000,000.00).
pub const MAX_PRICE_CENTS: i64 = 1_000_000_000;
/// The most units a product may have on hand.
pub const MAX_STOCK: i64 = 1_000_000_000;
/// The longest product name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// The product, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductState {
    /// The product, once it exists.
    pub sku: Option<Sku>,
    /// Display name.
    pub name: String,
    /// Unit price, in minor units.
    pub price_cents: i64,
    /// Currency of the price.
    pub currency: Option<Currency>,
    /// Units on hand.
    pub on_hand: u32,
    /// Units reserved for orders (the sum of `reservations`).
    pub reserved: u32,
    /// Units reserved per order.
    pub reservations: BTreeMap<OrderId, u32>,
    /// Whether it can no longer be sold.
    pub discontinued: bool,
    /// Stream version.
    pub version: u64,
}

impl ProductState {
    /// Units on hand and not reserved.
    pub fn available(&self) -> u32 {
        self.on_hand.saturating_sub(self.reserved)
    }

    fn sku(&self) -> Result<Sku, DomainError> {
        self.sku.clone().ok_or(DomainError::NotFound("product"))
    }
}

/// What can be asked of a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductCommand {
    /// Add a product to the catalogue.
    Create {
        /// The product.
        sku: Sku,
        /// Display name.
        name: String,
        /// Unit price, in minor units, 1..=MAX_PRICE_CENTS.
        price_cents: i64,
        /// Currency of the price.
        currency: Currency,
        /// Units on hand, 0..=MAX_STOCK.
        stock: i64,
    },
    /// Change name and/or price; absent fields stay as they are.
    Update {
        /// A new name.
        name: Option<String>,
        /// A new unit price, in minor units.
        price_cents: Option<i64>,
    },
    /// Adjust on-hand stock by a signed number of units.
    AdjustStock {
        /// Change in units.
        delta: i64,
        /// Why, for the audit trail.
        reason: String,
    },
    /// Stop selling the product.
    Discontinue,
    /// Reserve units for an order.
    Reserve {
        /// The order.
        order_id: OrderId,
        /// Units.
        quantity: u32,
        /// Record `inventory.stock.low` when available stock falls below this.
        low_stock_threshold: u32,
    },
    /// Give an order's reservation back.
    Release {
        /// The order.
        order_id: OrderId,
        /// Why.
        reason: String,
    },
    /// An order's reserved units left with its shipment: release them and take them off the shelf.
    Commit {
        /// The order.
        order_id: OrderId,
    },
}

fn check_price(price_cents: i64) -> Result<(), DomainError> {
    if (1..=MAX_PRICE_CENTS).contains(&price_cents) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "priceCents",
            format!("must be a whole number of minor units between 1 and {MAX_PRICE_CENTS}"),
        ))
    }
}

impl Aggregate for ProductState {
    const TYPE: &'static str = "product";
    type Command = ProductCommand;

    fn decide(&self, command: &ProductCommand) -> Result<Vec<Event>, DomainError> {
        if let (
            ProductCommand::Create {
                sku,
                name,
                price_cents,
                currency,
                stock,
            },
            None,
        ) = (command, &self.sku)
        {
            validate_text("name", name, MAX_NAME_CHARS)?;
            check_price(*price_cents)?;
            if !(0..=MAX_STOCK).contains(stock) {
                return Err(DomainError::invalid(
                    "stock",
                    format!("must be between 0 and {MAX_STOCK}"),
                ));
            }
            return Ok(vec![Event::ProductCreated(ProductCreated {
                sku: sku.clone(),
                name: name.clone(),
                price_cents: *price_cents,
                currency: currency.clone(),
                initial_stock: *stock as u32,
            })]);
        }

        let sku = self.sku()?;
        match command {
            ProductCommand::Create { .. } => Err(DomainError::AlreadyExists("product")),
            ProductCommand::Update { name, price_cents } => {
                if name.is_none() && price_cents.is_none() {
                    return Err(DomainError::invalid(
                        "body",
                        "give a new name, a new priceCents, or both",
                    ));
                }
                let mut events = Vec::new();
                if let Some(name) = name {
                    validate_text("name", name, MAX_NAME_CHARS)?;
                    if name != &self.name {
                        events.push(Event::ProductUpdated(ProductUpdated { name: name.clone() }));
                    }
                }
                if let Some(price) = price_cents {
                    check_price(*price)?;
                    if *price != self.price_cents {
                        events.push(Event::ProductPriceChanged(ProductPriceChanged {
                            price_cents: *price,
                            previous_price_cents: self.price_cents,
                        }));
                    }
                }
                Ok(events)
            }
            ProductCommand::AdjustStock { delta, reason } => {
                validate_text("reason", reason, 500)?;
                if *delta == 0 {
                    return Err(DomainError::invalid("delta", "must not be zero"));
                }
                let would_be = i64::from(self.on_hand).saturating_add(*delta);
                if would_be < i64::from(self.reserved) {
                    return Err(DomainError::StockBelowReserved {
                        sku: sku.to_string(),
                        would_be,
                        reserved: self.reserved,
                    });
                }
                if would_be > MAX_STOCK {
                    return Err(DomainError::invalid(
                        "delta",
                        format!("stock may not exceed {MAX_STOCK}"),
                    ));
                }
                Ok(vec![Event::ProductStockAdjusted(ProductStockAdjusted {
                    delta: *delta,
                    reason: reason.clone(),
                    on_hand: would_be as u32,
                })])
            }
            ProductCommand::Discontinue => {
                if self.discontinued {
                    Ok(vec![])
                } else {
                    Ok(vec![Event::ProductDiscontinued(ProductDiscontinued {})])
                }
            }
            ProductCommand::Reserve {
                order_id,
                quantity,
                low_stock_threshold,
            } => {
                if self.reservations.contains_key(order_id) {
                    return Ok(vec![]);
                }
                if self.discontinued {
                    return Err(DomainError::ProductDiscontinued(sku.to_string()));
                }
                if *quantity == 0 {
                    return Err(DomainError::QuantityOutOfRange(0));
                }
                let available = self.available();
                if *quantity > available {
                    return Err(DomainError::InsufficientStock {
                        sku: sku.to_string(),
                        requested: *quantity,
                        available,
                    });
                }
                let mut events = vec![Event::InventoryStockReserved(InventoryStockReserved {
                    order_id: order_id.clone(),
                    sku: sku.clone(),
                    quantity: *quantity,
                })];
                let after = available - quantity;
                if after < *low_stock_threshold && available >= *low_stock_threshold {
                    events.push(Event::InventoryStockLow(InventoryStockLow {
                        sku,
                        available: after,
                        threshold: *low_stock_threshold,
                    }));
                }
                Ok(events)
            }
            ProductCommand::Release { order_id, reason } => match self.reservations.get(order_id) {
                Some(quantity) => Ok(vec![Event::InventoryStockReleased(
                    InventoryStockReleased {
                        order_id: order_id.clone(),
                        sku,
                        quantity: *quantity,
                        reason: reason.clone(),
                    },
                )]),
                None => Ok(vec![]),
            },
            ProductCommand::Commit { order_id } => match self.reservations.get(order_id) {
                Some(quantity) => Ok(vec![
                    Event::InventoryStockReleased(InventoryStockReleased {
                        order_id: order_id.clone(),
                        sku,
                        quantity: *quantity,
                        reason: "shipped".into(),
                    }),
                    Event::ProductStockAdjusted(ProductStockAdjusted {
                        delta: -i64::from(*quantity),
                        reason: format!("shipped with order {order_id}"),
                        on_hand: self.on_hand - quantity,
                    }),
                ]),
                None => Ok(vec![]),
            },
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        match event {
            Event::ProductCreated(e) => {
                self.sku = Some(e.sku.clone());
                self.name = e.name.clone();
                self.price_cents = e.price_cents;
                self.currency = Some(e.currency.clone());
                self.on_hand = e.initial_stock;
            }
            Event::ProductUpdated(e) => self.name = e.name.clone(),
            Event::ProductPriceChanged(e) => self.price_cents = e.price_cents,
            Event::ProductStockAdjusted(e) => self.on_hand = e.on_hand,
            Event::ProductDiscontinued(_) => self.discontinued = true,
            Event::InventoryStockReserved(e) => {
                self.reservations.insert(e.order_id.clone(), e.quantity);
                self.reserved = self.reserved.saturating_add(e.quantity);
            }
            Event::InventoryStockReleased(e) => {
                if let Some(q) = self.reservations.remove(&e.order_id) {
                    self.reserved = self.reserved.saturating_sub(q);
                }
            }
            Event::InventoryStockLow(_) => {}
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

    fn sku() -> Sku {
        Sku::new("MUG").expect("sku")
    }
    fn oid(s: &str) -> OrderId {
        OrderId::new(s).expect("order")
    }
    fn created(stock: u32) -> Event {
        Event::ProductCreated(ProductCreated {
            sku: sku(),
            name: "Mug".into(),
            price_cents: 1250,
            currency: Currency::new("EUR").expect("eur"),
            initial_stock: stock,
        })
    }
    fn reserved(order: &str, quantity: u32) -> Event {
        Event::InventoryStockReserved(InventoryStockReserved {
            order_id: oid(order),
            sku: sku(),
            quantity,
        })
    }
    fn reserve(order: &str, quantity: u32) -> ProductCommand {
        ProductCommand::Reserve {
            order_id: oid(order),
            quantity,
            low_stock_threshold: 0,
        }
    }
    fn create(price_cents: i64, stock: i64) -> ProductCommand {
        ProductCommand::Create {
            sku: sku(),
            name: "Mug".into(),
            price_cents,
            currency: Currency::new("EUR").expect("eur"),
            stock,
        }
    }

    /// Creation validates price, stock and name, and happens once.
    #[test]
    fn create_product() {
        let state = given::<ProductState>([])
            .when(create(1250, 10))
            .then([created(10)]);
        assert_eq!(state.available(), 10);
        given::<ProductState>([created(1)])
            .when(create(1250, 10))
            .then_err(DomainError::AlreadyExists("product"));
        for bad_price in [0, -1, MAX_PRICE_CENTS + 1] {
            assert!(matches!(
                given::<ProductState>([])
                    .state()
                    .decide(&create(bad_price, 1)),
                Err(DomainError::Invalid {
                    field: "priceCents",
                    ..
                })
            ));
        }
        for bad_stock in [-1, MAX_STOCK + 1] {
            assert!(matches!(
                given::<ProductState>([])
                    .state()
                    .decide(&create(100, bad_stock)),
                Err(DomainError::Invalid { field: "stock", .. })
            ));
        }
        let blank = ProductCommand::Create {
            sku: sku(),
            name: "".into(),
            price_cents: 1,
            currency: Currency::new("EUR").expect("eur"),
            stock: 0,
        };
        assert!(matches!(
            given::<ProductState>([]).state().decide(&blank),
            Err(DomainError::Invalid { field: "name", .. })
        ));
    }

    /// Update records only what changed; an empty update is refused; missing products are 404.
    #[test]
    fn update_product() {
        given::<ProductState>([created(1)])
            .when(ProductCommand::Update {
                name: Some("Big mug".into()),
                price_cents: Some(1300),
            })
            .then([
                Event::ProductUpdated(ProductUpdated {
                    name: "Big mug".into(),
                }),
                Event::ProductPriceChanged(ProductPriceChanged {
                    price_cents: 1300,
                    previous_price_cents: 1250,
                }),
            ]);
        given::<ProductState>([created(1)])
            .when(ProductCommand::Update {
                name: Some("Mug".into()),
                price_cents: Some(1250),
            })
            .then([]);
        assert!(matches!(
            given::<ProductState>([created(1)])
                .state()
                .decide(&ProductCommand::Update {
                    name: None,
                    price_cents: None
                }),
            Err(DomainError::Invalid { field: "body", .. })
        ));
        given::<ProductState>([])
            .when(ProductCommand::Update {
                name: Some("x".into()),
                price_cents: None,
            })
            .then_err(DomainError::NotFound("product"));
    }

    /// Stock never goes negative or below what is reserved.
    #[test]
    fn adjust_stock() {
        given::<ProductState>([created(5)])
            .when(ProductCommand::AdjustStock {
                delta: 3,
                reason: "delivery".into(),
            })
            .then([Event::ProductStockAdjusted(ProductStockAdjusted {
                delta: 3,
                reason: "delivery".into(),
                on_hand: 8,
            })]);
        given::<ProductState>([created(5)])
            .when(ProductCommand::AdjustStock {
                delta: -6,
                reason: "count".into(),
            })
            .then_err(DomainError::StockBelowReserved {
                sku: "MUG".into(),
                would_be: -1,
                reserved: 0,
            });
        given::<ProductState>([created(5), reserved("o1", 4)])
            .when(ProductCommand::AdjustStock {
                delta: -2,
                reason: "count".into(),
            })
            .then_err(DomainError::StockBelowReserved {
                sku: "MUG".into(),
                would_be: 3,
                reserved: 4,
            });
        given::<ProductState>([created(5), reserved("o1", 4)])
            .when(ProductCommand::AdjustStock {
                delta: -1,
                reason: "count".into(),
            })
            .then([Event::ProductStockAdjusted(ProductStockAdjusted {
                delta: -1,
                reason: "count".into(),
                on_hand: 4,
            })]);
        assert!(matches!(
            given::<ProductState>([created(5)])
                .state()
                .decide(&ProductCommand::AdjustStock {
                    delta: 0,
                    reason: "x".into()
                }),
            Err(DomainError::Invalid { field: "delta", .. })
        ));
        assert!(matches!(
            given::<ProductState>([created(5)])
                .state()
                .decide(&ProductCommand::AdjustStock {
                    delta: i64::MIN,
                    reason: "x".into()
                }),
            Err(DomainError::StockBelowReserved { .. })
        ));
    }

    /// Reservations take only what is available, once per order; discontinued products cannot be reserved.
    #[test]
    fn reservations() {
        let state = given::<ProductState>([created(10)])
            .when(reserve("o1", 4))
            .then([reserved("o1", 4)]);
        assert_eq!(
            (state.on_hand, state.reserved, state.available()),
            (10, 4, 6)
        );
        given::<ProductState>([created(10), reserved("o1", 4)])
            .when(reserve("o1", 4))
            .then([]);
        given::<ProductState>([created(10), reserved("o1", 8)])
            .when(reserve("o2", 3))
            .then_err(DomainError::InsufficientStock {
                sku: "MUG".into(),
                requested: 3,
                available: 2,
            });
        given::<ProductState>([
            created(10),
            Event::ProductDiscontinued(ProductDiscontinued {}),
        ])
        .when(reserve("o1", 1))
        .then_err(DomainError::ProductDiscontinued("MUG".into()));
        given::<ProductState>([created(10)])
            .when(reserve("o1", 0))
            .then_err(DomainError::QuantityOutOfRange(0));
    }

    /// Crossing the low-stock threshold records `inventory.stock.low` once.
    #[test]
    fn low_stock() {
        let cmd = |order: &str, q| ProductCommand::Reserve {
            order_id: oid(order),
            quantity: q,
            low_stock_threshold: 3,
        };
        given::<ProductState>([created(5)])
            .when(cmd("o1", 3))
            .then([
                reserved("o1", 3),
                Event::InventoryStockLow(InventoryStockLow {
                    sku: sku(),
                    available: 2,
                    threshold: 3,
                }),
            ]);
        given::<ProductState>([created(5), reserved("o1", 3)])
            .when(cmd("o2", 1))
            .then([reserved("o2", 1)]);
        given::<ProductState>([created(10)])
            .when(cmd("o1", 2))
            .then([reserved("o1", 2)]);
    }

    /// Release gives back exactly the order's reservation, once.
    #[test]
    fn release() {
        let released = Event::InventoryStockReleased(InventoryStockReleased {
            order_id: oid("o1"),
            sku: sku(),
            quantity: 4,
            reason: "cancelled".into(),
        });
        let state = given::<ProductState>([created(10), reserved("o1", 4), reserved("o2", 1)])
            .when(ProductCommand::Release {
                order_id: oid("o1"),
                reason: "cancelled".into(),
            })
            .then([released.clone()]);
        assert_eq!((state.reserved, state.available()), (1, 9));
        given::<ProductState>([created(10), reserved("o1", 4), released])
            .when(ProductCommand::Release {
                order_id: oid("o1"),
                reason: "cancelled".into(),
            })
            .then([]);
    }

    /// Shipping commits a reservation: reserved and on-hand both go down.
    #[test]
    fn commit() {
        let state = given::<ProductState>([created(10), reserved("o1", 4)])
            .when(ProductCommand::Commit {
                order_id: oid("o1"),
            })
            .then([
                Event::InventoryStockReleased(InventoryStockReleased {
                    order_id: oid("o1"),
                    sku: sku(),
                    quantity: 4,
                    reason: "shipped".into(),
                }),
                Event::ProductStockAdjusted(ProductStockAdjusted {
                    delta: -4,
                    reason: "shipped with order o1".into(),
                    on_hand: 6,
                }),
            ]);
        assert_eq!(
            (state.on_hand, state.reserved, state.available()),
            (6, 0, 6)
        );
        given::<ProductState>([created(10)])
            .when(ProductCommand::Commit {
                order_id: oid("o1"),
            })
            .then([]);
    }

    /// Discontinuing twice records it once.
    #[test]
    fn discontinue() {
        given::<ProductState>([created(1)])
            .when(ProductCommand::Discontinue)
            .then([Event::ProductDiscontinued(ProductDiscontinued {})]);
        given::<ProductState>([
            created(1),
            Event::ProductDiscontinued(ProductDiscontinued {}),
        ])
        .when(ProductCommand::Discontinue)
        .then([]);
        given::<ProductState>([])
            .when(ProductCommand::Discontinue)
            .then_err(DomainError::NotFound("product"));
    }
}
