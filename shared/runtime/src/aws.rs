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
///
/// Inside Lambda the region and credentials are what Lambda puts in the
/// environment, so [`LambdaEnvironment`] builds the configuration from
/// them directly, without the SDK's region, credential and profile chains
/// (which look for profile files, SSO caches, web identity and container
/// credentials before they get to the environment). Outside Lambda, or with
/// any setting only the chains understand, the SDK's loader does it all.
pub async fn load_config() -> SdkConfig {
    let lookup = |name: &str| std::env::var(name).ok();
    let aws_roots = TrustRoots::from_env(lookup) == TrustRoots::Aws;
    if let Some(lambda) = LambdaEnvironment::from_env(lookup) {
        return lambda.config(aws_roots.then(aws_roots_https_client));
    }
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if aws_roots {
        loader = loader.http_client(aws_roots_https_client());
    }
    loader.load().await
}

/// What Lambda tells a function about where it runs: its region and the
/// execution role's credentials, in the variables Lambda sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaEnvironment {
    /// `AWS_REGION`.
    pub region: String,
    /// `AWS_ENDPOINT_URL`, if set (a rehearsal against an emulator).
    pub endpoint_url: Option<String>,
}

/// Variables only the SDK's loader understands: with any of them set, the
/// loader builds the configuration (a per-service endpoint, FIPS or
/// dual-stack endpoints, a profile, retry or timeout settings ...).
const LOADER_ONLY: &[&str] = &[
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_SDK_UA_APP_ID",
];

impl LambdaEnvironment {
    /// The environment of a Lambda function (`lookup` reads a variable):
    /// `AWS_LAMBDA_RUNTIME_API`, `AWS_REGION`, `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` set (Lambda sets them all), and nothing only
    /// the SDK's loader understands ([`LOADER_ONLY`], or a per-service
    /// `AWS_ENDPOINT_URL_*`). `None` otherwise: the loader's chains then
    /// decide. `STOREFRONT_SDK_CONFIG=loader` asks for the loader anyway
    /// (the cold-start harness compares both in one run).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Option<LambdaEnvironment> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        if get("STOREFRONT_SDK_CONFIG").as_deref() == Some("loader") {
            return None;
        }
        let required = [
            "AWS_LAMBDA_RUNTIME_API",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ];
        if required.iter().any(|name| get(name).is_none()) {
            return None;
        }
        let per_service_endpoint = [
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_ENDPOINT_URL_EVENTBRIDGE",
            "AWS_ENDPOINT_URL_SQS",
            "AWS_ENDPOINT_URL_SESV2",
        ];
        if LOADER_ONLY
            .iter()
            .chain(per_service_endpoint.iter())
            .any(|name| get(name).is_some())
        {
            return None;
        }
        Some(LambdaEnvironment {
            region: get("AWS_REGION")?,
            endpoint_url: get("AWS_ENDPOINT_URL"),
        })
    }

    /// The configuration: this region, the environment's credentials (read
    /// again whenever the SDK's identity cache refreshes them), the
    /// endpoint if one is named, and `http_client` if given (else the
    /// SDK's default). Retries, timeouts, sleep and clock are the clients'
    /// defaults for the latest behaviour version, as with the loader.
    pub fn config(
        &self,
        http_client: Option<aws_sdk_dynamodb::config::SharedHttpClient>,
    ) -> SdkConfig {
        let mut builder = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws_config::Region::new(self.region.clone()))
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
            ));
        if let Some(endpoint) = &self.endpoint_url {
            builder = builder.endpoint_url(endpoint.clone());
        }
        if let Some(client) = http_client {
            builder = builder.http_client(client);
        }
        builder.build()
    }
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

    /// In Lambda the configuration comes from Lambda's variables; anything
    /// only the SDK's loader understands sends it back to the loader.
    #[test]
    fn lambda_configuration_comes_from_lambdas_variables() {
        let lambda = [
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ];
        assert_eq!(
            LambdaEnvironment::from_env(env(&lambda)),
            Some(LambdaEnvironment {
                region: "eu-west-1".into(),
                endpoint_url: None
            })
        );
        let with = |extra: (&'static str, &'static str)| {
            let mut vars = lambda.to_vec();
            vars.push(extra);
            LambdaEnvironment::from_env(env(&vars))
        };
        assert_eq!(
            with(("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")).and_then(|l| l.endpoint_url),
            Some("http://127.0.0.1:5000".into())
        );
        for loader_only in [
            ("AWS_PROFILE", "dev"),
            ("AWS_ENDPOINT_URL_SQS", "https://vpce-1.sqs.example"),
            ("AWS_USE_FIPS_ENDPOINT", "true"),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.2/creds",
            ),
        ] {
            assert_eq!(with(loader_only), None, "{loader_only:?}");
        }
        for missing in [
            "AWS_LAMBDA_RUNTIME_API",
            "AWS_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            let vars: Vec<_> = lambda
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            assert_eq!(LambdaEnvironment::from_env(env(&vars)), None, "{missing}");
        }
    }

    /// The configuration built from Lambda's variables signs with them and
    /// names the region and endpoint it was given.
    #[tokio::test]
    async fn lambda_configuration_signs_with_the_environments_credentials() {
        use aws_credential_types::provider::ProvideCredentials;
        let config = LambdaEnvironment {
            region: "eu-west-1".into(),
            endpoint_url: Some("http://127.0.0.1:5000".into()),
        }
        .config(None);
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));
        // The provider reads the process environment when asked; the test
        // runner's own AWS variables (if any) are what it must return.
        let provider = config
            .credentials_provider()
            .expect("a credentials provider");
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let expected = var("AWS_ACCESS_KEY_ID").filter(|_| var("AWS_SECRET_ACCESS_KEY").is_some());
        let got = provider
            .provide_credentials()
            .await
            .ok()
            .map(|c| c.access_key_id().to_owned());
        assert_eq!(got, expected);
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
