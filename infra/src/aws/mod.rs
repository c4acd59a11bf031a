//! The AWS mode of the local runtime (`storefront dev --aws`): it plays only
//! the Lambda service's part against a deployed stack (on AWS, or on moto
//! with `scripts/deploy_moto.py`). Tables, streams, the bus, rule matching,
//! queues and dead-lettering are the stack's own.
//!
//! What is AWS-specific is here; the service itself is [`crate::service`]:
//!
//! - [`deployment`]: which stack, and the physical names of its resources.
//! - [`sqs`]: a handler's SQS queue as a worker's queue (with `--retry-base`
//!   a failed message's visibility is shortened to a backoff, so a test need
//!   not wait out the 60 s timeout; SQS still counts receives and dead-letters).
//! - [`streams`]: the events table's DynamoDB stream, shard by shard, with
//!   the mapping's checkpoint in the data folder.
//! - [`dlq`]: `storefront dlq --aws`, listing and redriving the stack's DLQs.

pub mod deployment;
pub mod dlq;
pub mod rehearsal;
pub mod sqs;
pub mod streams;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use storefront_api::AppState;
use storefront_publisher::{EventBridgeBus, Publisher};
use storefront_runtime::Stores;
use storefront_runtime::aws::SdkConfig;
use storefront_store::dynamodb::DynamoStore;
use storefront_template::{EnvValue, Template};

use crate::auth::DevKeys;
use crate::error::RuntimeError;
use crate::service::function::HandlerFunction;
use crate::service::registry::{Dependencies, Notify, Wiring, function_config, wire};
use crate::service::runtime_api::ProcessFunction;
use crate::service::stream_mapping::StreamFunction;
use crate::service::stream_mapping::StreamMapping;
use crate::service::worker::Worker;
use crate::service::{Service, Sweep};
use deployment::{Deployment, queue_arn, queue_url};
use sqs::SqsQueue;
use streams::StreamsReader;

/// How the AWS mode finds the deployment and behaves.
#[derive(Debug, Clone)]
pub struct AwsOptions {
    /// The data folder (the dev signing key and the stream checkpoint live here).
    pub data: PathBuf,
    /// The template the stack was deployed from.
    pub template: PathBuf,
    /// An endpoint for every AWS client (moto); `None` uses the SDK's own
    /// configuration (`AWS_ENDPOINT_URL`, profile, region, credentials).
    pub endpoint: Option<String>,
    /// The CloudFormation stack to read names from; `None` reads them from
    /// the environment (`EVENTS_TABLE`, `STATE_TABLE`, `EVENT_BUS_NAME`).
    pub stack: Option<String>,
    /// The stage (the template's `Stage` parameter), when no stack is given.
    pub stage: String,
    /// Overrides the sweeper's schedule.
    pub sweep_every: Option<Duration>,
    /// Shorten a failed message's visibility to this backoff (doubling per
    /// receive) instead of leaving it for the queue's visibility timeout.
    pub retry_base: Option<Duration>,
    /// Run the functions as the built binaries in this folder (`sam build`'s
    /// `.aws-sam/build`) instead of their library code: see [`rehearsal`].
    pub artifacts: Option<PathBuf>,
}

/// Instances of the API function in a rehearsal, to serve concurrent
/// requests; every other function is invoked by one poller (its queue's
/// worker, the stream mapping, the schedule) and has one.
const REHEARSAL_API_INSTANCES: usize = 4;

/// The first pause before a failed stream batch is retried, without `--retry-base`.
const STREAM_RETRY_BASE: Duration = Duration::from_millis(200);

/// The assembled AWS-mode runtime.
pub struct AwsRuntime {
    /// The template.
    pub template: Template,
    /// The deployment's names.
    pub deployment: Deployment,
    /// The SDK configuration every client is built from.
    pub sdk: SdkConfig,
    /// The stores on the stack's tables.
    pub store: DynamoStore,
    /// What the template wires, built on the stack's stores.
    pub wiring: Arc<Wiring>,
    /// The Lambda service: workers, stream mapping, schedule.
    pub service: Arc<Service>,
    /// The URL of the publisher's on-failure destination (PublisherDLQ).
    pub publisher_dlq: Option<String>,
    /// The dev signing key.
    pub keys: DevKeys,
    /// The options.
    pub options: AwsOptions,
    /// The built binaries, when the runtime runs them (`--artifacts`).
    pub rehearsal: Option<Rehearsal>,
}

/// The functions' built binaries, running (a deploy rehearsal).
pub struct Rehearsal {
    /// Each function's process, by logical id.
    pub functions: BTreeMap<String, Arc<ProcessFunction>>,
    /// The API function's.
    pub api: Arc<ProcessFunction>,
    /// The sweeper's, if the template has one.
    pub sweeper: Option<Arc<ProcessFunction>>,
}

impl Rehearsal {
    /// Starts every function of `template` from `artifacts`.
    pub async fn start(
        sdk: &SdkConfig,
        template: &Template,
        deployment: &Deployment,
        artifacts: &std::path::Path,
        endpoint: Option<&str>,
    ) -> Result<Rehearsal, RuntimeError> {
        if deployment.stack.is_none() {
            return Err(RuntimeError::Deployment(
                "--artifacts needs --stack: the functions' environment is read from the deployed stack".into(),
            ));
        }
        let mut functions = BTreeMap::new();
        for f in template.functions.values() {
            let instances = if f.http { REHEARSAL_API_INSTANCES } else { 1 };
            let process =
                rehearsal::start(sdk, deployment, f, artifacts, endpoint, instances).await?;
            functions.insert(f.logical_id.clone(), process);
        }
        let by_binary = |binary: &str| {
            template
                .function_by_binary(binary)
                .and_then(|f| functions.get(&f.logical_id).cloned())
        };
        let api = by_binary("storefront-api").ok_or_else(|| {
            RuntimeError::Wiring("no function is built from storefront-api".into())
        })?;
        let sweeper = by_binary("storefront-cart-sweeper");
        Ok(Rehearsal {
            functions,
            api,
            sweeper,
        })
    }
}

impl AwsRuntime {
    /// Reads the template and the deployment, builds the clients once and wires every function.
    pub async fn build(options: AwsOptions) -> Result<AwsRuntime, RuntimeError> {
        let (template, keys) = crate::runtime::prepare(&options.template, &options.data)?;
        let sdk = match &options.endpoint {
            Some(endpoint) => storefront_runtime::aws::local_config(endpoint),
            None => storefront_runtime::aws::load_config().await,
        };
        let deployment = match &options.stack {
            Some(stack) => Deployment::from_stack(&sdk, &template, stack).await?,
            None => Deployment::from_env(&template, &options.stage, &|n| {
                std::env::var(n).ok().filter(|v| !v.is_empty())
            })?,
        };
        let resolve = |v: &EnvValue| deployment.resolve(v);
        // Every function gets the same tables (Globals); read them as the API function would.
        let api = template
            .function_by_binary("storefront-api")
            .ok_or_else(|| {
                RuntimeError::Wiring("no function is built from storefront-api".into())
            })?;
        let tables =
            function_config(api, &resolve)
                .tables()
                .map_err(|source| RuntimeError::Settings {
                    function: api.logical_id.clone(),
                    source,
                })?;
        let store = DynamoStore::new(storefront_runtime::aws::dynamodb(&sdk), tables);
        let wiring = Arc::new(wire(
            &template,
            options.sweep_every,
            &resolve,
            &Dependencies {
                stores: Stores::from(store.clone()),
                notify: Notify::Ses(aws_sdk_sesv2::Client::new(&sdk)),
            },
        )?);

        let rehearsal = match &options.artifacts {
            Some(dir) => Some(
                Rehearsal::start(
                    &sdk,
                    &template,
                    &deployment,
                    dir,
                    options.endpoint.as_deref(),
                )
                .await?,
            ),
            None => None,
        };
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let faults = Arc::default();
        let mut workers = Vec::new();
        for f in &wiring.handlers {
            let f = match rehearsal
                .as_ref()
                .and_then(|r| r.functions.get(&f.function))
            {
                Some(process) => Arc::new(HandlerFunction {
                    process: Some(process.clone()),
                    ..(**f).clone()
                }),
                None => f.clone(),
            };
            let url = queue_url(&sqs, &template, &deployment, &f.queue).await?;
            let arn = queue_arn(&sqs, &url).await?;
            let dlq = match &f.redrive {
                Some(r) => Some(queue_url(&sqs, &template, &deployment, &r.dlq).await?),
                None => None,
            };
            workers.push(Worker {
                function: f,
                source: Arc::new(SqsQueue::new(
                    sqs.clone(),
                    url,
                    arn,
                    dlq,
                    deployment.region.clone(),
                )),
                retry_base: options.retry_base,
                faults: Arc::clone(&faults),
            });
        }

        let publisher = &wiring.publisher;
        let table = store.tables().events.clone();
        let stream_arn = storefront_runtime::aws::dynamodb(&sdk)
            .describe_table()
            .table_name(&table)
            .send()
            .await
            .map_err(|e| RuntimeError::aws(format!("table {table}"), e))?
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| {
                RuntimeError::Deployment(format!(
                    "table {table} has no stream; the template enables one (StreamViewType NEW_IMAGE): is this the events table?"
                ))
            })?;
        let on_failure = match &publisher.source.on_failure {
            Some(logical) => Some(queue_url(&sqs, &template, &deployment, logical).await?),
            None => None,
        };
        let checkpoint = options.data.join(format!(
            "stream-checkpoint-{}.json",
            deployment
                .stack
                .clone()
                .unwrap_or_else(|| format!("stage-{}", deployment.stage()))
        ));
        let reader = StreamsReader::new(
            &sdk,
            store.clone(),
            stream_arn,
            deployment.region.clone(),
            on_failure.clone(),
            checkpoint,
        )?;
        let target: Arc<dyn StreamFunction> = match rehearsal
            .as_ref()
            .and_then(|r| r.functions.get(&publisher.function.logical_id))
        {
            Some(process) => process.clone(),
            None => Arc::new(Publisher::new(EventBridgeBus::new(
                storefront_runtime::aws::eventbridge(&sdk),
                publisher.settings.event_bus_name.clone(),
            ))),
        };
        let mut stream = StreamMapping::new(
            &publisher.function,
            deployment
                .physical
                .get(&publisher.function.logical_id)
                .cloned(),
            publisher.source.clone(),
            options.retry_base.unwrap_or(STREAM_RETRY_BASE),
            Arc::new(reader),
            target,
        )?;
        stream.idle = (Duration::from_millis(10), Duration::from_millis(100));
        let service = Arc::new(Service {
            workers,
            stream: Arc::new(stream),
            sweeper: match (&wiring.sweeper, &rehearsal) {
                (Some((_, every)), Some(r)) => {
                    r.sweeper.clone().map(|p| (Sweep::Process(p), *every))
                }
                (sweeper, _) => sweeper.clone(),
            },
            faults,
        });
        Ok(AwsRuntime {
            template,
            deployment,
            sdk,
            store,
            wiring,
            service,
            publisher_dlq: on_failure,
            keys,
            options,
            rehearsal,
        })
    }

    /// The HTTP app: the API on DynamoDB behind the dev-token layer, plus `/_local` tooling routes.
    pub fn http(&self) -> Router {
        let api = match &self.rehearsal {
            Some(r) => rehearsal::api_router(r.api.clone()),
            None => storefront_api::app(AppState::dynamo(
                self.store.clone(),
                self.wiring.api.settings.clone(),
            )),
        };
        crate::runtime::http(api, &self.keys, &self.service, &self.template)
    }

    /// What the runtime wired, for the start-up banner.
    pub fn describe(&self, addr: SocketAddr) -> String {
        let d = &self.deployment;
        let mut out = String::new();
        out.push_str("storefront local runtime, AWS mode (plays the Lambda service only)\n");
        out.push_str(&format!(
            "  stack     {}  (stage {}, region {}{})\n",
            d.stack.as_deref().unwrap_or("(names from the environment)"),
            d.stage(),
            d.region,
            self.options
                .endpoint
                .as_deref()
                .map(|e| format!(", endpoint {e}"))
                .unwrap_or_default()
        ));
        out.push_str(&format!(
            "  tables    {} (events), {} (state)\n",
            self.store.tables().events,
            self.store.tables().state
        ));
        out.push_str(&crate::runtime::describe_api(
            addr,
            &self.wiring.api.function,
        ));
        if let (Some(r), Some(dir)) = (&self.rehearsal, &self.options.artifacts) {
            out.push_str(&format!(
                "  rehearsal {} functions run as built binaries from {} under a Runtime API ({} instances of the API)\n",
                r.functions.len(),
                dir.display(),
                REHEARSAL_API_INSTANCES
            ));
        }
        let stream = &self.service.stream;
        out.push_str(&format!(
            "  stream    {} → {} (batch {}, bisect {}, retries {}, filters {})\n",
            stream.stream(),
            stream.function,
            stream.source.batch_size,
            stream.source.bisect_on_error,
            stream
                .source
                .maximum_retry_attempts
                .map_or("unlimited".to_owned(), |n| n.to_string()),
            stream.source.filters.len()
        ));
        out.push_str(&self.service.describe());
        out
    }

    /// Runs the API, the stream mapping, the queue workers and the sweeper until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), RuntimeError> {
        let app = self.http();
        crate::runtime::serve(listener, app, &self.service, shutdown).await
    }
}
