//! `storefront dlq list|redrive`: the dead-letter queues, embedded or `--aws`.

use super::{Cli, CliError, DevArgs, DlqAction, options};
use crate::error::RuntimeError;
use crate::local::LocalRuntime;

pub(super) fn dlq(cli: &Cli, action: &DlqAction) -> Result<(), CliError> {
    let runtime = LocalRuntime::build(options(cli, &DevArgs::default()))?;
    let only = match action {
        DlqAction::List { handler, .. } | DlqAction::Redrive { handler, .. } => handler.clone(),
    };
    let known: Vec<&str> = runtime.handlers().map(|w| w.name).collect();
    if let Some(h) = &only
        && !known.contains(&h.as_str())
    {
        return Err(CliError::Usage(format!(
            "no handler {h:?}; the handlers are {}",
            known.join(", ")
        )));
    }
    for w in runtime
        .handlers()
        .filter(|w| only.as_deref().is_none_or(|h| h == w.name))
    {
        let Some(redrive) = &w.redrive else { continue };
        match action {
            DlqAction::List { .. } => {
                let messages = runtime.queues.list(&redrive.dlq)?;
                println!(
                    "{:<16} {} message(s) in {}",
                    w.name,
                    messages.len(),
                    redrive.dlq
                );
                for (id, body, _) in messages {
                    let event: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    println!(
                        "    {id}  {}  {}",
                        event["detail-type"].as_str().unwrap_or("?"),
                        event["detail"]["streamId"].as_str().unwrap_or("?")
                    );
                }
            }
            DlqAction::Redrive { .. } => {
                let moved = runtime.queues.redrive(&redrive.dlq, &w.queue)?;
                println!(
                    "{:<16} moved {moved} message(s) from {} back to {}",
                    w.name, redrive.dlq, w.queue
                );
            }
        }
    }
    Ok(())
}

pub(super) async fn dlq_aws(
    cli: &Cli,
    action: &DlqAction,
    only: Option<&str>,
    stage: &str,
) -> Result<(), CliError> {
    let template = storefront_template::Template::load(&cli.template)
        .map_err(|source| RuntimeError::TemplateUnreadable { source })?;
    let handlers: Vec<String> = template
        .functions
        .values()
        .filter(|f| !f.sqs.is_empty())
        .filter_map(|f| f.binary.strip_prefix("storefront-").map(str::to_owned))
        .collect();
    if let Some(h) = only
        && !handlers.iter().any(|x| x == h)
    {
        return Err(CliError::Usage(format!(
            "no handler {h:?}; the handlers are {}",
            handlers.join(", ")
        )));
    }
    let sdk = storefront_runtime::aws::load_config().await;
    let sqs = storefront_runtime::aws::sqs(&sdk);
    for h in handlers
        .iter()
        .filter(|h| only.is_none_or(|o| o == h.as_str()))
    {
        let (queue, dlq) = crate::aws::dlq::queue_names(&template, stage, h)?;
        match action {
            DlqAction::List { .. } => {
                let n = crate::aws::dlq::depth(&sqs, &dlq).await?;
                println!("{h:<16} ~{n} message(s) in {dlq}");
            }
            DlqAction::Redrive { .. } => {
                match crate::aws::dlq::redrive(&sqs, &queue, &dlq).await? {
                    crate::aws::dlq::Redriven::MoveTask { handle } => {
                        println!("{h:<16} StartMessageMoveTask started (task {handle})");
                    }
                    crate::aws::dlq::Redriven::Moved(n) => {
                        println!("{h:<16} moved {n} message(s) back")
                    }
                }
            }
        }
    }
    Ok(())
}
