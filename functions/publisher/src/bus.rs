//! The bus port: what the publisher needs from an event bus, and its
//! EventBridge adapter.
//!
//! The port speaks in [`Entry`] and [`EntryResult`], not in SDK types, so the
//! local runtime can plug in its own bus (routing through the template's
//! event patterns to its local queues) and unit tests can plug in a fake.

use async_trait::async_trait;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use storefront_domain::EventEnvelope;
use thiserror::Error;

/// The most entries one `PutEvents` call accepts.
pub const MAX_ENTRIES_PER_CALL: usize = 10;

/// The most bytes one `PutEvents` call accepts, counted as
/// [`Entry::size`] summed over its entries (256 KB).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// One event as it goes on the bus (DESIGN §3): `Source` =
/// `storefront.{aggregateType}`, `DetailType` = eventType, `Detail` = the
/// envelope as JSON, and the X-Ray trace header of the invocation that
/// publishes it. The bus name is the adapter's, not the entry's: every
/// entry of this system goes to the same bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `storefront.{aggregateType}`, e.g. `storefront.cart`.
    pub source: String,
    /// The event type, e.g. `cart.item.added`.
    pub detail_type: String,
    /// The envelope, serialized as camelCase JSON.
    pub detail: String,
    /// `TraceHeader`: the X-Ray trace header of the publisher's invocation
    /// (`Root=1-…;Parent=…;Sampled=…`, Lambda's `_X_AMZN_TRACE_ID`), so
    /// X-Ray follows the event from the stream through the bus to the
    /// handlers' queues. A stream record carries no trace context of its
    /// own; the invocation that reads it is the closest one. `None` outside
    /// Lambda.
    pub trace_header: Option<String>,
}

impl Entry {
    /// The entry for an envelope (no trace header; see [`Entry::traced`]).
    pub fn from_envelope(envelope: &EventEnvelope) -> Result<Self, serde_json::Error> {
        Ok(Entry {
            source: format!("storefront.{}", envelope.aggregate_type()),
            detail_type: envelope.event_type.clone(),
            detail: serde_json::to_string(envelope)?,
            trace_header: None,
        })
    }

    /// The same entry carrying `trace_header` (none when `None`).
    pub fn traced(mut self, trace_header: Option<&str>) -> Self {
        self.trace_header = trace_header.map(str::to_owned);
        self
    }

    /// The size EventBridge charges against the 256 KB request limit, as
    /// "Calculating PutEvents event entry size" defines it: the UTF-8 bytes
    /// of `Source`, `DetailType` and `Detail`, plus 14 for `Time` and the
    /// bytes of each `Resources` ARN when set. We set neither, and
    /// `EventBusName` and `TraceHeader` do not count.
    pub fn size(&self) -> usize {
        // `String::len` is the UTF-8 byte length.
        self.source.len() + self.detail_type.len() + self.detail.len()
    }
}

/// What the bus did with one entry of a call, in the order sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryResult {
    /// The bus took the entry.
    Published {
        /// The bus's id for it, if it gave one.
        event_id: Option<String>,
    },
    /// The bus refused the entry (throttled, internal failure, malformed...).
    Failed {
        /// The bus's error code, e.g. `ThrottlingException`.
        code: String,
        /// The bus's explanation.
        message: String,
    },
}

/// Whether putting an entry again may succeed after the bus refused it with
/// `code`. PutEvents documents `ThrottlingException` and `InternalFailure`
/// as retryable and lists the codes that fail the same way every time
/// (access denied, a source or detail-type the caller may not use, malformed
/// detail...). Codes it does not list are retried: a wasted retry is cheaper
/// than a lost event.
pub fn is_retryable(code: &str) -> bool {
    !matches!(
        code,
        "AccessDeniedException"
            | "InvalidAccountIdException"
            | "InvalidArgument"
            | "MalformedDetail"
            | "RedactionFailure"
            | "NotAuthorizedForSourceException"
            | "NotAuthorizedForDetailTypeException"
    )
}

/// A call to the bus failed as a whole: nothing in it is known to be published.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BusError {
    /// The request did not get an answer (network, throttling of the call,
    /// authorisation, a service error).
    #[error("PutEvents call failed: {0}")]
    Call(String),
    /// The answer does not say what happened to each entry.
    #[error("PutEvents answered {answered} results for {sent} entries")]
    ResultCount {
        /// Entries sent.
        sent: usize,
        /// Results received.
        answered: usize,
    },
}

/// The narrow port the publisher needs: put up to
/// [`MAX_ENTRIES_PER_CALL`] entries (at most [`MAX_REQUEST_BYTES`]) on the
/// bus and say, entry by entry and in order, what happened.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Puts `entries` on the bus; the result has one [`EntryResult`] per entry, in order.
    async fn put_events(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, BusError>;
}

/// The bus on AWS: EventBridge `PutEvents` on one named bus.
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: EventBridgeClient,
    bus_name: String,
}

/// The bus's client: given, or built at the first put.
#[derive(Debug, Clone)]
enum EventBridgeClient {
    Built(aws_sdk_eventbridge::Client),
    Lazy(
        Box<storefront_runtime::aws::SdkConfig>,
        std::sync::OnceLock<aws_sdk_eventbridge::Client>,
    ),
}

impl EventBridgeBus {
    /// Wraps a client built once per cold start and the bus's name (`EVENT_BUS_NAME`).
    pub fn new(client: aws_sdk_eventbridge::Client, bus_name: impl Into<String>) -> Self {
        EventBridgeBus {
            client: EventBridgeClient::Built(client),
            bus_name: bus_name.into(),
        }
    }

    /// A bus whose client is built from `config` at the first put, not at
    /// start: the client's construction then falls in the first
    /// invocation instead of the function's init (BENCHMARKS.md section 2b).
    pub fn lazy(config: storefront_runtime::aws::SdkConfig, bus_name: impl Into<String>) -> Self {
        EventBridgeBus {
            client: EventBridgeClient::Lazy(Box::new(config), std::sync::OnceLock::new()),
            bus_name: bus_name.into(),
        }
    }

    fn client(&self) -> &aws_sdk_eventbridge::Client {
        match &self.client {
            EventBridgeClient::Built(client) => client,
            EventBridgeClient::Lazy(config, client) => {
                client.get_or_init(|| aws_sdk_eventbridge::Client::new(config))
            }
        }
    }

    /// The bus's name.
    pub fn bus_name(&self) -> &str {
        &self.bus_name
    }

    /// The `PutEvents` request entry for `entry` on this bus.
    pub fn request_entry(&self, entry: &Entry) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(&entry.source)
            .detail_type(&entry.detail_type)
            .detail(&entry.detail)
            .set_trace_header(entry.trace_header.clone())
            .build()
    }
}

#[async_trait]
impl Bus for EventBridgeBus {
    async fn put_events(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, BusError> {
        let request: Vec<PutEventsRequestEntry> =
            entries.iter().map(|e| self.request_entry(e)).collect();
        let output = self
            .client()
            .put_events()
            .set_entries(Some(request))
            .send()
            .await
            .map_err(|e| BusError::Call(DisplayErrorContext(e).to_string()))?;
        let results = output.entries();
        if results.len() != entries.len() {
            return Err(BusError::ResultCount {
                sent: entries.len(),
                answered: results.len(),
            });
        }
        // Per the PutEvents contract, a result with an ErrorCode is a failed
        // entry; every other result carries the new event's id.
        Ok(results
            .iter()
            .map(|r| match r.error_code() {
                Some(code) => EntryResult::Failed {
                    code: code.to_owned(),
                    message: r.error_message().unwrap_or_default().to_owned(),
                },
                None => EntryResult::Published {
                    event_id: r.event_id().map(str::to_owned),
                },
            })
            .collect())
    }
}
