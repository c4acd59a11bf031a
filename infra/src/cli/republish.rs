//! `storefront republish`: the events the publisher's stream mapping gave up
//! on, published again.
//!
//! What reaches PublisherDLQ is Lambda's on-failure record: where the
//! records are (their first and last sequence numbers), not the records.
//! Locally a sequence number is the event log's position, so the events are
//! read back from the log, put through the same bus (the template's rules)
//! onto the handlers' queues, and the description deleted only then.
//! Consumers deduplicate by event id, so a repeat is harmless.

use storefront_publisher::Publisher;
use storefront_store::EventLog;

use super::{Cli, CliError, DevArgs, options};
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

pub(super) async fn republish(cli: &Cli) -> Result<(), CliError> {
    let runtime = LocalRuntime::build(options(cli, &DevArgs::default()))?;
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
