//! The same end-to-end scenarios as e2e.rs, on the AWS path: each test
//! deploys template.yaml as a fresh stack on moto (scripts/deploy_moto.py)
//! and runs `storefront dev --aws` against it, so the events go through
//! DynamoDB, its stream, EventBridge rules, SQS queues and their DLQs. The
//! tests take turns: one runtime's own concurrency is load enough for moto,
//! whose DynamoDB fails transactions under concurrent writes.

mod common;
mod scenarios;

use common::{Runtime, aws_slot, deploy, eventually, quiet};
use serde_json::json;

fn data() -> tempfile::TempDir {
    tempfile::tempdir().expect("data dir")
}

/// The URL of the stack's PublisherDLQ.
async fn publisher_dlq(sqs: &aws_sdk_sqs::Client, stack: &common::Stack) -> String {
    sqs.get_queue_url()
        .queue_name(format!("storefront-{}-publisher-dlq", stack.stage))
        .send()
        .await
        .expect("PublisherDLQ")
        .queue_url
        .expect("url")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_on_aws() {
    let _one_at_a_time = aws_slot().await;
    let dir = data();
    let stack = deploy("j");
    scenarios::journey(&Runtime::start_aws(dir.path(), &stack)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overselling_race_on_aws() {
    let _one_at_a_time = aws_slot().await;
    let dir = data();
    let stack = deploy("o");
    scenarios::overselling_race(&Runtime::start_aws(dir.path(), &stack)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_isolation_dlq_and_redrive_on_aws() {
    let _one_at_a_time = aws_slot().await;
    let dir = data();
    let stack = deploy("f");
    scenarios::failure_isolation_dlq_and_redrive(&Runtime::start_aws(dir.path(), &stack)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_on_aws() {
    let _one_at_a_time = aws_slot().await;
    let dir = data();
    let stack = deploy("d");
    scenarios::duplicate_deliveries(&Runtime::start_aws(dir.path(), &stack)).await;
}

/// A stream record the publisher can never publish (an item whose checksum
/// does not match) is retried MaximumRetryAttempts times, then described on
/// the publisher's on-failure destination (PublisherDLQ), and the stream
/// moves on: an event appended afterwards reaches its handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublishable_record_goes_to_the_publisher_dlq_and_the_stream_moves_on() {
    let _one_at_a_time = aws_slot().await;
    let dir = data();
    let stack = deploy("u");
    let rt = Runtime::start_aws(dir.path(), &stack);
    let c = rt.client();
    let (admin, zoe) = (rt.token("root", true), rt.token("zoe", false));
    c.ok(
        "POST",
        "/products",
        Some(&admin),
        Some(
            json!({"sku": "PEN", "name": "Pen", "priceCents": 100, "currency": "EUR", "stock": 9}),
        ),
    )
    .await;
    quiet(&c).await;
    // A copy of that event under another stream: its checksum no longer matches.
    let sdk = storefront_runtime::aws::local_config(&stack.endpoint);
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let mut item = dynamo
        .scan()
        .table_name(&stack.events_table)
        .send()
        .await
        .expect("scan")
        .items()
        .first()
        .cloned()
        .expect("the product event");
    item.insert(
        "pk".into(),
        aws_sdk_dynamodb::types::AttributeValue::S("product#FORGED".into()),
    );
    dynamo
        .put_item()
        .table_name(&stack.events_table)
        .set_item(Some(item))
        .send()
        .await
        .expect("put the forged item");
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = publisher_dlq(&sqs, &stack).await;
    let described = eventually(
        120,
        "the forged record described on PublisherDLQ",
        || async {
            let page = sqs
                .receive_message()
                .queue_url(&url)
                .send()
                .await
                .expect("receive");
            page.messages()
                .first()
                .and_then(|m| m.body())
                .map(|b| serde_json::from_str::<serde_json::Value>(b).expect("JSON"))
        },
    )
    .await;
    let info = &described["DDBStreamBatchInfo"];
    assert_eq!(info["batchSize"], 1, "{described}");
    assert_eq!(info["startSequenceNumber"], info["endSequenceNumber"]);
    assert_eq!(
        described["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(described["requestContext"]["approximateInvokeCount"], 11);
    // The stream moved on: a cart started now reaches analytics.
    c.ok(
        "POST",
        "/cart/items",
        Some(&zoe),
        Some(json!({"sku": "PEN", "quantity": 1})),
    )
    .await;
    eventually(c.patience, "a later event handled", || async {
        let stats = c.ok("GET", "/admin/stats", Some(&admin), None).await;
        (stats["cartsStarted"] == 1).then_some(())
    })
    .await;
    let (_, counts) = c.send("GET", "/_local/events/count", None, None).await;
    assert_eq!(counts["undecodable"], 1, "{counts}");
    assert_eq!(counts["published"], counts["lastPosition"], "{counts}");
}

/// A publish that EventBridge keeps refusing (a fault proxy between the
/// runtime and moto rejects every PutEvents) ends on PublisherDLQ once the
/// stream mapping gives up, and nothing is delivered; `storefront republish
/// --aws` reads the records back from the table's stream and puts them on the
/// bus: the welcome email is sent once, and a repeat finds nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_given_up_on_is_republished_on_aws() {
    use storefront_faults::{Fault, FaultProxy};
    let _one_at_a_time = aws_slot().await;
    let dir = data();
    let stack = deploy("r");
    let proxy = FaultProxy::start(&stack.endpoint).await.expect("proxy");
    let mut through_proxy = stack.clone();
    through_proxy.endpoint = proxy.endpoint().to_owned();
    let rt = Runtime::start_aws(dir.path(), &through_proxy);
    let c = rt.client();
    proxy.inject_always("PutEvents", Fault::Reject);
    let zoe = rt.token("zoe", false);
    c.ok(
        "POST",
        "/users",
        Some(&zoe),
        Some(json!({"email": "zoe@example.com", "name": "Zoe"})),
    )
    .await;
    let sdk = storefront_runtime::aws::local_config(&stack.endpoint);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dlq = publisher_dlq(&sqs, &stack).await;
    let depth = || async {
        sqs.get_queue_attributes()
            .queue_url(&dlq)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .ok()?
            .attributes()?
            .get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)?
            .parse::<u64>()
            .ok()
    };
    eventually(180, "a description on PublisherDLQ", || async {
        (depth().await? >= 1).then_some(())
    })
    .await;
    proxy.clear("PutEvents");
    quiet(&c).await;
    let welcomes = || async {
        rt.events()
            .await
            .iter()
            .filter(|e| e.event_type == "notification.sent")
            .count()
    };
    assert_eq!(welcomes().await, 0, "nothing was delivered");

    let republish = [
        "republish",
        "--aws",
        "--stack",
        &stack.name,
        "--endpoint",
        &stack.endpoint,
    ];
    let (ok, out) = rt.cli(&republish);
    assert!(ok && out.contains("1 events republished"), "{out}");
    eventually(120, "the welcome email", || async {
        (welcomes().await == 1).then_some(())
    })
    .await;
    quiet(&c).await;
    assert_eq!(depth().await, Some(0));

    let (ok, out) = rt.cli(&republish);
    assert!(ok && out.contains("0 events republished"), "{out}");
    quiet(&c).await;
    assert_eq!(welcomes().await, 1, "still one");
}
