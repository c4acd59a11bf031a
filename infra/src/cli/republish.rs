//! `storefront republish`: the events the publisher's stream mapping gave up
//! on, published again.
//!
//! What reaches PublisherDLQ is Lambda's on-failure record: where the
//! records are (their first and last sequence numbers), not the records.
//! Locally a sequence number is the event log's position, so the events are
//! read back from the log, put through the same bus (the template's rules)
//! onto the handlers' queues, and the description deleted only then.
//! Consumers deduplicate by event id, so a repeat is harmless.
//!
//! With `--aws` the description points into the events table's DynamoDB
//! stream (a shard and a range of sequence numbers, kept 24 hours): the
//! records are read back from the stream and put on the stack's bus by the
//! publisher's own code; a message is deleted from PublisherDLQ only once
//! every event it describes is on the bus.

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use storefront_publisher::{EventBridgeBus, Publisher};
use storefront_store::EventLog;

use super::{Cli, CliError, DevArgs, aws_options, options};
use crate::aws::AwsRuntime;
use crate::aws::streams::lambda_record;
use crate::error::RuntimeError;
use crate::local::LocalRuntime;
use crate::local::feed::{LocalBus, log_record};

/// The positions an on-failure record describes.
fn described(body: &str) -> Option<(u64, u64)> {
    let record: serde_json::Value = serde_json::from_str(body).ok()?;
    let info = &record["DDBStreamBatchInfo"];
    let position = |key: &str| info[key].as_str()?.parse::<u64>().ok();
    Some((
        position("startSequenceNumber")?,
        position("endSequenceNumber")?,
    ))
}

/// Where an on-failure record says the records are: (stream ARN, shard, first and last sequence number).
fn described_on_stream(body: &str) -> Option<(String, String, String, String)> {
    let record: serde_json::Value = serde_json::from_str(body).ok()?;
    let info = &record["DDBStreamBatchInfo"];
    let field = |key: &str| info[key].as_str().map(str::to_owned);
    Some((
        field("streamArn")?,
        field("shardId")?,
        field("startSequenceNumber")?,
        field("endSequenceNumber")?,
    ))
}

/// Orders DynamoDB Streams sequence numbers (decimal strings of any length).
fn sequence_after(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

pub(super) async fn republish(cli: &Cli, dev: &DevArgs) -> Result<(), CliError> {
    if dev.target.aws {
        return republish_aws(cli, dev).await;
    }
    let runtime = LocalRuntime::build(options(cli, dev))?;
    let Some(dlq) = runtime.wiring.publisher.source.on_failure.clone() else {
        return Err(CliError::Usage(
            "template.yaml gives the publisher's stream no on-failure destination: nothing to republish".into(),
        ));
    };
    let publisher = Publisher::new(LocalBus::of(
        &runtime.template,
        runtime.rules.clone(),
        Default::default(),
    ));
    let (mut descriptions, mut events) = (0, 0);
    for (message_id, body, _) in runtime.queues.list(&dlq)? {
        let Some((first, last)) = described(&body) else {
            return Err(CliError::Usage(format!(
                "message {message_id} on {dlq} is not a stream on-failure record; delete it by hand"
            )));
        };
        let span = usize::try_from(last.saturating_sub(first) + 1).unwrap_or(usize::MAX);
        let logged: Vec<_> = runtime
            .store
            .read_after(first.saturating_sub(1), span)
            .await?
            .into_iter()
            .filter(|l| (first..=last).contains(&l.position))
            .collect();
        let records: Vec<_> = logged.iter().map(log_record).collect();
        let report = publisher.publish(&records).await;
        if let Some((index, why)) = report.failed.first() {
            return Err(CliError::Usage(format!(
                "event at position {} could not be published ({why:?}); {dlq} keeps its description, run republish again",
                logged.get(*index).map_or(first, |l| l.position)
            )));
        }
        runtime.queues.enqueue(&publisher.bus().take_routed())?;
        runtime.queues.delete_message(&dlq, &message_id)?;
        descriptions += 1;
        events += logged.len();
        println!(
            "republished positions {first}..={last} ({} events)",
            logged.len()
        );
    }
    println!("{events} events republished from {descriptions} description(s) on {dlq}");
    Ok(())
}

async fn republish_aws(cli: &Cli, dev: &DevArgs) -> Result<(), CliError> {
    let runtime = AwsRuntime::build(aws_options(cli, dev)).await?;
    let Some(dlq) = runtime.publisher_dlq.clone() else {
        return Err(CliError::Usage(
            "template.yaml gives the publisher's stream no on-failure destination: nothing to republish".into(),
        ));
    };
    let sqs = aws_sdk_sqs::Client::new(&runtime.sdk);
    let streams = aws_sdk_dynamodbstreams::Client::new(&runtime.sdk);
    let publisher = Publisher::new(EventBridgeBus::new(
        storefront_runtime::aws::eventbridge(&runtime.sdk),
        runtime.wiring.publisher.settings.event_bus_name.clone(),
    ));
    let (mut descriptions, mut events) = (0, 0);
    loop {
        let page = sqs
            .receive_message()
            .queue_url(&dlq)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(60)
            .send()
            .await
            .map_err(|e| RuntimeError::aws(format!("receive from {dlq}"), e))?;
        if page.messages().is_empty() {
            break;
        }
        for message in page.messages() {
            let body = message.body().unwrap_or_default();
            let Some((stream_arn, shard, first, last)) = described_on_stream(body) else {
                return Err(CliError::Usage(format!(
                    "a message on {dlq} is not a stream on-failure record: {body}"
                )));
            };
            let records = read_stream(
                &streams,
                &stream_arn,
                &shard,
                &first,
                &last,
                &runtime.deployment.region,
            )
            .await?;
            let report = publisher.publish(&records).await;
            if let Some((_, why)) = report.failed.first() {
                return Err(CliError::Usage(format!(
                    "records {first}..={last} of {shard} could not be published ({why:?}); {dlq} keeps their description, run republish again"
                )));
            }
            if let Some(receipt) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(&dlq)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .map_err(|e| RuntimeError::aws(format!("delete from {dlq}"), e))?;
            }
            descriptions += 1;
            events += report.published;
            println!(
                "republished {shard} {first}..={last} ({} events)",
                report.published
            );
        }
    }
    println!("{events} events republished from {descriptions} description(s) on {dlq}");
    Ok(())
}

/// The records of `shard` from `first` to `last` (sequence numbers), as Lambda hands them.
async fn read_stream(
    streams: &aws_sdk_dynamodbstreams::Client,
    stream_arn: &str,
    shard: &str,
    first: &str,
    last: &str,
    region: &str,
) -> Result<Vec<EventRecord>, CliError> {
    let mut iterator = streams
        .get_shard_iterator()
        .stream_arn(stream_arn)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .sequence_number(first)
        .send()
        .await
        .map_err(|e| {
            RuntimeError::aws(
                format!("records {first}..={last} of {shard} (a stream keeps them 24 hours)"),
                e,
            )
        })?
        .shard_iterator;
    let mut out = Vec::new();
    while let Some(current) = iterator {
        let page = streams
            .get_records()
            .shard_iterator(current)
            .send()
            .await
            .map_err(|e| RuntimeError::aws(format!("records of {shard}"), e))?;
        if page.records().is_empty() {
            break;
        }
        for record in page.records() {
            let seq = record
                .dynamodb()
                .and_then(|c| c.sequence_number())
                .unwrap_or_default();
            if sequence_after(seq, last) {
                return Ok(out);
            }
            out.extend(lambda_record(record, stream_arn, region));
        }
        iterator = page.next_shard_iterator;
    }
    Ok(out)
}
