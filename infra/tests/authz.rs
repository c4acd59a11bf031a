//! The authorization matrix: every route × {anonymous, shopper A (the
//! owner), shopper B, admin}, with the expected status, from one table; and
//! tokens that are forged, expired, for another audience or missing claims
//! are 401. Runs through the local runtime's HTTP stack (dev-token layer +
//! the API Router), each cell on fresh data so cells cannot affect each other.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use storefront::auth::{AUDIENCE, DevKeys, ISSUER};
use storefront::local::{LocalRuntime, Options};
use tower::ServiceExt;

struct Shop {
    app: axum::Router,
    keys: DevKeys,
    order: String,
    _dir: tempfile::TempDir,
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(b.body(body).expect("request"))
        .await
        .expect("infallible");
    let status = response.status().as_u16();
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

/// Whether openapi.json lists `status` for the operation `method path`
/// (a concrete path, matched against the document's templates).
fn documented(method: &str, path: &str, status: u16) -> bool {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.json"))
            .expect("openapi.json");
        serde_json::from_str(&text).expect("openapi.json is JSON")
    });
    let path = path.split('?').next().unwrap_or(path);
    let concrete: Vec<&str> = path.split('/').collect();
    let paths = doc["paths"].as_object().expect("paths");
    let Some((_, item)) = paths.iter().find(|(template, _)| {
        let t: Vec<&str> = template.split('/').collect();
        t.len() == concrete.len()
            && t.iter()
                .zip(&concrete)
                .all(|(t, c)| t == c || (t.starts_with('{') && t.ends_with('}')))
    }) else {
        panic!("{method} {path}: no such operation in openapi.json");
    };
    item[method.to_lowercase()]["responses"]
        .get(status.to_string())
        .is_some()
}

/// Fresh data: product MUG; A registered, with an order (pending) and MUG in the cart again; B and the admin not registered.
async fn shop() -> Shop {
    let dir = tempfile::tempdir().expect("dir");
    let runtime = LocalRuntime::build(Options {
        data: dir.path().to_path_buf(),
        template: concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml").into(),
        sweep_every: None,
        retry_base: Duration::from_millis(20),
    })
    .expect("runtime");
    let app = runtime.http();
    let keys = runtime.keys.clone();
    let admin = keys
        .issue("root", true, Some("root@example.com"), 600)
        .expect("token");
    let a = keys
        .issue("alice", false, Some("alice@example.com"), 600)
        .expect("token");
    let ok = |r: (u16, Value)| {
        assert!(r.0 < 300, "setup: {r:?}");
        r.1
    };
    ok(call(&app, "POST", "/products", Some(&admin), Some(&json!({"sku": "MUG", "name": "Mug", "priceCents": 100, "currency": "EUR", "stock": 10}))).await);
    ok(call(
        &app,
        "POST",
        "/users",
        Some(&a),
        Some(&json!({"name": "A"})),
    )
    .await);
    ok(call(
        &app,
        "POST",
        "/cart/items",
        Some(&a),
        Some(&json!({"sku": "MUG", "quantity": 1})),
    )
    .await);
    let order = ok(call(&app, "POST", "/cart/checkout", Some(&a), None).await)["orderId"]
        .as_str()
        .expect("id")
        .to_owned();
    ok(call(
        &app,
        "POST",
        "/cart/items",
        Some(&a),
        Some(&json!({"sku": "MUG", "quantity": 1})),
    )
    .await);
    Shop {
        app,
        keys,
        order,
        _dir: dir,
    }
}

/// Every route × every identity answers exactly the expected status.
#[tokio::test]
async fn authorization_matrix() {
    // (method, path with {order}, body, [anonymous, A = owner, B = other shopper, admin])
    let table: Vec<(&str, &str, Option<Value>, [u16; 4])> = vec![
        ("GET", "/health", None, [200, 200, 200, 200]),
        ("GET", "/openapi.json", None, [200, 200, 200, 200]),
        ("GET", "/docs", None, [200, 200, 200, 200]),
        (
            "POST",
            "/users",
            Some(json!({"name": "X"})),
            [401, 409, 201, 201],
        ),
        ("GET", "/users/me", None, [401, 200, 404, 404]),
        (
            "PATCH",
            "/users/me",
            Some(json!({"name": "Y"})),
            [401, 200, 404, 404],
        ),
        ("DELETE", "/users/me", None, [401, 200, 404, 404]),
        ("GET", "/products", None, [200, 200, 200, 200]),
        ("GET", "/products/MUG", None, [200, 200, 200, 200]),
        (
            "POST",
            "/products",
            Some(
                json!({"sku": "NEW", "name": "New", "priceCents": 1, "currency": "EUR", "stock": 1}),
            ),
            [401, 403, 403, 201],
        ),
        (
            "PATCH",
            "/products/MUG",
            Some(json!({"name": "Big mug"})),
            [401, 403, 403, 200],
        ),
        (
            "POST",
            "/products/MUG/stock",
            Some(json!({"delta": 1, "reason": "count"})),
            [401, 403, 403, 200],
        ),
        ("DELETE", "/products/MUG", None, [401, 403, 403, 200]),
        ("GET", "/cart", None, [401, 200, 200, 200]),
        (
            "POST",
            "/cart/items",
            Some(json!({"sku": "MUG", "quantity": 1})),
            [401, 200, 200, 200],
        ),
        (
            "PATCH",
            "/cart/items/MUG",
            Some(json!({"quantity": 2})),
            [401, 200, 404, 404],
        ),
        ("DELETE", "/cart/items/MUG", None, [401, 200, 404, 404]),
        ("POST", "/cart/checkout", None, [401, 201, 422, 422]),
        ("GET", "/orders", None, [401, 200, 200, 200]),
        ("GET", "/orders/{order}", None, [401, 200, 404, 200]),
        (
            "POST",
            "/orders/{order}/payment",
            Some(json!({"amountCents": 100})),
            [401, 422, 404, 403],
        ),
        ("POST", "/orders/{order}/cancel", None, [401, 200, 404, 200]),
        (
            "POST",
            "/orders/{order}/shipment",
            Some(json!({"carrier": "DHL", "trackingNumber": "T"})),
            [401, 403, 403, 422],
        ),
        (
            "POST",
            "/orders/{order}/delivery",
            None,
            [401, 403, 403, 422],
        ),
        (
            "GET",
            "/admin/streams/order%23{order}/events",
            None,
            [401, 403, 403, 200],
        ),
        ("GET", "/admin/stats", None, [401, 403, 403, 200]),
    ];
    let mut failures = Vec::new();
    for (method, path, body, expected) in &table {
        for (who, want) in ["anonymous", "A", "B", "admin"].iter().zip(expected) {
            let s = shop().await;
            let token = match *who {
                "anonymous" => None,
                "A" => Some(
                    s.keys
                        .issue("alice", false, Some("alice@example.com"), 600)
                        .expect("token"),
                ),
                "B" => Some(
                    s.keys
                        .issue("bob", false, Some("bob@example.com"), 600)
                        .expect("token"),
                ),
                _ => Some(
                    s.keys
                        .issue("root", true, Some("root@example.com"), 600)
                        .expect("token"),
                ),
            };
            let path = path.replace("{order}", &s.order);
            let (status, value) =
                call(&s.app, method, &path, token.as_deref(), body.as_ref()).await;
            if status != *want {
                failures.push(format!(
                    "{method} {path} as {who}: {status} (expected {want}) {value}"
                ));
            }
            if !documented(method, &path, status) {
                failures.push(format!(
                    "{method} {path} as {who}: {status}, which openapi.json does not list for it"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization matrix:\n{}",
        failures.join("\n")
    );
}

/// Every admin route answers 401 to the anonymous and 403 to a shopper
/// before it looks at the path, the body or the store: a malformed body
/// (bad JSON, no content type, a wrong field type), a malformed path
/// segment or an unknown order gets the same refusal as a good request,
/// while the admin's same request is refused for what it is (400, 415,
/// 404), which shows the request was bad.
#[tokio::test]
async fn admin_routes_refuse_before_parsing() {
    // (method, path, body, content type, what the admin gets)
    let cases: Vec<(&str, &str, &str, Option<&str>, u16)> = vec![
        (
            "POST",
            "/products",
            "{not json",
            Some("application/json"),
            400,
        ),
        ("POST", "/products", r#"{"sku": "MUG"}"#, None, 415),
        (
            "POST",
            "/products",
            r#"{"sku": 7, "name": [], "priceCents": "x"}"#,
            Some("application/json"),
            400,
        ),
        (
            "PATCH",
            "/products/MUG",
            "{not json",
            Some("application/json"),
            400,
        ),
        (
            "PATCH",
            "/products/bad%20sku!",
            r#"{"name": "X"}"#,
            Some("application/json"),
            400,
        ),
        (
            "POST",
            "/products/MUG/stock",
            r#"{"delta": "lots"}"#,
            Some("application/json"),
            400,
        ),
        (
            "POST",
            "/products/MUG/stock",
            r#"{"delta": 1}"#,
            Some("text/plain"),
            415,
        ),
        ("DELETE", "/products/bad%20sku!", "", None, 400),
        (
            "POST",
            "/orders/{order}/shipment",
            "{not json",
            Some("application/json"),
            400,
        ),
        (
            "POST",
            "/orders/no-such-order/shipment",
            r#"{"carrier": "UPS", "trackingNumber": "1Z"}"#,
            Some("application/json"),
            404,
        ),
        ("POST", "/orders/no-such-order/delivery", "", None, 404),
        ("GET", "/admin/streams/not-a-stream/events", "", None, 400),
    ];
    let s = shop().await;
    let shopper = s
        .keys
        .issue("alice", false, Some("alice@example.com"), 600)
        .expect("token");
    let admin = s
        .keys
        .issue("root", true, Some("root@example.com"), 600)
        .expect("token");
    let mut failures = Vec::new();
    for (method, path, body, content_type, for_admin) in cases {
        let path = path.replace("{order}", &s.order);
        for (who, token, want) in [
            ("anonymous", None, 401),
            ("a shopper", Some(shopper.as_str()), 403),
            ("the admin", Some(admin.as_str()), for_admin),
        ] {
            let mut b = Request::builder().method(method).uri(&path);
            if let Some(t) = token {
                b = b.header("authorization", format!("Bearer {t}"));
            }
            if let Some(c) = content_type {
                b = b.header("content-type", c);
            }
            let response = s
                .app
                .clone()
                .oneshot(b.body(Body::from(body.to_owned())).expect("request"))
                .await
                .expect("infallible");
            let status = response.status().as_u16();
            if status != want {
                failures.push(format!(
                    "{method} {path} ({body:?}, {content_type:?}) as {who}: {status}, expected {want}"
                ));
            }
            if !documented(method, &path, status) {
                failures.push(format!(
                    "{method} {path} as {who}: {status}, which openapi.json does not list for it"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Forged, expired, foreign-audience, foreign-issuer and claim-less tokens, and other schemes, are 401 with a problem body.
#[tokio::test]
async fn bad_tokens_are_401() {
    let s = shop().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let sign = |secret: &[u8], claims: Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .expect("encode")
    };
    let key = std::fs::read_to_string(s._dir.path().join("dev-signing-key")).expect("key");
    let secret = hex::decode(key.trim()).expect("hex");
    let good =
        json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600});
    assert_eq!(
        call(
            &s.app,
            "GET",
            "/cart",
            Some(&sign(&secret, good.clone())),
            None
        )
        .await
        .0,
        200,
        "baseline"
    );
    let mut cases: Vec<(&str, String)> = vec![(
        "forged signature",
        sign(b"not the dev key, not the dev key", good.clone()),
    )];
    let mut expired = good.clone();
    expired["exp"] = json!(now - 3600);
    cases.push(("expired", sign(&secret, expired)));
    let mut audience = good.clone();
    audience["aud"] = json!("another-app");
    cases.push(("wrong audience", sign(&secret, audience)));
    let mut issuer = good.clone();
    issuer["iss"] = json!("someone-else");
    cases.push(("wrong issuer", sign(&secret, issuer)));
    let mut no_sub = good.clone();
    no_sub.as_object_mut().expect("object").remove("sub");
    cases.push(("missing sub", sign(&secret, no_sub)));
    let mut no_exp = good;
    no_exp.as_object_mut().expect("object").remove("exp");
    cases.push(("missing exp", sign(&secret, no_exp)));
    cases.push(("garbage", "not.a.token".into()));
    for (name, token) in cases {
        let (status, body) = call(&s.app, "GET", "/cart", Some(&token), None).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}"
        );
    }
    // A public route is served whatever the token: API Gateway runs the
    // authorizer only on the routes that have one.
    for path in ["/health", "/products", "/products/MUG", "/openapi.json"] {
        let (status, body) = call(&s.app, "GET", path, Some("not.a.token"), None).await;
        assert_eq!(status, 200, "{path} with a bad token: {body}");
    }
    let basic = Request::builder()
        .uri("/cart")
        .header("authorization", "Basic YWxpY2U6eA==")
        .body(Body::empty())
        .expect("request");
    assert_eq!(
        s.app
            .clone()
            .oneshot(basic)
            .await
            .expect("infallible")
            .status()
            .as_u16(),
        401
    );
}

/// The local runtime answers CORS as the template's HTTP API does: a web
/// client on `WebOrigins` (its default, `http://localhost:5173`) gets its
/// preflight allowed (the API's request headers included) and can read the
/// catalogue's `ETag` and `Link`; another origin gets no CORS headers, and
/// the local tooling (`/_local`) answers no preflight at all.
#[tokio::test]
async fn cors_answers_the_web_client_as_the_stack_does() {
    let shop = shop().await;
    let request = |method: &str, path: &str, origin: &str, preflight: bool| {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("origin", origin);
        if preflight {
            b = b.header("access-control-request-method", "GET").header(
                "access-control-request-headers",
                "if-none-match, authorization",
            );
        }
        b.body(Body::empty()).expect("request")
    };
    let send = |r: Request<Body>| async {
        let response = shop.app.clone().oneshot(r).await.expect("infallible");
        (response.status().as_u16(), response.headers().clone())
    };
    let header = |h: &axum::http::HeaderMap, name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_lowercase)
    };

    let (status, h) = send(request(
        "OPTIONS",
        "/products",
        "http://localhost:5173",
        true,
    ))
    .await;
    assert!(status < 300, "preflight: {status}");
    assert_eq!(
        header(&h, "access-control-allow-origin").as_deref(),
        Some("http://localhost:5173")
    );
    let allowed = header(&h, "access-control-allow-headers").unwrap_or_default();
    for name in ["authorization", "if-none-match", "idempotency-key"] {
        assert!(allowed.contains(name), "{name} not allowed: {allowed}");
    }
    assert_eq!(header(&h, "access-control-max-age").as_deref(), Some("600"));

    let (status, h) = send(request("GET", "/products", "http://localhost:5173", false)).await;
    assert_eq!(status, 200);
    let exposed = header(&h, "access-control-expose-headers").unwrap_or_default();
    for name in ["etag", "link", "retry-after"] {
        assert!(exposed.contains(name), "{name} not exposed: {exposed}");
    }

    let (_, h) = send(request("GET", "/products", "https://evil.example", false)).await;
    assert_eq!(
        header(&h, "access-control-allow-origin"),
        None,
        "another origin"
    );
    let (_, h) = send(request(
        "OPTIONS",
        "/_local/queues",
        "http://localhost:5173",
        true,
    ))
    .await;
    assert_eq!(
        header(&h, "access-control-allow-origin"),
        None,
        "the local tooling"
    );
}
