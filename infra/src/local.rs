//! The embedded runtime: the whole storefront on 127.0.0.1, wired from
//! `template.yaml`, on SQLite, with no AWS and no Docker.
//!
//! - The API function's Router, behind a dev-token layer that stands in for
//!   the JWT authorizer.
//! - The feed: tails the event table in global order (the stand-in for the
//!   DynamoDB stream), turns each event into the stream record DynamoDB would
//!   write and calls the publisher's own code; its bus routes each entry
//!   through the template's rules (quamina) into the target queues.
//! - A worker per handler, driving it from its durable queue with the
//!   template's batch size, visibility timeout and maxReceiveCount, partial
//!   batch failures, redelivery with backoff, and the DLQ.
//! - The sweeper on its schedule.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use axum::extract::{Path as UrlPath, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use storefront_api::{AppState, Settings};
use storefront_publisher::image::insert_record;
use storefront_publisher::{Bus, BusError, Entry, EntryResult, Publisher};
use storefront_runtime::{Config, EventHandler, HandlerError, Stores};
use storefront_store::EventLog;
use storefront_store::dynamodb::event_to_item;
use storefront_store::sqlite::SqliteStore;
use storefront_template::model::rate_seconds;
use storefront_template::router::eventbridge_event;
use storefront_template::{EnvValue, Router as Rules, Template};

use crate::auth::DevKeys;
use crate::queues::{Queues, Redrive};

/// Why the runtime could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// template.yaml could not be read or does not describe a storefront.
    #[error("{0}")]
    Template(String),
    /// A store could not be opened.
    #[error("{0}")]
    Store(String),
    /// The HTTP server failed.
    #[error("cannot serve HTTP on {addr}: {reason}")]
    Serve {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
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

/// One handler, wired as the template wires its function.
pub struct Wired {
    /// The handler's name.
    pub name: &'static str,
    /// The function's logical id.
    pub function: String,
    /// The queue's logical id.
    pub queue: String,
    /// The redrive policy.
    pub redrive: Option<Redrive>,
    /// Visibility timeout.
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
}

impl Wired {
    /// Runs one batch through the handler as Lambda's SQS event source
    /// mapping does, honouring the fault switch; returns the ids of the
    /// messages to leave for redelivery: those the handler reported, or the
    /// whole batch if one failed and the function does not report item
    /// failures.
    pub(crate) async fn invoke(&self, event: SqsEvent, faults: &Faults) -> HashSet<String> {
        let ids: Vec<String> = event
            .records
            .iter()
            .filter_map(|r| r.message_id.clone())
            .collect();
        let faulty = faults
            .lock()
            .map(|f| f.contains(self.name))
            .unwrap_or(false);
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
}

/// Handlers whose every delivery fails: a test switch that only the local
/// runtime has (there is no such code in any Lambda). Empty at start.
pub type Faults = Arc<Mutex<HashSet<String>>>;

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
    /// The API function's logical id.
    pub api_function: String,
    /// Rules → queues, as matched by quamina.
    pub rules: Rules,
    /// Handlers and their wiring.
    pub handlers: Vec<Wired>,
    /// The sweeper and how often it runs.
    pub sweeper: Option<(storefront_cart_sweeper::Sweeper, Duration)>,
    /// The dev signing key.
    pub keys: DevKeys,
    /// The fault switch.
    pub faults: Faults,
    /// The options.
    pub options: Options,
}

/// Resolves a template environment value the way CloudFormation would, with local names.
fn resolve(value: &EnvValue, template: &Template) -> String {
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

/// The environment a function gets locally, as a [`Config`].
pub fn function_config(template: &Template, function: &storefront_template::Function) -> Config {
    function_config_with(function, &|v| resolve(v, template))
}

/// The environment a function gets, its references resolved by `resolve`
/// (local names, or a deployed stack's physical names).
pub fn function_config_with(
    function: &storefront_template::Function,
    resolve: &dyn Fn(&EnvValue) -> String,
) -> Config {
    let mut pairs: Vec<(String, String)> = function
        .environment
        .iter()
        .map(|(k, v)| (k.clone(), resolve(v)))
        .collect();
    pairs.push(("STOREFRONT_FUNCTION".into(), function.logical_id.clone()));
    Config::from_pairs(pairs)
}

fn handler_for(
    binary: &str,
    config: &Config,
    stores: &Stores,
    notifier: &Arc<dyn storefront_notification::Notifier>,
) -> Result<Option<Arc<dyn EventHandler>>, String> {
    let number =
        |name: &'static str, default: u64| config.number(name, default).map_err(|e| e.to_string());
    Ok(Some(match binary {
        "storefront-inventory" => Arc::new(storefront_inventory::Inventory::new(
            stores.clone(),
            u32::try_from(number("LOW_STOCK_THRESHOLD", 5)?).unwrap_or(u32::MAX),
        )),
        "storefront-order-workflow" => Arc::new(storefront_order_workflow::OrderWorkflow::new(
            stores.clone(),
        )),
        "storefront-cart" => Arc::new(storefront_cart::CartViews::new(stores.clone())),
        "storefront-notification" => Arc::new(storefront_notification::Notifications::new(
            stores.clone(),
            notifier.clone(),
        )),
        "storefront-audit" => Arc::new(storefront_audit::Audit::new(stores.clone())),
        "storefront-analytics" => Arc::new(storefront_analytics::Analytics::new(stores.clone())),
        "storefront-user" => Arc::new(storefront_user::Users::new(stores.clone())),
        _ => return Ok(None),
    }))
}

/// What the template wires, whatever the stores: the API function, the
/// handlers with their queues, the sweeper and the publisher's stream source.
pub struct Wiring {
    /// The API function's logical id.
    pub api_function: String,
    /// Handlers and their wiring.
    pub handlers: Vec<Wired>,
    /// The sweeper and how often it runs.
    pub sweeper: Option<(storefront_cart_sweeper::Sweeper, Duration)>,
    /// The publisher function and its DynamoDB stream event source.
    pub publisher: (
        storefront_template::Function,
        storefront_template::model::StreamSource,
    ),
}

/// Wires every function of `template` onto `stores`; `resolve` gives the
/// value of an environment reference, `notifier` sends the notifications.
pub fn wire(
    template: &Template,
    sweep_every: Option<Duration>,
    resolve: &dyn Fn(&EnvValue) -> String,
    stores: &Stores,
    notifier: &Arc<dyn storefront_notification::Notifier>,
) -> Result<Wiring, RuntimeError> {
    let mut handlers = Vec::new();
    let mut sweeper = None;
    let mut api_function = None;
    let mut publisher = None;
    for f in template.functions.values() {
        let config = function_config_with(f, resolve);
        match f.binary.as_str() {
            "storefront-api" => api_function = Some(f.logical_id.clone()),
            "storefront-publisher" => {
                let source = f.streams.first().ok_or_else(|| {
                    RuntimeError::Template(format!(
                        "{} has no DynamoDB stream event source",
                        f.logical_id
                    ))
                })?;
                publisher = Some((f.clone(), source.clone()));
            }
            "storefront-cart-sweeper" => {
                let every = match (&sweep_every, f.schedules.first()) {
                    (Some(d), _) => *d,
                    (None, Some(expr)) => Duration::from_secs(rate_seconds(expr).ok_or_else(|| {
                        RuntimeError::Template(format!("{}: schedule {expr:?} is not a rate(...) the local runtime can run", f.logical_id))
                    })?),
                    (None, None) => return Err(RuntimeError::Template(format!("{} has no schedule", f.logical_id))),
                };
                let minutes = |name: &'static str, default: u64| {
                    config
                        .number(name, default)
                        .map(|m| Duration::from_secs(m * 60))
                        .map_err(|e| RuntimeError::Template(e.to_string()))
                };
                sweeper = Some((
                    storefront_cart_sweeper::Sweeper::new(
                        stores.clone(),
                        minutes("CART_IDLE_MINUTES", 60)?,
                        minutes("PAYMENT_TIMEOUT_MINUTES", 30)?,
                    ),
                    every,
                ));
            }
            binary => {
                let handler = handler_for(binary, &config, stores, notifier)
                    .map_err(|e| RuntimeError::Template(format!("{}: {e}", f.logical_id)))?
                    .ok_or_else(|| {
                        RuntimeError::Template(format!(
                            "{} is built from `{binary}`, which the local runtime does not know",
                            f.logical_id
                        ))
                    })?;
                let source = f.sqs.first().ok_or_else(|| {
                    RuntimeError::Template(format!("{} has no SQS event source", f.logical_id))
                })?;
                let queue = template.queues.get(&source.queue).ok_or_else(|| {
                    RuntimeError::Template(format!(
                        "{}: queue {} is not in the template",
                        f.logical_id, source.queue
                    ))
                })?;
                handlers.push(Wired {
                    name: handler.name(),
                    function: f.logical_id.clone(),
                    queue: queue.logical_id.clone(),
                    redrive: queue.redrive.as_ref().map(|(dlq, max)| Redrive {
                        dlq: dlq.clone(),
                        max_receive_count: *max,
                    }),
                    visibility: Duration::from_secs(queue.visibility_timeout),
                    batch_size: source.batch_size,
                    report_batch_item_failures: source.report_batch_item_failures,
                    rules: template
                        .rules_for_queue(&queue.logical_id)
                        .iter()
                        .map(|r| r.logical_id.clone())
                        .collect(),
                    handler,
                });
            }
        }
    }
    let api_function = api_function
        .ok_or_else(|| RuntimeError::Template("no function is built from storefront-api".into()))?;
    let publisher = publisher.ok_or_else(|| {
        RuntimeError::Template("no function is built from storefront-publisher".into())
    })?;
    Ok(Wiring {
        api_function,
        handlers,
        sweeper,
        publisher,
    })
}

impl LocalRuntime {
    /// Reads the template, opens the stores and wires every function.
    pub fn build(options: Options) -> Result<LocalRuntime, RuntimeError> {
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
        let store = SqliteStore::open(options.data.join("events.db"))
            .map_err(|e| RuntimeError::Store(e.to_string()))?;
        let queues = Queues::open(&options.data.join("queues.db"))
            .map_err(|e| RuntimeError::Store(e.to_string()))?;
        let keys = DevKeys::load_or_create(&options.data)
            .map_err(|e| RuntimeError::Store(e.to_string()))?;
        let stores = Stores::from(store.clone());
        let rules =
            Rules::from_template(&template).map_err(|e| RuntimeError::Template(e.to_string()))?;

        let notifier: Arc<dyn storefront_notification::Notifier> = Arc::new(
            storefront_notification::OutboxNotifier::new(stores.state.clone()),
        );
        let Wiring {
            api_function,
            handlers,
            sweeper,
            ..
        } = wire(
            &template,
            options.sweep_every,
            &|v| resolve(v, &template),
            &stores,
            &notifier,
        )?;
        Ok(LocalRuntime {
            store,
            stores,
            queues,
            template,
            api_function,
            rules,
            handlers,
            sweeper,
            keys,
            faults: Arc::new(Mutex::new(HashSet::new())),
            options,
        })
    }

    /// The HTTP app: the API behind the dev-token layer, plus `/_local` tooling routes.
    pub fn http(&self) -> Router {
        let api_config = self
            .template
            .functions
            .get(&self.api_function)
            .map(|f| function_config(&self.template, f))
            .unwrap_or_else(|| Config::from_pairs(Vec::<(String, String)>::new()));
        let settings = Settings {
            snapshot_every: api_config.snapshot_every().unwrap_or(100),
            ..Settings::default()
        };
        let api = storefront_api::app(AppState::sqlite(self.store.clone(), settings)).layer(
            axum::middleware::from_fn_with_state(self.keys.clone(), crate::auth::layer),
        );
        let queues: BTreeMap<String, (String, Option<String>)> = self
            .handlers
            .iter()
            .map(|w| {
                (
                    w.name.to_owned(),
                    (w.queue.clone(), w.redrive.as_ref().map(|r| r.dlq.clone())),
                )
            })
            .collect();
        let local = faults_router(self.faults.clone())
            .merge(
                Router::new()
                    .route("/_local/queues", get(queue_depths))
                    .with_state((self.queues.clone(), Arc::new(queues))),
            )
            .merge(
                Router::new()
                    .route("/_local/events/count", get(event_counts))
                    .route("/_local/feed/rewind", axum::routing::post(rewind_feed))
                    .with_state((self.store.clone(), self.queues.clone())),
            );
        local.merge(api)
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
        out.push_str(&format!(
            "  api       http://{addr}  ({} behind a local JWT layer)\n",
            self.api_function
        ));
        out.push_str(&format!(
            "  feed      event table → publisher → {} rules\n",
            self.rules.rules().len()
        ));
        for w in &self.handlers {
            let redrive = w.redrive.as_ref().map_or("no DLQ".to_owned(), |r| {
                format!("maxReceiveCount {} → {}", r.max_receive_count, r.dlq)
            });
            out.push_str(&format!(
                "  handler   {:<15} {} → {} (batch {}, visibility {}s, {redrive})\n",
                w.name,
                w.rules.join(", "),
                w.queue,
                w.batch_size,
                w.visibility.as_secs()
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

    /// Runs everything until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), RuntimeError> {
        match self.queues.release_in_flight() {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                messages = n,
                "redelivering messages that were in flight when the runtime last stopped"
            ),
            Err(e) => return Err(RuntimeError::Store(e.to_string())),
        }
        let app = self.http();
        let mut tasks = tokio::task::JoinSet::new();
        let runtime = Arc::new(self);
        tasks.spawn(feed(runtime.clone()));
        for i in 0..runtime.handlers.len() {
            tasks.spawn(worker(runtime.clone(), i));
        }
        if runtime.sweeper.is_some() {
            tasks.spawn(sweep(runtime.clone()));
        }
        serve_app(listener, app, tasks, shutdown).await
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops the
/// background `tasks` (feed or pollers, workers, sweeper): both modes' end.
pub(crate) async fn serve_app(
    listener: tokio::net::TcpListener,
    app: Router,
    mut tasks: tokio::task::JoinSet<()>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RuntimeError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| RuntimeError::Serve {
            addr,
            reason: e.to_string(),
        });
    tasks.abort_all();
    result
}

/// `/_local/faults`: list, set and clear the fault switch of a handler.
pub(crate) fn faults_router(faults: Faults) -> Router {
    Router::new()
        .route("/_local/faults", get(list_faults))
        .route(
            "/_local/faults/{handler}",
            put(set_fault).delete(clear_fault),
        )
        .with_state(faults)
}

async fn list_faults(State(faults): State<Faults>) -> Json<Vec<String>> {
    let mut list: Vec<String> = faults
        .lock()
        .map(|f| f.iter().cloned().collect())
        .unwrap_or_default();
    list.sort();
    Json(list)
}

async fn set_fault(
    State(faults): State<Faults>,
    UrlPath(handler): UrlPath<String>,
) -> Json<Vec<String>> {
    if let Ok(mut f) = faults.lock() {
        f.insert(handler);
    }
    list_faults(State(faults)).await
}

async fn clear_fault(
    State(faults): State<Faults>,
    UrlPath(handler): UrlPath<String>,
) -> Json<Vec<String>> {
    if let Ok(mut f) = faults.lock() {
        f.remove(&handler);
    }
    list_faults(State(faults)).await
}

/// How many events are stored: all of them, and those a request appended
/// (actor not `system:*`), which the schemathesis run compares around every
/// refused request; and how far the feed has published, which tests wait on.
async fn event_counts(
    State((store, queues)): State<(SqliteStore, Queues)>,
) -> Json<serde_json::Value> {
    let (mut all, mut by_requests, mut position) = (0u64, 0u64, 0u64);
    while let Ok(page) = store.read_after(position, 5000).await {
        let Some(last) = page.last() else { break };
        position = last.position;
        all += page.len() as u64;
        by_requests += page
            .iter()
            .filter(|l| !l.envelope.actor.starts_with("system:"))
            .count() as u64;
    }
    // How far the feed has published: equal to lastPosition once every event is in the queues.
    let published = queues.cursor(FEED_CURSOR).unwrap_or(0);
    Json(serde_json::json!({
        "events": all,
        "appendedByRequests": by_requests,
        "lastPosition": position,
        "published": published,
    }))
}

/// Moves the feed back to the start of the log: every event is published
/// again and every handler receives it a second time (the duplicate-delivery
/// drill; handlers must not double any effect).
async fn rewind_feed(
    State((_, queues)): State<(SqliteStore, Queues)>,
) -> Result<Json<serde_json::Value>, (axum::http::StatusCode, String)> {
    blocking(move || queues.enqueue_and_advance(&[], FEED_CURSOR, 0))
        .await
        .map_err(|e| (axum::http::StatusCode::SERVICE_UNAVAILABLE, e))?;
    Ok(Json(serde_json::json!({"rewound": true})))
}

type QueueNames = Arc<BTreeMap<String, (String, Option<String>)>>;

async fn queue_depths(
    State((queues, names)): State<(Queues, QueueNames)>,
) -> Json<serde_json::Value> {
    let mut out = serde_json::Map::new();
    for (handler, (queue, dlq)) in names.iter() {
        let depth = queues.depth(queue).unwrap_or(0);
        let dead = dlq.as_ref().map_or(0, |d| queues.depth(d).unwrap_or(0));
        out.insert(
            handler.clone(),
            serde_json::json!({"queue": depth, "dlq": dead}),
        );
    }
    Json(serde_json::Value::Object(out))
}

/// The local bus: routes each entry through the template's rules and
/// collects the messages for their target queues.
struct LocalBus {
    rules: Rules,
    targets: HashMap<String, Vec<String>>,
    routed: Mutex<Vec<(String, String, String, String)>>,
}

#[async_trait]
impl Bus for LocalBus {
    async fn put_events(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, BusError> {
        let mut results = Vec::with_capacity(entries.len());
        for entry in entries {
            let detail: serde_json::Value = match serde_json::from_str(&entry.detail) {
                Ok(d) => d,
                Err(e) => {
                    results.push(EntryResult::Failed {
                        code: "MalformedDetail".into(),
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            let event_id = detail["eventId"].as_str().unwrap_or_default().to_owned();
            let time = detail["occurredAt"].as_str().unwrap_or_default().to_owned();
            let event =
                eventbridge_event(&event_id, &entry.source, &entry.detail_type, &time, &detail);
            let body = event.to_string();
            let rules = self
                .rules
                .matches_event(&event)
                .map_err(|e| BusError::Call(e.to_string()))?;
            let mut routed = self.routed.lock().unwrap_or_else(|p| p.into_inner());
            for rule in rules {
                for queue in self.targets.get(rule).into_iter().flatten() {
                    routed.push((
                        event_id.clone(),
                        queue.clone(),
                        format!("{event_id}/{queue}"),
                        body.clone(),
                    ));
                }
            }
            results.push(EntryResult::Published {
                event_id: Some(event_id),
            });
        }
        Ok(results)
    }
}

const FEED_CURSOR: &str = "publisher";

async fn feed(runtime: Arc<LocalRuntime>) {
    let targets: HashMap<String, Vec<String>> = runtime
        .template
        .rules
        .values()
        .map(|r| (r.logical_id.clone(), r.targets.clone()))
        .collect();
    let publisher = Publisher::new(LocalBus {
        rules: runtime.rules.clone(),
        targets,
        routed: Mutex::new(Vec::new()),
    });
    let appended = runtime.store.appended();
    let mut idle = Duration::from_millis(5);
    loop {
        match feed_once(&runtime, &publisher).await {
            Ok(0) => {
                // Woken by an append of this process; the timer is for
                // appends by another one (an operator's command).
                let _ = tokio::time::timeout(idle, appended.notified()).await;
                idle = (idle * 2).min(Duration::from_millis(50));
            }
            Ok(_) => idle = Duration::from_millis(5),
            Err(e) => {
                tracing::error!(error = %e, "feed stalled; retrying (run `storefront verify` if this persists)");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Publishes the next page of the log; returns how many events it moved past.
async fn feed_once(
    runtime: &LocalRuntime,
    publisher: &Publisher<LocalBus>,
) -> Result<usize, String> {
    let queues = runtime.queues.clone();
    let cursor = blocking(move || queues.cursor(FEED_CURSOR)).await?;
    let page = runtime
        .store
        .read_after(cursor, 100)
        .await
        .map_err(|e| e.to_string())?;
    if page.is_empty() {
        return Ok(0);
    }
    let records: Vec<_> = page
        .iter()
        .map(|l| insert_record(format!("{:020}", l.position), &event_to_item(&l.envelope)))
        .collect();
    publisher
        .bus()
        .routed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    let report = publisher.publish(&records).await;
    let upto = report.failed.first().map_or(page.len(), |(i, _)| *i);
    if upto == 0 {
        return Err(format!(
            "the publisher refused event {}",
            page[0].envelope.event_id
        ));
    }
    let published: HashSet<&str> = page[..upto]
        .iter()
        .map(|l| l.envelope.event_id.as_str())
        .collect();
    let messages: Vec<(String, String, String)> = publisher
        .bus()
        .routed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(event_id, ..)| published.contains(event_id.as_str()))
        .map(|(_, queue, id, body)| (queue.clone(), id.clone(), body.clone()))
        .collect();
    let position = page[upto - 1].position;
    let queues = runtime.queues.clone();
    blocking(move || queues.enqueue_and_advance(&messages, FEED_CURSOR, position)).await?;
    Ok(upto)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::queues::QueueError> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

async fn worker(runtime: Arc<LocalRuntime>, index: usize) {
    let w = &runtime.handlers[index];
    let filled = runtime.queues.waker(&w.queue);
    let mut idle = Duration::from_millis(5);
    loop {
        match work_once(&runtime, w).await {
            Ok(0) => {
                // Woken when the feed fills the queue; the timer is for
                // retries coming due and for other processes' sends.
                let _ = tokio::time::timeout(idle, filled.notified()).await;
                idle = (idle * 2).min(Duration::from_millis(20));
            }
            Ok(_) => idle = Duration::from_millis(5),
            Err(e) => {
                tracing::error!(handler = w.name, error = %e, "queue unavailable; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Receives and handles one batch; returns how many messages it received.
async fn work_once(runtime: &LocalRuntime, w: &Wired) -> Result<usize, String> {
    let queues = runtime.queues.clone();
    let (queue, batch, visibility, redrive) = (
        w.queue.clone(),
        w.batch_size,
        w.visibility.as_millis() as i64,
        w.redrive.clone(),
    );
    let received =
        blocking(move || queues.receive(&queue, batch, visibility, redrive.as_ref())).await?;
    if received.is_empty() {
        return Ok(0);
    }
    let mut event = SqsEvent::default();
    event.records = received
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = Some(m.message_id.clone());
            record.receipt_handle = Some(m.id.to_string());
            record.body = Some(m.body.clone());
            record.attributes.insert(
                "ApproximateReceiveCount".into(),
                m.receive_count.to_string(),
            );
            record
        })
        .collect();
    let failed = w.invoke(event, &runtime.faults).await;
    let done: Vec<i64> = received
        .iter()
        .filter(|m| !failed.contains(&m.message_id))
        .map(|m| m.id)
        .collect();
    let retry: Vec<(i64, i64)> = received
        .iter()
        .filter(|m| failed.contains(&m.message_id))
        .map(|m| {
            let backoff = runtime.options.retry_base.as_millis() as i64
                * (1i64 << (m.receive_count.saturating_sub(1)).min(10));
            (m.id, backoff.min(visibility))
        })
        .collect();
    let queues = runtime.queues.clone();
    blocking(move || {
        queues.delete(&done)?;
        for (id, delay) in retry {
            queues.retry_after(id, delay)?;
        }
        Ok(())
    })
    .await?;
    Ok(received.len())
}

async fn sweep(runtime: Arc<LocalRuntime>) {
    if let Some((sweeper, every)) = &runtime.sweeper {
        run_sweeper(sweeper, *every).await;
    }
}

/// Runs `sweeper` every `every`, as its schedule rule would, forever.
pub(crate) async fn run_sweeper(sweeper: &storefront_cart_sweeper::Sweeper, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        match sweeper.sweep(now).await {
            Ok(report) => tracing::info!(?report, "sweep done"),
            Err(e) => tracing::warn!(error = %e, "sweep failed; next tick retries"),
        }
    }
}

/// The data folder's default, relative to the working directory.
pub fn default_data() -> PathBuf {
    Path::new(".storefront").to_path_buf()
}
