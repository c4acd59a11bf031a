//! Every handler in-process on SQLite, driven by a bus stand-in: the
//! journey, duplicate and out-of-order delivery, the overselling race, the
//! saga's compensation, notifications sent once, the audit
//! chain's tamper detection, and failure isolation in an SQS batch. (The
//! sweeper's deadlines are in `deadlines.rs`, on SQLite and on moto.)

mod common;

use std::sync::Arc;

use common::{ADMIN, Delivery, Shop, checkout, order_status, product, shopper};
use serde_json::{Value, json};
use storefront_domain::user::{UserCommand, UserState};
use storefront_domain::{Aggregate, EventEnvelope, EventMeta, StreamId, seal_batch};
use storefront_runtime::{EventHandler, Outcome};
use storefront_store::EventLog;
use storefront_store::clock::{new_event_id, now_rfc3339};

/// A summary of everything the handlers produced, to compare runs.
async fn summary(shop: &Shop) -> Value {
    let stats = shop.ok("GET", "/admin/stats", ADMIN, None).await;
    let orders = shop.ok("GET", "/orders", ADMIN, None).await;
    let statuses: Vec<Value> = orders
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| o["status"].clone())
        .collect();
    let mut outbox: Vec<String> = shop
        .outbox()
        .await
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m["template"].as_str().unwrap_or(""),
                m["to"].as_str().unwrap_or("")
            )
        })
        .collect();
    outbox.sort();
    let audit = storefront_audit::verify_all(&*shop.stores.state)
        .await
        .expect("audit chain");
    let audited: u64 = audit.iter().map(|(_, n)| n).sum();
    let mug = product(shop, "MUG").await;
    let tee = product(shop, "TEE").await;
    json!({
        "stats": stats, "statuses": statuses, "outbox": outbox, "audited": audited,
        "mug": [mug.on_hand, mug.reserved], "tee": [tee.on_hand, tee.reserved],
    })
}

/// The scenario every delivery mode runs: two shoppers, a paid and shipped order, a cancelled one, a rejected one.
async fn scenario(shop: &Shop, delivery: Delivery) -> Value {
    shop.product("MUG", 10).await;
    shop.product("TEE", 2).await;
    shop.ok(
        "POST",
        "/users",
        shopper("alice"),
        Some(json!({"email": "alice@example.com", "name": "Alice"})),
    )
    .await;
    shop.ok(
        "POST",
        "/users",
        shopper("bob"),
        Some(json!({"email": "bob@example.com", "name": "Bob"})),
    )
    .await;
    let a1 = checkout(shop, "alice", &[("MUG", 2), ("TEE", 1)]).await;
    let b1 = checkout(shop, "bob", &[("MUG", 3)]).await;
    shop.settle(delivery).await;
    assert_eq!(order_status(shop, shopper("alice"), &a1).await, "confirmed");
    assert_eq!(order_status(shop, shopper("bob"), &b1).await, "confirmed");
    let b2 = checkout(shop, "bob", &[("TEE", 2)]).await; // only 1 TEE left
    shop.settle(delivery).await;
    assert_eq!(order_status(shop, shopper("bob"), &b2).await, "rejected");

    shop.ok(
        "POST",
        &format!("/orders/{a1}/payment"),
        shopper("alice"),
        Some(json!({"amountCents": 3000})),
    )
    .await;
    shop.settle(delivery).await;
    shop.ok(
        "POST",
        &format!("/orders/{a1}/shipment"),
        ADMIN,
        Some(json!({"carrier": "DHL", "trackingNumber": "T1"})),
    )
    .await;
    shop.ok("POST", &format!("/orders/{a1}/delivery"), ADMIN, None)
        .await;
    shop.ok(
        "POST",
        &format!("/orders/{b1}/cancel"),
        shopper("bob"),
        None,
    )
    .await;
    shop.settle(delivery).await;
    assert_eq!(order_status(shop, shopper("alice"), &a1).await, "delivered");
    assert_eq!(order_status(shop, shopper("bob"), &b1).await, "cancelled");
    summary(shop).await
}

/// The journey: reservations confirm orders, shortage rejects, payment requests fulfillment,
/// shipping commits stock, cancellation releases it; stats, notifications and the audit chain agree.
#[tokio::test]
async fn journey_in_order() {
    let shop = Shop::new();
    let s = scenario(&shop, Delivery::InOrder).await;
    // MUG: 10 on hand, alice's 2 shipped (committed), bob's 3 released.
    assert_eq!(s["mug"], json!([8, 0]));
    // TEE: 2 on hand, alice's 1 shipped; bob's 2 were never reserved.
    assert_eq!(s["tee"], json!([1, 0]));
    let stats = &s["stats"];
    assert_eq!(
        stats["ordersByStatus"],
        json!({"cancelled": 1, "delivered": 1, "rejected": 1})
    );
    assert_eq!(stats["revenueCents"], json!({"EUR": 3000}));
    assert_eq!(stats["cartsStarted"], 2);
    assert_eq!(stats["checkouts"], 3);
    assert_eq!(stats["topProducts"][0], json!({"sku": "MUG", "units": 2}));
    let outbox: Vec<&str> = s["outbox"]
        .as_array()
        .expect("outbox")
        .iter()
        .map(|v| v.as_str().expect("s"))
        .collect();
    for expected in [
        "welcome alice@example.com",
        "welcome bob@example.com",
        "order-created alice@example.com",
        "order-confirmed alice@example.com",
        "order-paid alice@example.com",
        "order-shipped alice@example.com",
        "order-rejected bob@example.com",
        "order-cancelled bob@example.com",
    ] {
        assert!(outbox.contains(&expected), "{expected} in {outbox:?}");
    }
    // Every stored event was audited exactly once.
    let total = shop.sqlite().read_after_all().await;
    assert_eq!(s["audited"].as_u64(), Some(total as u64));
    // The fulfillment request followed the payment: the one paid order's
    // stream holds it right after order.paid, caused by it, and nothing
    // else in the log asked for fulfillment.
    let history = shop.ok("GET", "/orders", ADMIN, None).await;
    assert_eq!(history.as_array().map(Vec::len), Some(3));
    let log = shop.sqlite().read_after(0, 1_000_000).await.expect("log");
    let of_type = |ty: &str| -> Vec<&EventEnvelope> {
        log.iter()
            .map(|l| &l.envelope)
            .filter(|e| e.event_type == ty)
            .collect()
    };
    let paid = of_type("order.paid");
    assert_eq!(paid.len(), 1, "one order was paid");
    let requested = of_type("order.fulfillment.requested");
    assert_eq!(requested.len(), 1, "one fulfillment was requested");
    let (paid, requested) = (paid[0], requested[0]);
    assert_eq!(requested.stream_id, paid.stream_id);
    assert_eq!(requested.version, paid.version + 1);
    assert_eq!(
        requested.causation_id.as_deref(),
        Some(paid.event_id.as_str())
    );
    let stream = StreamId::parse(&paid.stream_id).expect("stream");
    let order: Vec<String> = shop
        .stores
        .events
        .load(&stream, 0)
        .await
        .expect("load")
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        order,
        [
            "order.created",
            "order.confirmed",
            "order.paid",
            "order.fulfillment.requested",
            "order.shipped",
            "order.delivered",
        ]
    );
}

trait CountAll {
    async fn read_after_all(&self) -> usize;
}

impl CountAll for storefront_store::sqlite::SqliteStore {
    async fn read_after_all(&self) -> usize {
        self.read_after(0, 1_000_000).await.expect("log").len()
    }
}

/// Delivering every event twice changes nothing: every handler reports the repeat as a duplicate or ignores it, and the end state equals the single-delivery run.
#[tokio::test]
async fn duplicates_have_no_effect() {
    let once = scenario(&Shop::new(), Delivery::InOrder).await;
    let twice = scenario(&Shop::new(), Delivery::Twice).await;
    assert_eq!(once, twice);
}

/// Delivering each round's events in reverse order reaches the same end state.
#[tokio::test]
async fn out_of_order_delivery_converges() {
    let in_order = scenario(&Shop::new(), Delivery::InOrder).await;
    let reversed = scenario(&Shop::new(), Delivery::Reversed).await;
    assert_eq!(in_order, reversed);
}

/// A late event never rolls a view back: the cart view, caught up from the store, ignores an older event delivered after a newer one.
#[tokio::test]
async fn views_ignore_stale_events() {
    let shop = Shop::new();
    shop.product("MUG", 10).await;
    shop.ok(
        "POST",
        "/cart/items",
        shopper("carol"),
        Some(json!({"sku": "MUG", "quantity": 1})),
    )
    .await;
    shop.ok(
        "PATCH",
        "/cart/items/MUG",
        shopper("carol"),
        Some(json!({"quantity": 5})),
    )
    .await;
    let events = shop.new_events().await;
    let cart_events: Vec<&EventEnvelope> = events
        .iter()
        .filter(|e| e.stream_id == "cart#carol")
        .collect();
    let cart = storefront_cart::CartViews::new(shop.stores.clone(), &Default::default());
    // The newest event first: the view catches up with everything.
    assert_eq!(
        cart.handle(cart_events[2]).await.expect("handle"),
        Outcome::Handled
    );
    for e in &cart_events {
        assert_eq!(
            cart.handle(e).await.expect("handle"),
            Outcome::Duplicate,
            "{}",
            e.event_type
        );
    }
    let (version, view) = storefront_cart::read_view(&shop.stores, "carol")
        .await
        .expect("read")
        .expect("view");
    assert_eq!((version, view.lines[0].quantity), (3, 5));
}

/// 50 shoppers check out the last 10 units at once, handlers running concurrently:
/// exactly 10 orders are confirmed and 40 rejected, and stock never goes below zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overselling_race() {
    let shop = Arc::new(Shop::new());
    shop.product("LAST", 10).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let shop = shop.clone();
        tasks.push(tokio::spawn(async move {
            checkout(&shop, &format!("s{i}"), &[("LAST", 1)]).await
        }));
    }
    let mut orders = Vec::new();
    for t in tasks {
        orders.push(t.await.expect("task"));
    }
    shop.settle_concurrently().await;
    let mut confirmed = 0;
    let mut rejected = 0;
    for (i, id) in orders.iter().enumerate() {
        match order_status(&shop, shopper(&format!("s{i}")), id)
            .await
            .as_str()
        {
            "confirmed" => confirmed += 1,
            "rejected" => rejected += 1,
            other => panic!("order {id} is {other}"),
        }
    }
    assert_eq!((confirmed, rejected), (10, 40));
    let last = product(&shop, "LAST").await;
    assert_eq!((last.on_hand, last.reserved, last.available()), (10, 10, 0));
    // Versions of the product stream stayed contiguous through the race.
    let history = shop
        .stores
        .events
        .load(&StreamId::parse("product#LAST").expect("s"), 0)
        .await
        .expect("load");
    assert!(
        history
            .iter()
            .enumerate()
            .all(|(i, e)| e.version == i as u64 + 1)
    );
}

/// A reservation that lands after its order was cancelled is released by the inventory's self-healing.
#[tokio::test]
async fn reservation_after_cancellation_is_released() {
    let shop = Shop::new();
    shop.product("MUG", 5).await;
    let id = checkout(&shop, "dave", &[("MUG", 2)]).await;
    let created: Vec<EventEnvelope> = shop.new_events().await;
    // The shopper cancels before the inventory sees order.created.
    shop.ok(
        "POST",
        &format!("/orders/{id}/cancel"),
        shopper("dave"),
        None,
    )
    .await;
    let order_created = created
        .iter()
        .find(|e| e.event_type == "order.created")
        .expect("order.created");
    // The cancellation is handled first (nothing reserved yet) ...
    shop.settle(Delivery::InOrder).await;
    // ... then the late order.created: the order is no longer pending, so nothing is reserved.
    shop.deliver(order_created).await;
    shop.settle(Delivery::InOrder).await;
    assert_eq!(product(&shop, "MUG").await.reserved, 0);
    assert_eq!(order_status(&shop, shopper("dave"), &id).await, "cancelled");
}

/// A notification is sent once per event even when two deliveries race, and a user without an address yields notification.failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notifications_send_once() {
    let shop = Arc::new(Shop::new());
    shop.ok(
        "POST",
        "/users",
        shopper("gina"),
        Some(json!({"email": "gina@example.com", "name": "Gina"})),
    )
    .await;
    let registered = shop
        .new_events()
        .await
        .into_iter()
        .find(|e| e.event_type == "user.registered")
        .expect("event");
    let n = Arc::new(storefront_notification::Notifications::new(
        shop.stores.clone(),
        &common::notification_settings(),
        Arc::new(storefront_notification::OutboxNotifier::new(
            shop.stores.state.clone(),
        )),
    ));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (n, e) = (n.clone(), registered.clone());
        tasks.push(tokio::spawn(async move { n.handle(&e).await }));
    }
    let mut handled = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(Outcome::Handled) => handled += 1,
            Ok(Outcome::Duplicate) | Err(storefront_runtime::HandlerError::Transient(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(handled, 1);
    assert_eq!(
        n.handle(&registered).await.expect("again"),
        Outcome::Duplicate
    );
    assert_eq!(shop.outbox().await.len(), 1, "one message");
    let sent = shop
        .stores
        .events
        .load(
            &StreamId::new("notification", &registered.event_id).expect("s"),
            0,
        )
        .await
        .expect("load");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].event_type, "notification.sent");
    assert_eq!(
        sent[0].causation_id.as_deref(),
        Some(registered.event_id.as_str())
    );

    // An order for a shopper who never registered: nobody to write to.
    shop.product("MUG", 5).await;
    checkout(&shop, "nobody", &[("MUG", 1)]).await;
    let created = shop
        .new_events()
        .await
        .into_iter()
        .find(|e| e.event_type == "order.created")
        .expect("event");
    assert_eq!(n.handle(&created).await.expect("handle"), Outcome::Handled);
    let failed = shop
        .stores
        .events
        .load(
            &StreamId::new("notification", &created.event_id).expect("s"),
            0,
        )
        .await
        .expect("load");
    assert_eq!(failed[0].event_type, "notification.failed");
}

/// The longest audit chain of the shop's only day: (day, its partition, its records).
async fn longest_chain(shop: &Shop) -> (String, String, u64) {
    let days = storefront_audit::verify_all(&*shop.stores.state)
        .await
        .expect("verifies");
    assert_eq!(days.len(), 1);
    let day = days[0].0.clone();
    let mut best = (0, 0);
    for shard in 0..storefront_audit::SHARDS {
        let n = storefront_audit::verify_chain(&*shop.stores.state, &day, Some(shard))
            .await
            .expect("chain verifies");
        if n > best.1 {
            best = (shard, n);
        }
    }
    let partition = storefront_store::keys::audit_day(&day, Some(best.0));
    (day, partition, best.1)
}

/// The audit chain verifies, and finds an altered record and a missing one.
#[tokio::test]
async fn audit_chain_detects_tampering() {
    let shop = Shop::new();
    shop.product("MUG", 5).await;
    checkout(&shop, "hal", &[("MUG", 1)]).await;
    shop.settle(Delivery::InOrder).await;
    let (day, chain, n) = longest_chain(&shop).await;
    assert!(n >= 3, "{n} records");

    // Alter record 3's event type behind the store's back.
    let changed = shop.sqlite().execute_raw(format!(
        "UPDATE state SET value = json_set(value, '$.eventType', 'order.forged') WHERE pk = '{chain}' AND sk = '000000000003'"
    )).await.expect("tamper");
    assert_eq!(changed, 1);
    let err = storefront_audit::verify_day(&*shop.stores.state, &day)
        .await
        .expect_err("altered");
    assert!(
        matches!(
            &err,
            storefront_audit::VerifyError::Violation(storefront_audit::AuditViolation::Altered {
                seq: 3,
                chain: c,
            }) if chain.ends_with(c.as_str())
        ),
        "{err}"
    );

    // A fresh shop: remove record 2 of a chain of three or more.
    let shop = Shop::new();
    shop.product("MUG", 5).await;
    checkout(&shop, "hal", &[("MUG", 1)]).await;
    shop.settle(Delivery::InOrder).await;
    let (day, chain, n) = longest_chain(&shop).await;
    assert!(n >= 3, "{n} records");
    shop.sqlite()
        .execute_raw(format!(
            "DELETE FROM state WHERE pk = '{chain}' AND sk = '000000000002'"
        ))
        .await
        .expect("delete");
    let err = storefront_audit::verify_day(&*shop.stores.state, &day)
        .await
        .expect_err("missing");
    assert!(
        matches!(
            err,
            storefront_audit::VerifyError::Violation(storefront_audit::AuditViolation::Missing {
                seq: 2,
                ..
            })
        ),
        "{err}"
    );

    // Removing the last record is caught by the head.
    let shop = Shop::new();
    shop.product("MUG", 5).await;
    shop.product("TEE", 5).await;
    shop.settle(Delivery::InOrder).await;
    let (day, chain, n) = longest_chain(&shop).await;
    assert_eq!(n, 1, "one event per product stream");
    shop.sqlite()
        .execute_raw(format!(
            "DELETE FROM state WHERE pk = '{chain}' AND sk = '000000000001'"
        ))
        .await
        .expect("delete");
    assert!(matches!(
        storefront_audit::verify_day(&*shop.stores.state, &day).await,
        Err(storefront_audit::VerifyError::Violation(
            storefront_audit::AuditViolation::Missing { seq: 1, .. }
        ))
    ));
}

/// The chain is split by stream: a stream's events stay in one chain, in
/// order, and a day's events spread over the shards instead of one head.
#[tokio::test]
async fn audit_chains_are_sharded_by_stream() {
    let shop = Shop::new();
    for i in 0..32 {
        shop.product(&format!("SKU-{i}"), 5).await;
    }
    checkout(&shop, "hal", &[("SKU-0", 1), ("SKU-1", 2)]).await;
    shop.settle(Delivery::InOrder).await;
    let (day, _, _) = longest_chain(&shop).await;
    let mut used = 0;
    for shard in 0..storefront_audit::SHARDS {
        let items = shop
            .stores
            .state
            .query(&storefront_store::keys::audit_day(&day, Some(shard)))
            .await
            .expect("query");
        if !items.is_empty() {
            used += 1;
        }
        let mut last: std::collections::HashMap<String, u64> = Default::default();
        for item in items {
            let record: storefront_audit::AuditRecord =
                serde_json::from_value(item.value).expect("record");
            assert_eq!(storefront_audit::shard_of(&record.stream_id), shard);
            let prev = last.insert(record.stream_id.clone(), record.version);
            assert!(
                prev.is_none_or(|p| p < record.version),
                "{} audited out of order in shard {shard}",
                record.stream_id
            );
        }
    }
    assert!(
        used >= 8,
        "32 product streams spread over {used} of 16 chains"
    );
    // The day's listing names its shards, which verification reads.
    let days = shop
        .stores
        .state
        .query(storefront_audit::DAYS)
        .await
        .expect("days");
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].value["shards"], storefront_audit::SHARDS);
}

/// In an SQS batch, a poison record and a record whose handler fails are reported; the good records around them are handled.
#[tokio::test]
async fn failure_isolation_in_a_batch() {
    use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
    let shop = Shop::new();
    shop.product("MUG", 5).await;
    shop.product("TEE", 5).await;
    let events = shop.new_events().await;
    let audit = Arc::new(storefront_audit::Audit::new(
        shop.stores.clone(),
        &Default::default(),
    ));
    let message = |id: &str, body: String| {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body);
        m
    };
    let mut batch = SqsEvent::default();
    batch.records = vec![
        message("ok-1", json!({"detail-type": events[0].event_type, "source": "storefront.product", "detail": events[0]}).to_string()),
        message("poison", "{\"detail\": {\"eventId\": 42}}".into()),
        message("ok-2", serde_json::to_string(&events[1]).expect("json")),
    ];
    let response = storefront_runtime::sqs::run_batch("audit", batch, |e| {
        let audit = audit.clone();
        async move { audit.handle(&e).await }
    })
    .await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec!["poison"]);
    assert_eq!(
        storefront_audit::verify_all(&*shop.stores.state)
            .await
            .expect("verifies")[0]
            .1,
        2
    );
}

/// Decides `command` on user `id`'s stream and appends what it decided, as
/// the API's command path would: no route updates or deactivates a user yet.
async fn user_command(shop: &Shop, id: &str, command: UserCommand) {
    let stream = StreamId::new("user", id).expect("stream");
    let loaded = storefront_store::aggregate::load_full::<UserState>(&*shop.stores.events, &stream)
        .await
        .expect("load");
    let events = loaded.state.decide(&command).expect("decided");
    assert_eq!(events.len(), 1, "{command:?} decides one event");
    let sealed = seal_batch(&stream, loaded.version, &events, |_| EventMeta {
        event_id: new_event_id(),
        occurred_at: now_rfc3339(),
        correlation_id: "user-views".into(),
        causation_id: None,
        actor: id.into(),
    });
    shop.stores
        .events
        .append(&stream, loaded.version, sealed)
        .await
        .expect("append");
}

/// Asserts user `id`'s directory entry is `entry` at `version`, and the
/// profile view holds the same at the same version.
async fn assert_user(shop: &Shop, id: &str, version: u64, entry: Value) {
    let dir = shop
        .stores
        .state
        .get(storefront_store::keys::USER_DIRECTORY, id)
        .await
        .expect("get")
        .expect("directory entry");
    assert_eq!((dir.version, &dir.value), (version, &entry), "directory");
    let (pk, sk) = storefront_store::keys::user_view(id);
    let view = shop
        .stores
        .state
        .get(&pk, sk)
        .await
        .expect("get")
        .expect("view");
    assert_eq!(view.version, version, "view version");
    let profile: UserState = serde_json::from_value(view.value).expect("a user state");
    assert_eq!(
        (
            profile.email.as_str(),
            profile.name.as_str(),
            profile.deactivated,
            profile.version
        ),
        (
            entry["email"].as_str().expect("email"),
            entry["name"].as_str().expect("name"),
            entry["status"] == "deactivated",
            version
        ),
        "profile view"
    );
}

/// The state a handler leaves is readable by its neighbours: the user
/// directory and profile view follow registration, each kind of profile
/// update, and deactivation, delivered twice each.
#[tokio::test]
async fn user_views() {
    let shop = Shop::new();
    shop.ok(
        "POST",
        "/users",
        shopper("ivy"),
        Some(json!({"email": "ivy@example.com", "name": "Ivy"})),
    )
    .await;
    shop.settle(Delivery::Twice).await;
    assert_user(
        &shop,
        "ivy",
        1,
        json!({"email": "ivy@example.com", "name": "Ivy", "status": "active"}),
    )
    .await;

    user_command(
        &shop,
        "ivy",
        UserCommand::UpdateProfile {
            name: Some("Ivy Lee".into()),
            email: None,
        },
    )
    .await;
    shop.settle(Delivery::Twice).await;
    assert_user(
        &shop,
        "ivy",
        2,
        json!({"email": "ivy@example.com", "name": "Ivy Lee", "status": "active"}),
    )
    .await;

    user_command(
        &shop,
        "ivy",
        UserCommand::UpdateProfile {
            name: None,
            email: Some("lee@example.com".into()),
        },
    )
    .await;
    shop.settle(Delivery::Twice).await;
    assert_user(
        &shop,
        "ivy",
        3,
        json!({"email": "lee@example.com", "name": "Ivy Lee", "status": "active"}),
    )
    .await;

    user_command(
        &shop,
        "ivy",
        UserCommand::Deactivate {
            reason: "asked to".into(),
        },
    )
    .await;
    shop.settle(Delivery::Twice).await;
    assert_user(
        &shop,
        "ivy",
        4,
        json!({"email": "lee@example.com", "name": "Ivy Lee", "status": "deactivated"}),
    )
    .await;
}
