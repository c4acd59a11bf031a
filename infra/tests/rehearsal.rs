//! The deploy rehearsal: the functions as `sam build` built them (the
//! `bootstrap` files that would be uploaded), each under the Lambda Runtime
//! API with the environment its function has in a stack deployed on moto.
//! `make test` runs `sam build` once (for x86_64) and points
//! `STOREFRONT_ARTIFACTS` at its output.
//!
//! - every function of the template starts and answers a representative
//!   first invocation, and every line it logs while invoked carries the
//!   invocation's request id and trace id (an EMF metrics document, the
//!   request id);
//! - the journey, the overselling race and the DLQ drill pass through the
//!   built binaries (`storefront dev --aws --artifacts`);
//! - a failed invocation names its error (`errorType`).

mod common;
mod scenarios;

use std::path::PathBuf;
use std::time::Duration;

use common::{Runtime, aws_slot, deploy};
use serde_json::Value;
use storefront::aws::deployment::Deployment;
use storefront::aws::rehearsal;
use storefront::tools::coldstart::events::event_for;
use storefront_template::Template;

fn artifacts() -> PathBuf {
    let dir = std::env::var("STOREFRONT_ARTIFACTS").expect(
        "STOREFRONT_ARTIFACTS is not set: run `make test`, which runs `sam build` and sets it",
    );
    PathBuf::from(dir)
}

/// Every bootstrap `sam build` made is a plain (non-PIE) executable, as
/// `scripts/deploy_profile.py` asks: ELF type `ET_EXEC`, not `ET_DYN`, so
/// the loader has next to nothing to relocate at a cold start
/// (BENCHMARKS.md section 2b).
#[test]
fn every_bootstrap_is_linked_as_a_plain_executable() {
    let template = Template::load(common::template()).expect("template");
    for f in template.functions.values() {
        let path = artifacts().join(&f.logical_id).join("bootstrap");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            bytes.get(..4),
            Some(&b"\x7fELF"[..]),
            "{} is not ELF",
            path.display()
        );
        // e_type, little-endian, at offset 16: 2 = ET_EXEC, 3 = ET_DYN (PIE).
        let e_type = bytes.get(16..18).map(|b| u16::from_le_bytes([b[0], b[1]]));
        assert_eq!(
            e_type,
            Some(2),
            "{} is position-independent: the Lambda targets' RUSTFLAGS of scripts/deploy_profile.py did not reach cargo",
            path.display()
        );
    }
}

/// Whether `key` is anywhere in `value` (a log line's fields, or its spans').
fn has_key(value: &Value, key: &str) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| k == key || has_key(v, key)),
        Value::Array(items) => items.iter().any(|v| has_key(v, key)),
        _ => false,
    }
}

/// Each built function starts under the Runtime API with its deployed
/// environment, answers its first invocation as Lambda's integration
/// expects, and every line it logs during that invocation is JSON carrying
/// the request id and the X-Ray trace id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_built_function_answers_and_logs_with_its_request_id() {
    let _one_at_a_time = aws_slot().await;
    let stack = deploy("b");
    let template = Template::load(common::template()).expect("template");
    let sdk = storefront_runtime::aws::local_config(&stack.endpoint);
    let deployment = Deployment::from_stack(&sdk, &template, &stack.name)
        .await
        .expect("the stack's names");
    let mut invocation_lines = 0;
    for f in template.functions.values() {
        let process =
            rehearsal::start(&sdk, &deployment, f, &artifacts(), Some(&stack.endpoint), 1)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", f.logical_id));
        assert!(
            process.ready(Duration::from_secs(30)).await,
            "{}: never asked for an invocation; its log: {:?}",
            f.logical_id,
            process.logs()
        );
        assert!(
            process.init_errors().is_empty(),
            "{}: {:?}",
            f.logical_id,
            process.init_errors()
        );
        let init_lines = process.logs().len();
        let (what, event) = event_for(&template, Some(f)).expect("a representative event");
        let answer = process
            .invoke(event.to_string().as_bytes())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{} given {what}: {e}; its log: {:?}",
                    f.logical_id,
                    process.logs()
                )
            });
        let answer: Value = serde_json::from_slice(&answer)
            .unwrap_or_else(|e| panic!("{}: the answer is not JSON: {e}", f.logical_id));
        if f.http {
            assert_eq!(answer["statusCode"], 200, "{}: {answer}", f.logical_id);
        } else if !f.sqs.is_empty() || !f.streams.is_empty() {
            let failures = answer["batchItemFailures"]
                .as_array()
                .unwrap_or_else(|| panic!("{}: not a batch response: {answer}", f.logical_id));
            assert!(
                failures.is_empty(),
                "{} given {what}: {answer}",
                f.logical_id
            );
        } else {
            assert!(answer.is_object(), "{}: {answer}", f.logical_id);
        }
        // Give the pipe a moment to hand over the invocation's last lines.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let logs = process.logs();
        for line in &logs[init_lines..] {
            let parsed: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("{}: a log line is not JSON ({e}): {line}", f.logical_id)
            });
            assert!(
                has_key(&parsed, "requestId"),
                "{}: a line logged during an invocation has no requestId: {line}",
                f.logical_id
            );
            // An EMF metrics document (`_aws`) names the request; a log line also the trace.
            assert!(
                parsed.get("_aws").is_some() || has_key(&parsed, "xrayTraceId"),
                "{}: a line logged during an invocation has no xrayTraceId: {line}",
                f.logical_id
            );
            invocation_lines += 1;
        }
    }
    assert!(
        invocation_lines > 0,
        "no function logged anything during its invocation: the check above checked nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_through_the_built_binaries() {
    let _one_at_a_time = aws_slot().await;
    let dir = tempfile::tempdir().expect("data dir");
    let stack = deploy("rj");
    scenarios::journey(&Runtime::start_rehearsal(dir.path(), &stack, &artifacts())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overselling_race_through_the_built_binaries() {
    let _one_at_a_time = aws_slot().await;
    let dir = tempfile::tempdir().expect("data dir");
    let stack = deploy("ro");
    scenarios::overselling_race(&Runtime::start_rehearsal(dir.path(), &stack, &artifacts())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_drill_through_the_built_binaries() {
    let _one_at_a_time = aws_slot().await;
    let dir = tempfile::tempdir().expect("data dir");
    let stack = deploy("rf");
    scenarios::failure_isolation_dlq_and_redrive(&Runtime::start_rehearsal(
        dir.path(),
        &stack,
        &artifacts(),
    ))
    .await;
}

/// A sweep that fails (here: no DynamoDB answers) ends the invocation with
/// a typed `errorType`, which an operator can filter on, not the Rust type
/// name of a boxed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sweep_reports_a_typed_error() {
    use storefront::service::runtime_api::{InvokeFailure, ProcessFunction, ProcessSpec};
    let template = Template::load(common::template()).expect("template");
    let f = template
        .function_by_binary("storefront-cart-sweeper")
        .expect("the sweeper");
    let name = "storefront-typed-error-cart-sweeper";
    let mut env = storefront::service::runtime_api::lambda_environment(name, 128, "us-east-1");
    for (k, v) in [
        ("EVENTS_TABLE", "events"),
        ("STATE_TABLE", "state"),
        ("CART_IDLE_MINUTES", "60"),
        ("PAYMENT_TIMEOUT_MINUTES", "30"),
        ("SNAPSHOT_EVERY", "100"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        // Nothing listens there: every DynamoDB call fails.
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }
    let process = ProcessFunction::start(ProcessSpec {
        name: f.logical_id.clone(),
        binary: artifacts().join(&f.logical_id).join("bootstrap"),
        env,
        timeout: Duration::from_secs(60),
        instances: 1,
        arn: format!("arn:aws:lambda:us-east-1:000000000000:function:{name}"),
    })
    .await
    .expect("start");
    let schedule = serde_json::json!({
        "version": "0", "id": "typed-error", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "000000000000", "time": "2026-11-30T10:00:00Z", "region": "us-east-1",
        "resources": [], "detail": {}
    });
    let failure = process
        .invoke(schedule.to_string().as_bytes())
        .await
        .expect_err("a sweep without DynamoDB fails");
    assert!(
        matches!(
            &failure,
            InvokeFailure::Function { error_type, .. } if error_type == "HandlerError.Transient"
        ),
        "{failure}; its log: {:?}",
        process.logs()
    );
}
