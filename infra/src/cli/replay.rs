//! `storefront replay`: rebuild a projection's views from the event store.

use std::collections::BTreeSet;

use storefront_domain::EventEnvelope;
use storefront_store::EventLog;

use super::{Cli, CliError, DevArgs, options};
use crate::local::LocalRuntime;

pub(super) async fn replay(cli: &Cli, name: &str) -> Result<(), CliError> {
    let runtime = LocalRuntime::build(options(cli, &DevArgs::default()))?;
    let replayable: Vec<&str> = runtime
        .handlers()
        .filter(|w| w.handler.projection().is_some())
        .map(|w| w.name)
        .collect();
    let wired = runtime.handlers().find(|w| w.name == name);
    let (Some(wired), true) = (wired, replayable.contains(&name)) else {
        return Err(CliError::Usage(format!(
            "{name:?} cannot be replayed: only the view handlers ({}) can; the others' effects are events already in the store",
            replayable.join(", ")
        )));
    };
    let handler = wired.handler.clone();
    let Some(projection) = handler.projection() else {
        return Err(CliError::Usage(format!("{name:?} cannot be replayed")));
    };

    // Forget the views, then feed every event again in commit order.
    let mut log = Vec::new();
    let mut position = 0;
    loop {
        let page = runtime.store.read_after(position, 5000).await?;
        let Some(last) = page.last() else { break };
        position = last.position;
        log.extend(page.into_iter().map(|l| l.envelope));
    }
    let streams: BTreeSet<String> = log.iter().map(|e| e.stream_id.clone()).collect();
    projection
        .reset(&streams)
        .await
        .map_err(|source| CliError::Reset {
            handler: name.to_owned(),
            source,
        })?;
    let relevant: Vec<&EventEnvelope> = log
        .iter()
        .filter(|e| handler.consumes().iter().any(|t| t.name() == e.event_type))
        .collect();
    let bar = indicatif::ProgressBar::new(relevant.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!("replaying {name}"));
    for e in relevant {
        handler.handle(e).await.map_err(|source| CliError::Replay {
            handler: name.to_owned(),
            event_id: e.event_id.clone(),
            event_type: e.event_type.clone(),
            source,
        })?;
        bar.inc(1);
    }
    bar.finish();
    println!("{name}: views rebuilt from {} events", log.len());
    Ok(())
}
