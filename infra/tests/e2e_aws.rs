//! The same end-to-end scenarios as e2e.rs, on the AWS path: each test
//! deploys template.yaml as a fresh stack on moto (scripts/deploy_moto.py)
//! and runs `storefront dev --aws` against it, so the events go through
//! DynamoDB, its stream, EventBridge rules, SQS queues and their DLQs.

mod common;
mod scenarios;

use common::{Runtime, deploy};

fn data() -> tempfile::TempDir {
    tempfile::tempdir().expect("data dir")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_on_aws() {
    let dir = data();
    let stack = deploy("j");
    scenarios::journey(&Runtime::start_aws(dir.path(), &stack)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overselling_race_on_aws() {
    let dir = data();
    let stack = deploy("o");
    scenarios::overselling_race(&Runtime::start_aws(dir.path(), &stack)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_isolation_dlq_and_redrive_on_aws() {
    let dir = data();
    let stack = deploy("f");
    scenarios::failure_isolation_dlq_and_redrive(&Runtime::start_aws(dir.path(), &stack)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_on_aws() {
    let dir = data();
    let stack = deploy("d");
    scenarios::duplicate_deliveries(&Runtime::start_aws(dir.path(), &stack)).await;
}
