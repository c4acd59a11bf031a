//! The API in-process on SQLite: happy paths, authorization between two
//! shoppers and an admin, the OpenAPI document, text limits. Bad input and
//! retries are in `api_sqlite_refusals.rs`.

mod common;

use common::{ADMIN, ALICE, BOB, TestApp, Who, event_count};
use serde_json::json;

/// The shopper journey through the API: catalogue, registration, cart, checkout, payment, shipment, delivery.
#[tokio::test]
async fn shopper_journey() {
    let (t, _) = TestApp::sqlite();
    assert_eq!(
        t.get("/health", Who::Anonymous).await.expect(200).body["status"],
        "ok"
    );
    t.product("MUG", 1250, 10).await;
    t.product("TEE", 2000, 5).await;
    let catalogue = t.get("/products", Who::Anonymous).await.expect(200).body;
    assert_eq!(catalogue.as_array().map(Vec::len), Some(2));
    let mug = t
        .get("/products/MUG", Who::Anonymous)
        .await
        .expect(200)
        .body;
    assert_eq!(
        (
            mug["priceCents"].as_i64(),
            mug["availableStock"].as_u64(),
            mug["status"].as_str()
        ),
        (Some(1250), Some(10), Some("active"))
    );

    let me = t
        .post(
            "/users",
            ALICE,
            json!({"email": "alice@example.com", "name": "Alice"}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(me["userId"], "alice");
    assert_eq!(
        t.get("/users/me", ALICE).await.expect(200).body["email"],
        "alice@example.com"
    );
    t.post(
        "/users",
        ALICE,
        json!({"email": "alice@example.com", "name": "Alice"}),
    )
    .await
    .expect(409);

    t.post("/cart/items", ALICE, json!({"sku": "MUG", "quantity": 2}))
        .await
        .expect(200);
    t.post("/cart/items", ALICE, json!({"sku": "TEE", "quantity": 1}))
        .await
        .expect(200);
    t.post("/cart/items", ALICE, json!({"sku": "MUG", "quantity": 1}))
        .await
        .expect(200);
    t.call(
        "PATCH",
        "/cart/items/TEE",
        ALICE,
        Some(json!({"quantity": 2})),
    )
    .await
    .expect(200);
    let cart = t.get("/cart", ALICE).await.expect(200).body;
    assert_eq!(cart["totalCents"], 3 * 1250 + 2 * 2000);
    assert_eq!(cart["lines"][0]["lineTotalCents"], 3750);
    let cart = t
        .call("DELETE", "/cart/items/TEE", ALICE, None)
        .await
        .expect(200)
        .body;
    assert_eq!(cart["totalCents"], 3750);

    let order_id = t
        .call("POST", "/cart/checkout", ALICE, None)
        .await
        .expect(201)
        .body["orderId"]
        .as_str()
        .expect("order id")
        .to_owned();
    assert!(
        t.get("/cart", ALICE).await.expect(200).body["lines"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    let order = t
        .get(&format!("/orders/{order_id}"), ALICE)
        .await
        .expect(200)
        .body;
    assert_eq!(
        (order["status"].as_str(), order["totalCents"].as_i64()),
        (Some("pending"), Some(3750))
    );
    assert!(
        order["createdAt"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z'))
    );
    assert_eq!(
        t.get("/orders", ALICE)
            .await
            .expect(200)
            .body
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    t.call("POST", "/cart/checkout", ALICE, None)
        .await
        .expect(422);

    // Not payable until the saga confirms it.
    t.post(
        &format!("/orders/{order_id}/payment"),
        ALICE,
        json!({"amountCents": 3750}),
    )
    .await
    .expect(422);
    t.confirm(&order_id).await;
    t.post(
        &format!("/orders/{order_id}/payment"),
        ALICE,
        json!({"amountCents": 3749}),
    )
    .await
    .expect(422);
    let paid = t
        .post(
            &format!("/orders/{order_id}/payment"),
            ALICE,
            json!({"amountCents": 3750}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(paid["status"], "paid");
    t.post(
        &format!("/orders/{order_id}/payment"),
        ALICE,
        json!({"amountCents": 3750}),
    )
    .await
    .expect(422);
    t.post(&format!("/orders/{order_id}/delivery"), ADMIN, json!({}))
        .await
        .expect(422);
    let shipped = t
        .post(
            &format!("/orders/{order_id}/shipment"),
            ADMIN,
            json!({"carrier": "DHL", "trackingNumber": "JD01"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(shipped["status"], "shipped");
    t.call("POST", &format!("/orders/{order_id}/cancel"), ALICE, None)
        .await
        .expect(422);
    let delivered = t
        .call("POST", &format!("/orders/{order_id}/delivery"), ADMIN, None)
        .await
        .expect(200)
        .body;
    assert_eq!(delivered["status"], "delivered");

    let history = t
        .get(&format!("/admin/streams/order%23{order_id}/events"), ADMIN)
        .await
        .expect(200)
        .body;
    let types: Vec<&str> = history
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["eventType"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        vec![
            "order.created",
            "order.confirmed",
            "order.paid",
            "order.shipped",
            "order.delivered"
        ]
    );
    assert!(
        history[0]["checksum"]
            .as_str()
            .is_some_and(|c| c.starts_with("sha256:"))
    );
    let stats = t.get("/admin/stats", ADMIN).await.expect(200).body;
    assert!(stats["ordersByStatus"].is_object());
}

/// Catalogue management: rename, reprice, adjust stock (never below zero), discontinue; discontinued products cannot be added.
#[tokio::test]
async fn catalogue_management() {
    let (t, _) = TestApp::sqlite();
    t.product("MUG", 1250, 3).await;
    let p = t
        .call(
            "PATCH",
            "/products/MUG",
            ADMIN,
            Some(json!({"name": "Big mug", "priceCents": 1300})),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        (p["name"].as_str(), p["priceCents"].as_i64()),
        (Some("Big mug"), Some(1300))
    );
    let p = t
        .post(
            "/products/MUG/stock",
            ADMIN,
            json!({"delta": 7, "reason": "delivery"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(p["onHand"], 10);
    t.post(
        "/products/MUG/stock",
        ADMIN,
        json!({"delta": -11, "reason": "count"}),
    )
    .await
    .expect(422);
    t.post(
        "/products/NOPE/stock",
        ADMIN,
        json!({"delta": 1, "reason": "count"}),
    )
    .await
    .expect(404);
    let p = t
        .call("DELETE", "/products/MUG", ADMIN, None)
        .await
        .expect(200)
        .body;
    assert_eq!(p["status"], "discontinued");
    t.post("/cart/items", ALICE, json!({"sku": "MUG", "quantity": 1}))
        .await
        .expect(422);
    t.post(
        "/products",
        ADMIN,
        json!({"sku": "MUG", "name": "again", "priceCents": 1, "currency": "EUR", "stock": 1}),
    )
    .await
    .expect(409);
    t.get("/products/NOPE", Who::Anonymous).await.expect(404);
}

/// Anonymous callers get 401, shoppers get 403 on admin routes, and another shopper's order is 404.
#[tokio::test]
async fn authorization_between_shoppers_and_admin() {
    let (t, store) = TestApp::sqlite();
    t.product("MUG", 1250, 10).await;
    for path in ["/cart", "/orders", "/users/me", "/admin/stats"] {
        t.get(path, Who::Anonymous).await.expect(401);
    }
    t.post(
        "/cart/items",
        Who::Anonymous,
        json!({"sku": "MUG", "quantity": 1}),
    )
    .await
    .expect(401);
    let before = event_count(&store).await;
    t.post(
        "/products",
        ALICE,
        json!({"sku": "X", "name": "X", "priceCents": 1, "currency": "EUR", "stock": 1}),
    )
    .await
    .expect(403);
    t.call("DELETE", "/products/MUG", ALICE, None)
        .await
        .expect(403);
    t.post(
        "/products/MUG/stock",
        ALICE,
        json!({"delta": 5, "reason": "x"}),
    )
    .await
    .expect(403);
    t.get("/admin/stats", ALICE).await.expect(403);
    t.get("/admin/streams/product%23MUG/events", ALICE)
        .await
        .expect(403);
    assert_eq!(event_count(&store).await, before);

    t.post("/cart/items", ALICE, json!({"sku": "MUG", "quantity": 1}))
        .await
        .expect(200);
    t.post("/cart/items", BOB, json!({"sku": "MUG", "quantity": 4}))
        .await
        .expect(200);
    assert_eq!(
        t.get("/cart", ALICE).await.expect(200).body["totalCents"],
        1250,
        "carts are per shopper"
    );
    let order = t
        .call("POST", "/cart/checkout", ALICE, None)
        .await
        .expect(201)
        .body["orderId"]
        .as_str()
        .expect("id")
        .to_owned();
    t.get(&format!("/orders/{order}"), BOB).await.expect(404);
    assert_eq!(
        t.get("/orders", BOB)
            .await
            .expect(200)
            .body
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    t.call("POST", &format!("/orders/{order}/cancel"), BOB, None)
        .await
        .expect(404);
    t.post(
        &format!("/orders/{order}/payment"),
        BOB,
        json!({"amountCents": 1250}),
    )
    .await
    .expect(404);
    t.post(
        &format!("/orders/{order}/shipment"),
        ALICE,
        json!({"carrier": "x", "trackingNumber": "y"}),
    )
    .await
    .expect(403);
    t.get(&format!("/orders/{order}"), ADMIN).await.expect(200);
    assert_eq!(
        t.get("/orders", ADMIN)
            .await
            .expect(200)
            .body
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let cancelled = t
        .call("POST", &format!("/orders/{order}/cancel"), ADMIN, None)
        .await
        .expect(200)
        .body;
    assert_eq!(cancelled["status"], "cancelled");
}

/// Profiles and closing an account (issue 18), on SQLite.
#[tokio::test]
async fn profile_and_closing_on_sqlite() {
    let (t, _) = TestApp::sqlite();
    common::profile_and_closing(&t).await;
}

/// The checked-in openapi.json is what the code generates (UPDATE_OPENAPI=1 rewrites it).
#[test]
fn openapi_document_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json");
    let generated = storefront_api::openapi_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).expect("write openapi.json");
    }
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "openapi.json drifted from the code: run `UPDATE_OPENAPI=1 cargo test -p storefront-api --test api_sqlite openapi` and commit it"
    );
    let doc: serde_json::Value = serde_json::from_str(&generated).expect("json");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );
    for route in [
        "/cart/checkout",
        "/orders/{id}/payment",
        "/admin/streams/{streamId}/events",
        "/products/{sku}/stock",
        "/openapi.json",
        "/docs",
    ] {
        assert!(doc["paths"][route].is_object(), "{route} documented");
    }
}

/// `GET /openapi.json` is public and serves the checked-in openapi.json byte
/// for byte, as JSON; it documents itself and `/docs` as public operations.
#[tokio::test]
async fn the_api_serves_its_own_document() {
    use axum::body::Body;
    use axum::http::{Request, header};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let (t, _) = TestApp::sqlite();
    let response = t
        .router
        .clone()
        .oneshot(
            Request::get("/openapi.json")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let served = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let on_disk = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json"))
        .expect("openapi.json");
    assert!(served == on_disk, "the served document is the file");
    let doc: serde_json::Value = serde_json::from_slice(&served).expect("JSON");
    for path in ["/openapi.json", "/docs"] {
        assert_eq!(
            doc["paths"][path]["get"]["security"],
            json!([{}]),
            "{path} is documented as public"
        );
    }
    // The test client's anonymous caller, through the usual helper, too.
    let reply = t.get("/openapi.json", Who::Anonymous).await.expect(200);
    assert_eq!(reply.body["openapi"], doc["openapi"]);
}

/// `GET /docs` is public and answers a self-contained HTML page: its
/// script and styles inline, nothing loaded from elsewhere (the CSP allows
/// only this origin), and it renders the document it fetches from
/// `openapi.json` next to it.
#[tokio::test]
async fn the_api_serves_a_reference_page() {
    use tower::ServiceExt;

    let (t, _) = TestApp::sqlite();
    let reply = t.get("/docs", Who::Anonymous).await.expect(200);
    assert_eq!(reply.content_type, "text/html; charset=utf-8");
    let html = reply.body.as_str().expect("an HTML page, not JSON");
    assert!(html.starts_with("<!doctype html>"), "{}", &html[..40]);
    assert!(
        html.contains("fetch(\"openapi.json\""),
        "it loads the API's own document"
    );
    for part in [
        "function render(doc)",
        "parametersTable",
        "responsesTable",
        "requestBody",
        "<style>",
    ] {
        assert!(html.contains(part), "the page has {part}");
    }
    for external in ["<script src", "<link", "http://", "https://", "@import"] {
        assert!(
            !html.contains(external),
            "the page loads nothing from elsewhere: {external}"
        );
    }
    let response = t
        .router
        .clone()
        .oneshot(
            axum::http::Request::get("/docs")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .expect("ascii");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    // A shopper or an admin gets the same page.
    assert_eq!(t.get("/docs", ALICE).await.expect(200).body, reply.body);
}

/// Unicode is kept intact where text belongs (names) and refused clearly where it does not (ids);
/// very long strings are refused with 400, never stored.
#[tokio::test]
async fn unicode_and_long_strings() {
    let (t, store) = TestApp::sqlite();
    let name = "Tasse « café » ☕ — قهوة — 🦀";
    let p = t
        .post(
            "/products",
            ADMIN,
            json!({"sku": "CUP", "name": name, "priceCents": 100, "currency": "EUR", "stock": 1}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(p["name"], name);
    assert_eq!(
        t.get("/products/CUP", Who::Anonymous)
            .await
            .expect(200)
            .body["name"],
        name
    );
    let before = event_count(&store).await;
    let long = "é".repeat(201);
    t.post(
        "/products",
        ADMIN,
        json!({"sku": "LONG", "name": long, "priceCents": 100, "currency": "EUR", "stock": 1}),
    )
    .await
    .expect(400);
    t.post(
        "/products",
        ADMIN,
        json!({"sku": "ÇUP", "name": "x", "priceCents": 100, "currency": "EUR", "stock": 1}),
    )
    .await
    .expect(400);
    t.post("/products", ADMIN, json!({"sku": "x".repeat(65), "name": "x", "priceCents": 100, "currency": "EUR", "stock": 1})).await.expect(400);
    t.post("/products", ADMIN, json!({"sku": "CTRL", "name": "a\u{0007}b", "priceCents": 100, "currency": "EUR", "stock": 1})).await.expect(400);
    t.get(&format!("/products/{}", "A".repeat(1000)), Who::Anonymous)
        .await
        .expect(400);
    t.get("/products/%C3%87UP", Who::Anonymous)
        .await
        .expect(400);
    t.post(
        "/users",
        Who::Shopper("ümlaut"),
        json!({"email": "u@example.com", "name": "Ü"}),
    )
    .await
    .expect(401);
    t.post(
        "/users",
        ALICE,
        json!({"email": format!("{}@example.com", "a".repeat(300)), "name": "A"}),
    )
    .await
    .expect(400);
    t.post(
        "/users",
        ALICE,
        json!({"email": "alice@example.com", "name": "名前".repeat(60)}),
    )
    .await
    .expect(400);
    assert_eq!(
        event_count(&store).await,
        before,
        "nothing refused was stored"
    );
    t.post(
        "/users",
        ALICE,
        json!({"email": "alice@example.com", "name": "名前"}),
    )
    .await
    .expect(201);
}

/// A cart after checkout starts afresh: a shopper who bought in EUR adds a
/// USD product next, and that cart is in USD; while a cart has lines, a
/// product in another currency is still refused.
#[tokio::test]
async fn the_next_cart_takes_the_currency_of_its_first_line() {
    let (t, _) = TestApp::sqlite();
    t.product("MUG", 1250, 5).await;
    t.post(
        "/products",
        ADMIN,
        json!({"sku": "CAP", "name": "Cap", "priceCents": 900, "currency": "USD", "stock": 5}),
    )
    .await
    .expect(201);
    t.post("/cart/items", ALICE, json!({"sku": "MUG", "quantity": 1}))
        .await
        .expect(200);
    t.post("/cart/items", ALICE, json!({"sku": "CAP", "quantity": 1}))
        .await
        .expect(422);
    t.post("/cart/checkout", ALICE, json!({})).await.expect(201);
    let cart = t
        .post("/cart/items", ALICE, json!({"sku": "CAP", "quantity": 1}))
        .await
        .expect(200)
        .body;
    assert_eq!(cart["currency"], "USD");
    assert_eq!(cart["totalCents"], 900);
    t.post("/cart/items", ALICE, json!({"sku": "MUG", "quantity": 1}))
        .await
        .expect(422);
}
