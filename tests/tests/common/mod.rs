//! An in-process storefront for handler tests: the API Router on SQLite and
//! every handler, with a bus stand-in that delivers each stored event to the
//! handlers that consume its type. Delivery can repeat every event, reverse
//! the order, or run handlers concurrently, to prove exactly-once effects
//! under at-least-once, unordered delivery.

#![allow(dead_code)]

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use serde_json::json;
use storefront_api::{AppState, Claims, Settings};
use storefront_domain::EventEnvelope;
use storefront_domain::StreamId;
use storefront_domain::product::ProductState;
use storefront_notification::OutboxNotifier;
use storefront_runtime::{EventHandler, Globals, Outcome, Stores};
use storefront_store::dynamodb::{DynamoStore, TableNames, create_tables};
use storefront_store::sqlite::SqliteStore;
use storefront_store::{AppendBatch, EventLog, EventStore, StoreError};
use tower::ServiceExt;

pub struct Shop {
    pub backend: Backend,
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

/// Where a shop keeps its events, and how the bus stand-in learns of new ones.
pub enum Backend {
    /// One SQLite file: new events come from its global log.
    Sqlite(SqliteStore),
    /// Tables of their own on the moto server `make test` starts: new events
    /// come from the tap every writer appends through.
    Moto(Arc<Tap>),
}

/// The event store every writer of a moto shop appends through: it notes
/// each committed event, in the order the commits returned (DynamoDB's own
/// feed, the table's stream, is the publisher's business; here the tap
/// stands in for it).
pub struct Tap {
    inner: DynamoStore,
    appended: std::sync::Mutex<Vec<EventEnvelope>>,
}

#[async_trait]
impl EventStore for Tap {
    async fn append_batch(&self, batch: AppendBatch) -> Result<(), StoreError> {
        let events: Vec<EventEnvelope> = batch
            .streams
            .iter()
            .flat_map(|s| s.events.iter().cloned())
            .collect();
        self.inner.append_batch(batch).await?;
        self.appended.lock().expect("tap").extend(events);
        Ok(())
    }

    async fn load(
        &self,
        stream: &StreamId,
        after_version: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        self.inner.load(stream, after_version).await
    }

    async fn current_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.inner.current_version(stream).await
    }
}

/// A DynamoDB client for the moto server of `STOREFRONT_DYNAMODB_ENDPOINT`.
pub fn moto_client() -> aws_sdk_dynamodb::Client {
    let endpoint = std::env::var("STOREFRONT_DYNAMODB_ENDPOINT")
        .ok()
        .filter(|url| !url.is_empty())
        .expect(
            "STOREFRONT_DYNAMODB_ENDPOINT is not set: run `make test`, which starts moto on 127.0.0.1",
        );
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version_latest()
        .endpoint_url(endpoint)
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A fresh pair of tables on moto.
pub async fn moto_store() -> DynamoStore {
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let tables = TableNames {
        events: format!("events-{suffix}"),
        state: format!("state-{suffix}"),
    };
    let client = moto_client();
    create_tables(&client, &tables)
        .await
        .unwrap_or_else(|e| panic!("cannot create tables on moto: {e}"));
    DynamoStore::new(client, tables)
}

impl Shop {
    /// A shop on one SQLite file.
    pub fn new() -> Shop {
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(dir.path().join("shop.db")).expect("sqlite");
        std::mem::forget(dir);
        let stores = Stores::from(store.clone());
        Shop::on(Backend::Sqlite(store), stores)
    }

    /// A shop on its own tables on moto (the AWS path's adapter).
    pub async fn on_moto() -> Shop {
        let store = moto_store().await;
        let tap = Arc::new(Tap {
            inner: store.clone(),
            appended: std::sync::Mutex::default(),
        });
        let stores = Stores {
            events: tap.clone(),
            state: Arc::new(store),
            snapshot_every: storefront_runtime::settings::DEFAULT_SNAPSHOT_EVERY,
        };
        Shop::on(Backend::Moto(tap), stores)
    }

    /// A shop on either backend, for a test that runs on both.
    pub async fn of(backend: &str) -> Shop {
        match backend {
            "sqlite" => Shop::new(),
            "moto" => Shop::on_moto().await,
            other => panic!("no backend {other}"),
        }
    }

    fn on(backend: Backend, stores: Stores) -> Shop {
        let router = storefront_api::app(AppState::new(stores.clone(), &Settings::default()));
        Shop {
            handlers: handlers(&stores),
            backend,
            stores,
            router,
            cursor: std::sync::Mutex::new(0),
        }
    }

    /// The SQLite store of a shop on SQLite (tests of SQLite-only tooling).
    pub fn sqlite(&self) -> &SqliteStore {
        match &self.backend {
            Backend::Sqlite(store) => store,
            Backend::Moto(_) => panic!("this test needs the SQLite backend"),
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        who: Option<(&str, bool)>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, value) = send(&self.router, method, path, who, &[], body).await;
        (status, value)
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
        match &self.backend {
            Backend::Sqlite(store) => {
                let after = *self.cursor.lock().expect("cursor");
                let logged = store.read_after(after, 100_000).await.expect("log");
                if let Some(last) = logged.last() {
                    *self.cursor.lock().expect("cursor") = last.position;
                }
                logged.into_iter().map(|l| l.envelope).collect()
            }
            Backend::Moto(tap) => std::mem::take(&mut *tap.appended.lock().expect("tap")),
        }
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

pub const ADMIN: Option<(&str, bool)> = Some(("root", true));

pub fn shopper(name: &str) -> Option<(&str, bool)> {
    Some((name, false))
}

pub async fn product(shop: &Shop, sku: &str) -> ProductState {
    let stream = StreamId::parse(&format!("product#{sku}")).expect("stream");
    storefront_store::aggregate::load_full::<ProductState>(&*shop.stores.events, &stream)
        .await
        .expect("load")
        .state
}

pub async fn order_status(shop: &Shop, who: Option<(&str, bool)>, id: &str) -> String {
    shop.ok("GET", &format!("/orders/{id}"), who, None).await["status"]
        .as_str()
        .expect("status")
        .to_owned()
}

pub async fn checkout(shop: &Shop, user: &str, items: &[(&str, i64)]) -> String {
    for (sku, q) in items {
        shop.ok(
            "POST",
            "/cart/items",
            shopper(user),
            Some(json!({"sku": sku, "quantity": q})),
        )
        .await;
    }
    shop.ok("POST", "/cart/checkout", shopper(user), None).await["orderId"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Sends one request to `router` as `who` (claims as the JWT authorizer
/// would pass them), with extra headers; the status, headers and JSON body
/// (`Null` when there is none).
pub async fn send(
    router: &axum::Router,
    method: &str,
    path: &str,
    who: Option<(&str, bool)>,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
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
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// One test per backend (SQLite, and DynamoDB on moto) for each case: a
/// `mod` per case with a `sqlite` and a `moto` test, each handed a fresh shop.
#[macro_export]
macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$case($crate::common::Shop::of("sqlite").await).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn moto() {
                    super::$case($crate::common::Shop::of("moto").await).await;
                }
            }
        )*
    };
}
