//! # storefront (the local runtime and CLI)
//!
//! `cargo run --release` starts the whole storefront on 127.0.0.1, wired from
//! `template.yaml` itself: the API, the stream → publisher → rules → queues
//! → handlers path with retries and DLQs, and the sweeper's schedule, on
//! SQLite under `.storefront/`. No AWS account, no Docker.
//!
//! The same binary is the operator's CLI: `token`, `events`, `dlq list`,
//! `dlq redrive`, `replay` and `verify`, and the measuring tools `load` and
//! `bench coldstart` (BENCHMARKS.md).
//!
//! ## Layout
//! - [`service`]: the Lambda service, once for both modes: the function
//!   registry, the queue worker, the stream mapping, the redelivery backoff
//!   and the `/_local` control routes.
//! - [`local`]: the embedded runtime's stand-ins for AWS: SQLite queues, the
//!   event log as the stream, the bus routing through the template's rules.
//! - [`aws`]: `storefront dev --aws`: the same service against a deployed
//!   stack (deployment discovery, SQS, DynamoDB Streams), and `dlq --aws`.
//! - [`runtime`]: what both runtimes share around the service (start-up,
//!   the HTTP app, serving); [`error`]: why a runtime could not start.
//! - [`auth`]: dev tokens and the layer standing in for the JWT authorizer.
//! - [`cli`]: the commands.
//! - [`tools`]: measuring, not serving: the load generator and the Lambda
//!   cold-start harness (BENCHMARKS.md).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod aws;
pub mod cli;
pub mod error;
pub mod local;
pub mod runtime;
pub mod service;
pub mod tools;
