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
}

pub fn template() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")
}

impl Runtime {
    /// Starts `storefront dev` on port 0 over `data`, with fast redelivery, and waits until it listens.
    pub fn start(data: &Path) -> Runtime {
        let mut child = Command::new(env!("CARGO_BIN_EXE_storefront"))
            .args([
                "dev",
                "--port",
                "0",
                "--retry-base",
                "20ms",
                "--log-format",
                "json",
            ])
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
        }
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn token(&self, user: &str, admin: bool) -> String {
        storefront::auth::DevKeys::load_or_create(&self.data)
            .expect("keys")
            .issue(user, admin, 3600)
            .expect("token")
    }

    /// Runs a `storefront` CLI command against the same data folder.
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_storefront"))
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
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            base: base.to_owned(),
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
        let mut request = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        let value = response.json::<Value>().await.unwrap_or(Value::Null);
        Some((status, value))
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
/// an event just appended may not have reached them yet.
pub async fn quiet(client: &Client) {
    eventually(60, "all handler queues drained", || async {
        let (_, counts) = client.send("GET", "/_local/events/count", None, None).await;
        if counts["published"] != counts["lastPosition"] {
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
        (!busy).then_some(())
    })
    .await;
}
