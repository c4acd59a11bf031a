//! The audit Lambda: settings, stores and clients once
//! ([`storefront_runtime::lambda::serve_sqs`]), then the SQS batch handler.

use storefront_audit::{Audit, Settings};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    storefront_runtime::lambda::serve_sqs(|config, stores, _| {
        Ok(Audit::new(stores, &Settings::from_config(config)?))
    })
    .await
}
