//! The local stand-in for the events table's DynamoDB stream and the bus.
//!
//! - [`LogReader`]: the stream, read from the SQLite event log in global
//!   order; each event becomes the record DynamoDB would write. Its commit
//!   enqueues the messages the bus routed for the batch and advances the
//!   feed cursor in one transaction, so a crash can neither lose nor double
//!   an event on its way to the queues.
//! - [`LocalBus`]: the bus the publisher's own code puts to, routing each
//!   entry through the template's rules (quamina) to the rules' target queues.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::EventRecord;
use storefront_publisher::image::insert_record;
use storefront_publisher::{Bus, BusError, Entry, EntryResult};
use storefront_store::dynamodb::event_to_item;
use storefront_store::sqlite::SqliteStore;
use storefront_store::{EventLog, LoggedEvent};
use storefront_template::router::eventbridge_event;
use storefront_template::{PatternRouter, Template};

use super::queues::{QueueError, Queues};
use crate::service::ServiceError;
use crate::service::control::{EventCounts, SqliteFiles};
use crate::service::function::Faults;
use crate::service::stream_mapping::{ShardBatch, StreamReader};

/// The queue file's cursor that says how far the log has been published.
pub const FEED_CURSOR: &str = "publisher";

/// A message the bus routed: (queue, message id, body).
type RoutedMessage = (String, String, String);

/// Messages routed for the batch being delivered, shared by the bus that
/// fills them and the reader that enqueues them on commit.
type Routed = Arc<Mutex<Vec<RoutedMessage>>>;

/// The fault-switch name that makes the local bus refuse every entry (the
/// drill of a publish that fails until the stream mapping gives up).
pub const PUBLISHER_FAULT: &str = "publisher";

/// The local bus: routes each entry through the template's rules and
/// collects the messages for their target queues.
pub struct LocalBus {
    rules: PatternRouter,
    targets: HashMap<String, Vec<String>>,
    routed: Routed,
    faults: Faults,
}

impl LocalBus {
    /// A bus with the template's `rules`; `targets` gives each rule's
    /// queues; with [`PUBLISHER_FAULT`] in `faults` it refuses every entry.
    pub fn new(
        rules: PatternRouter,
        targets: HashMap<String, Vec<String>>,
        faults: Faults,
    ) -> LocalBus {
        LocalBus {
            rules,
            targets,
            routed: Routed::default(),
            faults,
        }
    }

    /// The bus of `template`'s rules.
    pub fn of(template: &Template, rules: PatternRouter, faults: Faults) -> LocalBus {
        let targets = template
            .rules
            .values()
            .map(|r| (r.logical_id.clone(), r.targets.clone()))
            .collect();
        LocalBus::new(rules, targets, faults)
    }

    /// The messages routed since the last call: (queue, message id, body).
    pub fn take_routed(&self) -> Vec<(String, String, String)> {
        std::mem::take(&mut *self.routed.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn faulty(&self) -> bool {
        self.faults
            .lock()
            .map(|f| f.contains(PUBLISHER_FAULT))
            .unwrap_or(false)
    }
}

/// The stream record DynamoDB would write for a logged event.
pub fn log_record(logged: &LoggedEvent) -> EventRecord {
    insert_record(
        format!("{:020}", logged.position),
        &event_to_item(&logged.envelope),
    )
}

#[async_trait]
impl Bus for LocalBus {
    async fn put_events(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, BusError> {
        let mut results = Vec::with_capacity(entries.len());
        if self.faulty() {
            return Ok(entries
                .iter()
                .map(|_| EntryResult::Failed {
                    code: "InternalFailure".into(),
                    message: "fault injected by the local runtime's test switch".into(),
                })
                .collect());
        }
        for entry in entries {
            let detail: serde_json::Value = match serde_json::from_str(&entry.detail) {
                Ok(d) => d,
                Err(e) => {
                    results.push(EntryResult::Failed {
                        code: "MalformedDetail".into(),
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            let event_id = detail["eventId"].as_str().unwrap_or_default().to_owned();
            let time = detail["occurredAt"].as_str().unwrap_or_default().to_owned();
            let event =
                eventbridge_event(&event_id, &entry.source, &entry.detail_type, &time, &detail);
            let body = event.to_string();
            let rules = self
                .rules
                .matches_event(&event)
                .map_err(|e| BusError::Call(e.to_string()))?;
            let mut routed = self.routed.lock().unwrap_or_else(|p| p.into_inner());
            for rule in rules {
                for queue in self.targets.get(rule).into_iter().flatten() {
                    routed.push((queue.clone(), format!("{event_id}/{queue}"), body.clone()));
                }
            }
            results.push(EntryResult::Published {
                event_id: Some(event_id),
            });
        }
        Ok(results)
    }
}

/// The SQLite event log as a one-shard stream.
pub struct LogReader {
    store: SqliteStore,
    queues: Queues,
    routed: Routed,
    on_failure: Option<String>,
    appended: Arc<tokio::sync::Notify>,
}

impl LogReader {
    /// Reads `store`'s log, enqueues into `queues` what `bus` routes, and
    /// sends on-failure records to the local queue `on_failure`.
    pub fn new(
        store: SqliteStore,
        queues: Queues,
        bus: &LocalBus,
        on_failure: Option<String>,
    ) -> LogReader {
        LogReader {
            appended: store.appended(),
            store,
            queues,
            routed: bus.routed.clone(),
            on_failure,
        }
    }

    fn error(operation: &'static str) -> impl FnOnce(QueueError) -> ServiceError {
        move |e| ServiceError::Stream {
            stream: LOG.to_owned(),
            operation,
            source: Box::new(e),
        }
    }

    fn store_error(
        operation: &'static str,
    ) -> impl FnOnce(storefront_store::StoreError) -> ServiceError {
        move |e| ServiceError::Stream {
            stream: LOG.to_owned(),
            operation,
            source: Box::new(e),
        }
    }
}

const LOG: &str = "local event log";
const SHARD: &str = "local";

#[async_trait]
impl StreamReader for LogReader {
    fn stream(&self) -> &str {
        LOG
    }

    async fn read(&self, max: u32) -> Result<Vec<ShardBatch>, ServiceError> {
        let cursor = self
            .queues
            .call(move |q| q.cursor(FEED_CURSOR))
            .await
            .map_err(Self::error("cursor"))?;
        let page = self
            .store
            .read_after(cursor, max as usize)
            .await
            .map_err(Self::store_error("read"))?;
        let Some(last) = page.last() else {
            return Ok(vec![]);
        };
        self.routed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(vec![ShardBatch {
            shard: SHARD.to_owned(),
            last: last.position.to_string(),
            records: page.iter().map(log_record).collect(),
        }])
    }

    async fn commit(&self, batch: &ShardBatch) -> Result<(), ServiceError> {
        let position: u64 = batch.last.parse().map_err(|_| ServiceError::Stream {
            stream: LOG.to_owned(),
            operation: "commit",
            source: format!("{:?} is not a log position", batch.last).into(),
        })?;
        let messages = std::mem::take(&mut *self.routed.lock().unwrap_or_else(|p| p.into_inner()));
        self.queues
            .call(move |q| q.enqueue_and_advance(&messages, FEED_CURSOR, position))
            .await
            .map_err(Self::error("commit"))
    }

    fn forget_uncommitted(&self) {
        // Every read starts at the committed cursor.
    }

    async fn rewind(&self) -> Result<(), ServiceError> {
        self.queues
            .call(move |q| q.enqueue_and_advance(&[], FEED_CURSOR, 0))
            .await
            .map_err(Self::error("rewind"))
    }

    async fn send_on_failure(&self, body: &serde_json::Value) -> Result<(), ServiceError> {
        let Some(queue) = self.on_failure.clone() else {
            return Ok(());
        };
        let info = &body["DDBStreamBatchInfo"];
        let id = format!(
            "{}-{}",
            info["startSequenceNumber"].as_str().unwrap_or_default(),
            info["endSequenceNumber"].as_str().unwrap_or_default()
        );
        let body = body.to_string();
        self.queues
            .call(move |q| q.send(&queue, &id, &body))
            .await
            .map_err(Self::error("on-failure destination"))
    }

    async fn idle(&self, idle: Duration) {
        // Woken by an append of this process; the timer is for appends by
        // another one (an operator's command).
        let _ = tokio::time::timeout(idle, self.appended.notified()).await;
    }

    fn sqlite(&self) -> Option<SqliteFiles> {
        Some(SqliteFiles {
            events_db: self.store.counts(),
            queues_db: self.queues.counts(),
        })
    }

    async fn counts(&self) -> Result<EventCounts, ServiceError> {
        let mut counts = EventCounts::default();
        loop {
            let page = self
                .store
                .read_after(counts.last_position, 5000)
                .await
                .map_err(Self::store_error("count"))?;
            let Some(last) = page.last() else { break };
            counts.last_position = last.position;
            counts.events += page.len() as u64;
            counts.appended_by_requests += page
                .iter()
                .filter(|l| !l.envelope.actor.starts_with("system:"))
                .count() as u64;
        }
        counts.published = self
            .queues
            .call(move |q| q.cursor(FEED_CURSOR))
            .await
            .map_err(Self::error("cursor"))?;
        Ok(counts)
    }
}
