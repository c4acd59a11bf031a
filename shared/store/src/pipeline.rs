//! The command pipeline every writer shares: the API's commands and every
//! handler that appends events.
//!
//! An attempt loads what it decides on and returns a [`Plan`]: the events
//! decided per stream at the version each was loaded at, state written in
//! the same atomic append (index items), and the answer to give. The
//! pipeline seals the events, adds the idempotency record (if the writer has
//! one) to the same append, and appends. A lost race (another writer took a
//! version, or changed a state item the plan conditioned on) reloads and
//! decides again after a jittered pause, at most [`RETRY`]`.max_attempts`
//! times; the idempotency record already being there means the work was
//! done before (a redelivery, or a concurrent retry with the same key). After
//! the append, a snapshot is written for each stream whose append crossed a
//! multiple of `snapshot_every` (a cache: a failure is only logged).

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use storefront_domain::{Event, EventMeta, StreamId, seal_batch};

use crate::aggregate::{save_snapshot_value, snapshot_due};
use crate::{AppendBatch, EventStore, StateStore, StateWrite, StoreError, StreamAppend};

/// How a lost race is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The ceiling of the first retry's pause; each later ceiling doubles.
    pub base: Duration,
    /// The largest ceiling.
    pub cap: Duration,
}

/// The one retry policy of every command, in the API and in handlers: 8
/// attempts; before retry `n` a pause drawn uniformly from
/// `[0, min(100 ms, 1 ms · 2^n))` ("full jitter"), so racing writers spread
/// out instead of colliding again in lockstep. Eight attempts let a handful
/// of writers on one hot stream all get through; past that, the API answers
/// 409 and a handler's message is redelivered by SQS.
pub const RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 8,
    base: Duration::from_millis(1),
    cap: Duration::from_millis(100),
};

impl RetryPolicy {
    /// The pause before attempt `attempt` (0-based; none before the first).
    pub fn pause(&self, attempt: u32, rng: &mut SmallRng) -> Duration {
        if attempt == 0 {
            return Duration::ZERO;
        }
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.cap);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.gen_range(0..nanos.max(1)))
    }
}

/// The jitter's random numbers, seeded from what the command is about (a
/// request's correlation id, an event's id), so one command's pauses are the
/// same on every run and two commands' are unrelated.
pub fn jitter(seed: &str) -> SmallRng {
    let mut hasher = DefaultHasher::new();
    seed.hash(&mut hasher);
    SmallRng::seed_from_u64(hasher.finish())
}

/// A stream's part in a plan.
#[derive(Debug, Clone)]
pub struct Change {
    /// The stream.
    pub stream: StreamId,
    /// The version it was loaded at.
    pub expected_version: u64,
    /// What was decided.
    pub events: Vec<Event>,
    /// The aggregate's state after the events, for a snapshot when one falls due.
    pub snapshot: Option<serde_json::Value>,
}

/// What one attempt decided.
#[derive(Debug, Clone)]
pub struct Plan<T> {
    /// Per-stream changes.
    pub changes: Vec<Change>,
    /// State written in the same atomic append (e.g. index items).
    pub state: Vec<StateWrite>,
    /// The answer once stored.
    pub answer: T,
}

/// How the pipeline came out.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// The plan was appended.
    Committed(T),
    /// The plan changed nothing: no events, no state.
    Unchanged(T),
    /// The idempotency record was there: the work was done before.
    Duplicate,
    /// Every attempt lost a race.
    Contended {
        /// How many were made.
        attempts: u32,
    },
}

/// One writer's command: where it writes, how its events are stamped, and
/// how it is made idempotent.
pub struct Command<'a, T> {
    /// The event store.
    pub events: &'a dyn EventStore,
    /// The state store (snapshots).
    pub state: &'a dyn StateStore,
    /// The metadata of each new event.
    pub meta: &'a (dyn Fn() -> EventMeta + Sync),
    /// The idempotency record to append with the plan, built from its answer;
    /// it must be conditioned on not existing.
    pub idempotency: Option<&'a (dyn Fn(&T) -> StateWrite + Sync)>,
    /// Snapshot a stream whose append crosses a multiple of this (0 = never).
    pub snapshot_every: u64,
    /// What the jitter is seeded from.
    pub seed: &'a str,
}

/// Runs attempts until one appends, needs no append, finds its work done, or
/// every attempt of [`RETRY`] lost a race.
pub async fn execute<T, E, F, Fut>(
    command: &Command<'_, T>,
    mut attempt: F,
) -> Result<Outcome<T>, E>
where
    E: From<StoreError>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Plan<T>, E>>,
{
    let mut rng = jitter(command.seed);
    for n in 0..RETRY.max_attempts {
        let pause = RETRY.pause(n, &mut rng);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        let plan = attempt().await?;
        let changes: Vec<&Change> = plan
            .changes
            .iter()
            .filter(|c| !c.events.is_empty())
            .collect();
        if changes.is_empty() && plan.state.is_empty() {
            return Ok(Outcome::Unchanged(plan.answer));
        }
        let mut batch = AppendBatch {
            streams: changes
                .iter()
                .map(|c| StreamAppend {
                    stream: c.stream.clone(),
                    expected_version: c.expected_version,
                    events: seal_batch(&c.stream, c.expected_version, &c.events, |_| {
                        (command.meta)()
                    }),
                })
                .collect(),
            state: plan.state.clone(),
        };
        let record = command.idempotency.map(|record| record(&plan.answer));
        let record_pk = record.as_ref().map(|r| r.item.pk.clone());
        batch.state.extend(record);
        match command.events.append_batch(batch).await {
            Ok(()) => {
                write_snapshots(command, &changes).await;
                return Ok(Outcome::Committed(plan.answer));
            }
            Err(StoreError::ConditionFailed { pk, .. }) if Some(&pk) == record_pk.as_ref() => {
                return Ok(Outcome::Duplicate);
            }
            Err(StoreError::Conflict {
                stream,
                expected,
                actual,
            }) => {
                tracing::debug!(
                    stream,
                    expected,
                    actual,
                    attempt = n + 1,
                    "version conflict; deciding again"
                );
            }
            Err(StoreError::ConditionFailed { pk, .. }) => {
                tracing::debug!(pk, attempt = n + 1, "a state item changed; deciding again");
            }
            Err(StoreError::Contention { operation }) => {
                tracing::debug!(
                    operation,
                    attempt = n + 1,
                    "met another transaction; deciding again"
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Outcome::Contended {
        attempts: RETRY.max_attempts,
    })
}

async fn write_snapshots<T>(command: &Command<'_, T>, changes: &[&Change]) {
    for change in changes {
        let after = change.expected_version + change.events.len() as u64;
        if let Some(state) = &change.snapshot
            && snapshot_due(change.expected_version, after, command.snapshot_every)
            && let Err(e) =
                save_snapshot_value(command.state, &change.stream, state.clone(), after).await
        {
            tracing::warn!(stream = %change.stream, error = %e, "snapshot not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No pause before the first attempt; each pause lies under its
    /// doubling ceiling, which stops at the cap; one seed gives one sequence.
    #[test]
    fn pauses_are_jittered_under_a_doubling_capped_ceiling() {
        let mut rng = jitter("req-1");
        assert_eq!(RETRY.pause(0, &mut rng), Duration::ZERO);
        for n in 1..20 {
            let ceiling = (RETRY.base * (1 << n.min(16))).min(RETRY.cap);
            let pause = RETRY.pause(n, &mut rng);
            assert!(pause < ceiling, "attempt {n}: {pause:?} ≥ {ceiling:?}");
        }
        let run = |seed| {
            let mut rng = jitter(seed);
            (1..8).map(|n| RETRY.pause(n, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run("evt-7"), run("evt-7"));
        assert_ne!(run("evt-7"), run("evt-8"));
    }

    use crate::sqlite::SqliteStore;
    use crate::{Condition, StateItem};
    use std::sync::atomic::{AtomicU32, Ordering};
    use storefront_domain::events::ProductStockAdjusted;

    fn meta() -> EventMeta {
        EventMeta {
            event_id: crate::clock::new_event_id(),
            occurred_at: crate::clock::now_rfc3339(),
            correlation_id: "test".into(),
            causation_id: None,
            actor: "system:test".into(),
        }
    }

    fn adjusted(on_hand: u32) -> Event {
        Event::ProductStockAdjusted(ProductStockAdjusted {
            delta: 1,
            reason: "count".into(),
            on_hand,
        })
    }

    fn stream() -> StreamId {
        StreamId::parse("product#RACE").expect("stream")
    }

    /// Another writer takes the stream's next version.
    async fn append_elsewhere(store: &SqliteStore) -> Result<(), StoreError> {
        let version = store.current_version(&stream()).await?;
        let events = seal_batch(&stream(), version, &[adjusted(1)], |_| meta());
        store.append(&stream(), version, events).await
    }

    /// A plan of one event on the stream at `version`.
    fn one_event<T>(version: u64, answer: T) -> Plan<T> {
        Plan {
            changes: vec![Change {
                stream: stream(),
                expected_version: version,
                events: vec![adjusted(2)],
                snapshot: None,
            }],
            state: vec![],
            answer,
        }
    }

    /// A plan decided on a version another writer has since taken is
    /// decided again on a fresh load, and then appended once.
    #[tokio::test]
    async fn a_lost_race_is_decided_again() {
        let store = SqliteStore::open_in_memory().expect("store");
        let attempts = AtomicU32::new(0);
        let command = Command::<u64> {
            events: &store,
            state: &store,
            meta: &meta,
            idempotency: None,
            snapshot_every: 0,
            seed: "race",
        };
        let outcome: Result<Outcome<u64>, StoreError> = execute(&command, || async {
            let n = attempts.fetch_add(1, Ordering::SeqCst);
            let version = store.current_version(&stream()).await?;
            if n == 0 {
                // Another writer appends after this attempt's load.
                append_elsewhere(&store).await?;
            }
            Ok(one_event(version, version))
        })
        .await;
        assert_eq!(
            outcome.expect("outcome"),
            Outcome::Committed(1),
            "decided again on version 1"
        );
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        assert_eq!(store.current_version(&stream()).await.expect("version"), 2);
    }

    /// A writer that loses every race gives up after the policy's attempts.
    #[tokio::test]
    async fn every_race_lost_is_contended() {
        let store = SqliteStore::open_in_memory().expect("store");
        let attempts = AtomicU32::new(0);
        let command = Command::<()> {
            events: &store,
            state: &store,
            meta: &meta,
            idempotency: None,
            snapshot_every: 0,
            seed: "always-late",
        };
        let outcome: Result<Outcome<()>, StoreError> = execute(&command, || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            let version = store.current_version(&stream()).await?;
            append_elsewhere(&store).await?;
            Ok(one_event(version, ()))
        })
        .await;
        assert_eq!(
            outcome.expect("outcome"),
            Outcome::Contended {
                attempts: RETRY.max_attempts
            }
        );
        assert_eq!(attempts.load(Ordering::SeqCst), RETRY.max_attempts);
    }

    /// With its idempotency record already stored, a command is a duplicate
    /// and appends nothing; without one it appends the record with its
    /// events; a plan with nothing to do is unchanged.
    #[tokio::test]
    async fn the_idempotency_record_rides_with_the_append() {
        let store = SqliteStore::open_in_memory().expect("store");
        let record = |answer: &u32| StateWrite {
            item: StateItem {
                pk: "idem#test".into(),
                sk: "done".into(),
                version: 1,
                value: serde_json::json!({ "answer": answer }),
                expires_at: None,
            },
            condition: Condition::NotExists,
        };
        let command = Command::<u32> {
            events: &store,
            state: &store,
            meta: &meta,
            idempotency: Some(&record),
            snapshot_every: 1,
            seed: "idem",
        };
        let plan = |events: Vec<Event>| async move {
            Ok::<_, StoreError>(Plan {
                changes: vec![Change {
                    stream: stream(),
                    expected_version: 0,
                    events,
                    snapshot: Some(serde_json::json!({"snap": true})),
                }],
                state: vec![],
                answer: 7,
            })
        };
        let first = execute(&command, || plan(vec![adjusted(1)]))
            .await
            .expect("first");
        assert_eq!(first, Outcome::Committed(7));
        let stored = store
            .get("idem#test", "done")
            .await
            .expect("get")
            .expect("record");
        assert_eq!(stored.value, serde_json::json!({"answer": 7}));
        let snapshot = store
            .get(&crate::keys::snapshot(&stream()).0, "snapshot")
            .await
            .expect("get");
        assert!(
            snapshot.is_some(),
            "an append crossing a multiple of snapshot_every snapshots"
        );

        // The same work again (its expected version is stale, as a redelivery's would not be,
        // but the record's condition fails first or the conflict retries into it).
        let again = execute(&command, || async {
            let version = store.current_version(&stream()).await?;
            Ok::<_, StoreError>(one_event(version, 8))
        })
        .await
        .expect("again");
        assert_eq!(again, Outcome::Duplicate);
        assert_eq!(
            store.current_version(&stream()).await.expect("version"),
            1,
            "nothing appended twice"
        );

        let nothing = execute(&command, || plan(vec![])).await.expect("nothing");
        assert_eq!(nothing, Outcome::Unchanged(7));
    }
}
