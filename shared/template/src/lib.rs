//! # storefront-template
//!
//! `template.yaml` is the one description of how the storefront is wired:
//! which functions exist, what environment they get, which queue feeds each
//! handler, which rule (event pattern) feeds each queue, how often a message
//! is retried before its DLQ, what runs on a schedule. This crate reads it
//! (CloudFormation short tags such as `!Ref`, `!GetAtt`, `!Sub` included)
//! into a small model, so the local runtime wires the same system the SAM
//! deploy does, and the tests can check the template against the code.
//!
//! [`router::PatternRouter`] evaluates the rules' event patterns with `quamina`, a
//! real EventBridge-pattern matcher; `$or`, which quamina lacks, is expanded
//! into several patterns first.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod model;
pub mod router;

pub use model::{EnvValue, Function, Queue, Rule, Template, TemplateError};
pub use router::{PatternRouter, RouterError};
