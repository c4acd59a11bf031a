//! `storefront dlq list|redrive --aws` against SQS on moto (which has no
//! StartMessageMoveTask, so the receive/send/delete fallback is what runs).

use std::process::Command;

fn endpoint() -> String {
    ["STOREFRONT_AWS_ENDPOINT", "STOREFRONT_DYNAMODB_ENDPOINT"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|e| !e.is_empty()))
        .expect(
            "STOREFRONT_AWS_ENDPOINT is not set: run `make test`, which starts moto on 127.0.0.1",
        )
}

fn cli(stage: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_storefront"))
        .args(args)
        .args(["--aws", "--stage", stage, "--template"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("run storefront");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Dead-lettered messages are listed, then moved back to their queue, bodies intact, the DLQ emptied.
#[tokio::test]
async fn redrive_on_sqs() {
    let sdk = storefront_runtime::aws::local_config(&endpoint());
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let stage = format!("t{}", &uuid_like()[..12]);
    let mut urls = std::collections::BTreeMap::new();
    let template = storefront_template::Template::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../template.yaml"
    ))
    .expect("template");
    for f in template.functions.values().filter(|f| !f.sqs.is_empty()) {
        let h = f.binary.trim_start_matches("storefront-").to_owned();
        for name in [
            format!("storefront-{stage}-{h}"),
            format!("storefront-{stage}-{h}-dlq"),
        ] {
            let url = sqs
                .create_queue()
                .queue_name(&name)
                .send()
                .await
                .expect("queue")
                .queue_url
                .expect("url");
            urls.insert(name, url);
        }
    }
    let dlq = &urls[&format!("storefront-{stage}-analytics-dlq")];
    for i in 0..13 {
        sqs.send_message()
            .queue_url(dlq)
            .message_body(format!("{{\"n\":{i}}}"))
            .send()
            .await
            .expect("send");
    }
    let (ok, out) = cli(&stage, &["dlq", "list", "--handler", "analytics"]);
    assert!(ok && out.contains("~13 message(s)"), "{out}");
    let (ok, out) = cli(&stage, &["dlq", "redrive", "--handler", "analytics"]);
    assert!(ok && out.contains("moved 13 message(s) back"), "{out}");
    let queue = &urls[&format!("storefront-{stage}-analytics")];
    let mut bodies = std::collections::BTreeSet::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            bodies.insert(m.body.unwrap_or_default());
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(m.receipt_handle.unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
    let sent: std::collections::BTreeSet<String> =
        (0..13).map(|i| format!("{{\"n\":{i}}}")).collect();
    assert_eq!(bodies, sent, "every message back, body intact");
    let (ok, out) = cli(&stage, &["dlq", "list", "--handler", "analytics"]);
    assert!(ok && out.contains("~0 message(s)"), "{out}");
    let (ok, out) = cli("no-such-stage", &["dlq", "list", "--handler", "analytics"]);
    assert!(
        !ok && out.starts_with("error: queue storefront-no-such-stage-analytics-dlq"),
        "{out}"
    );
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}
