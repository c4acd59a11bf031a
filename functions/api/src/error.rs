//! The API's one error type and its `application/problem+json` form (RFC 9457).
//!
//! Every variant documents its status. Internal causes are logged, never
//! shown: a 500's body says only that something went wrong and gives the
//! request's correlation id to quote.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use storefront_domain::{DomainError, ErrorKind};
use storefront_store::StoreError;
use utoipa::ToSchema;

/// A problem details body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:storefront:problem:validation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request, for a human.
    pub detail: String,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body or a parameter is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no identity, or an invalid one.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the identity may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such resource (or not yours).
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists with other methods.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// 409: the resource exists, or writers kept racing past the retry budget.
    #[error("{0}")]
    Conflict(String),
    /// 409 with `Retry-After: 1`: a request with the same Idempotency-Key is
    /// still running; its answer will be replayed once it exists.
    #[error("{0}")]
    InProgress(String),
    /// 413: the body is over the limit.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 415: the body is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well formed, but a business rule refuses it.
    #[error("{0}")]
    Unprocessable(String),
    /// 500: our fault; the cause is logged, not shown.
    #[error("internal error")]
    Internal(String),
    /// 503: a backend is unavailable; retry later.
    #[error("a backend is unavailable; please retry")]
    Unavailable(String),
}

impl ApiError {
    /// The HTTP status of the error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) | ApiError::InProgress(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "validation",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::InProgress(_) => "in-progress",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::Unprocessable(_) => "business-rule",
            ApiError::Internal(_) => "internal",
            ApiError::Unavailable(_) => "unavailable",
        }
    }

    /// The problem body.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        Problem {
            kind: format!("urn:storefront:problem:{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
        }
    }
}

/// Writes a problem as an `application/problem+json` response.
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(cause) => tracing::error!(cause, "internal error"),
            ApiError::Unavailable(cause) => tracing::warn!(cause, "backend unavailable"),
            other => {
                tracing::info!(status = other.status().as_u16(), detail = %other, "request refused")
            }
        }
        let mut response = problem_response(&self.problem());
        if matches!(self, ApiError::InProgress(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e.kind() {
            ErrorKind::Invalid => ApiError::BadRequest(e.to_string()),
            ErrorKind::NotFound => ApiError::NotFound(e.to_string()),
            ErrorKind::AlreadyExists => ApiError::Conflict(e.to_string()),
            ErrorKind::Rule => ApiError::Unprocessable(e.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } | StoreError::Contention { .. } => ApiError::Conflict(
                "the resource was changed by other requests at the same time; retry".into(),
            ),
            StoreError::TooManyItems { items, limit } => ApiError::Unprocessable(format!(
                "the request would write {items} items at once; the limit is {limit}"
            )),
            StoreError::EventTooLarge { .. } => ApiError::Unprocessable(e.to_string()),
            StoreError::Backend { .. } => ApiError::Unavailable(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Domain refusals map to 400/404/409/422 by kind.
    #[test]
    fn domain_errors_map_to_statuses() {
        let cases = [
            (DomainError::QuantityOutOfRange(0), 400),
            (DomainError::NotFound("order"), 404),
            (DomainError::AlreadyExists("user"), 409),
            (DomainError::EmptyCart, 422),
        ];
        for (e, status) in cases {
            assert_eq!(ApiError::from(e).status().as_u16(), status);
        }
    }

    /// A 500 never shows its cause.
    #[test]
    fn internals_are_hidden() {
        let p = ApiError::Internal("table xyz exploded".into()).problem();
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("xyz"));
    }
}
