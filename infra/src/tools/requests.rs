//! Counting the AWS requests a load run makes, with moto's recorder: the
//! AWS path's cost per journey (`storefront load --moto URL` against
//! `storefront dev --aws` on that moto).
//!
//! moto writes every request it serves to its recording (headers and body)
//! while recording is on. Each request is attributed to its service by the
//! SigV4 credential scope of its `Authorization` header
//! (`.../{region}/{service}/aws4_request`) and to its operation by its
//! `X-Amz-Target` (the JSON protocols: DynamoDB, DynamoDB Streams,
//! EventBridge, SQS) or its `Action` parameter (the query protocols).
//! moto is not AWS and its speed says nothing; the number of requests the
//! storefront sends it is the same as it would send AWS.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// Requests by service, then by operation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequestCounts(pub BTreeMap<String, BTreeMap<String, u64>>);

impl RequestCounts {
    /// The counts of a moto recording (one JSON object per line).
    pub fn of_recording(recording: &str) -> RequestCounts {
        let mut counts = RequestCounts::default();
        for line in recording.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(entry) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let (service, operation) = attribute(&entry);
            *counts
                .0
                .entry(service)
                .or_default()
                .entry(operation)
                .or_default() += 1;
        }
        counts
    }

    /// Every request of one service.
    pub fn service(&self, service: &str) -> u64 {
        self.0.get(service).map_or(0, |ops| ops.values().sum())
    }

    /// The requests of one operation.
    pub fn operation(&self, service: &str, operation: &str) -> u64 {
        self.0
            .get(service)
            .and_then(|ops| ops.get(operation))
            .copied()
            .unwrap_or(0)
    }

    /// Every request.
    pub fn total(&self) -> u64 {
        self.0.values().flat_map(|ops| ops.values()).sum()
    }
}

/// A header of a recorded request, whatever its case.
fn header<'a>(entry: &'a Value, name: &str) -> Option<&'a str> {
    entry["headers"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// (service, operation) of one recorded request; `unsigned` or `unknown`
/// where the request does not say.
fn attribute(entry: &Value) -> (String, String) {
    let service = header(entry, "authorization")
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|credential| credential.split([',', ' ']).next())
        .and_then(|scope| scope.split('/').nth(3))
        .unwrap_or("unsigned")
        .to_owned();
    let operation = header(entry, "x-amz-target")
        .and_then(|t| t.rsplit('.').next())
        .map(str::to_owned)
        .or_else(|| query_action(entry))
        .or_else(|| rest_operation(entry))
        .unwrap_or_else(|| "unknown".to_owned());
    (service, operation)
}

/// The `Action` parameter of a query-protocol request (in its body, or its URL).
fn query_action(entry: &Value) -> Option<String> {
    let from = |text: &str| {
        text.split(['&', '?'])
            .find_map(|pair| pair.strip_prefix("Action="))
            .map(str::to_owned)
    };
    entry["body"]
        .as_str()
        .and_then(from)
        .or_else(|| entry["url"].as_str().and_then(from))
}

/// A REST-protocol request (SES v2, say) as `METHOD /path`, without its query.
fn rest_operation(entry: &Value) -> Option<String> {
    let method = entry["method"].as_str()?;
    let url = entry["url"].as_str()?;
    let path = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
    let path = path.split('?').next().unwrap_or(path);
    Some(format!("{method} {path}"))
}

/// moto's recorder, over HTTP.
pub struct Recorder {
    http: reqwest::Client,
    base: String,
}

impl Recorder {
    /// The recorder of the moto server at `base` (e.g. `http://127.0.0.1:5000`).
    pub fn new(http: reqwest::Client, base: &str) -> Recorder {
        Recorder {
            http,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    async fn call(&self, operation: &str) -> Result<String, String> {
        let url = format!("{}/moto-api/recorder/{operation}", self.base);
        let request = if operation == "download-recording" {
            self.http.get(&url)
        } else {
            self.http.post(&url)
        };
        let response = request
            .send()
            .await
            .map_err(|e| format!("moto's recorder at {url}: {e}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("moto's recorder at {url}: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "moto's recorder at {url} answered {status}: is --moto the moto server `storefront dev --aws` talks to?"
            ));
        }
        Ok(text)
    }

    /// Forgets what was recorded and starts recording.
    pub async fn start(&self) -> Result<(), String> {
        self.call("reset-recording").await?;
        self.call("start-recording").await.map(|_| ())
    }

    /// Stops recording and counts what was recorded since [`Self::start`].
    pub async fn stop(&self) -> Result<RequestCounts, String> {
        self.call("stop-recording").await?;
        let recording = self.call("download-recording").await?;
        Ok(RequestCounts::of_recording(&recording))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests are attributed by their signature's scope and their target or action.
    #[test]
    fn requests_are_attributed_to_service_and_operation() {
        let signed = |service: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential=test/20261130/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=00"
            )
        };
        let lines = [
            serde_json::json!({"headers": {"Authorization": signed("dynamodb"), "X-Amz-Target": "DynamoDB_20120810.TransactWriteItems"}, "url": "/", "body": "{}"}),
            serde_json::json!({"headers": {"authorization": signed("dynamodb"), "x-amz-target": "DynamoDB_20120810.GetItem"}, "url": "/", "body": "{}"}),
            serde_json::json!({"headers": {"Authorization": signed("dynamodb"), "X-Amz-Target": "DynamoDB_20120810.GetItem"}, "url": "/", "body": "{}"}),
            serde_json::json!({"headers": {"Authorization": signed("events"), "X-Amz-Target": "AWSEvents.PutEvents"}, "url": "/", "body": "{}"}),
            serde_json::json!({"headers": {"Authorization": signed("sqs"), "X-Amz-Target": "AmazonSQS.ReceiveMessage"}, "url": "/", "body": "{}"}),
            serde_json::json!({"headers": {"Authorization": signed("cloudformation")}, "url": "/", "body": "Action=DescribeStacks&Version=2010-05-15"}),
            serde_json::json!({"headers": {}, "url": "/?Action=ListQueues", "body": ""}),
            serde_json::json!({"headers": {"Authorization": signed("ses")}, "method": "POST", "url": "http://127.0.0.1:5000/v2/email/outbound-emails?x=1", "body": "{}"}),
        ];
        let recording: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let counts = RequestCounts::of_recording(&format!("{recording}not json\n\n"));
        assert_eq!(counts.0["dynamodb"]["GetItem"], 2);
        assert_eq!(counts.0["dynamodb"]["TransactWriteItems"], 1);
        assert_eq!(counts.service("dynamodb"), 3);
        assert_eq!(counts.0["events"]["PutEvents"], 1);
        assert_eq!(counts.0["sqs"]["ReceiveMessage"], 1);
        assert_eq!(counts.0["cloudformation"]["DescribeStacks"], 1);
        assert_eq!(counts.0["unsigned"]["ListQueues"], 1);
        assert_eq!(counts.0["ses"]["POST /v2/email/outbound-emails"], 1);
        assert_eq!(counts.total(), 8);
    }
}
