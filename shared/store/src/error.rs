use storefront_domain::EnvelopeError;
use thiserror::Error;

/// Everything that can go wrong in a store, typed so callers can react:
/// reload and retry on [`StoreError::Conflict`], alarm on [`StoreError::Integrity`].
#[derive(Debug, Error)]
pub enum StoreError {
    /// Another writer took the version first (the API answers 409 after its retries).
    #[error("version conflict on {stream}: expected version {expected}, the stream is at {actual}")]
    Conflict {
        /// The stream.
        stream: String,
        /// The version the writer expected the stream to be at.
        expected: u64,
        /// The version the stream is at.
        actual: u64,
    },
    /// Another transaction was writing the same items at the same moment
    /// (DynamoDB's `TransactionConflict`): nothing was written, and the same
    /// write may succeed a moment later. A lost race, like
    /// [`StoreError::Conflict`], not an outage.
    #[error("another transaction was writing the same items ({operation}); retry")]
    Contention {
        /// The call that met the other transaction.
        operation: &'static str,
    },
    /// A conditional state write found the item in another state.
    #[error("condition failed on state item {pk} / {sk}")]
    ConditionFailed {
        /// Partition key.
        pk: String,
        /// Sort key.
        sk: String,
    },
    /// A stored event fails its checksum or does not decode: it was altered or corrupted.
    #[error("integrity check failed: {0}")]
    Integrity(#[from] EnvelopeError),
    /// A stored item is missing attributes or holds malformed ones.
    #[error("corrupt item in {table}: {detail}")]
    Corrupt {
        /// Which table.
        table: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The append would exceed DynamoDB's transaction limit; refused before calling AWS.
    #[error("an atomic append may hold at most {limit} items, this one holds {items}")]
    TooManyItems {
        /// Items in the append.
        items: usize,
        /// The limit.
        limit: usize,
    },
    /// An event would exceed what the bus or the table can carry; refused before anything is written.
    #[error(
        "event {stream} v{version} would be {bytes} bytes; an event may be at most {limit} bytes (EventBridge's 256 KB entry limit)"
    )]
    EventTooLarge {
        /// The stream.
        stream: String,
        /// The version.
        version: u64,
        /// Its serialized size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The append itself is malformed (a programming error in the caller).
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    /// The backend failed (network, throttling, service error).
    #[error("{backend} failed: {detail}")]
    Backend {
        /// `sqlite` or `dynamodb`.
        backend: &'static str,
        /// What the backend said.
        detail: String,
    },
}

impl StoreError {
    pub(crate) fn sqlite(e: impl std::fmt::Display) -> Self {
        StoreError::Backend {
            backend: "sqlite",
            detail: e.to_string(),
        }
    }

    /// Whether retrying the same call later may succeed (backend trouble), as
    /// opposed to a decision (conflict, condition) or a defect (integrity).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Backend { .. })
    }

    /// Whether this is a lost race (another writer got there first or at the
    /// same moment): the writer reloads, decides again and retries.
    pub fn is_lost_race(&self) -> bool {
        matches!(
            self,
            StoreError::Conflict { .. }
                | StoreError::ConditionFailed { .. }
                | StoreError::Contention { .. }
        )
    }
}
