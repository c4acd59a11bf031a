//! Durable local queues with SQS's semantics, in SQLite (`queues.db` in the
//! data folder).
//!
//! - `receive` hands out up to N visible messages, bumps their receive count
//!   and hides them for the visibility timeout; a message not deleted in
//!   time becomes visible again (a crashed consumer loses nothing).
//! - A message received more than `maxReceiveCount` times moves to the
//!   queue's DLQ instead of being handed out (the redrive policy).
//! - A failed message is made visible again after a backoff rather than at
//!   once.
//! - The feed cursor (how far the global event log has been published) is
//!   advanced in the same transaction that enqueues the routed messages, so a
//!   crash can neither lose nor double an event on its way to the queues.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use storefront_store::sqlite::{SqliteCounters, SqliteCounts};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    queue         TEXT    NOT NULL,
    message_id    TEXT    NOT NULL UNIQUE,
    body          TEXT    NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    visible_at    INTEGER NOT NULL,
    sent_at       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue, visible_at, id);
CREATE TABLE IF NOT EXISTS cursors (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
";

/// A queue failure (the local SQLite file).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The SQLite file refused a call.
    #[error("local queue store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The call could not run (its blocking task failed) or was malformed.
    #[error("local queue store: {0}")]
    Task(String),
}

/// A message handed to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Row id (the receipt handle).
    pub id: i64,
    /// The message id (stable across receives).
    pub message_id: String,
    /// The body.
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
}

/// A queue's redrive policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    /// Where messages go after too many receives.
    pub dlq: String,
    /// How many receives are allowed.
    pub max_receive_count: u32,
}

/// Every local queue, in one SQLite file.
#[derive(Clone)]
pub struct Queues {
    conn: Arc<Mutex<Connection>>,
    wakers: Arc<Mutex<HashMap<String, Arc<tokio::sync::Notify>>>>,
    counters: Arc<SqliteCounters>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Queues {
    /// Opens (creating) the queue file.
    pub fn open(path: &Path) -> Result<Queues, QueueError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        storefront_store::sqlite::tune(&conn)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Statements compiled once and kept, plans stable (see SqliteStore::open).
        conn.set_prepared_statement_cache_capacity(64);
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        conn.execute_batch(SCHEMA)?;
        let counters = SqliteCounters::install(&mut conn)?;
        Ok(Queues {
            conn: Arc::new(Mutex::new(conn)),
            wakers: Arc::default(),
            counters,
        })
    }

    /// Calls and commits on the queue file since it was opened (all clones).
    pub fn counts(&self) -> SqliteCounts {
        self.counters.read()
    }

    /// Woken (`notify_one`) when this handle or a clone makes messages of
    /// `queue` visible now (a send, an enqueue, a redrive), so its one
    /// consumer can wait instead of polling. A wake-up with nobody waiting
    /// is kept for the next wait. Messages that become visible later (a
    /// retry's backoff) or are written by another process are not
    /// announced: the consumer still polls for those, only less often.
    pub fn waker(&self, queue: &str) -> Arc<tokio::sync::Notify> {
        let mut wakers = self.wakers.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(wakers.entry(queue.to_owned()).or_default())
    }

    fn wake<'a>(&self, queues: impl IntoIterator<Item = &'a str>) {
        let mut seen = std::collections::HashSet::new();
        for queue in queues {
            if seen.insert(queue) {
                self.waker(queue).notify_one();
            }
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        self.counters.call();
        f(&mut guard)
    }

    /// Runs `f` on the connection where it is awaited when the connection
    /// is free, else on tokio's blocking pool (see `SqliteStore::with_conn`):
    /// an async worker thread never sleeps on the lock.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Queues) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let free = matches!(
            self.conn.try_lock(),
            Ok(_) | Err(std::sync::TryLockError::Poisoned(_))
        );
        if free {
            // Free a moment ago: taken again by `with` at once, or at worst
            // after a short wait for a call that got in between.
            return f(self);
        }
        let queues = self.clone();
        tokio::task::spawn_blocking(move || f(&queues))
            .await
            .map_err(|e| QueueError::Task(e.to_string()))?
    }

    /// The feed cursor called `name` (0 if never set).
    pub fn cursor(&self, name: &str) -> Result<u64, QueueError> {
        self.with(|c| {
            Ok(
                c.prepare_cached("SELECT position FROM cursors WHERE name = ?1")?
                    .query_row(params![name], |r| r.get::<_, i64>(0))
                    .optional()?
                    .map_or(0, |p| p as u64),
            )
        })
    }

    /// Enqueues `messages` (queue, message id, body) and moves the cursor to
    /// `position`, atomically. A message id already present is skipped.
    pub fn enqueue_and_advance(
        &self,
        messages: &[(String, String, String)],
        cursor: &str,
        position: u64,
    ) -> Result<(), QueueError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let now = now_ms();
            for (queue, message_id, body) in messages {
                tx.prepare_cached("INSERT OR IGNORE INTO messages (queue, message_id, body, visible_at, sent_at) VALUES (?1, ?2, ?3, ?4, ?4)")?.execute(
                    params![queue, message_id, body, now],
                )?;
            }
            tx.prepare_cached("INSERT INTO cursors (name, position) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position")?.execute(
                params![cursor, position as i64],
            )?;
            tx.commit()?;
            Ok(())
        })?;
        self.wake(messages.iter().map(|(queue, ..)| queue.as_str()));
        Ok(())
    }

    /// Sends one message now.
    pub fn send(&self, queue: &str, message_id: &str, body: &str) -> Result<(), QueueError> {
        self.with(|c| {
            let now = now_ms();
            c.prepare_cached("INSERT OR IGNORE INTO messages (queue, message_id, body, visible_at, sent_at) VALUES (?1, ?2, ?3, ?4, ?4)")?.execute(
                params![queue, message_id, body, now],
            )?;
            Ok(())
        })?;
        self.wake([queue]);
        Ok(())
    }

    /// Receives up to `max` visible messages, hiding them for `visibility_ms`.
    /// Messages over the redrive limit move to the DLQ instead.
    pub fn receive(
        &self,
        queue: &str,
        max: u32,
        visibility_ms: i64,
        redrive: Option<&Redrive>,
    ) -> Result<Vec<Received>, QueueError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let now = now_ms();
            let mut out = Vec::new();
            {
                let mut select = tx.prepare_cached(
                    "SELECT id, message_id, body, receive_count FROM messages
                     WHERE queue = ?1 AND visible_at <= ?2 ORDER BY visible_at, id LIMIT ?3",
                )?;
                let rows = select.query_map(params![queue, now, i64::from(max) * 2], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
                })?;
                let rows: Vec<_> = rows.collect::<Result<_, _>>()?;
                for (id, message_id, body, count) in rows {
                    if out.len() as u32 >= max {
                        break;
                    }
                    if let Some(r) = redrive
                        && count as u32 >= r.max_receive_count
                    {
                        tx.prepare_cached("UPDATE messages SET queue = ?1, receive_count = 0, visible_at = ?2 WHERE id = ?3")?.execute(
                            params![r.dlq, now, id],
                        )?;
                        continue;
                    }
                    tx.prepare_cached("UPDATE messages SET receive_count = receive_count + 1, visible_at = ?1 WHERE id = ?2")?.execute(
                        params![now + visibility_ms, id],
                    )?;
                    out.push(Received {
                        id,
                        message_id,
                        body,
                        receive_count: count as u32 + 1,
                    });
                }
            }
            tx.commit()?;
            Ok(out)
        })
    }

    /// Deletes handled messages.
    pub fn delete(&self, ids: &[i64]) -> Result<(), QueueError> {
        self.with(|c| {
            let tx = c.transaction()?;
            for id in ids {
                tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?
                    .execute(params![id])?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Makes a message visible again after `delay_ms` (backoff before redelivery).
    pub fn retry_after(&self, id: i64, delay_ms: i64) -> Result<(), QueueError> {
        self.with(|c| {
            c.prepare_cached("UPDATE messages SET visible_at = ?1 WHERE id = ?2")?
                .execute(params![now_ms() + delay_ms, id])?;
            Ok(())
        })
    }

    /// Makes every in-flight message visible now. Called at start-up: the
    /// runtime is the only consumer, so whatever was in flight belonged to a
    /// process that is gone (a crash), and waiting out its visibility timeout
    /// would only delay the redelivery. Returns how many.
    pub fn release_in_flight(&self) -> Result<u64, QueueError> {
        self.with(|c| {
            let now = now_ms();
            let n = c
                .prepare_cached("UPDATE messages SET visible_at = ?1 WHERE visible_at > ?1")?
                .execute(params![now])?;
            Ok(n as u64)
        })
    }

    /// Puts messages (queue, message id, body) on their queues, visible now;
    /// a message id already there is left as it is.
    pub fn enqueue(&self, messages: &[(String, String, String)]) -> Result<(), QueueError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let now = now_ms();
            for (queue, id, body) in messages {
                tx.prepare_cached("INSERT OR IGNORE INTO messages (queue, message_id, body, visible_at, sent_at) VALUES (?1, ?2, ?3, ?4, ?4)")?.execute(
                    params![queue, id, body, now],
                )?;
            }
            tx.commit()?;
            Ok(())
        })?;
        self.wake(messages.iter().map(|(q, ..)| q.as_str()));
        Ok(())
    }

    /// Deletes one message of `queue` by its message id.
    pub fn delete_message(&self, queue: &str, message_id: &str) -> Result<(), QueueError> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM messages WHERE queue = ?1 AND message_id = ?2")?
                .execute(params![queue, message_id])?;
            Ok(())
        })
    }

    /// Every message in a queue: (message id, body, receive count).
    pub fn list(&self, queue: &str) -> Result<Vec<(String, String, u32)>, QueueError> {
        self.with(|c| {
            let mut s = c.prepare_cached(
                "SELECT message_id, body, receive_count FROM messages WHERE queue = ?1 ORDER BY id",
            )?;
            let rows = s.query_map(params![queue], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u32))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// How many messages a queue holds (visible or not).
    pub fn depth(&self, queue: &str) -> Result<u64, QueueError> {
        self.with(|c| {
            Ok(
                c.prepare_cached("SELECT COUNT(*) FROM messages WHERE queue = ?1")?
                    .query_row(params![queue], |r| r.get::<_, i64>(0))? as u64,
            )
        })
    }

    /// Moves every message of `from` (a DLQ) back to `to`, visible now, counts reset. Returns how many.
    pub fn redrive(&self, from: &str, to: &str) -> Result<u64, QueueError> {
        self.with(|c| {
            let n = c.prepare_cached("UPDATE messages SET queue = ?1, receive_count = 0, visible_at = ?2 WHERE queue = ?3")?.execute(
                params![to, now_ms(), from],
            )?;
            Ok(n as u64)
        })
        .inspect(|_| self.wake([to]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues() -> Queues {
        let dir = tempfile::tempdir().expect("dir");
        let q = Queues::open(&dir.path().join("q.db")).expect("open");
        std::mem::forget(dir);
        q
    }

    /// Received messages are hidden until deleted or their visibility ends; deleted ones are gone.
    #[test]
    fn visibility_and_delete() {
        let q = queues();
        q.send("a", "m1", "one").expect("send");
        q.send("a", "m2", "two").expect("send");
        let got = q.receive("a", 10, 60_000, None).expect("receive");
        assert_eq!(got.len(), 2);
        assert!(
            q.receive("a", 10, 60_000, None)
                .expect("receive")
                .is_empty(),
            "hidden while in flight"
        );
        q.delete(&[got[0].id]).expect("delete");
        q.retry_after(got[1].id, 0).expect("retry");
        let again = q.receive("a", 10, 0, None).expect("receive");
        assert_eq!(again.len(), 1);
        assert_eq!(
            (again[0].message_id.as_str(), again[0].receive_count),
            ("m2", 2)
        );
    }

    /// After maxReceiveCount receives a message moves to the DLQ; redrive brings it back fresh.
    #[test]
    fn dead_lettering_and_redrive() {
        let q = queues();
        let policy = Redrive {
            dlq: "a-dlq".into(),
            max_receive_count: 3,
        };
        q.send("a", "m1", "poison").expect("send");
        for n in 1..=3 {
            let got = q.receive("a", 1, 0, Some(&policy)).expect("receive");
            assert_eq!(got[0].receive_count, n);
        }
        assert!(
            q.receive("a", 1, 0, Some(&policy))
                .expect("receive")
                .is_empty()
        );
        assert_eq!(q.depth("a-dlq").expect("depth"), 1);
        assert_eq!(q.redrive("a-dlq", "a").expect("redrive"), 1);
        let got = q.receive("a", 1, 0, Some(&policy)).expect("receive");
        assert_eq!(
            (got[0].message_id.as_str(), got[0].receive_count),
            ("m1", 1)
        );
    }

    /// After a restart, messages a dead consumer had in flight are visible again at once.
    #[test]
    fn in_flight_released_on_restart() {
        let q = queues();
        q.send("a", "m1", "x").expect("send");
        assert_eq!(q.receive("a", 10, 60_000, None).expect("receive").len(), 1);
        assert!(
            q.receive("a", 10, 60_000, None)
                .expect("receive")
                .is_empty()
        );
        assert_eq!(q.release_in_flight().expect("release"), 1);
        assert_eq!(q.receive("a", 10, 60_000, None).expect("receive").len(), 1);
    }

    /// Enqueueing and advancing the cursor happen together, and a message id is enqueued once.
    #[tokio::test]
    async fn senders_wake_the_queue_they_filled() {
        let q = queues();
        let (a, b) = (q.waker("a"), q.clone().waker("b"));
        q.clone()
            .enqueue_and_advance(
                &[
                    ("a".into(), "m1".into(), "{}".into()),
                    ("a".into(), "m2".into(), "{}".into()),
                ],
                "feed",
                2,
            )
            .expect("enqueue");
        // The wake-up was kept for a consumer not yet waiting.
        tokio::time::timeout(std::time::Duration::from_secs(5), a.notified())
            .await
            .expect("queue a woken");
        let not_b = tokio::time::timeout(std::time::Duration::from_millis(50), b.notified()).await;
        assert!(not_b.is_err(), "queue b got nothing and was not woken");
        q.send("b", "m3", "{}").expect("send");
        tokio::time::timeout(std::time::Duration::from_secs(5), b.notified())
            .await
            .expect("queue b woken by a send");
        q.redrive("a", "b").expect("redrive");
        tokio::time::timeout(std::time::Duration::from_secs(5), b.notified())
            .await
            .expect("queue b woken by a redrive");
    }

    #[test]
    fn cursor_with_enqueue() {
        let q = queues();
        let msgs = vec![("a".to_owned(), "e1".to_owned(), "x".to_owned())];
        q.enqueue_and_advance(&msgs, "feed", 7).expect("enqueue");
        q.enqueue_and_advance(&msgs, "feed", 8)
            .expect("enqueue again");
        assert_eq!(q.cursor("feed").expect("cursor"), 8);
        assert_eq!(q.depth("a").expect("depth"), 1);
    }
}
