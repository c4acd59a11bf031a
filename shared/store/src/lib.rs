//! # storefront-store
//!
//! Where events and state live. Narrow ports, two adapters, one conformance
//! suite that proves both behave the same.
//!
//! - [`EventStore`]: append to one stream at an expected version, append
//!   atomically to several streams at once, load a stream. Two writers can
//!   never take the same version: the loser gets [`StoreError::Conflict`].
//! - [`EventLog`]: every event in global order after a position. The SQLite
//!   adapter implements it (the local runtime tails it as its stream); on AWS
//!   the DynamoDB stream of the events table plays this part.
//! - [`StateStore`]: views, snapshots, idempotency records and outboxes, with
//!   conditional writes and expiry.
//! - [`aggregate`]: load an aggregate from snapshot + tail, and snapshot it.
//! - [`keys`]: every key of the state table, spelled once.
//! - [`pipeline`]: the one command pipeline (load, decide, append with the
//!   idempotency record, retry a lost race, snapshot when due) of the API and
//!   of every handler that appends.
//!
//! Adapters: [`sqlite::SqliteStore`] (rusqlite, bundled, WAL) and
//! [`dynamodb::DynamoStore`] (aws-sdk-dynamodb). Every read verifies each
//! event's checksum and fails with [`StoreError::Integrity`] on a mismatch.
//!
//! The conformance suite lives in `tests/conformance/` and runs against both.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aggregate;
pub mod clock;
pub mod dynamodb;
mod error;
pub mod iam;
pub mod keys;
pub mod pipeline;
mod ports;
pub mod recording;
pub mod sqlite;

pub use error::StoreError;
pub use ports::{
    AppendBatch, Condition, EventLog, EventStore, LoggedEvent, Page, StateItem, StateStore,
    StateWrite, StreamAppend,
};

/// Most items DynamoDB accepts in one TransactWriteItems call; both adapters enforce it.
pub const MAX_TRANSACTION_ITEMS: usize = 100;

/// The largest serialized envelope an append accepts: EventBridge takes
/// entries up to 256 KB (Source + DetailType + Detail), the tighter of its
/// limit and DynamoDB's 400 KB item limit; 1 KiB is left for the source and
/// detail type.
pub const MAX_ENVELOPE_BYTES: usize = 255 * 1024;
