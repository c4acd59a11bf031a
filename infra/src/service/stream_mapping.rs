//! Lambda's DynamoDB stream event source mapping, once for both modes.
//!
//! A [`StreamMapping`] reads batches of stream records from a
//! [`StreamReader`] (the local event log, or DynamoDB Streams shard by
//! shard), keeps those that pass the template's filter criteria, hands them
//! to the function ([`deliver`]: partial failures, bisect on error, retries
//! with the [`redelivery`] backoff), sends what it gives up on to the
//! on-failure destination, and only then commits the batch (the checkpoint):
//! a crash re-reads, never skips.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use storefront_publisher::{Bus, Publisher};
use storefront_template::model::StreamSource;
use storefront_template::{PatternRouter, RouterError};

use super::ServiceError;
use super::backoff::redelivery;

/// The records of one shard read in one go, and where they end.
#[derive(Debug, Clone)]
pub struct ShardBatch {
    /// The shard.
    pub shard: String,
    /// Every record read, as Lambda hands them to a function (unfiltered).
    pub records: Vec<EventRecord>,
    /// The position to commit once the batch is done (the last sequence number).
    pub last: String,
}

/// Where a stream mapping reads: the local event log or DynamoDB Streams.
#[async_trait]
pub trait StreamReader: Send + Sync {
    /// The stream's ARN (or the local log's name), for logs and on-failure records.
    fn stream(&self) -> &str;
    /// The next records after the committed position, up to `max` per shard.
    async fn read(&self, max: u32) -> Result<Vec<ShardBatch>, ServiceError>;
    /// Marks `batch` done: every record up to its last is handed on or given up on.
    async fn commit(&self, batch: &ShardBatch) -> Result<(), ServiceError>;
    /// Forgets read but uncommitted positions (after an error), so the next
    /// read starts again from the last commit.
    fn forget_uncommitted(&self);
    /// Moves the committed position back to the start of the stream.
    async fn rewind(&self) -> Result<(), ServiceError>;
    /// Sends an on-failure record to the mapping's destination, if it has one.
    async fn send_on_failure(&self, body: &serde_json::Value) -> Result<(), ServiceError>;
    /// Waits for new records after an empty read, at most `idle`.
    async fn idle(&self, idle: Duration);
    /// How many events the table holds, and how many records have been committed.
    async fn counts(&self) -> Result<super::control::EventCounts, ServiceError>;
    /// The local runtime's SQLite work so far; `None` for a real stream.
    fn sqlite(&self) -> Option<super::control::SqliteFiles> {
        None
    }
}

/// The function a stream mapping invokes.
#[async_trait]
pub trait StreamFunction: Send + Sync {
    /// One invocation; the response names the first failed record, if any.
    async fn invoke(&self, event: StreamEvent) -> Result<DynamoDbEventResponse, InvokeError>;
}

#[async_trait]
impl<B: Bus + Send + Sync> StreamFunction for Publisher<B> {
    async fn invoke(&self, event: StreamEvent) -> Result<DynamoDbEventResponse, InvokeError> {
        Ok(self.handle(event).await)
    }
}

/// The publisher's built `bootstrap`: the batch as the stream event Lambda
/// sends, its answer parsed as Lambda parses it.
#[async_trait]
impl StreamFunction for super::runtime_api::ProcessFunction {
    async fn invoke(&self, event: StreamEvent) -> Result<DynamoDbEventResponse, InvokeError> {
        let payload =
            serde_json::to_vec(&event).map_err(|e| InvokeError::Function(e.to_string()))?;
        let answer = super::runtime_api::ProcessFunction::invoke(self, &payload)
            .await
            .map_err(|e| InvokeError::Function(e.to_string()))?;
        serde_json::from_slice(&answer).map_err(|e| {
            InvokeError::Function(format!(
                "Runtime.InvalidResponse: the answer is not a batch response: {e}"
            ))
        })
    }
}

/// Why an invocation failed as a whole (not record by record).
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// It ran past the function's timeout.
    #[error("timed out after {} s", .0.as_secs())]
    Timeout(Duration),
    /// The function answered with an error (Lambda's `errorMessage`).
    #[error("{0}")]
    Function(String),
}

/// How a stream mapping retries a batch.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Split a batch whose invocation failed in two and retry each half.
    pub bisect_on_error: bool,
    /// Retries of a (sub-)batch before it goes to the on-failure destination; `None` retries forever.
    pub maximum_retry_attempts: Option<u32>,
    /// The first pause before a retry; later ones double (capped at 5 s).
    pub backoff: Duration,
}

/// The longest pause between two tries of a stream batch.
const MAX_STREAM_BACKOFF: Duration = Duration::from_secs(5);

/// Hands `records` to `invoke` the way Lambda's stream event source
/// mapping does, and returns the sub-batches it gave up on.
///
/// - The invocation answers with the first failed record
///   (ReportBatchItemFailures): everything before it is done, the rest is
///   retried from that record.
/// - The invocation fails as a whole (an error or a timeout): with
///   bisect-on-error the batch is split in two and each half retried on its
///   own, so one poisoned record ends up alone; otherwise the batch is
///   retried as it is.
/// - A (sub-)batch still failing after `maximum_retry_attempts` retries is
///   given up on (returned), so the shard moves on.
pub async fn deliver<F, Fut>(
    records: Vec<EventRecord>,
    policy: &RetryPolicy,
    mut invoke: F,
) -> Vec<Vec<EventRecord>>
where
    F: FnMut(Vec<EventRecord>) -> Fut,
    Fut: Future<Output = Result<DynamoDbEventResponse, InvokeError>>,
{
    let mut pending: VecDeque<(Vec<EventRecord>, u32)> = VecDeque::from([(records, 0)]);
    let mut given_up = Vec::new();
    while let Some((batch, retries)) = pending.pop_front() {
        if batch.is_empty() {
            continue;
        }
        let retry = match invoke(batch.clone()).await {
            Ok(response) => {
                if response.batch_item_failures.is_empty() {
                    continue;
                }
                // From the first reported record on; a failure without an
                // identifier fails the whole batch (Lambda's rule).
                let at = response
                    .batch_item_failures
                    .iter()
                    .find_map(|f| f.item_identifier.as_deref())
                    .and_then(|first| {
                        batch
                            .iter()
                            .position(|r| r.change.sequence_number.as_deref() == Some(first))
                    })
                    .unwrap_or(0);
                batch[at..].to_vec()
            }
            Err(error) => {
                tracing::warn!(%error, records = batch.len(), "stream batch invocation failed");
                if policy.bisect_on_error && batch.len() > 1 {
                    let (a, b) = batch.split_at(batch.len() / 2);
                    pending.push_front((b.to_vec(), retries + 1));
                    pending.push_front((a.to_vec(), retries + 1));
                    continue;
                }
                batch
            }
        };
        if policy
            .maximum_retry_attempts
            .is_some_and(|m| retries + 1 > m)
        {
            given_up.push(retry);
        } else {
            tokio::time::sleep(redelivery(policy.backoff, retries + 1, MAX_STREAM_BACKOFF)).await;
            pending.push_front((retry, retries + 1));
        }
    }
    given_up
}

/// Whether a record passes the mapping's filter criteria (any pattern; none means all pass).
pub fn passes(filters: Option<&PatternRouter>, record: &EventRecord) -> bool {
    let Some(filters) = filters else { return true };
    match serde_json::to_vec(record) {
        Ok(json) => filters.matches(&json).is_ok_and(|hits| !hits.is_empty()),
        Err(_) => false,
    }
}

/// A function's stream event source, as the template configures it.
pub struct StreamMapping {
    /// The function's logical id.
    pub function: String,
    /// The function's ARN, for the on-failure records.
    pub function_arn: Option<String>,
    /// The template's event source.
    pub source: StreamSource,
    /// How batches are retried.
    pub policy: RetryPolicy,
    /// The function's timeout: an invocation that takes longer failed.
    pub timeout: Duration,
    /// The shortest and longest wait between empty reads.
    pub idle: (Duration, Duration),
    filters: Option<PatternRouter>,
    reader: Arc<dyn StreamReader>,
    target: Arc<dyn StreamFunction>,
    rewind: AtomicBool,
}

impl StreamMapping {
    /// The mapping of `function` (its logical id, ARN and timeout) from its
    /// `source`, reading from `reader` and invoking `target`; a failed batch
    /// is retried after `retry_base`, doubling.
    pub fn new(
        function: &storefront_template::Function,
        function_arn: Option<String>,
        source: StreamSource,
        retry_base: Duration,
        reader: Arc<dyn StreamReader>,
        target: Arc<dyn StreamFunction>,
    ) -> Result<StreamMapping, RouterError> {
        let filters = if source.filters.is_empty() {
            None
        } else {
            let ids: Vec<String> = (0..source.filters.len())
                .map(|i| format!("filter-{i}"))
                .collect();
            Some(PatternRouter::new(
                ids.iter().map(String::as_str).zip(source.filters.iter()),
            )?)
        };
        Ok(StreamMapping {
            function: function.logical_id.clone(),
            function_arn,
            policy: RetryPolicy {
                bisect_on_error: source.bisect_on_error,
                maximum_retry_attempts: source.maximum_retry_attempts,
                backoff: retry_base,
            },
            timeout: Duration::from_secs(function.timeout.max(1)),
            idle: (Duration::from_millis(5), Duration::from_millis(50)),
            source,
            filters,
            reader,
            target,
            rewind: AtomicBool::new(false),
        })
    }

    /// The stream it reads.
    pub fn stream(&self) -> &str {
        self.reader.stream()
    }

    /// The SQLite work of the reader's runtime, if it has any.
    pub fn sqlite(&self) -> Option<super::control::SqliteFiles> {
        self.reader.sqlite()
    }

    /// Events stored and committed, as its reader counts them.
    pub async fn counts(&self) -> Result<super::control::EventCounts, ServiceError> {
        self.reader.counts().await
    }

    /// Reads and delivers until the task is aborted.
    pub async fn run(self: Arc<Self>) {
        let (shortest, longest) = self.idle;
        let mut idle = shortest;
        loop {
            if self.rewind.load(Ordering::SeqCst) {
                match self.reader.rewind().await {
                    Ok(()) => self.rewind.store(false, Ordering::SeqCst),
                    Err(e) => tracing::error!(error = %e, "stream mapping: rewind failed"),
                }
            }
            match self.once().await {
                Ok(0) => {
                    self.reader.idle(idle).await;
                    idle = (idle * 2).min(longest);
                }
                Ok(_) => idle = shortest,
                Err(e) => {
                    tracing::error!(error = %e, stream = self.stream(), "stream mapping stalled; retrying in 1 s (run `storefront verify` if this persists)");
                    self.reader.forget_uncommitted();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Reads, delivers and commits the next batches; returns how many records it moved past.
    pub async fn once(&self) -> Result<usize, ServiceError> {
        let mut moved = 0;
        for batch in self.reader.read(self.source.batch_size).await? {
            let records: Vec<EventRecord> = batch
                .records
                .iter()
                .filter(|r| passes(self.filters.as_ref(), r))
                .cloned()
                .collect();
            let given_up = deliver(records, &self.policy, |records| async {
                let mut event = StreamEvent::default();
                event.records = records;
                tokio::time::timeout(self.timeout, self.target.invoke(event))
                    .await
                    .map_err(|_| InvokeError::Timeout(self.timeout))?
            })
            .await;
            for failed in given_up {
                let body = self.on_failure_record(&batch.shard, &failed);
                tracing::error!(%body, "stream records given up on after every retry");
                self.reader.send_on_failure(&body).await?;
            }
            self.reader.commit(&batch).await?;
            moved += batch.records.len();
        }
        Ok(moved)
    }

    /// What Lambda sends to a stream mapping's on-failure destination: where
    /// the records are, not the records (they stay in the table).
    fn on_failure_record(&self, shard: &str, records: &[EventRecord]) -> serde_json::Value {
        let seq = |r: Option<&EventRecord>| r.and_then(|r| r.change.sequence_number.clone());
        serde_json::json!({
            "requestContext": {
                "functionArn": self.function_arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": self.policy.maximum_retry_attempts.map(|r| r + 1),
            },
            "version": "1.0",
            "timestamp": storefront_store::clock::now_rfc3339(),
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": seq(records.first()),
                "endSequenceNumber": seq(records.last()),
                "batchSize": records.len(),
                "streamArn": self.reader.stream(),
            }
        })
    }

    /// Moves the mapping back to the start of the stream: every event is
    /// published again (the duplicate-delivery drill). Answers once the
    /// mapping has taken the request, so a caller can then wait for it to
    /// catch up.
    pub async fn rewind(&self) -> Result<(), ServiceError> {
        self.rewind.store(true, Ordering::SeqCst);
        for _ in 0..1000 {
            if !self.rewind.load(Ordering::SeqCst) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(ServiceError::Timeout(
            "the stream mapping did not take the rewind within 10 s; see the runtime's log".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::streams::DynamoDbBatchItemFailure;
    use std::path::Path;
    use std::sync::Mutex;
    use storefront_publisher::image::insert_record;
    use storefront_template::Template;

    fn record(seq: u32) -> EventRecord {
        insert_record(format!("{seq:05}"), &Default::default())
    }

    fn seqs(batch: &[EventRecord]) -> Vec<String> {
        batch
            .iter()
            .filter_map(|r| r.change.sequence_number.clone())
            .collect()
    }

    fn policy(bisect: bool, retries: Option<u32>) -> RetryPolicy {
        RetryPolicy {
            bisect_on_error: bisect,
            maximum_retry_attempts: retries,
            backoff: Duration::from_millis(1),
        }
    }

    fn failing_at(seq: &str) -> DynamoDbEventResponse {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(seq.to_owned());
        let mut response = DynamoDbEventResponse::default();
        response.batch_item_failures = vec![failure];
        response
    }

    /// A reported failure retries from that record on, not the records before it.
    #[tokio::test]
    async fn partial_failure_retries_from_the_failed_record() {
        let calls = Mutex::new(Vec::new());
        let given_up = deliver((1..=5).map(record).collect(), &policy(true, Some(3)), |b| {
            let first_call = calls.lock().map(|c| c.is_empty()).unwrap_or(false);
            calls.lock().expect("calls").push(seqs(&b));
            async move {
                Ok(if first_call {
                    failing_at("00003")
                } else {
                    DynamoDbEventResponse::default()
                })
            }
        })
        .await;
        assert!(given_up.is_empty());
        assert_eq!(
            calls.into_inner().expect("calls"),
            vec![
                vec!["00001", "00002", "00003", "00004", "00005"],
                vec!["00003", "00004", "00005"],
            ]
        );
    }

    /// A function error bisects the batch until the poisoned record is alone;
    /// it is given up on after the retries, every other record is delivered.
    #[tokio::test]
    async fn function_error_bisects_down_to_the_poisoned_record() {
        let delivered = Mutex::new(Vec::new());
        let given_up = deliver(
            (1..=8).map(record).collect(),
            &policy(true, Some(10)),
            |b| {
                let poisoned = seqs(&b).iter().any(|s| s == "00006");
                if !poisoned {
                    delivered.lock().expect("delivered").extend(seqs(&b));
                }
                async move {
                    if poisoned {
                        Err(InvokeError::Function("boom".into()))
                    } else {
                        Ok(DynamoDbEventResponse::default())
                    }
                }
            },
        )
        .await;
        assert_eq!(
            given_up.iter().map(|b| seqs(b)).collect::<Vec<_>>(),
            vec![vec!["00006".to_owned()]]
        );
        let mut delivered = delivered.into_inner().expect("delivered");
        delivered.sort();
        assert_eq!(
            delivered,
            [
                "00001", "00002", "00003", "00004", "00005", "00007", "00008"
            ]
        );
    }

    /// A reported failure without an identifier fails the whole batch.
    #[tokio::test]
    async fn a_failure_without_identifier_retries_the_whole_batch() {
        let calls = Mutex::new(Vec::new());
        let given_up = deliver((1..=3).map(record).collect(), &policy(true, Some(1)), |b| {
            calls.lock().expect("calls").push(seqs(&b).len());
            async {
                let mut response = DynamoDbEventResponse::default();
                response.batch_item_failures = vec![DynamoDbBatchItemFailure::default()];
                Ok(response)
            }
        })
        .await;
        assert_eq!(calls.into_inner().expect("calls"), vec![3, 3]);
        assert_eq!(
            given_up.iter().map(|b| b.len()).collect::<Vec<_>>(),
            vec![3]
        );
    }

    /// Without bisect, a failing batch is retried whole, then given up on whole.
    #[tokio::test]
    async fn without_bisect_the_whole_batch_is_retried_then_given_up() {
        let calls = Mutex::new(0);
        let given_up = deliver(
            (1..=4).map(record).collect(),
            &policy(false, Some(2)),
            |_| {
                *calls.lock().expect("calls") += 1;
                async { Err(InvokeError::Function("boom".into())) }
            },
        )
        .await;
        assert_eq!(
            calls.into_inner().expect("calls"),
            3,
            "first try + 2 retries"
        );
        assert_eq!(given_up.len(), 1);
        assert_eq!(seqs(&given_up[0]).len(), 4);
    }

    /// The template's filter lets event inserts through, not removals nor stray items.
    #[test]
    fn the_templates_filter_passes_only_event_inserts() {
        let template = Template::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../template.yaml"
        )))
        .expect("template");
        let source = &template
            .functions
            .values()
            .find(|f| f.binary == "storefront-publisher")
            .expect("publisher")
            .streams[0];
        let patterns =
            PatternRouter::new(source.filters.iter().map(|p| ("f", p))).expect("patterns");
        let mut item = std::collections::HashMap::new();
        item.insert(
            "eventType".to_owned(),
            aws_sdk_dynamodb::types::AttributeValue::S("cart.created".into()),
        );
        let insert = insert_record("1", &item);
        assert!(passes(Some(&patterns), &insert));
        let mut remove = insert.clone();
        remove.event_name = "REMOVE".into();
        assert!(!passes(Some(&patterns), &remove));
        let stray = insert_record("2", &Default::default());
        assert!(!passes(Some(&patterns), &stray));
        assert!(passes(None, &stray), "no filter: everything passes");
    }
}
