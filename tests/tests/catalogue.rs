//! The public catalogue costs one read: `GET /products` is served a page at
//! a time from the catalogue view (kept in the same transaction as every
//! product event, by the API and by the inventory handler), with an opaque
//! cursor in a `Link` header and an `ETag` that makes a repeat free. Each
//! case runs on SQLite and on the DynamoDB adapter against moto.

mod common;

use common::{ADMIN, Delivery, Shop, checkout, order_status, product, send, shopper};
use serde_json::{Value, json};
use storefront_api::{AppState, Settings};
use storefront_domain::cart::MAX_CART_LINES;
use storefront_runtime::Stores;
use storefront_store::iam::PortCall;
use storefront_store::keys::CATALOG;
use storefront_store::recording::Recording;
use storefront_store::{Condition, StateItem, StateWrite};

on_both!(
    pages_follow_their_links,
    an_etag_makes_a_repeat_free_until_the_stock_moves,
    bad_pages_are_refused,
    products_listed_before_the_view_still_show,
    the_fullest_reservation_fits_one_transaction,
);

fn skus(page: &Value) -> Vec<String> {
    page.as_array()
        .expect("a page is an array")
        .iter()
        .map(|p| p["sku"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The `rel="next"` target of a `Link` header.
fn next_link(headers: &axum::http::HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    assert!(link.ends_with("; rel=\"next\""), "{link}");
    Some(
        link.trim_start_matches('<')
            .split_once('>')
            .map(|(target, _)| target.to_owned())
            .expect("<target>"),
    )
}

/// Seven products in pages of three: each once, in sku order, the last
/// page without a link; one page is one query and loads no aggregate.
async fn pages_follow_their_links(shop: Shop) {
    for i in 1..=7 {
        shop.product(&format!("P{i:02}"), 5).await;
    }
    let mut seen = Vec::new();
    let mut path = Some("/products?limit=3".to_owned());
    let mut pages = 0;
    while let Some(p) = path {
        let (status, headers, body) = send(&shop.router, "GET", &p, None, &[], None).await;
        assert_eq!(status, 200, "{p}: {body}");
        assert!(skus(&body).len() <= 3);
        seen.extend(skus(&body));
        path = next_link(&headers);
        pages += 1;
        assert!(pages <= 4, "the links come to an end");
    }
    let want: Vec<String> = (1..=7).map(|i| format!("P{i:02}")).collect();
    assert_eq!(seen, want);
    assert_eq!(pages, 3);
    let (_, _, all) = send(&shop.router, "GET", "/products", None, &[], None).await;
    assert_eq!(skus(&all), want, "the default page holds them all");

    let recording = Recording::new(shop.stores.events.clone(), shop.stores.state.clone());
    let counted = storefront_api::app(AppState::new(
        Stores {
            events: recording.clone(),
            state: recording.clone(),
            snapshot_every: shop.stores.snapshot_every,
        },
        &Settings::default(),
    ));
    let (status, _, body) = send(&counted, "GET", "/products?limit=3", None, &[], None).await;
    assert_eq!((status.as_u16(), skus(&body).len()), (200, 3));
    assert_eq!(
        recording.calls(),
        [(PortCall::Query, 1)].into_iter().collect(),
        "a page is one query"
    );
}

/// A page sent back with its ETag is a 304 with no body; once a checkout
/// reserves stock (the inventory handler's transaction carries the view),
/// the page changes, and so does its ETag.
async fn an_etag_makes_a_repeat_free_until_the_stock_moves(shop: Shop) {
    shop.product("MUG", 5).await;
    shop.product("TEE", 5).await;
    let (status, headers, body) = send(&shop.router, "GET", "/products", None, &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(body[0]["availableStock"], 5);
    let etag = headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("an ETag")
        .to_owned();
    assert_eq!(
        headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-cache")
    );
    let (status, again, body) = send(
        &shop.router,
        "GET",
        "/products",
        None,
        &[("if-none-match", &etag)],
        None,
    )
    .await;
    assert_eq!((status.as_u16(), body), (304, Value::Null));
    assert_eq!(
        again.get("etag").and_then(|v| v.to_str().ok()),
        Some(etag.as_str())
    );
    let (status, _, _) = send(
        &shop.router,
        "GET",
        "/products",
        None,
        &[("if-none-match", "\"something-else\", W/\"other\"")],
        None,
    )
    .await;
    assert_eq!(status, 200, "another ETag is no match");

    checkout(&shop, "kim", &[("MUG", 2)]).await;
    shop.settle(Delivery::InOrder).await;
    let (status, headers, body) = send(
        &shop.router,
        "GET",
        "/products",
        None,
        &[("if-none-match", &etag)],
        None,
    )
    .await;
    assert_eq!(status, 200, "the stock moved: the page changed");
    assert_ne!(
        headers.get("etag").and_then(|v| v.to_str().ok()),
        Some(etag.as_str())
    );
    assert_eq!(
        (
            &body[0]["sku"],
            &body[0]["reserved"],
            &body[0]["availableStock"]
        ),
        (&json!("MUG"), &json!(2), &json!(3)),
        "the view holds the reservation"
    );
    shop.ok(
        "PATCH",
        "/products/TEE",
        ADMIN,
        Some(json!({"priceCents": 1500})),
    )
    .await;
    let (_, _, body) = send(&shop.router, "GET", "/products", None, &[], None).await;
    assert_eq!(body[1]["priceCents"], 1500, "admin changes show at once");
    let one = shop.ok("GET", "/products/MUG", None, None).await;
    assert_eq!(one, body[0], "the list and the product agree");
}

/// A limit out of range or a cursor this API did not give out is a 400
/// problem that says what to send.
async fn bad_pages_are_refused(shop: Shop) {
    shop.product("MUG", 5).await;
    for query in [
        "limit=0",
        "limit=101",
        "limit=ten",
        "limit=-1",
        "cursor=zz",
        "cursor=",
        "cursor=2f2f", // "//": not a sku
    ] {
        let (status, _, body) = send(
            &shop.router,
            "GET",
            &format!("/products?{query}"),
            None,
            &[],
            None,
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("limit must be") || detail.contains("cursor is not one"),
            "{query}: {detail}"
        );
    }
    let (status, _, body) = send(&shop.router, "GET", "/products?limit=100", None, &[], None).await;
    assert_eq!(
        (status.as_u16(), skus(&body)),
        (200, vec!["MUG".to_owned()])
    );
}

/// A catalogue item written before the view existed holds `{}`: the list
/// reads that product from its aggregate.
async fn products_listed_before_the_view_still_show(shop: Shop) {
    shop.product("OLD", 4).await;
    shop.product("NEW", 6).await;
    shop.stores
        .state
        .put(StateWrite {
            item: StateItem {
                pk: CATALOG.into(),
                sk: "OLD".into(),
                version: 1,
                value: json!({}),
                expires_at: None,
            },
            condition: Condition::Always,
        })
        .await
        .expect("an old-style item");
    let (status, _, body) = send(&shop.router, "GET", "/products", None, &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(skus(&body), ["NEW", "OLD"]);
    assert_eq!(body[1]["availableStock"], 4);
}

/// The largest reservation there can be, a cart of MAX_CART_LINES products
/// each falling under its low-stock threshold (two events and a catalogue
/// item per product, and the handler's record: 100 items), is one
/// transaction that DynamoDB accepts, and every product's view moves.
async fn the_fullest_reservation_fits_one_transaction(shop: Shop) {
    let skus: Vec<String> = (0..MAX_CART_LINES).map(|i| format!("L{i:02}")).collect();
    for sku in &skus {
        // The test shop's low-stock threshold is 3: reserving one of 3 crosses it.
        shop.product(sku, 3).await;
    }
    let lines: Vec<(&str, i64)> = skus.iter().map(|s| (s.as_str(), 1)).collect();
    let id = checkout(&shop, "max", &lines).await;
    let delivered = shop.settle(Delivery::InOrder).await;
    let low = delivered
        .iter()
        .filter(|e| e.event_type == "inventory.stock.low")
        .count();
    assert_eq!(low, MAX_CART_LINES, "every product crossed its threshold");
    assert_eq!(order_status(&shop, shopper("max"), &id).await, "confirmed");
    for sku in &skus {
        assert_eq!(product(&shop, sku).await.reserved, 1, "{sku}");
    }
    let (_, _, page) = send(&shop.router, "GET", "/products?limit=100", None, &[], None).await;
    let available: Vec<&Value> = page
        .as_array()
        .expect("page")
        .iter()
        .map(|p| &p["availableStock"])
        .collect();
    assert!(
        available.iter().all(|a| **a == json!(2)),
        "each view holds its reservation: {available:?}"
    );
}
