//! The Lambda service, once for both modes.
//!
//! Whatever runs the functions (the embedded runtime on SQLite, or the AWS
//! mode against a deployed stack) plays the same part of AWS: it drives each
//! handler from its queue, the publisher from the event table's stream, and
//! the sweeper from its schedule. This module is that part, written once;
//! the modes only give it their sources:
//!
//! - [`worker`]: the only place a queue message is received, handed to a
//!   function and settled, over a [`worker::QueueSource`] (local durable
//!   queues, or SQS).
//! - [`stream_mapping`]: the DynamoDB stream event source mapping (batch,
//!   filter, bisect, retries, on-failure destination, checkpoint) over a
//!   [`stream_mapping::StreamReader`] (the local event log, or DynamoDB
//!   Streams).
//! - [`backoff`]: the one redelivery backoff.
//! - [`control`]: the `/_local` routes, over one [`control::Control`] interface.
//! - [`function`]: a handler function as the template wires it, and the fault switch.
//! - [`registry`]: every function, constructed one way from typed settings.

pub mod backoff;
pub mod control;
pub mod function;
pub mod registry;
pub mod runtime_api;
pub mod stream_mapping;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::task::JoinSet;

use control::{Control, EventCounts, QueueDepth};
use function::Faults;
use stream_mapping::StreamMapping;
use worker::Worker;

/// A boxed error kept as the cause of a [`ServiceError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a part of the service could not do its work this time (it retries).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A call to a queue (receive, delete, change visibility, send) failed.
    #[error("queue {queue}: {operation}: {source}")]
    Queue {
        /// The queue's name or URL.
        queue: String,
        /// The call.
        operation: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// Reading the stream or the event log failed.
    #[error("stream {stream}: {operation}: {source}")]
    Stream {
        /// The stream's ARN or the local log.
        stream: String,
        /// The call.
        operation: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The stream mapping's checkpoint could not be kept.
    #[error("checkpoint {path}: {source}")]
    Checkpoint {
        /// Where it lives.
        path: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A control request could not be answered in time.
    #[error("{0}")]
    Timeout(String),
}

/// An AWS SDK error shown the way an operator needs it: the service's code
/// and message when it gave them, else the whole chain (a connection
/// refused, no credentials ...); the SDK error stays its source.
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct AwsCallError {
    detail: String,
    #[source]
    source: BoxError,
}

impl AwsCallError {
    /// Wraps an SDK error.
    pub fn new<E>(e: E) -> AwsCallError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
    {
        let detail = match (e.code(), e.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            _ => aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
        };
        AwsCallError {
            detail,
            source: Box::new(e),
        }
    }
}

/// The Lambda service of one runtime: a worker per handler, the
/// publisher's stream mapping and the sweeper's schedule.
pub struct Service {
    /// A worker per handler function.
    pub workers: Vec<Worker>,
    /// The publisher's stream mapping.
    pub stream: Arc<StreamMapping>,
    /// The sweeper and how often its schedule fires.
    pub sweeper: Option<(Sweep, Duration)>,
    /// The fault switch the workers honour.
    pub faults: Faults,
}

impl Service {
    /// Starts the stream mapping, the workers and the schedule as tasks.
    pub fn spawn(self: &Arc<Self>) -> JoinSet<()> {
        let mut tasks = JoinSet::new();
        tasks.spawn(self.stream.clone().run());
        for worker in &self.workers {
            tasks.spawn(worker.clone().run());
        }
        if self.sweeper.is_some() {
            let service = self.clone();
            tasks.spawn(async move {
                if let Some((sweeper, every)) = &service.sweeper {
                    run_sweeper(sweeper, *every).await;
                }
            });
        }
        tasks
    }

    /// The handlers, their queues and rules, and the schedule, for a start-up banner.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for w in &self.workers {
            let f = &w.function;
            let redrive = f.redrive.as_ref().map_or("no DLQ".to_owned(), |r| {
                format!("maxReceiveCount {} → {}", r.max_receive_count, r.dlq)
            });
            out.push_str(&format!(
                "  handler   {:<15} {} → {} (batch {}, visibility {}s, {redrive})\n",
                f.name,
                f.rules.join(", "),
                w.source.name(),
                f.batch_size,
                f.visibility.as_secs()
            ));
        }
        if let Some((_, every)) = &self.sweeper {
            out.push_str(&format!(
                "  schedule  cart-sweeper every {}s\n",
                every.as_secs()
            ));
        }
        out
    }
}

#[async_trait]
impl Control for Service {
    fn faults(&self) -> &Faults {
        &self.faults
    }

    async fn queue_depths(&self) -> Result<BTreeMap<String, QueueDepth>, ServiceError> {
        let mut out = BTreeMap::new();
        for w in &self.workers {
            let (queue, dlq) = w.source.depths().await?;
            out.insert(w.function.name.to_owned(), QueueDepth { queue, dlq });
        }
        Ok(out)
    }

    async fn event_counts(&self) -> Result<EventCounts, ServiceError> {
        self.stream.counts().await
    }

    async fn rewind_feed(&self) -> Result<(), ServiceError> {
        self.stream.rewind().await
    }

    fn sqlite(&self) -> Option<control::SqliteFiles> {
        self.stream.sqlite()
    }
}

/// What the sweeper's schedule invokes.
#[derive(Clone)]
pub enum Sweep {
    /// The sweeper's library code, in process.
    Library(Arc<storefront_cart_sweeper::Sweeper>),
    /// Its built `bootstrap` under the Runtime API (`--artifacts`).
    Process(Arc<runtime_api::ProcessFunction>),
}

/// Runs `sweeper` every `every`, as its schedule rule would, forever.
pub async fn run_sweeper(sweeper: &Sweep, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        match sweeper {
            Sweep::Library(sweeper) => match sweeper.sweep(now).await {
                Ok(report) => tracing::info!(?report, "sweep done"),
                Err(e) => tracing::warn!(error = %e, "sweep failed; next tick retries"),
            },
            Sweep::Process(process) => {
                let event = scheduled_event(now);
                match process.invoke(event.to_string().as_bytes()).await {
                    Ok(report) => tracing::info!(
                        report = %String::from_utf8_lossy(&report),
                        "sweep done"
                    ),
                    Err(e) => tracing::warn!(error = %e, "sweep failed; next tick retries"),
                }
            }
        }
    }
}

/// The event an EventBridge schedule rule sends its target.
fn scheduled_event(now: u64) -> serde_json::Value {
    let time = humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(now))
        .to_string();
    serde_json::json!({
        "version": "0",
        "id": format!("schedule-{now}"),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": time,
        "region": "us-east-1",
        "resources": [],
        "detail": {}
    })
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops the
/// background `tasks` (stream mapping, workers, sweeper): both modes' end.
pub async fn serve_app(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    mut tasks: JoinSet<()>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    tasks.abort_all();
    result
}
