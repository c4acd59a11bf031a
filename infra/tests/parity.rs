//! Parity of the two paths: one fixed scenario runs on the embedded runtime
//! and, at the same time, in AWS mode on a fresh stack on moto; what each
//! leaves behind must be the same: the same streams with the same event
//! types and versions, the same views and records, the same stock and stats,
//! and the same dead-lettered messages. Ids and timestamps are set aside:
//! order ids become `order-1`, `order-2`, ... in the order the scenario
//! placed them, event ids become `{stream}@{version}` of their event, and
//! times, days and hashes (which cover ids and times) become placeholders.
//!
//! What only one path has is left out, each for its reason: the embedded
//! outbox (on AWS the notifier is SES, and the `notification.sent` events
//! that both write are compared), the audit chains' order and heads (each
//! path audits in its own arrival order, and a stream's chain is chosen by a
//! hash of its id, which differs per run, so the chains are compared as the
//! set of audited events), the records' expiry times, and the API's replay records of
//! requests sent with an Idempotency-Key (`idem#api#...`): the AWS-mode test
//! client sends one with every POST so that it can retry a 503 from moto
//! safely, the embedded one has no need to.

mod common;
mod scenarios;

use std::collections::BTreeMap;

use common::{Runtime, Stack, deploy, quiet};
use scenarios::{assert_same, settled_status};
use serde_json::{Value, json};

/// What a run leaves behind, normalised.
#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<(String, u64, String)>,
    state: Vec<(String, String, u64, Value, bool)>,
    products: Vec<Value>,
    stats: Value,
    dead_letters: BTreeMap<String, Vec<String>>,
}

/// The scenario: two products, two shoppers, a confirmed and paid and
/// delivered order, a rejected one (out of stock), a cancelled one, a
/// restock; with the analytics handler failing throughout (its messages end
/// in its DLQ). Steps wait for the system to be quiet, so each path sees the
/// same order of effects.
async fn scenario(rt: &Runtime) -> Outcome {
    let c = rt.client();
    let (admin, alice, bob) = (
        rt.token("root", true),
        rt.token("alice", false),
        rt.token("bob", false),
    );
    c.ok("PUT", "/_local/faults/analytics", None, None).await;
    for (sku, stock) in [("MUG", 5), ("TEE", 2)] {
        c.ok("POST", "/products", Some(&admin), Some(json!({"sku": sku, "name": sku, "priceCents": 1200, "currency": "EUR", "stock": stock}))).await;
    }
    for (t, who) in [(&alice, "alice"), (&bob, "bob")] {
        c.ok(
            "POST",
            "/users",
            Some(t),
            Some(json!({"email": format!("{who}@example.com"), "name": who})),
        )
        .await;
    }
    quiet(&c).await;
    let mut orders = Vec::new();
    let checkout = |t: String, lines: Vec<(&'static str, u32)>| {
        let c = c.clone();
        async move {
            for (sku, quantity) in lines {
                c.ok(
                    "POST",
                    "/cart/items",
                    Some(&t),
                    Some(json!({"sku": sku, "quantity": quantity})),
                )
                .await;
            }
            let id = c.ok("POST", "/cart/checkout", Some(&t), None).await["orderId"]
                .as_str()
                .expect("order id")
                .to_owned();
            let status = settled_status(&c, &t, &id).await;
            quiet(&c).await;
            (id, status)
        }
    };
    let (a, status) = checkout(alice.clone(), vec![("MUG", 2), ("TEE", 1)]).await;
    assert_eq!(status, "confirmed");
    orders.push(a.clone());
    let (b, status) = checkout(bob.clone(), vec![("TEE", 2)]).await;
    assert_eq!(status, "rejected", "one TEE left for two");
    orders.push(b);
    c.ok(
        "POST",
        &format!("/orders/{a}/payment"),
        Some(&alice),
        Some(json!({"amountCents": 3600})),
    )
    .await;
    quiet(&c).await;
    c.ok(
        "POST",
        &format!("/orders/{a}/shipment"),
        Some(&admin),
        Some(json!({"carrier": "DHL", "trackingNumber": "T1"})),
    )
    .await;
    c.ok("POST", &format!("/orders/{a}/delivery"), Some(&admin), None)
        .await;
    quiet(&c).await;
    let (d, status) = checkout(bob.clone(), vec![("MUG", 1)]).await;
    assert_eq!(status, "confirmed");
    orders.push(d.clone());
    c.ok(
        "POST",
        &format!("/orders/{d}/cancel"),
        Some(&bob),
        Some(json!({"reason": "changed my mind"})),
    )
    .await;
    c.ok(
        "POST",
        "/products/TEE/stock",
        Some(&admin),
        Some(json!({"delta": 3, "reason": "restock"})),
    )
    .await;
    quiet(&c).await;

    let mut products = Vec::new();
    for sku in ["MUG", "TEE"] {
        products.push(c.ok("GET", &format!("/products/{sku}"), None, None).await);
    }
    let stats = c.ok("GET", "/admin/stats", Some(&admin), None).await;
    let events = rt.events().await;
    let state = rt.state().await;
    let dead_letters = dead_letters(rt).await;
    normalise(&orders, events, state, products, stats, dead_letters)
}

/// The event types in each handler's DLQ, sorted.
async fn dead_letters(rt: &Runtime) -> BTreeMap<String, Vec<String>> {
    let handlers = [
        "analytics",
        "audit",
        "cart",
        "inventory",
        "notification",
        "order-workflow",
        "user",
    ];
    let mut out = BTreeMap::new();
    for h in handlers {
        let bodies: Vec<String> = match &rt.aws {
            None => {
                let queues = storefront::local::queues::Queues::open(&rt.data.join("queues.db"))
                    .expect("queues.db");
                let logical = format!(
                    "{}DLQ",
                    h.split('-')
                        .map(|w| {
                            let mut c = w.chars();
                            c.next()
                                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                                .unwrap_or_default()
                        })
                        .collect::<String>()
                );
                queues
                    .list(&logical)
                    .expect("list DLQ")
                    .into_iter()
                    .map(|(_, body, _)| body)
                    .collect()
            }
            Some(stack) => sqs_bodies(stack, h).await,
        };
        let mut types: Vec<String> = bodies
            .iter()
            .map(|b| {
                serde_json::from_str::<Value>(b).expect("DLQ body is JSON")["detail-type"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned()
            })
            .collect();
        types.sort();
        out.insert(h.to_owned(), types);
    }
    out
}

/// Every message body of a handler's DLQ on SQS, read without deleting
/// (each received message stays invisible long enough not to be read twice).
async fn sqs_bodies(stack: &Stack, handler: &str) -> Vec<String> {
    let sqs = aws_sdk_sqs::Client::new(&storefront_runtime::aws::local_config(&stack.endpoint));
    let url = sqs
        .get_queue_url()
        .queue_name(format!("storefront-{}-{handler}-dlq", stack.stage))
        .send()
        .await
        .expect("DLQ url")
        .queue_url
        .expect("url");
    let mut bodies = Vec::new();
    loop {
        let page = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(300)
            .send()
            .await
            .expect("receive from DLQ");
        if page.messages().is_empty() {
            return bodies;
        }
        bodies.extend(
            page.messages()
                .iter()
                .filter_map(|m| m.body().map(str::to_owned)),
        );
    }
}

fn normalise(
    orders: &[String],
    events: Vec<storefront_domain::EventEnvelope>,
    state: Vec<storefront_store::StateItem>,
    products: Vec<Value>,
    stats: Value,
    dead_letters: BTreeMap<String, Vec<String>>,
) -> Outcome {
    let mut ids: Vec<(String, String)> = orders
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), format!("order-{}", i + 1)))
        .collect();
    let rename = |ids: &[(String, String)], s: &str| {
        ids.iter()
            .fold(s.to_owned(), |acc, (from, to)| acc.replace(from, to))
    };
    // Event ids by stream and version. A stream may itself name an event
    // (`notification#{eventId}`): such ids are resolved once the event they
    // name is.
    let all: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    for _ in 0..3 {
        for e in &events {
            if ids.iter().any(|(id, _)| *id == e.event_id) {
                continue;
            }
            let stream = rename(&ids, &e.stream_id);
            if all.iter().any(|id| stream.contains(id)) {
                continue;
            }
            ids.push((e.event_id.clone(), format!("{stream}@{}", e.version)));
        }
    }
    let unresolved: Vec<&str> = all
        .iter()
        .copied()
        .filter(|id| !ids.iter().any(|(known, _)| known == id))
        .collect();
    assert!(
        unresolved.is_empty(),
        "unresolved event ids: {unresolved:?}"
    );
    let text = |s: &str| placeholders(&rename(&ids, s));
    let events = events
        .iter()
        .map(|e| (text(&e.stream_id), e.version, e.event_type.clone()))
        .collect::<Vec<_>>();
    let mut state: Vec<(String, String, u64, Value, bool)> = state
        .into_iter()
        .filter(|i| {
            i.pk != storefront_store::keys::OUTBOX
                && !i.pk.starts_with(storefront_store::keys::API_REQUEST_PREFIX)
                && !i.pk.starts_with("audit-head#")
        })
        .map(|i| {
            let mut value = value_text(&i.value, &text);
            let (mut pk, mut sk) = (text(&i.pk), text(&i.sk));
            // The chains' order is each path's arrival order and a stream's
            // chain depends on its id: keep what is audited, not where.
            if pk.starts_with("audit#") {
                if let Some((day, _shard)) = pk.rsplit_once('#').filter(|(_, s)| s.len() == 2) {
                    pk = day.to_owned();
                }
                sk = format!("{}@{}", value["streamId"], value["version"]);
                for k in ["seq", "prevHash", "hash"] {
                    value[k] = Value::Null;
                }
            }
            if pk.starts_with("audit-seen#") {
                value["seq"] = Value::Null;
                value["shard"] = Value::Null;
            }
            (pk, sk, i.version, value, i.expires_at.is_some())
        })
        .collect();
    state.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    Outcome {
        events,
        state,
        products,
        stats,
        dead_letters,
    }
}

/// Times, days and hashes as placeholders.
fn placeholders(s: &str) -> String {
    if s.starts_with("sha256:") {
        return "<sha256>".into();
    }
    let bytes = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let is_day = |b: &[u8]| {
        b.len() >= 10
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[5..7].iter().all(u8::is_ascii_digit)
            && b[7] == b'-'
            && b[8..10].iter().all(u8::is_ascii_digit)
    };
    while i < bytes.len() {
        if is_day(&bytes[i..]) {
            // A timestamp runs on from the day with T...Z.
            let mut end = i + 10;
            if bytes.get(end) == Some(&b'T') {
                while end < bytes.len() && bytes[end] != b'Z' {
                    end += 1;
                }
                out.push_str("<time>");
                i = (end + 1).min(bytes.len());
            } else {
                out.push_str("<day>");
                i = end;
            }
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    out
}

fn value_text(v: &Value, text: &dyn Fn(&str) -> String) -> Value {
    match v {
        Value::String(s) => Value::String(text(s)),
        Value::Array(a) => Value::Array(a.iter().map(|x| value_text(x, text)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (text(k), value_text(x, text)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_paths_leave_the_same_outcome() {
    let (local_dir, aws_dir) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let stack = deploy("p");
    let local = Runtime::start(local_dir.path());
    let aws = Runtime::start_aws(aws_dir.path(), &stack);
    let (on_local, on_aws) = tokio::join!(scenario(&local), scenario(&aws));
    // The scenario did what it says on each path before the two are compared.
    assert!(
        on_local.dead_letters["analytics"].len() >= 10,
        "{:?}",
        on_local.dead_letters
    );
    assert!(
        on_local
            .events
            .iter()
            .any(|(s, v, t)| s == "order#order-1" && *v == 6 && t == "order.delivered")
    );
    eprintln!(
        "compared {} events, {} state items, {} products, DLQs {:?}",
        on_local.events.len(),
        on_local.state.len(),
        on_local.products.len(),
        on_local.dead_letters
    );
    assert_same("events", &on_local.events, &on_aws.events);
    assert_same("state", &on_local.state, &on_aws.state);
    assert_eq!(on_local.products, on_aws.products, "stock");
    assert_eq!(on_local.stats, on_aws.stats, "stats");
    assert_eq!(on_local.dead_letters, on_aws.dead_letters, "DLQ contents");
}
