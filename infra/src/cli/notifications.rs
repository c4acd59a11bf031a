//! `storefront notifications unknown`: the sends whose outcome is unknown.

use storefront_store::StateStore;
use storefront_store::keys::UNKNOWN_SENDS;

use super::{Cli, CliError, DevArgs, aws_options, options};
use crate::aws::AwsRuntime;
use crate::local::LocalRuntime;

/// `storefront notifications unknown`: the sends whose outcome is unknown
/// (the notification handler never resends them), embedded or `--aws`.
pub(super) async fn unknown_notifications(cli: &Cli, dev: &DevArgs) -> Result<(), CliError> {
    let items = if dev.target.aws {
        let runtime = AwsRuntime::build(aws_options(cli, dev)).await?;
        runtime.store.query(UNKNOWN_SENDS).await?
    } else {
        let runtime = LocalRuntime::build(options(cli, dev))?;
        runtime.store.query(UNKNOWN_SENDS).await?
    };
    for item in &items {
        println!(
            "{}  {:<24}  {}",
            item.sk,
            item.value["eventType"].as_str().unwrap_or("?"),
            item.value["reason"].as_str().unwrap_or("?")
        );
    }
    println!(
        "{} notification(s) of unknown outcome: check each with the provider (its eventId is the message's X-Storefront-Event-Id)",
        items.len()
    );
    Ok(())
}
