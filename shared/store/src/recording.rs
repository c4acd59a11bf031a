//! A view of a store that counts every port call it passes on: the
//! instrument behind the least-privilege test (which calls a function
//! makes, hence which IAM actions it needs) and behind benchmarks that
//! report store calls (each SQLite port call is one trip to the database
//! thread; on DynamoDB each is one request, a page of a query included).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use storefront_domain::{EventEnvelope, StreamId};

use crate::iam::{PortCall, Table};
use crate::{AppendBatch, EventStore, Page, StateItem, StateStore, StateWrite, StoreError};

/// Both ports of a store, each call counted by kind.
pub struct Recording {
    events: Arc<dyn EventStore>,
    state: Arc<dyn StateStore>,
    calls: Mutex<BTreeMap<PortCall, u64>>,
}

impl Recording {
    /// Counts the calls made through it to `events` and `state`.
    pub fn new(events: Arc<dyn EventStore>, state: Arc<dyn StateStore>) -> Arc<Recording> {
        Arc::new(Recording {
            events,
            state,
            calls: Mutex::default(),
        })
    }

    fn note(&self, call: PortCall) {
        // A panic elsewhere while counting leaves a count, not a broken map.
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        *calls.entry(call).or_default() += 1;
    }

    /// How many calls of each kind went through so far.
    pub fn calls(&self) -> BTreeMap<PortCall, u64> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every call so far.
    pub fn total(&self) -> u64 {
        self.calls().values().sum()
    }

    /// The (table, IAM action) pairs the calls so far need on DynamoDB.
    pub fn needs(&self) -> BTreeSet<(Table, &'static str)> {
        self.calls().keys().flat_map(|c| c.actions()).collect()
    }
}

#[async_trait]
impl EventStore for Recording {
    async fn append_batch(&self, batch: AppendBatch) -> Result<(), StoreError> {
        self.note(PortCall::append(&batch));
        self.events.append_batch(batch).await
    }

    async fn load(
        &self,
        stream: &StreamId,
        after_version: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        self.note(PortCall::Load);
        self.events.load(stream, after_version).await
    }

    async fn current_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.note(PortCall::CurrentVersion);
        self.events.current_version(stream).await
    }
}

#[async_trait]
impl StateStore for Recording {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<StateItem>, StoreError> {
        self.note(PortCall::Get);
        self.state.get(pk, sk).await
    }

    async fn put(&self, write: StateWrite) -> Result<(), StoreError> {
        self.note(PortCall::Put);
        self.state.put(write).await
    }

    async fn delete(&self, pk: &str, sk: &str) -> Result<(), StoreError> {
        self.note(PortCall::Delete);
        self.state.delete(pk, sk).await
    }

    async fn query(&self, pk: &str) -> Result<Vec<StateItem>, StoreError> {
        self.note(PortCall::Query);
        self.state.query(pk).await
    }

    async fn query_page(
        &self,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.note(PortCall::Query);
        self.state.query_page(pk, after, limit).await
    }

    async fn delete_version(&self, pk: &str, sk: &str, version: u64) -> Result<bool, StoreError> {
        self.note(PortCall::Delete);
        self.state.delete_version(pk, sk, version).await
    }
}
