//! The store conformance suite: one set of checks, run against every adapter
//! (`tests/sqlite.rs`, `tests/dynamodb.rs`). An adapter passes when it
//! behaves exactly like the others, races and failures included.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use storefront_domain::events::{ProductCreated, ProductStockAdjusted, ProductUpdated};
use storefront_domain::product::ProductState;
use storefront_domain::{Currency, Event, EventEnvelope, EventMeta, Sku, StreamId, seal_batch};
use storefront_store::aggregate::{load, load_full, save_snapshot};
use storefront_store::clock::{new_event_id, now_epoch_seconds, now_rfc3339};
use storefront_store::{
    AppendBatch, Condition, EventStore, StateItem, StateStore, StateWrite, StoreError, StreamAppend,
};

/// What a backend must offer the suite besides the ports.
#[async_trait]
pub trait Harness: Send + Sync {
    /// The store under test.
    type Store: EventStore + StateStore + Clone + 'static;
    /// A fresh, empty store (its own tables or file).
    async fn store(&self) -> Self::Store;
    /// Alters the `data` of one stored event behind the store's back.
    async fn tamper(&self, store: &Self::Store, stream: &str, version: u64);
}

pub fn stream(id: &str) -> StreamId {
    StreamId::parse(&format!("product#{id}")).expect("stream id")
}

fn meta() -> EventMeta {
    EventMeta {
        event_id: new_event_id(),
        occurred_at: now_rfc3339(),
        correlation_id: "conformance".into(),
        causation_id: None,
        actor: "system:conformance".into(),
    }
}

pub fn created(sku: &str, stock: u32) -> Event {
    Event::ProductCreated(ProductCreated {
        sku: Sku::new(sku).expect("sku"),
        name: "Mug".into(),
        price_cents: 1250,
        currency: Currency::new("EUR").expect("eur"),
        initial_stock: stock,
    })
}

pub fn adjusted(delta: i64, on_hand: u32) -> Event {
    Event::ProductStockAdjusted(ProductStockAdjusted {
        delta,
        reason: "count".into(),
        on_hand,
    })
}

pub fn renamed(name: String) -> Event {
    Event::ProductUpdated(ProductUpdated { name })
}

/// Seals events for `stream` right after `expected`.
pub fn seal(stream: &StreamId, expected: u64, events: &[Event]) -> Vec<EventEnvelope> {
    seal_batch(stream, expected, events, |_| meta())
}

fn versions(events: &[EventEnvelope]) -> Vec<u64> {
    events.iter().map(|e| e.version).collect()
}

/// Appending and loading: order kept, versions from 1, tail loads after a version.
pub async fn append_and_load<H: Harness>(h: &H) {
    let store = h.store().await;
    let s = stream("A1");
    assert_eq!(store.current_version(&s).await.expect("version"), 0);
    let events = seal(&s, 0, &[created("A1", 5), adjusted(1, 6), adjusted(-2, 4)]);
    store.append(&s, 0, events.clone()).await.expect("append");
    let loaded = store.load(&s, 0).await.expect("load");
    assert_eq!(loaded, events, "what was written is what is read");
    assert_eq!(
        versions(&store.load(&s, 1).await.expect("tail")),
        vec![2, 3]
    );
    assert_eq!(store.current_version(&s).await.expect("version"), 3);
    assert!(
        store
            .load(&stream("NONE"), 0)
            .await
            .expect("empty")
            .is_empty()
    );
    // A single event (DynamoDB: one conditional PutItem) appends the same way.
    store
        .append(&s, 3, seal(&s, 3, &[adjusted(1, 5)]))
        .await
        .expect("single append");
    assert_eq!(store.current_version(&s).await.expect("version"), 4);
}

/// A writer at a stale version gets a typed conflict and writes nothing.
pub async fn stale_writer_conflicts<H: Harness>(h: &H) {
    let store = h.store().await;
    let s = stream("A2");
    store
        .append(&s, 0, seal(&s, 0, &[created("A2", 5)]))
        .await
        .expect("first");
    let err = store
        .append(&s, 0, seal(&s, 0, &[created("A2", 9)]))
        .await
        .expect_err("stale single append must fail");
    assert!(
        matches!(&err, StoreError::Conflict { stream, expected: 0, actual: 1 } if stream == "product#A2"),
        "{err:?}"
    );
    let err = store
        .append(&s, 0, seal(&s, 0, &[created("A2", 9), adjusted(1, 10)]))
        .await
        .expect_err("stale multi-event append must fail");
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 0,
                actual: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let loaded = store.load(&s, 0).await.expect("load");
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].decode().expect("decode"), created("A2", 5));
}

/// 32 writers race for version 1 at the same instant: exactly one wins, 31 get a typed conflict.
pub async fn race_for_one_version<H: Harness>(h: &H) {
    let store = h.store().await;
    let s = stream("RACE1");
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let mut tasks = Vec::new();
    for i in 0..32u32 {
        let (store, s, barrier) = (store.clone(), s.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let events = seal(&s, 0, &[created("RACE1", i)]);
            barrier.wait().await;
            store.append(&s, 0, events).await
        }));
    }
    let mut wins = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(()) => wins += 1,
            Err(StoreError::Conflict {
                expected: 0,
                actual: 1,
                ..
            }) => conflicts += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!((wins, conflicts), (1, 31));
    assert_eq!(store.load(&s, 0).await.expect("load").len(), 1);
}

/// 32 concurrent writers each append 3 events to one stream, reloading on
/// conflict: versions end up 1..=96 without gaps, one event per version,
/// every writer's events present, and every refusal a typed conflict.
pub async fn race_of_writers_keeps_versions_contiguous<H: Harness>(h: &H) {
    const WRITERS: u32 = 32;
    const EACH: u32 = 3;
    let store = h.store().await;
    let s = stream("RACE2");
    store
        .append(&s, 0, seal(&s, 0, &[created("RACE2", 0)]))
        .await
        .expect("create");
    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS as usize));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (store, s, barrier) = (store.clone(), s.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut conflicts = 0u32;
            for k in 0..EACH {
                loop {
                    let at = store.current_version(&s).await.expect("version");
                    let event = renamed(format!("writer {w} event {k}"));
                    match store.append(&s, at, seal(&s, at, &[event])).await {
                        Ok(()) => break,
                        Err(StoreError::Conflict {
                            expected, actual, ..
                        }) => {
                            assert_eq!(expected, at);
                            assert!(actual > at, "a conflict means someone got ahead");
                            conflicts += 1;
                        }
                        Err(e) => panic!("unexpected error: {e:?}"),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.expect("task");
    }
    let loaded = store.load(&s, 0).await.expect("load");
    let expected: Vec<u64> = (1..=(1 + WRITERS * EACH) as u64).collect();
    assert_eq!(
        versions(&loaded),
        expected,
        "contiguous, one event per version"
    );
    let names: BTreeSet<String> = loaded[1..]
        .iter()
        .map(|e| e.data["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(
        names.len(),
        (WRITERS * EACH) as usize,
        "every write landed exactly once"
    );
    let ids: BTreeSet<&str> = loaded.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), loaded.len());
    eprintln!(
        "{} writers, {} appends, {conflicts} conflicts",
        WRITERS,
        WRITERS * EACH
    );
}

fn idempotency(key: &str) -> StateWrite {
    StateWrite {
        item: StateItem {
            pk: format!("idem#{key}"),
            sk: "handled".into(),
            version: 1,
            value: serde_json::json!({"done": true}),
            expires_at: None,
        },
        condition: Condition::NotExists,
    }
}

/// A multi-stream append is all or nothing: one stale stream, or one failed
/// state condition, and no stream nor state item changes.
pub async fn multi_stream_append_is_atomic<H: Harness>(h: &H) {
    let store = h.store().await;
    let (a, b, c) = (stream("M-A"), stream("M-B"), stream("M-C"));
    store
        .append(&a, 0, seal(&a, 0, &[created("M-A", 5)]))
        .await
        .expect("a");
    store
        .append(&b, 0, seal(&b, 0, &[created("M-B", 5), adjusted(1, 6)]))
        .await
        .expect("b");

    // b is at 2; claiming 1 is stale.
    let stale = AppendBatch {
        streams: vec![
            StreamAppend {
                stream: a.clone(),
                expected_version: 1,
                events: seal(&a, 1, &[adjusted(-1, 4)]),
            },
            StreamAppend {
                stream: c.clone(),
                expected_version: 0,
                events: seal(&c, 0, &[created("M-C", 1)]),
            },
            StreamAppend {
                stream: b.clone(),
                expected_version: 1,
                events: seal(&b, 1, &[adjusted(-1, 5)]),
            },
        ],
        state: vec![idempotency("m1")],
    };
    let err = store
        .append_batch(stale)
        .await
        .expect_err("stale stream must fail the batch");
    assert!(
        matches!(&err, StoreError::Conflict { stream, expected: 1, actual: 2 } if stream == "product#M-B"),
        "{err:?}"
    );
    assert_eq!(
        store.current_version(&a).await.expect("a"),
        1,
        "a untouched"
    );
    assert_eq!(
        store.current_version(&b).await.expect("b"),
        2,
        "b untouched"
    );
    assert_eq!(
        store.current_version(&c).await.expect("c"),
        0,
        "c untouched"
    );
    assert!(
        store
            .get("idem#m1", "handled")
            .await
            .expect("get")
            .is_none(),
        "state untouched"
    );

    // The same batch with the right versions lands whole, state write included.
    let good = AppendBatch {
        streams: vec![
            StreamAppend {
                stream: a.clone(),
                expected_version: 1,
                events: seal(&a, 1, &[adjusted(-1, 4)]),
            },
            StreamAppend {
                stream: b.clone(),
                expected_version: 2,
                events: seal(&b, 2, &[adjusted(-1, 5)]),
            },
        ],
        state: vec![idempotency("m1")],
    };
    store.append_batch(good).await.expect("atomic append");
    assert_eq!(store.current_version(&a).await.expect("a"), 2);
    assert_eq!(store.current_version(&b).await.expect("b"), 3);
    assert!(
        store
            .get("idem#m1", "handled")
            .await
            .expect("get")
            .is_some()
    );

    // Replaying it (same idempotency record) fails on the state condition and writes nothing.
    let replay = AppendBatch {
        streams: vec![StreamAppend {
            stream: c.clone(),
            expected_version: 0,
            events: seal(&c, 0, &[created("M-C", 1)]),
        }],
        state: vec![idempotency("m1")],
    };
    let err = store
        .append_batch(replay)
        .await
        .expect_err("duplicate idempotency record");
    assert!(
        matches!(&err, StoreError::ConditionFailed { pk, .. } if pk == "idem#m1"),
        "{err:?}"
    );
    assert_eq!(
        store.current_version(&c).await.expect("c"),
        0,
        "c untouched"
    );
}

/// A batch of state writes alone is atomic too: one failed condition and none is written.
pub async fn state_only_batches_are_atomic<H: Harness>(h: &H) {
    let store = h.store().await;
    let head = |version: u64| StateWrite {
        item: StateItem {
            pk: "chain".into(),
            sk: "head".into(),
            version,
            value: serde_json::json!({"n": version}),
            expires_at: None,
        },
        condition: if version == 1 {
            Condition::NotExists
        } else {
            Condition::VersionIs(version - 1)
        },
    };
    let record = |n: u64| StateWrite {
        item: StateItem {
            pk: "chain".into(),
            sk: format!("{n:04}"),
            version: 1,
            value: serde_json::json!({}),
            expires_at: None,
        },
        condition: Condition::NotExists,
    };
    store
        .append_batch(AppendBatch {
            streams: vec![],
            state: vec![head(1), record(1)],
        })
        .await
        .expect("first link");
    store
        .append_batch(AppendBatch {
            streams: vec![],
            state: vec![head(2), record(2)],
        })
        .await
        .expect("second link");
    // A stale head (version 1 again) fails the whole batch: record 3 is not written.
    let err = store
        .append_batch(AppendBatch {
            streams: vec![],
            state: vec![head(2), record(3)],
        })
        .await
        .expect_err("stale head");
    assert!(
        matches!(&err, StoreError::ConditionFailed { sk, .. } if sk == "head"),
        "{err:?}"
    );
    assert!(store.get("chain", "0003").await.expect("get").is_none());
    assert_eq!(
        store.query("chain").await.expect("query").len(),
        3,
        "head + two records"
    );
}

/// Malformed batches are refused before anything is written, the 100-item limit included.
pub async fn malformed_batches_are_refused<H: Harness>(h: &H) {
    let store = h.store().await;
    let s = stream("BIG");
    let many: Vec<Event> = (0..101).map(|i| adjusted(1, i + 1)).collect();
    let err = store
        .append(&s, 0, seal(&s, 0, &many))
        .await
        .expect_err("101 items");
    assert!(
        matches!(
            err,
            StoreError::TooManyItems {
                items: 101,
                limit: 100
            }
        ),
        "{err:?}"
    );
    let mut hundred = seal(&s, 0, &many[..99]);
    hundred.truncate(99);
    let batch = AppendBatch {
        streams: vec![StreamAppend {
            stream: s.clone(),
            expected_version: 0,
            events: hundred,
        }],
        state: vec![idempotency("big1"), idempotency("big2")],
    };
    assert!(matches!(
        store.append_batch(batch).await,
        Err(StoreError::TooManyItems { items: 101, .. })
    ));
    let gap = seal(&s, 1, &[adjusted(1, 1)]);
    assert!(matches!(
        store.append(&s, 0, gap).await,
        Err(StoreError::InvalidAppend(_))
    ));
    assert!(matches!(
        store.append(&s, 0, vec![]).await,
        Err(StoreError::InvalidAppend(_))
    ));
    assert_eq!(store.current_version(&s).await.expect("version"), 0);
    // An event over EventBridge's entry limit is refused before anything is written.
    let huge = seal(&s, 0, &[renamed("x".repeat(300 * 1024))]);
    assert!(matches!(
        store.append(&s, 0, huge).await,
        Err(StoreError::EventTooLarge { version: 1, .. })
    ));
    assert_eq!(store.current_version(&s).await.expect("version"), 0);
    let probe = stream("BIG-FITS");
    store
        .append(
            &probe,
            0,
            seal(&probe, 0, &[renamed("y".repeat(200 * 1024))]),
        )
        .await
        .expect("200 KiB fits");
    // Exactly 100 items is allowed.
    store
        .append(&s, 0, seal(&s, 0, &many[..100]))
        .await
        .expect("100 items");
    assert_eq!(store.current_version(&s).await.expect("version"), 100);
}

/// A 10,000-event stream (several MB, more than DynamoDB's 1 MB query page) loads whole and in order.
///
/// The stream is written one event at a time (the single-PutItem path):
/// moto 5.2.5 deep-copies a whole table for every item of a
/// TransactWriteItems call, which makes 100-event transactions into a
/// growing table quadratic in time and memory (gigabytes at 10,000 events).
pub async fn long_stream_loads_whole<H: Harness>(h: &H) {
    let store = h.store().await;
    let s = stream("LONG");
    let padding = "x".repeat(300);
    for at in 0..10_000u64 {
        let event = renamed(format!("{at} {padding}"));
        store
            .append(&s, at, seal(&s, at, &[event]))
            .await
            .expect("append");
    }
    let loaded = store.load(&s, 0).await.expect("load");
    assert_eq!(loaded.len(), 10_000);
    assert_eq!(versions(&loaded), (1..=10_000).collect::<Vec<u64>>());
    let bytes: usize = loaded.iter().map(|e| e.data.to_string().len()).sum();
    assert!(
        bytes > 2 * 1024 * 1024,
        "the stream spans several query pages ({bytes} bytes of data)"
    );
    assert_eq!(store.load(&s, 9_990).await.expect("tail").len(), 10);
}

/// An event altered behind the store's back fails its checksum on read with a typed integrity error.
pub async fn tampering_is_detected_on_read<H: Harness>(h: &H) {
    let store = h.store().await;
    let s = stream("TAMPER");
    store
        .append(
            &s,
            0,
            seal(
                &s,
                0,
                &[created("TAMPER", 5), adjusted(1, 6), adjusted(1, 7)],
            ),
        )
        .await
        .expect("append");
    h.tamper(&store, "product#TAMPER", 2).await;
    let err = store
        .load(&s, 0)
        .await
        .expect_err("tampered stream must not load");
    assert!(
        matches!(
            &err,
            StoreError::Integrity(storefront_domain::EnvelopeError::ChecksumMismatch {
                version: 2,
                ..
            })
        ),
        "{err:?}"
    );
    // A read that includes the altered event fails, wherever it starts...
    assert!(store.load(&s, 1).await.is_err(), "from version 2 on");
    // ... and one that does not still reads what is there.
    let after = store.load(&s, 2).await.expect("after the altered event");
    assert_eq!(versions(&after), [3]);
}

/// Loading from a snapshot plus the tail gives the same state as folding the whole stream, reading fewer events.
pub async fn snapshot_plus_tail_equals_full_fold<H: Harness>(h: &H) {
    let store = h.store().await;
    let s = stream("SNAP");
    let mut history = vec![created("SNAP", 10)];
    let mut on_hand = 10u32;
    for i in 0..40 {
        let delta = if i % 3 == 0 { -1 } else { 2 };
        on_hand = (i64::from(on_hand) + delta) as u32;
        history.push(adjusted(delta, on_hand));
    }
    store
        .append(&s, 0, seal(&s, 0, &history[..25]))
        .await
        .expect("first part");
    let first = load_full::<ProductState>(&store, &s).await.expect("full");
    save_snapshot(&store, &s, &first.state, first.version)
        .await
        .expect("snapshot");
    store
        .append(&s, 25, seal(&s, 25, &history[25..]))
        .await
        .expect("second part");

    let full = load_full::<ProductState>(&store, &s).await.expect("full");
    let snap = load::<ProductState>(&store, &store, &s)
        .await
        .expect("snapshot + tail");
    assert_eq!(snap.state, full.state);
    assert_eq!(snap.version, 41);
    assert_eq!(full.events_read, 41);
    assert_eq!(
        snap.events_read, 16,
        "only the tail after the snapshot is read"
    );
    assert_eq!(snap.state.on_hand, on_hand);

    // An older snapshot never replaces a newer one.
    let old = load_full::<ProductState>(&store, &s).await.expect("full");
    save_snapshot(&store, &s, &old.state, old.version)
        .await
        .expect("newer snapshot");
    save_snapshot(&store, &s, &first.state, first.version)
        .await
        .expect("stale snapshot is a no-op");
    let again = load::<ProductState>(&store, &store, &s)
        .await
        .expect("load");
    assert_eq!(again.events_read, 0);
    assert_eq!(again.state, full.state);

    // A snapshot that no longer decodes is ignored, not trusted.
    store
        .put(StateWrite {
            item: StateItem {
                pk: storefront_store::keys::snapshot(&s).0,
                sk: storefront_store::keys::snapshot(&s).1.into(),
                version: 999,
                value: serde_json::json!({"nonsense": true}),
                expires_at: None,
            },
            condition: Condition::Always,
        })
        .await
        .expect("junk snapshot");
    let fallback = load::<ProductState>(&store, &store, &s)
        .await
        .expect("load");
    assert_eq!(fallback.state, full.state);
    assert_eq!(fallback.events_read, 41);
    // ... and replaced by that load, so it blocks no newer snapshot: the
    // next load starts from the replacement, and one taken after further
    // appends is kept.
    let replaced = load::<ProductState>(&store, &store, &s)
        .await
        .expect("load");
    assert_eq!(replaced.events_read, 0, "the junk snapshot was replaced");
    assert_eq!(replaced.state, full.state);
    store
        .append(&s, 41, seal(&s, 41, &[adjusted(1, on_hand + 1)]))
        .await
        .expect("one more");
    let later = load_full::<ProductState>(&store, &s).await.expect("full");
    save_snapshot(&store, &s, &later.state, later.version)
        .await
        .expect("newer snapshot");
    let from_newer = load::<ProductState>(&store, &store, &s)
        .await
        .expect("load");
    assert_eq!(from_newer.events_read, 0, "the newer snapshot was written");
    assert_eq!(from_newer.version, 42);
}

fn item(pk: &str, sk: &str, version: u64, expires_at: Option<i64>) -> StateItem {
    StateItem {
        pk: pk.into(),
        sk: sk.into(),
        version,
        value: serde_json::json!({"v": version}),
        expires_at,
    }
}

/// State writes honour their conditions: not-exists, newer-version, compare-and-swap.
pub async fn state_conditions<H: Harness>(h: &H) {
    let store = h.store().await;
    let put = |i: StateItem, condition| store.put(StateWrite { item: i, condition });
    put(item("view#1", "cart", 1, None), Condition::NotExists)
        .await
        .expect("create");
    assert!(matches!(
        put(item("view#1", "cart", 2, None), Condition::NotExists).await,
        Err(StoreError::ConditionFailed { .. })
    ));
    put(item("view#1", "cart", 3, None), Condition::NewerVersion)
        .await
        .expect("newer");
    for stale in [3, 2] {
        assert!(
            matches!(
                put(item("view#1", "cart", stale, None), Condition::NewerVersion).await,
                Err(StoreError::ConditionFailed { .. })
            ),
            "version {stale} is not newer than 3"
        );
    }
    assert_eq!(
        store
            .get("view#1", "cart")
            .await
            .expect("get")
            .expect("item")
            .version,
        3
    );
    assert!(matches!(
        put(item("view#1", "cart", 9, None), Condition::VersionIs(2)).await,
        Err(StoreError::ConditionFailed { .. })
    ));
    put(item("view#1", "cart", 9, None), Condition::VersionIs(3))
        .await
        .expect("cas");
    let got = store
        .get("view#1", "cart")
        .await
        .expect("get")
        .expect("item");
    assert_eq!((got.version, got.value["v"].as_u64()), (9, Some(9)));
    put(item("view#new", "x", 1, None), Condition::NewerVersion)
        .await
        .expect("newer on absent");
    assert!(matches!(
        put(item("view#absent", "x", 1, None), Condition::VersionIs(1)).await,
        Err(StoreError::ConditionFailed { .. })
    ));
    put(item("view#1", "cart", 1, None), Condition::Always)
        .await
        .expect("always");
    assert_eq!(
        store
            .get("view#1", "cart")
            .await
            .expect("get")
            .expect("item")
            .version,
        1
    );
}

/// Expired items read as absent, do not block a not-exists write, and are left out of queries; delete removes.
pub async fn state_expiry_query_delete<H: Harness>(h: &H) {
    let store = h.store().await;
    let now = now_epoch_seconds();
    let put = |i: StateItem, condition| store.put(StateWrite { item: i, condition });
    put(item("idem#x", "a", 1, Some(now - 10)), Condition::Always)
        .await
        .expect("expired");
    put(item("idem#x", "b", 1, Some(now + 3600)), Condition::Always)
        .await
        .expect("live");
    put(item("idem#x", "c", 1, None), Condition::Always)
        .await
        .expect("forever");
    assert!(
        store.get("idem#x", "a").await.expect("get").is_none(),
        "expired reads as absent"
    );
    assert!(store.get("idem#x", "b").await.expect("get").is_some());
    let sks: Vec<String> = store
        .query("idem#x")
        .await
        .expect("query")
        .into_iter()
        .map(|i| i.sk)
        .collect();
    assert_eq!(sks, vec!["b", "c"]);
    put(item("idem#x", "a", 2, None), Condition::NotExists)
        .await
        .expect("an expired item does not block");
    assert!(matches!(
        put(item("idem#x", "b", 2, None), Condition::NotExists).await,
        Err(StoreError::ConditionFailed { .. })
    ));
    store.delete("idem#x", "c").await.expect("delete");
    store
        .delete("idem#x", "never-was")
        .await
        .expect("deleting nothing is fine");
    assert!(store.get("idem#x", "c").await.expect("get").is_none());
    assert_eq!(store.query("idem#x").await.expect("query").len(), 2);
}

/// Pages walk a partition once, in sort-key order, from any start, leaving
/// expired items out and other partitions alone; `delete_version` removes
/// only the version it names.
pub async fn state_pages_and_versioned_delete<H: Harness>(h: &H) {
    let store = h.store().await;
    let now = now_epoch_seconds();
    for i in 0..7u64 {
        let expires = (i == 3).then_some(now - 10);
        store
            .put(StateWrite {
                item: item("page#x", &format!("k{i}"), i + 1, expires),
                condition: Condition::Always,
            })
            .await
            .expect("put");
    }
    store
        .put(StateWrite {
            item: item("page#y", "k0", 1, None),
            condition: Condition::Always,
        })
        .await
        .expect("put");
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .query_page("page#x", after.as_deref(), 2)
            .await
            .expect("page");
        assert!(page.items.len() <= 2, "a page holds at most its limit");
        seen.extend(page.items.into_iter().map(|i| i.sk));
        pages += 1;
        assert!(pages <= 5, "paging ends");
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["k0", "k1", "k2", "k4", "k5", "k6"],
        "each live item once, in order"
    );
    let from = store
        .query_page("page#x", Some("k4"), 10)
        .await
        .expect("page");
    let sks: Vec<&str> = from.items.iter().map(|i| i.sk.as_str()).collect();
    assert_eq!(sks, ["k5", "k6"], "a page starts after its start key");
    assert_eq!(from.next, None, "the last page says so");
    let empty = store.query_page("page#none", None, 10).await.expect("page");
    assert_eq!(empty, storefront_store::Page::default());

    assert!(
        !store
            .delete_version("page#x", "k0", 2)
            .await
            .expect("delete"),
        "k0 is at version 1, not 2"
    );
    assert!(store.get("page#x", "k0").await.expect("get").is_some());
    assert!(
        store
            .delete_version("page#x", "k0", 1)
            .await
            .expect("delete")
    );
    assert!(store.get("page#x", "k0").await.expect("get").is_none());
    assert!(
        !store
            .delete_version("page#x", "k0", 1)
            .await
            .expect("delete"),
        "nothing left to delete"
    );
}

/// Generates one `#[tokio::test]` per conformance case for a harness expression.
#[macro_export]
macro_rules! conformance_suite {
    ($harness:expr) => {
        conformance_suite!(@cases $harness;
            append_and_load, stale_writer_conflicts, race_for_one_version,
            race_of_writers_keeps_versions_contiguous, multi_stream_append_is_atomic,
            malformed_batches_are_refused, long_stream_loads_whole, tampering_is_detected_on_read,
            snapshot_plus_tail_equals_full_fold, state_conditions, state_expiry_query_delete,
            state_only_batches_are_atomic, state_pages_and_versioned_delete);
    };
    (@cases $harness:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                conformance::$case(&$harness).await;
            }
        )*
    };
}
