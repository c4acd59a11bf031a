//! `storefront bench coldstart`: a minimal Lambda Runtime API on 127.0.0.1
//! that spawns each function's release binary with the environment Lambda
//! gives it, and measures, per spawn:
//!
//! - **init**: from `spawn()` to the binary's first
//!   `GET /2018-06-01/runtime/invocation/next` (what Lambda bills as Init);
//! - **first invoke**: from answering that request with a representative
//!   event to the binary's `POST .../response` (or `.../error`);
//! - **peak RSS**: `VmHWM` of the process once it asks for its second event.
//!
//! The same is measured for `lambda-hello`, a bare `lambda_runtime` binary
//! built with the same profile, in the same run; the ratio to it is the figure.
//!
//! Any AWS call a function makes goes to the emulator too
//! (`AWS_ENDPOINT_URL`), which answers every one at once with a
//! `400 ValidationException`: the first invoke includes the SDK building and
//! sending its first request, not a real DynamoDB round trip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Args;
use serde::Serialize;
use serde_json::Value;
use storefront_template::{Function, Template};

pub mod events;

use events::event_for;

/// The baseline binary.
pub const HELLO: &str = "lambda-hello";

/// `bench coldstart` options.
#[derive(Debug, Clone, Args)]
pub struct ColdstartArgs {
    /// Where the binaries built with the deploy profile are
    /// (`cargo build --profile deploy`, Cargo.toml's profile of what is deployed).
    #[arg(long, default_value = "target/deploy")]
    pub bin_dir: PathBuf,
    /// Measure the functions as `sam build` built them: `DIR/{Function}/bootstrap`
    /// (e.g. `.aws-sam/build`) instead of `--bin-dir/{binary}`; `lambda-hello`
    /// still comes from --bin-dir.
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Binaries to measure, comma-separated (default: every function of the
    /// template found in --bin-dir). `lambda-hello` is always measured too.
    #[arg(long, value_delimiter = ',')]
    pub functions: Vec<String>,
    /// Spawns per binary.
    #[arg(long, default_value_t = 20)]
    pub spawns: usize,
    /// Extra environment for every spawn, `KEY=VALUE`, repeatable (e.g.
    /// `SSL_CERT_FILE=...` to see what loading the TLS roots costs).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub extra_env: Vec<String>,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Why the harness could not run.
#[derive(Debug, thiserror::Error)]
pub enum ColdstartError {
    /// Bad arguments or missing binaries.
    #[error("{0}")]
    Usage(String),
    /// The emulator or a spawn failed.
    #[error("{0}")]
    Run(String),
}

/// One binary's figures (medians over the spawns).
#[derive(Debug, Clone, Serialize)]
pub struct BinaryResult {
    /// The binary.
    pub binary: String,
    /// The event it was invoked with.
    pub event: String,
    /// Spawns measured.
    pub spawns: usize,
    /// Median spawn → first `/next`, ms.
    pub init_ms_p50: f64,
    /// Slowest spawn → first `/next`, ms.
    pub init_ms_max: f64,
    /// `init_ms_p50` over the hello binary's.
    pub init_ratio_to_hello: f64,
    /// Median first-invoke latency, ms.
    pub first_invoke_ms_p50: f64,
    /// Median peak RSS, MB (10^6 bytes).
    pub peak_rss_mb_p50: f64,
    /// Largest peak RSS, MB.
    pub peak_rss_mb_max: f64,
    /// The binary's size, bytes.
    pub binary_bytes: u64,
    /// The binary zipped as `bootstrap` (`zip -9`), bytes; `None` without `zip`.
    pub zip_bytes: Option<u64>,
    /// How the first invocations ended: `response`, `error: ...`, `init error`.
    pub outcomes: BTreeMap<String, usize>,
}

#[derive(Default)]
struct Spawn {
    event: Vec<u8>,
    first_next: Option<Instant>,
    answered: Option<Instant>,
    outcome: Option<String>,
    waiting_again: bool,
}

type Shared = Arc<Mutex<Spawn>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Spawn> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

async fn next(State(shared): State<Shared>) -> Response {
    let body = {
        let mut s = lock(&shared);
        if s.first_next.is_some() {
            s.waiting_again = true;
            None
        } else {
            s.first_next = Some(Instant::now());
            Some(s.event.clone())
        }
    };
    let Some(body) = body else {
        // The second `/next`: the binary is idle now; it is killed while it waits.
        std::future::pending::<()>().await;
        return StatusCode::NO_CONTENT.into_response();
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() + 30_000)
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    let pairs = [
        (
            "lambda-runtime-aws-request-id",
            "bench-request-1".to_owned(),
        ),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:000000000000:function:bench".to_owned(),
        ),
        (
            "lambda-runtime-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0".to_owned(),
        ),
        ("content-type", "application/json".to_owned()),
    ];
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    (StatusCode::OK, headers, body).into_response()
}

async fn response(State(shared): State<Shared>) -> StatusCode {
    let mut s = lock(&shared);
    s.answered = Some(Instant::now());
    s.outcome = Some("response".into());
    StatusCode::ACCEPTED
}

async fn error(State(shared): State<Shared>, body: Bytes) -> StatusCode {
    let mut s = lock(&shared);
    s.answered = Some(Instant::now());
    let text = String::from_utf8_lossy(&body);
    let kind = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["errorType"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.chars().take(80).collect());
    s.outcome = Some(format!("error: {kind}"));
    StatusCode::ACCEPTED
}

async fn init_error(State(shared): State<Shared>) -> StatusCode {
    let mut s = lock(&shared);
    s.outcome = Some("init error".into());
    s.waiting_again = true;
    StatusCode::ACCEPTED
}

/// Every AWS API call lands here and is refused at once.
async fn aws() -> Response {
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/x-amz-json-1.0")],
        r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"storefront bench coldstart has no AWS"}"#,
    )
        .into_response()
}

fn emulator(shared: Shared) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .fallback(aws)
        .with_state(shared)
}

/// The environment Lambda gives a `provided.al2023` function, plus the
/// function's own variables from the template (parameters at their
/// defaults, resources filled with placeholders: nothing is called for real).
fn lambda_env(
    name: &str,
    port: u16,
    template: &Template,
    function: Option<&Function>,
) -> Vec<(String, String)> {
    let mut env = crate::service::runtime_api::lambda_environment(name, 128, "us-east-1");
    env.extend(
        [
            ("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}")),
            ("AWS_ACCESS_KEY_ID", "ASIABENCHBENCHBENCH0".into()),
            ("AWS_SECRET_ACCESS_KEY", "bench".into()),
            ("AWS_SESSION_TOKEN", "bench".into()),
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v)),
    );
    if let Some(f) = function {
        for (k, v) in &f.environment {
            let value = match v {
                storefront_template::EnvValue::Literal(s) => s.clone(),
                storefront_template::EnvValue::Ref(r) => template
                    .parameter_default(r)
                    .unwrap_or_else(|| format!("bench-{r}")),
                storefront_template::EnvValue::GetAtt(r, _) => format!("bench-{r}"),
                storefront_template::EnvValue::Sub(s) => s.replace("${", "bench-").replace('}', ""),
            };
            env.push((k.clone(), value));
        }
    }
    env
}

fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn zip_size(binary: &Path) -> Option<u64> {
    let dir = tempfile_dir()?;
    let bootstrap = dir.join("bootstrap");
    std::fs::copy(binary, &bootstrap).ok()?;
    let zip = dir.join("bootstrap.zip");
    let ok = Command::new("zip")
        .args(["-q", "-9", "-j"])
        .arg(&zip)
        .arg(&bootstrap)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?
        .success();
    let size = ok.then(|| std::fs::metadata(&zip).ok().map(|m| m.len()))?;
    let _ = std::fs::remove_dir_all(&dir);
    size
}

fn tempfile_dir() -> Option<PathBuf> {
    let mut tag = [0u8; 6];
    getrandom::fill(&mut tag).ok()?;
    let dir = std::env::temp_dir().join(format!("storefront-coldstart-{}", hex::encode(tag)));
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

struct Sample {
    init: Duration,
    invoke: Option<Duration>,
    rss_kb: Option<u64>,
    outcome: String,
}

/// One spawn: start the binary, serve it one event, wait for its second `/next`.
async fn spawn_once(
    binary: &Path,
    env: &[(String, String)],
    shared: &Shared,
    event: &[u8],
) -> Result<Sample, ColdstartError> {
    *lock(shared) = Spawn {
        event: event.to_vec(),
        ..Spawn::default()
    };
    let start = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| ColdstartError::Run(format!("cannot start {}: {e}", binary.display())))?;
    let pid = child.id();
    let limit = Duration::from_secs(20);
    let exit = loop {
        if lock(shared).waiting_again {
            break None;
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if start.elapsed() > limit {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let rss_kb = if exit.is_none() {
        peak_rss_kb(pid)
    } else {
        None
    };
    let _ = child.kill();
    let _ = child.wait();
    let s = lock(shared);
    let Some(first_next) = s.first_next else {
        return Err(ColdstartError::Run(match exit {
            Some(status) => format!(
                "{} exited ({status}) before asking for an event",
                binary.display()
            ),
            None => format!(
                "{} did not ask for an event within {}s",
                binary.display(),
                limit.as_secs()
            ),
        }));
    };
    Ok(Sample {
        init: first_next.duration_since(start),
        invoke: s.answered.map(|a| a.duration_since(first_next)),
        rss_kb,
        outcome: s.outcome.clone().unwrap_or_else(|| match exit {
            Some(status) => format!("exited ({status})"),
            None => "no answer".into(),
        }),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

/// Where the binary of `name` is: `sam build`'s `{artifacts}/{Function}/bootstrap`
/// with `--artifacts`, else `{bin_dir}/{name}` (always so for `lambda-hello`).
fn binary_path(args: &ColdstartArgs, template: &Template, name: &str) -> PathBuf {
    match (&args.artifacts, template.function_by_binary(name)) {
        (Some(dir), Some(f)) if name != HELLO => dir.join(&f.logical_id).join("bootstrap"),
        _ => args.bin_dir.join(name),
    }
}

/// Runs the harness over hello and the chosen binaries.
pub async fn run(
    template_path: &Path,
    args: &ColdstartArgs,
) -> Result<Vec<BinaryResult>, ColdstartError> {
    if args.spawns == 0 {
        return Err(ColdstartError::Usage("--spawns must be at least 1".into()));
    }
    let template = Template::load(template_path)
        .map_err(|e| ColdstartError::Usage(format!("{}: {e}", template_path.display())))?;
    let mut names = vec![HELLO.to_owned()];
    if args.functions.is_empty() {
        for f in template.functions.values() {
            if binary_path(args, &template, &f.binary).is_file() {
                names.push(f.binary.clone());
            }
        }
    } else {
        names.extend(args.functions.iter().filter(|f| *f != HELLO).cloned());
    }
    for name in &names {
        let path = binary_path(args, &template, name);
        if !path.is_file() {
            return Err(ColdstartError::Usage(match &args.artifacts {
                Some(dir) if name != HELLO => format!(
                    "no {}; build the functions with `sam build` (add `--parameter-overrides Architecture=x86_64` on x86_64) or fix --artifacts {}",
                    path.display(),
                    dir.display()
                ),
                _ => format!(
                    "no binary {name} in {}; build it with `cargo build --profile deploy -p {name}` (or pass --bin-dir)",
                    args.bin_dir.display()
                ),
            }));
        }
    }

    let mut extra = Vec::new();
    for pair in &args.extra_env {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(ColdstartError::Usage(format!(
                "--env {pair}: expected KEY=VALUE"
            )));
        };
        extra.push((k.to_owned(), v.to_owned()));
    }
    let shared: Shared = Arc::new(Mutex::new(Spawn::default()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| ColdstartError::Run(format!("cannot listen on 127.0.0.1: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| ColdstartError::Run(e.to_string()))?
        .port();
    let state = shared.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, emulator(state)).await;
    });
    let result = measure_all(&template, args, &names, port, &shared, &extra).await;
    server.abort();
    result
}

async fn measure_all(
    template: &Template,
    args: &ColdstartArgs,
    names: &[String],
    port: u16,
    shared: &Shared,
    extra: &[(String, String)],
) -> Result<Vec<BinaryResult>, ColdstartError> {
    let mut results: Vec<BinaryResult> = Vec::new();
    let mut hello_init = f64::NAN;
    for name in names {
        let binary = binary_path(args, template, name);
        let function = template.function_by_binary(name);
        let (event_name, event) = event_for(template, function)?;
        let event = event.to_string().into_bytes();
        let mut env = lambda_env(name, port, template, function);
        env.extend(extra.iter().cloned());
        let mut samples = Vec::with_capacity(args.spawns);
        for _ in 0..args.spawns {
            samples.push(spawn_once(&binary, &env, shared, &event).await?);
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let inits: Vec<f64> = samples.iter().map(|s| ms(s.init)).collect();
        let init_max = inits.iter().copied().fold(0.0, f64::max);
        let init_p50 = median(inits);
        if name == HELLO {
            hello_init = init_p50;
        }
        let rss: Vec<f64> = samples
            .iter()
            .filter_map(|s| s.rss_kb)
            .map(|kb| kb as f64 * 1024.0 / 1e6)
            .collect();
        let rss_max = rss.iter().copied().fold(0.0, f64::max);
        let mut outcomes = BTreeMap::new();
        for s in &samples {
            *outcomes.entry(s.outcome.clone()).or_default() += 1;
        }
        results.push(BinaryResult {
            binary: name.clone(),
            event: event_name,
            spawns: samples.len(),
            init_ms_p50: init_p50,
            init_ms_max: init_max,
            init_ratio_to_hello: init_p50 / hello_init,
            first_invoke_ms_p50: median(samples.iter().filter_map(|s| s.invoke).map(ms).collect()),
            peak_rss_mb_p50: median(rss),
            peak_rss_mb_max: rss_max,
            binary_bytes: std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0),
            zip_bytes: zip_size(&binary),
            outcomes,
        });
    }
    Ok(results)
}

/// The results as a table.
pub fn render(results: &[BinaryResult]) -> String {
    let mut out = format!(
        "{:<28} {:>10} {:>8} {:>10} {:>13} {:>10} {:>9} {:>9}  first invocation\n",
        "binary", "init p50", "× hello", "init max", "1st invoke p50", "RSS p50", "RSS max", "zip"
    );
    for r in results {
        let outcomes: Vec<String> = r
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect();
        out.push_str(&format!(
            "{:<28} {:>7.2} ms {:>7.2}× {:>7.2} ms {:>10.2} ms {:>7.1} MB {:>6.1} MB {:>9}  {} ({})\n",
            r.binary,
            r.init_ms_p50,
            r.init_ratio_to_hello,
            r.init_ms_max,
            r.first_invoke_ms_p50,
            r.peak_rss_mb_p50,
            r.peak_rss_mb_max,
            r.zip_bytes
                .map_or("n/a".to_owned(), |b| format!("{:.2} MB", b as f64 / 1e6)),
            r.event,
            outcomes.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The median of an even count is the mean of the middle two.
    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }

    /// Every function of the template gets an event its own rules accept.
    #[test]
    fn representative_events() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let template = Template::load(&path).expect("template");
        for f in template.functions.values() {
            let (name, event) = event_for(&template, Some(f)).expect("event");
            assert!(!name.is_empty() && event.is_object(), "{}", f.binary);
            if !f.sqs.is_empty() {
                assert!(name.starts_with("SQS batch of 1"), "{}: {name}", f.binary);
            }
        }
    }

    /// The environment the harness spawns each function with is one its
    /// settings accept (a parameter such as LogLevel at its default, not a
    /// placeholder), and it carries the function's LoggingConfig as Lambda
    /// passes it.
    #[test]
    fn spawn_environments_are_accepted_by_the_functions() {
        use crate::service::registry::{Dependencies, Notify, constructor};
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let template = Template::load(&path).expect("template");
        let store = storefront_store::sqlite::SqliteStore::open_in_memory().expect("store");
        let dependencies = Dependencies {
            stores: storefront_runtime::Stores::from(store),
            notify: Notify::Outbox,
        };
        for f in template.functions.values() {
            let env = lambda_env(&f.binary, 9, &template, Some(f));
            let value = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
            assert_eq!(value("AWS_LAMBDA_LOG_FORMAT"), Some("JSON"), "{}", f.binary);
            assert_eq!(value("AWS_LAMBDA_LOG_LEVEL"), Some("INFO"), "{}", f.binary);
            let build = constructor(&f.binary).expect("registered");
            if let Err(e) = build(&storefront_runtime::Config::from_pairs(env), &dependencies) {
                panic!("{}: {e}", f.binary);
            }
        }
    }
}
