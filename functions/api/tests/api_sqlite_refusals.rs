//! The API in-process on SQLite, refusing and retrying: every kind of bad
//! input, idempotent retries and conflict retries. Every refused request is
//! checked to have appended nothing.

mod common;

use common::{ADMIN, ALICE, BOB, TestApp, event_count};
use serde_json::json;

/// Every kind of bad input is a clear 4xx problem, never a 500, and appends nothing.
#[tokio::test]
async fn bad_input_is_refused_and_appends_nothing() {
    let (t, store) = TestApp::sqlite();
    t.product("MUG", 1250, 3).await;
    t.post("/cart/items", ALICE, json!({"sku": "MUG", "quantity": 1}))
        .await
        .expect(200);
    let before = event_count(&store).await;
    let raw = |method: &str, path: &str, ct: Option<&str>, body: &str| {
        let mut b = axum::http::Request::builder().method(method).uri(path);
        if let Some(ct) = ct {
            b = b.header("content-type", ct);
        }
        let mut r = b
            .body(axum::body::Body::from(body.to_owned()))
            .expect("request");
        r.extensions_mut().insert(storefront_api::Claims {
            sub: "alice".into(),
            groups: vec!["admin".into()],
            email: Some("alice@example.com".into()),
        });
        r
    };
    let cases: Vec<(axum::http::Request<axum::body::Body>, u16)> = vec![
        (
            raw(
                "POST",
                "/cart/items",
                Some("application/json"),
                "{\"sku\": \"MUG\", ",
            ),
            400,
        ),
        (
            raw("POST", "/cart/items", Some("application/json"), "[1,2]"),
            400,
        ),
        (
            raw(
                "POST",
                "/cart/items",
                Some("application/json"),
                "{\"sku\": \"MUG\", \"quantity\": \"2\"}",
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/cart/items",
                Some("application/json"),
                "{\"sku\": \"MUG\", \"quantity\": 1.5}",
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/cart/items",
                Some("application/json"),
                "{\"sku\": \"MUG\", \"quantity\": 1, \"price\": 1}",
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/cart/items",
                Some("application/json"),
                "{\"sku\": \"MUG\", \"quantity\": -1}",
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/cart/items",
                Some("application/json"),
                "{\"sku\": \"MUG\", \"quantity\": 0}",
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/cart/items",
                Some("application/json"),
                "{\"sku\": \"MUG\", \"quantity\": 100}",
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/cart/items",
                Some("application/json"),
                "{\"sku\": \"MUG\", \"quantity\": 99999999999999999999}",
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/cart/items",
                Some("application/json"),
                "{\"sku\": \"NOPE\", \"quantity\": 1}",
            ),
            422,
        ),
        (
            raw(
                "POST",
                "/cart/items",
                Some("application/json"),
                "{\"sku\": \"a b\", \"quantity\": 1}",
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/cart/items",
                Some("application/json"),
                "{\"sku\": \"\", \"quantity\": 1}",
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/cart/items",
                Some("text/plain"),
                "{\"sku\": \"MUG\", \"quantity\": 1}",
            ),
            415,
        ),
        (
            raw(
                "POST",
                "/cart/items",
                None,
                "{\"sku\": \"MUG\", \"quantity\": 1}",
            ),
            415,
        ),
        (
            raw(
                "POST",
                "/cart/items",
                Some("application/json"),
                &format!(
                    "{{\"sku\": \"MUG\", \"quantity\": 1, \"pad\": \"{}\"}}",
                    "x".repeat(70_000)
                ),
            ),
            413,
        ),
        (
            raw(
                "POST",
                "/products",
                Some("application/json"),
                "{\"sku\": \"X\", \"name\": \"X\", \"priceCents\": \"12.50\", \"currency\": \"EUR\", \"stock\": 1}",
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/products",
                Some("application/json"),
                "{\"sku\": \"X\", \"name\": \"X\", \"priceCents\": 12.5, \"currency\": \"EUR\", \"stock\": 1}",
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/products",
                Some("application/json"),
                "{\"sku\": \"X\", \"name\": \"X\", \"priceCents\": -5, \"currency\": \"EUR\", \"stock\": 1}",
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/products",
                Some("application/json"),
                "{\"sku\": \"X\", \"name\": \"X\", \"priceCents\": 5, \"currency\": \"euro\", \"stock\": 1}",
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/products",
                Some("application/json"),
                "{\"sku\": \"X\", \"name\": \"X\", \"priceCents\": 5, \"currency\": \"EUR\", \"stock\": -1}",
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/products",
                Some("application/json"),
                "{\"sku\": \"X\", \"name\": \"\", \"priceCents\": 5, \"currency\": \"EUR\", \"stock\": 1}",
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/products",
                Some("application/json"),
                "{\"sku\": \"X\", \"name\": \"X\", \"priceCents\": 5, \"currency\": \"EUR\"}",
            ),
            400,
        ),
        (
            raw("PATCH", "/products/MUG", Some("application/json"), "{}"),
            400,
        ),
        (
            raw(
                "POST",
                "/products/MUG/stock",
                Some("application/json"),
                "{\"delta\": 0, \"reason\": \"x\"}",
            ),
            400,
        ),
        (raw("GET", "/products/a%20b", None, ""), 400),
        (raw("GET", "/products/%F0%9F%98%80", None, ""), 400),
        (raw("GET", "/products/%FF", None, ""), 400),
        (
            raw(
                "PATCH",
                "/cart/items/bad%23sku",
                Some("application/json"),
                "{\"quantity\": 1}",
            ),
            400,
        ),
        (
            raw(
                "PATCH",
                "/cart/items/TEE",
                Some("application/json"),
                "{\"quantity\": 1}",
            ),
            404,
        ),
        (raw("GET", "/orders/..%2F..%2Fetc", None, ""), 404),
        (raw("GET", "/admin/streams/nohash/events", None, ""), 400),
        (
            raw(
                "POST",
                "/users",
                Some("application/json"),
                "{\"email\": \"not-an-email\", \"name\": \"A\"}",
            ),
            400,
        ),
        (
            raw(
                "POST",
                "/orders/nope/cancel",
                Some("application/json"),
                "{\"reason\": \"x\"}",
            ),
            404,
        ),
        (
            raw(
                "POST",
                "/cart/items",
                Some("application/json"),
                "{\"sku\": \"MUG\", \"quantity\": 1}",
            )
            .map(|b| b),
            200,
        ),
    ];
    let last = cases.len() - 1;
    for (i, (request, status)) in cases.into_iter().enumerate() {
        let path = request.uri().to_string();
        let reply = t.raw(request).await;
        assert_eq!(
            reply.status.as_u16(),
            status,
            "case {i} {path}: {}",
            reply.body
        );
        if status >= 400 {
            assert_eq!(reply.content_type, "application/problem+json", "case {i}");
            assert!(
                reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "case {i}"
            );
            assert_eq!(
                event_count(&store).await,
                before,
                "case {i} appended nothing"
            );
        } else {
            assert_eq!(i, last);
        }
    }
    t.call("GET", "/no/such/route", ALICE, None)
        .await
        .expect(404);
    t.call("PUT", "/cart", ALICE, None).await.expect(405);
}

/// A retried POST with the same Idempotency-Key returns the first answer and appends nothing; another body with the key is 422.
#[tokio::test]
async fn idempotent_retries() {
    let (t, store) = TestApp::sqlite();
    t.product("MUG", 1250, 10).await;
    let body = json!({"sku": "MUG", "quantity": 2});
    let first = t
        .call_with_key("POST", "/cart/items", ALICE, Some(body.clone()), "k-1")
        .await
        .expect(200);
    let after_first = event_count(&store).await;
    let again = t
        .call_with_key("POST", "/cart/items", ALICE, Some(body.clone()), "k-1")
        .await
        .expect(200);
    assert!(again.replayed);
    assert_eq!(again.body, first.body);
    assert_eq!(event_count(&store).await, after_first);
    assert_eq!(t.get("/cart", ALICE).await.body["lines"][0]["quantity"], 2);
    t.call_with_key(
        "POST",
        "/cart/items",
        ALICE,
        Some(json!({"sku": "MUG", "quantity": 3})),
        "k-1",
    )
    .await
    .expect(422);
    // Keys are per caller: bob may use the same key.
    t.call_with_key("POST", "/cart/items", BOB, Some(body), "k-1")
        .await
        .expect(200);

    let a = t
        .call_with_key("POST", "/cart/checkout", ALICE, None, "co-1")
        .await
        .expect(201);
    let count = event_count(&store).await;
    let b = t
        .call_with_key("POST", "/cart/checkout", ALICE, None, "co-1")
        .await
        .expect(201);
    assert_eq!(a.body["orderId"], b.body["orderId"]);
    assert_eq!(event_count(&store).await, count);
    assert_eq!(
        t.get("/orders", ALICE).await.body.as_array().map(Vec::len),
        Some(1)
    );
    t.call_with_key("POST", "/cart/checkout", ALICE, None, "bad key with spaces")
        .await
        .expect(400);
}

/// Concurrent retries with one key append once: the record rides in the same atomic append as the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_with_one_key_append_once() {
    let (t, store) = TestApp::sqlite();
    t.product("MUG", 1250, 10).await;
    let t = std::sync::Arc::new(t);
    let before = event_count(&store).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            t.call_with_key(
                "POST",
                "/cart/items",
                ALICE,
                Some(json!({"sku": "MUG", "quantity": 2})),
                "same",
            )
            .await
        }));
    }
    let mut bodies = Vec::new();
    for task in tasks {
        let reply = task.await.expect("task");
        assert!(reply.status == 200 || reply.status == 409, "{:?}", reply);
        if reply.status == 200 {
            bodies.push(reply.body);
        }
    }
    assert!(!bodies.is_empty());
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every answer is the first one"
    );
    assert_eq!(
        t.get("/cart", ALICE).await.body["lines"][0]["quantity"],
        2,
        "added once"
    );
    assert_eq!(
        event_count(&store).await,
        before + 2,
        "cart.created + cart.item.added, once"
    );
}

/// Concurrent commands on one cart all land: conflicts are retried on fresh state, versions stay contiguous.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicting_commands_are_retried() {
    let (t, _) = TestApp::sqlite();
    for i in 0..12 {
        t.product(&format!("P{i}"), 100 + i, 10).await;
    }
    let t = std::sync::Arc::new(t);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            t.post(
                "/cart/items",
                ALICE,
                json!({"sku": format!("P{i}"), "quantity": 1}),
            )
            .await
            .status
            .as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("task"), 200);
    }
    let cart = t.get("/cart", ALICE).await.body;
    assert_eq!(cart["lines"].as_array().map(Vec::len), Some(12));
    let history = t
        .get("/admin/streams/cart%23alice/events", ADMIN)
        .await
        .expect(200)
        .body;
    let versions: Vec<u64> = history
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["version"].as_u64().expect("v"))
        .collect();
    assert_eq!(versions, (1..=13).collect::<Vec<u64>>());
}

/// Concurrent requests with one Idempotency-Key on add-item, checkout and
/// payment run once each, on SQLite (see `common::same_key_requests_run_once`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_key_requests_run_once_on_sqlite() {
    let (t, _store) = TestApp::sqlite();
    common::same_key_requests_run_once(std::sync::Arc::new(t)).await;
}

/// A keyed request that ran and ended in a business refusal (422) is stored
/// and replayed like a success; a malformed one (400) is not stored, so its
/// key is free for the corrected request.
#[tokio::test]
async fn refusals_are_replayed_malformed_requests_are_not_stored() {
    let (t, _store) = TestApp::sqlite();
    t.product("MUG", 1250, 10).await;
    let refused = t
        .call_with_key("POST", "/cart/checkout", ALICE, None, "empty-cart")
        .await
        .expect(422);
    assert!(!refused.replayed);
    t.post("/cart/items", ALICE, json!({"sku": "MUG", "quantity": 1}))
        .await
        .expect(200);
    let again = t
        .call_with_key("POST", "/cart/checkout", ALICE, None, "empty-cart")
        .await
        .expect(422);
    assert!(
        again.replayed,
        "the first answer, though the cart has a line now"
    );
    assert_eq!(again.body, refused.body);

    t.call_with_key(
        "POST",
        "/cart/items",
        ALICE,
        Some(json!({"sku": "MUG", "quantity": "two"})),
        "fix-me",
    )
    .await
    .expect(400);
    let fixed = t
        .call_with_key(
            "POST",
            "/cart/items",
            ALICE,
            Some(json!({"sku": "MUG", "quantity": 2})),
            "fix-me",
        )
        .await
        .expect(200);
    assert!(!fixed.replayed);
    assert_eq!(fixed.body["lines"][0]["quantity"], 3);
}

/// A registration's address is the token's verified `email` claim, never
/// one the body names: without the claim it is 403, with another address in
/// the body 422 (both appending nothing), and without one in the body the
/// claim's address is registered.
#[tokio::test]
async fn the_registered_address_is_the_tokens_verified_email() {
    let (t, store) = TestApp::sqlite();
    let register = |email: Option<&str>, body: serde_json::Value| {
        let mut r = axum::http::Request::builder()
            .method("POST")
            .uri("/users")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .expect("request");
        r.extensions_mut().insert(storefront_api::Claims {
            sub: "dora".into(),
            groups: vec![],
            email: email.map(str::to_owned),
        });
        r
    };
    let before = event_count(&store).await;
    t.raw(register(
        None,
        json!({"email": "dora@example.com", "name": "Dora"}),
    ))
    .await
    .expect(403);
    t.raw(register(
        Some("dora@example.com"),
        json!({"email": "victim@example.com", "name": "Dora"}),
    ))
    .await
    .expect(422);
    assert_eq!(event_count(&store).await, before, "nothing appended");
    let user = t
        .raw(register(Some("dora@example.com"), json!({"name": "Dora"})))
        .await
        .expect(201);
    assert_eq!(user.body["email"], "dora@example.com");
}
