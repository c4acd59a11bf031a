//! The one error type of the domain.

use thiserror::Error;

/// How the API should treat a [`DomainError`]: each kind maps to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input itself is malformed (HTTP 400).
    Invalid,
    /// The aggregate or a thing it refers to does not exist (HTTP 404).
    NotFound,
    /// The aggregate already exists (HTTP 409).
    AlreadyExists,
    /// The input is well formed but a business rule forbids it (HTTP 422).
    Rule,
}

/// Why a command was refused. Tests match on variants, never on messages.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// A field failed validation (400): empty, too long, odd characters, out of range.
    #[error("{field}: {reason}")]
    Invalid {
        /// The offending field, as the API names it (camelCase).
        field: &'static str,
        /// What is wrong with it, for a human.
        reason: String,
    },
    /// A cart line's quantity is outside 1..=99 (400).
    #[error("quantity must be between 1 and 99 per cart line, got {0}")]
    QuantityOutOfRange(i64),
    /// The aggregate does not exist yet (404).
    #[error("{0} does not exist")]
    NotFound(&'static str),
    /// The aggregate exists already (409).
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// The product is unknown (404 at the API when named in a body: 422).
    #[error("product {0} does not exist")]
    UnknownProduct(String),
    /// The product is discontinued and can no longer be sold (422).
    #[error("product {0} is discontinued")]
    ProductDiscontinued(String),
    /// The cart has no line for this SKU (404).
    #[error("the cart has no line for {0}")]
    NoSuchLine(String),
    /// A cart holds one currency; this product is priced in another (422).
    #[error("the cart is in {cart}, the product is priced in {product}")]
    CurrencyMismatch {
        /// The cart's currency.
        cart: String,
        /// The product's currency.
        product: String,
    },
    /// The cart already holds the most distinct products it may (422).
    #[error("a cart holds at most {0} different products")]
    TooManyLines(usize),
    /// An empty cart cannot check out (422).
    #[error("the cart is empty")]
    EmptyCart,
    /// Not enough available stock (422): on hand minus reserved.
    #[error("only {available} of {sku} available, {requested} requested")]
    InsufficientStock {
        /// The product.
        sku: String,
        /// What was asked for.
        requested: u32,
        /// What is on hand and not reserved.
        available: u32,
    },
    /// A stock adjustment would take on-hand stock below zero or below what is reserved (422).
    #[error("stock of {sku} cannot go to {would_be}: {reserved} reserved")]
    StockBelowReserved {
        /// The product.
        sku: String,
        /// On-hand stock after the adjustment.
        would_be: i64,
        /// Units reserved for orders.
        reserved: u32,
    },
    /// The order is not in a state that allows the command (422).
    #[error("order is {status}; cannot {action}")]
    InvalidTransition {
        /// The order's current status.
        status: &'static str,
        /// What was attempted.
        action: &'static str,
    },
    /// A payment's amount differs from the order's total (422).
    #[error("payment of {paid} does not match the order total {total}")]
    PaymentMismatch {
        /// The amount offered, in minor units.
        paid: i64,
        /// The order total, in minor units.
        total: i64,
    },
    /// The user is deactivated (422).
    #[error("user is deactivated")]
    UserDeactivated,
}

impl DomainError {
    /// The kind, which the API maps to a status code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DomainError::Invalid { .. } | DomainError::QuantityOutOfRange(_) => ErrorKind::Invalid,
            DomainError::NotFound(_) | DomainError::NoSuchLine(_) => ErrorKind::NotFound,
            DomainError::AlreadyExists(_) => ErrorKind::AlreadyExists,
            DomainError::UnknownProduct(_)
            | DomainError::ProductDiscontinued(_)
            | DomainError::CurrencyMismatch { .. }
            | DomainError::EmptyCart
            | DomainError::TooManyLines(_)
            | DomainError::InsufficientStock { .. }
            | DomainError::StockBelowReserved { .. }
            | DomainError::InvalidTransition { .. }
            | DomainError::PaymentMismatch { .. }
            | DomainError::UserDeactivated => ErrorKind::Rule,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        DomainError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
