//! # storefront-runtime
//!
//! The Lambda glue every function links, so each `main.rs` stays a few lines:
//!
//! - [`config`]: settings from the environment Lambda (or the local runtime)
//!   gives the function, with errors that say which variable is missing.
//! - [`settings`]: [`Globals`], the typed settings template.yaml gives every
//!   function; each function crate's `Settings` holds them next to its own.
//! - [`aws`]: the AWS SDK configuration and clients, built once per cold
//!   start; an endpoint override for moto and the local runtime's AWS mode.
//! - [`telemetry`]: logs through `tracing` in the format and at the level
//!   of the function's `LoggingConfig` (flat JSON lines that each carry the
//!   invocation's request and X-Ray trace ids; no ANSI), and EMF metrics in
//!   namespace `Storefront` through `metrics_cloudwatch_embedded`, with a
//!   cold-start metric.
//! - [`sqs`]: the SQS batch runner with partial batch failures
//!   (`ReportBatchItemFailures`): a failing record never fails the others.
//! - [`handler`]: the [`handler::EventHandler`] trait and the exactly-once
//!   helpers: [`handler::append_once`] for handlers that append events,
//!   [`handler::project`] for views caught up from the store.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aws;
pub mod catalog;
pub mod config;
pub mod handler;
pub mod lambda;
pub mod settings;
pub mod sqs;
pub mod telemetry;

pub use config::{Config, ConfigError};
pub use handler::{EventHandler, Projection, Stores};
pub use settings::Globals;
pub use sqs::{HandlerError, Outcome};
