//! A function's built `bootstrap` run the way Lambda runs an uploaded zip:
//! as a process that pulls its invocations from the Lambda Runtime API
//! (`AWS_LAMBDA_RUNTIME_API`), served here on 127.0.0.1.
//!
//! Each instance of a function is one process with its own Runtime API
//! server (as each Lambda execution environment has its own), and every
//! instance pulls from the function's one invocation queue, so a function
//! with two instances runs two invocations at once. What Lambda does and
//! this does too:
//!
//! - `GET /2018-06-01/runtime/invocation/next` blocks until an invocation
//!   is queued and hands it over with the `Lambda-Runtime-Aws-Request-Id`,
//!   `-Deadline-Ms`, `-Invoked-Function-Arn` and `-Trace-Id` headers;
//! - `POST .../{id}/response` and `.../{id}/error` end it; an invocation
//!   past the function's timeout ends as `Task timed out` and its process is
//!   killed; a process that exits fails its invocation (`Runtime.ExitError`)
//!   and is started again, as is one that reports `/init/error`;
//! - every line a process writes to stdout or stderr is kept (the last
//!   [`LOG_LINES`]) and echoed to this process's stderr, as CloudWatch Logs
//!   would receive it.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// What Lambda puts in every `provided.al2023` function's environment
/// before the function's own variables (credentials and the Runtime API's
/// address aside).
pub fn lambda_environment(name: &str, memory: i32, region: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory.to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "local/[$LATEST]runtime-api".into(),
        ),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("AWS_REGION", region.to_owned()),
        ("AWS_DEFAULT_REGION", region.to_owned()),
        ("_HANDLER", "bootstrap".into()),
        ("LAMBDA_TASK_ROOT", "/var/task".into()),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".into()),
        ("TZ", ":UTC".into()),
        ("LANG", "en_US.UTF-8".into()),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// How many log lines of a function are kept.
pub const LOG_LINES: usize = 20_000;

/// What a function process is started with.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// The function's name (its logical id, or its deployed name).
    pub name: String,
    /// The `bootstrap` to run.
    pub binary: PathBuf,
    /// Its environment, as Lambda gives it, without `AWS_LAMBDA_RUNTIME_API`
    /// (each instance gets its own).
    pub env: Vec<(String, String)>,
    /// The function's timeout.
    pub timeout: Duration,
    /// How many instances run at once (Lambda's concurrency, here fixed).
    pub instances: usize,
    /// The function's ARN, for `Lambda-Runtime-Invoked-Function-Arn`.
    pub arn: String,
}

/// Why an invocation did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeFailure {
    /// The function reported an error (`/error`): Lambda's `errorType` and `errorMessage`.
    #[error("{error_type}: {message}")]
    Function {
        /// `errorType`.
        error_type: String,
        /// `errorMessage`.
        message: String,
    },
    /// It ran past the function's timeout; its process was killed.
    #[error("Task timed out after {} s", .0.as_secs_f64())]
    Timeout(Duration),
    /// Its process exited before answering.
    #[error("Runtime.ExitError: the process exited before answering ({0})")]
    Exited(String),
    /// No instance of the function is running any more.
    #[error("the function's processes are gone")]
    Stopped,
}

struct Pending {
    payload: Vec<u8>,
    trace_id: String,
    reply: oneshot::Sender<Result<Vec<u8>, InvokeFailure>>,
}

struct Shared {
    spec: ProcessSpec,
    queue: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    /// Invocations handed to an instance: request id → (instance, reply).
    running: Mutex<HashMap<String, Running>>,
    logs: Mutex<VecDeque<String>>,
    /// Per instance: its process id while it runs (to kill it on a timeout).
    pids: Mutex<Vec<Option<u32>>>,
    init_errors: Mutex<Vec<String>>,
    /// Raised once an instance has asked for its first invocation (its init is over).
    ready: tokio::sync::watch::Sender<bool>,
}

struct Running {
    instance: usize,
    reply: oneshot::Sender<Result<Vec<u8>, InvokeFailure>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A function's `bootstrap`, running under the Runtime API. Dropping it
/// kills its processes.
pub struct ProcessFunction {
    shared: Arc<Shared>,
    sender: mpsc::Sender<Pending>,
    _tasks: JoinSet<()>,
}

impl std::fmt::Debug for ProcessFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessFunction")
            .field("name", &self.shared.spec.name)
            .field("binary", &self.shared.spec.binary)
            .finish()
    }
}

/// Why a function's processes could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The binary is not there.
    #[error(
        "{name}: {} does not exist; build the functions first (`sam build`, or \
         `sam build --parameter-overrides Architecture=x86_64` on an x86_64 machine)",
        .binary.display()
    )]
    NoBinary {
        /// The function.
        name: String,
        /// The missing path.
        binary: PathBuf,
    },
    /// A Runtime API server could not listen.
    #[error("{name}: cannot listen on 127.0.0.1 for its Runtime API: {source}")]
    Listen {
        /// The function.
        name: String,
        /// Why.
        source: std::io::Error,
    },
}

impl ProcessFunction {
    /// Starts `spec.instances` processes of `spec.binary`, each under its own
    /// Runtime API on 127.0.0.1.
    pub async fn start(spec: ProcessSpec) -> Result<Arc<ProcessFunction>, StartError> {
        if !spec.binary.is_file() {
            return Err(StartError::NoBinary {
                name: spec.name.clone(),
                binary: spec.binary.clone(),
            });
        }
        let (sender, receiver) = mpsc::channel(1024);
        let instances = spec.instances.max(1);
        let shared = Arc::new(Shared {
            spec,
            queue: tokio::sync::Mutex::new(receiver),
            running: Mutex::default(),
            logs: Mutex::default(),
            pids: Mutex::new(vec![None; instances]),
            init_errors: Mutex::default(),
            ready: tokio::sync::watch::Sender::new(false),
        });
        let mut tasks = JoinSet::new();
        for instance in 0..instances {
            let listener =
                tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|source| StartError::Listen {
                        name: shared.spec.name.clone(),
                        source,
                    })?;
            let port = listener
                .local_addr()
                .map_err(|source| StartError::Listen {
                    name: shared.spec.name.clone(),
                    source,
                })?
                .port();
            let app = router(Arc::clone(&shared), instance);
            tasks.spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "a Runtime API server stopped");
                }
            });
            tasks.spawn(supervise(Arc::clone(&shared), instance, port));
        }
        Ok(Arc::new(ProcessFunction {
            shared,
            sender,
            _tasks: tasks,
        }))
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        &self.shared.spec.name
    }

    /// Invokes the function with `payload` (JSON) and waits for its answer:
    /// for an instance to take it, then at most the function's timeout.
    pub async fn invoke(&self, payload: &[u8]) -> Result<Vec<u8>, InvokeFailure> {
        let (reply, answer) = oneshot::channel();
        let trace_id = format!(
            "Root=1-{:08x}-{};Parent={};Sampled=1",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            random_hex::<12>(),
            random_hex::<8>(),
        );
        self.sender
            .send(Pending {
                payload: payload.to_vec(),
                trace_id,
                reply,
            })
            .await
            .map_err(|_| InvokeFailure::Stopped)?;
        // The timeout runs from when an instance takes the invocation (see
        // `next`), not while it waits for one: Lambda would start another
        // instance rather than bill the wait.
        answer.await.unwrap_or(Err(InvokeFailure::Stopped))
    }

    /// Waits until an instance has finished its init (asked for its first
    /// invocation), at most `patience`; false if none did.
    pub async fn ready(&self, patience: Duration) -> bool {
        let mut ready = self.shared.ready.subscribe();
        tokio::time::timeout(patience, ready.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The last [`LOG_LINES`] lines the function's processes wrote.
    pub fn logs(&self) -> Vec<String> {
        lock(&self.shared.logs).iter().cloned().collect()
    }

    /// What the processes reported to `/init/error`.
    pub fn init_errors(&self) -> Vec<String> {
        lock(&self.shared.init_errors).clone()
    }
}

impl Shared {
    fn log(&self, line: String) {
        eprintln!("[{}] {line}", self.spec.name);
        let mut logs = lock(&self.logs);
        if logs.len() == LOG_LINES {
            logs.pop_front();
        }
        logs.push_back(line);
    }

    /// Ends invocation `id` as timed out if it is still running, and kills
    /// its instance's process (the supervisor starts it again).
    fn expire(&self, id: &str) {
        let Some(r) = lock(&self.running).remove(id) else {
            return;
        };
        let timeout = self.spec.timeout;
        self.log(format!(
            "REPORT RequestId: {id} Status: timeout after {} s; the instance is stopped",
            timeout.as_secs_f64()
        ));
        if let Some(pid) = lock(&self.pids)[r.instance] {
            kill(pid);
        }
        let _ = r.reply.send(Err(InvokeFailure::Timeout(timeout)));
    }

    /// Fails the invocation an instance was running when its process ended.
    fn exited(&self, instance: usize, status: &str) {
        let mut running = lock(&self.running);
        let ids: Vec<String> = running
            .iter()
            .filter(|(_, r)| r.instance == instance)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(r) = running.remove(&id) {
                let _ = r.reply.send(Err(InvokeFailure::Exited(status.to_owned())));
            }
        }
    }
}

/// `N` random bytes as hex (ids in Lambda's shapes).
fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    // An all-zero id is still a well-formed one should the OS refuse.
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

fn kill(pid: u32) {
    // SIGKILL, as Lambda stops a timed-out environment.
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
}

/// Runs one instance's process, again whenever it ends, until the function is dropped.
async fn supervise(shared: Arc<Shared>, instance: usize, port: u16) {
    let mut failures = 0u32;
    loop {
        let mut command = tokio::process::Command::new(&shared.spec.binary);
        command
            .env_clear()
            .envs(shared.spec.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                shared.log(format!(
                    "cannot start {}: {e}",
                    shared.spec.binary.display()
                ));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        lock(&shared.pids)[instance] = child.id();
        let mut readers = JoinSet::new();
        if let Some(out) = child.stdout.take() {
            readers.spawn(forward(Arc::clone(&shared), BufReader::new(out)));
        }
        if let Some(err) = child.stderr.take() {
            readers.spawn(forward(Arc::clone(&shared), BufReader::new(err)));
        }
        let status = child
            .wait()
            .await
            .map_or_else(|e| e.to_string(), |s| s.to_string());
        while readers.join_next().await.is_some() {}
        lock(&shared.pids)[instance] = None;
        shared.log(format!("the process ended ({status}); starting it again"));
        shared.exited(instance, &status);
        // Back off if it keeps dying at once (a bad environment, a crash at init).
        failures = (failures + 1).min(6);
        tokio::time::sleep(Duration::from_millis(50 << failures)).await;
    }
}

async fn forward<R: tokio::io::AsyncRead + Unpin>(shared: Arc<Shared>, reader: BufReader<R>) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        shared.log(line);
    }
}

type InstanceState = (Arc<Shared>, usize);

fn router(shared: Arc<Shared>, instance: usize) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state((shared, instance))
}

async fn next(State((shared, instance)): State<InstanceState>) -> Response {
    shared.ready.send_replace(true);
    let pending = loop {
        let received = shared.queue.lock().await.recv().await;
        match received {
            // An invocation whose caller already gave up is not run.
            Some(p) if p.reply.is_closed() => continue,
            Some(p) => break p,
            None => {
                std::future::pending::<()>().await;
                return StatusCode::GONE.into_response();
            }
        }
    };
    let id = format!(
        "{}-{}-{}-{}-{}",
        random_hex::<4>(),
        random_hex::<2>(),
        random_hex::<2>(),
        random_hex::<2>(),
        random_hex::<6>()
    );
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d + shared.spec.timeout).as_millis())
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("lambda-runtime-aws-request-id", id.clone()),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            shared.spec.arn.clone(),
        ),
        ("lambda-runtime-trace-id", pending.trace_id.clone()),
        ("content-type", "application/json".to_owned()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    lock(&shared.running).insert(
        id.clone(),
        Running {
            instance,
            reply: pending.reply,
        },
    );
    let timer = Arc::clone(&shared);
    tokio::spawn(async move {
        tokio::time::sleep(timer.spec.timeout).await;
        timer.expire(&id);
    });
    (StatusCode::OK, headers, pending.payload).into_response()
}

async fn response(
    State((shared, _)): State<InstanceState>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    match lock(&shared.running).remove(&id) {
        Some(r) => {
            let _ = r.reply.send(Ok(body.to_vec()));
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn error(
    State((shared, _)): State<InstanceState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let error_type = parsed["errorType"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "Unhandled".into());
    let message = parsed["errorMessage"].as_str().map_or_else(
        || String::from_utf8_lossy(&body).into_owned(),
        str::to_owned,
    );
    match lock(&shared.running).remove(&id) {
        Some(r) => {
            let _ = r.reply.send(Err(InvokeFailure::Function {
                error_type,
                message,
            }));
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn init_error(State((shared, _)): State<InstanceState>, body: Bytes) -> StatusCode {
    let text = String::from_utf8_lossy(&body).into_owned();
    shared.log(format!("INIT_REPORT error: {text}"));
    lock(&shared.init_errors).push(text);
    StatusCode::ACCEPTED
}
