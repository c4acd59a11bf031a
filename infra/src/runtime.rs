//! What both runtimes (embedded and AWS mode) share around the Lambda
//! service: the start-up preamble, the HTTP app (the API behind the dev-token
//! layer, with the `/_local` routes) and serving until shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use storefront_template::Template;

use crate::auth::DevKeys;
use crate::error::RuntimeError;
use crate::service::Service;
use crate::service::control::Control;

/// Reads the template and makes the data folder with its dev signing key.
pub fn prepare(template: &Path, data: &Path) -> Result<(Template, DevKeys), RuntimeError> {
    let template =
        Template::load(template).map_err(|source| RuntimeError::TemplateUnreadable { source })?;
    std::fs::create_dir_all(data).map_err(|source| RuntimeError::DataFolder {
        path: data.to_owned(),
        source,
    })?;
    let keys = DevKeys::load_or_create(data)?;
    Ok((template, keys))
}

/// The HTTP app: `api` behind the dev-token layer that stands in for API
/// Gateway's JWT authorizer, and behind the template's CORS answer (see
/// [`cors`]), plus the `/_local` routes over `service` (which refuse
/// browsers' cross-origin requests and get no CORS headers).
pub fn http(api: Router, keys: &DevKeys, service: &Arc<Service>, template: &Template) -> Router {
    let mut api = api.layer(axum::middleware::from_fn_with_state(
        keys.clone(),
        crate::auth::layer,
    ));
    if let Some(cors) = cors(template) {
        api = api.layer(cors);
    }
    let control: Arc<dyn Control> = service.clone();
    crate::service::control::router(control, keys.clone()).merge(api)
}

/// The HTTP API's `CorsConfiguration` in the template, as API Gateway
/// applies it: a web client on one of its origins (`AllowOrigins`; a
/// `!Ref` to a parameter reads the parameter's default, `WebOrigins` here)
/// gets the same preflight answers and exposed headers from the local
/// runtime as from the stack. `None` when the template's HTTP API has none.
/// A value that is not a valid header value is left out, with a warning.
pub fn cors(template: &Template) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};

    let config = template
        .raw
        .get("Resources")?
        .as_object()?
        .values()
        .filter(|r| r["Type"] == "AWS::Serverless::HttpApi")
        .find_map(|r| r["Properties"].get("CorsConfiguration"))?;
    let texts = |value: &serde_json::Value| -> Vec<String> {
        match value {
            serde_json::Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            serde_json::Value::Object(o) => o
                .get("Ref")
                .and_then(|name| name.as_str())
                .and_then(|name| template.raw["Parameters"][name]["Default"].as_str())
                .map(|d| d.split(',').map(|s| s.trim().to_owned()).collect())
                .unwrap_or_default(),
            serde_json::Value::String(s) => vec![s.clone()],
            _ => vec![],
        }
    };
    fn parsed<T>(what: &str, values: Vec<String>, parse: impl Fn(&str) -> Option<T>) -> Vec<T> {
        values
            .into_iter()
            .filter_map(|v| {
                let p = parse(&v);
                if p.is_none() {
                    tracing::warn!(value = %v, "CORS {what} in the template is not valid; left out");
                }
                p
            })
            .collect()
    }
    let origins = parsed("origin", texts(&config["AllowOrigins"]), |v| {
        HeaderValue::from_str(v).ok()
    });
    let methods = parsed("method", texts(&config["AllowMethods"]), |v| {
        Method::from_bytes(v.as_bytes()).ok()
    });
    let allow = parsed("header", texts(&config["AllowHeaders"]), |v| {
        HeaderName::from_bytes(v.as_bytes()).ok()
    });
    let expose = parsed("header", texts(&config["ExposeHeaders"]), |v| {
        HeaderName::from_bytes(v.as_bytes()).ok()
    });
    let mut layer = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods(methods)
        .allow_headers(allow)
        .expose_headers(expose);
    if let Some(max_age) = config["MaxAge"].as_u64() {
        layer = layer.max_age(std::time::Duration::from_secs(max_age));
    }
    Some(layer)
}

/// The banner lines both modes print about the API.
pub fn describe_api(addr: SocketAddr, api_function: &str) -> String {
    format!("  api       http://{addr}  ({api_function} behind a local JWT layer)\n")
}

/// A data folder held by one runtime: an OS lock on `{data}/runtime.lock`,
/// released when the value is dropped or the process dies (SIGKILL
/// included), so a stale lock cannot outlive its holder. The file holds the
/// holder's pid, for the next one's error message.
#[derive(Debug)]
pub struct DataLock {
    _file: std::fs::File,
}

impl DataLock {
    /// The lock file's name in the data folder.
    pub const FILE: &'static str = "runtime.lock";

    /// Takes the data folder, or says which process has it.
    pub fn acquire(data: &Path) -> Result<DataLock, RuntimeError> {
        use std::io::{Read, Seek, Write};
        std::fs::create_dir_all(data).map_err(|source| RuntimeError::DataFolder {
            path: data.to_owned(),
            source,
        })?;
        let path = data.join(Self::FILE);
        let failed = |source| RuntimeError::DataFolderLock {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(failed)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = Some(holder.trim().to_owned()).filter(|h| !h.is_empty());
                return Err(RuntimeError::DataFolderInUse {
                    path: data.to_owned(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(failed(e)),
        }
        file.set_len(0).map_err(failed)?;
        file.rewind().map_err(failed)?;
        write!(file, "{}", std::process::id()).map_err(failed)?;
        Ok(DataLock { _file: file })
    }
}

/// Serves `app` on `listener` and runs `service` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    service: &Arc<Service>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RuntimeError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    crate::service::serve_app(listener, app, service.spawn(), shutdown)
        .await
        .map_err(|source| RuntimeError::Serve { addr, source })
}
