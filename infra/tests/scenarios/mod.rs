//! The end-to-end scenarios, written once against the HTTP API and run on
//! both paths: the embedded runtime (e2e.rs) and the AWS mode on a stack
//! deployed to moto (e2e_aws.rs). What only one path has (the embedded
//! outbox and data-folder commands) is checked where `rt.embedded()`.

#![allow(dead_code)]

use crate::common::{Client, Runtime, eventually, quiet};
use serde_json::{Value, json};

async fn order_status(c: &Client, token: &str, id: &str) -> String {
    c.ok("GET", &format!("/orders/{id}"), Some(token), None)
        .await["status"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

pub async fn settled_status(c: &Client, token: &str, id: &str) -> String {
    eventually(c.patience, "order leaves pending", || async {
        let s = order_status(c, token, id).await;
        (s != "pending").then_some(s)
    })
    .await
}

/// The shopper journey over HTTP: products, two shoppers, confirmations, payment, shipment, delivery,
/// a cancellation that releases stock; then stats, event history, notifications and `verify`.
pub async fn journey(rt: &Runtime) {
    let c = rt.client();
    let (admin, alice, bob) = (
        rt.token("root", true),
        rt.token("alice", false),
        rt.token("bob", false),
    );
    for (sku, stock) in [("MUG", 10), ("TEE", 5)] {
        c.ok("POST", "/products", Some(&admin), Some(json!({"sku": sku, "name": sku, "priceCents": 1000, "currency": "EUR", "stock": stock}))).await;
    }
    for (t, who) in [(&alice, "alice"), (&bob, "bob")] {
        c.ok(
            "POST",
            "/users",
            Some(t),
            Some(json!({"email": format!("{who}@example.com"), "name": who})),
        )
        .await;
    }
    c.ok(
        "POST",
        "/cart/items",
        Some(&alice),
        Some(json!({"sku": "MUG", "quantity": 2})),
    )
    .await;
    c.ok(
        "POST",
        "/cart/items",
        Some(&alice),
        Some(json!({"sku": "TEE", "quantity": 1})),
    )
    .await;
    c.ok(
        "POST",
        "/cart/items",
        Some(&bob),
        Some(json!({"sku": "MUG", "quantity": 4})),
    )
    .await;
    let a = c.ok("POST", "/cart/checkout", Some(&alice), None).await["orderId"]
        .as_str()
        .expect("id")
        .to_owned();
    let b = c.ok("POST", "/cart/checkout", Some(&bob), None).await["orderId"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(settled_status(&c, &alice, &a).await, "confirmed");
    assert_eq!(settled_status(&c, &bob, &b).await, "confirmed");
    assert_eq!(
        c.ok("GET", "/products/MUG", None, None).await["availableStock"],
        4
    );

    c.ok(
        "POST",
        &format!("/orders/{a}/payment"),
        Some(&alice),
        Some(json!({"amountCents": 3000})),
    )
    .await;
    // The warehouse ships once the saga has asked it to.
    eventually(c.patience, "fulfillment requested", || async {
        let h = c
            .ok(
                "GET",
                &format!("/admin/streams/order%23{a}/events"),
                Some(&admin),
                None,
            )
            .await;
        h.as_array()?
            .iter()
            .any(|e| e["eventType"] == "order.fulfillment.requested")
            .then_some(())
    })
    .await;
    c.ok(
        "POST",
        &format!("/orders/{a}/shipment"),
        Some(&admin),
        Some(json!({"carrier": "DHL", "trackingNumber": "T1"})),
    )
    .await;
    c.ok("POST", &format!("/orders/{a}/delivery"), Some(&admin), None)
        .await;
    c.ok(
        "POST",
        &format!("/orders/{b}/cancel"),
        Some(&bob),
        Some(json!({"reason": "changed my mind"})),
    )
    .await;
    quiet(&c).await;
    let mug = c.ok("GET", "/products/MUG", None, None).await;
    assert_eq!(
        (mug["onHand"].as_u64(), mug["reserved"].as_u64()),
        (Some(8), Some(0)),
        "shipped 2 left the shelf, bob's 4 released"
    );

    let stats = eventually(c.patience, "stats", || async {
        let s = c.ok("GET", "/admin/stats", Some(&admin), None).await;
        (s["ordersByStatus"] == json!({"cancelled": 1, "delivered": 1})).then_some(s)
    })
    .await;
    assert_eq!(stats["revenueCents"], json!({"EUR": 3000}));
    assert_eq!(stats["cartsStarted"], 2);

    let history = c
        .ok(
            "GET",
            &format!("/admin/streams/order%23{a}/events"),
            Some(&admin),
            None,
        )
        .await;
    let types: Vec<&str> = history
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["eventType"].as_str())
        .collect();
    assert_eq!(
        types,
        vec![
            "order.created",
            "order.confirmed",
            "order.paid",
            "order.fulfillment.requested",
            "order.shipped",
            "order.delivered"
        ]
    );

    // Every notification is recorded as notification.sent (through the
    // outbox locally, through SES on the AWS path), and nothing failed.
    quiet(&c).await;
    let events = rt.events().await;
    let sent: Vec<String> = events
        .iter()
        .filter(|e| e.event_type == "notification.sent")
        .map(|e| {
            format!(
                "{} {}",
                e.data["template"].as_str().unwrap_or(""),
                e.data["recipient"].as_str().unwrap_or("")
            )
        })
        .collect();
    for expected in [
        "welcome alice@example.com",
        "order-confirmed alice@example.com",
        "order-shipped alice@example.com",
        "order-cancelled bob@example.com",
    ] {
        assert!(sent.iter().any(|s| s == expected), "{expected} in {sent:?}");
    }
    assert!(
        !events.iter().any(|e| e.event_type == "notification.failed"),
        "no notification failed"
    );
    // Every event is in the audit chain, once, and the chain verifies.
    let audited: u64 = storefront_audit::verify_all(&*rt.stores().state)
        .await
        .expect("audit chain intact")
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(audited, events.len() as u64);
    if !rt.embedded() {
        return;
    }
    // The embedded runtime's outbox and its data-folder commands.
    let outbox: Vec<Value> = rt
        .stores()
        .state
        .query(storefront_store::keys::OUTBOX)
        .await
        .expect("outbox")
        .into_iter()
        .map(|i| i.value)
        .collect();
    let in_outbox: Vec<String> = outbox
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m["template"].as_str().unwrap_or(""),
                m["to"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(in_outbox.len(), sent.len(), "{in_outbox:?} vs {sent:?}");
    let (ok, out) = rt.cli(&["verify"]);
    assert!(ok, "{out}");
    assert!(out.contains("chain intact"), "{out}");
    let (ok, out) = rt.cli(&["events", "--stream", &format!("order#{a}")]);
    assert!(ok && out.contains("order.delivered"), "{out}");

    // Views rebuilt from scratch come out the same: the stats, and every
    // item of the state table (the cart and user views among them).
    let items = || async {
        rt.state()
            .await
            .into_iter()
            .map(|i| (i.pk, i.sk, i.version, i.value, i.expires_at.is_some()))
            .collect::<Vec<_>>()
    };
    let before = items().await;
    assert!(
        before.iter().any(|(pk, ..)| pk.starts_with("view#cart#"))
            && before.iter().any(|(pk, ..)| pk.starts_with("view#user#")),
        "the cart and user views exist to be rebuilt"
    );
    for handler in ["analytics", "cart", "user"] {
        let (ok, out) = rt.cli(&["replay", "--handler", handler]);
        assert!(ok && out.contains("views rebuilt"), "{handler}: {out}");
    }
    assert_eq!(c.ok("GET", "/admin/stats", Some(&admin), None).await, stats);
    assert_same("state items after the replays", &before, &items().await);
    let (ok, out) = rt.cli(&["replay", "--handler", "inventory"]);
    assert!(!ok && out.contains("cannot be replayed"), "{out}");
}

/// 50 shoppers check out the last 10 units at once: exactly 10 confirmed, 40 rejected, none left.
pub async fn overselling_race(rt: &Runtime) {
    let c = rt.client();
    let admin = rt.token("root", true);
    c.ok("POST", "/products", Some(&admin), Some(json!({"sku": "LAST", "name": "Last ones", "priceCents": 500, "currency": "EUR", "stock": 10}))).await;
    let shoppers: Vec<String> = (0..50).map(|i| rt.token(&format!("s{i}"), false)).collect();
    for t in &shoppers {
        c.ok(
            "POST",
            "/cart/items",
            Some(t),
            Some(json!({"sku": "LAST", "quantity": 1})),
        )
        .await;
    }
    let checkouts = shoppers.iter().map(|t| {
        let (c, t) = (c.clone(), t.clone());
        async move {
            c.ok("POST", "/cart/checkout", Some(&t), None).await["orderId"]
                .as_str()
                .expect("id")
                .to_owned()
        }
    });
    let orders = futures::future::join_all(checkouts).await;
    let mut confirmed = 0;
    let mut rejected = 0;
    for (t, id) in shoppers.iter().zip(&orders) {
        match settled_status(&c, t, id).await.as_str() {
            "confirmed" => confirmed += 1,
            "rejected" => rejected += 1,
            other => panic!("{id} is {other}"),
        }
    }
    assert_eq!((confirmed, rejected), (10, 40));
    let last = c.ok("GET", "/products/LAST", None, None).await;
    assert_eq!(
        (last["availableStock"].as_u64(), last["reserved"].as_u64()),
        (Some(0), Some(10))
    );
}

/// A failing handler retries, lands in its DLQ after maxReceiveCount, leaves the others unaffected,
/// and `dlq redrive` after the fault is removed heals it with no duplicate effect.
pub async fn failure_isolation_dlq_and_redrive(rt: &Runtime) {
    let c = rt.client();
    let (admin, carol) = (rt.token("root", true), rt.token("carol", false));
    c.ok("PUT", "/_local/faults/analytics", None, None).await;
    c.ok(
        "POST",
        "/products",
        Some(&admin),
        Some(
            json!({"sku": "MUG", "name": "Mug", "priceCents": 1000, "currency": "EUR", "stock": 5}),
        ),
    )
    .await;
    c.ok(
        "POST",
        "/cart/items",
        Some(&carol),
        Some(json!({"sku": "MUG", "quantity": 1})),
    )
    .await;
    let id = c.ok("POST", "/cart/checkout", Some(&carol), None).await["orderId"]
        .as_str()
        .expect("id")
        .to_owned();
    // The other handlers carry on.
    assert_eq!(settled_status(&c, &carol, &id).await, "confirmed");
    // analytics' messages go to its DLQ after 5 receives.
    let dead = eventually(c.patience, "analytics messages dead-lettered", || async {
        let d = c.ok("GET", "/_local/queues", None, None).await;
        (d["analytics"]["queue"] == 0 && d["analytics"]["dlq"].as_u64() >= Some(4))
            .then(|| d["analytics"]["dlq"].as_u64())
    })
    .await;
    let d = c.ok("GET", "/_local/queues", None, None).await;
    for other in [
        "audit",
        "cart",
        "inventory",
        "notification",
        "order-workflow",
        "user",
    ] {
        assert_eq!(d[other]["dlq"], 0, "{other} unaffected");
    }
    assert_eq!(
        c.ok("GET", "/admin/stats", Some(&admin), None).await["checkouts"],
        0,
        "analytics saw nothing"
    );
    let (ok, out) = rt.dlq(&["list", "--handler", "analytics"]);
    // Locally the list shows each message; on SQS, the DLQ's approximate depth.
    let listed = if rt.embedded() {
        "order.created".to_owned()
    } else {
        format!("~{} message(s)", dead.unwrap_or(0))
    };
    assert!(ok && out.contains(&listed), "{out}");

    c.ok("DELETE", "/_local/faults/analytics", None, None).await;
    let (ok, out) = rt.dlq(&["redrive", "--handler", "analytics"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("moved {} message(s)", dead.unwrap_or(0))),
        "{out}"
    );
    let stats = eventually(c.patience, "analytics healed", || async {
        let s = c.ok("GET", "/admin/stats", Some(&admin), None).await;
        (s["checkouts"] == 1).then_some(s)
    })
    .await;
    assert_eq!(stats["ordersByStatus"], json!({"confirmed": 1}));
    assert_eq!(stats["cartsStarted"], 1);
    // Redriving again (an empty DLQ) changes nothing.
    let (ok, out) = rt.dlq(&["redrive"]);
    assert!(ok, "{out}");
    quiet(&c).await;
    assert_eq!(c.ok("GET", "/admin/stats", Some(&admin), None).await, stats);
    let (ok, out) = rt.dlq(&["redrive", "--handler", "nope"]);
    assert!(!ok && out.contains("no handler"), "{out}");
}

/// Every event delivered to every handler a second time (the feed rewound
/// to the start of the log): nothing is appended, no view, stock, stat,
/// audit record or notification changes.
pub async fn duplicate_deliveries(rt: &Runtime) {
    let c = rt.client();
    let (admin, dora, eve) = (
        rt.token("root", true),
        rt.token("dora", false),
        rt.token("eve", false),
    );
    c.ok(
        "POST",
        "/products",
        Some(&admin),
        Some(
            json!({"sku": "CUP", "name": "Cup", "priceCents": 700, "currency": "EUR", "stock": 20}),
        ),
    )
    .await;
    let mut orders = Vec::new();
    for (t, who) in [(&dora, "dora"), (&eve, "eve")] {
        c.ok(
            "POST",
            "/users",
            Some(t),
            Some(json!({"email": format!("{who}@example.com"), "name": who})),
        )
        .await;
        c.ok(
            "POST",
            "/cart/items",
            Some(t),
            Some(json!({"sku": "CUP", "quantity": 3})),
        )
        .await;
        let id = c.ok("POST", "/cart/checkout", Some(t), None).await["orderId"]
            .as_str()
            .expect("id")
            .to_owned();
        assert_eq!(settled_status(&c, t, &id).await, "confirmed");
        orders.push((t.clone(), id));
    }
    c.ok(
        "POST",
        &format!("/orders/{}/payment", orders[0].1),
        Some(&dora),
        Some(json!({"amountCents": 2100})),
    )
    .await;
    c.ok(
        "POST",
        &format!("/orders/{}/cancel", orders[1].1),
        Some(&eve),
        Some(json!({"reason": "no"})),
    )
    .await;
    quiet(&c).await;
    let observe = || async {
        let mut statuses = Vec::new();
        for (t, id) in &orders {
            statuses.push(order_status(&c, t, id).await);
        }
        let events: Vec<(String, u64, String)> = rt
            .events()
            .await
            .into_iter()
            .map(|e| (e.stream_id, e.version, e.event_type))
            .collect();
        let state: Vec<(String, String, u64, Value)> = rt
            .state()
            .await
            .into_iter()
            // The audit head's and the in-progress records' own bookkeeping aside, every item must stay as it was.
            .map(|i| (i.pk, i.sk, i.version, i.value))
            .collect();
        (
            statuses,
            c.ok("GET", "/products/CUP", None, None).await,
            c.ok("GET", "/admin/stats", Some(&admin), None).await,
            events,
            state,
        )
    };
    let before = observe().await;
    assert_eq!(before.0, ["paid", "cancelled"]);
    let log_length = before.3.len() as u64;
    c.ok("POST", "/_local/feed/rewind", None, None).await;
    // The feed starts over: wait until it has published the whole log again.
    eventually(
        c.patience,
        "the feed went through the log again",
        || async {
            let (_, counts) = c.send("GET", "/_local/events/count", None, None).await;
            (counts["published"].as_u64() == Some(log_length)).then_some(())
        },
    )
    .await;
    quiet(&c).await;
    let after = observe().await;
    assert_eq!(after.0, before.0, "order statuses");
    assert_eq!(after.1, before.1, "stock");
    assert_eq!(after.2, before.2, "stats");
    assert_same(
        "events (none appended by a redelivery)",
        &before.3,
        &after.3,
    );
    assert_same("views and records", &before.4, &after.4);
}

/// Fails with only the elements that differ, not two whole dumps.
pub fn assert_same<T: PartialEq + std::fmt::Debug>(what: &str, before: &[T], after: &[T]) {
    let gone: Vec<&T> = before.iter().filter(|x| !after.contains(x)).collect();
    let new: Vec<&T> = after.iter().filter(|x| !before.contains(x)).collect();
    assert!(
        gone.is_empty() && new.is_empty() && before.len() == after.len(),
        "{what} changed:\n  only before: {gone:?}\n  only after: {new:?}"
    );
}
