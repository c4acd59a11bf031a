//! End to end through the running local runtime over HTTP: the journey, the
//! overselling race, failure isolation with the DLQ and redrive, and crash
//! safety under SIGKILL. Each test starts the real binary on a free port
//! with its own data folder.

mod common;

use common::{Client, Runtime, eventually, quiet};
use serde_json::{Value, json};
use storefront_store::{EventLog, StateStore};

fn data() -> tempfile::TempDir {
    tempfile::tempdir().expect("data dir")
}

async fn order_status(c: &Client, token: &str, id: &str) -> String {
    c.ok("GET", &format!("/orders/{id}"), Some(token), None)
        .await["status"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

async fn settled_status(c: &Client, token: &str, id: &str) -> String {
    eventually(30, "order leaves pending", || async {
        let s = order_status(c, token, id).await;
        (s != "pending").then_some(s)
    })
    .await
}

fn store(rt: &Runtime) -> storefront_store::sqlite::SqliteStore {
    storefront_store::sqlite::SqliteStore::open(rt.data.join("events.db")).expect("open events.db")
}

/// The shopper journey over HTTP: products, two shoppers, confirmations, payment, shipment, delivery,
/// a cancellation that releases stock; then stats, event history, notifications and `verify`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey() {
    let dir = data();
    let rt = Runtime::start(dir.path());
    let c = Client::new(&rt.base);
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
    eventually(30, "fulfillment requested", || async {
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

    let stats = eventually(30, "stats", || async {
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

    let outbox: Vec<Value> = store(&rt)
        .query("outbox")
        .await
        .expect("outbox")
        .into_iter()
        .map(|i| i.value)
        .collect();
    let sent: Vec<String> = outbox
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m["template"].as_str().unwrap_or(""),
                m["to"].as_str().unwrap_or("")
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
    let (ok, out) = rt.cli(&["verify"]);
    assert!(ok, "{out}");
    assert!(out.contains("chain intact"), "{out}");
    let (ok, out) = rt.cli(&["events", "--stream", &format!("order#{a}")]);
    assert!(ok && out.contains("order.delivered"), "{out}");

    // Views rebuilt from scratch come out the same.
    for handler in ["analytics", "cart", "user"] {
        let (ok, out) = rt.cli(&["replay", "--handler", handler]);
        assert!(ok && out.contains("views rebuilt"), "{handler}: {out}");
    }
    assert_eq!(c.ok("GET", "/admin/stats", Some(&admin), None).await, stats);
    let (ok, out) = rt.cli(&["replay", "--handler", "inventory"]);
    assert!(!ok && out.contains("cannot be replayed"), "{out}");
}

/// 50 shoppers check out the last 10 units at once: exactly 10 confirmed, 40 rejected, none left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overselling_race_over_http() {
    let dir = data();
    let rt = Runtime::start(dir.path());
    let c = Client::new(&rt.base);
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
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_isolation_dlq_and_redrive() {
    let dir = data();
    let rt = Runtime::start(dir.path());
    let c = Client::new(&rt.base);
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
    let dead = eventually(30, "analytics messages dead-lettered", || async {
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
    let (ok, out) = rt.cli(&["dlq", "list", "--handler", "analytics"]);
    assert!(ok && out.contains("order.created"), "{out}");

    c.ok("DELETE", "/_local/faults/analytics", None, None).await;
    let (ok, out) = rt.cli(&["dlq", "redrive", "--handler", "analytics"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("moved {} message(s)", dead.unwrap_or(0))),
        "{out}"
    );
    let stats = eventually(30, "analytics healed", || async {
        let s = c.ok("GET", "/admin/stats", Some(&admin), None).await;
        (s["checkouts"] == 1).then_some(s)
    })
    .await;
    assert_eq!(stats["ordersByStatus"], json!({"confirmed": 1}));
    assert_eq!(stats["cartsStarted"], 1);
    // Redriving again (an empty DLQ) changes nothing.
    let (ok, out) = rt.cli(&["dlq", "redrive"]);
    assert!(ok, "{out}");
    quiet(&c).await;
    assert_eq!(c.ok("GET", "/admin/stats", Some(&admin), None).await, stats);
    let (ok, out) = rt.cli(&["dlq", "redrive", "--handler", "nope"]);
    assert!(!ok && out.contains("no handler"), "{out}");
}

/// SIGKILL in the middle of a load (40 shoppers, up to 10 checkouts each), then a restart on the
/// same data: every accepted command's events are stored once and every handler processed every
/// event once in effect (nothing lost, nothing doubled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_safety_under_sigkill() {
    let dir = data();
    let rt = Runtime::start(dir.path());
    let c = Client::new(&rt.base);
    let admin = rt.token("root", true);
    c.ok("POST", "/products", Some(&admin), Some(json!({"sku": "MUG", "name": "Mug", "priceCents": 100, "currency": "EUR", "stock": 1000}))).await;
    // 40 shoppers each add and check out, concurrently; the runtime is killed while they run.
    let tokens: Vec<String> = (0..40).map(|i| rt.token(&format!("k{i}"), false)).collect();
    let load = tokens.iter().map(|t| {
        let (c, t) = (c.clone(), t.clone());
        async move {
            let mut accepted = Vec::new();
            for _ in 0..10 {
                match c
                    .try_send(
                        "POST",
                        "/cart/items",
                        Some(&t),
                        Some(json!({"sku": "MUG", "quantity": 1})),
                    )
                    .await
                {
                    Some((200, _)) => {}
                    _ => break,
                }
                match c.try_send("POST", "/cart/checkout", Some(&t), None).await {
                    Some((201, body)) => {
                        accepted.push(body["orderId"].as_str().unwrap_or("").to_owned())
                    }
                    _ => break,
                }
            }
            accepted
        }
    });
    let killer = async {
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        let pid = rt.child.id();
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    };
    let started = std::time::Instant::now();
    let (results, ()) = tokio::join!(futures::future::join_all(load), killer);
    eprintln!("load done after {:?}", started.elapsed());
    let accepted: Vec<String> = results.into_iter().flatten().collect();
    assert!(
        !accepted.is_empty(),
        "some commands were accepted before the kill"
    );
    assert!(
        accepted.len() < 400,
        "the kill cut the load short ({} of 400 checkouts accepted)",
        accepted.len()
    );
    drop(rt);

    let rt = Runtime::start(dir.path());
    eprintln!("restarted after {:?}", started.elapsed());
    let c = Client::new(&rt.base);
    quiet(&c).await;
    eprintln!("quiet after {:?}", started.elapsed());
    let s = store(&rt);
    let log: Vec<storefront_domain::EventEnvelope> = s
        .read_after(0, 1_000_000)
        .await
        .expect("log")
        .into_iter()
        .map(|l| l.envelope)
        .collect();
    // Stored once: no event id twice, and every accepted checkout has exactly one order.created.
    let ids: std::collections::HashSet<&str> = log.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), log.len());
    for id in &accepted {
        let created = log
            .iter()
            .filter(|e| e.stream_id == format!("order#{id}") && e.event_type == "order.created")
            .count();
        assert_eq!(created, 1, "accepted order {id} stored once");
    }
    // Processed once in effect: every order confirmed exactly once, stock reserved exactly once per order.
    let orders: Vec<&str> = log
        .iter()
        .filter(|e| e.event_type == "order.created")
        .map(|e| e.stream_id.as_str())
        .collect();
    let admin = rt.token("root", true);
    for o in &orders {
        let confirmations = log
            .iter()
            .filter(|e| e.stream_id == *o && e.event_type == "order.confirmed")
            .count();
        assert_eq!(confirmations, 1, "{o} confirmed once");
    }
    let reservations = log
        .iter()
        .filter(|e| e.event_type == "inventory.stock.reserved")
        .count();
    assert_eq!(reservations, orders.len());
    let mug = c.ok("GET", "/products/MUG", None, None).await;
    assert_eq!(mug["reserved"].as_u64(), Some(orders.len() as u64));
    // Every event audited once, and the analytics agree.
    let (ok, out) = rt.cli(&["verify"]);
    assert!(ok, "{out}");
    let audited: u64 = storefront_audit::verify_all(&s)
        .await
        .expect("chain")
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(audited, log.len() as u64);
    let stats = c.ok("GET", "/admin/stats", Some(&admin), None).await;
    assert_eq!(stats["checkouts"].as_u64(), Some(orders.len() as u64));
    eprintln!(
        "{} commands accepted before the kill; {} orders, {} events after restart",
        accepted.len(),
        orders.len(),
        log.len()
    );
}
