//! Every route of DESIGN §6. Handlers are thin: check who asks, parse, run a
//! decider through [`crate::commands::execute`], answer with a view.
//!
//! The helpers every route shares are here; the routes are grouped by
//! resource: [`users`], [`products`], [`cart`], [`orders`], [`admin`], and
//! the API's own description, [`docs`].

mod admin;
mod cart;
pub mod docs;
mod orders;
mod products;
mod users;

pub use admin::*;
pub use cart::*;
pub use docs::{openapi_document, reference_page};
pub use orders::*;
pub use products::*;
pub use users::*;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use storefront_domain::cart::{CartCommand, CartState, ProductInfo};
use storefront_domain::order::{OrderCommand, OrderState};
use storefront_domain::product::{ProductCommand, ProductState};
use storefront_domain::user::{UserCommand, UserState};
use storefront_domain::{Aggregate, Currency, DomainError, Event, OrderId, Sku, StreamId};
use storefront_store::clock::{new_event_id, now_rfc3339};
use storefront_store::{Condition, StateItem, StateWrite, keys};

use crate::AppState;
use crate::commands::{CommandContext, Plan, change, execute, load_aggregate};
use crate::error::{ApiError, Problem};
use crate::extract::{Correlation, JsonBody};
use crate::idempotency::IdempotencyKey;
use crate::identity::{Admin, Identity};
use crate::views::*;

/// A single path parameter; a malformed one is a 400 problem, not axum's plain text.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| PathParam(p))
            .map_err(|e| ApiError::BadRequest(format!("bad path parameter: {}", e.body_text())))
    }
}

/// A JSON body that may be absent (an empty body means the default).
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let has_body = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v != "0")
            && req.headers().contains_key(axum::http::header::CONTENT_TYPE);
        if !has_body {
            // Drain whatever there is; a body without a content type is refused.
            let bytes = Bytes::from_request(req, state)
                .await
                .map_err(|_| ApiError::PayloadTooLarge(crate::extract::MAX_BODY_BYTES))?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJsonBody(T::default()));
            }
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with Content-Type: application/json".into(),
            ));
        }
        JsonBody::<T>::from_request(req, state)
            .await
            .map(|JsonBody(t)| OptionalJsonBody(t))
    }
}

fn ctx(
    identity: &Identity,
    correlation: Correlation,
    idem: Option<IdempotencyKey>,
) -> CommandContext {
    CommandContext {
        actor: identity.user_id.to_string(),
        correlation_id: correlation.0,
        idempotency: idem,
    }
}

fn stream(kind: &str, id: &str) -> Result<StreamId, ApiError> {
    Ok(StreamId::new(kind, id)?)
}

fn sku(raw: &str) -> Result<Sku, ApiError> {
    Ok(Sku::new(raw)?)
}

fn order_id(raw: &str) -> Result<OrderId, ApiError> {
    OrderId::new(raw).map_err(|_| ApiError::NotFound(format!("order {raw:?} does not exist")))
}

fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// Runs a command on one aggregate: decide on fresh state each attempt, answer with `view` of the state after.
async fn single<A, D, V, T>(
    app: &AppState,
    ctx: &CommandContext,
    stream: StreamId,
    status: StatusCode,
    decide: D,
    view: V,
    extra_state: impl Fn(&A) -> Vec<StateWrite>,
) -> Result<Response, ApiError>
where
    A: Aggregate,
    D: Fn(&A) -> Result<Vec<Event>, ApiError>,
    V: Fn(&A) -> Option<T>,
    T: serde::Serialize,
{
    execute(app, ctx, || async {
        let loaded = load_aggregate::<A>(app, &stream).await?;
        let events = decide(&loaded.state)?;
        let (change, after) = change(&stream, &loaded, events);
        let body = view(&after).ok_or_else(|| ApiError::NotFound("not found".into()))?;
        let state = if change.events.is_empty() {
            vec![]
        } else {
            extra_state(&after)
        };
        Ok(Plan {
            changes: vec![change],
            state,
            status,
            body: json(&body),
        })
    })
    .await
}

fn none<A>(_: &A) -> Vec<StateWrite> {
    Vec::new()
}

fn index(pk: String, sk: String) -> StateWrite {
    index_with(pk, sk, serde_json::json!({}))
}

/// An index item that carries what its reader needs to skip it cheaply.
fn index_with(pk: String, sk: String, value: serde_json::Value) -> StateWrite {
    StateWrite {
        item: StateItem {
            pk,
            sk,
            version: 1,
            value,
            expires_at: None,
        },
        condition: Condition::Always,
    }
}

/// The views of every aggregate named in an index partition (sort key = the
/// aggregate's id), loaded 16 at a time; ids whose aggregate does not exist
/// (yet) are left out.
async fn index_views<A: Aggregate, V>(
    app: &AppState,
    pk: &str,
    view: impl Fn(&A) -> Option<V>,
) -> Result<Vec<V>, ApiError> {
    let ids: Vec<String> = app
        .state
        .query(pk)
        .await?
        .into_iter()
        .map(|i| i.sk)
        .collect();
    let loaded: Vec<Result<A, ApiError>> = futures::stream::iter(ids)
        .map(|id| {
            let app = app.clone();
            async move {
                Ok(load_aggregate::<A>(&app, &stream(A::TYPE, &id)?)
                    .await?
                    .state)
            }
        })
        .buffered(16)
        .collect()
        .await;
    let mut out = Vec::new();
    for state in loaded {
        out.extend(view(&state?));
    }
    Ok(out)
}

// ---- health -------------------------------------------------------------------

/// Liveness.
#[utoipa::path(get, path = "/health", tag = "health", security(()),
    responses((status = 200, description = "The API is up", body = serde_json::Value)))]
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// 404 for unknown routes, as a problem.
pub async fn not_found(request: Request) -> Response {
    ApiError::NotFound(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
    .into_response()
}

/// 405 for known routes with another method, as a problem.
pub async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}
