//! Why a runtime could not start or stopped: one typed error for both
//! modes, each variant keeping its cause and saying what to do.

use std::path::PathBuf;

use storefront_runtime::ConfigError;
use storefront_template::{RouterError, TemplateError};

use crate::auth::AuthError;
use crate::aws::streams::CheckpointError;
use crate::local::queues::QueueError;
use crate::service::AwsCallError;

/// Why the runtime could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// template.yaml could not be read.
    #[error("{source} (run from the repository root, or pass --template PATH)")]
    TemplateUnreadable {
        /// Why.
        #[source]
        source: TemplateError,
    },
    /// The template does not wire a storefront the runtime can run.
    #[error("template.yaml: {0}")]
    Wiring(String),
    /// A function's settings (its environment from the template) are wrong.
    #[error("{function}: {source}")]
    Settings {
        /// The function's logical id.
        function: String,
        /// Which variable and why.
        #[source]
        source: ConfigError,
    },
    /// An event pattern of the template could not be compiled.
    #[error("template.yaml: {0}")]
    Patterns(#[from] RouterError),
    /// Another runtime holds the data folder.
    #[error(
        "another storefront runtime{} is using the data folder {}: stop it, or give this one another folder (--data DIR)",
        .holder.as_deref().map(|h| format!(" (pid {h})")).unwrap_or_default(),
        .path.display()
    )]
    DataFolderInUse {
        /// The folder.
        path: std::path::PathBuf,
        /// The other process, as it wrote itself into the lock file.
        holder: Option<String>,
    },
    /// The data folder's lock file could not be opened or locked.
    #[error("cannot lock the data folder {}: {source}", .path.display())]
    DataFolderLock {
        /// The lock file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The data folder could not be created.
    #[error("cannot create data folder {path}: {source}")]
    DataFolder {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The event store could not be opened.
    #[error("{0}")]
    Store(#[from] storefront_store::StoreError),
    /// The local queue file could not be opened.
    #[error("{0}")]
    Queues(#[from] QueueError),
    /// The dev signing key could not be read or made.
    #[error("{0}")]
    Keys(#[from] AuthError),
    /// An AWS call made while discovering the deployment failed.
    #[error("{what}: {source}")]
    Aws {
        /// What was asked (a stack, a queue, a table ...).
        what: String,
        /// The service's answer.
        #[source]
        source: AwsCallError,
    },
    /// The deployment lacks something the runtime needs.
    #[error("{0}")]
    Deployment(String),
    /// The stream checkpoint in the data folder is unusable.
    #[error("{0}")]
    Checkpoint(#[from] CheckpointError),
    /// The HTTP server failed.
    #[error("cannot serve HTTP on {addr}: {source}")]
    Serve {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl RuntimeError {
    /// An AWS call's failure while asking for `what`.
    pub fn aws<E>(what: impl Into<String>, e: E) -> RuntimeError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
    {
        RuntimeError::Aws {
            what: what.into(),
            source: AwsCallError::new(e),
        }
    }
}
