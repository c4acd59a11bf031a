//! # storefront-api
//!
//! The storefront's HTTP API (DESIGN §6): one axum [`Router`], built by
//! [`app`], that `lambda_http` serves in AWS behind API Gateway's JWT
//! authorizer, and that the local runtime and the tests serve directly.
//!
//! Commands load their aggregate (snapshot + tail), decide with the pure
//! deciders of `storefront-domain`, and append at the expected version; on a
//! lost race they reload and decide again under the store pipeline's one
//! retry policy ([`storefront_store::pipeline::RETRY`]), then answer 409. Checkout appends the
//! order's creation and the cart's checkout in one atomic multi-stream
//! append. Every failure is an `application/problem+json` answer, and nothing
//! is appended when a request fails.
//!
//! ## Layout
//! - [`routes`]: the handlers, one per route.
//! - [`commands`]: the API's side of the store's command pipeline.
//! - [`stats`]: `GET /admin/stats`, summed from the analytics items.
//! - [`idempotency`]: `Idempotency-Key` on POSTs.
//! - [`identity`]: claims from the authorizer (or the local dev layer).
//! - [`extract`]: body, path and correlation extractors with clear 4xx errors.
//! - [`views`]: request and response types.
//! - [`error`]: [`ApiError`] and problem details.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod commands;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod identity;
pub mod routes;
pub mod stats;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, patch, post};
use storefront_runtime::{Config, ConfigError, Globals, Stores};
use storefront_store::dynamodb::DynamoStore;
use storefront_store::sqlite::SqliteStore;
use storefront_store::{EventStore, StateStore};
use utoipa::OpenApi;

pub use error::ApiError;
pub use identity::{Admin, Claims, Identity, RejectedToken};

/// Everything the API function reads from its environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// What every function gets: `SNAPSHOT_EVERY` (snapshot an aggregate
    /// every N events, 0 = never) and the log level and format.
    pub globals: Globals,
}

impl Settings {
    /// Reads the globals.
    pub fn from_config(config: &Config) -> Result<Settings, ConfigError> {
        Ok(Settings {
            globals: Globals::from_config(config)?,
        })
    }
}

/// What every handler shares: the stores and the settings. Built once.
#[derive(Clone)]
pub struct AppState {
    /// The event store.
    pub events: Arc<dyn EventStore>,
    /// Views, snapshots, idempotency records.
    pub state: Arc<dyn StateStore>,
    /// Tunables.
    pub settings: Settings,
}

impl AppState {
    /// The API on these stores, with the function's settings. Commands
    /// snapshot after an append that crosses a multiple of
    /// `settings.globals.snapshot_every` (the stores' own `snapshot_every`,
    /// which handlers' loads follow, plays no part here).
    pub fn new(stores: Stores, settings: &Settings) -> Self {
        AppState {
            events: stores.events,
            state: stores.state,
            settings: settings.clone(),
        }
    }

    /// On SQLite (the local runtime and the tests).
    pub fn sqlite(store: SqliteStore, settings: Settings) -> Self {
        AppState::new(Stores::from(store), &settings)
    }

    /// On DynamoDB.
    pub fn dynamo(store: DynamoStore, settings: Settings) -> Self {
        AppState::new(Stores::from(store), &settings)
    }
}

/// The API: every route of DESIGN §6 (its own description at
/// `/openapi.json` and `/docs` included), with idempotency and a 64 KiB
/// body limit.
pub fn app(state: AppState) -> Router {
    use routes::*;
    Router::new()
        .route("/health", get(health))
        .route("/users", post(register_user))
        .route("/users/me", get(me).patch(update_me).delete(close_me))
        .route("/products", get(list_products).post(create_product))
        .route(
            "/products/{sku}",
            get(get_product)
                .patch(update_product)
                .delete(discontinue_product),
        )
        .route("/products/{sku}/stock", post(adjust_stock))
        .route("/cart", get(get_cart))
        .route("/cart/items", post(add_item))
        .route(
            "/cart/items/{sku}",
            patch(change_quantity).delete(remove_item),
        )
        .route("/cart/checkout", post(checkout))
        .route("/orders", get(list_orders))
        .route("/orders/{id}", get(get_order))
        .route("/orders/{id}/payment", post(pay))
        .route("/orders/{id}/cancel", post(cancel))
        .route("/orders/{id}/shipment", post(ship))
        .route("/orders/{id}/delivery", post(deliver))
        .route("/admin/streams/{streamId}/events", get(stream_events))
        .route("/admin/stats", get(stats))
        .route("/openapi.json", get(openapi_document))
        .route("/docs", get(reference_page))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::middleware,
        ))
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(request_span))
        .with_state(state)
}

/// Wraps each request in a span carrying its method, route and correlationId,
/// so every log line of the request (and the problem it may answer with)
/// can be found by the id the events carry. Bodies and tokens are never logged.
async fn request_span(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument;
    let (mut parts, body) = request.into_parts();
    let correlation =
        match <extract::Correlation as axum::extract::FromRequestParts<()>>::from_request_parts(
            &mut parts,
            &(),
        )
        .await
        {
            Ok(c) => c.0,
            Err(never) => match never {},
        };
    let span = tracing::info_span!(
        "request",
        method = %parts.method,
        path = %parts.uri.path(),
        correlationId = %correlation,
    );
    // Handlers see the same id.
    parts.headers.insert(
        "x-correlation-id",
        axum::http::HeaderValue::from_str(&correlation)
            .unwrap_or(axum::http::HeaderValue::from_static("invalid")),
    );
    let response = next
        .run(axum::extract::Request::from_parts(parts, body))
        .instrument(span.clone())
        .await;
    span.in_scope(|| tracing::info!(status = response.status().as_u16(), "answered"));
    response
}

/// The OpenAPI 3.1 document, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "storefront-events API",
        description = "Commands and queries of the event-driven storefront. Errors are application/problem+json (RFC 9457). Money is integer minor units.",
        version = "0.1.0"
    ),
    paths(
        routes::health, routes::register_user, routes::me, routes::update_me, routes::close_me,
        routes::list_products, routes::get_product, routes::create_product, routes::update_product,
        routes::adjust_stock, routes::discontinue_product,
        routes::get_cart, routes::add_item, routes::change_quantity, routes::remove_item, routes::checkout,
        routes::list_orders, routes::get_order, routes::pay, routes::cancel, routes::ship, routes::deliver,
        routes::stream_events, routes::stats,
        routes::docs::openapi_document, routes::docs::reference_page,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "health"), (name = "users"), (name = "products"), (name = "cart"),
        (name = "orders"), (name = "admin"), (name = "docs")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
        // The problems an operation can answer, derived from what it is
        // (each rule is one layer or extractor that every such route runs),
        // on top of those its annotation lists (403, 404, 422: its own
        // rules); and none it cannot (a public route never answers 401, a
        // route without a body never 413 or 415). `authz.rs` and
        // schemathesis fail on a status an operation does not list.
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                (&mut item.get, false),
                (&mut item.put, true),
                (&mut item.post, true),
                (&mut item.delete, true),
                (&mut item.patch, true),
                (&mut item.head, false),
                (&mut item.options, false),
                (&mut item.trace, false),
            ];
            for (op, command) in operations {
                let Some(op) = op.as_mut() else { continue };
                for (code, response) in op.responses.responses.iter_mut() {
                    if let (true, utoipa::openapi::RefOr::T(response)) =
                        (code.starts_with('4') || code.starts_with('5'), response)
                        && let Some(content) = response.content.shift_remove("application/json")
                    {
                        response
                            .content
                            .insert("application/problem+json".to_owned(), content);
                    }
                }
                let public = op.security.as_ref().is_some_and(|s| {
                    s.iter()
                        .any(|r| r == &utoipa::openapi::security::SecurityRequirement::default())
                });
                let body = op.request_body.is_some();
                let parameters = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let keyed = op
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| p.name == "Idempotency-Key");
                // /health and the document itself touch no store.
                let stored = !matches!(path.as_str(), "/health" | "/openapi.json" | "/docs");
                let derived = [
                    (400, "The request is malformed", body || parameters),
                    (401, "No valid token", !public),
                    (
                        409,
                        "A conflict: a lost race after every retry, or the same Idempotency-Key still running or used for another request",
                        command,
                    ),
                    (413, "Body over 64 KiB", body),
                    (
                        422,
                        "A business rule refuses it, or the Idempotency-Key was used for another request",
                        keyed,
                    ),
                    (415, "Body is not JSON", body),
                    (503, "A backend is unavailable; retry", stored),
                ];
                let responses = &mut op.responses.responses;
                for (status, description, applies) in derived {
                    let key = status.to_string();
                    if applies {
                        responses.entry(key).or_insert_with(|| problem(description));
                    } else if matches!(status, 401 | 413 | 415 | 503) {
                        // Only these layers decide alone; a route's own
                        // 400, 409 or 422 stays listed.
                        responses.remove(&key);
                    }
                }
                if public {
                    responses.remove("403");
                }
                // API Gateway's throttling (the template's route settings),
                // answered before the function runs, in its own shape.
                responses.insert(
                    "429".to_owned(),
                    utoipa::openapi::ResponseBuilder::new()
                        .description("Throttled by API Gateway; retry later")
                        .content(
                            "application/json",
                            utoipa::openapi::ContentBuilder::new()
                                .schema(Some(utoipa::openapi::Ref::from_schema_name("Throttled")))
                                .build(),
                        )
                        .build()
                        .into(),
                );
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        components.schemas.insert(
            "Throttled".to_owned(),
            utoipa::openapi::ObjectBuilder::new()
                .property(
                    "message",
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::Type::String),
                )
                .required("message")
                .into(),
        );
    }
}

/// A problem response (application/problem+json) with `description`.
fn problem(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    utoipa::openapi::ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

/// The OpenAPI document as pretty JSON (what `openapi.json` holds).
pub fn openapi_json() -> String {
    let mut text = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API's settings come from the globals (SNAPSHOT_EVERY fails on a
    /// bad value, as everywhere).
    #[test]
    fn settings_from_the_environment() {
        let none = Config::from_pairs(Vec::<(String, String)>::new());
        assert_eq!(Settings::from_config(&none), Ok(Settings::default()));
        assert_eq!(Settings::default().globals.snapshot_every, 100);
        let set = Config::from_pairs([("SNAPSHOT_EVERY", "3")]);
        assert_eq!(
            Settings::from_config(&set).map(|s| s.globals.snapshot_every),
            Ok(3)
        );
        let bad = Config::from_pairs([("SNAPSHOT_EVERY", "often")]);
        assert!(matches!(
            Settings::from_config(&bad),
            Err(ConfigError::Invalid {
                name: "SNAPSHOT_EVERY",
                ..
            })
        ));
    }
}
