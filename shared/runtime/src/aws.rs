//! AWS SDK configuration, loaded once per cold start.
//!
//! In Lambda the default chain reads region and credentials from the
//! environment without network calls. `AWS_ENDPOINT_URL` (the SDK's own
//! variable) points every client at moto or another endpoint; tests use
//! [`local_config`] with static credentials instead.

use aws_config::BehaviorVersion;
pub use aws_config::SdkConfig;

/// The SDK configuration from the environment (region, credentials, endpoint).
///
/// Inside Lambda, talking to AWS's own endpoints, the HTTPS client trusts
/// only the roots AWS endpoints chain to ([`TrustRoots::Aws`]): the SDK's
/// default loads the system's whole certificate store (a bundle and then
/// every file of `/etc/ssl/certs`, parsed one by one), which was three
/// quarters of a function's cold start (BENCHMARKS.md). Anywhere else, or when
/// the environment names another endpoint or store, it keeps the system's.
pub async fn load_config() -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if TrustRoots::from_env(|name| std::env::var(name).ok()) == TrustRoots::Aws {
        loader = loader.http_client(aws_roots_https_client());
    }
    loader.load().await
}

/// The PEM certificates of the roots every AWS service endpoint chains to:
/// Amazon Root CA 1 to 4 and Starfield Services Root CA G2 (Amazon Trust
/// Services).
pub const AWS_ROOTS_PEM: &[u8] = include_bytes!("../certs/aws-roots.pem");

/// Which certificates the SDK's HTTPS client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustRoots {
    /// Only [`AWS_ROOTS_PEM`]: no file is read at start-up.
    Aws,
    /// The system's store, as the SDK loads it by default.
    Native,
}

impl TrustRoots {
    /// The choice for an environment (`lookup` reads a variable).
    ///
    /// [`TrustRoots::Aws`] only inside Lambda (`AWS_LAMBDA_RUNTIME_API` set)
    /// with no sign that a connection may end elsewhere: `AWS_ENDPOINT_URL`
    /// (or a service's own `AWS_ENDPOINT_URL_*`) points at another HTTPS
    /// endpoint,
    /// `SSL_CERT_FILE`/`SSL_CERT_DIR` name a store on purpose (an inspecting
    /// proxy's root, say), or `STOREFRONT_TLS_ROOTS=native` asks for it.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> TrustRoots {
        let set = |name: &str| lookup(name).is_some_and(|v| !v.is_empty());
        let in_lambda = set("AWS_LAMBDA_RUNTIME_API");
        // A plain-HTTP endpoint (a local emulator) needs no roots at all.
        let https_elsewhere = [
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_ENDPOINT_URL_EVENTBRIDGE",
            "AWS_ENDPOINT_URL_SQS",
            "AWS_ENDPOINT_URL_SESV2",
        ]
        .iter()
        .any(|name| lookup(name).is_some_and(|v| !v.is_empty() && !v.starts_with("http://")));
        let elsewhere = https_elsewhere || set("SSL_CERT_FILE") || set("SSL_CERT_DIR");
        let asked_native = lookup("STOREFRONT_TLS_ROOTS").as_deref() == Some("native");
        if in_lambda && !elsewhere && !asked_native {
            TrustRoots::Aws
        } else {
            TrustRoots::Native
        }
    }
}

/// The SDK's default HTTPS client (rustls with aws-lc, as the SDK builds
/// it), trusting only [`AWS_ROOTS_PEM`].
pub fn aws_roots_https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    let trust = tls::TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AWS_ROOTS_PEM);
    let context = tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .unwrap_or_else(|e| panic!("the built-in AWS roots are a valid trust store: {e}"));
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https()
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

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn lambda_talking_to_aws_trusts_only_the_aws_roots() {
        let lambda = ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001");
        assert_eq!(TrustRoots::from_env(env(&[lambda])), TrustRoots::Aws);
        for other in [
            ("AWS_ENDPOINT_URL", "https://moto.internal:5000"),
            ("AWS_ENDPOINT_URL_SQS", "https://vpce-1.sqs.example"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "https://ddb.example"),
            ("SSL_CERT_FILE", "/opt/proxy-root.pem"),
            ("SSL_CERT_DIR", "/opt/certs"),
            ("STOREFRONT_TLS_ROOTS", "native"),
        ] {
            assert_eq!(
                TrustRoots::from_env(env(&[lambda, other])),
                TrustRoots::Native,
                "{other:?}"
            );
        }
        assert_eq!(
            TrustRoots::from_env(env(&[lambda, ("AWS_ENDPOINT_URL", "")])),
            TrustRoots::Aws,
            "an empty variable names nothing"
        );
        assert_eq!(
            TrustRoots::from_env(env(&[
                lambda,
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9001")
            ])),
            TrustRoots::Aws,
            "a plain-HTTP endpoint uses no roots"
        );
        assert_eq!(
            TrustRoots::from_env(env(&[])),
            TrustRoots::Native,
            "outside Lambda"
        );
    }

    #[test]
    fn the_built_in_roots_are_amazon_trust_services_roots() {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let fingerprints: Vec<String> = CertificateDer::pem_slice_iter(AWS_ROOTS_PEM)
            .map(|der| hex::encode(Sha256::digest(der.expect("PEM certificate").as_ref())))
            .collect();
        // SHA-256 fingerprints as published by Amazon Trust Services.
        assert_eq!(
            fingerprints,
            [
                "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e", // Amazon Root CA 1
                "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4", // Amazon Root CA 2
                "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4", // Amazon Root CA 3
                "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092", // Amazon Root CA 4
                "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5", // Starfield Services Root G2
            ]
        );
    }

    #[test]
    fn rustls_accepts_every_built_in_root() {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let ders = CertificateDer::pem_slice_iter(AWS_ROOTS_PEM)
            .collect::<Result<Vec<_>, _>>()
            .expect("PEM");
        let mut store = rustls::RootCertStore::empty();
        let (valid, invalid) = store.add_parsable_certificates(ders);
        assert_eq!((valid, invalid), (5, 0));
        // And the client the SDK gets builds on them.
        let _ = aws_roots_https_client();
    }
}
