//! The baseline for cold starts: `lambda_runtime` answering every event with
//! itself, nothing else (the shape of maxday's lambda-perf Rust hello world).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
