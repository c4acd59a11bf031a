//! Every function of the storefront, constructed one way.
//!
//! The registry maps a template function's binary (`CodeUri`'s crate,
//! `BuildProperties.Binary`) to its constructor: parse the function's typed
//! settings from the environment the template gives it, then build it on
//! the runtime's stores. The Lambda `main`s do the same with the process
//! environment; the runtimes here do it with the template's values resolved
//! locally or against a deployment, so both read the same variables with the
//! same defaults and fail on the same bad values.

use std::sync::Arc;
use std::time::Duration;

use storefront_runtime::{Config, ConfigError, EventHandler, Stores};
use storefront_template::model::{StreamSource, rate_seconds};
use storefront_template::{EnvValue, Function, Template};

use super::function::HandlerFunction;
use crate::error::RuntimeError;
use crate::local::queues::Redrive;

/// How the notification function sends.
#[derive(Clone)]
pub enum Notify {
    /// Into the notification outbox of the state store (the embedded runtime).
    Outbox,
    /// Through SES v2 (the AWS mode), from the function's `SENDER_EMAIL`.
    Ses(aws_sdk_sesv2::Client),
}

/// What functions are built on.
#[derive(Clone)]
pub struct Dependencies {
    /// The event and state stores.
    pub stores: Stores,
    /// How notifications are sent.
    pub notify: Notify,
}

/// One function, constructed.
pub enum Built {
    /// The API: its Router is served by the runtime on its own store.
    Api(storefront_api::Settings),
    /// The publisher: the runtime gives it its bus.
    Publisher(storefront_publisher::Settings),
    /// A handler driven from a queue.
    Handler(Arc<dyn EventHandler>),
    /// The scheduled sweeper.
    Sweeper(storefront_cart_sweeper::Sweeper),
}

/// Builds one function from its environment and dependencies.
pub type Constructor = fn(&Config, &Dependencies) -> Result<Built, ConfigError>;

fn handler(h: impl EventHandler + 'static) -> Result<Built, ConfigError> {
    Ok(Built::Handler(Arc::new(h)))
}

/// Binary name → constructor, for every function the storefront has.
pub const REGISTRY: &[(&str, Constructor)] = &[
    ("storefront-api", |c, _| {
        Ok(Built::Api(storefront_api::Settings::from_config(c)?))
    }),
    ("storefront-publisher", |c, _| {
        Ok(Built::Publisher(
            storefront_publisher::Settings::from_config(c)?,
        ))
    }),
    ("storefront-inventory", |c, d| {
        let s = storefront_inventory::Settings::from_config(c)?;
        handler(storefront_inventory::Inventory::new(d.stores.clone(), &s))
    }),
    ("storefront-order-workflow", |c, d| {
        let s = storefront_order_workflow::Settings::from_config(c)?;
        handler(storefront_order_workflow::OrderWorkflow::new(
            d.stores.clone(),
            &s,
        ))
    }),
    ("storefront-cart", |c, d| {
        let s = storefront_cart::Settings::from_config(c)?;
        handler(storefront_cart::CartViews::new(d.stores.clone(), &s))
    }),
    ("storefront-notification", |c, d| {
        let s = storefront_notification::Settings::from_config(c)?;
        let notifier: Arc<dyn storefront_notification::Notifier> = match &d.notify {
            Notify::Outbox => Arc::new(storefront_notification::OutboxNotifier::new(
                d.stores.state.clone(),
            )),
            Notify::Ses(client) => Arc::new(storefront_notification::SesNotifier::new(
                client.clone(),
                s.sender_email.clone(),
            )),
        };
        handler(storefront_notification::Notifications::new(
            d.stores.clone(),
            &s,
            notifier,
        ))
    }),
    ("storefront-audit", |c, d| {
        let s = storefront_audit::Settings::from_config(c)?;
        handler(storefront_audit::Audit::new(d.stores.clone(), &s))
    }),
    ("storefront-analytics", |c, d| {
        let s = storefront_analytics::Settings::from_config(c)?;
        handler(storefront_analytics::Analytics::new(d.stores.clone(), &s))
    }),
    ("storefront-user", |c, d| {
        let s = storefront_user::Settings::from_config(c)?;
        handler(storefront_user::Users::new(d.stores.clone(), &s))
    }),
    ("storefront-cart-sweeper", |c, d| {
        let s = storefront_cart_sweeper::Settings::from_config(c)?;
        Ok(Built::Sweeper(storefront_cart_sweeper::Sweeper::new(
            d.stores.clone(),
            &s,
        )))
    }),
];

/// The constructor of the function built from `binary`.
pub fn constructor(binary: &str) -> Option<Constructor> {
    REGISTRY
        .iter()
        .find(|(name, _)| *name == binary)
        .map(|(_, build)| *build)
}

/// The environment a function gets, its references resolved by `resolve`
/// (local names, or a deployed stack's physical names).
pub fn function_config(function: &Function, resolve: &dyn Fn(&EnvValue) -> String) -> Config {
    let mut pairs: Vec<(String, String)> = function
        .environment
        .iter()
        .map(|(k, v)| (k.clone(), resolve(v)))
        .collect();
    pairs.push(("STOREFRONT_FUNCTION".into(), function.logical_id.clone()));
    Config::from_pairs(pairs)
}

/// The API function.
pub struct ApiFunction {
    /// Its logical id.
    pub function: String,
    /// Its settings.
    pub settings: storefront_api::Settings,
}

/// The publisher function and its stream event source.
pub struct PublisherFunction {
    /// The function.
    pub function: Function,
    /// Its DynamoDB stream event source.
    pub source: StreamSource,
    /// Its settings.
    pub settings: storefront_publisher::Settings,
}

/// What the template wires, whatever the stores.
pub struct Wiring {
    /// The API function.
    pub api: ApiFunction,
    /// The handlers with their queues.
    pub handlers: Vec<Arc<HandlerFunction>>,
    /// The sweeper and how often its schedule fires.
    pub sweeper: Option<(super::Sweep, Duration)>,
    /// The publisher and its stream source.
    pub publisher: PublisherFunction,
}

/// Builds every function of `template` through the [`REGISTRY`] on
/// `dependencies`; `resolve` gives the value of an environment reference,
/// `sweep_every` overrides the sweeper's schedule.
pub fn wire(
    template: &Template,
    sweep_every: Option<Duration>,
    resolve: &dyn Fn(&EnvValue) -> String,
    dependencies: &Dependencies,
) -> Result<Wiring, RuntimeError> {
    let mut handlers = Vec::new();
    let mut sweeper = None;
    let mut api = None;
    let mut publisher = None;
    for f in template.functions.values() {
        let wiring = |what: String| RuntimeError::Wiring(format!("{}: {what}", f.logical_id));
        let build = constructor(&f.binary).ok_or_else(|| {
            wiring(format!(
                "built from `{}`, which the runtime does not know",
                f.binary
            ))
        })?;
        let built = build(&function_config(f, resolve), dependencies).map_err(|source| {
            RuntimeError::Settings {
                function: f.logical_id.clone(),
                source,
            }
        })?;
        match built {
            Built::Api(settings) => {
                api = Some(ApiFunction {
                    function: f.logical_id.clone(),
                    settings,
                })
            }
            Built::Publisher(settings) => {
                let source = f
                    .streams
                    .first()
                    .ok_or_else(|| wiring("no DynamoDB stream event source".into()))?;
                publisher = Some(PublisherFunction {
                    function: f.clone(),
                    source: source.clone(),
                    settings,
                });
            }
            Built::Sweeper(s) => {
                let every = match (&sweep_every, f.schedules.first()) {
                    (Some(d), _) => *d,
                    (None, Some(expr)) => {
                        Duration::from_secs(rate_seconds(expr).ok_or_else(|| {
                            wiring(format!(
                                "schedule {expr:?} is not a rate(...) the local runtime can run"
                            ))
                        })?)
                    }
                    (None, None) => return Err(wiring("no schedule".into())),
                };
                sweeper = Some((super::Sweep::Library(Arc::new(s)), every));
            }
            Built::Handler(handler) => {
                let source = f
                    .sqs
                    .first()
                    .ok_or_else(|| wiring("no SQS event source".into()))?;
                let queue = template.queues.get(&source.queue).ok_or_else(|| {
                    wiring(format!("queue {} is not in the template", source.queue))
                })?;
                handlers.push(Arc::new(HandlerFunction {
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
                    process: None,
                }));
            }
        }
    }
    Ok(Wiring {
        api: api.ok_or_else(|| {
            RuntimeError::Wiring("no function is built from storefront-api".into())
        })?,
        handlers,
        sweeper,
        publisher: publisher.ok_or_else(|| {
            RuntimeError::Wiring("no function is built from storefront-publisher".into())
        })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use storefront_store::sqlite::SqliteStore;

    fn template() -> Template {
        Template::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).expect("template")
    }

    /// Every `AWS::Serverless::Function` of template.yaml has a constructor,
    /// every constructor a function, and each function, built the way its
    /// Lambda `main` builds it (settings, then DynamoDB stores for those that
    /// have stores), reads every variable the template gives it and none it
    /// does not (which in Lambda would silently take a default).
    #[test]
    fn every_template_function_is_registered_and_reads_its_whole_environment() {
        let template = template();
        let declared: Vec<&String> = template
            .resource_types
            .iter()
            .filter(|(_, kind)| kind.as_str() == "AWS::Serverless::Function")
            .map(|(id, _)| id)
            .collect();
        assert_eq!(declared.len(), template.functions.len());
        assert!(declared.len() >= 10, "{declared:?}");
        let store = SqliteStore::open_in_memory().expect("store");
        let dependencies = Dependencies {
            stores: Stores::from(store),
            notify: Notify::Outbox,
        };
        // Building clients makes no call: nothing listens on this endpoint.
        let sdk = storefront_runtime::aws::local_config("http://127.0.0.1:9");
        for f in template.functions.values() {
            let build = constructor(&f.binary)
                .unwrap_or_else(|| panic!("{}: no constructor for {}", f.logical_id, f.binary));
            let config = function_config(f, &|v| crate::local::resolve(v, &template));
            let built =
                build(&config, &dependencies).unwrap_or_else(|e| panic!("{}: {e}", f.logical_id));
            if !matches!(built, Built::Publisher(_)) {
                storefront_runtime::lambda::dynamo_stores(&config, &sdk)
                    .unwrap_or_else(|e| panic!("{}: {e}", f.logical_id));
            }
            let read = config.read_names();
            let unread: Vec<&String> = f
                .environment
                .keys()
                .filter(|name| !read.contains(*name))
                .collect();
            assert!(
                unread.is_empty(),
                "{}: template.yaml sets {unread:?}, which the function never reads",
                f.logical_id
            );
            let unset: Vec<&String> = read
                .iter()
                .filter(|name| !f.environment.contains_key(*name))
                .collect();
            assert!(
                unset.is_empty(),
                "{}: reads {unset:?}, which template.yaml does not set for it",
                f.logical_id
            );
        }
        for (binary, _) in REGISTRY {
            assert!(
                template.function_by_binary(binary).is_some(),
                "{binary} is registered but template.yaml has no function built from it"
            );
        }
    }

    /// A bad value fails the function's construction with its variable
    /// named, the same in every runtime: no silent default.
    #[test]
    fn a_malformed_variable_fails_wiring_with_its_name() {
        let mut template = template();
        for f in template.functions.values_mut() {
            f.environment.insert(
                "SNAPSHOT_EVERY".into(),
                EnvValue::Literal("every now and then".into()),
            );
        }
        let store = SqliteStore::open_in_memory().expect("store");
        let error = wire(
            &template,
            None,
            &|v| crate::local::resolve(v, &template),
            &Dependencies {
                stores: Stores::from(store),
                notify: Notify::Outbox,
            },
        )
        .err()
        .expect("refused");
        assert!(
            matches!(
                &error,
                RuntimeError::Settings {
                    source: ConfigError::Invalid {
                        name: "SNAPSHOT_EVERY",
                        ..
                    },
                    ..
                }
            ),
            "{error}"
        );
    }
}
