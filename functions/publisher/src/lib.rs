//! # storefront-publisher
//!
//! The bridge between the event store and everything that reacts to events
//! (DESIGN §1, §5). Every event the API or a handler appends to EventsTable
//! shows up on the table's DynamoDB stream as an `INSERT`; this function
//! reads those records and puts each event on the EventBridge bus, where one
//! rule per handler routes it to that handler's queue.
//!
//! Why a separate function rather than writers calling EventBridge
//! themselves: the append is the only write a command makes, so an event is
//! either stored *and* (eventually) published, or neither. The stream is the
//! outbox.
//!
//! ## What it does with a batch
//! 1. Each `INSERT` record's new image is an events-table item; it is decoded
//!    with the store's own decoder, which verifies the checksum. Records
//!    that are not `INSERT`s, or whose image has no `eventType`, are not
//!    events and are ignored (the event source mapping's filter already
//!    keeps them out on AWS).
//! 2. Each event becomes an [`Entry`]: `Source` = `storefront.{aggregateType}`,
//!    `DetailType` = eventType, `Detail` = the envelope as JSON, and
//!    `TraceHeader` = the invocation's X-Ray trace header, so a trace runs
//!    from the publisher through the bus to the handlers.
//! 3. Entries go to the [`Bus`] in calls of at most 10 entries and 256 KB;
//!    entries the bus refuses for a reason that may pass (throttling, an
//!    internal failure), and calls that fail whole, are retried with
//!    exponential backoff.
//! 4. Whatever still failed (an undecodable item, an entry too large ever to
//!    be put, an entry the bus kept refusing) is reported as ONE batch item
//!    failure: the sequence number of the first failed record in stream
//!    order. Lambda then retries the batch from that record, so nothing after
//!    it is skipped; after `MaximumRetryAttempts` the mapping sends the
//!    batch's description to the OnFailure DLQ. Records after the failed one
//!    that were published are published again on the retry: consumers dedupe
//!    by eventId.
//!
//! ## Layout
//! - [`bus`]: the [`Bus`] port, [`Entry`] and its size rule, and the
//!   EventBridge adapter [`EventBridgeBus`].
//! - [`image`]: stream images ⇄ events-table items.
//! - this file: [`Publisher`], the batch logic above, generic over the bus.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bus;
pub mod image;

use std::time::Duration;

// `Event` would clash with the domain's; this is the stream batch Lambda sends.
use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use storefront_domain::EventEnvelope;
use storefront_runtime::{Config, ConfigError, Globals};
use storefront_store::StoreError;
use thiserror::Error;

pub use bus::{
    Bus, BusError, Entry, EntryResult, EventBridgeBus, MAX_ENTRIES_PER_CALL, MAX_REQUEST_BYTES,
};

/// Everything the publisher function reads from its environment. No
/// `Default`: there is no bus to assume.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// What every function gets (`SNAPSHOT_EVERY`, the log level and format).
    pub globals: Globals,
    /// `EVENT_BUS_NAME` (required): the bus every event is put on. Only the
    /// publisher reads it, so template.yaml sets it on this function alone.
    pub event_bus_name: String,
}

impl Settings {
    /// Reads the globals and `EVENT_BUS_NAME`.
    pub fn from_config(config: &Config) -> Result<Settings, ConfigError> {
        Ok(Settings {
            globals: Globals::from_config(config)?,
            event_bus_name: config.bus_name()?.to_owned(),
        })
    }
}

/// Why a record was not published. Every kind is reported the same way (a
/// batch item failure); the kind tells the logs and the `PublishFailures`
/// metric why.
#[derive(Debug, Error)]
pub enum RecordError {
    /// The image is not a valid event item, or its checksum does not match:
    /// it will fail every time, and ends in the DLQ.
    #[error("not a valid event item: {0}")]
    Decode(#[from] StoreError),
    /// The envelope did not serialize to JSON.
    #[error("envelope does not serialize: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The entry alone is larger than a `PutEvents` call may be: it can never
    /// be put, so AWS is not asked.
    #[error("entry is {size} bytes; a PutEvents call takes at most {MAX_REQUEST_BYTES}")]
    TooLarge {
        /// The entry's size as EventBridge counts it.
        size: usize,
    },
    /// The bus still refused the entry (or the whole call failed) after every retry.
    #[error("not published after {attempts} attempts: {last}")]
    NotPublished {
        /// Calls made for it.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

impl RecordError {
    /// A short, fixed label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            RecordError::Decode(_) => "decode",
            RecordError::Serialize(_) => "serialize",
            RecordError::TooLarge { .. } => "too_large",
            RecordError::NotPublished { .. } => "not_published",
        }
    }
}

/// How failed entries and failed calls are retried: after the first try,
/// up to `max_retries` more, waiting `base_delay`, then twice that, and so on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub max_retries: u32,
    /// The wait before the first retry; each later wait doubles.
    pub base_delay: Duration,
}

impl Default for RetryPolicy {
    /// 3 retries after 50, 100 and 200 ms: EventBridge's failed entries are
    /// mostly throttling and transient internal errors, which clear within
    /// that; what does not is retried by the event source mapping.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(50),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based).
    pub fn delay(&self, retry: u32) -> Duration {
        self.base_delay.saturating_mul(1u32 << retry.min(16))
    }
}

/// What happened to one batch.
#[derive(Debug, Default)]
pub struct Report {
    /// Events put on the bus.
    pub published: usize,
    /// Records that are not event inserts.
    pub ignored: usize,
    /// Records not published, by index in the batch, in stream order.
    pub failed: Vec<(usize, RecordError)>,
    /// The sequence number of the first failed record, if any failed.
    pub first_failed_sequence_number: Option<String>,
}

impl Report {
    /// The answer for Lambda (`ReportBatchItemFailures`): nothing when all
    /// went well, else one item naming the first failed record, so the
    /// mapping retries from there and skips nothing after it.
    pub fn response(&self) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        if !self.failed.is_empty() {
            // A missing sequence number (never the case on AWS) becomes an
            // empty identifier, which Lambda treats as "the whole batch
            // failed": a retry of everything, never a silent skip.
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(
                self.first_failed_sequence_number
                    .clone()
                    .unwrap_or_default(),
            );
            response.batch_item_failures.push(failure);
        }
        response
    }
}

/// An entry waiting to be put, with the record it came from.
#[derive(Debug, Clone)]
struct Pending {
    /// The record's index in the batch.
    index: usize,
    entry: Entry,
    event_id: String,
    correlation_id: String,
}

/// Publishes DynamoDB stream batches of event inserts to a [`Bus`].
#[derive(Debug, Clone)]
pub struct Publisher<B> {
    bus: B,
    retry: RetryPolicy,
}

impl<B: Bus> Publisher<B> {
    /// A publisher with the default [`RetryPolicy`].
    pub fn new(bus: B) -> Self {
        Publisher {
            bus,
            retry: RetryPolicy::default(),
        }
    }

    /// Replaces the retry policy (tests use zero delays).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The bus.
    pub fn bus(&self) -> &B {
        &self.bus
    }

    /// Publishes a batch and answers Lambda with the first failed record,
    /// if any (entries without a trace header: the local runtime).
    pub async fn handle(&self, event: StreamEvent) -> DynamoDbEventResponse {
        self.handle_traced(event, None).await
    }

    /// [`Publisher::handle`] for a Lambda invocation: `trace_header` is its
    /// X-Ray trace header (the context's `xray_trace_id`), put on every
    /// entry as its `TraceHeader`.
    pub async fn handle_traced(
        &self,
        event: StreamEvent,
        trace_header: Option<&str>,
    ) -> DynamoDbEventResponse {
        self.publish_traced(&event.records, trace_header)
            .await
            .response()
    }

    /// Publishes a batch of stream records and says what happened to each
    /// (entries without a trace header: republishing, the local runtime).
    pub async fn publish(&self, records: &[EventRecord]) -> Report {
        self.publish_traced(records, None).await
    }

    /// [`Publisher::publish`], every entry carrying `trace_header` as its
    /// `TraceHeader`.
    pub async fn publish_traced(
        &self,
        records: &[EventRecord],
        trace_header: Option<&str>,
    ) -> Report {
        let mut report = Report::default();
        let mut pending = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            match prepare(index, record, trace_header) {
                Ok(None) => report.ignored += 1,
                Ok(Some(p)) => pending.push(p),
                Err(e) => report.failed.push((index, e)),
            }
        }
        // An entry over the request limit can never be put: fail it here
        // rather than have EventBridge refuse the call it would be in.
        let (fits, too_large): (Vec<Pending>, Vec<Pending>) = pending
            .into_iter()
            .partition(|p| p.entry.size() <= MAX_REQUEST_BYTES);
        for p in too_large {
            let size = p.entry.size();
            report
                .failed
                .push((p.index, RecordError::TooLarge { size }));
        }
        // Calls go one after another: EventBridge gives no order anyway, and
        // a 100-record batch is ten calls, which keeps a throttled bus from
        // being hit by all of them at once.
        for chunk in chunks(fits) {
            let (published, failed) = self.put_with_retries(chunk).await;
            report.published += published;
            report.failed.extend(failed);
        }
        report.failed.sort_by_key(|(index, _)| *index);
        for (index, error) in &report.failed {
            let record = &records[*index];
            let image = &record.change.new_image;
            let text = |name: &str| match image.get(name) {
                Some(serde_dynamo::AttributeValue::S(s)) => s.as_str(),
                _ => "",
            };
            tracing::error!(
                sequenceNumber = record.change.sequence_number.as_deref().unwrap_or_default(),
                eventId = text("eventId"),
                eventType = text("eventType"),
                correlationId = text("correlationId"),
                error = %error,
                "event not published",
            );
            metrics::counter!("PublishFailures", "reason" => error.reason()).increment(1);
        }
        report.first_failed_sequence_number = report
            .failed
            .first()
            .and_then(|(index, _)| records[*index].change.sequence_number.clone());
        tracing::info!(
            records = records.len(),
            published = report.published,
            ignored = report.ignored,
            failed = report.failed.len(),
            firstFailedSequenceNumber = report.first_failed_sequence_number.as_deref(),
            "batch done",
        );
        report
    }

    /// Puts one chunk, retrying refused entries (unless the refusal is
    /// permanent) and failed calls. Returns the number published and the
    /// records that never were.
    async fn put_with_retries(&self, chunk: Vec<Pending>) -> (usize, Vec<(usize, RecordError)>) {
        let mut published = 0;
        let mut failed = Vec::new();
        let mut remaining = chunk;
        let mut retry = 0;
        loop {
            let entries: Vec<Entry> = remaining.iter().map(|p| p.entry.clone()).collect();
            let failures: Vec<(Pending, String)> = match self.bus.put_events(&entries).await {
                Ok(results) if results.len() == remaining.len() => {
                    let mut failures = Vec::new();
                    for (p, result) in remaining.into_iter().zip(results) {
                        match result {
                            EntryResult::Published { .. } => {
                                published += 1;
                                tracing::debug!(
                                    eventId = %p.event_id,
                                    eventType = %p.entry.detail_type,
                                    correlationId = %p.correlation_id,
                                    "published",
                                );
                                metrics::counter!("EventsPublished", "eventType" => p.entry.detail_type.clone())
                                    .increment(1);
                            }
                            EntryResult::Failed { code, message } => {
                                let last = format!("{code}: {message}");
                                if bus::is_retryable(&code) {
                                    failures.push((p, last));
                                } else {
                                    // Would fail the same way again: no retry
                                    // here (the mapping's retries still apply).
                                    let attempts = retry + 1;
                                    failed.push((
                                        p.index,
                                        RecordError::NotPublished { attempts, last },
                                    ));
                                }
                            }
                        }
                    }
                    failures
                }
                Ok(results) => {
                    let why = BusError::ResultCount {
                        sent: remaining.len(),
                        answered: results.len(),
                    }
                    .to_string();
                    remaining.into_iter().map(|p| (p, why.clone())).collect()
                }
                Err(e) => {
                    let why = e.to_string();
                    remaining.into_iter().map(|p| (p, why.clone())).collect()
                }
            };
            if failures.is_empty() {
                return (published, failed);
            }
            if retry >= self.retry.max_retries {
                let attempts = retry + 1;
                failed.extend(
                    failures
                        .into_iter()
                        .map(|(p, last)| (p.index, RecordError::NotPublished { attempts, last })),
                );
                return (published, failed);
            }
            tracing::warn!(
                entries = failures.len(),
                retry = retry + 1,
                error = %failures[0].1,
                "PutEvents failed for some entries; retrying",
            );
            tokio::time::sleep(self.retry.delay(retry)).await;
            retry += 1;
            remaining = failures.into_iter().map(|(p, _)| p).collect();
        }
    }
}

/// The entry for a record, `None` if the record is not an event insert.
fn prepare(
    index: usize,
    record: &EventRecord,
    trace_header: Option<&str>,
) -> Result<Option<Pending>, RecordError> {
    if record.event_name != "INSERT" || !record.change.new_image.contains_key("eventType") {
        return Ok(None);
    }
    let item = image::image_to_item(&record.change.new_image);
    let envelope: EventEnvelope = storefront_store::dynamodb::item_to_event(&item)?;
    Ok(Some(Pending {
        index,
        entry: Entry::from_envelope(&envelope)?.traced(trace_header),
        event_id: envelope.event_id,
        correlation_id: envelope.correlation_id,
    }))
}

/// Splits entries, in order, into calls of at most [`MAX_ENTRIES_PER_CALL`]
/// entries and [`MAX_REQUEST_BYTES`] bytes. Every entry must fit alone.
fn chunks(entries: Vec<Pending>) -> Vec<Vec<Pending>> {
    let mut chunks: Vec<Vec<Pending>> = Vec::new();
    let mut current: Vec<Pending> = Vec::new();
    let mut bytes = 0;
    for p in entries {
        let size = p.entry.size();
        if !current.is_empty()
            && (current.len() == MAX_ENTRIES_PER_CALL || bytes + size > MAX_REQUEST_BYTES)
        {
            chunks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(p);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests;
