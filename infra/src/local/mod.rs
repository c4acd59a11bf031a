//! The embedded runtime: the whole storefront on 127.0.0.1, wired from
//! `template.yaml`, on SQLite, with no AWS and no Docker.
//!
//! What is local here is only what stands in for AWS resources; the Lambda
//! service part (workers, stream mapping, schedule, `/_local`) is
//! [`crate::service`], shared with the AWS mode.
//!
//! - [`queues`]: durable local queues with SQS's semantics (`queues.db`).
//! - [`queue_source`]: one of them as a worker's queue.
//! - [`feed`]: the event log as the table's stream, and the bus that routes
//!   through the template's rules into the queues.

pub mod feed;
pub mod queue_source;
pub mod queues;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use storefront_api::AppState;
use storefront_publisher::Publisher;
use storefront_runtime::Stores;
use storefront_store::sqlite::SqliteStore;
use storefront_template::{EnvValue, PatternRouter, Template};

use crate::auth::DevKeys;
use crate::error::RuntimeError;
use crate::service::Service;
use crate::service::function::{Faults, HandlerFunction};
use crate::service::registry::{Dependencies, Notify, Wiring, wire};
use crate::service::stream_mapping::StreamMapping;
use crate::service::worker::Worker;
use feed::{LocalBus, LogReader};
use queue_source::LocalQueue;
use queues::Queues;

/// The region the local resources claim to be in (their ARNs and records).
pub const REGION: &str = "local";

/// The ARN a local queue claims.
pub fn queue_arn(name: &str) -> String {
    format!("arn:aws:sqs:{REGION}:000000000000:{name}")
}

/// Where the runtime keeps things and how it behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The data folder (events.db, queues.db, dev-signing-key).
    pub data: PathBuf,
    /// The template to wire from.
    pub template: PathBuf,
    /// Overrides the schedule of the sweeper (tests).
    pub sweep_every: Option<Duration>,
    /// The first redelivery backoff; each later one doubles, capped by the visibility timeout.
    pub retry_base: Duration,
}

/// The assembled runtime.
pub struct LocalRuntime {
    /// The event and state store.
    pub store: SqliteStore,
    /// Both ports.
    pub stores: Stores,
    /// The local queues.
    pub queues: Queues,
    /// The template.
    pub template: Template,
    /// What the template wires, built on the local stores.
    pub wiring: Arc<Wiring>,
    /// The Lambda service: workers, stream mapping, schedule.
    pub service: Arc<Service>,
    /// Rules → queues, as matched by quamina.
    pub rules: PatternRouter,
    /// The dev signing key.
    pub keys: DevKeys,
    /// The options.
    pub options: Options,
}

/// Resolves a template environment value the way CloudFormation would, with
/// local names: a parameter's default, else `local-{LogicalId}`.
pub fn resolve(value: &EnvValue, template: &Template) -> String {
    let parameter_default = |name: &str| {
        template
            .raw
            .pointer(&format!("/Parameters/{name}/Default"))
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            })
    };
    match value {
        EnvValue::Literal(s) => s.clone(),
        EnvValue::Ref(name) => parameter_default(name).unwrap_or_else(|| format!("local-{name}")),
        EnvValue::GetAtt(name, _) => format!("local-{name}"),
        EnvValue::Sub(text) => {
            let mut out = text.clone();
            while let Some(start) = out.find("${") {
                let Some(end) = out[start..].find('}') else {
                    break;
                };
                let name = &out[start + 2..start + end];
                let with = parameter_default(name).unwrap_or_else(|| format!("local-{name}"));
                out.replace_range(start..start + end + 1, &with);
            }
            out
        }
    }
}

impl LocalRuntime {
    /// Reads the template, opens the stores and wires every function.
    pub fn build(options: Options) -> Result<LocalRuntime, RuntimeError> {
        let (template, keys) = crate::runtime::prepare(&options.template, &options.data)?;
        let store = SqliteStore::open(options.data.join("events.db"))?;
        let queues = Queues::open(&options.data.join("queues.db"))?;
        let stores = Stores::from(store.clone());
        let rules = PatternRouter::from_template(&template)?;
        let wiring = Arc::new(wire(
            &template,
            options.sweep_every,
            &|v| resolve(v, &template),
            &Dependencies {
                stores: stores.clone(),
                notify: Notify::Outbox,
            },
        )?);

        let faults: Faults = Arc::default();
        let bus = LocalBus::of(&template, rules.clone(), faults.clone());
        let reader = LogReader::new(
            store.clone(),
            queues.clone(),
            &bus,
            wiring.publisher.source.on_failure.clone(),
        );
        let stream = StreamMapping::new(
            &wiring.publisher.function,
            None,
            wiring.publisher.source.clone(),
            options.retry_base,
            Arc::new(reader),
            Arc::new(Publisher::new(bus)),
        )?;
        let workers = wiring
            .handlers
            .iter()
            .map(|f: &Arc<HandlerFunction>| Worker {
                source: Arc::new(LocalQueue::new(
                    queues.clone(),
                    &f.queue,
                    f.redrive.clone(),
                    f.visibility,
                )),
                function: f.clone(),
                retry_base: Some(options.retry_base),
                faults: Arc::clone(&faults),
            })
            .collect();
        let service = Arc::new(Service {
            workers,
            stream: Arc::new(stream),
            sweeper: wiring.sweeper.clone(),
            faults,
        });
        Ok(LocalRuntime {
            store,
            stores,
            queues,
            template,
            wiring,
            service,
            rules,
            keys,
            options,
        })
    }

    /// The handler functions, as the template wires them.
    pub fn handlers(&self) -> impl Iterator<Item = &HandlerFunction> {
        self.wiring.handlers.iter().map(|f| &**f)
    }

    /// The HTTP app: the API on SQLite behind the dev-token layer, plus `/_local` tooling routes.
    pub fn http(&self) -> Router {
        let api = storefront_api::app(AppState::sqlite(
            self.store.clone(),
            self.wiring.api.settings.clone(),
        ));
        crate::runtime::http(api, &self.keys, &self.service, &self.template)
    }

    /// What the runtime wired, for the start-up banner.
    pub fn describe(&self, addr: SocketAddr) -> String {
        let mut out = String::new();
        out.push_str("storefront local runtime\n");
        out.push_str(&format!(
            "  data      {}  (events.db, queues.db, dev-signing-key)\n",
            self.options.data.display()
        ));
        out.push_str(&format!(
            "  template  {}\n",
            self.options.template.display()
        ));
        out.push_str(&crate::runtime::describe_api(
            addr,
            &self.wiring.api.function,
        ));
        out.push_str(&format!(
            "  feed      event table → publisher → {} rules\n",
            self.rules.rules().len()
        ));
        out.push_str(&self.service.describe());
        out
    }

    /// The feed's cursor lives in `queues.db` and the events in `events.db`,
    /// each synced on its own (`synchronous=NORMAL`): after a power loss the
    /// log's last transactions can roll back while the cursor survives, and
    /// the positions new events then take, at or below the cursor, would
    /// never be published. At start-up (before anything appends) a cursor
    /// ahead of the log is brought back to the log's end.
    pub async fn rewind_a_cursor_ahead_of_the_log(&self) -> Result<(), RuntimeError> {
        let cursor = self.queues.cursor(crate::local::feed::FEED_CURSOR)?;
        let last = self.store.last_position().await?;
        if cursor > last {
            tracing::warn!(
                cursor,
                log_end = last,
                "the feed's cursor is ahead of the event log (events lost to a crash or power loss after they were published); moving it back so that new events are published"
            );
            self.queues
                .enqueue_and_advance(&[], crate::local::feed::FEED_CURSOR, last)?;
        }
        Ok(())
    }

    /// Runs everything until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), RuntimeError> {
        self.rewind_a_cursor_ahead_of_the_log().await?;
        match self.queues.release_in_flight()? {
            0 => {}
            n => tracing::info!(
                messages = n,
                "redelivering messages that were in flight when the runtime last stopped"
            ),
        }
        let app = self.http();
        crate::runtime::serve(listener, app, &self.service, shutdown).await
    }
}
