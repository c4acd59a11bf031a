//! AWS SDK configuration, loaded once per cold start.
//!
//! In Lambda the default chain reads region and credentials from the
//! environment without network calls. `AWS_ENDPOINT_URL` (the SDK's own
//! variable) points every client at moto or another endpoint; tests use
//! [`local_config`] with static credentials instead.

use aws_config::BehaviorVersion;
pub use aws_config::SdkConfig;

/// The SDK configuration from the environment (region, credentials, endpoint).
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// A configuration for a local endpoint (moto) with static test credentials.
///
/// It retries up to 10 times instead of the SDK's 3, waiting at most 1 s
/// between tries instead of 20: moto's DynamoDB deep-copies
/// every table for a TransactWriteItems call and fails it with a 500
/// ("dictionary changed size during iteration") when another request writes
/// meanwhile, which concurrent tests and the AWS mode's pollers do (unless
/// moto is started by scripts/moto_server.py, which serialises them). AWS itself
/// has no such failure; the SDK retries a 500 as transient either way.
pub fn local_config(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(10)
                .with_max_backoff(std::time::Duration::from_secs(1)),
        )
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            aws_sdk_dynamodb::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "storefront-local",
            ),
        ))
        .build()
}

/// A DynamoDB client.
pub fn dynamodb(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// An EventBridge client.
pub fn eventbridge(config: &SdkConfig) -> aws_sdk_eventbridge::Client {
    aws_sdk_eventbridge::Client::new(config)
}

/// An SQS client.
pub fn sqs(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}
