//! # storefront-domain
//!
//! The storefront's business rules, and nothing else: the catalogue of domain
//! events, the envelope they travel in, and one decider per aggregate (cart,
//! order, product, user).
//!
//! Everything here is pure and synchronous. Facts from outside the domain (the
//! clock, fresh ids, a product's current price) arrive on the command or in
//! [`EventMeta`]; nothing in this crate reads a clock, a file or the network.
//! That keeps every rule testable with plain given/when/then tests and lets
//! the API, the handlers and the local runtime share exactly one copy of it.
//!
//! ## Layout
//! - [`events`]: the catalogue: every event type as a typed payload, its dotted
//!   name, its aggregate, and its JSON Schema.
//! - [`envelope`]: the stored and published form of an event, with its
//!   SHA-256 checksum over the canonical (stream, version, type, data).
//! - [`decider`]: the `Aggregate` trait (`decide` and `evolve`) and the
//!   given/when/then test helper.
//! - [`cart`], [`order`], [`product`], [`user`]: the four aggregates.
//! - [`ids`]: validated identifiers and money.
//! - [`error`]: [`DomainError`], each variant documenting the HTTP status it
//!   becomes at the API.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cart;
pub mod decider;
pub mod envelope;
pub mod error;
pub mod events;
pub mod ids;
pub mod order;
pub mod product;
pub mod user;

pub use decider::Aggregate;
pub use envelope::{EnvelopeError, EventEnvelope, EventMeta, StreamId, seal_batch};
pub use error::{DomainError, ErrorKind};
pub use events::{Event, EventType};
pub use ids::{Currency, OrderId, Sku, UserId};
