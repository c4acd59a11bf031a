//! The ports: what the API, the handlers and the local runtime need from storage.

use async_trait::async_trait;
use storefront_domain::{EventEnvelope, StreamId};

use crate::{MAX_ENVELOPE_BYTES, MAX_TRANSACTION_ITEMS, StoreError};

/// Events to append to one stream, sealed at `expected_version + 1 ..`.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    /// The stream.
    pub stream: StreamId,
    /// The version the writer loaded; 0 for a new stream.
    pub expected_version: u64,
    /// Sealed envelopes, versions `expected_version + 1` onwards without gaps.
    pub events: Vec<EventEnvelope>,
}

/// How a state write is guarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Write unconditionally.
    Always,
    /// Only if there is no live (unexpired) item under the key.
    NotExists,
    /// Only if there is no live item, or its version is lower than the new
    /// item's: how projections ignore duplicates and stale events.
    NewerVersion,
    /// Only if the live item has exactly this version (compare-and-swap).
    VersionIs(u64),
}

/// One item of the state table: a view, a snapshot, an idempotency record.
#[derive(Debug, Clone, PartialEq)]
pub struct StateItem {
    /// Partition key, e.g. `view#cart#u-42`.
    pub pk: String,
    /// Sort key, e.g. `cart`.
    pub sk: String,
    /// The writer's version of the item (an event version for projections).
    pub version: u64,
    /// The payload.
    pub value: serde_json::Value,
    /// Epoch seconds after which the item is gone (DynamoDB TTL); `None` keeps it.
    pub expires_at: Option<i64>,
}

/// A guarded state write.
#[derive(Debug, Clone)]
pub struct StateWrite {
    /// The item to put.
    pub item: StateItem,
    /// The guard.
    pub condition: Condition,
}

/// An atomic append: events on one or more streams, and state writes
/// (idempotency records) that succeed or fail with them. All or nothing.
/// A batch of state writes alone is allowed too: a small transaction on the
/// state table (the audit chain's record + head + duplicate marker).
#[derive(Debug, Clone, Default)]
pub struct AppendBatch {
    /// Per-stream appends; a stream may appear once.
    pub streams: Vec<StreamAppend>,
    /// State writes in the same transaction.
    pub state: Vec<StateWrite>,
}

impl AppendBatch {
    /// Items the batch writes: each event and each state write is one.
    pub fn item_count(&self) -> usize {
        self.streams.iter().map(|s| s.events.len()).sum::<usize>() + self.state.len()
    }

    /// Checks the batch is well formed: not empty, at most
    /// [`MAX_TRANSACTION_ITEMS`] items, each stream once, versions contiguous
    /// from the expected version, envelopes naming their stream.
    pub fn validate(&self) -> Result<(), StoreError> {
        let items = self.item_count();
        if self.streams.iter().all(|s| s.events.is_empty()) && self.state.is_empty() {
            return Err(StoreError::InvalidAppend("nothing to write".into()));
        }
        if items > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::TooManyItems {
                items,
                limit: MAX_TRANSACTION_ITEMS,
            });
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.streams {
            if !seen.insert(s.stream.to_string()) {
                return Err(StoreError::InvalidAppend(format!(
                    "stream {} appears twice in one batch",
                    s.stream
                )));
            }
            for (i, e) in s.events.iter().enumerate() {
                let bytes = serde_json::to_vec(e).map(|v| v.len()).unwrap_or(usize::MAX);
                if bytes > MAX_ENVELOPE_BYTES {
                    return Err(StoreError::EventTooLarge {
                        stream: e.stream_id.clone(),
                        version: e.version,
                        bytes,
                        limit: MAX_ENVELOPE_BYTES,
                    });
                }
                let want = s.expected_version + 1 + i as u64;
                if e.version != want || e.stream_id != s.stream.to_string() {
                    return Err(StoreError::InvalidAppend(format!(
                        "event {} is sealed as {} v{}, expected {} v{}",
                        i, e.stream_id, e.version, s.stream, want
                    )));
                }
            }
        }
        let mut keys = std::collections::HashSet::new();
        for w in &self.state {
            if !keys.insert((&w.item.pk, &w.item.sk)) {
                return Err(StoreError::InvalidAppend(format!(
                    "state item {} / {} is written twice in one batch",
                    w.item.pk, w.item.sk
                )));
            }
        }
        Ok(())
    }
}

/// An event with its position in the global log.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    /// Strictly increasing across all streams, in commit order.
    pub position: u64,
    /// The event.
    pub envelope: EventEnvelope,
}

/// The event store: streams of events with optimistic concurrency.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends events to one stream if it is still at `expected_version`.
    async fn append(
        &self,
        stream: &StreamId,
        expected_version: u64,
        events: Vec<EventEnvelope>,
    ) -> Result<(), StoreError> {
        self.append_batch(AppendBatch {
            streams: vec![StreamAppend {
                stream: stream.clone(),
                expected_version,
                events,
            }],
            state: vec![],
        })
        .await
    }

    /// Appends to several streams (and writes state) atomically: every stream
    /// must be at its expected version and every state condition must hold, or
    /// nothing is written.
    async fn append_batch(&self, batch: AppendBatch) -> Result<(), StoreError>;

    /// The events of a stream with version greater than `after_version`, in
    /// version order, each checksum verified.
    async fn load(
        &self,
        stream: &StreamId,
        after_version: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError>;

    /// The stream's current version (0 if it has no events).
    async fn current_version(&self, stream: &StreamId) -> Result<u64, StoreError>;
}

/// Every event in global (commit) order: the local stand-in for a DynamoDB stream.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Up to `limit` events with position greater than `after`, in order, verified.
    async fn read_after(&self, after: u64, limit: usize) -> Result<Vec<LoggedEvent>, StoreError>;
}

/// Key-value state with conditional writes and expiry.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// The live item under (pk, sk); expired items read as absent.
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<StateItem>, StoreError>;

    /// Writes an item if its condition holds, else [`StoreError::ConditionFailed`].
    async fn put(&self, write: StateWrite) -> Result<(), StoreError>;

    /// Removes an item (absent is fine).
    async fn delete(&self, pk: &str, sk: &str) -> Result<(), StoreError>;

    /// Every live item under a partition key, in sort-key order.
    async fn query(&self, pk: &str) -> Result<Vec<StateItem>, StoreError>;

    /// One page of [`StateStore::query`]: the live items under `pk` whose
    /// sort key comes after `after` (from the first when `None`), in
    /// sort-key order, reading at most `limit` items (expired ones count:
    /// a page may hold fewer live items than `limit`, even none, and still
    /// not be the last). [`Page::next`] is where the next page starts.
    async fn query_page(
        &self,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError>;

    /// Removes the item only if it has exactly `version`; true if it did
    /// (false: absent, or rewritten meanwhile, and then left alone).
    async fn delete_version(&self, pk: &str, sk: &str, version: u64) -> Result<bool, StoreError>;
}

/// One page of a partition, from [`StateStore::query_page`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// The live items read, in sort-key order.
    pub items: Vec<StateItem>,
    /// The sort key to pass as `after` for the next page; `None` when the
    /// partition has no more items.
    pub next: Option<String>,
}
