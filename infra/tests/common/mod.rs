//! Starts the real `storefront` binary on a free port with its own data
//! folder, and speaks to it over HTTP.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Runtime {
    pub child: Child,
    pub base: String,
    pub data: PathBuf,
    /// The stack, in AWS mode.
    pub aws: Option<Stack>,
}

/// A stack deployed on moto by scripts/deploy_moto.py.
#[derive(Debug, Clone)]
pub struct Stack {
    pub endpoint: String,
    pub name: String,
    pub stage: String,
    pub events_table: String,
    pub state_table: String,
}

/// Every item of a table of the stack.
async fn scan(
    stack: &Stack,
    table: &str,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    let client =
        aws_sdk_dynamodb::Client::new(&storefront_runtime::aws::local_config(&stack.endpoint));
    let mut pages = client
        .scan()
        .table_name(table)
        .into_paginator()
        .items()
        .send();
    let mut out = Vec::new();
    while let Some(item) = pages.next().await {
        out.push(item.expect("scan"));
    }
    out
}

/// Held by an AWS-mode test while it runs, so they take turns on moto.
pub async fn aws_slot() -> tokio::sync::MutexGuard<'static, ()> {
    static SLOT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SLOT.lock().await
}

/// moto's URL, set by `make test`.
pub fn aws_endpoint() -> String {
    ["STOREFRONT_AWS_ENDPOINT", "STOREFRONT_DYNAMODB_ENDPOINT"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|e| !e.is_empty()))
        .expect(
            "STOREFRONT_AWS_ENDPOINT is not set: run `make test`, which starts moto on 127.0.0.1",
        )
}

/// Deploys template.yaml on moto as a fresh stack (its own stage, so its
/// own tables, bus, rules and queues) and reads back the physical names.
pub fn deploy(prefix: &str) -> Stack {
    let endpoint = aws_endpoint();
    let python = std::env::var("STOREFRONT_PYTHON").expect(
        "STOREFRONT_PYTHON is not set: run `make test`, whose venv has aws-sam-translator and boto3",
    );
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let stage = format!(
        "{prefix}{:x}{:x}",
        std::process::id() % 0xfff,
        nanos % 0xfffff
    );
    let out = Command::new(&python)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/deploy_moto.py"))
        .args(["--endpoint", &endpoint, "--stage", &stage, "--template"])
        .arg(template())
        .output()
        .expect("run scripts/deploy_moto.py");
    assert!(
        out.status.success(),
        "deploy_moto.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deployed: Value = serde_json::from_slice(&out.stdout).expect("deploy_moto.py prints JSON");
    let output = |k: &str| {
        deployed["outputs"][k]
            .as_str()
            .unwrap_or_else(|| panic!("output {k} in {deployed}"))
            .to_owned()
    };
    Stack {
        endpoint,
        name: deployed["stack"].as_str().expect("stack").to_owned(),
        stage,
        events_table: output("EventsTableName"),
        state_table: output("StateTableName"),
    }
}

pub fn template() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")
}

impl Runtime {
    /// Starts `storefront dev` on port 0 over `data`, with fast redelivery, and waits until it listens.
    pub fn start(data: &Path) -> Runtime {
        Runtime::spawn(data, None)
    }

    /// Starts `storefront dev --aws` against `stack` on moto, with fast redelivery.
    pub fn start_aws(data: &Path, stack: &Stack) -> Runtime {
        Runtime::spawn(data, Some(stack.clone()))
    }

    /// The embedded runtime, or the AWS mode on `stack`.
    pub fn start_on(data: &Path, stack: Option<&Stack>) -> Runtime {
        Runtime::spawn(data, stack.cloned())
    }

    /// `storefront dev --aws` against `stack`, running the functions as the
    /// binaries `sam build` left in `artifacts` (a deploy rehearsal).
    pub fn start_rehearsal(data: &Path, stack: &Stack, artifacts: &Path) -> Runtime {
        Runtime::spawn_with(data, Some(stack.clone()), Some(artifacts))
    }

    fn spawn(data: &Path, aws: Option<Stack>) -> Runtime {
        Runtime::spawn_with(data, aws, None)
    }

    fn spawn_with(data: &Path, aws: Option<Stack>, artifacts: Option<&Path>) -> Runtime {
        let mut command = Command::new(env!("CARGO_BIN_EXE_storefront"));
        command.args([
            "dev",
            "--port",
            "0",
            "--retry-base",
            "20ms",
            "--log-format",
            "json",
        ]);
        if let Some(stack) = &aws {
            command.args([
                "--aws",
                "--stack",
                &stack.name,
                "--endpoint",
                &stack.endpoint,
            ]);
        }
        if let Some(artifacts) = artifacts {
            command.arg("--artifacts").arg(artifacts);
        }
        let mut child = command
            .arg("--data")
            .arg(data)
            .arg("--template")
            .arg(template())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(data.join("runtime.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("start storefront");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("storefront exited before listening")
                .expect("read");
            if let Some(url) = line.strip_prefix("listening on ") {
                break url.trim().to_owned();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Runtime {
            child,
            base,
            data: data.to_path_buf(),
            aws,
        }
    }

    /// An HTTP client for this runtime (retrying a 503 in AWS mode, see [`Client`]).
    pub fn client(&self) -> Client {
        let mut client = Client::new(&self.base);
        client.local_token = Some(self.token("local-tooling", true));
        if self.aws.is_some() {
            client.retry_unavailable = true;
            client.patience = 300;
            // A command on moto can take many seconds under load (every
            // transaction copies the tables; the SDK retries its 500s).
            client.http = reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client");
        }
        client
    }

    /// Whether this is the embedded runtime (SQLite), not the AWS mode.
    pub fn embedded(&self) -> bool {
        self.aws.is_none()
    }

    /// The stores the runtime writes to: SQLite in the data folder, or the stack's tables.
    pub fn stores(&self) -> storefront_runtime::Stores {
        match &self.aws {
            None => storefront_runtime::Stores::from(
                storefront_store::sqlite::SqliteStore::open(self.data.join("events.db"))
                    .expect("open events.db"),
            ),
            Some(stack) => storefront_runtime::Stores::from(self.dynamo(stack)),
        }
    }

    fn dynamo(&self, stack: &Stack) -> storefront_store::dynamodb::DynamoStore {
        let sdk = storefront_runtime::aws::local_config(&stack.endpoint);
        storefront_store::dynamodb::DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            storefront_store::dynamodb::TableNames {
                events: stack.events_table.clone(),
                state: stack.state_table.clone(),
            },
        )
    }

    /// Every stored event, ordered by stream and version.
    pub async fn events(&self) -> Vec<storefront_domain::EventEnvelope> {
        let mut all: Vec<storefront_domain::EventEnvelope> = match &self.aws {
            None => {
                use storefront_store::EventLog;
                storefront_store::sqlite::SqliteStore::open(self.data.join("events.db"))
                    .expect("open events.db")
                    .read_after(0, 10_000_000)
                    .await
                    .expect("read the log")
                    .into_iter()
                    .map(|l| l.envelope)
                    .collect()
            }
            Some(stack) => scan(stack, &stack.events_table)
                .await
                .iter()
                .map(|i| storefront_store::dynamodb::item_to_event(i).expect("event item"))
                .collect(),
        };
        all.sort_by(|a, b| (&a.stream_id, a.version).cmp(&(&b.stream_id, b.version)));
        all
    }

    /// Every state item (views, snapshots, idempotency records, ...), ordered by key.
    pub async fn state(&self) -> Vec<storefront_store::StateItem> {
        let mut all = match &self.aws {
            None => {
                let db = rusqlite::Connection::open(self.data.join("events.db")).expect("open");
                let mut s = db
                    .prepare("SELECT pk, sk, version, value, expires_at FROM state")
                    .expect("prepare");
                s.query_map([], |r| {
                    Ok(storefront_store::StateItem {
                        pk: r.get(0)?,
                        sk: r.get(1)?,
                        version: r.get::<_, i64>(2)? as u64,
                        value: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or(Value::Null),
                        expires_at: r.get(4)?,
                    })
                })
                .expect("query")
                .collect::<Result<Vec<_>, _>>()
                .expect("rows")
            }
            Some(stack) => scan(stack, &stack.state_table)
                .await
                .iter()
                .map(|i| storefront_store::dynamodb::item_to_state(i).expect("state item"))
                .collect(),
        };
        all.sort_by(|a, b| (&a.pk, &a.sk).cmp(&(&b.pk, &b.sk)));
        all
    }

    /// `storefront dlq ...` against this runtime's queues (`--aws --stage` in AWS mode).
    pub fn dlq(&self, args: &[&str]) -> (bool, String) {
        let mut all = vec!["dlq"];
        all.extend_from_slice(args);
        if let Some(stack) = &self.aws {
            all.extend_from_slice(&["--aws", "--stage", &stack.stage]);
        }
        self.cli(&all)
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn token(&self, user: &str, admin: bool) -> String {
        storefront::auth::DevKeys::load_or_create(&self.data)
            .expect("keys")
            .issue(user, admin, Some(&format!("{user}@example.com")), 3600)
            .expect("token")
    }

    /// Runs a `storefront` CLI command against the same data folder.
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_storefront"));
        if let Some(stack) = &self.aws {
            command
                .env("AWS_ENDPOINT_URL", &stack.endpoint)
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("AWS_REGION", "us-east-1");
        }
        let out = command
            .args(args)
            .arg("--data")
            .arg(&self.data)
            .arg("--template")
            .arg(template())
            .output()
            .expect("run cli");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    /// Retry a 503 the way the API asks clients to: the same request with
    /// the same Idempotency-Key, a moment later (AWS mode on moto, whose
    /// DynamoDB fails TransactWriteItems with a 500 under concurrent writes
    /// even after the SDK's retries).
    pub retry_unavailable: bool,
    /// How long to wait for the handlers to catch up, in seconds: moto is far
    /// slower than SQLite (each transaction copies whole tables), so the AWS
    /// mode gets more.
    pub patience: u64,
    /// An admin's dev token, sent to the `/_local` tooling routes (which
    /// need one) when a call gives no token of its own.
    pub local_token: Option<String>,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            base: base.to_owned(),
            retry_unavailable: false,
            patience: 30,
            local_token: None,
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.try_send(method, path, token, body)
            .await
            .expect("request")
    }

    /// Like `send`, but a refused or cut connection is `None` (the server died).
    pub async fn try_send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let token = token.or(self
            .local_token
            .as_deref()
            .filter(|_| path.starts_with("/_local/")));
        let key = (self.retry_unavailable && method == reqwest::Method::POST).then(|| {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).expect("random key");
            hex::encode(bytes)
        });
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .request(method.clone(), format!("{}{}", self.base, path));
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            if let Some(k) = &key {
                request = request.header("Idempotency-Key", k);
            }
            if let Some(b) = &body {
                request = request.json(b);
            }
            let response = request.send().await.ok()?;
            let status = response.status().as_u16();
            let value = response.json::<Value>().await.unwrap_or(Value::Null);
            if status == 503 && self.retry_unavailable && attempt < 10 {
                eprintln!("{path}: 503 ({value}); retrying, attempt {attempt}");
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                continue;
            }
            return Some((status, value));
        }
    }

    pub async fn ok(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let (status, value) = self.send(method, path, token, body).await;
        assert!((200..300).contains(&status), "{path}: {status} {value}");
        value
    }
}

/// Polls `check` until it returns Some, or fails after `secs` seconds with `what`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the feed has published every stored event and every handler
/// queue is empty (the system is quiet). Empty queues alone are not enough:
/// an event just appended may not have reached them yet; and a handler may
/// append an event and delete its message between two looks, so the counts
/// are read before and after the queues and must not have moved.
pub async fn quiet(client: &Client) {
    eventually(
        2 * client.patience,
        "all handler queues drained",
        || async {
            let (_, before) = client.send("GET", "/_local/events/count", None, None).await;
            if before["published"] != before["lastPosition"] {
                return None;
            }
            let (_, depths) = client.send("GET", "/_local/queues", None, None).await;
            let busy = depths
                .as_object()?
                .values()
                .any(|d| d["queue"].as_u64() != Some(0));
            if busy && std::env::var_os("E2E_DEBUG").is_some() {
                eprintln!("busy: {depths}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            if busy {
                return None;
            }
            let (_, after) = client.send("GET", "/_local/events/count", None, None).await;
            (after == before).then_some(())
        },
    )
    .await;
}
