//! # storefront-faults
//!
//! A fault layer on the wire, for tests: an HTTP/1.1 proxy on 127.0.0.1
//! between the AWS SDK and moto that does to chosen requests what the
//! network and DynamoDB do on AWS and moto never does.
//!
//! moto is kinder than AWS: its calls are serialised, a transaction never
//! meets another, and a response is never lost after a commit. Pointing a
//! client at [`FaultProxy::endpoint`] instead of moto and
//! [`FaultProxy::inject`]ing a [`Fault`] for the next request of an
//! operation puts exactly that failure on the wire, where the SDK's own
//! retries and the store's error handling meet it as they would on AWS.
//!
//! Requests are matched by operation: the part of `X-Amz-Target` after the
//! dot (`PutItem`, `TransactWriteItems`, `SendMessage` ...), or for a REST
//! API the last segment of the path (`outbound-emails` for SES v2's
//! SendEmail). Everything not faulted is forwarded to the upstream unchanged.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What to do to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward it, let the upstream commit it, then close the connection
    /// without an answer: a response lost after the commit (a timeout, a
    /// reset), which the SDK retries.
    CommitThenDrop,
    /// Answer as DynamoDB does when another transaction holds the items:
    /// `TransactionCanceledException` with reason `TransactionConflict` for a
    /// `TransactWriteItems`, `TransactionConflictException` for anything else.
    /// Nothing reaches the upstream.
    TransactionConflict,
    /// Answer `500 InternalServerError` without forwarding.
    InternalError,
    /// Answer `400 ThrottlingException` without forwarding.
    Throttle,
    /// Answer `400 ValidationException` without forwarding: an error the
    /// SDK does not retry.
    Reject,
    /// Wait this long, then forward.
    Delay(Duration),
}

#[derive(Default)]
struct Plan {
    /// (operation, fault), applied in order to the next matching requests.
    pending: VecDeque<(String, Fault)>,
    /// (operation, fault) applied to every matching request until cleared.
    always: Vec<(String, Fault)>,
    /// What was applied: (operation, fault).
    applied: Vec<(String, Fault)>,
    /// Requests forwarded to the upstream, per operation.
    forwarded: std::collections::HashMap<String, usize>,
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    endpoint: String,
    plan: Arc<Mutex<Plan>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why the proxy could not start.
#[derive(Debug)]
pub struct StartError(pub std::io::Error);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot listen on 127.0.0.1: {}", self.0)
    }
}

impl std::error::Error for StartError {}

impl FaultProxy {
    /// Starts a proxy on a free port of 127.0.0.1 in front of `upstream`
    /// (e.g. `http://127.0.0.1:5000`).
    pub async fn start(upstream: &str) -> Result<FaultProxy, StartError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(StartError)?;
        let endpoint = format!("http://{}", listener.local_addr().map_err(StartError)?);
        let plan = Arc::new(Mutex::new(Plan::default()));
        let upstream = upstream.trim_end_matches('/').to_owned();
        let client = reqwest::Client::new();
        let shared = plan.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (plan, upstream, client) = (shared.clone(), upstream.clone(), client.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, &plan, &upstream, &client).await;
                });
            }
        });
        Ok(FaultProxy {
            endpoint,
            plan,
            task,
        })
    }

    /// The URL to point a client at.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Applies `fault` to the next request of `operation` (after any fault
    /// injected before it for the same operation).
    pub fn inject(&self, operation: &str, fault: Fault) {
        self.lock().pending.push_back((operation.to_owned(), fault));
    }

    /// Applies `fault` to every request of `operation` until [`FaultProxy::clear`].
    pub fn inject_always(&self, operation: &str, fault: Fault) {
        self.lock().always.push((operation.to_owned(), fault));
    }

    /// Stops the faults [`FaultProxy::inject_always`] set for `operation`.
    pub fn clear(&self, operation: &str) {
        self.lock().always.retain(|(op, _)| op != operation);
    }

    /// The faults applied so far, in order.
    pub fn applied(&self) -> Vec<(String, Fault)> {
        self.lock().applied.clone()
    }

    /// How many requests of `operation` reached the upstream.
    pub fn forwarded(&self, operation: &str) -> usize {
        self.lock().forwarded.get(operation).copied().unwrap_or(0)
    }

    /// Faults injected and not yet met by a request.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn operation(&self) -> String {
        match self.header("x-amz-target") {
            Some(target) => target.rsplit('.').next().unwrap_or_default().to_owned(),
            None => self
                .path
                .split('?')
                .next()
                .and_then(|p| p.trim_end_matches('/').rsplit('/').next())
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

/// Reads one request (head and a Content-Length body); `None` at the end of the connection.
async fn read_request(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> std::io::Result<Option<Request>> {
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut start = lines.next().unwrap_or_default().split(' ');
    let method = start.next().unwrap_or("GET").to_owned();
    let path = start.next().unwrap_or("/").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[head_end..head_end + length].to_vec();
    buffer.drain(..head_end + length);
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

async fn write_response(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    stream.write_all(out.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

/// An AWS JSON-protocol error answer.
fn aws_error(kind: &str, extra: serde_json::Value) -> Vec<u8> {
    let mut body = serde_json::json!({
        "__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"),
        "message": format!("{kind} injected by the test's fault proxy"),
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body.to_string().into_bytes()
}

fn json_headers() -> Vec<(String, String)> {
    vec![(
        "content-type".to_owned(),
        "application/x-amz-json-1.0".to_owned(),
    )]
}

async fn forward(
    request: &Request,
    upstream: &str,
    client: &reqwest::Client,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), reqwest::Error> {
    let method =
        reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::POST);
    let mut call = client.request(method, format!("{upstream}{}", request.path));
    for (k, v) in &request.headers {
        if !["host", "content-length", "connection", "transfer-encoding"]
            .iter()
            .any(|h| k.eq_ignore_ascii_case(h))
        {
            call = call.header(k, v);
        }
    }
    let response = call.body(request.body.clone()).send().await?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter(|(k, _)| {
            !["content-length", "connection", "transfer-encoding"]
                .iter()
                .any(|h| k.as_str().eq_ignore_ascii_case(h))
        })
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let body = response.bytes().await?.to_vec();
    Ok((status, headers, body))
}

async fn serve(
    mut stream: TcpStream,
    plan: &Mutex<Plan>,
    upstream: &str,
    client: &reqwest::Client,
) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    while let Some(request) = read_request(&mut stream, &mut buffer).await? {
        let operation = request.operation();
        let fault = {
            let mut plan = plan.lock().unwrap_or_else(|p| p.into_inner());
            let at = plan.pending.iter().position(|(op, _)| *op == operation);
            let fault = at
                .and_then(|i| plan.pending.remove(i))
                .map(|(_, f)| f)
                .or_else(|| {
                    plan.always
                        .iter()
                        .find(|(op, _)| *op == operation)
                        .map(|(_, f)| *f)
                });
            if let Some(f) = fault {
                plan.applied.push((operation.clone(), f));
            }
            fault
        };
        match fault {
            Some(Fault::TransactionConflict) => {
                let body = if operation == "TransactWriteItems" {
                    aws_error(
                        "TransactionCanceledException",
                        serde_json::json!({
                            "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
                            "CancellationReasons": [{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}],
                        }),
                    )
                } else {
                    aws_error("TransactionConflictException", serde_json::json!({}))
                };
                write_response(&mut stream, 400, &json_headers(), &body).await?;
            }
            Some(Fault::InternalError) => {
                let body = aws_error("InternalServerError", serde_json::json!({}));
                write_response(&mut stream, 500, &json_headers(), &body).await?;
            }
            Some(Fault::Reject) => {
                let body = aws_error("ValidationException", serde_json::json!({}));
                write_response(&mut stream, 400, &json_headers(), &body).await?;
            }
            Some(Fault::Throttle) => {
                let body = aws_error("ThrottlingException", serde_json::json!({}));
                write_response(&mut stream, 400, &json_headers(), &body).await?;
            }
            other => {
                if let Some(Fault::Delay(d)) = other {
                    tokio::time::sleep(d).await;
                }
                *plan
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .forwarded
                    .entry(operation.clone())
                    .or_default() += 1;
                let (status, headers, body) = match forward(&request, upstream, client).await {
                    Ok(answer) => answer,
                    Err(e) => (502, Vec::new(), e.to_string().into_bytes()),
                };
                if other == Some(Fault::CommitThenDrop) {
                    // The upstream committed; the caller never hears of it.
                    let _ = stream.shutdown().await;
                    return Ok(());
                }
                write_response(&mut stream, status, &headers, &body).await?;
            }
        }
    }
    Ok(())
}
