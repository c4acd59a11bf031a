//! The API's side of the store's command pipeline
//! ([`storefront_store::pipeline`]): load, decide, append at the expected
//! version; on a lost race reload and decide again under the pipeline's one
//! retry policy, then 409.
//!
//! A plan is built from freshly loaded state on every attempt, so a retry
//! never appends what was decided against stale state. The plan's answer is
//! known before the append, which lets the idempotency record ride in the same
//! atomic append as the events.

use std::future::Future;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use storefront_domain::{Aggregate, Event, EventMeta, StreamId};
use storefront_store::StateWrite;
use storefront_store::aggregate::{Loaded, load};
use storefront_store::clock::{new_event_id, now_rfc3339};
use storefront_store::pipeline::{self, Change, Command, Outcome};

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

/// A stream's part in a plan: the pipeline's [`Change`].
pub type StreamChange = Change;

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

/// Runs the command through the store's pipeline
/// ([`storefront_store::pipeline::execute`]: reload and decide again on a
/// lost race, under its one retry policy), with the request's idempotency
/// record in the same append; every attempt lost is a 409.
pub async fn execute<F, Fut>(
    app: &AppState,
    ctx: &CommandContext,
    mut attempt: F,
) -> Result<Response, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Plan, ApiError>>,
{
    let meta = || ctx.meta();
    let record = ctx.idempotency.as_ref().map(|key| {
        move |(status, body): &(StatusCode, serde_json::Value)| key.record(*status, body)
    });
    let command = Command {
        events: &*app.events,
        state: &*app.state,
        meta: &meta,
        idempotency: record
            .as_ref()
            .map(|r| r as &(dyn Fn(&(StatusCode, serde_json::Value)) -> StateWrite + Sync)),
        snapshot_every: app.settings.globals.snapshot_every,
        seed: &ctx.correlation_id,
    };
    let outcome = pipeline::execute(&command, || {
        let plan = attempt();
        async move {
            let plan = plan.await?;
            Ok::<_, ApiError>(pipeline::Plan {
                changes: plan.changes,
                state: plan.state,
                answer: (plan.status, plan.body),
            })
        }
    })
    .await?;
    match outcome {
        Outcome::Committed((status, body)) => {
            metrics::counter!("CommandsAccepted").increment(1);
            let mut response = (status, Json(body)).into_response();
            if ctx.idempotency.is_some() {
                response.extensions_mut().insert(Recorded);
            }
            Ok(response)
        }
        Outcome::Unchanged((status, body)) => Ok((status, Json(body)).into_response()),
        // A concurrent retry with the same key won: answer as it did.
        Outcome::Duplicate => match &ctx.idempotency {
            Some(idem) => idem.replay(&*app.state).await,
            None => Err(ApiError::Conflict(
                "the request was already applied; retry it".into(),
            )),
        },
        Outcome::Contended { attempts } => {
            metrics::counter!("VersionConflicts").increment(1);
            Err(ApiError::Conflict(format!(
                "the resource kept changing under {attempts} attempts; retry the request"
            )))
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
