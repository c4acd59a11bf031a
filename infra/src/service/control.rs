//! The `/_local` routes, once for both modes, over one [`Control`] interface:
//! the fault switch, queue and DLQ depths, event counts and the feed's rewind.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Serialize;

use storefront_store::sqlite::SqliteCounts;

use super::ServiceError;
use super::function::Faults;
use crate::auth::DevKeys;

/// Messages waiting for one handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// In its queue: visible, in flight or delayed.
    pub queue: u64,
    /// In its DLQ.
    pub dlq: u64,
}

/// How many events are stored, and how far the stream mapping has got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventCounts {
    /// Every stored event.
    pub events: u64,
    /// Those a request appended (actor not `system:*`), which the schemathesis
    /// run compares around every refused request.
    pub appended_by_requests: u64,
    /// The position of the last stored event.
    pub last_position: u64,
    /// How far the mapping has published: equal to `last_position` once every
    /// stored event has gone through the publisher.
    pub published: u64,
    /// Items of the events table that do not decode (the AWS mode reports them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undecodable: Option<u64>,
}

/// Calls and commits on the local runtime's two SQLite files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqliteFiles {
    /// `events.db`: the event log and the state table.
    pub events_db: SqliteCounts,
    /// `queues.db`: the handlers' queues and the feed's cursor.
    pub queues_db: SqliteCounts,
}

/// What the local tooling can see and do to a running service.
#[async_trait]
pub trait Control: Send + Sync {
    /// The fault switch.
    fn faults(&self) -> &Faults;
    /// Per handler: its queue's and its DLQ's depth.
    async fn queue_depths(&self) -> Result<BTreeMap<String, QueueDepth>, ServiceError>;
    /// Events stored and published.
    async fn event_counts(&self) -> Result<EventCounts, ServiceError>;
    /// Publishes every stored event again (the duplicate-delivery drill).
    async fn rewind_feed(&self) -> Result<(), ServiceError>;
    /// The local runtime's SQLite work since it started; `None` in AWS mode.
    fn sqlite(&self) -> Option<SqliteFiles>;
}

type Failure = (StatusCode, String);

fn unavailable(e: ServiceError) -> Failure {
    (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

/// The `/_local` routes over `control`, behind [`guard`]: an admin's dev
/// token, and no browser page from anywhere.
pub fn router(control: Arc<dyn Control>, keys: DevKeys) -> Router {
    Router::new()
        .route("/_local/faults", get(list_faults))
        .route(
            "/_local/faults/{handler}",
            put(set_fault).delete(clear_fault),
        )
        .route("/_local/queues", get(queue_depths))
        .route("/_local/events/count", get(event_counts))
        .route("/_local/feed/rewind", post(rewind_feed))
        .route("/_local/sqlite", get(sqlite_counts))
        .with_state(control)
        .layer(axum::middleware::from_fn_with_state(keys, guard))
}

/// What every `/_local` route asks first. A browser's request (it carries
/// `Origin`, or `Sec-Fetch-Site` other than `none`) is refused whatever it
/// carries: a page the developer opens must not rewind the feed or switch
/// faults, and against a real stack in AWS mode a rewind republishes to the
/// real bus. Then an admin's dev token (`storefront token --user NAME
/// --admin`): 401 without a valid one, 403 for a shopper's.
pub async fn guard(State(keys): State<DevKeys>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let from_a_page = headers.contains_key(header::ORIGIN)
        || headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() != b"none");
    if from_a_page {
        return refuse(
            StatusCode::FORBIDDEN,
            "the local tooling answers the CLI and tests, not browser pages",
        );
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "the local tooling needs an admin's dev token: `storefront token --user NAME --admin`",
        );
    };
    match keys.verify(token) {
        Ok(claims) if claims.groups.iter().any(|g| g == "admin") => next.run(request).await,
        Ok(_) => refuse(
            StatusCode::FORBIDDEN,
            "the local tooling needs an admin's token (`storefront token --user NAME --admin`)",
        ),
        Err(e) => refuse(StatusCode::UNAUTHORIZED, &e.to_string()),
    }
}

fn refuse(status: StatusCode, detail: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        Json(serde_json::json!({
            "title": status.canonical_reason().unwrap_or("refused"),
            "status": status.as_u16(),
            "detail": detail,
        })),
    )
        .into_response()
}

type Ctl = State<Arc<dyn Control>>;

fn sorted_faults(faults: &Faults) -> Json<Vec<String>> {
    let mut list: Vec<String> = faults
        .lock()
        .map(|f| f.iter().cloned().collect())
        .unwrap_or_default();
    list.sort();
    Json(list)
}

async fn list_faults(State(c): Ctl) -> Json<Vec<String>> {
    sorted_faults(c.faults())
}

async fn set_fault(State(c): Ctl, Path(handler): Path<String>) -> Json<Vec<String>> {
    if let Ok(mut f) = c.faults().lock() {
        f.insert(handler);
    }
    sorted_faults(c.faults())
}

async fn clear_fault(State(c): Ctl, Path(handler): Path<String>) -> Json<Vec<String>> {
    if let Ok(mut f) = c.faults().lock() {
        f.remove(&handler);
    }
    sorted_faults(c.faults())
}

async fn queue_depths(State(c): Ctl) -> Result<Json<BTreeMap<String, QueueDepth>>, Failure> {
    c.queue_depths().await.map(Json).map_err(unavailable)
}

async fn event_counts(State(c): Ctl) -> Result<Json<EventCounts>, Failure> {
    c.event_counts().await.map(Json).map_err(unavailable)
}

/// The SQLite files' calls and commits (`null` in AWS mode): the load
/// generator's instrument. Apart from `/_local/events/count`, which callers
/// compare before and after to see that nothing moved.
async fn sqlite_counts(State(c): Ctl) -> Json<Option<SqliteFiles>> {
    Json(c.sqlite())
}

async fn rewind_feed(State(c): Ctl) -> Result<Json<serde_json::Value>, Failure> {
    c.rewind_feed().await.map_err(unavailable)?;
    Ok(Json(serde_json::json!({"rewound": true})))
}
