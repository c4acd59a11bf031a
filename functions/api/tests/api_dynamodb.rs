//! The API on DynamoDB (moto): the checkout path end to end, including the
//! atomic two-stream append, idempotent replays, and the refusal of bad input
//! without a write. Fails (never skips) without `STOREFRONT_DYNAMODB_ENDPOINT`.

mod common;

use common::{TestApp, Who};
use serde_json::json;
use storefront_api::{AppState, Settings};
use storefront_runtime::Globals;
use storefront_store::dynamodb::{DynamoStore, TableNames, create_tables};

fn moto() -> String {
    std::env::var("STOREFRONT_DYNAMODB_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .expect("STOREFRONT_DYNAMODB_ENDPOINT is not set: run `make test`, which starts moto on 127.0.0.1")
}

async fn dynamo_app() -> TestApp {
    dynamo_app_at(&moto()).await
}

/// The API on fresh tables of moto, its client sending to `endpoint` (moto
/// itself, or a fault proxy in front of it).
async fn dynamo_app_at(endpoint: &str) -> TestApp {
    let sdk = storefront_runtime::aws::local_config(endpoint);
    let client = storefront_runtime::aws::dynamodb(&sdk);
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let tables = TableNames {
        events: format!("api-events-{suffix}"),
        state: format!("api-state-{suffix}"),
    };
    create_tables(&client, &tables)
        .await
        .expect("create tables on moto");
    TestApp::new(AppState::dynamo(
        DynamoStore::new(client, tables),
        Settings {
            globals: Globals {
                snapshot_every: 3,
                ..Globals::default()
            },
        },
    ))
}

async fn stream_len(t: &TestApp, stream: &str) -> usize {
    let s = storefront_domain::StreamId::parse(stream).expect("stream");
    t.state.events.load(&s, 0).await.expect("load").len()
}

/// Catalogue, cart and checkout on DynamoDB: the order and the cart's checkout land together, a replay with the same key answers the same.
/// Profiles and closing an account (issue 18), on the DynamoDB adapter (moto).
#[tokio::test]
async fn profile_and_closing_on_dynamodb() {
    common::profile_and_closing(&dynamo_app().await).await;
}

#[tokio::test]
async fn checkout_on_dynamodb() {
    let t = dynamo_app().await;
    t.product("MUG", 1250, 10).await;
    assert_eq!(
        t.get("/products", Who::Anonymous)
            .await
            .expect(200)
            .body
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    for _ in 0..3 {
        t.post(
            "/cart/items",
            Who::Shopper("alice"),
            json!({"sku": "MUG", "quantity": 1}),
        )
        .await
        .expect(200);
    }
    // Snapshots every 3 events: the cart loads from snapshot + tail and still adds up.
    let cart = t.get("/cart", Who::Shopper("alice")).await.expect(200).body;
    assert_eq!(
        (cart["totalCents"].as_i64(), cart["version"].as_u64()),
        (Some(3750), Some(4))
    );

    let before = stream_len(&t, "cart#alice").await;
    t.post(
        "/cart/items",
        Who::Shopper("alice"),
        json!({"sku": "MUG", "quantity": 0}),
    )
    .await
    .expect(400);
    t.post(
        "/cart/items",
        Who::Shopper("alice"),
        json!({"sku": "GONE", "quantity": 1}),
    )
    .await
    .expect(422);
    assert_eq!(
        stream_len(&t, "cart#alice").await,
        before,
        "refusals write nothing"
    );

    let first = t
        .call_with_key(
            "POST",
            "/cart/checkout",
            Who::Shopper("alice"),
            None,
            "co-1",
        )
        .await
        .expect(201);
    let order_id = first.body["orderId"].as_str().expect("id").to_owned();
    let again = t
        .call_with_key(
            "POST",
            "/cart/checkout",
            Who::Shopper("alice"),
            None,
            "co-1",
        )
        .await
        .expect(201);
    assert!(again.replayed);
    assert_eq!(again.body, first.body);
    assert_eq!(stream_len(&t, &format!("order#{order_id}")).await, 1);
    assert_eq!(
        stream_len(&t, "cart#alice").await,
        before + 1,
        "one cart.checked.out"
    );
    let order = t
        .get(&format!("/orders/{order_id}"), Who::Shopper("alice"))
        .await
        .expect(200)
        .body;
    assert_eq!(
        (order["status"].as_str(), order["totalCents"].as_i64()),
        (Some("pending"), Some(3750))
    );
    t.get(&format!("/orders/{order_id}"), Who::Shopper("bob"))
        .await
        .expect(404);
    t.call("POST", "/cart/checkout", Who::Shopper("alice"), None)
        .await
        .expect(422);
    assert_eq!(
        t.get("/orders", Who::Admin("root"))
            .await
            .expect(200)
            .body
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

/// Two concurrent checkouts of one cart on DynamoDB: exactly one order is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checkouts_create_one_order() {
    let t = std::sync::Arc::new(dynamo_app().await);
    t.product("MUG", 1250, 10).await;
    t.post(
        "/cart/items",
        Who::Shopper("carol"),
        json!({"sku": "MUG", "quantity": 2}),
    )
    .await
    .expect(200);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            t.call("POST", "/cart/checkout", Who::Shopper("carol"), None)
                .await
                .status
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task"));
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 422),
        "the losers see an empty cart: {statuses:?}"
    );
    assert_eq!(
        t.get("/orders", Who::Shopper("carol"))
            .await
            .body
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

/// A command whose response is lost after DynamoDB committed it (the SDK
/// sends it again; the retry's condition fails) answers as the first
/// attempt did and is applied once: 2 mugs stay 2, not 4, whether the
/// command was a transaction (the cart's creation with its first line) or a
/// single put. A command that meets another transaction is decided again and
/// lands once.
#[tokio::test]
async fn lost_responses_and_conflicts_apply_a_command_once() {
    use storefront_faults::Fault;
    let proxy = storefront_faults::FaultProxy::start(&moto())
        .await
        .expect("proxy");
    let t = dynamo_app_at(proxy.endpoint()).await;
    t.product("MUG", 1250, 10).await;
    t.product("CUP", 900, 10).await;
    let ann = Who::Shopper("ann");

    proxy.inject("TransactWriteItems", Fault::CommitThenDrop);
    let cart = t
        .post("/cart/items", ann, json!({"sku": "MUG", "quantity": 2}))
        .await
        .expect(200);
    assert_eq!(proxy.pending(), 0, "the fault was met");
    assert_eq!(cart.body["lines"][0]["quantity"], 2);
    assert_eq!(stream_len(&t, "cart#ann").await, 2, "created + added, once");

    proxy.inject("PutItem", Fault::CommitThenDrop);
    let cart = t
        .post("/cart/items", ann, json!({"sku": "MUG", "quantity": 2}))
        .await
        .expect(200);
    assert_eq!(proxy.pending(), 0, "the fault was met");
    assert_eq!(cart.body["lines"][0]["quantity"], 4, "2 + 2, not 2 + 2 + 2");
    assert_eq!(stream_len(&t, "cart#ann").await, 3);

    proxy.inject("PutItem", Fault::TransactionConflict);
    t.post("/cart/items", ann, json!({"sku": "CUP", "quantity": 1}))
        .await
        .expect(200);
    assert_eq!(proxy.pending(), 0, "the fault was met");
    let cart = t.get("/cart", ann).await.expect(200);
    assert_eq!(cart.body["lines"].as_array().map(Vec::len), Some(2));
    assert_eq!(stream_len(&t, "cart#ann").await, 4);
    let versions: Vec<u64> = t
        .state
        .events
        .load(
            &storefront_domain::StreamId::parse("cart#ann").expect("stream"),
            0,
        )
        .await
        .expect("load")
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, [1, 2, 3, 4], "contiguous, nothing doubled");
}

/// Concurrent requests with one Idempotency-Key on add-item, checkout and
/// payment run once each, on DynamoDB (see `common::same_key_requests_run_once`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_key_requests_run_once_on_dynamodb() {
    common::same_key_requests_run_once(std::sync::Arc::new(dynamo_app().await)).await;
}
