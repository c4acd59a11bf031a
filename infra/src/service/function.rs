//! A handler function as the template wires it (its queue, batch, redrive
//! policy and rules), the way Lambda's SQS event source mapping invokes it,
//! and the fault switch only the emulator has.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use storefront_runtime::{EventHandler, HandlerError};

use super::runtime_api::ProcessFunction;
use crate::local::queues::Redrive;

/// Handlers whose every delivery fails: a test switch that only the local
/// runtime has (there is no such code in any Lambda). Empty at start.
pub type Faults = Arc<Mutex<HashSet<String>>>;

/// One handler function, wired as the template wires it.
#[derive(Clone)]
pub struct HandlerFunction {
    /// The handler's name.
    pub name: &'static str,
    /// The function's logical id.
    pub function: String,
    /// The queue's logical id.
    pub queue: String,
    /// The queue's redrive policy.
    pub redrive: Option<Redrive>,
    /// The queue's visibility timeout.
    pub visibility: Duration,
    /// Records per batch.
    pub batch_size: u32,
    /// Whether the function reports partial batch failures (otherwise one
    /// failure fails the whole batch).
    pub report_batch_item_failures: bool,
    /// The rules that target the queue.
    pub rules: Vec<String>,
    /// The handler.
    pub handler: Arc<dyn EventHandler>,
    /// The function's built `bootstrap`, when the runtime runs the binaries
    /// (`--artifacts`) instead of [`Self::handler`] in process.
    pub process: Option<Arc<ProcessFunction>>,
}

impl HandlerFunction {
    /// Runs one batch through the handler as Lambda's SQS event source
    /// mapping does, honouring the fault switch; returns the ids of the
    /// messages to leave for redelivery: those the handler reported, or the
    /// whole batch if one failed and the function does not report item
    /// failures.
    pub async fn invoke(&self, event: SqsEvent, faults: &Faults) -> HashSet<String> {
        let ids: Vec<String> = event
            .records
            .iter()
            .filter_map(|r| r.message_id.clone())
            .collect();
        let faulty = faults
            .lock()
            .map(|f| f.contains(self.name))
            .unwrap_or(false);
        if let Some(process) = &self.process {
            if faulty {
                return ids.into_iter().collect();
            }
            return self.invoke_process(process, &event, ids).await;
        }
        let handler = self.handler.clone();
        let response = storefront_runtime::sqs::run_batch(self.name, event, |envelope| {
            let handler = handler.clone();
            async move {
                if faulty {
                    return Err(HandlerError::Transient(
                        "fault injected by the local runtime's test switch".into(),
                    ));
                }
                handler.handle(&envelope).await
            }
        })
        .await;
        let failed: HashSet<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        if failed.is_empty() || self.report_batch_item_failures {
            failed
        } else {
            ids.into_iter().collect()
        }
    }

    /// One batch through the built binary: the SQS event Lambda sends, the
    /// partial batch response it reads back; an invocation that fails as a
    /// whole (an error, a timeout, a crash) leaves every message.
    async fn invoke_process(
        &self,
        process: &ProcessFunction,
        event: &SqsEvent,
        ids: Vec<String>,
    ) -> HashSet<String> {
        let all = || ids.iter().cloned().collect::<HashSet<String>>();
        let payload = match serde_json::to_vec(event) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(function = %self.function, error = %e, "cannot encode the batch");
                return all();
            }
        };
        let answer = match process.invoke(&payload).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(function = %self.function, error = %e, "invocation failed; the batch is left for redelivery");
                return all();
            }
        };
        let response: SqsBatchResponse = match serde_json::from_slice(&answer) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(function = %self.function, error = %e, "the answer is not a batch response; the batch is left for redelivery");
                return all();
            }
        };
        let failed: HashSet<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        if failed.is_empty() || self.report_batch_item_failures {
            failed
        } else {
            all()
        }
    }
}
