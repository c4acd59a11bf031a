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

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use storefront_domain::{
    Aggregate, Event, EventEnvelope, EventMeta, EventType, StreamId, seal_batch,
};
use storefront_store::clock::{new_event_id, now_epoch_seconds, now_rfc3339};
use storefront_store::{
    AppendBatch, Condition, EventStore, StateItem, StateStore, StateWrite, StoreError, StreamAppend,
};

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
}

/// The two stores every handler works on.
#[derive(Clone)]
pub struct Stores {
    /// The event store.
    pub events: Arc<dyn EventStore>,
    /// Views, idempotency records, outboxes.
    pub state: Arc<dyn StateStore>,
}

impl Stores {
    /// Both ports from one adapter that implements them (SQLite or DynamoDB).
    pub fn from<S: EventStore + StateStore + Clone + 'static>(store: S) -> Self {
        Stores {
            events: Arc::new(store.clone()),
            state: Arc::new(store),
        }
    }
}

/// How long idempotency records of handlers are kept (7 days: well past SQS's 4-day default retention).
pub const IDEMPOTENCY_TTL_SECONDS: i64 = 7 * 24 * 3600;

/// Attempts per event when writers race on the same streams.
pub const MAX_ATTEMPTS: u32 = 8;

/// Waits a little before attempt `n` (from 0) of a contended write: 1, 2,
/// 4 ... 64 ms with jitter, so racing writers spread out instead of
/// colliding again in lockstep.
pub async fn backoff(n: u32) {
    if n == 0 {
        return;
    }
    let base = 1u64 << n.min(6);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    tokio::time::sleep(std::time::Duration::from_micros(
        base * 500 + nanos % (base * 1000),
    ))
    .await;
}

/// The idempotency record key of `handler` for `event_id`.
pub fn idempotency_key(handler: &str, event_id: &str) -> (String, String) {
    (format!("idem#{handler}#{event_id}"), "done".to_owned())
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

/// Decides and appends the effect of `cause` exactly once. `plan` runs on
/// every attempt and must load what it decides on; it returns the decisions
/// (possibly none) and any state writes that belong to the same transaction.
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
    for attempt in 0..MAX_ATTEMPTS {
        backoff(attempt).await;
        let (decisions, writes) = plan().await?;
        let decisions: Vec<Decision> = decisions
            .into_iter()
            .filter(|d| !d.events.is_empty())
            .collect();
        if decisions.is_empty() && writes.is_empty() {
            return Ok(Outcome::Ignored);
        }
        let mut batch = AppendBatch {
            streams: decisions
                .iter()
                .map(|d| StreamAppend {
                    stream: d.stream.clone(),
                    expected_version: d.expected_version,
                    events: seal_batch(&d.stream, d.expected_version, &d.events, |_| {
                        caused_by(handler, cause)
                    }),
                })
                .collect(),
            state: writes,
        };
        batch.state.push(StateWrite {
            item: StateItem {
                pk: pk.clone(),
                sk: sk.clone(),
                version: 1,
                value: serde_json::json!({"eventType": cause.event_type}),
                expires_at: Some(now_epoch_seconds() + IDEMPOTENCY_TTL_SECONDS),
            },
            condition: Condition::NotExists,
        });
        match events.append_batch(batch).await {
            Ok(()) => return Ok(Outcome::Handled),
            Err(StoreError::Conflict { .. }) => continue,
            Err(StoreError::ConditionFailed { pk: failed, .. }) if failed == pk => {
                return Ok(Outcome::Duplicate);
            }
            Err(StoreError::ConditionFailed { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(HandlerError::Transient(format!(
        "streams kept changing over {MAX_ATTEMPTS} attempts; SQS will redeliver"
    )))
}

/// Catches a view of one stream up with the store: reads the events after
/// the view's version, folds them onto the stored state, and writes the new
/// state with compare-and-swap, together with `extra(&state)` (index items)
/// in the same transaction. Returns `Duplicate` when there was nothing new.
pub async fn project<A: Aggregate>(
    events: &dyn EventStore,
    state: &dyn StateStore,
    stream: &StreamId,
    key: (&str, &str),
    extra: impl Fn(&A, &[EventEnvelope]) -> Vec<StateWrite>,
) -> Result<Outcome, HandlerError> {
    let (pk, sk) = key;
    for attempt in 0..MAX_ATTEMPTS {
        backoff(attempt).await;
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
        if tail.is_empty() {
            return Ok(Outcome::Duplicate);
        }
        let mut next = view;
        for e in &tail {
            // `load` verified the checksums already.
            next = next.evolve(
                &e.decode_unchecked()
                    .map_err(|e| HandlerError::Permanent(e.to_string()))?,
            );
        }
        let new_version = tail.last().map_or(version, |e| e.version);
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
        match events
            .append_batch(AppendBatch {
                streams: vec![],
                state: writes,
            })
            .await
        {
            Ok(()) => return Ok(Outcome::Handled),
            // Another delivery moved the view on: look again.
            Err(StoreError::ConditionFailed { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(HandlerError::Transient(format!(
        "view {pk} kept changing; SQS will redeliver"
    )))
}

/// A handler that folded at least this many events past the snapshot writes
/// a new one (the API's `SNAPSHOT_EVERY` default).
pub const SNAPSHOT_AFTER_TAIL: usize = 100;

/// Loads an aggregate for a decision (snapshot + tail).
///
/// Handlers append to streams the API rarely writes (every reservation lands
/// on a product's stream), so the API's snapshot-after-append policy alone
/// would leave those streams to grow unsnapshotted and every load to fold
/// more of them. So a load that folded [`SNAPSHOT_AFTER_TAIL`] events or more
/// writes a snapshot at the version it read (a cache: never over a newer one,
/// and a failure to write it is only logged).
pub async fn load<A: Aggregate>(
    stores: &Stores,
    stream: &StreamId,
) -> Result<storefront_store::aggregate::Loaded<A>, HandlerError> {
    let loaded =
        storefront_store::aggregate::load::<A>(&*stores.events, &*stores.state, stream).await?;
    if loaded.events_read >= SNAPSHOT_AFTER_TAIL
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
        for n in 0..SNAPSHOT_AFTER_TAIL as u32 {
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
            .get(&format!("snapshot#{stream}"), "snapshot")
            .await
            .expect("get")
            .expect("snapshot");
        assert_eq!(snapshot.version, total);
    }
}
