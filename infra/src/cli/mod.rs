//! The `storefront` commands. Every failure is one clear line on stderr and
//! a non-zero exit, never a panic.
//!
//! This module parses the command line and dispatches; each command lives
//! in its own file: [`dev`] (start a runtime), [`log`] (`events`,
//! `verify`), [`dlq`] (`dlq list|redrive`, embedded or `--aws`),
//! [`replay`] (rebuild a projection's views), [`republish`] (publish again
//! what PublisherDLQ describes), [`notifications`] (sends of unknown outcome).

mod dev;
mod dlq;
mod log;
mod notifications;
mod replay;
mod republish;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use storefront_store::StoreError;

use crate::aws::AwsOptions;
use crate::error::RuntimeError;
use crate::local::Options;
use crate::local::queues::QueueError;

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
        /// A verified email address in the token (its `email` claim, as in a
        /// Cognito ID token): registration takes the address from it.
        #[arg(long)]
        email: Option<String>,
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
    /// Publish again the events the publisher gave up on (those PublisherDLQ
    /// describes), then delete their descriptions; safe to repeat, as every
    /// consumer deduplicates by event id. With --aws, on a deployed stack.
    Republish(TargetArgs),
    /// Notifications whose send has an unknown outcome (never resent): list them.
    Notifications {
        /// `unknown`.
        #[command(subcommand)]
        what: NotificationsCommand,
    },
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
    /// Seed a scratch store with many idle carts and unpaid orders, then sweep it as the schedule would (invocations within a budget) and count the store calls.
    Sweep(crate::tools::sweep::SweepArgs),
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

/// `notifications` sub-commands.
#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// The sends whose answer was lost: check each with the provider.
    Unknown(TargetArgs),
}

/// Which storefront a command works on: the embedded runtime's data folder,
/// or with `--aws` a deployed stack.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// AWS mode: a deployed stack (its tables, stream, bus, rules and
    /// queues), instead of the embedded SQLite stand-ins.
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

impl Default for TargetArgs {
    fn default() -> Self {
        TargetArgs {
            aws: false,
            stack: None,
            stage: "dev".to_owned(),
            endpoint: None,
        }
    }
}

impl TargetArgs {
    fn dev_args(&self) -> DevArgs {
        DevArgs {
            target: self.clone(),
            ..DevArgs::default()
        }
    }
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
    /// Embedded, or (`--aws`, playing only the Lambda service) a deployed stack.
    #[command(flatten)]
    pub target: TargetArgs,
    /// With `--aws --stack`: run the functions as the binaries `sam build`
    /// made (`DIR/{Function}/bootstrap`, e.g. `.aws-sam/build`) under a
    /// Lambda Runtime API, with the environment each has in the deployed
    /// stack: a rehearsal of the deploy, before it happens.
    #[arg(long, value_name = "DIR", requires = "aws")]
    pub artifacts: Option<PathBuf>,
}

impl Default for DevArgs {
    fn default() -> Self {
        DevArgs {
            port: 3000,
            host: IpAddr::from([127, 0, 0, 1]),
            log_format: LogFormat::Pretty,
            sweep_every: None,
            retry_base: None,
            target: TargetArgs::default(),
            artifacts: None,
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
    /// `bench sweep` failed.
    #[error(transparent)]
    SweepBench(#[from] crate::tools::sweep::SweepBenchError),
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
        endpoint: dev.target.endpoint.clone(),
        stack: dev.target.stack.clone(),
        stage: dev.target.stage.clone(),
        sweep_every: dev.sweep_every.map(Into::into),
        retry_base: dev.retry_base.map(Into::into),
        artifacts: dev.artifacts.clone(),
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match &cli.command {
        None => dev::dev(&cli, &DevArgs::default()).await,
        Some(Command::Dev(args)) => dev::dev(&cli, args).await,
        Some(Command::Token {
            user,
            admin,
            email,
            ttl,
        }) => {
            let keys = crate::auth::DevKeys::load_or_create(&cli.data)?;
            let token = keys.issue(user, *admin, email.as_deref(), ttl.as_secs())?;
            println!("{token}");
            Ok(())
        }
        Some(Command::Events {
            stream,
            follow,
            json,
        }) => log::events(&cli, stream.as_deref(), *follow, *json).await,
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
            } => dlq::dlq_aws(&cli, action, handler.as_deref(), stage).await,
            _ => dlq::dlq(&cli, action),
        },
        Some(Command::Replay { handler }) => replay::replay(&cli, handler).await,
        Some(Command::Verify) => log::verify(&cli).await,
        Some(Command::Republish(args)) => republish::republish(&cli, &args.dev_args()).await,
        Some(Command::Notifications {
            what: NotificationsCommand::Unknown(args),
        }) => notifications::unknown_notifications(&cli, &args.dev_args()).await,
        Some(Command::Load(args)) => load(&cli, args).await,
        Some(Command::Bench {
            what: BenchCommand::Coldstart(args),
        }) => coldstart(&cli, args).await,
        Some(Command::Bench {
            what: BenchCommand::Sweep(args),
        }) => {
            let bench = crate::tools::sweep::run(args).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&bench)?);
            } else {
                print!("{}", crate::tools::sweep::render(&bench));
            }
            Ok(())
        }
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
