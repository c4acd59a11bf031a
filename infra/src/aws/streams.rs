//! The events table's DynamoDB stream as a [`StreamReader`]: shards and
//! iterators from DynamoDB Streams, records turned into the ones Lambda
//! hands a function, and the mapping's checkpoint (last sequence number per
//! shard) in the data folder, as Lambda keeps a mapping's position across
//! invocations.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::EventRecord;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use serde::{Deserialize, Serialize};
use storefront_publisher::image::insert_record;
use storefront_store::dynamodb::{DynamoStore, item_to_event};

use crate::service::control::EventCounts;
use crate::service::stream_mapping::{ShardBatch, StreamReader};
use crate::service::{AwsCallError, ServiceError};

/// Why a checkpoint file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds something else.
    #[error(
        "{path} is not a stream checkpoint ({source}); delete it to start from the stream's trim horizon"
    )]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// Where the publisher's stream mapping stands, kept in the data folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// The stream the positions belong to (a new table means a new stream).
    pub stream_arn: String,
    /// Shard id → the last sequence number handed on (or given up on).
    pub shards: BTreeMap<String, String>,
    /// Records moved past since the stream's start.
    pub records: u64,
}

impl Checkpoint {
    /// Reads the checkpoint of `stream_arn` from `path`; a missing file or
    /// another stream's checkpoint starts from the stream's trim horizon.
    pub fn load(path: &Path, stream_arn: &str) -> Result<Checkpoint, CheckpointError> {
        let fresh = Checkpoint {
            stream_arn: stream_arn.to_owned(),
            ..Checkpoint::default()
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let saved: Checkpoint = serde_json::from_slice(&bytes).map_err(|source| {
                    CheckpointError::Malformed {
                        path: path.to_owned(),
                        source,
                    }
                })?;
                Ok(if saved.stream_arn == stream_arn {
                    saved
                } else {
                    fresh
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(fresh),
            Err(source) => Err(CheckpointError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Writes the checkpoint atomically (a temporary file renamed over it).
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io {
            path: path.to_owned(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(tmp, path).map_err(io)
    }
}

/// A shard id → its next iterator (`None` once the shard is closed).
type Iterators = BTreeMap<String, Option<String>>;

/// The events table's stream on DynamoDB Streams.
pub struct StreamsReader {
    streams: aws_sdk_dynamodbstreams::Client,
    sqs: aws_sdk_sqs::Client,
    store: DynamoStore,
    stream_arn: String,
    region: String,
    on_failure: Option<String>,
    checkpoint_path: PathBuf,
    checkpoint: Mutex<Checkpoint>,
    iterators: tokio::sync::Mutex<Iterators>,
}

impl StreamsReader {
    /// Reads `stream_arn` from the checkpoint at `checkpoint_path`; the
    /// on-failure records go to the SQS queue at `on_failure`.
    pub fn new(
        sdk: &storefront_runtime::aws::SdkConfig,
        store: DynamoStore,
        stream_arn: String,
        region: String,
        on_failure: Option<String>,
        checkpoint_path: PathBuf,
    ) -> Result<StreamsReader, CheckpointError> {
        let checkpoint = Checkpoint::load(&checkpoint_path, &stream_arn)?;
        Ok(StreamsReader {
            streams: aws_sdk_dynamodbstreams::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            store,
            stream_arn,
            region,
            on_failure,
            checkpoint_path,
            checkpoint: Mutex::new(checkpoint),
            iterators: tokio::sync::Mutex::default(),
        })
    }

    fn error(&self, operation: &'static str, e: AwsCallError) -> ServiceError {
        ServiceError::Stream {
            stream: self.stream_arn.clone(),
            operation,
            source: Box::new(e),
        }
    }

    fn checkpoint(&self) -> std::sync::MutexGuard<'_, Checkpoint> {
        self.checkpoint.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An iterator for every shard, after its checkpoint (or at its trim horizon).
    async fn describe(&self, iterators: &mut Iterators) -> Result<(), ServiceError> {
        let mut start: Option<String> = None;
        loop {
            let described = self
                .streams
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start.clone())
                .send()
                .await
                .map_err(|e| self.error("DescribeStream", AwsCallError::new(e)))?;
            let Some(description) = described.stream_description else {
                return Ok(());
            };
            for shard in description.shards() {
                let Some(id) = shard.shard_id() else { continue };
                let after = self.checkpoint().shards.get(id).cloned();
                let request = self
                    .streams
                    .get_shard_iterator()
                    .stream_arn(&self.stream_arn)
                    .shard_id(id);
                let request = match after {
                    Some(seq) => request
                        .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                        .sequence_number(seq),
                    None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
                };
                let iterator = request
                    .send()
                    .await
                    .map_err(|e| self.error("GetShardIterator", AwsCallError::new(e)))?
                    .shard_iterator;
                iterators.insert(id.to_owned(), iterator);
            }
            start = description.last_evaluated_shard_id().map(str::to_owned);
            if start.is_none() {
                return Ok(());
            }
        }
    }
}

/// A DynamoDB Streams record as the record Lambda hands the function.
pub fn lambda_record(
    record: &aws_sdk_dynamodbstreams::types::Record,
    stream_arn: &str,
    region: &str,
) -> Option<EventRecord> {
    use aws_sdk_dynamodb::types::AttributeValue as D;
    use aws_sdk_dynamodbstreams::types::AttributeValue as S;
    let change = record.dynamodb()?;
    let image: HashMap<String, D> = change
        .new_image()
        .map(|image| {
            image
                .iter()
                .filter_map(|(k, v)| {
                    let v = match v {
                        S::S(s) => D::S(s.clone()),
                        S::N(n) => D::N(n.clone()),
                        _ => return None,
                    };
                    Some((k.clone(), v))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = insert_record(change.sequence_number()?.to_owned(), &image);
    out.event_name = record
        .event_name()
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default();
    if let Some(id) = record.event_id() {
        out.event_id = id.to_owned();
    }
    out.event_source_arn = Some(stream_arn.to_owned());
    out.aws_region = region.to_owned();
    Some(out)
}

#[async_trait]
impl StreamReader for StreamsReader {
    fn stream(&self) -> &str {
        &self.stream_arn
    }

    async fn read(&self, max: u32) -> Result<Vec<ShardBatch>, ServiceError> {
        let mut iterators = self.iterators.lock().await;
        if iterators.is_empty() {
            self.describe(&mut iterators).await?;
        }
        let mut batches = Vec::new();
        let mut closed = false;
        for (shard, iterator) in iterators.iter_mut() {
            let Some(current) = iterator.clone() else {
                closed = true;
                continue;
            };
            let page = self
                .streams
                .get_records()
                .shard_iterator(current)
                .limit(i32::try_from(max).unwrap_or(100))
                .send()
                .await
                .map_err(|e| self.error("GetRecords", AwsCallError::new(e)))?;
            *iterator = page.next_shard_iterator.clone();
            let records = page.records();
            let Some(last) = records
                .last()
                .and_then(|r| r.dynamodb())
                .and_then(|c| c.sequence_number())
                .map(str::to_owned)
            else {
                continue;
            };
            batches.push(ShardBatch {
                shard: shard.clone(),
                records: records
                    .iter()
                    .filter_map(|r| lambda_record(r, &self.stream_arn, &self.region))
                    .collect(),
                last,
            });
        }
        if closed && batches.is_empty() {
            // A closed shard: describe the stream again to pick up its children.
            iterators.retain(|_, i| i.is_some());
        }
        Ok(batches)
    }

    async fn commit(&self, batch: &ShardBatch) -> Result<(), ServiceError> {
        let mut c = self.checkpoint();
        c.shards.insert(batch.shard.clone(), batch.last.clone());
        c.records += batch.records.len() as u64;
        c.save(&self.checkpoint_path)
            .map_err(|e| ServiceError::Checkpoint {
                path: self.checkpoint_path.display().to_string(),
                source: Box::new(e),
            })
    }

    fn forget_uncommitted(&self) {
        if let Ok(mut iterators) = self.iterators.try_lock() {
            iterators.clear();
        }
    }

    async fn rewind(&self) -> Result<(), ServiceError> {
        let mut iterators = self.iterators.lock().await;
        let mut c = self.checkpoint();
        c.shards.clear();
        c.records = 0;
        iterators.clear();
        Ok(())
    }

    async fn send_on_failure(&self, body: &serde_json::Value) -> Result<(), ServiceError> {
        let Some(url) = &self.on_failure else {
            return Ok(());
        };
        self.sqs
            .send_message()
            .queue_url(url)
            .message_body(body.to_string())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ServiceError::Queue {
                queue: url.clone(),
                operation: "SendMessage (on-failure destination)",
                source: Box::new(AwsCallError::new(e)),
            })
    }

    async fn idle(&self, idle: Duration) {
        tokio::time::sleep(idle).await;
    }

    /// A scan of the events table: events stored, those a request appended,
    /// and records the mapping moved past (`published` equals `lastPosition`
    /// once every stored event has gone through the publisher).
    async fn counts(&self) -> Result<EventCounts, ServiceError> {
        let mut counts = EventCounts {
            undecodable: Some(0),
            ..EventCounts::default()
        };
        let mut pages = self
            .store
            .client()
            .scan()
            .table_name(&self.store.tables().events)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item =
                item.map_err(|e| self.error("Scan of the events table", AwsCallError::new(e)))?;
            counts.events += 1;
            match item_to_event(&item) {
                Ok(event) if !event.actor.starts_with("system:") => {
                    counts.appended_by_requests += 1
                }
                Ok(_) => {}
                // Still a record of the stream, which the mapping moves past (or gives up on).
                Err(_) => counts.undecodable = counts.undecodable.map(|n| n + 1),
            }
        }
        counts.last_position = counts.events;
        counts.published = self.checkpoint().records;
        Ok(counts)
    }
}
