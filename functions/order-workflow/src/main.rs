//! The order-workflow Lambda: settings, stores and clients once
//! ([`storefront_runtime::lambda::serve_sqs`]), then the SQS batch handler.

use storefront_order_workflow::{OrderWorkflow, Settings};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    storefront_runtime::lambda::serve_sqs(|config, stores, _| {
        Ok(OrderWorkflow::new(stores, &Settings::from_config(config)?))
    })
    .await
}
