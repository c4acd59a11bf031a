//! Tools that measure the storefront rather than serve it (BENCHMARKS.md).
//!
//! - [`load`]: `storefront load`, shoppers doing the journey against a running runtime.
//! - [`coldstart`]: `storefront bench coldstart`, a Lambda Runtime API
//!   emulator that measures each function's release binary.
//! - [`sweep`]: `storefront bench sweep`, the sweeper over many overdue carts and orders.
//! - [`requests`]: the AWS requests of a load run, counted by moto's recorder.

pub mod coldstart;
pub mod load;
pub mod requests;
pub mod sweep;
