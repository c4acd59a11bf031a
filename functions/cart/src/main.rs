//! The cart Lambda: settings, stores and clients once
//! ([`storefront_runtime::lambda::serve_sqs`]), then the SQS batch handler.

use storefront_cart::{CartViews, Settings};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    storefront_runtime::lambda::serve_sqs(|config, stores, _| {
        Ok(CartViews::new(stores, &Settings::from_config(config)?))
    })
    .await
}
