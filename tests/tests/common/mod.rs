//! An in-process storefront for handler tests: the API Router on SQLite and
//! every handler, with a bus stand-in that delivers each stored event to the
//! handlers that consume its type. Delivery can repeat every event, reverse
//! the order, or run handlers concurrently, to prove exactly-once effects
//! under at-least-once, unordered delivery.

#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use storefront_api::{AppState, Claims, Settings};
use storefront_domain::EventEnvelope;
use storefront_notification::OutboxNotifier;
use storefront_runtime::{EventHandler, Globals, Outcome, Stores};
use storefront_store::EventLog;
use storefront_store::sqlite::SqliteStore;
use tower::ServiceExt;

pub struct Shop {
    pub store: SqliteStore,
    pub stores: Stores,
    pub router: axum::Router,
    pub handlers: Vec<Arc<dyn EventHandler>>,
    pub cursor: std::sync::Mutex<u64>,
}

/// The notification function's settings in tests: the outbox ignores the sender.
pub fn notification_settings() -> storefront_notification::Settings {
    storefront_notification::Settings {
        globals: Globals::default(),
        sender_email: "shop@example.com".into(),
    }
}

pub fn handlers(stores: &Stores) -> Vec<Arc<dyn EventHandler>> {
    vec![
        Arc::new(storefront_inventory::Inventory::new(
            stores.clone(),
            &storefront_inventory::Settings {
                low_stock_threshold: 3,
                ..Default::default()
            },
        )),
        Arc::new(storefront_order_workflow::OrderWorkflow::new(
            stores.clone(),
            &Default::default(),
        )),
        Arc::new(storefront_cart::CartViews::new(
            stores.clone(),
            &Default::default(),
        )),
        Arc::new(storefront_notification::Notifications::new(
            stores.clone(),
            &notification_settings(),
            Arc::new(OutboxNotifier::new(stores.state.clone())),
        )),
        Arc::new(storefront_audit::Audit::new(
            stores.clone(),
            &Default::default(),
        )),
        Arc::new(storefront_analytics::Analytics::new(
            stores.clone(),
            &Default::default(),
        )),
        Arc::new(storefront_user::Users::new(
            stores.clone(),
            &Default::default(),
        )),
    ]
}

/// How the bus stand-in delivers a round of events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Each event once, in commit order.
    InOrder,
    /// Each event twice (the second time after the whole round).
    Twice,
    /// Each round's events in reverse commit order.
    Reversed,
}

impl Shop {
    pub fn new() -> Shop {
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(dir.path().join("shop.db")).expect("sqlite");
        std::mem::forget(dir);
        let stores = Stores::from(store.clone());
        let router = storefront_api::app(AppState::sqlite(store.clone(), Settings::default()));
        Shop {
            handlers: handlers(&stores),
            store,
            stores,
            router,
            cursor: std::sync::Mutex::new(0),
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        who: Option<(&str, bool)>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut builder = Request::builder().method(method).uri(path);
        let body = match body {
            Some(v) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let mut request = builder.body(body).expect("request");
        if let Some((sub, admin)) = who {
            let groups = if admin {
                vec!["admin".to_owned()]
            } else {
                vec![]
            };
            request.extensions_mut().insert(Claims {
                sub: sub.into(),
                groups,
                email: Some(format!("{sub}@example.com")),
            });
        }
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn ok(
        &self,
        method: &str,
        path: &str,
        who: Option<(&str, bool)>,
        body: Option<Value>,
    ) -> Value {
        let (status, value) = self.call(method, path, who, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value
    }

    pub async fn product(&self, sku: &str, stock: i64) {
        self.ok("POST", "/products", Some(("root", true)), Some(serde_json::json!({
            "sku": sku, "name": format!("Product {sku}"), "priceCents": 1000, "currency": "EUR", "stock": stock
        }))).await;
    }

    /// Events appended since the last call, in commit order.
    pub async fn new_events(&self) -> Vec<EventEnvelope> {
        let after = *self.cursor.lock().expect("cursor");
        let logged = self.store.read_after(after, 100_000).await.expect("log");
        if let Some(last) = logged.last() {
            *self.cursor.lock().expect("cursor") = last.position;
        }
        logged.into_iter().map(|l| l.envelope).collect()
    }

    /// Delivers one event to every handler that consumes it; returns the outcomes.
    pub async fn deliver(&self, event: &EventEnvelope) -> Vec<(&'static str, Outcome)> {
        let mut out = Vec::new();
        for h in &self.handlers {
            if h.consumes().iter().any(|t| t.name() == event.event_type) {
                let outcome = h
                    .handle(event)
                    .await
                    .unwrap_or_else(|e| panic!("{} failed on {}: {e}", h.name(), event.event_type));
                out.push((h.name(), outcome));
            }
        }
        out
    }

    /// Delivers rounds of new events until the system is quiet; returns every event delivered.
    pub async fn settle(&self, delivery: Delivery) -> Vec<EventEnvelope> {
        let mut all = Vec::new();
        loop {
            let mut round = self.new_events().await;
            if round.is_empty() {
                return all;
            }
            if delivery == Delivery::Reversed {
                round.reverse();
            }
            for e in &round {
                self.deliver(e).await;
            }
            if delivery == Delivery::Twice {
                for e in &round {
                    for (name, outcome) in self.deliver(e).await {
                        assert!(
                            matches!(outcome, Outcome::Duplicate | Outcome::Ignored),
                            "{name} had an effect on a redelivered {}: {outcome:?}",
                            e.event_type
                        );
                    }
                }
            }
            all.extend(round);
        }
    }

    /// Like `settle`, but each round's events are handled concurrently (a task per event and handler).
    pub async fn settle_concurrently(self: &Arc<Self>) {
        loop {
            let round = self.new_events().await;
            if round.is_empty() {
                return;
            }
            let mut tasks = Vec::new();
            for e in round {
                for h in self.handlers.clone() {
                    if h.consumes().iter().any(|t| t.name() == e.event_type) {
                        let e = e.clone();
                        tasks.push(tokio::spawn(async move {
                            // Like SQS: a transient failure is delivered again, a few times.
                            let mut last = None;
                            for _ in 0..10 {
                                match h.handle(&e).await {
                                    Ok(outcome) => return Ok(outcome),
                                    Err(storefront_runtime::HandlerError::Transient(err)) => {
                                        last = Some(err)
                                    }
                                    Err(err) => return Err(format!("{}: {err}", h.name())),
                                }
                            }
                            Err(format!(
                                "{}: still failing after redeliveries: {last:?}",
                                h.name()
                            ))
                        }));
                    }
                }
            }
            for t in tasks {
                t.await.expect("task").expect("handler");
            }
        }
    }

    pub async fn outbox(&self) -> Vec<Value> {
        self.stores
            .state
            .query(storefront_store::keys::OUTBOX)
            .await
            .expect("outbox")
            .into_iter()
            .map(|i| i.value)
            .collect()
    }
}
