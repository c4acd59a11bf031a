//! The SQS batch runner: one handler call per record, partial batch failures.
//!
//! A record's body is what an EventBridge rule target puts on a queue: the
//! EventBridge event, with our envelope as `detail`. Each record is decoded
//! (checksum verified) and handed to the handler on its own; a record that
//! fails (undecodable, or the handler returned an error) is reported in
//! `batchItemFailures` by its message id, so SQS redelivers only it and, after
//! the queue's maxReceiveCount, moves it to the DLQ. The others in the batch
//! are deleted as handled: one poison message never blocks its neighbours.

use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use storefront_domain::{EnvelopeError, EventEnvelope};
use thiserror::Error;
use tracing::Instrument;

/// What a handler did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The event had its effect.
    Handled,
    /// The effect had already happened (a redelivery): nothing was done.
    Duplicate,
    /// The handler does not act on this event (e.g. nothing to do for it).
    Ignored,
}

/// Why a handler could not handle an event. Either way the record is
/// reported as failed and retried; the kind tells the logs and metrics why.
#[derive(Debug, Error)]
pub enum HandlerError {
    /// May succeed on a later try (a backend hiccup, a lost race).
    #[error("transient failure: {0}")]
    Transient(String),
    /// Will fail every time (a defect, a poison message): it will end in the DLQ.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl HandlerError {
    /// The `errorType` Lambda reports for an invocation that failed with
    /// this error: `HandlerError.Transient` or `HandlerError.Permanent`, a
    /// name an operator can filter and alarm on (the runtime's default is
    /// the Rust type name of whatever error it was given).
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::Transient(_) => "HandlerError.Transient",
            HandlerError::Permanent(_) => "HandlerError.Permanent",
        }
    }
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.error_type().to_owned(),
            error_message: e.to_string(),
        }
    }
}

impl From<storefront_store::StoreError> for HandlerError {
    fn from(e: storefront_store::StoreError) -> Self {
        use storefront_store::StoreError::*;
        match e {
            Conflict { .. } | ConditionFailed { .. } | Contention { .. } | Backend { .. } => {
                HandlerError::Transient(e.to_string())
            }
            Integrity(_)
            | Corrupt { .. }
            | TooManyItems { .. }
            | EventTooLarge { .. }
            | InvalidAppend(_) => HandlerError::Permanent(e.to_string()),
        }
    }
}

/// Why a record body is not an event.
#[derive(Debug, Error)]
pub enum BodyError {
    /// Not JSON, or not an envelope.
    #[error("record body is not an EventBridge event with an envelope: {0}")]
    Malformed(String),
    /// The envelope fails its checksum or does not decode.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

/// Decodes a record body: an EventBridge event whose `detail` is the
/// envelope, or a bare envelope. The checksum is verified.
pub fn envelope_from_body(body: &str) -> Result<EventEnvelope, BodyError> {
    let mut value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| BodyError::Malformed(e.to_string()))?;
    let envelope_value = match value.get_mut("detail") {
        Some(detail) => detail.take(),
        None => value,
    };
    let envelope: EventEnvelope =
        serde_json::from_value(envelope_value).map_err(|e| BodyError::Malformed(e.to_string()))?;
    envelope.decode()?;
    Ok(envelope)
}

/// Runs `handle` on every record of the batch, one at a time, and returns
/// the failed ones for `ReportBatchItemFailures`. Counts `EventsHandled`,
/// `EventsFailed` and `DuplicatesSkipped` per handler.
pub async fn run_batch<F, Fut>(
    handler: &'static str,
    event: SqsEvent,
    mut handle: F,
) -> SqsBatchResponse
where
    F: FnMut(EventEnvelope) -> Fut,
    Fut: Future<Output = Result<Outcome, HandlerError>>,
{
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        let body = record.body.as_deref().unwrap_or_default();
        let envelope = match envelope_from_body(body) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::error!(handler, message_id, error = %e, "undecodable record");
                metrics::counter!("EventsFailed", "handler" => handler).increment(1);
                response.batch_item_failures.push(failure(message_id));
                continue;
            }
        };
        let span = tracing::info_span!(
            "event",
            handler,
            eventId = %envelope.event_id,
            eventType = %envelope.event_type,
            correlationId = %envelope.correlation_id,
        );
        let result = handle(envelope).instrument(span.clone()).await;
        let _entered = span.enter();
        match result {
            Ok(Outcome::Handled) => {
                metrics::counter!("EventsHandled", "handler" => handler).increment(1);
            }
            Ok(Outcome::Duplicate) => {
                tracing::info!("duplicate delivery skipped");
                metrics::counter!("DuplicatesSkipped", "handler" => handler).increment(1);
            }
            Ok(Outcome::Ignored) => {}
            Err(e) => {
                tracing::warn!(error = %e, message_id, "handler failed; SQS will redeliver");
                metrics::counter!("EventsFailed", "handler" => handler).increment(1);
                response.batch_item_failures.push(failure(message_id));
            }
        }
    }
    response
}

fn failure(message_id: String) -> BatchItemFailure {
    let mut f = BatchItemFailure::default();
    f.item_identifier = message_id;
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessage;
    use storefront_domain::events::CartCleared;
    use storefront_domain::{Event, EventMeta, StreamId};

    fn envelope(n: u64) -> EventEnvelope {
        EventEnvelope::seal(
            &StreamId::parse("cart#u1").expect("stream"),
            n,
            &Event::CartCleared(CartCleared {}),
            &EventMeta {
                event_id: format!("e{n}"),
                occurred_at: "2026-11-27T10:00:00.000Z".into(),
                correlation_id: "c".into(),
                causation_id: None,
                actor: "u1".into(),
            },
        )
    }

    fn record(id: &str, body: String) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body);
        m
    }

    fn eventbridge_body(e: &EventEnvelope) -> String {
        serde_json::json!({
            "version": "0", "id": "x", "detail-type": e.event_type, "source": "storefront.cart",
            "account": "1", "time": "2026-11-27T10:00:00Z", "region": "us-east-1", "resources": [],
            "detail": e,
        })
        .to_string()
    }

    /// Only the failing records are reported; the good ones around them are handled.
    #[tokio::test]
    async fn partial_failures_are_isolated() {
        let mut tampered = envelope(3);
        tampered.version = 30;
        let mut event = SqsEvent::default();
        event.records = vec![
            record("m1", eventbridge_body(&envelope(1))),
            record("m2", "not json".into()),
            record("m3", eventbridge_body(&tampered)),
            record(
                "m4",
                serde_json::to_string(&envelope(4)).expect("bare envelope"),
            ),
            record("m5", eventbridge_body(&envelope(5))),
        ];
        let mut seen = Vec::new();
        let response = run_batch("test", event, |e| {
            seen.push(e.version);
            let fail = e.version == 5;
            async move {
                if fail {
                    Err(HandlerError::Transient("boom".into()))
                } else {
                    Ok(Outcome::Handled)
                }
            }
        })
        .await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, vec!["m2", "m3", "m5"]);
        assert_eq!(
            seen,
            vec![1, 4, 5],
            "undecodable records never reach the handler"
        );
    }

    /// Store errors map to retry kinds: races are transient, integrity is permanent.
    #[test]
    fn store_errors_classified() {
        let conflict = storefront_store::StoreError::Conflict {
            stream: "s".into(),
            expected: 1,
            actual: 2,
        };
        assert!(matches!(
            HandlerError::from(conflict),
            HandlerError::Transient(_)
        ));
        let bad = storefront_store::StoreError::InvalidAppend("x".into());
        assert!(matches!(
            HandlerError::from(bad),
            HandlerError::Permanent(_)
        ));
    }
}
