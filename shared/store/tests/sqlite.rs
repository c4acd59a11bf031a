//! The conformance suite against the SQLite adapter, plus what only SQLite
//! offers: the global event log the local runtime tails.

mod conformance;

use async_trait::async_trait;
use conformance::{Harness, adjusted, created, seal, stream};
use storefront_store::sqlite::SqliteStore;
use storefront_store::{EventLog, EventStore, StoreError};

/// Each store is a fresh file in its own temporary folder (kept alive by leaking the guard for the test's lifetime).
struct Sqlite;

#[async_trait]
impl Harness for Sqlite {
    type Store = SqliteStore;

    async fn store(&self) -> SqliteStore {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.db");
        // The folder must outlive the test; the OS temp cleaner takes it later.
        std::mem::forget(dir);
        SqliteStore::open(path).expect("open sqlite")
    }

    async fn tamper(&self, store: &SqliteStore, stream: &str, version: u64) {
        let changed = store
            .execute_raw(format!(
                "UPDATE events SET envelope = json_set(envelope, '$.data.onHand', 999999)
                 WHERE stream_id = '{stream}' AND version = {version}"
            ))
            .await
            .expect("tamper");
        assert_eq!(changed, 1);
    }
}

conformance_suite!(Sqlite);

/// The global log returns every event once, in commit order across streams, in pages.
#[tokio::test]
async fn global_log_in_commit_order() {
    let store = Sqlite.store().await;
    let (a, b) = (stream("LOG-A"), stream("LOG-B"));
    store
        .append(&a, 0, seal(&a, 0, &[created("LOG-A", 1)]))
        .await
        .expect("a1");
    store
        .append(&b, 0, seal(&b, 0, &[created("LOG-B", 1), adjusted(1, 2)]))
        .await
        .expect("b1-2");
    store
        .append(&a, 1, seal(&a, 1, &[adjusted(1, 2)]))
        .await
        .expect("a2");
    let page1 = store.read_after(0, 3).await.expect("page 1");
    let page2 = store
        .read_after(page1[2].position, 3)
        .await
        .expect("page 2");
    let order: Vec<(String, u64)> = page1
        .iter()
        .chain(&page2)
        .map(|e| (e.envelope.stream_id.clone(), e.envelope.version))
        .collect();
    assert_eq!(
        order,
        vec![
            ("product#LOG-A".to_owned(), 1),
            ("product#LOG-B".to_owned(), 1),
            ("product#LOG-B".to_owned(), 2),
            ("product#LOG-A".to_owned(), 2)
        ]
    );
    assert!(page1.windows(2).all(|w| w[0].position < w[1].position));
    assert!(
        store
            .read_after(page2[0].position, 10)
            .await
            .expect("end")
            .is_empty()
    );
}

/// The global log verifies checksums too.
#[tokio::test]
async fn global_log_detects_tampering() {
    let store = Sqlite.store().await;
    let a = stream("LOG-T");
    store
        .append(&a, 0, seal(&a, 0, &[created("LOG-T", 1)]))
        .await
        .expect("append");
    Sqlite.tamper(&store, "product#LOG-T", 1).await;
    assert!(matches!(
        store.read_after(0, 10).await,
        Err(StoreError::Integrity(_))
    ));
}

/// A store reopened from its file continues where it stopped.
#[tokio::test]
async fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("events.db");
    let a = stream("REOPEN");
    {
        let store = SqliteStore::open(&path).expect("open");
        store
            .append(&a, 0, seal(&a, 0, &[created("REOPEN", 1)]))
            .await
            .expect("append");
    }
    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(store.current_version(&a).await.expect("version"), 1);
    assert_eq!(store.read_after(0, 10).await.expect("log").len(), 1);
}

/// A committed append wakes the log's reader; a refused one does not.
#[tokio::test]
async fn a_committed_append_wakes_the_reader() {
    use std::time::Duration;
    let store = Sqlite.store().await;
    let appended = store.appended();
    let s = stream("WAKE");
    store
        .clone()
        .append(&s, 0, seal(&s, 0, &[created("WAKE", 1)]))
        .await
        .expect("append");
    // Kept for a reader that was not waiting yet.
    tokio::time::timeout(Duration::from_secs(5), appended.notified())
        .await
        .expect("woken by the append");
    let conflict = store
        .append(&s, 0, seal(&s, 0, &[created("WAKE", 1)]))
        .await;
    assert!(matches!(conflict, Err(StoreError::Conflict { .. })));
    let woken = tokio::time::timeout(Duration::from_millis(50), appended.notified()).await;
    assert!(woken.is_err(), "a refused append wakes nobody");
}
