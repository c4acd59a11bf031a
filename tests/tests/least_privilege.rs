//! Least privilege, derived: each function's DynamoDB grants in
//! template.yaml are exactly the IAM actions its code needs, on exactly the
//! tables it touches. Every function runs here on its own recording view of
//! one SQLite store through a scenario that walks every path a Lambda of it
//! takes (commands and refusals, an Idempotency-Key freed by a 400, the
//! saga's confirmation, payment, cancellation and expiry, abandoned carts,
//! a send that fails and is retried, duplicate deliveries, snapshots); each
//! port call it made is turned into the actions the DynamoDB adapter sends
//! for it (`storefront_store::iam`, itself checked against the wire in
//! `shared/store/tests/dynamodb_faults.rs`). A grant no path uses fails the
//! test, and so does a path whose action is not granted. A new code path
//! belongs in this scenario.
//!
//! What only the operator's tooling runs (`storefront replay` resetting a
//! projection, `dlq redrive`) is not a Lambda's path and needs no grant.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};
use storefront_api::AppState;

use storefront_notification::{Message, Notifier, NotifyError};
use storefront_runtime::{EventHandler, Globals, Stores};
use storefront_store::EventLog;
use storefront_store::iam::Table;
use storefront_store::recording::Recording;
use storefront_store::sqlite::SqliteStore;
use storefront_template::Template;

/// One function's view of the store: every call goes through, and is
/// counted (`storefront_store::recording`).
fn recording(store: &SqliteStore) -> Arc<Recording> {
    Recording::new(Arc::new(store.clone()), Arc::new(store.clone()))
}

/// A function's stores through its recording, with small snapshots, so
/// that every function's loads write some.
fn stores_of(recording: &Arc<Recording>) -> Stores {
    Stores {
        events: recording.clone(),
        state: recording.clone(),
        snapshot_every: 2,
    }
}

/// The (table, action) pairs a function's calls need on DynamoDB.
fn needs_of(recording: &Recording) -> BTreeSet<(Table, String)> {
    recording
        .needs()
        .into_iter()
        .map(|(t, a)| (t, a.to_owned()))
        .collect()
}

/// SES's stand-in: its first send fails as a throttle would (the handler
/// frees its claim and lets SQS retry), every later one goes out.
struct FlakySes {
    sent: Mutex<usize>,
}

#[async_trait]
impl Notifier for FlakySes {
    fn channel(&self) -> &'static str {
        "email"
    }

    async fn send(&self, _message: &Message) -> Result<(), NotifyError> {
        let mut sent = self.sent.lock().expect("sent");
        *sent += 1;
        if *sent == 1 {
            return Err(NotifyError::Transient("throttled".into()));
        }
        Ok(())
    }
}

struct Scenario {
    store: SqliteStore,
    api: axum::Router,
    handlers: Vec<Arc<dyn EventHandler>>,
    cursor: u64,
}

impl Scenario {
    async fn call(
        &self,
        method: &str,
        path: &str,
        who: &str,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> (u16, Value) {
        let headers: Vec<(&str, &str)> = idempotency_key
            .map(|key| ("idempotency-key", key))
            .into_iter()
            .collect();
        let (status, _, value) = common::send(
            &self.api,
            method,
            path,
            Some((who, who == "root")),
            &headers,
            body,
        )
        .await;
        (status.as_u16(), value)
    }

    async fn ok(&self, method: &str, path: &str, who: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(method, path, who, body, None).await;
        assert!(status < 300, "{method} {path} as {who}: {status} {value}");
        value
    }

    /// Delivers every new event to each handler that consumes its type, twice
    /// (the second delivery is a duplicate, as SQS may hand over); a
    /// delivery that fails (the flaky send) is retried, as SQS would.
    async fn settle(&mut self) {
        loop {
            let logged = self
                .store
                .read_after(self.cursor, 10_000)
                .await
                .expect("log");
            let Some(last) = logged.last() else { return };
            self.cursor = last.position;
            for _ in 0..2 {
                for l in &logged {
                    for h in &self.handlers {
                        if h.consumes()
                            .iter()
                            .any(|t| t.name() == l.envelope.event_type)
                        {
                            let mut tries = 0;
                            while let Err(e) = h.handle(&l.envelope).await {
                                tries += 1;
                                assert!(tries < 3, "{}: {e}", h.name());
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The functions' DynamoDB grants in template.yaml: binary → (table, action).
fn granted(template: &Template) -> BTreeMap<String, BTreeSet<(Table, String)>> {
    let mut out = BTreeMap::new();
    for f in template.functions.values() {
        let mut grants = BTreeSet::new();
        for policy in &f.policies {
            for statement in policy["Statement"].as_array().into_iter().flatten() {
                let table = match storefront_template::model::referenced(&statement["Resource"])
                    .as_deref()
                {
                    Some("EventsTable") => Table::Events,
                    Some("StateTable") => Table::State,
                    _ => continue,
                };
                let actions: Vec<String> = match &statement["Action"] {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) => a
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                    _ => vec![],
                };
                for a in actions.into_iter().filter(|a| a.starts_with("dynamodb:")) {
                    grants.insert((table, a));
                }
            }
        }
        out.insert(f.binary.clone(), grants);
    }
    out
}

#[tokio::test]
async fn each_function_is_granted_exactly_what_its_store_calls_need() {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(dir.path().join("shop.db")).expect("sqlite");
    let globals = Globals {
        snapshot_every: 2,
        ..Globals::default()
    };

    let api = recording(&store);
    let api_settings = storefront_api::Settings {
        globals: globals.clone(),
    };
    let api_router = storefront_api::app(AppState::new(stores_of(&api), &api_settings));

    let recorders: Vec<(&str, Arc<Recording>)> = [
        "storefront-inventory",
        "storefront-order-workflow",
        "storefront-cart",
        "storefront-notification",
        "storefront-audit",
        "storefront-analytics",
        "storefront-user",
        "storefront-cart-sweeper",
    ]
    .into_iter()
    .map(|b| (b, recording(&store)))
    .collect();
    let stores = |binary: &str| {
        recorders
            .iter()
            .find(|(b, _)| *b == binary)
            .map(|(_, r)| stores_of(r))
            .expect("recorder")
    };
    let handlers: Vec<Arc<dyn EventHandler>> = vec![
        Arc::new(storefront_inventory::Inventory::new(
            stores("storefront-inventory"),
            &storefront_inventory::Settings {
                globals: globals.clone(),
                low_stock_threshold: 3,
            },
        )),
        Arc::new(storefront_order_workflow::OrderWorkflow::new(
            stores("storefront-order-workflow"),
            &Default::default(),
        )),
        Arc::new(storefront_cart::CartViews::new(
            stores("storefront-cart"),
            &globals,
        )),
        Arc::new(storefront_notification::Notifications::new(
            stores("storefront-notification"),
            &storefront_notification::Settings {
                globals: globals.clone(),
                sender_email: "shop@example.com".into(),
            },
            Arc::new(FlakySes {
                sent: Mutex::default(),
            }),
        )),
        Arc::new(storefront_audit::Audit::new(
            stores("storefront-audit"),
            &globals,
        )),
        Arc::new(storefront_analytics::Analytics::new(
            stores("storefront-analytics"),
            &globals,
        )),
        Arc::new(storefront_user::Users::new(
            stores("storefront-user"),
            &globals,
        )),
    ];
    // A load that folds SNAPSHOT_EVERY events or more writes a snapshot, in
    // every function that loads: the sweeper's is set lower than the
    // writers' here so that its path runs too (each function has its own).
    let sweeper = storefront_cart_sweeper::Sweeper::new(
        stores("storefront-cart-sweeper"),
        &storefront_cart_sweeper::Settings {
            globals: Globals {
                snapshot_every: 1,
                ..globals.clone()
            },
            ..Default::default()
        },
    );
    let mut s = Scenario {
        store: store.clone(),
        api: api_router,
        handlers,
        cursor: 0,
    };

    // The catalogue, by an admin.
    for (sku, stock) in [("MUG", 10), ("TEE", 5), ("CAP", 1)] {
        s.ok("POST", "/products", "root", Some(json!({"sku": sku, "name": sku, "priceCents": 500, "currency": "EUR", "stock": stock}))).await;
    }
    s.ok(
        "PATCH",
        "/products/MUG",
        "root",
        Some(json!({"name": "Mug", "priceCents": 600})),
    )
    .await;
    s.ok(
        "POST",
        "/products/MUG/stock",
        "root",
        Some(json!({"delta": 3, "reason": "count"})),
    )
    .await;
    s.ok("GET", "/products", "alice", None).await;
    s.ok("GET", "/products/MUG", "alice", None).await;
    // Shoppers register and fill carts.
    for who in ["alice", "bob", "carol", "dave"] {
        s.ok("POST", "/users", who, Some(json!({"name": who})))
            .await;
    }
    s.settle().await;
    s.ok("GET", "/users/me", "alice", None).await;
    s.ok(
        "POST",
        "/cart/items",
        "alice",
        Some(json!({"sku": "MUG", "quantity": 2})),
    )
    .await;
    s.ok(
        "PATCH",
        "/cart/items/MUG",
        "alice",
        Some(json!({"quantity": 3})),
    )
    .await;
    s.ok(
        "POST",
        "/cart/items",
        "alice",
        Some(json!({"sku": "TEE", "quantity": 1})),
    )
    .await;
    s.ok("DELETE", "/cart/items/TEE", "alice", None).await;
    s.ok("GET", "/cart", "alice", None).await;
    // An Idempotency-Key whose request is malformed is freed (a delete);
    // one whose request is refused (422) is kept.
    let (status, _) = s
        .call(
            "POST",
            "/cart/items",
            "alice",
            Some(json!({"sku": 7})),
            Some("k-bad"),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .call(
            "POST",
            "/cart/items",
            "alice",
            Some(json!({"sku": "NOPE", "quantity": 1})),
            Some("k-422"),
        )
        .await;
    assert!(status == 404 || status == 422, "{status}");
    let (status, _) = s
        .call(
            "POST",
            "/cart/items",
            "bob",
            Some(json!({"sku": "TEE", "quantity": 1})),
            Some("k-ok"),
        )
        .await;
    assert_eq!(status, 200);
    s.ok(
        "POST",
        "/cart/items",
        "carol",
        Some(json!({"sku": "CAP", "quantity": 1})),
    )
    .await;
    s.ok(
        "POST",
        "/cart/items",
        "dave",
        Some(json!({"sku": "MUG", "quantity": 1})),
    )
    .await;
    let order = |v: Value| v["orderId"].as_str().expect("order id").to_owned();
    let paid = order(s.ok("POST", "/cart/checkout", "alice", None).await);
    let cancelled = order(s.ok("POST", "/cart/checkout", "bob", None).await);
    let expired = order(s.ok("POST", "/cart/checkout", "carol", None).await);
    s.settle().await;
    // Pay, ship and deliver one; cancel one; leave one unpaid.
    let total = s.ok("GET", &format!("/orders/{paid}"), "alice", None).await["totalCents"]
        .as_i64()
        .expect("total");
    s.ok(
        "POST",
        &format!("/orders/{paid}/payment"),
        "alice",
        Some(json!({"amountCents": total})),
    )
    .await;
    s.settle().await;
    s.ok(
        "POST",
        &format!("/orders/{paid}/shipment"),
        "root",
        Some(json!({"carrier": "UPS", "trackingNumber": "1Z"})),
    )
    .await;
    s.ok("POST", &format!("/orders/{paid}/delivery"), "root", None)
        .await;
    s.ok(
        "POST",
        &format!("/orders/{cancelled}/cancel"),
        "bob",
        Some(json!({"reason": "changed my mind"})),
    )
    .await;
    s.ok("DELETE", "/products/TEE", "root", None).await;
    s.settle().await;
    s.ok("GET", "/orders", "alice", None).await;
    s.ok("GET", "/admin/stats", "root", None).await;
    s.ok(
        "GET",
        &format!("/admin/streams/order%23{paid}/events"),
        "root",
        None,
    )
    .await;
    // A day later: dave's cart is abandoned, carol's order expires unpaid.
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 86_400;
    let report = sweeper.sweep(later).await.expect("sweep");
    s.settle().await;
    assert_eq!(
        (report.carts_abandoned, report.orders_expired),
        (1, 1),
        "dave's cart abandoned, carol's order expired: {report:?}"
    );
    let status = s
        .ok("GET", &format!("/orders/{expired}"), "carol", None)
        .await["status"]
        .clone();
    assert_eq!(status, "cancelled", "the unpaid order expired");

    let template =
        Template::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).expect("template");
    let granted = granted(&template);
    let mut needs: BTreeMap<String, BTreeSet<(Table, String)>> = recorders
        .iter()
        .map(|(b, r)| ((*b).to_owned(), needs_of(r)))
        .collect();
    needs.insert("storefront-api".into(), needs_of(&api));
    // The publisher reads the stream through its event source mapping (SAM
    // grants that) and writes nothing to either table.
    needs.insert("storefront-publisher".into(), BTreeSet::new());
    assert_eq!(
        needs.keys().collect::<Vec<_>>(),
        granted.keys().collect::<Vec<_>>(),
        "every function of the template is exercised"
    );
    let mut wrong = Vec::new();
    for (binary, need) in &needs {
        let grant = &granted[binary];
        let unused: Vec<_> = grant.difference(need).collect();
        let missing: Vec<_> = need.difference(grant).collect();
        if !unused.is_empty() || !missing.is_empty() {
            wrong.push(format!(
                "{binary}: granted but never used {unused:?}; used but not granted {missing:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "template.yaml policies:\n{}",
        wrong.join("\n")
    );
}
