//! The AWS mode of the local runtime (`storefront dev --aws`): it plays only
//! the Lambda service's part against a deployed stack (on AWS, or on moto
//! with `scripts/deploy_moto.py`).
//!
//! - The API function's Router on 127.0.0.1 (behind the same dev-token layer
//!   as the embedded runtime, standing in for API Gateway's JWT authorizer),
//!   on the stack's DynamoDB tables.
//! - The publisher's event source mapping: a DynamoDB Streams poller with the
//!   template's batch size, filter criteria, ReportBatchItemFailures,
//!   bisect-on-error, MaximumRetryAttempts and on-failure destination. Its
//!   checkpoint (last sequence number per shard) is kept in the data folder,
//!   as Lambda keeps a mapping's position across invocations.
//! - Each handler's SQS event source mapping: ReceiveMessage with the
//!   template's batch size, the handler's own batch runner, DeleteMessageBatch
//!   for what succeeded; failed messages are left for SQS to redeliver after
//!   the visibility timeout and to dead-letter after maxReceiveCount (with
//!   `--retry-base`, their visibility is shortened to a backoff instead, so a
//!   test need not wait out the 60 s timeout; SQS still counts the receives
//!   and dead-letters).
//! - The sweeper on its schedule.
//!
//! Tables, streams, the bus, rule matching, queues and dead-lettering are the
//! stack's own.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName, QueueAttributeName,
};
use axum::extract::State;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use storefront_api::{AppState, Settings};
use storefront_publisher::image::insert_record;
use storefront_publisher::{EventBridgeBus, Publisher};
use storefront_runtime::aws::SdkConfig;
use storefront_runtime::{Config, Stores};
use storefront_store::dynamodb::{DynamoStore, TableNames, item_to_event};
use storefront_template::model::StreamSource;
use storefront_template::{EnvValue, Router as Patterns, Template};

use crate::auth::DevKeys;
use crate::local::{Faults, RuntimeError, Wired, Wiring, function_config_with, wire};

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
}

/// What a deployment is called: its parameters, outputs and the physical
/// id of each logical resource.
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    /// The stack's name, if it was read from one.
    pub stack: Option<String>,
    /// Parameter values (with the template's defaults filled in).
    pub parameters: BTreeMap<String, String>,
    /// Stack outputs.
    pub outputs: BTreeMap<String, String>,
    /// Logical id → physical id (a table's name, a queue's URL, ...).
    pub physical: BTreeMap<String, String>,
    /// The region.
    pub region: String,
}

/// One line: the service's own code and message when it gave them (e.g.
/// "ValidationError: Stack with id x does not exist"), else the whole chain
/// (a connection refused, no credentials, ...).
fn aws_error(
    what: &str,
    e: impl aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
) -> RuntimeError {
    let detail = match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
    };
    RuntimeError::Store(format!("{what}: {detail}"))
}

impl Deployment {
    /// Reads a stack's parameters, outputs and resources from CloudFormation.
    pub async fn from_stack(
        sdk: &SdkConfig,
        template: &Template,
        stack: &str,
    ) -> Result<Deployment, RuntimeError> {
        let cfn = aws_sdk_cloudformation::Client::new(sdk);
        let described = cfn
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    &format!("stack {stack} (deployed? right region and endpoint?)"),
                    e,
                )
            })?;
        let Some(s) = described.stacks().first() else {
            return Err(RuntimeError::Store(format!("stack {stack} not found")));
        };
        let mut deployment = Deployment {
            stack: Some(stack.to_owned()),
            parameters: template_defaults(template),
            region: sdk
                .region()
                .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string()),
            ..Deployment::default()
        };
        for p in s.parameters() {
            if let (Some(k), Some(v)) = (p.parameter_key(), p.parameter_value()) {
                deployment.parameters.insert(k.to_owned(), v.to_owned());
            }
        }
        for o in s.outputs() {
            if let (Some(k), Some(v)) = (o.output_key(), o.output_value()) {
                deployment.outputs.insert(k.to_owned(), v.to_owned());
            }
        }
        let mut pages = cfn
            .list_stack_resources()
            .stack_name(stack)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error(&format!("resources of stack {stack}"), e))?;
            for r in page.stack_resource_summaries() {
                if let (Some(l), Some(p)) = (r.logical_resource_id(), r.physical_resource_id())
                    && !l.is_empty()
                    && !p.is_empty()
                {
                    deployment.physical.insert(l.to_owned(), p.to_owned());
                }
            }
        }
        Ok(deployment)
    }

    /// Names from the environment, as a function's own environment gives
    /// them: every variable the template sets from a `!Ref`/`!GetAtt` of a
    /// resource (`EVENTS_TABLE: !Ref EventsTable`, ...) is read from the
    /// process environment under the same name.
    pub fn from_env(
        template: &Template,
        stage: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Deployment, RuntimeError> {
        let mut deployment = Deployment {
            parameters: template_defaults(template),
            region: env("AWS_REGION")
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".to_owned()),
            ..Deployment::default()
        };
        deployment
            .parameters
            .insert("Stage".to_owned(), stage.to_owned());
        if let Some(sender) = env("SENDER_EMAIL") {
            deployment
                .parameters
                .insert("SenderEmail".to_owned(), sender);
        }
        let mut missing = Vec::new();
        for f in template.functions.values() {
            for (name, value) in &f.environment {
                let logical = match value {
                    EnvValue::Ref(l) | EnvValue::GetAtt(l, _) => l,
                    _ => continue,
                };
                if deployment.parameters.contains_key(logical)
                    || deployment.physical.contains_key(logical)
                {
                    continue;
                }
                match env(name) {
                    Some(v) => {
                        deployment.physical.insert(logical.clone(), v);
                    }
                    None => {
                        if !missing.contains(name) {
                            missing.push(name.clone());
                        }
                    }
                }
            }
        }
        if !missing.is_empty() {
            missing.sort();
            return Err(RuntimeError::Template(format!(
                "--aws without --stack reads the deployed names from the environment; set {} (or pass --stack NAME)",
                missing.join(", ")
            )));
        }
        Ok(deployment)
    }

    /// The stage the resources are named after.
    pub fn stage(&self) -> &str {
        self.parameters.get("Stage").map_or("dev", String::as_str)
    }

    /// Resolves a function's environment value against the deployment.
    pub fn resolve(&self, value: &EnvValue) -> String {
        match value {
            EnvValue::Literal(s) => s.clone(),
            EnvValue::Ref(name) => self
                .parameters
                .get(name)
                .or_else(|| self.physical.get(name))
                .cloned()
                .unwrap_or_default(),
            // CloudFormation on moto reports no physical id for an event bus,
            // so a bus's name also comes from the stack's BusName output.
            EnvValue::GetAtt(name, attribute) => self
                .physical
                .get(name)
                .filter(|_| attribute == "Name")
                .or_else(|| {
                    (attribute == "Name")
                        .then(|| self.outputs.get(&format!("{name}Name")))
                        .flatten()
                })
                .cloned()
                .unwrap_or_default(),
            EnvValue::Sub(text) => self.substitute(text),
        }
    }

    /// `${Name}` replaced by parameters, pseudo parameters and physical ids.
    fn substitute(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let Some(end) = rest[start..].find('}') else {
                out.push_str(&rest[start..]);
                return out;
            };
            let name = &rest[start + 2..start + end];
            let value = match name {
                "AWS::Region" => Some(self.region.clone()),
                "AWS::URLSuffix" => Some("amazonaws.com".to_owned()),
                _ => self
                    .parameters
                    .get(name)
                    .or_else(|| self.physical.get(name))
                    .cloned(),
            };
            out.push_str(&value.unwrap_or_default());
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        out
    }
}

fn template_defaults(template: &Template) -> BTreeMap<String, String> {
    template
        .raw
        .get("Parameters")
        .and_then(|p| p.as_object())
        .map(|params| {
            params
                .iter()
                .filter_map(|(name, p)| {
                    let d = p.get("Default")?;
                    Some((
                        name.clone(),
                        d.as_str().map_or_else(|| d.to_string(), str::to_owned),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A handler's queue and DLQ on SQS.
#[derive(Debug, Clone)]
pub struct QueueUrls {
    /// The queue's URL.
    pub url: String,
    /// The queue's ARN (the records' eventSourceArn).
    pub arn: String,
    /// The DLQ's URL, if the queue has a redrive policy.
    pub dlq: Option<String>,
}

/// Where the publisher's stream mapping stands, kept in the data folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// The stream the positions belong to (a new table means a new stream).
    pub stream_arn: String,
    /// Shard id → the last sequence number handed on (or given up on).
    pub shards: BTreeMap<String, String>,
    /// Records moved past since the stream's start.
    pub records: u64,
}

impl Checkpoint {
    /// Reads the checkpoint of `stream_arn` from `path`; a missing file or
    /// another stream's checkpoint starts from the stream's trim horizon.
    pub fn load(path: &Path, stream_arn: &str) -> Result<Checkpoint, RuntimeError> {
        let fresh = Checkpoint {
            stream_arn: stream_arn.to_owned(),
            ..Checkpoint::default()
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let saved: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| {
                    RuntimeError::Store(format!(
                        "{} is not a stream checkpoint ({e}); delete it to start from the stream's trim horizon",
                        path.display()
                    ))
                })?;
                Ok(if saved.stream_arn == stream_arn {
                    saved
                } else {
                    fresh
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(fresh),
            Err(e) => Err(RuntimeError::Store(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Writes the checkpoint atomically (a temporary file renamed over it).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, path)
    }
}

/// How a stream mapping retries a batch.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Split a batch whose invocation failed in two and retry each half.
    pub bisect_on_error: bool,
    /// Retries of a (sub-)batch before it goes to the on-failure destination; `None` retries forever.
    pub maximum_retry_attempts: Option<u32>,
    /// The first pause before a retry; later ones double (capped at 5 s).
    pub backoff: Duration,
}

/// Hands `records` to `invoke` the way Lambda's stream event source
/// mapping does, and returns the sub-batches it gave up on.
///
/// - The invocation answers with the first failed record
///   (ReportBatchItemFailures): everything before it is done, the rest is
///   retried from that record.
/// - The invocation fails as a whole (an error or a timeout): with
///   bisect-on-error the batch is split in two and each half retried on its
///   own, so one poisoned record ends up alone; otherwise the batch is
///   retried as it is.
/// - A (sub-)batch still failing after `maximum_retry_attempts` retries is
///   given up on (returned), so the shard moves on.
pub async fn deliver<F, Fut>(
    records: Vec<EventRecord>,
    policy: &RetryPolicy,
    mut invoke: F,
) -> Vec<Vec<EventRecord>>
where
    F: FnMut(Vec<EventRecord>) -> Fut,
    Fut: Future<Output = Result<DynamoDbEventResponse, String>>,
{
    let mut pending: VecDeque<(Vec<EventRecord>, u32)> = VecDeque::from([(records, 0)]);
    let mut given_up = Vec::new();
    while let Some((batch, retries)) = pending.pop_front() {
        if batch.is_empty() {
            continue;
        }
        let retry = match invoke(batch.clone()).await {
            Ok(response) => {
                if response.batch_item_failures.is_empty() {
                    continue;
                }
                // From the first reported record on; a failure without an
                // identifier fails the whole batch (Lambda's rule).
                let at = response
                    .batch_item_failures
                    .iter()
                    .find_map(|f| f.item_identifier.as_deref())
                    .and_then(|first| {
                        batch
                            .iter()
                            .position(|r| r.change.sequence_number.as_deref() == Some(first))
                    })
                    .unwrap_or(0);
                batch[at..].to_vec()
            }
            Err(error) => {
                tracing::warn!(%error, records = batch.len(), "stream batch invocation failed");
                if policy.bisect_on_error && batch.len() > 1 {
                    let (a, b) = batch.split_at(batch.len() / 2);
                    pending.push_front((b.to_vec(), retries + 1));
                    pending.push_front((a.to_vec(), retries + 1));
                    continue;
                }
                batch
            }
        };
        if exhausted(policy, retries + 1) {
            given_up.push(retry);
        } else {
            pause(policy, retries).await;
            pending.push_front((retry, retries + 1));
        }
    }
    given_up
}

fn exhausted(policy: &RetryPolicy, retries: u32) -> bool {
    policy.maximum_retry_attempts.is_some_and(|m| retries > m)
}

async fn pause(policy: &RetryPolicy, retries: u32) {
    let delay = policy
        .backoff
        .saturating_mul(1u32 << retries.min(10))
        .min(Duration::from_secs(5));
    tokio::time::sleep(delay).await;
}

/// The publisher's stream mapping, as the template configures it.
struct StreamMapping {
    function: storefront_template::Function,
    source: StreamSource,
    filters: Option<Patterns>,
    on_failure: Option<String>,
    stream_arn: String,
    checkpoint_path: PathBuf,
    checkpoint: Mutex<Checkpoint>,
    rewind: AtomicBool,
}

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
    /// The wiring (handlers, sweeper, API and publisher functions).
    pub wiring: Wiring,
    /// Each handler's queue, in the order of `wiring.handlers`.
    pub queues: Vec<QueueUrls>,
    /// The dev signing key.
    pub keys: DevKeys,
    /// The fault switch (as in the embedded runtime).
    pub faults: Faults,
    /// The options.
    pub options: AwsOptions,
    sqs: aws_sdk_sqs::Client,
    stream: StreamMapping,
}

impl AwsRuntime {
    /// Reads the template and the deployment, builds the clients once and wires every function.
    pub async fn build(options: AwsOptions) -> Result<AwsRuntime, RuntimeError> {
        let template = Template::load(&options.template).map_err(|e| {
            RuntimeError::Template(format!(
                "{e} (run from the repository root, or pass --template PATH)"
            ))
        })?;
        std::fs::create_dir_all(&options.data).map_err(|e| {
            RuntimeError::Store(format!(
                "cannot create data folder {}: {e}",
                options.data.display()
            ))
        })?;
        let keys = DevKeys::load_or_create(&options.data)
            .map_err(|e| RuntimeError::Store(e.to_string()))?;
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
        let api_config = template
            .functions
            .values()
            .find(|f| f.binary == "storefront-api")
            .map(|f| function_config_with(f, &resolve))
            .ok_or_else(|| {
                RuntimeError::Template("no function is built from storefront-api".into())
            })?;
        let tables: TableNames = api_config
            .tables()
            .map_err(|e| RuntimeError::Template(e.to_string()))?;
        let store = DynamoStore::new(storefront_runtime::aws::dynamodb(&sdk), tables.clone());
        let stores = Stores::from(store.clone());
        let notification_config = template
            .functions
            .values()
            .find(|f| f.binary == "storefront-notification")
            .map(|f| function_config_with(f, &resolve));
        let sender = notification_config
            .as_ref()
            .and_then(|c| c.optional("SENDER_EMAIL").map(str::to_owned))
            .unwrap_or_default();
        let notifier: Arc<dyn storefront_notification::Notifier> = Arc::new(
            storefront_notification::SesNotifier::new(aws_sdk_sesv2::Client::new(&sdk), sender),
        );
        let wiring = wire(&template, options.sweep_every, &resolve, &stores, &notifier)?;

        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let mut queues = Vec::new();
        for w in &wiring.handlers {
            let url = queue_url(&sqs, &template, &deployment, &w.queue).await?;
            let arn = queue_arn(&sqs, &url).await?;
            let dlq = match &w.redrive {
                Some(r) => Some(queue_url(&sqs, &template, &deployment, &r.dlq).await?),
                None => None,
            };
            queues.push(QueueUrls { url, arn, dlq });
        }

        let (function, source) = wiring.publisher.clone();
        let table = store.tables().events.clone();
        let stream_arn = storefront_runtime::aws::dynamodb(&sdk)
            .describe_table()
            .table_name(&table)
            .send()
            .await
            .map_err(|e| aws_error(&format!("table {table}"), e))?
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| {
                RuntimeError::Store(format!(
                    "table {table} has no stream; the template enables one (StreamViewType NEW_IMAGE): is this the events table?"
                ))
            })?;
        let filters = if source.filters.is_empty() {
            None
        } else {
            let ids: Vec<String> = (0..source.filters.len())
                .map(|i| format!("filter-{i}"))
                .collect();
            Some(
                Patterns::new(ids.iter().map(String::as_str).zip(source.filters.iter()))
                    .map_err(|e| RuntimeError::Template(format!("{}: {e}", function.logical_id)))?,
            )
        };
        let on_failure = match on_failure_destination(&template, &function.logical_id) {
            Some(logical) => Some(queue_url(&sqs, &template, &deployment, &logical).await?),
            None => None,
        };
        let checkpoint_path = options.data.join(format!(
            "stream-checkpoint-{}.json",
            deployment
                .stack
                .clone()
                .unwrap_or_else(|| format!("stage-{}", deployment.stage()))
        ));
        let checkpoint = Checkpoint::load(&checkpoint_path, &stream_arn)?;
        Ok(AwsRuntime {
            template,
            deployment,
            sdk,
            store,
            wiring,
            queues,
            keys,
            faults: Arc::new(Mutex::new(Default::default())),
            options,
            sqs,
            stream: StreamMapping {
                function,
                source,
                filters,
                on_failure,
                stream_arn,
                checkpoint_path,
                checkpoint: Mutex::new(checkpoint),
                rewind: AtomicBool::new(false),
            },
        })
    }

    /// The HTTP app: the API on DynamoDB behind the dev-token layer, plus `/_local` tooling routes.
    pub fn http(self: &Arc<Self>) -> Router {
        let resolve = |v: &EnvValue| self.deployment.resolve(v);
        let snapshot_every = self
            .template
            .functions
            .get(&self.wiring.api_function)
            .map(|f| function_config_with(f, &resolve))
            .unwrap_or_else(|| Config::from_pairs(Vec::<(String, String)>::new()))
            .snapshot_every()
            .unwrap_or(100);
        let settings = Settings {
            snapshot_every,
            ..Settings::default()
        };
        let api = storefront_api::app(AppState::dynamo(self.store.clone(), settings)).layer(
            axum::middleware::from_fn_with_state(self.keys.clone(), crate::auth::layer),
        );
        crate::local::faults_router(self.faults.clone())
            .merge(
                Router::new()
                    .route("/_local/queues", axum::routing::get(aws_queue_depths))
                    .route("/_local/events/count", axum::routing::get(aws_event_counts))
                    .route("/_local/feed/rewind", axum::routing::post(aws_rewind_feed))
                    .with_state(self.clone()),
            )
            .merge(api)
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
        out.push_str(&format!(
            "  api       http://{addr}  ({} behind a local JWT layer)\n",
            self.wiring.api_function
        ));
        out.push_str(&format!(
            "  stream    {} → {} (batch {}, bisect {}, retries {}, filters {})\n",
            self.stream.stream_arn,
            self.stream.function.logical_id,
            self.stream.source.batch_size,
            self.stream.source.bisect_on_error,
            self.stream
                .source
                .maximum_retry_attempts
                .map_or("unlimited".to_owned(), |n| n.to_string()),
            self.stream.source.filters.len()
        ));
        for (w, q) in self.wiring.handlers.iter().zip(&self.queues) {
            out.push_str(&format!(
                "  handler   {:<15} {} (batch {})\n",
                w.name, q.url, w.batch_size
            ));
        }
        if let Some((_, every)) = &self.wiring.sweeper {
            out.push_str(&format!(
                "  schedule  cart-sweeper every {}s\n",
                every.as_secs()
            ));
        }
        out
    }

    /// Runs the API, the stream poller, the queue pollers and the sweeper until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RuntimeError> {
        let runtime = Arc::new(self);
        let app = runtime.http();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(stream_poller(runtime.clone()));
        for i in 0..runtime.wiring.handlers.len() {
            tasks.spawn(queue_poller(runtime.clone(), i));
        }
        if runtime.wiring.sweeper.is_some() {
            let rt = runtime.clone();
            tasks.spawn(async move {
                if let Some((sweeper, every)) = &rt.wiring.sweeper {
                    crate::local::run_sweeper(sweeper, *every).await;
                }
            });
        }
        crate::local::serve_app(listener, app, tasks, shutdown).await
    }
}

/// The URL of a queue of the template: its physical id from the stack, or
/// its `QueueName` (resolved) looked up on SQS.
async fn queue_url(
    sqs: &aws_sdk_sqs::Client,
    template: &Template,
    deployment: &Deployment,
    logical: &str,
) -> Result<String, RuntimeError> {
    if let Some(url) = deployment.physical.get(logical)
        && url.starts_with("http")
    {
        return Ok(url.clone());
    }
    let name = template
        .raw
        .pointer(&format!("/Resources/{logical}/Properties/QueueName"))
        .and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) => o
                .get("Fn::Sub")
                .and_then(|s| s.as_str())
                .map(|s| deployment.substitute(s)),
            _ => None,
        })
        .ok_or_else(|| {
            RuntimeError::Template(format!(
                "queue {logical} has no QueueName to look up; pass --stack NAME"
            ))
        })?;
    sqs.get_queue_url()
        .queue_name(&name)
        .send()
        .await
        .map_err(|e| {
            aws_error(
                &format!("queue {name} (deployed with this stage and region?)"),
                e,
            )
        })?
        .queue_url
        .ok_or_else(|| RuntimeError::Store(format!("queue {name} has no URL")))
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, RuntimeError> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| aws_error(&format!("attributes of {url}"), e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| RuntimeError::Store(format!("queue {url} has no ARN")))
}

/// The logical id of the queue a function's stream mapping sends what it gives up on to.
fn on_failure_destination(template: &Template, function: &str) -> Option<String> {
    let events = template
        .raw
        .pointer(&format!("/Resources/{function}/Properties/Events"))?
        .as_object()?;
    events.values().find_map(|e| {
        (e.get("Type")?.as_str()? == "DynamoDB").then_some(())?;
        let destination = e.pointer("/Properties/DestinationConfig/OnFailure/Destination")?;
        storefront_template::model::referenced(destination)
    })
}

/// A DynamoDB Streams record as the record Lambda hands the function.
fn lambda_record(
    record: &aws_sdk_dynamodbstreams::types::Record,
    stream_arn: &str,
    region: &str,
) -> Option<EventRecord> {
    use aws_sdk_dynamodb::types::AttributeValue as D;
    use aws_sdk_dynamodbstreams::types::AttributeValue as S;
    let change = record.dynamodb()?;
    let image: std::collections::HashMap<String, D> = change
        .new_image()
        .map(|image| {
            image
                .iter()
                .filter_map(|(k, v)| {
                    let v = match v {
                        S::S(s) => D::S(s.clone()),
                        S::N(n) => D::N(n.clone()),
                        _ => return None,
                    };
                    Some((k.clone(), v))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = insert_record(change.sequence_number()?.to_owned(), &image);
    out.event_name = record
        .event_name()
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default();
    if let Some(id) = record.event_id() {
        out.event_id = id.to_owned();
    }
    out.event_source_arn = Some(stream_arn.to_owned());
    out.aws_region = region.to_owned();
    Some(out)
}

type Iterators = BTreeMap<String, Option<String>>;

async fn stream_poller(rt: Arc<AwsRuntime>) {
    let bus_name = rt
        .template
        .functions
        .get(&rt.stream.function.logical_id)
        .map(|f| function_config_with(f, &|v| rt.deployment.resolve(v)))
        .and_then(|c| c.bus_name().ok().map(str::to_owned))
        .unwrap_or_default();
    let publisher = Publisher::new(EventBridgeBus::new(
        storefront_runtime::aws::eventbridge(&rt.sdk),
        bus_name,
    ));
    let streams = aws_sdk_dynamodbstreams::Client::new(&rt.sdk);
    let mut iterators = Iterators::new();
    let mut idle = Duration::from_millis(10);
    loop {
        if rt.stream.rewind.swap(false, Ordering::SeqCst) {
            let mut c = rt
                .stream
                .checkpoint
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            c.shards.clear();
            c.records = 0;
            iterators.clear();
        }
        match poll_stream(&rt, &streams, &publisher, &mut iterators).await {
            Ok(0) => {
                tokio::time::sleep(idle).await;
                idle = (idle * 2).min(Duration::from_millis(100));
            }
            Ok(_) => idle = Duration::from_millis(10),
            Err(e) => {
                tracing::error!(error = %e, "stream poller: retrying in 1 s");
                iterators.clear();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Reads the next records of every shard and hands them to the publisher; returns how many it moved past.
async fn poll_stream(
    rt: &AwsRuntime,
    streams: &aws_sdk_dynamodbstreams::Client,
    publisher: &Publisher<EventBridgeBus>,
    iterators: &mut Iterators,
) -> Result<usize, String> {
    use aws_sdk_dynamodbstreams::types::ShardIteratorType;
    let mapping = &rt.stream;
    let err = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    if iterators.is_empty() {
        let mut start: Option<String> = None;
        loop {
            let described = streams
                .describe_stream()
                .stream_arn(&mapping.stream_arn)
                .set_exclusive_start_shard_id(start.clone())
                .send()
                .await
                .map_err(|e| {
                    err(
                        "DescribeStream",
                        &aws_sdk_dynamodbstreams::error::DisplayErrorContext(e),
                    )
                })?;
            let Some(description) = described.stream_description else {
                break;
            };
            for shard in description.shards() {
                let Some(id) = shard.shard_id() else { continue };
                let after = mapping
                    .checkpoint
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .shards
                    .get(id)
                    .cloned();
                let request = streams
                    .get_shard_iterator()
                    .stream_arn(&mapping.stream_arn)
                    .shard_id(id);
                let request = match after {
                    Some(seq) => request
                        .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                        .sequence_number(seq),
                    None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
                };
                let iterator = request
                    .send()
                    .await
                    .map_err(|e| {
                        err(
                            "GetShardIterator",
                            &aws_sdk_dynamodbstreams::error::DisplayErrorContext(e),
                        )
                    })?
                    .shard_iterator;
                iterators.insert(id.to_owned(), iterator);
            }
            start = description.last_evaluated_shard_id().map(str::to_owned);
            if start.is_none() {
                break;
            }
        }
    }
    let policy = RetryPolicy {
        bisect_on_error: mapping.source.bisect_on_error,
        maximum_retry_attempts: mapping.source.maximum_retry_attempts,
        backoff: rt.options.retry_base.unwrap_or(Duration::from_millis(200)),
    };
    let timeout = Duration::from_secs(mapping.function.timeout.max(1));
    let mut moved = 0;
    let mut closed = false;
    for (shard, iterator) in iterators.iter_mut() {
        let Some(current) = iterator.clone() else {
            closed = true;
            continue;
        };
        let page = streams
            .get_records()
            .shard_iterator(current)
            .limit(i32::try_from(mapping.source.batch_size).unwrap_or(100))
            .send()
            .await
            .map_err(|e| {
                err(
                    "GetRecords",
                    &aws_sdk_dynamodbstreams::error::DisplayErrorContext(e),
                )
            })?;
        *iterator = page.next_shard_iterator.clone();
        let records = page.records();
        let Some(last) = records
            .last()
            .and_then(|r| r.dynamodb())
            .and_then(|c| c.sequence_number())
            .map(str::to_owned)
        else {
            continue;
        };
        let batch: Vec<EventRecord> = records
            .iter()
            .filter_map(|r| lambda_record(r, &mapping.stream_arn, &rt.deployment.region))
            .filter(|r| passes(mapping.filters.as_ref(), r))
            .collect();
        let given_up = deliver(batch, &policy, |records| async {
            let mut event = StreamEvent::default();
            event.records = records;
            tokio::time::timeout(timeout, publisher.handle(event))
                .await
                .map_err(|_| format!("timed out after {} s", timeout.as_secs()))
        })
        .await;
        for failed in given_up {
            send_on_failure(rt, shard, &failed, policy.maximum_retry_attempts).await?;
        }
        let mut c = mapping.checkpoint.lock().unwrap_or_else(|p| p.into_inner());
        c.shards.insert(shard.clone(), last);
        c.records += records.len() as u64;
        c.save(&mapping.checkpoint_path).map_err(|e| {
            format!(
                "cannot save the stream checkpoint {}: {e}",
                mapping.checkpoint_path.display()
            )
        })?;
        moved += records.len();
    }
    if closed && moved == 0 {
        // A closed shard: describe the stream again to pick up its children.
        iterators.retain(|_, i| i.is_some());
        if iterators.is_empty() {
            return Ok(0);
        }
    }
    Ok(moved)
}

/// Whether a record passes the mapping's filter criteria (any pattern; none means all pass).
fn passes(filters: Option<&Patterns>, record: &EventRecord) -> bool {
    let Some(filters) = filters else { return true };
    match serde_json::to_vec(record) {
        Ok(json) => filters.matches(&json).is_ok_and(|hits| !hits.is_empty()),
        Err(_) => false,
    }
}

/// What Lambda sends to a stream mapping's on-failure destination: where the
/// records are, not the records (they stay in the table).
async fn send_on_failure(
    rt: &AwsRuntime,
    shard: &str,
    records: &[EventRecord],
    retries: Option<u32>,
) -> Result<(), String> {
    let seq = |r: Option<&EventRecord>| r.and_then(|r| r.change.sequence_number.clone());
    let body = serde_json::json!({
        "requestContext": {
            "functionArn": rt.deployment.physical.get(&rt.stream.function.logical_id),
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": retries.map(|r| r + 1),
        },
        "version": "1.0",
        "timestamp": storefront_store::clock::now_rfc3339(),
        "DDBStreamBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": seq(records.first()),
            "endSequenceNumber": seq(records.last()),
            "batchSize": records.len(),
            "streamArn": rt.stream.stream_arn,
        }
    });
    tracing::error!(%body, "stream records given up on after every retry");
    let Some(url) = &rt.stream.on_failure else {
        return Ok(());
    };
    rt.sqs
        .send_message()
        .queue_url(url)
        .message_body(body.to_string())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "on-failure destination {url}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })
}

async fn queue_poller(rt: Arc<AwsRuntime>, index: usize) {
    loop {
        if let Err(e) = poll_queue(&rt, index).await {
            tracing::error!(handler = rt.wiring.handlers[index].name, error = %e, "queue poller: retrying in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// One long poll of a handler's queue and one invocation of its batch.
async fn poll_queue(rt: &AwsRuntime, index: usize) -> Result<usize, String> {
    let (w, q): (&Wired, &QueueUrls) = (&rt.wiring.handlers[index], &rt.queues[index]);
    let sqs_err = |what: &str, e: &dyn std::fmt::Display| format!("{what} {}: {e}", q.url);
    let received = rt
        .sqs
        .receive_message()
        .queue_url(&q.url)
        .max_number_of_messages(i32::try_from(w.batch_size.clamp(1, 10)).unwrap_or(10))
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|e| {
            sqs_err(
                "ReceiveMessage",
                &aws_sdk_sqs::error::DisplayErrorContext(e),
            )
        })?;
    let messages = received.messages();
    if messages.is_empty() {
        return Ok(0);
    }
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id().map(str::to_owned);
            record.receipt_handle = m.receipt_handle().map(str::to_owned);
            record.body = m.body().map(str::to_owned);
            record.md5_of_body = m.md5_of_body().map(str::to_owned);
            if let Some(attributes) = m.attributes() {
                for (k, v) in attributes {
                    record.attributes.insert(k.as_str().to_owned(), v.clone());
                }
            }
            record.event_source = Some("aws:sqs".to_owned());
            record.event_source_arn = Some(q.arn.clone());
            record.aws_region = Some(rt.deployment.region.clone());
            record
        })
        .collect();
    let failed = w.invoke(event, &rt.faults).await;
    let mut done = Vec::new();
    let mut retry = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let (Some(id), Some(handle)) = (m.message_id(), m.receipt_handle()) else {
            continue;
        };
        if failed.contains(id) {
            let receives: u32 = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            retry.push((i, handle, receives));
        } else {
            done.push((i, handle));
        }
    }
    if !done.is_empty() {
        let entries: Result<Vec<_>, _> = done
            .iter()
            .map(|(i, handle)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*handle)
                    .build()
            })
            .collect();
        let entries = entries.map_err(|e| e.to_string())?;
        let out = rt
            .sqs
            .delete_message_batch()
            .queue_url(&q.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                sqs_err(
                    "DeleteMessageBatch",
                    &aws_sdk_sqs::error::DisplayErrorContext(e),
                )
            })?;
        if !out.failed().is_empty() {
            // Not deleted means delivered again later: handlers are idempotent.
            tracing::warn!(
                handler = w.name,
                failed = out.failed().len(),
                "some handled messages could not be deleted; they will be redelivered"
            );
        }
    }
    if let (Some(base), false) = (rt.options.retry_base, retry.is_empty()) {
        let entries: Result<Vec<_>, _> = retry
            .iter()
            .map(|(i, handle, receives)| {
                let delay = base
                    .saturating_mul(1u32 << receives.saturating_sub(1).min(10))
                    .min(w.visibility);
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*handle)
                    .visibility_timeout(i32::try_from(delay.as_secs()).unwrap_or(i32::MAX))
                    .build()
            })
            .collect();
        let entries = entries.map_err(|e| e.to_string())?;
        rt.sqs
            .change_message_visibility_batch()
            .queue_url(&q.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                sqs_err(
                    "ChangeMessageVisibilityBatch",
                    &aws_sdk_sqs::error::DisplayErrorContext(e),
                )
            })?;
    }
    Ok(messages.len())
}

async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<u64, String> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    Ok(out
        .attributes()
        .map(|a| {
            a.values()
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>()
        })
        .unwrap_or(0))
}

type Failure = (axum::http::StatusCode, String);

fn unavailable(e: String) -> Failure {
    (axum::http::StatusCode::SERVICE_UNAVAILABLE, e)
}

/// Per handler: messages in its queue (visible, in flight or delayed) and in its DLQ.
async fn aws_queue_depths(
    State(rt): State<Arc<AwsRuntime>>,
) -> Result<Json<serde_json::Value>, Failure> {
    let mut out = serde_json::Map::new();
    for (w, q) in rt.wiring.handlers.iter().zip(&rt.queues) {
        let depth = queue_depth(&rt.sqs, &q.url).await.map_err(unavailable)?;
        let dead = match &q.dlq {
            Some(url) => queue_depth(&rt.sqs, url).await.map_err(unavailable)?,
            None => 0,
        };
        out.insert(
            w.name.to_owned(),
            serde_json::json!({"queue": depth, "dlq": dead}),
        );
    }
    Ok(Json(serde_json::Value::Object(out)))
}

/// The same counts as the embedded runtime's: events stored (a scan of the
/// events table), those a request appended, and how far the stream mapping
/// has got (`published` equals `lastPosition` once every stored event has
/// gone through the publisher).
async fn aws_event_counts(
    State(rt): State<Arc<AwsRuntime>>,
) -> Result<Json<serde_json::Value>, Failure> {
    let (mut all, mut by_requests, mut undecodable) = (0u64, 0u64, 0u64);
    let mut pages = rt
        .store
        .client()
        .scan()
        .table_name(&rt.store.tables().events)
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        let item = item.map_err(|e| {
            unavailable(format!(
                "scan of the events table: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(e)
            ))
        })?;
        all += 1;
        match item_to_event(&item) {
            Ok(event) if !event.actor.starts_with("system:") => by_requests += 1,
            Ok(_) => {}
            // Still a record of the stream, which the mapping moves past (or gives up on).
            Err(_) => undecodable += 1,
        }
    }
    let published = rt.stream.checkpoint.lock().map(|c| c.records).unwrap_or(0);
    Ok(Json(serde_json::json!({
        "events": all,
        "appendedByRequests": by_requests,
        "lastPosition": all,
        "published": published,
        "undecodable": undecodable,
    })))
}

/// Moves the stream mapping back to the trim horizon: every event is
/// published again (the duplicate-delivery drill).
///
/// Answers once the poller has taken the request (its count of published
/// records is back at zero), so a caller can then wait for it to catch up.
async fn aws_rewind_feed(
    State(rt): State<Arc<AwsRuntime>>,
) -> Result<Json<serde_json::Value>, Failure> {
    rt.stream.rewind.store(true, Ordering::SeqCst);
    for _ in 0..1000 {
        if !rt.stream.rewind.load(Ordering::SeqCst) {
            return Ok(Json(serde_json::json!({"rewound": true})));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(unavailable(
        "the stream poller did not take the rewind within 10 s; see the runtime's log".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::streams::DynamoDbBatchItemFailure;

    fn record(seq: u32) -> EventRecord {
        insert_record(format!("{seq:05}"), &Default::default())
    }

    fn seqs(batch: &[EventRecord]) -> Vec<String> {
        batch
            .iter()
            .filter_map(|r| r.change.sequence_number.clone())
            .collect()
    }

    fn policy(bisect: bool, retries: Option<u32>) -> RetryPolicy {
        RetryPolicy {
            bisect_on_error: bisect,
            maximum_retry_attempts: retries,
            backoff: Duration::from_millis(1),
        }
    }

    fn failing_at(seq: &str) -> DynamoDbEventResponse {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(seq.to_owned());
        let mut response = DynamoDbEventResponse::default();
        response.batch_item_failures = vec![failure];
        response
    }

    /// A reported failure retries from that record on, not the records before it.
    #[tokio::test]
    async fn partial_failure_retries_from_the_failed_record() {
        let calls = Mutex::new(Vec::new());
        let given_up = deliver((1..=5).map(record).collect(), &policy(true, Some(3)), |b| {
            let first_call = calls.lock().map(|c| c.is_empty()).unwrap_or(false);
            calls.lock().expect("calls").push(seqs(&b));
            async move {
                Ok(if first_call {
                    failing_at("00003")
                } else {
                    DynamoDbEventResponse::default()
                })
            }
        })
        .await;
        assert!(given_up.is_empty());
        assert_eq!(
            calls.into_inner().expect("calls"),
            vec![
                vec!["00001", "00002", "00003", "00004", "00005"],
                vec!["00003", "00004", "00005"],
            ]
        );
    }

    /// A function error bisects the batch until the poisoned record is alone;
    /// it is given up on after the retries, every other record is delivered.
    #[tokio::test]
    async fn function_error_bisects_down_to_the_poisoned_record() {
        let delivered = Mutex::new(Vec::new());
        let given_up = deliver(
            (1..=8).map(record).collect(),
            &policy(true, Some(10)),
            |b| {
                let poisoned = seqs(&b).iter().any(|s| s == "00006");
                if !poisoned {
                    delivered.lock().expect("delivered").extend(seqs(&b));
                }
                async move {
                    if poisoned {
                        Err("boom".to_owned())
                    } else {
                        Ok(DynamoDbEventResponse::default())
                    }
                }
            },
        )
        .await;
        assert_eq!(
            given_up.iter().map(|b| seqs(b)).collect::<Vec<_>>(),
            vec![vec!["00006".to_owned()]]
        );
        let mut delivered = delivered.into_inner().expect("delivered");
        delivered.sort();
        assert_eq!(
            delivered,
            [
                "00001", "00002", "00003", "00004", "00005", "00007", "00008"
            ]
        );
    }

    /// A reported failure without an identifier fails the whole batch.
    #[tokio::test]
    async fn a_failure_without_identifier_retries_the_whole_batch() {
        let calls = Mutex::new(Vec::new());
        let given_up = deliver((1..=3).map(record).collect(), &policy(true, Some(1)), |b| {
            calls.lock().expect("calls").push(seqs(&b).len());
            async {
                let mut response = DynamoDbEventResponse::default();
                response.batch_item_failures = vec![DynamoDbBatchItemFailure::default()];
                Ok(response)
            }
        })
        .await;
        assert_eq!(calls.into_inner().expect("calls"), vec![3, 3]);
        assert_eq!(
            given_up.iter().map(|b| b.len()).collect::<Vec<_>>(),
            vec![3]
        );
    }

    /// Without bisect, a failing batch is retried whole, then given up on whole.
    #[tokio::test]
    async fn without_bisect_the_whole_batch_is_retried_then_given_up() {
        let calls = Mutex::new(0);
        let given_up = deliver(
            (1..=4).map(record).collect(),
            &policy(false, Some(2)),
            |_| {
                *calls.lock().expect("calls") += 1;
                async { Err("boom".to_owned()) }
            },
        )
        .await;
        assert_eq!(
            calls.into_inner().expect("calls"),
            3,
            "first try + 2 retries"
        );
        assert_eq!(given_up.len(), 1);
        assert_eq!(seqs(&given_up[0]).len(), 4);
    }

    /// The template's filter lets event inserts through, not removals nor stray items.
    #[test]
    fn the_templates_filter_passes_only_event_inserts() {
        let template = Template::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../template.yaml"
        )))
        .expect("template");
        let source = &template
            .functions
            .values()
            .find(|f| f.binary == "storefront-publisher")
            .expect("publisher")
            .streams[0];
        let patterns = Patterns::new(source.filters.iter().map(|p| ("f", p))).expect("patterns");
        let mut item = std::collections::HashMap::new();
        item.insert(
            "eventType".to_owned(),
            aws_sdk_dynamodb::types::AttributeValue::S("cart.created".into()),
        );
        let insert = insert_record("1", &item);
        assert!(passes(Some(&patterns), &insert));
        let mut remove = insert.clone();
        remove.event_name = "REMOVE".into();
        assert!(!passes(Some(&patterns), &remove));
        let stray = insert_record("2", &Default::default());
        assert!(!passes(Some(&patterns), &stray));
        assert!(passes(None, &stray), "no filter: everything passes");
    }

    /// Names from the environment: every referenced resource must be given.
    #[test]
    fn names_from_the_environment() {
        let template = Template::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../template.yaml"
        )))
        .expect("template");
        let env = |n: &str| match n {
            "EVENTS_TABLE" => Some("ev".to_owned()),
            "STATE_TABLE" => Some("st".to_owned()),
            _ => None,
        };
        let missing = Deployment::from_env(&template, "qa", &env).expect_err("bus missing");
        assert!(missing.to_string().contains("EVENT_BUS_NAME"), "{missing}");
        let env = |n: &str| match n {
            "EVENTS_TABLE" => Some("ev".to_owned()),
            "STATE_TABLE" => Some("st".to_owned()),
            "EVENT_BUS_NAME" => Some("bus".to_owned()),
            _ => None,
        };
        let d = Deployment::from_env(&template, "qa", &env).expect("deployment");
        assert_eq!(d.stage(), "qa");
        assert_eq!(d.resolve(&EnvValue::Ref("EventsTable".into())), "ev");
        assert_eq!(
            d.resolve(&EnvValue::GetAtt("Bus".into(), "Name".into())),
            "bus"
        );
        assert_eq!(
            d.substitute("storefront-${Stage}-cart"),
            "storefront-qa-cart"
        );
    }
}
