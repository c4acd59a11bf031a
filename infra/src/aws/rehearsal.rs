//! The deploy rehearsal (`storefront dev --aws --stack NAME --artifacts
//! .aws-sam/build`): the functions run as the binaries `sam build` made,
//! each under the Lambda Runtime API ([`crate::service::runtime_api`]) with
//! the environment its function has in the deployed stack, read back from
//! Lambda's own configuration of it (`GetFunctionConfiguration`), as Lambda
//! would give it. The event source mappings, the schedule and API Gateway
//! are played as in the AWS mode; only what runs the code changes.
//!
//! API Gateway's part: the local JWT layer verifies the dev token as the
//! HTTP API's authorizer verifies Cognito's, and each request goes to the
//! API function as the HTTP API's payload format 2.0, the verified claims in
//! `requestContext.authorizer.jwt.claims`; the function's answer (payload
//! 2.0 response) becomes the HTTP response.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use storefront_api::Claims;
use storefront_runtime::aws::SdkConfig;
use storefront_template::Function;

use super::deployment::Deployment;
use crate::error::RuntimeError;
use crate::service::runtime_api::{ProcessFunction, ProcessSpec, lambda_environment};

/// Largest request body the front accepts (the API's own limit is lower).
const MAX_BODY: usize = 1 << 20;

/// Starts `function`'s `bootstrap` from `artifacts` (`{artifacts}/{LogicalId}/bootstrap`,
/// the layout of `sam build`) with its deployed configuration.
pub async fn start(
    sdk: &SdkConfig,
    deployment: &Deployment,
    function: &Function,
    artifacts: &Path,
    endpoint: Option<&str>,
    instances: usize,
) -> Result<Arc<ProcessFunction>, RuntimeError> {
    let name = deployment
        .physical
        .get(&function.logical_id)
        .cloned()
        .ok_or_else(|| {
            RuntimeError::Deployment(format!(
                "the stack has no function {}; deploy the template the artifacts were built from",
                function.logical_id
            ))
        })?;
    let lambda = aws_sdk_lambda::Client::new(sdk);
    let config = lambda
        .get_function_configuration()
        .function_name(&name)
        .send()
        .await
        .map_err(|e| RuntimeError::aws(format!("Lambda function {name}"), e))?;
    let mut env = lambda_environment(&name, config.memory_size.unwrap_or(128), &deployment.region);
    if let Some(vars) = config
        .environment
        .as_ref()
        .and_then(|e| e.variables.as_ref())
    {
        env.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    // LoggingConfig: Lambda passes the format and the application level.
    if let Some(logging) = config.logging_config.as_ref() {
        if let Some(format) = &logging.log_format {
            env.push(("AWS_LAMBDA_LOG_FORMAT".into(), format.as_str().to_owned()));
        }
        if let Some(level) = &logging.application_log_level {
            env.push(("AWS_LAMBDA_LOG_LEVEL".into(), level.as_str().to_owned()));
        }
    }
    // The credentials Lambda would give the function's role: here, the caller's own.
    if let Some(provider) = sdk.credentials_provider() {
        use aws_credential_types::provider::ProvideCredentials as _;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| RuntimeError::Deployment(format!("no AWS credentials: {e}")))?;
        env.push((
            "AWS_ACCESS_KEY_ID".into(),
            credentials.access_key_id().to_owned(),
        ));
        env.push((
            "AWS_SECRET_ACCESS_KEY".into(),
            credentials.secret_access_key().to_owned(),
        ));
        if let Some(token) = credentials.session_token() {
            env.push(("AWS_SESSION_TOKEN".into(), token.to_owned()));
        }
    }
    if let Some(endpoint) = endpoint {
        env.push(("AWS_ENDPOINT_URL".into(), endpoint.to_owned()));
    }
    let timeout = Duration::from_secs(config.timeout.map_or(3, |t| u64::try_from(t).unwrap_or(3)));
    let spec = ProcessSpec {
        name: function.logical_id.clone(),
        binary: artifacts.join(&function.logical_id).join("bootstrap"),
        env,
        timeout,
        instances,
        arn: config.function_arn.unwrap_or_else(|| {
            format!(
                "arn:aws:lambda:{}:000000000000:function:{name}",
                deployment.region
            )
        }),
    };
    ProcessFunction::start(spec)
        .await
        .map_err(|e| RuntimeError::Deployment(e.to_string()))
}

/// API Gateway in front of the API function's binary: every request, with
/// the claims the local JWT layer verified, as a payload 2.0 event.
pub fn api_router(api: Arc<ProcessFunction>) -> Router {
    Router::new().fallback(forward).with_state(api)
}

async fn forward(State(api): State<Arc<ProcessFunction>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
        }
    };
    let event = api_event(&parts, &body);
    let answer = match api.invoke(event.to_string().as_bytes()).await {
        Ok(a) => a,
        Err(e) => {
            // What API Gateway answers when the integration fails.
            tracing::error!(error = %e, "the API function failed");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("content-type", "application/json")],
                r#"{"message":"Internal Server Error"}"#,
            )
                .into_response();
        }
    };
    api_response(&answer)
}

/// The HTTP API's payload format 2.0 for one request.
fn api_event(parts: &axum::http::request::Parts, body: &[u8]) -> Value {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == axum::http::header::COOKIE {
            cookies.extend(value.split("; ").map(str::to_owned));
            continue;
        }
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let query = parts.uri.query().unwrap_or_default();
    let mut parameters: BTreeMap<String, String> = BTreeMap::new();
    if let Ok(axum::extract::Query(pairs)) =
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
    {
        for (k, v) in pairs {
            parameters
                .entry(k)
                .and_modify(|e| {
                    e.push(',');
                    e.push_str(&v);
                })
                .or_insert(v);
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut context = json!({
        "accountId": "000000000000",
        "apiId": "rehearsal",
        "domainName": headers.get("host").cloned().unwrap_or_else(|| "127.0.0.1".into()),
        "domainPrefix": "rehearsal",
        "http": {
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": headers.get("user-agent").cloned().unwrap_or_default(),
        },
        "requestId": format!("rehearsal-{}", now.as_nanos()),
        "routeKey": "$default",
        "stage": "$default",
        "time": humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + now).to_string(),
        "timeEpoch": now.as_millis() as u64,
    });
    if let Some(claims) = parts.extensions.get::<Claims>() {
        let mut jwt = serde_json::Map::new();
        jwt.insert("sub".into(), claims.sub.clone().into());
        // API Gateway flattens a list claim to `[a b]`.
        jwt.insert(
            "cognito:groups".into(),
            format!("[{}]", claims.groups.join(" ")).into(),
        );
        if let Some(email) = &claims.email {
            jwt.insert("email".into(), email.clone().into());
            jwt.insert("email_verified".into(), "true".into());
        }
        context["authorizer"] = json!({"jwt": {"claims": jwt, "scopes": null}});
    }
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.uri.path(),
        "rawQueryString": query,
        "cookies": if cookies.is_empty() { Value::Null } else { json!(cookies) },
        "headers": headers,
        "queryStringParameters": if parameters.is_empty() { Value::Null } else { json!(parameters) },
        "requestContext": context,
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true,
    })
}

/// The HTTP response for the API function's payload 2.0 answer.
fn api_response(answer: &[u8]) -> Response {
    let bad = |why: String| {
        tracing::error!(%why, "the API function's answer is not an HTTP API response");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "application/json")],
            r#"{"message":"Internal Server Error"}"#,
        )
            .into_response()
    };
    let answer: Value = match serde_json::from_slice(answer) {
        Ok(v) => v,
        Err(e) => return bad(e.to_string()),
    };
    let status = answer["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let body = match answer["body"].as_str() {
        None => Vec::new(),
        Some(b) if answer["isBase64Encoded"].as_bool() == Some(true) => {
            match base64::engine::general_purpose::STANDARD.decode(b) {
                Ok(bytes) => bytes,
                Err(e) => return bad(e.to_string()),
            }
        }
        Some(b) => b.as_bytes().to_vec(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let mut add = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    };
    if let Some(map) = answer["headers"].as_object() {
        for (k, v) in map {
            if let Some(v) = v.as_str() {
                add(k, v);
            }
        }
    }
    if let Some(map) = answer["multiValueHeaders"].as_object() {
        for (k, values) in map {
            for v in values.as_array().into_iter().flatten() {
                if let Some(v) = v.as_str() {
                    add(k, v);
                }
            }
        }
    }
    for cookie in answer["cookies"].as_array().into_iter().flatten() {
        if let Some(c) = cookie.as_str() {
            add("set-cookie", c);
        }
    }
    response
}
