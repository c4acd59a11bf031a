//! Extractors that turn every malformed input into a clear 4xx problem:
//! JSON bodies (415 for another media type, 413 over the limit, 400 for
//! malformed JSON, wrong types or unknown fields), path ids, and the
//! request's correlation id.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest request body accepted, in bytes (64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON request body of type `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(MAX_BODY_BYTES)
            } else {
                ApiError::BadRequest(format!(
                    "cannot read the request body: {}",
                    rejection.body_text()
                ))
            }
        })?;
        match content_type.as_deref() {
            Some(ct) if is_json(ct) => {}
            Some(ct) => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "send the body as application/json, not {ct}"
                )));
            }
            None => {
                return Err(ApiError::UnsupportedMediaType(
                    "send the body as JSON with Content-Type: application/json".into(),
                ));
            }
        }
        if bytes.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
    }
}

/// The id that ties every event and log line of a flow together: the
/// caller's `X-Correlation-Id` if it is sensible, else API Gateway's request
/// id, else a fresh one.
#[derive(Debug, Clone)]
pub struct Correlation(pub String);

fn sensible(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

impl<S: Send + Sync> FromRequestParts<S> for Correlation {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(id) = parts
            .headers
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| sensible(v))
        {
            return Ok(Correlation(id.to_owned()));
        }
        if let Some(RequestContext::ApiGatewayV2(ctx)) = parts.extensions.request_context_ref()
            && let Some(id) = ctx.request_id.as_deref().filter(|v| sensible(v))
        {
            return Ok(Correlation(id.to_owned()));
        }
        Ok(Correlation(storefront_store::clock::new_event_id()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// JSON media types are recognised with parameters and +json suffixes.
    #[test]
    fn media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }

    /// Correlation ids are bounded and plain.
    #[test]
    fn correlation_ids() {
        assert!(sensible("req-1:abc"));
        assert!(!sensible(""));
        assert!(!sensible("a b"));
        assert!(!sensible(&"x".repeat(129)));
    }
}
