//! What every event handler is, and the two ways handlers change things
//! exactly once under at-least-once delivery.
//!
//! - [`append_once`]: a handler whose effect is appending events decides on
//!   freshly loaded state and appends with its idempotency record
//!   (`idem#{handler}#{eventId}`) in the same atomic append. A redelivery
//!   finds the record and is a duplicate; a lost race reloads and re-decides.
//! - [`project`]: a view of one stream, caught up from the store rather than
//!   built from arrival order (EventBridge gives no order): read the events
//!   after the view's version, fold them, write with compare-and-swap. A
//!   duplicate or stale event finds nothing new and changes nothing.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use storefront_domain::{Aggregate, Event, EventEnvelope, EventMeta, EventType, StreamId};
use storefront_store::clock::{new_event_id, now_epoch_seconds, now_rfc3339};
use storefront_store::pipeline::{self, Change, Command, Outcome as PipelineOutcome, Plan};
use storefront_store::{Condition, EventStore, StateItem, StateStore, StateWrite};

use crate::settings::DEFAULT_SNAPSHOT_EVERY;
use crate::sqs::{HandlerError, Outcome};

/// An event handler: one per Lambda, subscribed through its own rule and queue.
#[async_trait]
pub trait EventHandler: Send + Sync {
    /// The handler's name (`inventory`, `order-workflow`, ...): its function, queue and records.
    fn name(&self) -> &'static str;
    /// The event types it consumes; the template's rule must select exactly these.
    fn consumes(&self) -> &'static [EventType];
    /// Handles one event. Called at least once per event, in any order.
    async fn handle(&self, event: &EventEnvelope) -> Result<Outcome, HandlerError>;
    /// The handler as a [`Projection`], if its whole effect is views (which
    /// can then be rebuilt from the store); `None` for a handler whose
    /// effects are events.
    fn projection(&self) -> Option<&dyn Projection> {
        None
    }
}

/// A handler whose whole effect is views, caught up from the store: it can
/// forget them and be fed every stored event again (`storefront replay`).
#[async_trait]
pub trait Projection: Send + Sync {
    /// Deletes every view and index item this handler built. `streams` are
    /// the ids of every stream in the store (views are keyed by stream, and
    /// the state table cannot list them all).
    async fn reset(&self, streams: &BTreeSet<String>) -> Result<(), HandlerError>;
}

/// The two stores every handler works on, and how often a handler's loads
/// snapshot what they fold.
#[derive(Clone)]
pub struct Stores {
    /// The event store.
    pub events: Arc<dyn EventStore>,
    /// Views, idempotency records, outboxes.
    pub state: Arc<dyn StateStore>,
    /// A [`load`] that folded at least this many events past the snapshot
    /// writes a new one (`SNAPSHOT_EVERY`; 0 = never).
    pub snapshot_every: u64,
}

impl Stores {
    /// Both ports from one adapter that implements them (SQLite or
    /// DynamoDB), snapshotting every [`DEFAULT_SNAPSHOT_EVERY`] events.
    pub fn from<S: EventStore + StateStore + Clone + 'static>(store: S) -> Self {
        Stores {
            events: Arc::new(store.clone()),
            state: Arc::new(store),
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
        }
    }

    /// The same stores, snapshotting every `n` events (0 = never): a
    /// function's constructor applies its `SNAPSHOT_EVERY` with this.
    pub fn with_snapshot_every(self, n: u64) -> Self {
        Stores {
            snapshot_every: n,
            ..self
        }
    }
}

/// How long idempotency records of handlers are kept (7 days: well past SQS's 4-day default retention).
pub const IDEMPOTENCY_TTL_SECONDS: i64 = 7 * 24 * 3600;

/// The idempotency record key of `handler` for `event_id`.
pub fn idempotency_key(handler: &str, event_id: &str) -> (String, String) {
    let (pk, sk) = storefront_store::keys::handled(handler, event_id);
    (pk, sk.to_owned())
}

/// Metadata for an event a handler decides because of `cause`.
pub fn caused_by(handler: &str, cause: &EventEnvelope) -> EventMeta {
    EventMeta {
        event_id: new_event_id(),
        occurred_at: now_rfc3339(),
        correlation_id: cause.correlation_id.clone(),
        causation_id: Some(cause.event_id.clone()),
        actor: format!("system:{handler}"),
    }
}

/// Events decided for one stream at the version it was loaded at.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The stream.
    pub stream: StreamId,
    /// The version the decision was made on.
    pub expected_version: u64,
    /// The events.
    pub events: Vec<Event>,
}

/// The pipeline's answer when every attempt lost its race: SQS redelivers.
fn contended(what: &str, attempts: u32) -> HandlerError {
    HandlerError::Transient(format!(
        "{what} kept changing over {attempts} attempts; SQS will redeliver"
    ))
}

/// Decides and appends the effect of `cause` exactly once, through the
/// store's command pipeline ([`storefront_store::pipeline`]). `plan` runs on
/// every attempt and must load what it decides on; it returns the decisions
/// (possibly none) and any state writes that belong to the same transaction.
/// The idempotency record (`idem#{handler}#{eventId}`) rides in the same
/// append; finding it means the event was handled before.
pub async fn append_once<F, Fut>(
    events: &dyn EventStore,
    state: &dyn StateStore,
    handler: &str,
    cause: &EventEnvelope,
    mut plan: F,
) -> Result<Outcome, HandlerError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(Vec<Decision>, Vec<StateWrite>), HandlerError>>,
{
    let (pk, sk) = idempotency_key(handler, &cause.event_id);
    if state.get(&pk, &sk).await?.is_some() {
        return Ok(Outcome::Duplicate);
    }
    let meta = || caused_by(handler, cause);
    let record = |_: &()| StateWrite {
        item: StateItem {
            pk: pk.clone(),
            sk: sk.clone(),
            version: 1,
            value: serde_json::json!({"eventType": cause.event_type}),
            expires_at: Some(now_epoch_seconds() + IDEMPOTENCY_TTL_SECONDS),
        },
        condition: Condition::NotExists,
    };
    let command = Command {
        events,
        state,
        meta: &meta,
        idempotency: Some(&record),
        // Handlers snapshot on load (see [`load`]), not after their appends.
        snapshot_every: 0,
        seed: &cause.event_id,
    };
    let outcome = pipeline::execute(&command, || {
        let decided = plan();
        async move {
            let (decisions, writes) = decided.await?;
            Ok::<_, HandlerError>(Plan {
                changes: decisions
                    .into_iter()
                    .map(|d| Change {
                        stream: d.stream,
                        expected_version: d.expected_version,
                        events: d.events,
                        snapshot: None,
                    })
                    .collect(),
                state: writes,
                answer: (),
            })
        }
    })
    .await?;
    match outcome {
        PipelineOutcome::Committed(()) => Ok(Outcome::Handled),
        PipelineOutcome::Unchanged(()) => Ok(Outcome::Ignored),
        PipelineOutcome::Duplicate => Ok(Outcome::Duplicate),
        PipelineOutcome::Contended { attempts } => Err(contended("streams", attempts)),
    }
}

/// Catches a view of one stream up with the store: reads the events after
/// the view's version, folds them onto the stored state, and writes the new
/// state with compare-and-swap, together with `extra(&state)` (index items)
/// in the same transaction, through the store's command pipeline (a lost
/// race looks again). Returns `Duplicate` when there was nothing new.
pub async fn project<A: Aggregate>(
    events: &dyn EventStore,
    state: &dyn StateStore,
    stream: &StreamId,
    key: (&str, &str),
    extra: impl Fn(&A, &[EventEnvelope]) -> Vec<StateWrite>,
) -> Result<Outcome, HandlerError> {
    let (pk, sk) = key;
    let command = Command {
        events,
        state,
        // A projection appends no events: this metadata is never used.
        meta: &|| EventMeta {
            event_id: new_event_id(),
            occurred_at: now_rfc3339(),
            correlation_id: String::new(),
            causation_id: None,
            actor: "system:projection".into(),
        },
        idempotency: None,
        snapshot_every: 0,
        seed: pk,
    };
    let outcome = pipeline::execute(&command, || async {
        let current = state.get(pk, sk).await?;
        let (view, version, condition) = match &current {
            Some(item) => match serde_json::from_value::<A>(item.value.clone()) {
                Ok(v) => (v, item.version, Condition::VersionIs(item.version)),
                // A view written by an older build: rebuild it from the start.
                Err(_) => (A::default(), 0, Condition::VersionIs(item.version)),
            },
            None => (A::default(), 0, Condition::NotExists),
        };
        let tail = events.load(stream, version).await?;
        let Some(new_version) = tail.last().map(|e| e.version) else {
            return Ok(Plan {
                changes: vec![],
                state: vec![],
                answer: (),
            });
        };
        let mut next = view;
        for e in &tail {
            // `load` verified the checksums already.
            next = next.evolve(
                &e.decode_unchecked()
                    .map_err(|e| HandlerError::Permanent(e.to_string()))?,
            );
        }
        let value =
            serde_json::to_value(&next).map_err(|e| HandlerError::Permanent(e.to_string()))?;
        let mut writes = vec![StateWrite {
            item: StateItem {
                pk: pk.to_owned(),
                sk: sk.to_owned(),
                version: new_version,
                value,
                expires_at: None,
            },
            condition,
        }];
        writes.extend(extra(&next, &tail));
        Ok::<_, HandlerError>(Plan {
            changes: vec![],
            state: writes,
            answer: (),
        })
    })
    .await?;
    match outcome {
        PipelineOutcome::Committed(()) => Ok(Outcome::Handled),
        PipelineOutcome::Unchanged(()) | PipelineOutcome::Duplicate => Ok(Outcome::Duplicate),
        PipelineOutcome::Contended { attempts } => Err(contended(&format!("view {pk}"), attempts)),
    }
}

/// Loads an aggregate for a decision (snapshot + tail).
///
/// Handlers append to streams the API rarely writes (every reservation lands
/// on a product's stream), so the API's snapshot-after-append policy alone
/// would leave those streams to grow unsnapshotted and every load to fold
/// more of them. So a load that folded [`Stores::snapshot_every`] events or
/// more (the function's `SNAPSHOT_EVERY`, as the API uses it; 0 = never)
/// writes a snapshot at the version it read (a cache: never over a newer one,
/// and a failure to write it is only logged).
pub async fn load<A: Aggregate>(
    stores: &Stores,
    stream: &StreamId,
) -> Result<storefront_store::aggregate::Loaded<A>, HandlerError> {
    let loaded =
        storefront_store::aggregate::load::<A>(&*stores.events, &*stores.state, stream).await?;
    let every = stores.snapshot_every;
    if every > 0
        && loaded.events_read as u64 >= every
        && let Err(e) = storefront_store::aggregate::save_snapshot(
            &*stores.state,
            stream,
            &loaded.state,
            loaded.version,
        )
        .await
    {
        tracing::warn!(stream = %stream, error = %e, "snapshot not written");
    }
    Ok(loaded)
}

/// The typed event of an envelope; one that does not decode is a permanent failure.
pub fn decode(envelope: &EventEnvelope) -> Result<Event, HandlerError> {
    envelope
        .decode()
        .map_err(|e| HandlerError::Permanent(e.to_string()))
}

/// The stream of an event the handler consumes, or `None` when `types` does
/// not include its type (the handler ignores it).
pub fn consumed_stream(
    types: &[EventType],
    envelope: &EventEnvelope,
) -> Result<Option<StreamId>, HandlerError> {
    if !types.iter().any(|t| t.name() == envelope.event_type) {
        return Ok(None);
    }
    StreamId::parse(&envelope.stream_id)
        .map(Some)
        .map_err(|e| HandlerError::Permanent(e.to_string()))
}

/// Parses a stream id taken from an event, as a permanent failure if malformed.
pub fn stream_of(kind: &str, id: &str) -> Result<StreamId, HandlerError> {
    StreamId::new(kind, id).map_err(|e| HandlerError::Permanent(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use storefront_domain::Sku;
    use storefront_domain::events::{ProductCreated, ProductStockAdjusted};
    use storefront_domain::product::ProductState;
    use storefront_domain::{Currency, seal_batch};
    use storefront_store::sqlite::SqliteStore;

    fn meta() -> EventMeta {
        EventMeta {
            event_id: new_event_id(),
            occurred_at: now_rfc3339(),
            correlation_id: "test".into(),
            causation_id: None,
            actor: "system:test".into(),
        }
    }

    /// A load that folds a long tail leaves a snapshot, so the next load
    /// reads only what came after it, to the same state.
    #[tokio::test]
    async fn a_long_tail_is_snapshotted_by_the_load_that_folds_it() {
        let store = SqliteStore::open_in_memory().expect("store");
        let stores = Stores::from(store.clone());
        let stream = StreamId::parse("product#LONG").expect("stream");
        let mut events = vec![Event::ProductCreated(ProductCreated {
            sku: Sku::new("LONG").expect("sku"),
            name: "Mug".into(),
            price_cents: 1250,
            currency: Currency::new("EUR").expect("eur"),
            initial_stock: 1,
        })];
        for n in 0..DEFAULT_SNAPSHOT_EVERY as u32 {
            events.push(Event::ProductStockAdjusted(ProductStockAdjusted {
                delta: 1,
                reason: "count".into(),
                on_hand: n + 2,
            }));
        }
        let total = events.len() as u64;
        // In appends of at most 50 (a batch holds 100 items at most).
        let sealed = seal_batch(&stream, 0, &events, |_| meta());
        for (i, chunk) in sealed.chunks(50).enumerate() {
            store
                .append(&stream, (i * 50) as u64, chunk.to_vec())
                .await
                .expect("append");
        }

        let first = load::<ProductState>(&stores, &stream).await.expect("load");
        assert_eq!((first.events_read as u64, first.version), (total, total));
        let second = load::<ProductState>(&stores, &stream).await.expect("load");
        assert_eq!(second.events_read, 0, "the snapshot covers the stream");
        assert_eq!(second.state, first.state);
        assert_eq!(second.version, total);

        // A short tail writes nothing new: the snapshot stays where it was.
        let more = vec![Event::ProductStockAdjusted(ProductStockAdjusted {
            delta: 1,
            reason: "count".into(),
            on_hand: total as u32 + 1,
        })];
        store
            .append(
                &stream,
                total,
                seal_batch(&stream, total, &more, |_| meta()),
            )
            .await
            .expect("append");
        let third = load::<ProductState>(&stores, &stream).await.expect("load");
        assert_eq!((third.events_read, third.version), (1, total + 1));
        let snapshot = stores
            .state
            .get(&storefront_store::keys::snapshot(&stream).0, "snapshot")
            .await
            .expect("get")
            .expect("snapshot");
        assert_eq!(snapshot.version, total);
    }

    /// Appends `ProductCreated` and `n` stock adjustments to `product#{sku}`.
    async fn seed(store: &SqliteStore, sku: &str, n: u32) -> StreamId {
        let stream = StreamId::new("product", sku).expect("stream");
        let mut events = vec![Event::ProductCreated(ProductCreated {
            sku: Sku::new(sku).expect("sku"),
            name: "Mug".into(),
            price_cents: 1250,
            currency: Currency::new("EUR").expect("eur"),
            initial_stock: 1,
        })];
        for k in 0..n {
            events.push(Event::ProductStockAdjusted(ProductStockAdjusted {
                delta: 1,
                reason: "count".into(),
                on_hand: k + 2,
            }));
        }
        store
            .append(&stream, 0, seal_batch(&stream, 0, &events, |_| meta()))
            .await
            .expect("append");
        stream
    }

    /// The stores' `snapshot_every` (the function's SNAPSHOT_EVERY) sets
    /// when a load snapshots: at that many events folded, and never at 0.
    #[tokio::test]
    async fn loads_honour_snapshot_every() {
        let store = SqliteStore::open_in_memory().expect("store");
        assert_eq!(
            Stores::from(store.clone()).snapshot_every,
            DEFAULT_SNAPSHOT_EVERY
        );

        let every_five = Stores::from(store.clone()).with_snapshot_every(5);
        let short = seed(&store, "SHORT", 3).await;
        load::<ProductState>(&every_five, &short)
            .await
            .expect("load");
        assert_eq!(
            load::<ProductState>(&every_five, &short)
                .await
                .expect("load")
                .events_read,
            4,
            "four events folded are under five: no snapshot"
        );
        let five = seed(&store, "FIVE", 4).await;
        load::<ProductState>(&every_five, &five)
            .await
            .expect("load");
        assert_eq!(
            load::<ProductState>(&every_five, &five)
                .await
                .expect("load")
                .events_read,
            0,
            "five events folded: snapshotted"
        );

        let never = Stores::from(store.clone()).with_snapshot_every(0);
        let long = seed(&store, "NEVER", 20).await;
        load::<ProductState>(&never, &long).await.expect("load");
        assert_eq!(
            load::<ProductState>(&never, &long)
                .await
                .expect("load")
                .events_read,
            21,
            "0 never snapshots"
        );
    }
}
