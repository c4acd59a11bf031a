//! The DynamoDB adapter and the command pipeline with faults on the wire:
//! a proxy between the SDK and moto (`storefront-faults`) loses a response
//! after the commit, answers `TransactionConflict`, or fails before the
//! request reaches moto, as AWS does and moto never does. Each test asserts
//! the state afterwards: no doubled event, versions contiguous, the first
//! result reported.
//!
//! `make test` starts moto and sets `STOREFRONT_DYNAMODB_ENDPOINT`.

mod conformance;

use conformance::{created, seal, stream};
use storefront_domain::events::ProductStockAdjusted;
use storefront_domain::{Event, EventMeta};
use storefront_faults::{Fault, FaultProxy};
use storefront_store::clock::{new_event_id, now_rfc3339};
use storefront_store::dynamodb::{DynamoStore, TableNames, create_tables};
use storefront_store::pipeline::{self, Change, Command, Outcome, Plan};
use storefront_store::{
    AppendBatch, Condition, EventStore, StateItem, StateStore, StateWrite, StoreError, StreamAppend,
};

fn endpoint() -> String {
    match std::env::var("STOREFRONT_DYNAMODB_ENDPOINT") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "STOREFRONT_DYNAMODB_ENDPOINT is not set: run `make test`, which starts moto on 127.0.0.1"
        ),
    }
}

fn client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version_latest()
        .endpoint_url(endpoint)
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// Fresh tables on moto, and a store that reaches them through a fault proxy.
async fn faulty_store() -> (DynamoStore, FaultProxy) {
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let tables = TableNames {
        events: format!("faults-events-{suffix}"),
        state: format!("faults-state-{suffix}"),
    };
    create_tables(&client(&endpoint()), &tables)
        .await
        .expect("create tables on moto");
    let proxy = FaultProxy::start(&endpoint()).await.expect("proxy");
    (DynamoStore::new(client(proxy.endpoint()), tables), proxy)
}

fn adjusted(on_hand: u32) -> Event {
    Event::ProductStockAdjusted(ProductStockAdjusted {
        delta: 1,
        reason: "count".into(),
        on_hand,
    })
}

fn meta() -> EventMeta {
    EventMeta {
        event_id: new_event_id(),
        occurred_at: now_rfc3339(),
        correlation_id: "faults".into(),
        causation_id: None,
        actor: "system:test".into(),
    }
}

/// A single-event append whose response is lost after the commit (the SDK
/// sends it again, and the retry's condition fails) is recognised as this
/// writer's own commit: success, and the event is stored once.
#[tokio::test]
async fn a_put_committed_then_lost_is_recognised() {
    let (store, proxy) = faulty_store().await;
    let s = stream("LOST-PUT");
    let events = seal(&s, 0, &[created("LOST-PUT", 5)]);
    proxy.inject("PutItem", Fault::CommitThenDrop);
    store
        .append(&s, 0, events.clone())
        .await
        .expect("recognised as ours");
    assert_eq!(
        proxy.applied(),
        vec![("PutItem".to_owned(), Fault::CommitThenDrop)]
    );
    let stored = store.load(&s, 0).await.expect("load");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event_id, events[0].event_id);
}

/// The same for a transaction (events on two streams and a state item):
/// success, every item once.
#[tokio::test]
async fn a_transaction_committed_then_lost_is_recognised() {
    let (store, proxy) = faulty_store().await;
    let (a, b) = (stream("LOST-TX-A"), stream("LOST-TX-B"));
    let batch = AppendBatch {
        streams: vec![
            StreamAppend {
                stream: a.clone(),
                expected_version: 0,
                events: seal(&a, 0, &[created("LOST-TX-A", 1), adjusted(2)]),
            },
            StreamAppend {
                stream: b.clone(),
                expected_version: 0,
                events: seal(&b, 0, &[created("LOST-TX-B", 1)]),
            },
        ],
        state: vec![StateWrite {
            item: StateItem {
                pk: "idem#faults#tx".into(),
                sk: "done".into(),
                version: 1,
                value: serde_json::json!({}),
                expires_at: None,
            },
            condition: Condition::NotExists,
        }],
    };
    proxy.inject("TransactWriteItems", Fault::CommitThenDrop);
    store.append_batch(batch).await.expect("recognised as ours");
    assert_eq!(proxy.applied().len(), 1, "the fault was met");
    assert_eq!(store.load(&a, 0).await.expect("a").len(), 2);
    assert_eq!(store.load(&b, 0).await.expect("b").len(), 1);
}

/// `TransactionConflict` (a transaction, or a put that meets one) is a
/// typed lost race, not a backend outage.
#[tokio::test]
async fn transaction_conflict_is_a_typed_lost_race() {
    let (store, proxy) = faulty_store().await;
    let s = stream("CONTENDED");
    proxy.inject("TransactWriteItems", Fault::TransactionConflict);
    let two = seal(&s, 0, &[created("CONTENDED", 1), adjusted(2)]);
    let err = store.append(&s, 0, two).await.expect_err("cancelled");
    assert!(matches!(err, StoreError::Contention { .. }), "{err}");
    assert!(err.is_lost_race() && !err.is_transient());

    proxy.inject("PutItem", Fault::TransactionConflict);
    let one = seal(&s, 0, &[created("CONTENDED", 1)]);
    let err = store.append(&s, 0, one).await.expect_err("conflict");
    assert!(matches!(err, StoreError::Contention { .. }), "{err}");

    proxy.inject("PutItem", Fault::TransactionConflict);
    let err = store
        .put(StateWrite {
            item: StateItem {
                pk: "view#contended".into(),
                sk: "v".into(),
                version: 1,
                value: serde_json::json!({}),
                expires_at: None,
            },
            condition: Condition::NotExists,
        })
        .await
        .expect_err("conflict");
    assert!(matches!(err, StoreError::Contention { .. }), "{err}");
    assert_eq!(proxy.applied().len(), 3);
    assert!(
        store.load(&s, 0).await.expect("load").is_empty(),
        "nothing was written"
    );
}

/// The pipeline retries a transaction that met another one, and one whose
/// response was lost is reported committed, not decided again: the stream
/// ends with exactly the events of one decision.
#[tokio::test]
async fn the_pipeline_rides_out_conflicts_and_lost_responses() {
    let (store, proxy) = faulty_store().await;
    let s = stream("PIPELINE");
    store
        .append(&s, 0, seal(&s, 0, &[created("PIPELINE", 1)]))
        .await
        .expect("created");
    proxy.inject("TransactWriteItems", Fault::TransactionConflict);
    proxy.inject("TransactWriteItems", Fault::TransactionConflict);
    proxy.inject("TransactWriteItems", Fault::CommitThenDrop);
    let decisions = std::sync::atomic::AtomicU32::new(0);
    let command = Command::<u64> {
        events: &store,
        state: &store,
        meta: &meta,
        idempotency: None,
        snapshot_every: 0,
        seed: "pipeline-faults",
    };
    let outcome = pipeline::execute(&command, || async {
        decisions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let version = store.current_version(&s).await?;
        Ok::<_, StoreError>(Plan {
            changes: vec![Change {
                stream: s.clone(),
                expected_version: version,
                events: vec![adjusted(2), adjusted(3)],
                snapshot: None,
            }],
            state: vec![],
            answer: version,
        })
    })
    .await
    .expect("outcome");
    assert_eq!(outcome, Outcome::Committed(1));
    assert_eq!(
        decisions.into_inner(),
        3,
        "two conflicts, then one decision committed"
    );
    assert_eq!(proxy.pending(), 0);
    let stored = store.load(&s, 0).await.expect("load");
    assert_eq!(
        stored.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2, 3],
        "one decision's events, once"
    );
}

/// A 500 or a throttle before the request reaches DynamoDB is retried by
/// the SDK; the write lands once.
#[tokio::test]
async fn errors_before_dynamodb_are_retried_by_the_sdk() {
    let (store, proxy) = faulty_store().await;
    let s = stream("FLAKY");
    proxy.inject("PutItem", Fault::InternalError);
    proxy.inject("PutItem", Fault::Throttle);
    store
        .append(&s, 0, seal(&s, 0, &[created("FLAKY", 1)]))
        .await
        .expect("retried to success");
    assert_eq!(proxy.applied().len(), 2);
    assert_eq!(store.load(&s, 0).await.expect("load").len(), 1);
}

/// The requests the proxy forwarded since `before`, by operation (a
/// transaction counted as the `PutItem`s it holds, as IAM counts it).
fn sent_since(
    proxy: &FaultProxy,
    before: &std::collections::BTreeMap<&'static str, usize>,
) -> std::collections::BTreeSet<String> {
    counts(proxy)
        .into_iter()
        .filter(|(op, n)| *n > before[op])
        .map(|(op, _)| match op {
            "TransactWriteItems" => "dynamodb:PutItem".to_owned(),
            other => format!("dynamodb:{other}"),
        })
        .collect()
}

/// Every DynamoDB operation the adapter could send, and how often the proxy forwarded each.
fn counts(proxy: &FaultProxy) -> std::collections::BTreeMap<&'static str, usize> {
    [
        "PutItem",
        "GetItem",
        "Query",
        "DeleteItem",
        "UpdateItem",
        "TransactWriteItems",
        "TransactGetItems",
        "BatchWriteItem",
        "BatchGetItem",
        "Scan",
    ]
    .into_iter()
    .map(|op| (op, proxy.forwarded(op)))
    .collect()
}

/// The IAM actions `storefront_store::iam` lists for each port call are the
/// requests the adapter really sends for it, on every path: the plain
/// call, a commit whose answer was lost (the append reads its own item
/// back) and a lost race (it reads the stream's version). A request not in
/// the list fails the test (a policy derived from it would be refused on
/// AWS), and so does a listed action no path sends.
#[tokio::test]
async fn the_iam_list_is_what_the_adapter_sends() {
    use std::collections::BTreeSet;
    use storefront_store::iam::PortCall;

    let (store, proxy) = faulty_store().await;
    let listed = |call: PortCall| -> BTreeSet<String> {
        call.actions()
            .into_iter()
            .map(|(_, a)| a.to_owned())
            .collect()
    };
    let mut sent_per_call: Vec<(PortCall, BTreeSet<String>)> = Vec::new();

    // A single-event append: plain, lost after the commit, and a lost race.
    let s = stream("IAM-ONE");
    let before = counts(&proxy);
    store
        .append(&s, 0, seal(&s, 0, &[created("IAM-ONE", 5)]))
        .await
        .expect("append");
    proxy.inject("PutItem", Fault::CommitThenDrop);
    store
        .append(&s, 1, seal(&s, 1, &[adjusted(6)]))
        .await
        .expect("recognised");
    let stale = store.append(&s, 1, seal(&s, 1, &[adjusted(7)])).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
    sent_per_call.push((
        PortCall::Append {
            events: true,
            state: false,
        },
        sent_since(&proxy, &before),
    ));

    // A transaction with events and state: plain, lost, a lost race.
    let t = stream("IAM-TX");
    let write = |sk: &str| StateWrite {
        item: StateItem {
            pk: "iam#tx".into(),
            sk: sk.into(),
            version: 1,
            value: serde_json::json!({}),
            expires_at: None,
        },
        condition: Condition::NotExists,
    };
    let batch = |expected: u64, events: Vec<Event>, sk: &str| AppendBatch {
        streams: vec![StreamAppend {
            stream: t.clone(),
            expected_version: expected,
            events: seal(&t, expected, &events),
        }],
        state: vec![write(sk)],
    };
    let before = counts(&proxy);
    store
        .append_batch(batch(0, vec![created("IAM-TX", 1), adjusted(2)], "a"))
        .await
        .expect("transaction");
    proxy.inject("TransactWriteItems", Fault::CommitThenDrop);
    store
        .append_batch(batch(2, vec![adjusted(3)], "b"))
        .await
        .expect("recognised");
    let stale = store.append_batch(batch(2, vec![adjusted(4)], "c")).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
    sent_per_call.push((
        PortCall::Append {
            events: true,
            state: true,
        },
        sent_since(&proxy, &before),
    ));

    // State only, in a transaction (the audit chain's shape), and its lost race.
    let before = counts(&proxy);
    let state_only = |sk: &str| AppendBatch {
        streams: vec![],
        state: vec![write(sk), write(&format!("{sk}-2"))],
    };
    store
        .append_batch(state_only("s"))
        .await
        .expect("state only");
    let taken = store.append_batch(state_only("s")).await;
    assert!(
        matches!(taken, Err(StoreError::ConditionFailed { .. })),
        "{taken:?}"
    );
    sent_per_call.push((
        PortCall::Append {
            events: false,
            state: true,
        },
        sent_since(&proxy, &before),
    ));

    let before = counts(&proxy);
    store.load(&s, 0).await.expect("load");
    sent_per_call.push((PortCall::Load, sent_since(&proxy, &before)));
    let before = counts(&proxy);
    store.current_version(&s).await.expect("version");
    sent_per_call.push((PortCall::CurrentVersion, sent_since(&proxy, &before)));

    let before = counts(&proxy);
    store.put(write("p")).await.expect("put");
    let again = store.put(write("p")).await;
    assert!(
        matches!(again, Err(StoreError::ConditionFailed { .. })),
        "{again:?}"
    );
    sent_per_call.push((PortCall::Put, sent_since(&proxy, &before)));
    let before = counts(&proxy);
    store.get("iam#tx", "p").await.expect("get");
    sent_per_call.push((PortCall::Get, sent_since(&proxy, &before)));
    let before = counts(&proxy);
    store.query("iam#tx").await.expect("query");
    store
        .query_page("iam#tx", Some("a"), 1)
        .await
        .expect("query_page");
    sent_per_call.push((PortCall::Query, sent_since(&proxy, &before)));
    let before = counts(&proxy);
    store.delete("iam#tx", "p").await.expect("delete");
    assert!(
        !store
            .delete_version("iam#tx", "s", 9)
            .await
            .expect("delete_version"),
        "a version that is not the item's deletes nothing"
    );
    sent_per_call.push((PortCall::Delete, sent_since(&proxy, &before)));

    for (call, sent) in sent_per_call {
        assert_eq!(sent, listed(call), "{call:?}: sent on the wire vs listed");
    }
}

/// A refused 101-item append (100 events and a state write) never reaches
/// DynamoDB: the proxy forwards no write, the stream stays empty and the
/// state item is not there.
#[tokio::test]
async fn oversized_transaction_is_refused_before_aws() {
    let (store, proxy) = faulty_store().await;
    let s = stream("HUGE");
    let events: Vec<Event> = (0..100).map(|i| adjusted(i + 1)).collect();
    let batch = AppendBatch {
        streams: vec![StreamAppend {
            stream: s.clone(),
            expected_version: 0,
            events: seal(&s, 0, &events),
        }],
        state: vec![StateWrite {
            item: StateItem {
                pk: "huge#state".into(),
                sk: "one".into(),
                version: 1,
                value: serde_json::json!({}),
                expires_at: None,
            },
            condition: Condition::NotExists,
        }],
    };
    let refused = store.append_batch(batch).await;
    assert!(
        matches!(refused, Err(StoreError::TooManyItems { items: 101, .. })),
        "{refused:?}"
    );
    for op in ["TransactWriteItems", "PutItem"] {
        assert_eq!(proxy.forwarded(op), 0, "{op} reached DynamoDB");
    }
    assert_eq!(store.current_version(&s).await.expect("version"), 0);
    assert!(store.get("huge#state", "one").await.expect("get").is_none());
}
