//! The embedded adapter: one SQLite file (rusqlite, bundled; WAL).
//!
//! Same semantics as DynamoDB: a unique (stream, version) key, one transaction
//! per append, conditional state writes with expiry. On top, an
//! `AUTOINCREMENT` position column gives the global commit order the local
//! runtime tails as its stream.
//!
//! All access goes through one connection behind a mutex, so commits happen
//! one at a time and positions become visible in order: a tailer reading
//! "everything after position p" can never skip an event that commits later
//! with a smaller position. SQLite serialises writers anyway; readers share the
//! same lock, which is fine at the storefront's scale and keeps the reasoning
//! simple. A call runs on the awaiting thread when the connection is free
//! (they are short), else on tokio's blocking pool (see `with_conn`).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use storefront_domain::{EventEnvelope, StreamId};

use crate::clock::now_epoch_seconds;
use crate::{
    AppendBatch, Condition, EventLog, EventStore, LoggedEvent, Page, StateItem, StateStore,
    StateWrite, StoreError,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    position   INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id  TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    event_id   TEXT    NOT NULL UNIQUE,
    event_type TEXT    NOT NULL,
    envelope   TEXT    NOT NULL,
    UNIQUE (stream_id, version)
);
CREATE TABLE IF NOT EXISTS state (
    pk         TEXT    NOT NULL,
    sk         TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    value      TEXT    NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (pk, sk)
);
";

/// How much work one SQLite file has done since it was opened: an
/// instrument for the load generator's "transactions per command".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SqliteCounts {
    /// Calls on the connection (each a lock of it, and at least one
    /// transaction: an explicit one, or a statement in autocommit).
    pub calls: u64,
    /// Write transactions committed, as SQLite's commit hook counts them.
    pub commits: u64,
}

/// The counters behind [`SqliteCounts`] for one connection.
#[derive(Debug, Default)]
pub struct SqliteCounters {
    calls: AtomicU64,
    commits: Arc<AtomicU64>,
}

impl SqliteCounters {
    /// Counters for `conn`: installs its commit hook.
    pub fn install(conn: &mut Connection) -> rusqlite::Result<Arc<SqliteCounters>> {
        let counters = Arc::new(SqliteCounters::default());
        let commits = Arc::clone(&counters.commits);
        conn.commit_hook(Some(move || {
            commits.fetch_add(1, Ordering::Relaxed);
            false // never veto the commit
        }))?;
        Ok(counters)
    }

    /// Counts one call on the connection.
    pub fn call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn read(&self) -> SqliteCounts {
        SqliteCounts {
            calls: self.calls.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
        }
    }
}

/// The settings both local SQLite files share beyond WAL and
/// `synchronous=NORMAL` (measured with `storefront load`, BENCHMARKS.md
/// section 4): reads through a memory map instead of a `pread` per page,
/// and a checkpoint every 4,000 WAL pages (16 MB) instead of 1,000, so
/// pages written again and again (the hot state items, the queue table)
/// are copied back and synced a quarter as often. Neither changes what a
/// crash can lose.
pub fn tune(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "mmap_size", 256i64 * 1024 * 1024)?;
    conn.pragma_update(None, "wal_autocheckpoint", 4000)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Event store, event log and state store in one SQLite database.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    appended: Arc<tokio::sync::Notify>,
    counters: Arc<SqliteCounters>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, in WAL mode, with the schema.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let conn = Connection::open(path).map_err(|e| StoreError::Backend {
            backend: "sqlite",
            detail: format!("cannot open {}: {e}", path.display()),
        })?;
        Self::init(conn)
    }

    /// An in-memory database, for tests and benchmarks.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(StoreError::sqlite)?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        // WAL + synchronous=NORMAL: a committed append survives a crash of the
        // process (the local runtime's SIGKILL test); only an OS crash may
        // lose the last transactions.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(StoreError::sqlite)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(StoreError::sqlite)?;
        tune(&conn).map_err(StoreError::sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(StoreError::sqlite)?;
        // Every statement is prepared once and kept (compiling SQL was a
        // fifth of the local runtime's CPU under load before it was cached).
        // The query planner stability guarantee keeps a kept statement's
        // plan: without it SQLite recompiles a statement whenever a new value
        // is bound to a parameter the planner looked at (a stream id, a
        // LIMIT), which was nearly every call.
        conn.set_prepared_statement_cache_capacity(64);
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .map_err(StoreError::sqlite)?;
        conn.execute_batch(SCHEMA).map_err(StoreError::sqlite)?;
        let counters = SqliteCounters::install(&mut conn).map_err(StoreError::sqlite)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            appended: Arc::new(tokio::sync::Notify::new()),
            counters,
        })
    }

    /// Calls and commits on this database since it was opened (all clones).
    pub fn counts(&self) -> SqliteCounts {
        self.counters.read()
    }

    /// Woken (`notify_one`) after every committed append of this handle and
    /// its clones, so one reader of the log (the local runtime's feed) can
    /// wait for new events instead of polling. A wake-up with nobody
    /// waiting is kept for the next wait. Appends by another process are not
    /// seen: such a reader still polls, only less often.
    pub fn appended(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.appended)
    }

    /// Runs `f` on the connection: on the calling thread when the
    /// connection is free, else on tokio's blocking pool. Every call the
    /// storefront makes is short (one statement or one small transaction,
    /// tens of microseconds), so running it where it is awaited saves the
    /// pool's hop, two thread wake-ups per call that were the runtime's
    /// largest cost under load (perf, 30 November: a third of its CPU in the
    /// scheduler). A call that would wait for the lock goes to the pool
    /// instead, so an async worker thread never sleeps on it while requests
    /// wait. The calls that can read a lot always go to the pool
    /// ([`Self::with_conn_off_thread`]).
    async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let f = match self.conn.try_lock() {
            // A panic while holding the lock cannot leave a half-written
            // transaction behind (SQLite rolls it back), so a poisoned lock
            // is safe to keep using.
            Ok(mut guard) => {
                self.counters.call();
                return f(&mut guard);
            }
            Err(std::sync::TryLockError::Poisoned(p)) => {
                self.counters.call();
                return f(&mut p.into_inner());
            }
            Err(std::sync::TryLockError::WouldBlock) => f,
        };
        self.with_conn_off_thread(f).await
    }

    /// Runs `f` on tokio's blocking pool: for calls whose size the caller
    /// chooses (an unbounded query, a long page of the log, raw SQL), which
    /// must not hold an async worker thread for long.
    async fn with_conn_off_thread<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (conn, counters) = (Arc::clone(&self.conn), Arc::clone(&self.counters));
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            counters.call();
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::sqlite(format!("worker failed: {e}")))?
    }

    /// The position the next appended event's will follow: the highest
    /// position SQLite has handed out (`AUTOINCREMENT`'s sequence, which
    /// survives deletions), or the highest stored, 0 for an empty log. After
    /// a power loss both can be lower than before it: the events' last
    /// transactions rolled back.
    pub async fn last_position(&self) -> Result<u64, StoreError> {
        self.with_conn(|c| {
            let stored: i64 = c
                .query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
                    r.get(0)
                })
                .map_err(StoreError::sqlite)?;
            let handed_out: i64 = c
                .query_row(
                    "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
                    [],
                    |r| r.get(0),
                )
                .map_err(StoreError::sqlite)?;
            Ok(stored.max(handed_out).max(0) as u64)
        })
        .await
    }

    /// Runs raw SQL against the database. For tests that need to go behind
    /// the store's back (tampering) and for operator tooling; never used by
    /// the storefront itself.
    pub async fn execute_raw(&self, sql: String) -> Result<usize, StoreError> {
        self.with_conn_off_thread(move |c| c.execute(&sql, []).map_err(StoreError::sqlite))
            .await
    }
}

/// The longest page of the log read on the calling thread; a longer one
/// (an operator's count, a replay) is read on the blocking pool.
const LONG_READ: usize = 256;

fn decode_envelope(text: &str) -> Result<EventEnvelope, StoreError> {
    let envelope: EventEnvelope = serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        table: "events",
        detail: format!("envelope is not valid JSON: {e}"),
    })?;
    envelope.verify()?;
    Ok(envelope)
}

fn stream_version(c: &Connection, stream: &str) -> Result<u64, StoreError> {
    c.prepare_cached("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?1")
        .and_then(|mut s| s.query_row(params![stream], |r| r.get::<_, i64>(0)))
        .map(|v| v as u64)
        .map_err(StoreError::sqlite)
}

fn live_item(
    c: &Connection,
    pk: &str,
    sk: &str,
    now: i64,
) -> Result<Option<StateItem>, StoreError> {
    let row = c
        .prepare_cached(
            "SELECT version, value, expires_at FROM state WHERE pk = ?1 AND sk = ?2
             AND (expires_at IS NULL OR expires_at > ?3)",
        )
        .and_then(|mut s| {
            s.query_row(params![pk, sk, now], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })
        })
        .optional()
        .map_err(StoreError::sqlite)?;
    row.map(|(version, value, expires_at)| to_item(pk, sk, version, &value, expires_at))
        .transpose()
}

fn to_item(
    pk: &str,
    sk: &str,
    version: i64,
    value: &str,
    expires_at: Option<i64>,
) -> Result<StateItem, StoreError> {
    Ok(StateItem {
        pk: pk.to_owned(),
        sk: sk.to_owned(),
        version: version as u64,
        value: serde_json::from_str(value).map_err(|e| StoreError::Corrupt {
            table: "state",
            detail: format!("{pk} / {sk}: value is not JSON: {e}"),
        })?,
        expires_at,
    })
}

fn condition_holds(existing: Option<&StateItem>, write: &StateWrite) -> bool {
    match (write.condition, existing) {
        (Condition::Always, _) => true,
        (Condition::NotExists, e) => e.is_none(),
        (Condition::NewerVersion, None) => true,
        (Condition::NewerVersion, Some(e)) => e.version < write.item.version,
        (Condition::VersionIs(v), Some(e)) => e.version == v,
        (Condition::VersionIs(_), None) => false,
    }
}

fn put_state(c: &Connection, write: &StateWrite, now: i64) -> Result<(), StoreError> {
    let existing = live_item(c, &write.item.pk, &write.item.sk, now)?;
    if !condition_holds(existing.as_ref(), write) {
        return Err(StoreError::ConditionFailed {
            pk: write.item.pk.clone(),
            sk: write.item.sk.clone(),
        });
    }
    let value = serde_json::to_string(&write.item.value)
        .map_err(|e| StoreError::InvalidAppend(format!("state value: {e}")))?;
    c.prepare_cached(
        "INSERT INTO state (pk, sk, version, value, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (pk, sk) DO UPDATE SET version = excluded.version,
           value = excluded.value, expires_at = excluded.expires_at",
    )
    .and_then(|mut s| {
        s.execute(params![
            write.item.pk,
            write.item.sk,
            write.item.version as i64,
            value,
            write.item.expires_at
        ])
    })
    .map_err(StoreError::sqlite)?;
    Ok(())
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append_batch(&self, batch: AppendBatch) -> Result<(), StoreError> {
        batch.validate()?;
        self.with_conn(move |c| {
            let now = now_epoch_seconds();
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite)?;
            for s in &batch.streams {
                let stream = s.stream.to_string();
                let actual = stream_version(&tx, &stream)?;
                if actual != s.expected_version {
                    return Err(StoreError::Conflict {
                        stream,
                        expected: s.expected_version,
                        actual,
                    });
                }
            }
            for w in &batch.state {
                put_state(&tx, w, now)?;
            }
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO events (stream_id, version, event_id, event_type, envelope)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .map_err(StoreError::sqlite)?;
                for s in &batch.streams {
                    for e in &s.events {
                        let text = serde_json::to_string(e)
                            .map_err(|e| StoreError::InvalidAppend(e.to_string()))?;
                        insert
                            .execute(params![
                                e.stream_id,
                                e.version as i64,
                                e.event_id,
                                e.event_type,
                                text
                            ])
                            .map_err(StoreError::sqlite)?;
                    }
                }
            }
            // Dropping `tx` on any early return above rolls everything back.
            tx.commit().map_err(StoreError::sqlite)
        })
        .await?;
        self.appended.notify_one();
        Ok(())
    }

    async fn load(
        &self,
        stream: &StreamId,
        after_version: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let stream = stream.to_string();
        self.with_conn(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT envelope FROM events WHERE stream_id = ?1 AND version > ?2 ORDER BY version",
                )
                .map_err(StoreError::sqlite)?;
            let rows = stmt
                .query_map(params![stream, after_version as i64], |r| r.get::<_, String>(0))
                .map_err(StoreError::sqlite)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(decode_envelope(&row.map_err(StoreError::sqlite)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn current_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let stream = stream.to_string();
        self.with_conn(move |c| stream_version(c, &stream)).await
    }
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn read_after(&self, after: u64, limit: usize) -> Result<Vec<LoggedEvent>, StoreError> {
        let read = move |c: &mut Connection| {
            let mut stmt = c
                .prepare_cached("SELECT position, envelope FROM events WHERE position > ?1 ORDER BY position LIMIT ?2")
                .map_err(StoreError::sqlite)?;
            let rows = stmt
                .query_map(params![after as i64, limit as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(StoreError::sqlite)?;
            let mut out = Vec::new();
            for row in rows {
                let (position, text) = row.map_err(StoreError::sqlite)?;
                out.push(LoggedEvent {
                    position: position as u64,
                    envelope: decode_envelope(&text)?,
                });
            }
            Ok(out)
        };
        if limit <= LONG_READ {
            self.with_conn(read).await
        } else {
            self.with_conn_off_thread(read).await
        }
    }
}

/// The live items under `pk` whose sort key comes after `after` (every
/// sort key comes after "", which is never a key), in sort-key order, at
/// most `limit` of them (-1: all).
fn live_items_after(
    c: &Connection,
    pk: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<StateItem>, StoreError> {
    let mut stmt = c
        .prepare_cached(
            "SELECT sk, version, value, expires_at FROM state WHERE pk = ?1 AND sk > ?2
             AND (expires_at IS NULL OR expires_at > ?3) ORDER BY sk LIMIT ?4",
        )
        .map_err(StoreError::sqlite)?;
    let rows = stmt
        .query_map(params![pk, after, now_epoch_seconds(), limit], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })
        .map_err(StoreError::sqlite)?;
    let mut items = Vec::new();
    for row in rows {
        let (sk, version, value, expires_at) = row.map_err(StoreError::sqlite)?;
        items.push(to_item(pk, &sk, version, &value, expires_at)?);
    }
    Ok(items)
}

#[async_trait]
impl StateStore for SqliteStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<StateItem>, StoreError> {
        let (pk, sk) = (pk.to_owned(), sk.to_owned());
        self.with_conn(move |c| live_item(c, &pk, &sk, now_epoch_seconds()))
            .await
    }

    async fn put(&self, write: StateWrite) -> Result<(), StoreError> {
        self.with_conn(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite)?;
            put_state(&tx, &write, now_epoch_seconds())?;
            tx.commit().map_err(StoreError::sqlite)
        })
        .await
    }

    async fn delete(&self, pk: &str, sk: &str) -> Result<(), StoreError> {
        let (pk, sk) = (pk.to_owned(), sk.to_owned());
        self.with_conn(move |c| {
            c.prepare_cached("DELETE FROM state WHERE pk = ?1 AND sk = ?2")
                .and_then(|mut s| s.execute(params![pk, sk]))
                .map(|_| ())
                .map_err(StoreError::sqlite)
        })
        .await
    }

    async fn query(&self, pk: &str) -> Result<Vec<StateItem>, StoreError> {
        let pk = pk.to_owned();
        // LIMIT -1: no limit.
        self.with_conn_off_thread(move |c| live_items_after(c, &pk, "", -1))
            .await
    }

    async fn query_page(
        &self,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let pk = pk.to_owned();
        let after = after.unwrap_or_default().to_owned();
        let limit = limit.max(1);
        self.with_conn(move |c| {
            let items = live_items_after(c, &pk, &after, i64::try_from(limit).unwrap_or(i64::MAX))?;
            let next = (items.len() == limit)
                .then(|| items.last().map(|i| i.sk.clone()))
                .flatten();
            Ok(Page { items, next })
        })
        .await
    }

    async fn delete_version(&self, pk: &str, sk: &str, version: u64) -> Result<bool, StoreError> {
        let (pk, sk) = (pk.to_owned(), sk.to_owned());
        let version = i64::try_from(version).map_err(StoreError::sqlite)?;
        self.with_conn(move |c| {
            c.prepare_cached("DELETE FROM state WHERE pk = ?1 AND sk = ?2 AND version = ?3")
                .and_then(|mut s| s.execute(params![pk, sk, version]))
                .map(|n| n > 0)
                .map_err(StoreError::sqlite)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventLog, EventStore};
    use rusqlite::StatementStatus;
    use storefront_domain::events::ProductStockAdjusted;
    use storefront_domain::{Event, EventMeta, StreamId, seal_batch};

    /// The hot statements are compiled once: kept in the cache and never
    /// recompiled when new values are bound.
    #[tokio::test]
    async fn hot_statements_are_prepared_once() {
        let store = SqliteStore::open_in_memory().expect("store");
        for n in 0..5u32 {
            let stream = StreamId::parse(&format!("product#P{n}")).expect("stream");
            let event = Event::ProductStockAdjusted(ProductStockAdjusted {
                delta: 1,
                reason: "count".into(),
                on_hand: n + 1,
            });
            let meta = |_| EventMeta {
                event_id: format!("0190f3c2-7a6b-7c3d-8e9f-{n:012x}"),
                occurred_at: "2026-11-27T10:00:00.000Z".into(),
                correlation_id: "c".into(),
                causation_id: None,
                actor: "system:test".into(),
            };
            store
                .append(&stream, 0, seal_batch(&stream, 0, &[event], meta))
                .await
                .expect("append");
            store.load(&stream, 0).await.expect("load");
            store.read_after(u64::from(n), 10).await.expect("log");
        }
        let conn = store.conn.lock().expect("conn");
        for sql in [
            "SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?1",
            "SELECT envelope FROM events WHERE stream_id = ?1 AND version > ?2 ORDER BY version",
            "SELECT position, envelope FROM events WHERE position > ?1 ORDER BY position LIMIT ?2",
        ] {
            let stmt = conn.prepare_cached(sql).expect("cached");
            assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0, "{sql}");
            assert_eq!(
                stmt.get_status(StatementStatus::Run),
                5,
                "{sql} ran once per round"
            );
        }
    }
}
