//! The API describes itself: `GET /openapi.json` (the checked-in document)
//! and `GET /docs` (a reference page rendered from it in the browser). Both
//! are public and ship inside the binary: nothing is fetched from elsewhere,
//! at build time or when the page loads.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// `openapi.json` at the repository's root, as built into the binary. A
/// test holds it equal to what the code generates ([`crate::openapi_json`]),
/// so what is served is what the handlers do.
pub const OPENAPI_JSON: &str = include_str!("../../../../openapi.json");

/// The reference page: one HTML file with its CSS and script inline, which
/// fetches `openapi.json` next to it and renders operations by tag, their
/// parameters, request bodies and responses, and the schemas they name.
pub const DOCS_HTML: &str = include_str!("docs.html");

/// What the page may do: its own inline style and script, and fetch from
/// this origin; nothing else loads (no CDN, no fonts, no frames).
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "docs", security(()),
    responses((status = 200, description = "This API's OpenAPI 3.1 document (the repository's openapi.json)",
        content_type = "application/json", body = serde_json::Value)))]
pub async fn openapi_document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

/// A reference page for humans, rendered from `/openapi.json`.
#[utoipa::path(get, path = "/docs", tag = "docs", security(()),
    responses((status = 200, description = "An HTML page that renders /openapi.json: operations, parameters, request bodies, responses and schemas",
        content_type = "text/html", body = String)))]
pub async fn reference_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, DOCS_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        DOCS_HTML,
    )
        .into_response()
}
