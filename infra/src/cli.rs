//! The `storefront` commands. Every failure is one clear line on stderr and
//! a non-zero exit, never a panic.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use storefront_domain::{EventEnvelope, StreamId};
use storefront_store::{EventLog, EventStore, StoreError};

use crate::aws::{AwsOptions, AwsRuntime};
use crate::error::RuntimeError;
use crate::local::queues::QueueError;
use crate::local::{LocalRuntime, Options};
use crate::service::AwsCallError;

/// The storefront's local runtime and operator CLI.
#[derive(Debug, Parser)]
#[command(name = "storefront", version, about, long_about = None)]
pub struct Cli {
    /// The data folder: events.db, queues.db and the dev signing key live here.
    #[arg(
        long,
        global = true,
        env = "STOREFRONT_DATA",
        default_value = ".storefront"
    )]
    pub data: PathBuf,
    /// The SAM template to wire from.
    #[arg(
        long,
        global = true,
        env = "STOREFRONT_TEMPLATE",
        default_value = "template.yaml"
    )]
    pub template: PathBuf,
    /// What to do (default: dev).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the whole storefront on 127.0.0.1 (the default command).
    Dev(DevArgs),
    /// Print a token the local runtime accepts.
    Token {
        /// The user id (the token's `sub`).
        #[arg(long)]
        user: String,
        /// Put the user in the `admin` group.
        #[arg(long)]
        admin: bool,
        /// How long the token is valid, e.g. 12h, 30m.
        #[arg(long, default_value = "12h")]
        ttl: humantime::Duration,
    },
    /// List events, of one stream or all, and optionally follow new ones.
    Events {
        /// A stream id such as `cart#alice`; all streams if absent.
        #[arg(long)]
        stream: Option<String>,
        /// Keep printing new events as they are appended.
        #[arg(long)]
        follow: bool,
        /// One JSON envelope per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Inspect and redrive the dead-letter queues.
    Dlq {
        /// list or redrive.
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Rebuild a handler's views from the event store from scratch.
    Replay {
        /// The handler: cart, user or analytics.
        #[arg(long)]
        handler: String,
    },
    /// Check every stored event's checksum and the audit chain.
    Verify,
    /// Drive a running local runtime with N shoppers doing the journey, then print latencies (BENCHMARKS.md).
    Load(crate::tools::load::LoadArgs),
    /// Measurements (BENCHMARKS.md).
    Bench {
        /// What to measure.
        #[command(subcommand)]
        what: BenchCommand,
    },
}

/// `bench` sub-commands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Spawn each function's release binary under a local Lambda Runtime API and measure init, first invoke and peak RSS beside a bare hello binary.
    Coldstart(crate::tools::coldstart::ColdstartArgs),
}

/// `dlq` sub-commands.
#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// What each handler's DLQ holds.
    List {
        /// Only this handler.
        #[arg(long)]
        handler: Option<String>,
        /// The deployed queues on AWS (credentials, region and AWS_ENDPOINT_URL from the environment).
        #[arg(long)]
        aws: bool,
        /// The deployed stage (the template's `Stage` parameter), with --aws.
        #[arg(long, env = "STOREFRONT_STAGE", default_value = "dev")]
        stage: String,
    },
    /// Move DLQ messages back to their queue for another try.
    Redrive {
        /// Only this handler's DLQ.
        #[arg(long)]
        handler: Option<String>,
        /// The deployed queues on AWS (SQS StartMessageMoveTask, or receive/send/delete where unavailable).
        #[arg(long)]
        aws: bool,
        /// The deployed stage (the template's `Stage` parameter), with --aws.
        #[arg(long, env = "STOREFRONT_STAGE", default_value = "dev")]
        stage: String,
    },
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable (colours in a terminal).
    Pretty,
    /// One JSON object per line, as in CloudWatch.
    Json,
}

/// `dev` options.
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// The port of the API (0 picks a free one).
    #[arg(long, env = "STOREFRONT_PORT", default_value_t = 3000)]
    pub port: u16,
    /// The address to listen on.
    #[arg(long, env = "STOREFRONT_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Log format.
    #[arg(
        long,
        env = "STOREFRONT_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,
    /// Run the sweeper this often instead of the template's schedule (e.g. 2s).
    #[arg(long)]
    pub sweep_every: Option<humantime::Duration>,
    /// The first redelivery delay after a handler failure; later ones double
    /// [default: 200ms embedded; with --aws, failed messages wait out the
    /// queue's visibility timeout unless this is given].
    #[arg(long)]
    pub retry_base: Option<humantime::Duration>,
    /// AWS mode: play only the Lambda service against a deployed stack (its
    /// tables, stream, bus, rules and queues), instead of the embedded SQLite
    /// stand-ins.
    #[arg(long)]
    pub aws: bool,
    /// With --aws: the CloudFormation stack to read the names from
    /// (otherwise EVENTS_TABLE, STATE_TABLE and EVENT_BUS_NAME from the environment).
    #[arg(long, env = "STOREFRONT_STACK")]
    pub stack: Option<String>,
    /// With --aws and no --stack: the deployed stage (the queues are named after it).
    #[arg(long, env = "STOREFRONT_STAGE", default_value = "dev")]
    pub stage: String,
    /// With --aws: send every AWS call to this endpoint (a moto server on
    /// loopback) with test credentials; otherwise the SDK's own configuration.
    #[arg(long, requires = "aws")]
    pub endpoint: Option<String>,
}

impl Default for DevArgs {
    fn default() -> Self {
        DevArgs {
            port: 3000,
            host: IpAddr::from([127, 0, 0, 1]),
            log_format: LogFormat::Pretty,
            sweep_every: None,
            retry_base: None,
            aws: false,
            stack: None,
            stage: "dev".to_owned(),
            endpoint: None,
        }
    }
}

/// A command's failure, as the one line the user sees; each variant keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command cannot be done as asked; the message says what to do instead.
    #[error("{0}")]
    Usage(String),
    /// A runtime could not be built or stopped.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The event or state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The local queue file failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The dev signing key could not be read or used.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// The load generator failed.
    #[error(transparent)]
    Load(#[from] crate::tools::load::LoadError),
    /// The cold-start harness failed.
    #[error(transparent)]
    Coldstart(#[from] crate::tools::coldstart::ColdstartError),
    /// A summary could not be written as JSON.
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The API's address is taken or not ours.
    #[error(
        "cannot listen on {addr}: {source}; pass --port N (or STOREFRONT_PORT) or stop whatever uses it"
    )]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An AWS call failed.
    #[error("{what}: {source}")]
    Aws {
        /// What was asked.
        what: String,
        /// The service's answer.
        #[source]
        source: AwsCallError,
    },
    /// A handler failed while views were rebuilt.
    #[error("{handler} failed on {event_id} ({event_type}): {source}")]
    Replay {
        /// The handler.
        handler: String,
        /// The event it failed on.
        event_id: String,
        /// Its type.
        event_type: String,
        /// Why.
        #[source]
        source: storefront_runtime::HandlerError,
    },
    /// A projection could not forget its views.
    #[error("{handler}: cannot reset its views: {source}")]
    Reset {
        /// The handler.
        handler: String,
        /// Why.
        #[source]
        source: storefront_runtime::HandlerError,
    },
    /// A stored event fails its checksum or does not decode.
    #[error("event after position {position} fails verification: {source}")]
    Verify {
        /// The last good position.
        position: u64,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The audit chain is broken.
    #[error("audit chain: {0}")]
    Audit(#[from] storefront_audit::VerifyError),
}

impl CliError {
    /// An AWS call's failure while asking for `what`.
    pub fn aws<E>(what: impl Into<String>, e: E) -> CliError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
    {
        CliError::Aws {
            what: what.into(),
            source: AwsCallError::new(e),
        }
    }
}

fn options(cli: &Cli, dev: &DevArgs) -> Options {
    Options {
        data: cli.data.clone(),
        template: cli.template.clone(),
        sweep_every: dev.sweep_every.map(Into::into),
        retry_base: dev
            .retry_base
            .map_or(Duration::from_millis(200), Into::into),
    }
}

fn aws_options(cli: &Cli, dev: &DevArgs) -> AwsOptions {
    AwsOptions {
        data: cli.data.clone(),
        template: cli.template.clone(),
        endpoint: dev.endpoint.clone(),
        stack: dev.stack.clone(),
        stage: dev.stage.clone(),
        sweep_every: dev.sweep_every.map(Into::into),
        retry_base: dev.retry_base.map(Into::into),
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match &cli.command {
        None => dev(&cli, &DevArgs::default()).await,
        Some(Command::Dev(args)) => dev(&cli, args).await,
        Some(Command::Token { user, admin, ttl }) => {
            let keys = crate::auth::DevKeys::load_or_create(&cli.data)?;
            let token = keys.issue(user, *admin, ttl.as_secs())?;
            println!("{token}");
            Ok(())
        }
        Some(Command::Events {
            stream,
            follow,
            json,
        }) => events(&cli, stream.as_deref(), *follow, *json).await,
        Some(Command::Dlq { action }) => match action {
            DlqAction::List {
                aws: true,
                handler,
                stage,
            }
            | DlqAction::Redrive {
                aws: true,
                handler,
                stage,
            } => dlq_aws(&cli, action, handler.as_deref(), stage).await,
            _ => dlq(&cli, action),
        },
        Some(Command::Replay { handler }) => replay(&cli, handler).await,
        Some(Command::Verify) => verify(&cli).await,
        Some(Command::Load(args)) => load(&cli, args).await,
        Some(Command::Bench {
            what: BenchCommand::Coldstart(args),
        }) => coldstart(&cli, args).await,
    }
}

async fn load(cli: &Cli, args: &crate::tools::load::LoadArgs) -> Result<(), CliError> {
    let summary = crate::tools::load::run(&cli.data, args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", crate::tools::load::render(&summary));
    }
    Ok(())
}

async fn coldstart(
    cli: &Cli,
    args: &crate::tools::coldstart::ColdstartArgs,
) -> Result<(), CliError> {
    let results = crate::tools::coldstart::run(&cli.template, args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", crate::tools::coldstart::render(&results));
    }
    Ok(())
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = match format {
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
        LogFormat::Pretty => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .try_init(),
    };
    // A second init (tests running several runtimes) keeps the first subscriber.
    let _ = result;
}

async fn dev(cli: &Cli, args: &DevArgs) -> Result<(), CliError> {
    init_logs(args.log_format);
    let addr = SocketAddr::new(args.host, args.port);
    let listen = |source| CliError::Listen { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(listen)?;
    let bound = listener.local_addr().map_err(listen)?;
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if args.aws {
        let runtime = AwsRuntime::build(aws_options(cli, args)).await?;
        banner(&runtime.describe(bound), &runtime.keys, bound)?;
        runtime.serve(listener, shutdown).await?;
    } else {
        let runtime = LocalRuntime::build(options(cli, args))?;
        banner(&runtime.describe(bound), &runtime.keys, bound)?;
        runtime.serve(listener, shutdown).await?;
    }
    Ok(())
}

fn banner(
    description: &str,
    keys: &crate::auth::DevKeys,
    bound: SocketAddr,
) -> Result<(), CliError> {
    let example = keys.issue("alice", false, 12 * 3600)?;
    println!("{description}");
    println!(
        "Try it (a token for alice, valid 12h; `storefront token --user NAME [--admin]` makes more):"
    );
    println!("  curl -s http://{bound}/products");
    println!(
        "  curl -s -X POST -H 'Authorization: Bearer {example}' -H 'Content-Type: application/json' \\"
    );
    println!(
        "       -d '{{\"email\":\"alice@example.com\",\"name\":\"Alice\"}}' http://{bound}/users"
    );
    println!();
    println!("listening on http://{bound}");
    Ok(())
}

fn print_event(e: &EventEnvelope, position: Option<u64>, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(e) {
            println!("{line}");
        }
    } else {
        let position = position.map_or_else(|| "-".to_owned(), |p| p.to_string());
        println!(
            "{position:>7}  {}  {:<40} v{:<5} {:<28} {}",
            e.occurred_at, e.stream_id, e.version, e.event_type, e.actor
        );
    }
}

async fn events(cli: &Cli, stream: Option<&str>, follow: bool, json: bool) -> Result<(), CliError> {
    let path = cli.data.join("events.db");
    if !path.exists() {
        return Err(CliError::Usage(format!(
            "no events yet: {} does not exist (start the storefront with `cargo run --release`)",
            path.display()
        )));
    }
    let store = storefront_store::sqlite::SqliteStore::open(&path)?;
    if !json {
        println!(
            "{:>7}  {:<24}  {:<40} {:<6} {:<28} actor",
            "pos", "occurredAt", "stream", "ver", "type"
        );
    }
    match stream {
        Some(raw) => {
            let id = StreamId::parse(raw)
                .map_err(|e| CliError::Usage(format!("--stream {raw:?}: {e}")))?;
            let mut version = 0;
            loop {
                for e in store.load(&id, version).await? {
                    version = e.version;
                    print_event(&e, None, json);
                }
                if !follow {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        None => {
            let mut position = 0;
            loop {
                let page = store.read_after(position, 1000).await?;
                for l in &page {
                    print_event(&l.envelope, Some(l.position), json);
                    position = l.position;
                }
                if page.is_empty() {
                    if !follow {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }
}

fn dlq(cli: &Cli, action: &DlqAction) -> Result<(), CliError> {
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

async fn dlq_aws(
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

async fn replay(cli: &Cli, name: &str) -> Result<(), CliError> {
    let runtime = LocalRuntime::build(options(cli, &DevArgs::default()))?;
    let replayable: Vec<&str> = runtime
        .handlers()
        .filter(|w| w.handler.projection().is_some())
        .map(|w| w.name)
        .collect();
    let wired = runtime.handlers().find(|w| w.name == name);
    let (Some(wired), true) = (wired, replayable.contains(&name)) else {
        return Err(CliError::Usage(format!(
            "{name:?} cannot be replayed: only the view handlers ({}) can; the others' effects are events already in the store",
            replayable.join(", ")
        )));
    };
    let handler = wired.handler.clone();
    let Some(projection) = handler.projection() else {
        return Err(CliError::Usage(format!("{name:?} cannot be replayed")));
    };

    // Forget the views, then feed every event again in commit order.
    let mut log = Vec::new();
    let mut position = 0;
    loop {
        let page = runtime.store.read_after(position, 5000).await?;
        let Some(last) = page.last() else { break };
        position = last.position;
        log.extend(page.into_iter().map(|l| l.envelope));
    }
    let streams: BTreeSet<String> = log.iter().map(|e| e.stream_id.clone()).collect();
    projection
        .reset(&streams)
        .await
        .map_err(|source| CliError::Reset {
            handler: name.to_owned(),
            source,
        })?;
    let relevant: Vec<&EventEnvelope> = log
        .iter()
        .filter(|e| handler.consumes().iter().any(|t| t.name() == e.event_type))
        .collect();
    let bar = indicatif::ProgressBar::new(relevant.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!("replaying {name}"));
    for e in relevant {
        handler.handle(e).await.map_err(|source| CliError::Replay {
            handler: name.to_owned(),
            event_id: e.event_id.clone(),
            event_type: e.event_type.clone(),
            source,
        })?;
        bar.inc(1);
    }
    bar.finish();
    println!("{name}: views rebuilt from {} events", log.len());
    Ok(())
}

async fn verify(cli: &Cli) -> Result<(), CliError> {
    let path = cli.data.join("events.db");
    if !path.exists() {
        return Err(CliError::Usage(format!(
            "nothing to verify: {} does not exist",
            path.display()
        )));
    }
    let store = storefront_store::sqlite::SqliteStore::open(&path)?;
    let mut position = 0;
    let mut count = 0u64;
    loop {
        let page = match store.read_after(position, 1000).await {
            Ok(page) => page,
            Err(source) => return Err(CliError::Verify { position, source }),
        };
        let Some(last) = page.last() else { break };
        position = last.position;
        count += page.len() as u64;
    }
    println!("events: {count} checksums verified");
    let days = storefront_audit::verify_all(&store).await?;
    for (day, n) in &days {
        println!("audit {day}: {n} records, chain intact");
    }
    if days.is_empty() {
        println!("audit: no records yet");
    }
    Ok(())
}
