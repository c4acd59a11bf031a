//! `storefront events` and `storefront verify`: the embedded event log, listed or checked.

use std::time::Duration;

use storefront_domain::{EventEnvelope, StreamId};
use storefront_store::{EventLog, EventStore};

use super::{Cli, CliError};

fn print_event(e: &EventEnvelope, position: Option<u64>, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(e) {
            println!("{line}");
        }
    } else {
        let position = position.map_or_else(|| "-".to_owned(), |p| p.to_string());
        println!(
            "{position:>7}  {}  {:<40} v{:<5} {:<28} {}",
            e.occurred_at, e.stream_id, e.version, e.event_type, e.actor
        );
    }
}

pub(super) async fn events(
    cli: &Cli,
    stream: Option<&str>,
    follow: bool,
    json: bool,
) -> Result<(), CliError> {
    let path = cli.data.join("events.db");
    if !path.exists() {
        return Err(CliError::Usage(format!(
            "no events yet: {} does not exist (start the storefront with `cargo run --release`)",
            path.display()
        )));
    }
    let store = storefront_store::sqlite::SqliteStore::open(&path)?;
    if !json {
        println!(
            "{:>7}  {:<24}  {:<40} {:<6} {:<28} actor",
            "pos", "occurredAt", "stream", "ver", "type"
        );
    }
    match stream {
        Some(raw) => {
            let id = StreamId::parse(raw)
                .map_err(|e| CliError::Usage(format!("--stream {raw:?}: {e}")))?;
            let mut version = 0;
            loop {
                for e in store.load(&id, version).await? {
                    version = e.version;
                    print_event(&e, None, json);
                }
                if !follow {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        None => {
            let mut position = 0;
            loop {
                let page = store.read_after(position, 1000).await?;
                for l in &page {
                    print_event(&l.envelope, Some(l.position), json);
                    position = l.position;
                }
                if page.is_empty() {
                    if !follow {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }
}

pub(super) async fn verify(cli: &Cli) -> Result<(), CliError> {
    let path = cli.data.join("events.db");
    if !path.exists() {
        return Err(CliError::Usage(format!(
            "nothing to verify: {} does not exist",
            path.display()
        )));
    }
    let store = storefront_store::sqlite::SqliteStore::open(&path)?;
    let mut position = 0;
    let mut count = 0u64;
    loop {
        let page = match store.read_after(position, 1000).await {
            Ok(page) => page,
            Err(source) => return Err(CliError::Verify { position, source }),
        };
        let Some(last) = page.last() else { break };
        position = last.position;
        count += page.len() as u64;
    }
    println!("events: {count} checksums verified");
    let days = storefront_audit::verify_all(&store).await?;
    for (day, n) in &days {
        println!("audit {day}: {n} records, every chain intact");
    }
    if days.is_empty() {
        println!("audit: no records yet");
    }
    Ok(())
}
