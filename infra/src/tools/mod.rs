//! Tools that measure the storefront rather than serve it (BENCHMARKS.md).
//!
//! - [`load`]: `storefront load`, shoppers doing the journey against a running runtime.
//! - [`coldstart`]: `storefront bench coldstart`, a Lambda Runtime API
//!   emulator that measures each function's release binary.
//! - [`sweep`]: `storefront bench sweep`, the sweeper over many overdue carts and orders.

pub mod coldstart;
pub mod load;
pub mod sweep;
