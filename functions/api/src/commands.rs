//! The command pipeline: load, decide, append at the expected version;
//! on a version conflict reload and re-decide, a bounded number of times,
//! then 409.
//!
//! A plan is built from freshly loaded state on every attempt, so a retry
//! never appends what was decided against stale state. The plan's answer is
//! known before the append, which lets the idempotency record ride in the same
//! atomic append as the events.

use std::future::Future;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use storefront_domain::{Aggregate, Event, EventMeta, StreamId, seal_batch};
use storefront_store::aggregate::{Loaded, load, save_snapshot_value, snapshot_due};
use storefront_store::clock::{new_event_id, now_rfc3339};
use storefront_store::{AppendBatch, StateWrite, StoreError, StreamAppend};

use crate::AppState;
use crate::error::ApiError;
use crate::idempotency::{IdempotencyKey, Recorded};

/// Who asks, and under which correlation id.
#[derive(Debug, Clone)]
pub struct CommandContext {
    /// The user id, or `system:<name>`.
    pub actor: String,
    /// Ties the events of a flow together.
    pub correlation_id: String,
    /// The request's idempotency key, if it sent one.
    pub idempotency: Option<IdempotencyKey>,
}

impl CommandContext {
    /// Metadata for a new event decided now.
    pub fn meta(&self) -> EventMeta {
        EventMeta {
            event_id: new_event_id(),
            occurred_at: now_rfc3339(),
            correlation_id: self.correlation_id.clone(),
            causation_id: None,
            actor: self.actor.clone(),
        }
    }
}

/// A stream's part in a plan.
pub struct StreamChange {
    /// The stream.
    pub stream: StreamId,
    /// The version it was loaded at.
    pub expected_version: u64,
    /// What was decided.
    pub events: Vec<Event>,
    /// The state after the events, for a snapshot when one falls due.
    pub snapshot: Option<serde_json::Value>,
}

/// What one attempt decided: changes to append, extra state writes in the
/// same transaction, and the answer to give once they are stored.
pub struct Plan {
    /// Per-stream changes.
    pub changes: Vec<StreamChange>,
    /// State written atomically with the events (e.g. index items).
    pub state: Vec<StateWrite>,
    /// The answer's status.
    pub status: StatusCode,
    /// The answer's body.
    pub body: serde_json::Value,
}

/// Runs attempts until one appends (or needs no append), reloading on conflicts.
pub async fn execute<F, Fut>(
    app: &AppState,
    ctx: &CommandContext,
    mut attempt: F,
) -> Result<Response, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Plan, ApiError>>,
{
    for try_no in 1..=app.settings.max_attempts {
        let plan = attempt().await?;
        if plan.changes.iter().all(|c| c.events.is_empty()) && plan.state.is_empty() {
            return Ok((plan.status, Json(plan.body)).into_response());
        }
        let mut batch = AppendBatch::default();
        for change in &plan.changes {
            if change.events.is_empty() {
                continue;
            }
            batch.streams.push(StreamAppend {
                stream: change.stream.clone(),
                expected_version: change.expected_version,
                events: seal_batch(
                    &change.stream,
                    change.expected_version,
                    &change.events,
                    |_| ctx.meta(),
                ),
            });
        }
        batch.state = plan.state.clone();
        if let Some(idem) = &ctx.idempotency {
            batch.state.push(idem.record(plan.status, &plan.body));
        }
        let result = if batch.streams.is_empty() {
            // Only state writes: store them one by one (index items are idempotent puts).
            let mut r = Ok(());
            for w in batch.state {
                if let Err(e) = app.state.put(w).await {
                    r = Err(e);
                    break;
                }
            }
            r
        } else {
            app.events.append_batch(batch).await
        };
        match result {
            Ok(()) => {
                metrics::counter!("CommandsAccepted").increment(1);
                write_snapshots(app, &plan.changes).await;
                let mut response = (plan.status, Json(plan.body)).into_response();
                if ctx.idempotency.is_some() {
                    response.extensions_mut().insert(Recorded);
                }
                return Ok(response);
            }
            Err(StoreError::Conflict {
                stream,
                expected,
                actual,
            }) => {
                metrics::counter!("VersionConflicts").increment(1);
                tracing::info!(
                    stream,
                    expected,
                    actual,
                    try_no,
                    "version conflict; reloading"
                );
            }
            Err(StoreError::ConditionFailed { pk, .. })
                if ctx.idempotency.as_ref().is_some_and(|i| i.pk == pk) =>
            {
                // A concurrent retry with the same key won: answer as it did.
                let idem = ctx.idempotency.as_ref().map(|i| i.replay(&*app.state));
                if let Some(replay) = idem {
                    return replay.await;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict(format!(
        "the resource kept changing under {} attempts; retry the request",
        app.settings.max_attempts
    )))
}

async fn write_snapshots(app: &AppState, changes: &[StreamChange]) {
    let every = app.settings.snapshot_every;
    for change in changes {
        let after = change.expected_version + change.events.len() as u64;
        if let Some(state) = &change.snapshot
            && snapshot_due(change.expected_version, after, every)
        {
            // A snapshot is a cache: failing to write one is logged, not fatal.
            if let Err(e) =
                save_snapshot_value(&*app.state, &change.stream, state.clone(), after).await
            {
                tracing::warn!(stream = %change.stream, error = %e, "snapshot not written");
            }
        }
    }
}

/// Loads an aggregate (snapshot + tail).
pub async fn load_aggregate<A: Aggregate>(
    app: &AppState,
    stream: &StreamId,
) -> Result<Loaded<A>, ApiError> {
    Ok(load::<A>(&*app.events, &*app.state, stream).await?)
}

/// The usual single-aggregate change: the events decided on `loaded`, and a
/// snapshot of the state after them.
pub fn change<A: Aggregate>(
    stream: &StreamId,
    loaded: &Loaded<A>,
    events: Vec<Event>,
) -> (StreamChange, A) {
    let after = loaded.state.clone().fold(events.iter());
    let snapshot = serde_json::to_value(&after).ok();
    (
        StreamChange {
            stream: stream.clone(),
            expected_version: loaded.version,
            events,
            snapshot,
        },
        after,
    )
}
