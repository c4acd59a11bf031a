//! Loading aggregates: snapshot (if any) + the stream's tail, folded.
//!
//! Snapshots live in the state store under `snapshot#{streamId}` and are
//! never the source of truth: a snapshot that does not decode (the state type
//! changed) is ignored and the stream is folded from the start, and the load
//! replaces it at once with the state it folded (counted as
//! `SnapshotsReplaced`): were it left there, its version would refuse every
//! newer snapshot below it, and each load would fold the whole stream. They
//! are written after an append, guarded so an older snapshot never replaces
//! a newer one.

use storefront_domain::{Aggregate, StreamId};

use crate::{Condition, EventStore, StateItem, StateStore, StateWrite, StoreError};

/// An aggregate's state and the stream version it reflects.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// The folded state.
    pub state: A,
    /// The stream version: the expected version for the next append.
    pub version: u64,
    /// How many events were read from the stream (the tail after the snapshot).
    pub events_read: usize,
}

/// Loads an aggregate from its snapshot (if any) and the events after it.
pub async fn load<A: Aggregate>(
    events: &dyn EventStore,
    state: &dyn StateStore,
    stream: &StreamId,
) -> Result<Loaded<A>, StoreError> {
    let (pk, sk) = crate::keys::snapshot(stream);
    let mut undecodable = None;
    let (start, version) = match state.get(&pk, sk).await? {
        Some(item) => match serde_json::from_value::<A>(item.value) {
            Ok(s) => (s, item.version),
            Err(e) => {
                undecodable = Some((item.version, e));
                (A::default(), 0)
            }
        },
        None => (A::default(), 0),
    };
    let loaded = load_from(events, stream, start, version).await?;
    if let Some((stale, error)) = undecodable {
        replace_undecodable(state, stream, &loaded, stale, &error).await;
    }
    Ok(loaded)
}

/// Replaces a snapshot that no longer decodes (at version `stale`) with the
/// state just folded from the whole stream, if nobody replaced it meanwhile.
/// A failure is only logged: the snapshot is a cache.
async fn replace_undecodable<A: Aggregate>(
    state: &dyn StateStore,
    stream: &StreamId,
    loaded: &Loaded<A>,
    stale: u64,
    error: &serde_json::Error,
) {
    tracing::warn!(%stream, version = stale, %error, "snapshot does not decode; replacing it");
    metrics::counter!("SnapshotsReplaced").increment(1);
    let value = match serde_json::to_value(&loaded.state) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(%stream, error = %e, "snapshot not written");
            return;
        }
    };
    let (pk, sk) = crate::keys::snapshot(stream);
    let write = StateWrite {
        item: StateItem {
            pk,
            sk: sk.to_owned(),
            // The version the folded state reflects, even should the stale
            // one claim more (a later load folds from here).
            version: loaded.version,
            value,
            expires_at: None,
        },
        condition: Condition::VersionIs(stale),
    };
    match state.put(write).await {
        // Another load replaced it first.
        Ok(()) | Err(StoreError::ConditionFailed { .. }) => {}
        Err(e) => tracing::warn!(%stream, error = %e, "snapshot not replaced"),
    }
}

/// Loads an aggregate by folding its whole stream, ignoring snapshots.
pub async fn load_full<A: Aggregate>(
    events: &dyn EventStore,
    stream: &StreamId,
) -> Result<Loaded<A>, StoreError> {
    load_from(events, stream, A::default(), 0).await
}

async fn load_from<A: Aggregate>(
    events: &dyn EventStore,
    stream: &StreamId,
    mut state: A,
    mut version: u64,
) -> Result<Loaded<A>, StoreError> {
    let tail = events.load(stream, version).await?;
    let events_read = tail.len();
    for envelope in &tail {
        // `load` verified every checksum (its contract, and the conformance
        // suite's tampering test holds both adapters to it).
        let event = envelope.decode_unchecked()?;
        state = state.evolve(&event);
        version = envelope.version;
    }
    Ok(Loaded {
        state,
        version,
        events_read,
    })
}

/// Writes a snapshot of `state` at `version`, unless a newer one is there.
pub async fn save_snapshot<A: Aggregate>(
    state_store: &dyn StateStore,
    stream: &StreamId,
    state: &A,
    version: u64,
) -> Result<(), StoreError> {
    let value = serde_json::to_value(state)
        .map_err(|e| StoreError::InvalidAppend(format!("snapshot of {stream}: {e}")))?;
    save_snapshot_value(state_store, stream, value, version).await
}

/// Writes an already serialized snapshot at `version`, unless a newer one is there.
pub async fn save_snapshot_value(
    state_store: &dyn StateStore,
    stream: &StreamId,
    value: serde_json::Value,
    version: u64,
) -> Result<(), StoreError> {
    let (pk, sk) = crate::keys::snapshot(stream);
    match state_store
        .put(StateWrite {
            item: StateItem {
                pk,
                sk: sk.to_owned(),
                version,
                value,
                expires_at: None,
            },
            condition: Condition::NewerVersion,
        })
        .await
    {
        // A newer snapshot is already there: nothing to do.
        Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether an append from `before` to `after` crossed a multiple of `every`:
/// the policy "snapshot every N events".
pub fn snapshot_due(before: u64, after: u64, every: u64) -> bool {
    every > 0 && before / every != after / every
}

#[cfg(test)]
mod tests {
    /// A snapshot falls due each time the version crosses a multiple of N.
    #[test]
    fn snapshot_policy() {
        assert!(super::snapshot_due(99, 100, 100));
        assert!(super::snapshot_due(98, 102, 100));
        assert!(!super::snapshot_due(100, 199, 100));
        assert!(!super::snapshot_due(1, 5, 0));
    }
}
