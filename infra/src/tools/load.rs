//! `storefront load`: N concurrent shoppers doing the journey against a
//! running local runtime for a while, then a summary from HDR histograms.
//!
//! The journey, per shopper, repeated until the time is up: add two products
//! to the cart, check out, wait (polling `GET /orders/{id}`) until the order
//! is confirmed, pay its total. Four commands per journey; the polls are
//! reads and are counted apart. Shoppers, products and tokens are set up
//! before the clock starts.
//!
//! Two latencies are recorded:
//! - **API latency**: each command, from sending the request to having read
//!   the whole response.
//! - **API to last handler**: from the checkout's `201` to the first poll that
//!   sees the order `confirmed`. That is the end of the checkout's chain of
//!   handlers: feed → bus → inventory (reserves, appends
//!   `inventory.stock.reserved`) → feed → bus → order-workflow (appends
//!   `order.confirmed`). The poll interval bounds the resolution.
//!
//! After the last command the generator also waits until the feed has
//! published every event and every handler queue is empty, and reports how
//! long that took: the handlers that act after the confirmation
//! (notification, audit, analytics) have caught up then.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::DevKeys;
use crate::service::control::SqliteFiles;
use crate::tools::requests::{Recorder, RequestCounts};

/// `load` options.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// The running runtime's base URL.
    #[arg(long, env = "STOREFRONT_URL", default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// Concurrent shoppers.
    #[arg(long, default_value_t = 16)]
    pub shoppers: usize,
    /// How long to run, e.g. 30s, 2m.
    #[arg(long, default_value = "30s")]
    pub duration: humantime::Duration,
    /// Products the shoppers choose from (created before the clock starts).
    #[arg(long, default_value_t = 50)]
    pub products: usize,
    /// How often a shopper polls its order while waiting for confirmation.
    #[arg(long, default_value = "20ms")]
    pub poll: humantime::Duration,
    /// Print the summary as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// The moto server `storefront dev --aws` talks to: count the AWS
    /// requests of the run with moto's recorder (per journey, and the
    /// pollers' while idle).
    #[arg(long, value_name = "URL")]
    pub moto: Option<String>,
}

/// Why a load run could not run (not the errors it counts).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The arguments make no sense.
    #[error("{0}")]
    Usage(String),
    /// The runtime is not there, or the set-up was refused.
    #[error("{0}")]
    Setup(String),
}

/// Percentiles of one latency, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    /// How many were recorded.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The runtime's URL.
    pub url: String,
    /// Concurrent shoppers.
    pub shoppers: usize,
    /// The measured window, from the first command to the last response, in seconds.
    pub seconds: f64,
    /// Commands answered 2xx.
    pub commands: u64,
    /// `commands / seconds`.
    pub commands_per_second: f64,
    /// Journeys completed (paid).
    pub journeys: u64,
    /// Polls of `GET /orders/{id}` while waiting for confirmation.
    pub reads: u64,
    /// Each successful command, request sent to response read.
    pub api_latency: Latency,
    /// Checkout `201` to the order seen `confirmed`.
    pub api_to_last_handler: Latency,
    /// Seconds from the last response until every queue was empty and the
    /// feed had published every event; `None` if that did not happen within 120 s.
    pub drain_seconds: Option<f64>,
    /// Failures by kind (`http 409`, `timeout`, `not confirmed`, ...).
    pub errors: BTreeMap<String, u64>,
    /// The AWS requests of the run (`--moto`).
    pub aws_requests: Option<AwsRequests>,
    /// The local runtime's SQLite work per command, from the start of the
    /// window until drained (so the handlers' work the commands caused, and
    /// the polls, are in it); `None` against a runtime that does not report it.
    pub sqlite_per_command: Option<SqlitePerCommand>,
}

/// The AWS requests a run made, counted by moto's recorder.
#[derive(Debug, Clone, Serialize)]
pub struct AwsRequests {
    /// How long the runtime was watched idle before the run.
    pub idle_seconds: f64,
    /// What it sent while idle (its pollers): requests by service and operation.
    pub idle: RequestCounts,
    /// From the start of the window until drained, in seconds.
    pub run_seconds: f64,
    /// What it sent over the run: requests by service and operation.
    pub run: RequestCounts,
    /// What one `GET /orders/{id}` costs, measured after the run over
    /// [`POLL_SAMPLE`] polls of one order.
    pub per_poll: BTreeMap<String, f64>,
    /// Per completed journey, by service: the run's requests less the
    /// generator's own (its drain checks: `GetQueueAttributes` for the
    /// queue depths, the events table's `Scan`), less what the pollers send
    /// idle over as long, less its polls at [`Self::per_poll`], divided by
    /// the journeys.
    pub per_journey: BTreeMap<String, f64>,
}

/// The requests the generator's own drain checks cause (not the journeys').
const INSTRUMENT: &[(&str, &str)] = &[("sqs", "GetQueueAttributes"), ("dynamodb", "Scan")];

/// How many polls of one order measure a poll's requests.
const POLL_SAMPLE: u32 = 20;

impl AwsRequests {
    fn of(
        (idle_seconds, idle): (f64, RequestCounts),
        (run_seconds, run): (f64, RequestCounts),
        polled: RequestCounts,
        (journeys, polls): (u64, u64),
    ) -> AwsRequests {
        let per_poll: BTreeMap<String, f64> = polled
            .0
            .keys()
            .map(|service| {
                (
                    service.clone(),
                    polled.service(service) as f64 / f64::from(POLL_SAMPLE),
                )
            })
            .collect();
        let per_journey = run
            .0
            .keys()
            .map(|service| {
                let own: u64 = INSTRUMENT
                    .iter()
                    .filter(|(s, _)| s == service)
                    .map(|(s, op)| run.operation(s, op))
                    .sum();
                let polling = idle.service(service) as f64 / idle_seconds.max(0.001) * run_seconds;
                let polls = per_poll.get(service).copied().unwrap_or(0.0) * polls as f64;
                let net = (run.service(service) as f64 - own as f64 - polling - polls).max(0.0);
                (service.clone(), net / journeys.max(1) as f64)
            })
            .collect();
        AwsRequests {
            idle_seconds,
            idle,
            run_seconds,
            run,
            per_poll,
            per_journey,
        }
    }
}

/// How long the runtime is watched idle, for its pollers' requests.
const IDLE_WATCH: Duration = Duration::from_secs(5);

/// SQLite calls and commits per command, per file.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SqlitePerCommand {
    /// `events.db`: calls on the connection.
    pub events_db_calls: f64,
    /// `events.db`: write transactions committed.
    pub events_db_commits: f64,
    /// `queues.db`: calls on the connection.
    pub queues_db_calls: f64,
    /// `queues.db`: write transactions committed.
    pub queues_db_commits: f64,
}

impl SqlitePerCommand {
    fn between(before: &SqliteFiles, after: &SqliteFiles, commands: u64) -> SqlitePerCommand {
        let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / commands.max(1) as f64;
        SqlitePerCommand {
            events_db_calls: per(after.events_db.calls, before.events_db.calls),
            events_db_commits: per(after.events_db.commits, before.events_db.commits),
            queues_db_calls: per(after.queues_db.calls, before.queues_db.calls),
            queues_db_commits: per(after.queues_db.commits, before.queues_db.commits),
        }
    }
}

/// The runtime's SQLite counts, if it reports them.
async fn sqlite_counts(api: &Api, token: &str) -> Option<SqliteFiles> {
    let counts = api
        .call(reqwest::Method::GET, "/_local/sqlite", token, None)
        .await
        .ok()?;
    serde_json::from_value(counts).ok()
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 10 min at 3 significant figures.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant bounds are valid")
}

/// One shopper's counts, merged at the end.
struct Tally {
    api: Histogram<u64>,
    effect: Histogram<u64>,
    commands: u64,
    journeys: u64,
    reads: u64,
    errors: BTreeMap<String, u64>,
    /// The last order placed and its shopper's token.
    last_order: Option<(String, String)>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            api: histogram(),
            effect: histogram(),
            commands: 0,
            journeys: 0,
            reads: 0,
            errors: BTreeMap::new(),
            last_order: None,
        }
    }

    fn merge(&mut self, other: Tally) {
        // Both histograms have the same bounds; adding cannot fail on range.
        let _ = self.api.add(&other.api);
        let _ = self.effect.add(&other.effect);
        self.commands += other.commands;
        self.journeys += other.journeys;
        self.reads += other.reads;
        self.last_order = other.last_order.or(self.last_order.take());
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// The HTTP side: one pooled client for every shopper.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
}

/// Why one request did not give a 2xx.
#[derive(Debug)]
enum Failure {
    Status(u16),
    Timeout,
    Connect,
    Other,
}

impl Failure {
    fn kind(&self) -> String {
        match self {
            Failure::Status(s) => format!("http {s}"),
            Failure::Timeout => "timeout".into(),
            Failure::Connect => "connection refused or reset".into(),
            Failure::Other => "transport error".into(),
        }
    }
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            request = request.json(&b);
        }
        let classify = |e: reqwest::Error| {
            if e.is_timeout() {
                Failure::Timeout
            } else if e.is_connect() {
                Failure::Connect
            } else {
                Failure::Other
            }
        };
        let response = request.send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(classify)?;
        if !(200..300).contains(&status) {
            return Err(Failure::Status(status));
        }
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

struct Shopper {
    index: usize,
    token: String,
    api: Api,
    skus: Arc<Vec<String>>,
    poll: Duration,
    deadline: Instant,
    progress: Arc<Progress>,
}

#[derive(Default)]
struct Progress {
    commands: AtomicU64,
    errors: AtomicU64,
}

impl Shopper {
    /// Times one command; `None` (and an error counted) if it failed.
    async fn command(
        &self,
        tally: &mut Tally,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<Value> {
        let start = Instant::now();
        match self.api.call(method, path, &self.token, body).await {
            Ok(v) => {
                let _ = tally.api.record(micros(start.elapsed()));
                tally.commands += 1;
                self.progress.commands.fetch_add(1, Ordering::Relaxed);
                Some(v)
            }
            Err(f) => {
                self.fail(tally, f.kind());
                None
            }
        }
    }

    fn fail(&self, tally: &mut Tally, kind: String) {
        *tally.errors.entry(kind).or_default() += 1;
        self.progress.errors.fetch_add(1, Ordering::Relaxed);
    }

    async fn run(self) -> Tally {
        let mut tally = Tally::new();
        let mut journey = 0usize;
        while Instant::now() < self.deadline {
            self.journey(&mut tally, journey).await;
            journey += 1;
        }
        tally
    }

    /// One journey; stops early (leaving the cart as it is) once the time is up.
    async fn journey(&self, tally: &mut Tally, n: usize) -> Option<()> {
        use reqwest::Method;
        let count = self.skus.len();
        let first = (self.index * 7 + n * 3) % count;
        let second = (first + 1 + n % (count - 1).max(1)) % count;
        for (sku, quantity) in [(first, 1 + n % 3), (second, 1)] {
            if Instant::now() >= self.deadline {
                return None;
            }
            self.command(
                tally,
                Method::POST,
                "/cart/items",
                Some(json!({"sku": self.skus[sku], "quantity": quantity})),
            )
            .await?;
        }
        let accepted = self
            .command(tally, Method::POST, "/cart/checkout", None)
            .await?;
        let accepted_at = Instant::now();
        let Some(order_id) = accepted["orderId"].as_str().map(str::to_owned) else {
            self.fail(tally, "checkout without orderId".into());
            return None;
        };
        tally.last_order = Some((order_id.clone(), self.token.clone()));
        let path = format!("/orders/{order_id}");
        let total = loop {
            if accepted_at.elapsed() > Duration::from_secs(30) {
                self.fail(tally, "not confirmed within 30s".into());
                return None;
            }
            tokio::time::sleep(self.poll).await;
            let order = match self.api.call(Method::GET, &path, &self.token, None).await {
                Ok(order) => order,
                Err(f) => {
                    self.fail(tally, format!("read: {}", f.kind()));
                    return None;
                }
            };
            tally.reads += 1;
            match order["status"].as_str() {
                Some("confirmed") => {
                    let _ = tally.effect.record(micros(accepted_at.elapsed()));
                    break order["totalCents"].as_i64().unwrap_or_default();
                }
                Some("pending") => continue,
                other => {
                    self.fail(tally, format!("order {}", other.unwrap_or("unreadable")));
                    return None;
                }
            }
        };
        if Instant::now() >= self.deadline {
            return None;
        }
        self.command(
            tally,
            Method::POST,
            &format!("{path}/payment"),
            Some(json!({"amountCents": total})),
        )
        .await?;
        tally.journeys += 1;
        Some(())
    }
}

/// Runs the load and returns its summary.
pub async fn run(data: &Path, args: &LoadArgs) -> Result<Summary, LoadError> {
    if args.shoppers == 0 || args.products < 2 {
        return Err(LoadError::Usage(
            "--shoppers must be at least 1 and --products at least 2".into(),
        ));
    }
    let keys = DevKeys::load(data).map_err(|e| {
        LoadError::Setup(format!(
            "{e}; point --data (or STOREFRONT_DATA) at the running runtime's data folder"
        ))
    })?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(args.shoppers * 2)
        .build()
        .map_err(|e| LoadError::Setup(format!("cannot build an HTTP client: {e}")))?;
    let api = Api {
        http,
        base: args.url.trim_end_matches('/').to_owned(),
    };
    let issue = |user: &str, admin: bool| {
        keys.issue(
            user,
            admin,
            Some(&format!("{user}@load.example")),
            24 * 3600,
        )
        .map_err(|e| LoadError::Setup(e.to_string()))
    };
    let admin = issue("load-admin", true)?;
    api.call(reqwest::Method::GET, "/health", &admin, None)
        .await
        .map_err(|f| {
            LoadError::Setup(format!(
                "{} does not answer /health ({}); start it with `storefront dev`",
                api.base,
                f.kind()
            ))
        })?;

    // Set-up, before the clock: fresh products and shoppers for this run.
    let mut tag = [0u8; 3];
    getrandom::fill(&mut tag).map_err(|e| LoadError::Setup(e.to_string()))?;
    let run_id = hex::encode(tag);
    let skus: Vec<String> = (0..args.products)
        .map(|i| format!("L{run_id}-{i}"))
        .collect();
    let setup = |path: String, token: String, body: Value| {
        let api = api.clone();
        async move {
            api.call(reqwest::Method::POST, &path, &token, Some(body))
                .await
                .map_err(|f| LoadError::Setup(format!("set-up POST {path}: {}", f.kind())))
        }
    };
    let creates = skus.iter().map(|sku| {
        setup(
            "/products".into(),
            admin.clone(),
            json!({"sku": sku, "name": format!("Load {sku}"), "priceCents": 1250,
                   "currency": "EUR", "stock": storefront_domain::product::MAX_STOCK}),
        )
    });
    for r in futures::stream::iter(creates)
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
    {
        r?;
    }
    let mut tokens = Vec::with_capacity(args.shoppers);
    for i in 0..args.shoppers {
        tokens.push(issue(&format!("load-{run_id}-{i}"), false)?);
    }
    let registers = tokens.iter().enumerate().map(|(i, t)| {
        setup(
            "/users".into(),
            t.clone(),
            json!({"name": format!("Shopper {i}")}),
        )
    });
    for r in futures::stream::iter(registers)
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
    {
        r?;
    }

    // The measured window.
    let duration: Duration = args.duration.into();
    let progress = Arc::new(Progress::default());
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(duration.as_secs().max(1))
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let skus = Arc::new(skus);
    let recorder = args
        .moto
        .as_deref()
        .map(|url| Recorder::new(api.http.clone(), url));
    let mut idle = None;
    if let Some(recorder) = &recorder {
        // Idle means the set-up's events handled and nothing else queued.
        if drain(&api, &admin).await.is_none() {
            return Err(LoadError::Setup(
                "the runtime did not go idle within 120 s of the set-up: nothing to measure its pollers on".into(),
            ));
        }
        recorder.start().await.map_err(LoadError::Setup)?;
        tokio::time::sleep(IDLE_WATCH).await;
        idle = Some(recorder.stop().await.map_err(LoadError::Setup)?);
        recorder.start().await.map_err(LoadError::Setup)?;
    }
    let sqlite_before = sqlite_counts(&api, &admin).await;
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (index, token) in tokens.into_iter().enumerate() {
        tasks.spawn(
            Shopper {
                index,
                token,
                api: api.clone(),
                skus: skus.clone(),
                poll: args.poll.into(),
                deadline,
                progress: progress.clone(),
            }
            .run(),
        );
    }
    let ticker = {
        let bar = bar.clone();
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let elapsed = start.elapsed();
                let commands = progress.commands.load(Ordering::Relaxed);
                bar.set_position(elapsed.as_secs().min(bar.length().unwrap_or(0)));
                bar.set_message(format!(
                    "{commands} commands, {:.0}/s, {} errors",
                    commands as f64 / elapsed.as_secs_f64().max(0.001),
                    progress.errors.load(Ordering::Relaxed)
                ));
            }
        })
    };
    let mut tally = Tally::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(t) => tally.merge(t),
            Err(e) => {
                *tally
                    .errors
                    .entry(format!("shopper task: {e}"))
                    .or_default() += 1
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    ticker.abort();
    bar.finish_and_clear();

    let drain_seconds = drain(&api, &admin).await;
    let aws_requests = match (&recorder, idle) {
        (Some(recorder), Some(idle)) => {
            let run_seconds = start.elapsed().as_secs_f64();
            let run = recorder.stop().await.map_err(LoadError::Setup)?;
            // What a poll costs: one order read POLL_SAMPLE times.
            let order = tally.last_order.clone().ok_or_else(|| {
                LoadError::Setup("no order was placed: nothing to measure a poll on".into())
            })?;
            recorder.start().await.map_err(LoadError::Setup)?;
            for _ in 0..POLL_SAMPLE {
                let _ = api
                    .call(
                        reqwest::Method::GET,
                        &format!("/orders/{}", order.0),
                        &order.1,
                        None,
                    )
                    .await;
            }
            let polled = recorder.stop().await.map_err(LoadError::Setup)?;
            Some(AwsRequests::of(
                (IDLE_WATCH.as_secs_f64(), idle),
                (run_seconds, run),
                polled,
                (tally.journeys, tally.reads),
            ))
        }
        _ => None,
    };
    let sqlite_per_command = match (sqlite_before, sqlite_counts(&api, &admin).await) {
        (Some(before), Some(after)) => {
            Some(SqlitePerCommand::between(&before, &after, tally.commands))
        }
        _ => None,
    };
    Ok(Summary {
        url: api.base.clone(),
        shoppers: args.shoppers,
        seconds,
        commands: tally.commands,
        commands_per_second: tally.commands as f64 / seconds.max(0.001),
        journeys: tally.journeys,
        reads: tally.reads,
        api_latency: Latency::of(&tally.api),
        api_to_last_handler: Latency::of(&tally.effect),
        drain_seconds,
        errors: tally.errors,
        aws_requests,
        sqlite_per_command,
    })
}

/// Seconds until every handler queue is empty and the feed has published
/// every event, polled every 100 ms; `None` after 120 s.
async fn drain(api: &Api, token: &str) -> Option<f64> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        let queues = api
            .call(reqwest::Method::GET, "/_local/queues", token, None)
            .await
            .ok()?;
        let empty = queues
            .as_object()
            .is_some_and(|m| m.values().all(|d| d["queue"].as_u64() == Some(0)));
        if empty {
            let counts = api
                .call(reqwest::Method::GET, "/_local/events/count", token, None)
                .await
                .ok()?;
            if counts["published"] == counts["lastPosition"] {
                return Some(start.elapsed().as_secs_f64());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// The summary as text.
pub fn render(s: &Summary) -> String {
    let line = |name: &str, l: &Latency| {
        format!(
            "  {name:<34} p50 {:>7.2} ms   p90 {:>7.2} ms   p99 {:>7.2} ms   max {:>8.2} ms   (n={})\n",
            l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.count
        )
    };
    let mut out = format!(
        "storefront load: {} shoppers for {:.1} s against {}\n",
        s.shoppers, s.seconds, s.url
    );
    out.push_str(&format!(
        "  commands {} ({:.0}/s), journeys {}, order polls {}\n",
        s.commands, s.commands_per_second, s.journeys, s.reads
    ));
    out.push_str(&line("API latency (commands)", &s.api_latency));
    out.push_str(&line(
        "checkout 201 -> order confirmed",
        &s.api_to_last_handler,
    ));
    match s.drain_seconds {
        Some(d) => out.push_str(&format!(
            "  drained (queues empty, feed caught up) {d:.2} s after the last response\n"
        )),
        None => out.push_str("  not drained within 120 s after the last response\n"),
    }
    if let Some(r) = &s.aws_requests {
        let rates = |counts: &RequestCounts, per: f64| {
            counts
                .0
                .iter()
                .flat_map(|(service, ops)| {
                    ops.iter()
                        .map(move |(op, n)| format!("{service} {op} {:.1}", *n as f64 / per))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "  AWS requests (moto's recorder): idle pollers per second: {}\n",
            rates(&r.idle, r.idle_seconds)
        ));
        out.push_str(&format!(
            "  one GET /orders/{{id}}: {}\n",
            r.per_poll
                .iter()
                .map(|(service, n)| format!("{service} {n:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        out.push_str(
            "  per journey (net of the pollers, the polls and the drain checks), and the run's totals:\n",
        );
        for (service, n) in &r.per_journey {
            let ops: Vec<String> = r.run.0[service]
                .iter()
                .map(|(op, count)| format!("{op} {count}"))
                .collect();
            out.push_str(&format!(
                "    {service:<16} {n:>7.1}   (run total: {})\n",
                ops.join(", ")
            ));
        }
    }
    if let Some(q) = &s.sqlite_per_command {
        out.push_str(&format!(
            "  SQLite per command (until drained, polls included): events.db {:.1} calls, {:.1} commits; queues.db {:.1} calls, {:.1} commits\n",
            q.events_db_calls, q.events_db_commits, q.queues_db_calls, q.queues_db_commits
        ));
    }
    if s.errors.is_empty() {
        out.push_str("  errors: none\n");
    } else {
        out.push_str("  errors:\n");
        for (kind, n) in &s.errors {
            out.push_str(&format!("    {kind}: {n}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Percentiles come out in milliseconds from microsecond records.
    #[test]
    fn latency_from_histogram() {
        let mut h = histogram();
        for us in 1..=100u64 {
            h.record(us * 1000).expect("in range");
        }
        let l = Latency::of(&h);
        assert_eq!(l.count, 100);
        assert!((l.p50_ms - 50.0).abs() < 0.1, "{l:?}");
        assert!((l.p99_ms - 99.0).abs() < 0.1, "{l:?}");
        assert!((l.max_ms - 100.0).abs() < 0.1, "{l:?}");
    }

    /// Merging adds counts, errors by kind and histograms.
    #[test]
    fn tallies_merge() {
        let mut a = Tally::new();
        a.commands = 3;
        a.errors.insert("http 409".into(), 1);
        a.api.record(1000).expect("in range");
        let mut b = Tally::new();
        b.commands = 2;
        b.errors.insert("http 409".into(), 2);
        b.errors.insert("timeout".into(), 1);
        b.api.record(3000).expect("in range");
        a.merge(b);
        assert_eq!(a.commands, 5);
        assert_eq!(a.errors["http 409"], 3);
        assert_eq!(a.errors["timeout"], 1);
        assert_eq!(a.api.len(), 2);
    }
}
