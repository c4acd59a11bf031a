//! Nothing waits for ever: the sweeper's deadlines, on SQLite and on the
//! DynamoDB adapter against moto (each case runs on both).
//!
//! - an order whose confirmation never comes (its reservation's answer lost
//!   to a DLQ) is rejected past its deadline, its stock released, the shopper
//!   told, and a late answer changes nothing;
//! - an unpaid order is cancelled and released, an idle cart abandoned once;
//! - a sweep that runs out of time resumes where it stopped, and abandoned
//!   carts leave the index, so a quiet shop's sweep reloads no aggregate;
//! - one item that cannot be decided is logged, counted and skipped.

mod common;

use std::time::Duration;

use common::{Delivery, Shop, checkout, order_status, product, shopper};
use serde_json::json;
use storefront_cart_sweeper::{Settings, SweepReport, Sweeper};
use storefront_domain::envelope::checksum;
use storefront_domain::events::CartAbandoned;
use storefront_domain::{Event, EventEnvelope, EventMeta, StreamId, seal_batch};
use storefront_runtime::Stores;
use storefront_store::clock::{new_event_id, now_rfc3339};
use storefront_store::iam::PortCall;
use storefront_store::keys::{AWAITING_CONFIRMATION, AWAITING_PAYMENT, CART_ACTIVITY};
use storefront_store::recording::Recording;
use storefront_store::{Condition, StateItem, StateWrite};

on_both!(
    a_pending_order_past_its_deadline_is_rejected,
    unpaid_orders_expire_and_idle_carts_are_abandoned,
    a_sweep_out_of_time_resumes_where_it_stopped,
    one_bad_item_is_skipped,
);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn sweeper(shop: &Shop, settings: Settings) -> Sweeper {
    Sweeper::new(shop.stores.clone(), &settings)
}

async fn index(shop: &Shop, pk: &str) -> Vec<String> {
    shop.stores
        .state
        .query(pk)
        .await
        .expect("index")
        .into_iter()
        .map(|i| i.sk)
        .collect()
}

async fn register(shop: &Shop, user: &str) {
    shop.ok(
        "POST",
        "/users",
        shopper(user),
        Some(json!({"email": format!("{user}@example.com"), "name": user})),
    )
    .await;
}

async fn add(shop: &Shop, user: &str, sku: &str, quantity: i64) {
    shop.ok(
        "POST",
        "/cart/items",
        shopper(user),
        Some(json!({"sku": sku, "quantity": quantity})),
    )
    .await;
}

fn templates(outbox: &[serde_json::Value]) -> Vec<String> {
    outbox
        .iter()
        .map(|m| m["template"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// The reservation is made, but the saga never hears of it (its message
/// went to a DLQ): the order stays pending with stock held until its
/// deadline; then it is rejected, the stock comes back, the shopper is told,
/// and the lost message redriven later changes nothing.
async fn a_pending_order_past_its_deadline_is_rejected(shop: Shop) {
    shop.product("MUG", 5).await;
    register(&shop, "gina").await;
    register(&shop, "hal").await;
    let stuck = checkout(&shop, "gina", &[("MUG", 2)]).await;
    let fine = checkout(&shop, "hal", &[("MUG", 1)]).await;
    let mut lost: Vec<EventEnvelope> = Vec::new();
    loop {
        let round = shop.new_events().await;
        if round.is_empty() {
            break;
        }
        for event in round {
            let for_gina = event.data["orderId"].as_str() == Some(stuck.as_str());
            if event.event_type == "inventory.stock.reserved" && for_gina {
                lost.push(event);
            } else {
                shop.deliver(&event).await;
            }
        }
    }
    assert!(!lost.is_empty(), "the reservation was made");
    assert_eq!(
        order_status(&shop, shopper("gina"), &stuck).await,
        "pending"
    );
    assert_eq!(
        order_status(&shop, shopper("hal"), &fine).await,
        "confirmed"
    );
    assert_eq!(product(&shop, "MUG").await.reserved, 3);
    assert_eq!(
        index(&shop, AWAITING_CONFIRMATION).await,
        vec![stuck.clone()],
        "a confirmed order leaves the confirmation index"
    );

    let sweeper = sweeper(&shop, Settings::default());
    assert_eq!(
        sweeper.sweep(now() + 60).await.expect("sweep"),
        SweepReport::default(),
        "a minute in, the two-minute deadline has not passed"
    );
    let report = sweeper.sweep(now() + 180).await.expect("sweep");
    assert_eq!(
        report,
        SweepReport {
            orders_rejected: 1,
            ..SweepReport::default()
        }
    );
    let delivered = shop.settle(Delivery::InOrder).await;
    let rejected = delivered
        .iter()
        .find(|e| e.event_type == "order.rejected")
        .expect("order.rejected");
    let reason = rejected.data["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("not confirmed within 2 minutes"),
        "the reason says why: {reason}"
    );
    assert_eq!(
        order_status(&shop, shopper("gina"), &stuck).await,
        "rejected"
    );
    assert_eq!(
        product(&shop, "MUG").await.reserved,
        1,
        "gina's two units are released, hal's one stays"
    );
    assert!(
        templates(&shop.outbox().await).contains(&"order-rejected".to_owned()),
        "the shopper is told"
    );
    assert!(index(&shop, AWAITING_CONFIRMATION).await.is_empty());

    // The lost message, redriven: the saga cannot confirm a rejected order,
    // and the stock stays released.
    for event in &lost {
        shop.deliver(event).await;
    }
    shop.settle(Delivery::InOrder).await;
    assert_eq!(
        order_status(&shop, shopper("gina"), &stuck).await,
        "rejected"
    );
    assert_eq!(product(&shop, "MUG").await.reserved, 1);
    assert_eq!(
        sweeper.sweep(now() + 180).await.expect("sweep"),
        SweepReport::default(),
        "rejected once"
    );
}

/// The sweeper abandons idle carts once, and cancels unpaid confirmed
/// orders, which releases their stock.
async fn unpaid_orders_expire_and_idle_carts_are_abandoned(shop: Shop) {
    shop.product("MUG", 5).await;
    register(&shop, "erin").await;
    add(&shop, "erin", "MUG", 1).await;
    let id = checkout(&shop, "frank", &[("MUG", 2)]).await;
    shop.settle(Delivery::InOrder).await;
    assert_eq!(
        order_status(&shop, shopper("frank"), &id).await,
        "confirmed"
    );
    assert_eq!(product(&shop, "MUG").await.reserved, 2);

    let later = now() + 3600;
    let patient = sweeper(
        &shop,
        Settings {
            cart_idle: Duration::from_secs(7200),
            payment_timeout: Duration::from_secs(7200),
            ..Settings::default()
        },
    );
    assert_eq!(
        patient.sweep(later).await.expect("sweep"),
        SweepReport::default(),
        "nothing is due yet"
    );
    let sweeper = sweeper(
        &shop,
        Settings {
            cart_idle: Duration::from_secs(60),
            payment_timeout: Duration::from_secs(60),
            ..Settings::default()
        },
    );
    let report = sweeper.sweep(later).await.expect("sweep");
    assert_eq!((report.carts_abandoned, report.orders_expired), (1, 1));
    shop.settle(Delivery::InOrder).await;
    assert_eq!(
        sweeper.sweep(later).await.expect("sweep"),
        SweepReport::default(),
        "abandoned once, expired once"
    );
    assert_eq!(
        order_status(&shop, shopper("frank"), &id).await,
        "cancelled"
    );
    assert_eq!(product(&shop, "MUG").await.reserved, 0, "released");
    assert!(templates(&shop.outbox().await).contains(&"cart-abandoned".to_owned()));
    assert!(index(&shop, AWAITING_PAYMENT).await.is_empty());
}

/// With pages of two and no time to spare, each sweep sees to one item per
/// index and records where it stopped; the next resumes there, until every
/// deadline is met. Abandoned and emptied carts leave the index, so the
/// sweep of a quiet shop reads the indexes and loads no aggregate.
async fn a_sweep_out_of_time_resumes_where_it_stopped(shop: Shop) {
    shop.product("MUG", 100).await;
    for user in ["u1", "u2", "u3", "u4", "u5"] {
        add(&shop, user, "MUG", 1).await;
    }
    let mut orders = Vec::new();
    for user in ["o1", "o2", "o3"] {
        orders.push(checkout(&shop, user, &[("MUG", 1)]).await);
    }
    shop.settle(Delivery::InOrder).await;
    assert_eq!(
        index(&shop, CART_ACTIVITY).await.len(),
        8,
        "five carts with lines, three emptied by checkout"
    );

    let hurried = sweeper(
        &shop,
        Settings {
            cart_idle: Duration::from_secs(60),
            payment_timeout: Duration::from_secs(60),
            budget: Duration::ZERO,
            page_size: 2,
            ..Settings::default()
        },
    );
    let later = now() + 3600;
    let first = hurried.sweep(later).await.expect("sweep");
    assert!(first.stopped_early, "out of time at once: {first:?}");
    assert!(
        first.carts_abandoned <= 1 && first.orders_expired == 1,
        "one item per index: {first:?}"
    );
    let mut total = first;
    let mut sweeps = 1;
    loop {
        let report = hurried.sweep(later).await.expect("sweep");
        sweeps += 1;
        total.carts_abandoned += report.carts_abandoned;
        total.orders_expired += report.orders_expired;
        total.failures += report.failures;
        if !report.stopped_early {
            break;
        }
        assert!(sweeps < 20, "the sweeps come to an end");
    }
    assert!(sweeps >= 5, "five carts, one per sweep: {sweeps} sweeps");
    assert_eq!(
        (total.carts_abandoned, total.orders_expired, total.failures),
        (5, 3, 0),
        "every deadline met once, across the resumed sweeps"
    );
    shop.settle(Delivery::InOrder).await;
    for id in &orders {
        let owner = format!("o{}", orders.iter().position(|o| o == id).unwrap_or(0) + 1);
        assert_eq!(order_status(&shop, shopper(&owner), id).await, "cancelled");
    }
    assert!(
        index(&shop, CART_ACTIVITY).await.is_empty(),
        "abandoned and emptied carts left the index"
    );
    assert!(index(&shop, AWAITING_PAYMENT).await.is_empty());

    let recording = Recording::new(shop.stores.events.clone(), shop.stores.state.clone());
    let counted = Sweeper::new(
        Stores {
            events: recording.clone(),
            state: recording.clone(),
            snapshot_every: shop.stores.snapshot_every,
        },
        &Settings {
            cart_idle: Duration::from_secs(60),
            payment_timeout: Duration::from_secs(60),
            ..Settings::default()
        },
    );
    assert_eq!(
        counted.sweep(later).await.expect("sweep"),
        SweepReport::default()
    );
    let calls = recording.calls();
    assert!(
        calls
            .keys()
            .all(|c| matches!(c, PortCall::Get | PortCall::Query)),
        "a quiet shop's sweep only reads its cursors and indexes: {calls:?}"
    );
    assert_eq!(calls.get(&PortCall::Query), Some(&3), "one page per index");
}

/// An event written by a build that decodes it differently: sealed (its
/// checksum holds), but not a shape this build knows.
fn undecodable(stream: &StreamId) -> EventEnvelope {
    let meta = |_| EventMeta {
        event_id: new_event_id(),
        occurred_at: now_rfc3339(),
        correlation_id: "test".into(),
        causation_id: None,
        actor: "test".into(),
    };
    let event = Event::CartAbandoned(CartAbandoned {
        last_activity_at: now_rfc3339(),
        units: 1,
    });
    let mut sealed = seal_batch(stream, 0, &[event], meta);
    let mut envelope = sealed.remove(0);
    envelope.data = json!({"shape": "from another build"});
    envelope.checksum = checksum(
        &envelope.stream_id,
        envelope.version,
        &envelope.event_type,
        &envelope.data,
    );
    envelope
}

/// A cart and an order whose streams this build cannot decode fail alone:
/// each is logged and counted, stays in its index for the next sweep, and
/// the other carts and orders are seen to.
async fn one_bad_item_is_skipped(shop: Shop) {
    shop.product("MUG", 10).await;
    add(&shop, "ivy", "MUG", 1).await;
    let id = checkout(&shop, "jay", &[("MUG", 1)]).await;
    shop.settle(Delivery::InOrder).await;
    for (stream, pk, value) in [
        (
            "cart#zed",
            CART_ACTIVITY,
            json!({"lastActivityAt": now_rfc3339(), "units": 1}),
        ),
        (
            "order#broken",
            AWAITING_PAYMENT,
            json!({"confirmedAt": now_rfc3339()}),
        ),
    ] {
        let stream = StreamId::parse(stream).expect("stream");
        shop.stores
            .events
            .append(&stream, 0, vec![undecodable(&stream)])
            .await
            .expect("append");
        shop.stores
            .state
            .put(StateWrite {
                item: StateItem {
                    pk: pk.into(),
                    sk: stream.aggregate_id().into(),
                    version: 1,
                    value,
                    expires_at: None,
                },
                condition: Condition::Always,
            })
            .await
            .expect("index");
    }
    // The handlers cannot decode them either: in a deployment they sit in a
    // DLQ; here they are taken off the bus stand-in.
    let bad = shop.new_events().await;
    assert_eq!(bad.len(), 2);
    let sweeper = sweeper(
        &shop,
        Settings {
            cart_idle: Duration::from_secs(60),
            payment_timeout: Duration::from_secs(60),
            ..Settings::default()
        },
    );
    let later = now() + 3600;
    let report = sweeper
        .sweep(later)
        .await
        .expect("a sweep with bad items ends");
    assert_eq!(
        report,
        SweepReport {
            orders_expired: 1,
            carts_abandoned: 1,
            failures: 2,
            ..SweepReport::default()
        }
    );
    shop.settle(Delivery::InOrder).await;
    assert_eq!(order_status(&shop, shopper("jay"), &id).await, "cancelled");
    assert_eq!(index(&shop, CART_ACTIVITY).await, vec!["zed".to_owned()]);
    assert_eq!(
        index(&shop, AWAITING_PAYMENT).await,
        vec!["broken".to_owned()]
    );
    assert_eq!(
        sweeper.sweep(later).await.expect("sweep"),
        SweepReport {
            failures: 2,
            ..SweepReport::default()
        },
        "tried again, and skipped again"
    );
}
