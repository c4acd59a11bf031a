//! The notification Lambda: settings, stores and the SES client once
//! ([`storefront_runtime::lambda::serve_sqs`]), then the SQS batch handler.

use std::sync::Arc;

use storefront_notification::{Notifications, SesNotifier, Settings};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    storefront_runtime::lambda::serve_sqs(|config, stores, sdk| {
        let settings = Settings::from_config(config)?;
        let ses = aws_sdk_sesv2::Client::new(sdk);
        let notifier = Arc::new(SesNotifier::new(ses, settings.sender_email.clone()));
        Ok(Notifications::new(stores, &settings, notifier))
    })
    .await
}
