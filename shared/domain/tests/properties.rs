//! Properties that hold for any sequence of commands, checked with proptest.

use proptest::prelude::*;
use storefront_domain::cart::{CartCommand, CartState, ProductInfo};
use storefront_domain::order::{OrderCommand, OrderState, OrderStatus};
use storefront_domain::product::{ProductCommand, ProductState};
use storefront_domain::{
    Aggregate, Currency, EventEnvelope, EventMeta, OrderId, Sku, StreamId, UserId, seal_batch,
};

fn meta(n: usize) -> EventMeta {
    EventMeta {
        event_id: format!("e-{n}"),
        occurred_at: "2026-11-27T10:00:00.000Z".into(),
        correlation_id: "c".into(),
        causation_id: None,
        actor: "prop".into(),
    }
}

/// Runs commands through decide → seal → decode → evolve, as the store and
/// handlers do, checking `check` after every accepted command. Returns the
/// final state and every envelope written.
fn run<A: Aggregate>(
    stream: &StreamId,
    commands: &[A::Command],
    mut check: impl FnMut(&A),
) -> (A, Vec<EventEnvelope>) {
    let mut state = A::default();
    let mut log: Vec<EventEnvelope> = Vec::new();
    for command in commands {
        let Ok(events) = state.decide(command) else {
            continue;
        };
        let sealed = seal_batch(stream, state.version(), &events, |i| meta(log.len() + i));
        for envelope in &sealed {
            let event = envelope.decode().expect("a sealed event decodes");
            state = state.evolve(&event);
        }
        log.extend(sealed);
        check(&state);
    }
    (state, log)
}

fn order_id() -> impl Strategy<Value = OrderId> {
    (0u8..6).prop_map(|n| OrderId::new(format!("o{n}")).expect("order id"))
}

fn product_command() -> impl Strategy<Value = ProductCommand> {
    prop_oneof![
        (0i64..50).prop_map(|stock| ProductCommand::Create {
            sku: Sku::new("MUG").expect("sku"),
            name: "Mug".into(),
            price_cents: 100,
            currency: Currency::new("EUR").expect("eur"),
            stock,
        }),
        (-60i64..60).prop_map(|delta| ProductCommand::AdjustStock {
            delta,
            reason: "count".into()
        }),
        (order_id(), 0u32..30, 0u32..10).prop_map(|(order_id, quantity, low_stock_threshold)| {
            ProductCommand::Reserve {
                order_id,
                quantity,
                low_stock_threshold,
            }
        }),
        order_id().prop_map(|order_id| ProductCommand::Release {
            order_id,
            reason: "cancelled".into()
        }),
        order_id().prop_map(|order_id| ProductCommand::Commit { order_id }),
        Just(ProductCommand::Discontinue),
    ]
}

proptest! {
    /// Stock never goes negative nor below what is reserved, reserved is the
    /// sum of the reservations, and versions run 1..=N without gaps.
    #[test]
    fn stock_is_never_oversold(commands in prop::collection::vec(product_command(), 0..80)) {
        let stream = StreamId::parse("product#MUG").expect("stream");
        let (state, log) = run::<ProductState>(&stream, &commands, |s| {
            assert!(s.on_hand >= s.reserved, "on hand {} below reserved {}", s.on_hand, s.reserved);
            assert_eq!(s.reserved, s.reservations.values().sum::<u32>());
        });
        let versions: Vec<u64> = log.iter().map(|e| e.version).collect();
        let expected: Vec<u64> = (1..=log.len() as u64).collect();
        prop_assert_eq!(versions, expected);
        prop_assert_eq!(state.version, log.len() as u64);
    }

    /// Cart lines always hold 1..=99 units at the price their product had
    /// when added, and the total is the sum of quantity × that price.
    #[test]
    fn cart_lines_stay_in_bounds(ops in prop::collection::vec((0u8..5, 0u8..3, -5i64..120), 0..60)) {
        let product = |n: u8| ProductInfo {
            sku: Sku::new(format!("P{n}")).expect("sku"),
            name: format!("Product {n}"),
            price_cents: 100 + i64::from(n),
            currency: Currency::new("EUR").expect("eur"),
            discontinued: n == 2,
        };
        let commands: Vec<CartCommand> = ops.iter().enumerate().map(|(i, (op, n, q))| {
            let sku = Sku::new(format!("P{n}")).expect("sku");
            match op {
                0 | 1 => CartCommand::AddItem { user_id: UserId::new("u1").expect("user"), sku, quantity: *q, product: Some(product(*n)) },
                2 => CartCommand::ChangeQuantity { sku, quantity: *q },
                3 => CartCommand::RemoveItem { sku },
                _ => CartCommand::Checkout { order_id: OrderId::new(format!("o{i}")).expect("order") },
            }
        }).collect();
        let stream = StreamId::parse("cart#u1").expect("stream");
        let (state, log) = run::<CartState>(&stream, &commands, |s| {
            for line in &s.lines {
                assert!((1..=99).contains(&line.quantity));
                assert_ne!(line.sku.as_str(), "P2", "discontinued product in cart");
            }
        });
        prop_assert_eq!(state.version, log.len() as u64);
        // Prices from the catalogue above, not from the lines themselves.
        let price = |sku: &Sku| 100 + i64::from(sku.as_str()[1..].parse::<u8>().expect("P{n}"));
        for line in &state.lines {
            prop_assert_eq!(line.unit_price_cents, price(&line.sku), "{}", line.sku);
        }
        prop_assert_eq!(
            state.total_cents(),
            state.lines.iter().map(|l| i64::from(l.quantity) * price(&l.sku)).sum::<i64>()
        );
    }

    /// Whatever the saga and the shopper do, an order is paid at most once and
    /// only its exact total, and never ships unless paid.
    #[test]
    fn orders_are_paid_once_and_exactly(ops in prop::collection::vec((0u8..9, 0i64..3000), 0..40)) {
        let lines = vec![storefront_domain::events::OrderLine {
            sku: Sku::new("MUG").expect("sku"), name: "Mug".into(), quantity: 2, unit_price_cents: 1000,
        }];
        let mut commands = vec![OrderCommand::Create {
            order_id: OrderId::new("o1").expect("order"), user_id: UserId::new("u1").expect("user"),
            lines, currency: Currency::new("EUR").expect("eur"), placed_at: "2026-11-27T10:00:00.000Z".into(),
        }];
        commands.extend(ops.iter().map(|(op, amount)| match op {
            0 => OrderCommand::Confirm,
            1 => OrderCommand::Reject { reason: "short".into() },
            2 => OrderCommand::Pay { amount_cents: if amount % 2 == 0 { 2000 } else { *amount } },
            3 => OrderCommand::RequestFulfillment,
            4 => OrderCommand::Ship { carrier: "DHL".into(), tracking_number: "T".into() },
            5 => OrderCommand::Deliver,
            6 => OrderCommand::Cancel { reason: "r".into(), by: "u1".into() },
            7 => OrderCommand::Refund,
            _ => OrderCommand::FailPayment { amount_cents: *amount, reason: "declined".into() },
        }));
        let stream = StreamId::parse("order#o1").expect("stream");
        let (_, log) = run::<OrderState>(&stream, &commands, |s| {
            assert!(s.paid_cents == 0 || s.paid_cents == s.total_cents);
            if matches!(s.status, Some(OrderStatus::Shipped | OrderStatus::Delivered)) {
                assert_eq!(s.paid_cents, s.total_cents);
            }
        });
        let payments = log.iter().filter(|e| e.event_type == "order.paid").count();
        prop_assert!(payments <= 1);
    }
}
