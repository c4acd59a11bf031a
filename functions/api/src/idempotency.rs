//! `Idempotency-Key` on POSTs, with Stripe's semantics: requests that share
//! a key run once; the others get the first answer once it exists, or 409
//! with `Retry-After` while it is still running, never the result of a
//! second decision. The same key with a different request is 422.
//!
//! A middleware fingerprints the request (method, path, body) and looks the
//! key up (scoped to the caller). A known key replays the stored answer (or
//! says the first request is still running); a different fingerprint is
//! refused. An unknown key is **claimed** first (an in-progress record,
//! written only if no record exists, expiring after [`CLAIM_TTL_SECONDS`]
//! so a crashed request frees its key), so of several requests arriving
//! together exactly one runs. The key then travels to the handler as an
//! [`IdempotencyKey`] extension: a command that appends events turns the
//! claim into the record of its answer **in the same atomic append**. Any
//! other answer that executed is recorded by the middleware afterwards:
//! successes and business refusals (422) are stored and replayed alike;
//! a malformed or unauthorised request, a lost race (409) and a failure
//! (5xx) are not stored, and their claim is released so the key can be
//! retried.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use storefront_store::clock::now_epoch_seconds;
use storefront_store::{Condition, StateItem, StateStore, StateWrite, StoreError};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::MAX_BODY_BYTES;
use crate::identity::claims_from_parts;

/// How long a key is remembered.
pub const KEY_TTL_SECONDS: i64 = 24 * 3600;

/// How long a claim holds a key for a request still running: well past the
/// API function's timeout, so only a request that died leaves it to expire.
pub const CLAIM_TTL_SECONDS: i64 = 60;
const SORT_KEY: &str = storefront_store::keys::API_REQUEST_SK;
/// The version of a claim; the answer's record is the next one.
const CLAIM_VERSION: u64 = 1;
const IN_PROGRESS: &str =
    "a request with this Idempotency-Key is still running; retry in a second to get its answer";

/// The key of the current request, for the command pipeline.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// State-store partition key of the record (scoped to the caller).
    pub pk: String,
    /// SHA-256 of method, path and body.
    pub fingerprint: String,
}

/// Marks a response whose record was written inside the command's append.
#[derive(Debug, Clone, Copy)]
pub struct Recorded;

/// What is remembered of a first answer (or of a claim: `in_progress`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredResponse {
    /// The request's fingerprint.
    pub fingerprint: String,
    /// The status returned (0 while in progress).
    pub status: u16,
    /// The JSON body returned.
    pub body: serde_json::Value,
    /// The answer's content type, when not `application/json` (a problem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// A claim: the first request is still running.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_progress: bool,
}

impl IdempotencyKey {
    /// The claim on this key: written only if the key has no record.
    fn claim(&self) -> StateWrite {
        let claim = StoredResponse {
            fingerprint: self.fingerprint.clone(),
            status: 0,
            body: serde_json::Value::Null,
            content_type: None,
            in_progress: true,
        };
        StateWrite {
            item: StateItem {
                pk: self.pk.clone(),
                sk: SORT_KEY.into(),
                version: CLAIM_VERSION,
                value: serde_json::to_value(claim).unwrap_or_default(),
                expires_at: Some(now_epoch_seconds() + CLAIM_TTL_SECONDS),
            },
            condition: Condition::NotExists,
        }
    }

    /// The state write recording `response` for this key in place of this
    /// request's claim; it fails if the claim is gone or another's.
    pub fn record(&self, status: StatusCode, body: &serde_json::Value) -> StateWrite {
        self.record_as(status, body, None)
    }

    fn record_as(
        &self,
        status: StatusCode,
        body: &serde_json::Value,
        content_type: Option<String>,
    ) -> StateWrite {
        let stored = StoredResponse {
            fingerprint: self.fingerprint.clone(),
            status: status.as_u16(),
            body: body.clone(),
            content_type,
            in_progress: false,
        };
        StateWrite {
            item: StateItem {
                pk: self.pk.clone(),
                sk: SORT_KEY.into(),
                version: CLAIM_VERSION + 1,
                value: serde_json::to_value(stored).unwrap_or_default(),
                expires_at: Some(now_epoch_seconds() + KEY_TTL_SECONDS),
            },
            condition: Condition::VersionIs(CLAIM_VERSION),
        }
    }

    /// The answer to give when the key turns out to be taken: a replay, or 422.
    pub async fn replay(&self, state: &dyn StateStore) -> Result<Response, ApiError> {
        match state.get(&self.pk, SORT_KEY).await? {
            Some(item) => replay_or_refuse(&item, &self.fingerprint),
            None => Err(ApiError::InProgress(IN_PROGRESS.into())),
        }
    }
}

fn replay_or_refuse(item: &StateItem, fingerprint: &str) -> Result<Response, ApiError> {
    let stored: StoredResponse = serde_json::from_value(item.value.clone())
        .map_err(|e| ApiError::Internal(format!("idempotency record unreadable: {e}")))?;
    if stored.fingerprint != fingerprint {
        return Err(ApiError::Unprocessable(
            "this Idempotency-Key was used for a different request; use a new key for a new request".into(),
        ));
    }
    if stored.in_progress {
        return Err(ApiError::InProgress(IN_PROGRESS.into()));
    }
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, axum::Json(stored.body)).into_response();
    if let Some(content_type) = stored
        .content_type
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(response)
}

fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// The middleware. Applies to POST requests that carry the header.
pub async fn middleware(State(app): State<AppState>, request: Request, next: Next) -> Response {
    match handle(app, request, next).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn handle(app: AppState, request: Request, next: Next) -> Result<Response, ApiError> {
    if request.method() != Method::POST {
        return Ok(next.run(request).await);
    }
    let Some(raw_key) = request.headers().get("idempotency-key") else {
        return Ok(next.run(request).await);
    };
    let key = raw_key
        .to_str()
        .ok()
        .filter(|k| valid_key(k))
        .ok_or_else(|| {
            ApiError::BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters".into())
        })?
        .to_owned();
    let (mut parts, body) = request.into_parts();
    let scope = claims_from_parts(&parts)
        .map(|c| c.sub)
        .unwrap_or_else(|| "anonymous".into());
    let bytes = to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(MAX_BODY_BYTES))?;
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(parts.uri.path().as_bytes());
    hasher.update(b"\n");
    hasher.update(&bytes);
    let (pk, _) = storefront_store::keys::api_request(&scope, &key);
    let idem = IdempotencyKey {
        pk,
        fingerprint: hex::encode(hasher.finalize()),
    };
    if let Some(item) = app.state.get(&idem.pk, SORT_KEY).await? {
        return replay_or_refuse(&item, &idem.fingerprint);
    }
    match app.state.put(idem.claim()).await {
        Ok(()) => {}
        // Another request with this key got there first.
        Err(StoreError::ConditionFailed { .. }) => return idem.replay(&*app.state).await,
        Err(e) => return Err(e.into()),
    }
    parts.extensions.insert(idem.clone());
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if response.extensions().get::<Recorded>().is_some() {
        return Ok(response);
    }
    let status = response.status();
    if !(status.is_success() || status == StatusCode::UNPROCESSABLE_ENTITY) {
        // Not executed (malformed, unauthorised, not found), a lost race or
        // a failure: nothing to remember; free the key for a retry.
        app.state.delete(&idem.pk, SORT_KEY).await?;
        return Ok(response);
    }
    // The request ran and appended nothing (a no-op, a read, a business
    // refusal): remember its answer now.
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot buffer the response: {e}")))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|c| *c != "application/json")
        .map(str::to_owned);
    match app
        .state
        .put(idem.record_as(parts.status, &value, content_type))
        .await
    {
        Ok(()) => {}
        Err(StoreError::ConditionFailed { .. }) => return idem.replay(&*app.state).await,
        Err(e) => return Err(e.into()),
    }
    let mut response = Response::from_parts(parts, Body::from(bytes));
    response
        .headers_mut()
        .entry(header::CONTENT_TYPE)
        .or_insert(HeaderValue::from_static("application/json"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    /// Keys are bounded, visible ASCII.
    #[test]
    fn key_validation() {
        assert!(super::valid_key("abc-123_X"));
        assert!(!super::valid_key(""));
        assert!(!super::valid_key("a b"));
        assert!(!super::valid_key(&"k".repeat(256)));
    }
}
