//! What the DynamoDB adapter sends for each call of the ports, as the IAM
//! actions a function's policy must grant: the one place that says it, next
//! to the adapter, so a function's policy can be derived from the port
//! calls its code makes (`tests/tests/least_privilege.rs` records them) and
//! the list checked against the wire (`tests/dynamodb_faults.rs`).
//!
//! A `TransactWriteItems` needs the action of each item it holds
//! (`PutItem` on each table written); there is no IAM action of its own.

use crate::AppendBatch;

/// One of the two tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// The event store.
    Events,
    /// Views, snapshots, idempotency records, outboxes.
    State,
}

/// A call of [`crate::EventStore`] or [`crate::StateStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortCall {
    /// `append_batch` (or `append`): whether it carries events, and state writes.
    Append {
        /// Events to append.
        events: bool,
        /// State items to write in the same transaction.
        state: bool,
    },
    /// `EventStore::load`.
    Load,
    /// `EventStore::current_version`.
    CurrentVersion,
    /// `StateStore::get`.
    Get,
    /// `StateStore::put`.
    Put,
    /// `StateStore::delete` or `delete_version`.
    Delete,
    /// `StateStore::query` or `query_page`.
    Query,
}

impl PortCall {
    /// The call `append_batch(batch)` is.
    pub fn append(batch: &AppendBatch) -> PortCall {
        PortCall::Append {
            events: batch.streams.iter().any(|s| !s.events.is_empty()),
            state: !batch.state.is_empty(),
        }
    }

    /// Every IAM action the DynamoDB adapter may send for this call, on
    /// which table, on every path (a failed condition included: an append
    /// then reads the item it meant to write, `GetItem`, to recognise its
    /// own lost commit, and the stream's version, `Query`, to report the
    /// conflict).
    pub fn actions(self) -> Vec<(Table, &'static str)> {
        match self {
            PortCall::Append { events, state } => {
                let mut out = Vec::new();
                if events {
                    out.extend([
                        (Table::Events, "dynamodb:PutItem"),
                        (Table::Events, "dynamodb:GetItem"),
                        (Table::Events, "dynamodb:Query"),
                    ]);
                }
                if state {
                    out.push((Table::State, "dynamodb:PutItem"));
                }
                out
            }
            PortCall::Load | PortCall::CurrentVersion => vec![(Table::Events, "dynamodb:Query")],
            PortCall::Get => vec![(Table::State, "dynamodb:GetItem")],
            PortCall::Put => vec![(Table::State, "dynamodb:PutItem")],
            PortCall::Delete => vec![(Table::State, "dynamodb:DeleteItem")],
            PortCall::Query => vec![(Table::State, "dynamodb:Query")],
        }
    }
}
