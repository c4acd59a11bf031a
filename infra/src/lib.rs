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
//! - [`local`]: the runtime: HTTP, feed, workers, sweeper.
//! - [`aws_mode`]: `storefront dev --aws`: the same functions against a
//!   deployed stack, playing only the Lambda service (stream and queue pollers).
//! - [`queues`]: durable local queues with SQS semantics.
//! - [`auth`]: dev tokens and the layer standing in for the JWT authorizer.
//! - [`cli`]: the commands.
//! - [`coldstart`]: `storefront bench coldstart`, the Lambda cold-start harness.
//! - [`load`]: `storefront load`, the load generator (see BENCHMARKS.md).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod aws_dlq;
pub mod aws_mode;
pub mod cli;
pub mod coldstart;
pub mod load;
pub mod local;
pub mod queues;
