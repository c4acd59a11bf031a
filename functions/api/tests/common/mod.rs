//! A small client for the Router in-process (tower `oneshot`), speaking as
//! anonymous, a shopper or an admin.

#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use storefront_api::{AppState, Claims, Settings, app};
use storefront_runtime::Globals;
use tower::ServiceExt;

/// Who sends a request.
#[derive(Clone, Copy, Debug)]
pub enum Who<'a> {
    Anonymous,
    Shopper(&'a str),
    Admin(&'a str),
}

/// The shoppers and the admin most tests speak as.
pub const ALICE: Who = Who::Shopper("alice");
pub const BOB: Who = Who::Shopper("bob");
pub const ADMIN: Who = Who::Admin("root");

/// How many events the store holds.
pub async fn event_count(store: &storefront_store::sqlite::SqliteStore) -> usize {
    use storefront_store::EventLog;
    store.read_after(0, 1_000_000).await.expect("log").len()
}

/// A response, decoded.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
    pub replayed: bool,
    pub retry_after: Option<String>,
}

impl Reply {
    /// Asserts the status, and that errors are problem+json with a detail.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        if status >= 400 {
            assert_eq!(
                self.content_type, "application/problem+json",
                "errors are problems"
            );
            assert_eq!(self.body["status"], status);
            assert!(
                self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "a detail: {}",
                self.body
            );
        }
        self
    }
}

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
}

impl TestApp {
    pub fn new(state: AppState) -> Self {
        TestApp {
            router: app(state.clone()),
            state,
        }
    }

    pub fn sqlite() -> (Self, storefront_store::sqlite::SqliteStore) {
        let dir = tempfile::tempdir().expect("dir");
        let store =
            storefront_store::sqlite::SqliteStore::open(dir.path().join("api.db")).expect("sqlite");
        std::mem::forget(dir);
        (
            TestApp::new(AppState::sqlite(
                store.clone(),
                Settings {
                    globals: Globals {
                        snapshot_every: 5,
                        ..Globals::default()
                    },
                },
            )),
            store,
        )
    }

    pub async fn raw(&self, request: Request<Body>) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let replayed = response.headers().contains_key("idempotent-replayed");
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            content_type,
            body,
            replayed,
            retry_after,
        }
    }

    pub fn build(
        method: &str,
        path: &str,
        who: Who<'_>,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Request<Body> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            builder = builder.header("idempotency-key", k);
        }
        let body = match body {
            Some(v) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let mut request = builder.body(body).expect("request");
        match who {
            Who::Anonymous => {}
            Who::Shopper(sub) => {
                request.extensions_mut().insert(Claims {
                    sub: sub.into(),
                    groups: vec![],
                    email: Some(format!("{sub}@example.com")),
                });
            }
            Who::Admin(sub) => {
                request.extensions_mut().insert(Claims {
                    sub: sub.into(),
                    groups: vec!["admin".into()],
                    email: Some(format!("{sub}@example.com")),
                });
            }
        }
        request
    }

    pub async fn call(&self, method: &str, path: &str, who: Who<'_>, body: Option<Value>) -> Reply {
        self.raw(Self::build(method, path, who, body.as_ref(), None))
            .await
    }

    pub async fn call_with_key(
        &self,
        method: &str,
        path: &str,
        who: Who<'_>,
        body: Option<Value>,
        key: &str,
    ) -> Reply {
        self.raw(Self::build(method, path, who, body.as_ref(), Some(key)))
            .await
    }

    pub async fn get(&self, path: &str, who: Who<'_>) -> Reply {
        self.call("GET", path, who, None).await
    }

    pub async fn post(&self, path: &str, who: Who<'_>, body: Value) -> Reply {
        self.call("POST", path, who, Some(body)).await
    }

    /// Sends the same keyed request `n` times at once; asserts that exactly
    /// one ran: every answer is that one's (status and body) or a 409 with
    /// `Retry-After` while it was running, never a second decision's; then a
    /// retry with the key replays it. Returns the answer.
    pub async fn same_key_at_once(
        self: &std::sync::Arc<Self>,
        path: &'static str,
        who: Who<'static>,
        body: Value,
        key: &'static str,
        n: usize,
    ) -> Reply {
        let mut tasks = Vec::new();
        for _ in 0..n {
            let (t, body) = (self.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                t.call_with_key("POST", path, who, Some(body), key).await
            }));
        }
        let mut answers = Vec::new();
        for task in tasks {
            let reply = task.await.expect("task");
            if reply.status == StatusCode::CONFLICT {
                assert_eq!(
                    reply.body["type"], "urn:storefront:problem:in-progress",
                    "{reply:?}"
                );
                assert_eq!(reply.retry_after.as_deref(), Some("1"), "{reply:?}");
            } else {
                answers.push((reply.status, reply.body));
            }
        }
        assert!(!answers.is_empty(), "one of them ran");
        assert!(
            answers.windows(2).all(|w| w[0] == w[1]),
            "every answer is the first one: {answers:?}"
        );
        let again = self.call_with_key("POST", path, who, Some(body), key).await;
        assert!(again.replayed, "{again:?}");
        assert_eq!((again.status, &again.body), (answers[0].0, &answers[0].1));
        again
    }

    /// Creates a product as the admin.
    pub async fn product(&self, sku: &str, price_cents: i64, stock: i64) {
        self.post(
            "/products",
            Who::Admin("root"),
            serde_json::json!({"sku": sku, "name": format!("Product {sku}"), "priceCents": price_cents, "currency": "EUR", "stock": stock}),
        )
        .await
        .expect(201);
    }

    /// The saga's step, done by hand until the order-workflow handler runs: confirm a pending order.
    pub async fn confirm(&self, order_id: &str) {
        use storefront_domain::order::{OrderCommand, OrderState};
        use storefront_domain::{Aggregate, EventMeta, StreamId, seal_batch};
        let stream = StreamId::parse(&format!("order#{order_id}")).expect("stream");
        let loaded =
            storefront_store::aggregate::load_full::<OrderState>(&*self.state.events, &stream)
                .await
                .expect("load");
        let events = loaded
            .state
            .decide(&OrderCommand::Confirm)
            .expect("confirm");
        let sealed = seal_batch(&stream, loaded.version, &events, |_| EventMeta {
            event_id: storefront_store::clock::new_event_id(),
            occurred_at: storefront_store::clock::now_rfc3339(),
            correlation_id: "test".into(),
            causation_id: None,
            actor: "system:test".into(),
        });
        self.state
            .events
            .append(&stream, loaded.version, sealed)
            .await
            .expect("append");
    }
}

/// Concurrent requests sharing an Idempotency-Key on add-item, checkout and
/// payment each run once: one effect, one answer for all, never a 422 from a
/// second decision (the cart already checked out, the order already paid).
pub async fn same_key_requests_run_once(t: std::sync::Arc<TestApp>) {
    let ann = Who::Shopper("ann");
    t.product("MUG", 1250, 10).await;
    let added = t
        .same_key_at_once(
            "/cart/items",
            ann,
            serde_json::json!({"sku": "MUG", "quantity": 2}),
            "add-1",
            6,
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{added:?}");
    assert_eq!(t.get("/cart", ann).await.body["lines"][0]["quantity"], 2);

    let checkout = t
        .same_key_at_once(
            "/cart/checkout",
            ann,
            serde_json::json!({}),
            "checkout-1",
            6,
        )
        .await;
    assert_eq!(checkout.status, StatusCode::CREATED, "{checkout:?}");
    let order_id = checkout.body["orderId"]
        .as_str()
        .expect("order id")
        .to_owned();
    let orders = t.get("/orders", ann).await;
    assert_eq!(orders.body.as_array().map(Vec::len), Some(1), "one order");
    t.confirm(&order_id).await;

    let payment: &'static str = Box::leak(format!("/orders/{order_id}/payment").into_boxed_str());
    let paid = t
        .same_key_at_once(
            payment,
            ann,
            serde_json::json!({"amountCents": 2500}),
            "pay-1",
            6,
        )
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
    let order = t.get(&format!("/orders/{order_id}"), ann).await;
    assert_eq!(order.body["status"], "paid");
    let stream = storefront_domain::StreamId::parse(&format!("order#{order_id}")).expect("stream");
    let paid_events = t
        .state
        .events
        .load(&stream, 0)
        .await
        .expect("load")
        .iter()
        .filter(|e| e.event_type == "order.paid")
        .count();
    assert_eq!(paid_events, 1, "paid once");
}

/// A profile's life through the API, the same on every store: a name
/// change and an email change (only to the token's verified address) emit
/// `user.profile.updated`; closing the account (`user.deactivated`) stops
/// adding to a cart, checking out and paying with 403, while the order placed
/// before keeps its state and reads as before.
pub async fn profile_and_closing(t: &TestApp) {
    use serde_json::json;
    let alice = Who::Shopper("alice");
    t.product("MUG", 1250, 10).await;
    t.call("PATCH", "/users/me", alice, Some(json!({"name": "Ally"})))
        .await
        .expect(404);
    t.post("/users", alice, json!({"name": "Alice"}))
        .await
        .expect(201);
    let renamed = t
        .call("PATCH", "/users/me", alice, Some(json!({"name": "Ally"})))
        .await
        .expect(200)
        .body;
    assert_eq!(
        (renamed["name"].as_str(), renamed["version"].as_u64()),
        (Some("Ally"), Some(2))
    );
    // The same again changes nothing.
    let same = t
        .call("PATCH", "/users/me", alice, Some(json!({"name": "Ally"})))
        .await
        .expect(200)
        .body;
    assert_eq!(same["version"], 2, "no event for no change");
    // Another address than the token's verified one is refused, and so is a malformed one.
    t.call(
        "PATCH",
        "/users/me",
        alice,
        Some(json!({"email": "ally@elsewhere.example"})),
    )
    .await
    .expect(422);
    t.call(
        "PATCH",
        "/users/me",
        alice,
        Some(json!({"email": "not an address"})),
    )
    .await
    .expect(400);
    t.call("PATCH", "/users/me", alice, Some(json!({})))
        .await
        .expect(400);
    // The token's own address, in another case, is stored as the token has it.
    let mailed = t
        .call(
            "PATCH",
            "/users/me",
            alice,
            Some(json!({"email": "ALICE@example.com", "name": "Alice"})),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        (
            mailed["email"].as_str(),
            mailed["name"].as_str(),
            mailed["version"].as_u64()
        ),
        (Some("alice@example.com"), Some("Alice"), Some(3)),
        "the address equals the stored one, so only the name changed"
    );

    t.post("/cart/items", alice, json!({"sku": "MUG", "quantity": 1}))
        .await
        .expect(200);
    let order = t
        .call("POST", "/cart/checkout", alice, None)
        .await
        .expect(201)
        .body;
    let order_id = order["orderId"].as_str().expect("an order id").to_owned();
    t.post("/cart/items", alice, json!({"sku": "MUG", "quantity": 1}))
        .await
        .expect(200);

    let closed = t
        .call("DELETE", "/users/me", alice, None)
        .await
        .expect(200)
        .body;
    assert_eq!(closed["status"], "deactivated");
    let refused = t
        .post("/cart/items", alice, json!({"sku": "MUG", "quantity": 1}))
        .await
        .expect(403)
        .body;
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|d| d.contains("account is closed")),
        "{refused}"
    );
    t.call("POST", "/cart/checkout", alice, None)
        .await
        .expect(403);
    t.post(
        &format!("/orders/{order_id}/payment"),
        alice,
        json!({"amountCents": 1250}),
    )
    .await
    .expect(403);
    t.call("PATCH", "/users/me", alice, Some(json!({"name": "Back"})))
        .await
        .expect(403);
    t.call("DELETE", "/users/me", alice, None).await.expect(403);
    // What was there before stays: the profile reads as closed, the order as it was.
    assert_eq!(
        t.get("/users/me", alice).await.expect(200).body["status"],
        "deactivated"
    );
    let kept = t
        .get(&format!("/orders/{order_id}"), alice)
        .await
        .expect(200)
        .body;
    assert_ne!(kept["status"], "cancelled", "{kept}");
    // Another shopper is not affected.
    t.post(
        "/cart/items",
        Who::Shopper("bob"),
        json!({"sku": "MUG", "quantity": 1}),
    )
    .await
    .expect(200);
}
