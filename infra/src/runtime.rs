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
/// Gateway's JWT authorizer, plus the `/_local` routes over `service`.
pub fn http(api: Router, keys: &DevKeys, service: &Arc<Service>) -> Router {
    let api = api.layer(axum::middleware::from_fn_with_state(
        keys.clone(),
        crate::auth::layer,
    ));
    let control: Arc<dyn Control> = service.clone();
    crate::service::control::router(control, keys.clone()).merge(api)
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
