//! Cost per command on DynamoDB (moto): every request the API's DynamoDB
//! client sends is counted by an SDK interceptor, by operation, with the write
//! units it costs on AWS computed from the item sizes in the request (DynamoDB's
//! published rules: a standard write is 1 WCU per started KB, a transactional
//! write 2 WCU per started KB per item). moto does not model capacity, so the
//! units are computed, not read back.
//!
//! It asserts the design's promise: a command that decides one event (and
//! carries no Idempotency-Key) costs exactly one PutItem and 1 WCU, never a
//! transaction. Run with `--nocapture` for the table BENCHMARKS.md quotes.
//! Fails (never skips) without `STOREFRONT_DYNAMODB_ENDPOINT`.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use common::{TestApp, Who};
use serde_json::{Value, json};
use storefront_api::{AppState, Settings};
use storefront_runtime::Globals;
use storefront_store::dynamodb::{DynamoStore, TableNames, create_tables};

/// One request as sent.
#[derive(Debug, Clone)]
struct Call {
    operation: String,
    /// Write units it costs on AWS (0 for reads).
    wcu: u64,
    /// Items a write touches.
    items: usize,
    /// The table of each item a write touches, in request order.
    tables: Vec<String>,
}

/// Counts every request of the client it is installed on.
#[derive(Debug, Clone, Default)]
struct Meter(Arc<Mutex<Vec<Call>>>);

impl Meter {
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.0.lock().expect("meter lock"))
    }
}

impl Intercept for Meter {
    fn name(&self) -> &'static str {
        "CostMeter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("?")
            .to_owned();
        let body: Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let (wcu, items) = write_cost(&operation, &body);
        let tables = written_tables(&operation, &body);
        self.0.lock().expect("meter lock").push(Call {
            operation,
            wcu,
            items,
            tables,
        });
        Ok(())
    }
}

/// The size DynamoDB bills for an attribute value (names are added by the caller).
fn value_size(v: &Value) -> u64 {
    let Some((kind, inner)) = v.as_object().and_then(|m| m.iter().next()) else {
        return 0;
    };
    match (kind.as_str(), inner) {
        ("S", Value::String(s)) => s.len() as u64,
        // Numbers: about one byte per two significant digits, plus one.
        ("N", Value::String(n)) => {
            let digits = n.chars().filter(char::is_ascii_digit).count() as u64;
            digits.div_ceil(2) + 1
        }
        ("B", Value::String(b)) => (b.len() as u64 * 3) / 4,
        ("BOOL", _) | ("NULL", _) => 1,
        ("SS", Value::Array(a)) | ("NS", Value::Array(a)) | ("BS", Value::Array(a)) => a
            .iter()
            .map(|s| s.as_str().map_or(0, |s| s.len() as u64))
            .sum(),
        ("L", Value::Array(a)) => 3 + a.iter().map(|x| 1 + value_size(x)).sum::<u64>(),
        ("M", Value::Object(m)) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() as u64 + value_size(x))
                .sum::<u64>()
        }
        _ => 0,
    }
}

fn item_size(item: &Value) -> u64 {
    item.as_object().map_or(0, |m| {
        m.iter().map(|(k, v)| k.len() as u64 + value_size(v)).sum()
    })
}

fn kb(size: u64) -> u64 {
    size.div_ceil(1024).max(1)
}

/// Write units and items of one request, by DynamoDB's pricing rules. Updates,
/// deletes and condition checks are counted as one KB (their item is not in
/// the request).
fn write_cost(operation: &str, body: &Value) -> (u64, usize) {
    match operation {
        "PutItem" => (kb(item_size(&body["Item"])), 1),
        "UpdateItem" | "DeleteItem" => (1, 1),
        "TransactWriteItems" => {
            let items = body["TransactItems"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let wcu = items
                .iter()
                .map(|i| 2 * i.get("Put").map_or(1, |p| kb(item_size(&p["Item"]))))
                .sum();
            (wcu, items.len())
        }
        "BatchWriteItem" => {
            let mut wcu = 0;
            let mut n = 0;
            for requests in body["RequestItems"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
            {
                for r in requests.as_array().into_iter().flatten() {
                    n += 1;
                    wcu += r
                        .pointer("/PutRequest/Item")
                        .map_or(1, |item| kb(item_size(item)));
                }
            }
            (wcu, n)
        }
        _ => (0, 0),
    }
}

/// The table of each item a write request touches.
fn written_tables(operation: &str, body: &Value) -> Vec<String> {
    let name = |v: &Value| v.as_str().unwrap_or("?").to_owned();
    match operation {
        "PutItem" | "UpdateItem" | "DeleteItem" => vec![name(&body["TableName"])],
        "TransactWriteItems" => body["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i.as_object().and_then(|m| m.values().next()))
            .map(|op| name(&op["TableName"]))
            .collect(),
        "BatchWriteItem" => body["RequestItems"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(table, requests)| {
                std::iter::repeat_n(table.clone(), requests.as_array().map_or(0, Vec::len))
            })
            .collect(),
        _ => Vec::new(),
    }
}

async fn metered_app() -> (TestApp, Meter) {
    let endpoint = std::env::var("STOREFRONT_DYNAMODB_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .expect("STOREFRONT_DYNAMODB_ENDPOINT is not set: run `make test`, which starts moto on 127.0.0.1");
    let sdk = storefront_runtime::aws::local_config(&endpoint);
    let meter = Meter::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(meter.clone())
            .build(),
    );
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let tables = TableNames {
        events: format!("cost-events-{suffix}"),
        state: format!("cost-state-{suffix}"),
    };
    create_tables(&client, &tables)
        .await
        .expect("create tables on moto");
    meter.take();
    let app = TestApp::new(AppState::dynamo(
        DynamoStore::new(client, tables),
        Settings {
            globals: Globals {
                snapshot_every: 100,
                ..Globals::default()
            },
        },
    ));
    (app, meter)
}

/// What one command cost.
struct Cost {
    command: &'static str,
    requests: BTreeMap<String, usize>,
    wcu: u64,
    items_written: usize,
    calls: Vec<Call>,
}

impl Cost {
    fn of(command: &'static str, calls: Vec<Call>) -> Cost {
        let mut requests = BTreeMap::new();
        for c in &calls {
            *requests.entry(c.operation.clone()).or_default() += 1;
        }
        Cost {
            command,
            requests,
            wcu: calls.iter().map(|c| c.wcu).sum(),
            items_written: calls.iter().map(|c| c.items).sum(),
            calls,
        }
    }

    /// The table (`events` or `state`) of every item written, sorted.
    fn written(&self) -> Vec<&'static str> {
        let mut tables: Vec<&'static str> = self
            .calls
            .iter()
            .flat_map(|c| c.tables.iter().map(|t| table_kind(t)))
            .collect();
        tables.sort_unstable();
        tables
    }

    fn writes(&self) -> Vec<(&str, usize)> {
        self.requests
            .iter()
            .filter(|(op, _)| {
                matches!(
                    op.as_str(),
                    "PutItem"
                        | "UpdateItem"
                        | "DeleteItem"
                        | "TransactWriteItems"
                        | "BatchWriteItem"
                )
            })
            .map(|(op, n)| (op.as_str(), *n))
            .collect()
    }
}

/// Each command of the journey on DynamoDB, with the requests and write units it costs.
#[tokio::test]
async fn cost_per_command() {
    let (t, meter) = metered_app().await;
    let mut costs = Vec::new();
    macro_rules! measure {
        ($name:literal, $reply:expr, $status:literal) => {{
            let reply = $reply.await.expect($status);
            costs.push(Cost::of($name, meter.take()));
            reply
        }};
    }
    let admin = Who::Admin("root");
    let alice = Who::Shopper("alice");
    let product = |sku: &str| json!({"sku": sku, "name": format!("Product {sku}"), "priceCents": 1250, "currency": "EUR", "stock": 100});
    measure!(
        "create product",
        t.post("/products", admin, product("MUG")),
        201
    );
    t.post("/products", admin, product("TEE")).await.expect(201);
    meter.take();
    measure!(
        "register user",
        t.post(
            "/users",
            alice,
            json!({"email": "alice@example.com", "name": "Alice"})
        ),
        201
    );
    measure!(
        "add first item (cart.created + item.added)",
        t.post("/cart/items", alice, json!({"sku": "MUG", "quantity": 1})),
        200
    );
    measure!(
        "add another item",
        t.post("/cart/items", alice, json!({"sku": "TEE", "quantity": 1})),
        200
    );
    measure!(
        "change quantity",
        t.call(
            "PATCH",
            "/cart/items/TEE",
            alice,
            Some(json!({"quantity": 2}))
        ),
        200
    );
    let accepted = measure!(
        "checkout (cart + order + 3 index items)",
        t.call("POST", "/cart/checkout", alice, None),
        201
    );
    let order_id = accepted.body["orderId"]
        .as_str()
        .expect("order id")
        .to_owned();
    t.confirm(&order_id).await;
    meter.take();
    measure!(
        "pay",
        t.post(
            &format!("/orders/{order_id}/payment"),
            alice,
            json!({"amountCents": 3750})
        ),
        200
    );
    measure!(
        "adjust stock (admin; event + catalogue item)",
        t.post(
            "/products/MUG/stock",
            admin,
            json!({"delta": 5, "reason": "count"})
        ),
        200
    );
    measure!(
        "adjust stock with Idempotency-Key",
        t.call_with_key(
            "POST",
            "/products/MUG/stock",
            admin,
            Some(json!({"delta": 5, "reason": "count"})),
            "cost-key-1"
        ),
        200
    );
    measure!(
        "GET /orders/{id}",
        t.get(&format!("/orders/{order_id}"), alice),
        200
    );
    measure!(
        "GET /products (a page of the catalogue)",
        t.get("/products", Who::Anonymous),
        200
    );

    println!("\n| command | DynamoDB requests | items written | WCU |");
    println!("|---|---|---:|---:|");
    for c in &costs {
        let requests: Vec<String> = c
            .requests
            .iter()
            .map(|(op, n)| format!("{op} ×{n}"))
            .collect();
        println!(
            "| {} | {} | {} | {} |",
            c.command,
            requests.join(", "),
            c.items_written,
            c.wcu
        );
    }

    let by_name = |name: &str| costs.iter().find(|c| c.command == name).expect("measured");
    for single in [
        "register user",
        "add another item",
        "change quantity",
        "pay",
    ] {
        let c = by_name(single);
        assert_eq!(
            c.writes(),
            vec![("PutItem", 1)],
            "{single}: one PutItem and nothing else"
        );
        assert_eq!(c.wcu, 1, "{single}: 1 WCU (the item is under 1 KB)");
        assert_eq!(
            c.written(),
            ["events"],
            "{single}: the PutItem is the event"
        );
    }
    let checkout = by_name("checkout (cart + order + 3 index items)");
    assert_eq!(
        checkout.writes(),
        vec![("TransactWriteItems", 1)],
        "checkout is one transaction"
    );
    assert_eq!(
        checkout.written(),
        ["events", "events", "state", "state", "state"],
        "checkout writes the cart's and the order's events and three index items (the shopper's orders, every order, awaiting confirmation)"
    );
    let adjust = by_name("adjust stock (admin; event + catalogue item)");
    assert_eq!(
        adjust.writes(),
        vec![("TransactWriteItems", 1)],
        "a product's event and its catalogue item are one transaction"
    );
    assert_eq!(adjust.written(), ["events", "state"]);
    let catalogue = by_name("GET /products (a page of the catalogue)");
    assert_eq!(
        catalogue.requests,
        [("Query".to_owned(), 1)].into_iter().collect(),
        "the catalogue costs one read"
    );
    let keyed = by_name("adjust stock with Idempotency-Key");
    assert_eq!(
        keyed.writes(),
        vec![("PutItem", 1), ("TransactWriteItems", 1)],
        "a claim, then the command's transaction"
    );
    let transaction: Vec<&str> = keyed
        .calls
        .iter()
        .filter(|c| c.operation == "TransactWriteItems")
        .flat_map(|c| c.tables.iter().map(|t| table_kind(t)))
        .collect();
    assert_eq!(
        transaction,
        ["events", "state", "state"],
        "the idempotency record is written in the event's transaction, with the catalogue item"
    );
}

/// `events` or `state`, for one of the metered app's tables.
fn table_kind(table: &str) -> &'static str {
    if table.starts_with("cost-events-") {
        "events"
    } else if table.starts_with("cost-state-") {
        "state"
    } else {
        panic!("a write to an unknown table {table}")
    }
}

/// Whether `pattern` admits an event from `source` of type `detail_type`,
/// read literally: a field the pattern leaves out admits anything, a listed
/// string admits itself, `{prefix}` what starts with it. A pattern with
/// anything else (another field, another operator) panics: teach this
/// reading before the expectation below can be trusted with it.
fn admits(pattern: &Value, source: &str, detail_type: &str) -> bool {
    let fields = pattern.as_object().expect("an event pattern is an object");
    let field_admits = |field: &str, value: &str| match fields.get(field) {
        None => true,
        Some(Value::Array(allowed)) => allowed.iter().any(|a| match a {
            Value::String(s) => s == value,
            Value::Object(op) if op.len() == 1 && op.contains_key("prefix") => {
                value.starts_with(op["prefix"].as_str().expect("a prefix is a string"))
            }
            other => panic!("{field}: {other} is not read here"),
        }),
        Some(other) => panic!("{field}: {other} is not read here"),
    };
    for field in fields.keys() {
        assert!(
            matches!(field.as_str(), "source" | "detail-type"),
            "pattern field {field} is not read here"
        );
    }
    field_admits("source", source) && field_admits("detail-type", detail_type)
}

/// The SQS deliveries one checkout's chain makes, by routing the chain's
/// events through template.yaml's rules with the `PatternRouter` (what the
/// local bus and the table in BENCHMARKS.md use). For every event type they
/// are exactly the deliveries the template implies read literally: each
/// function's queue once per rule targeting it (`rules_for_queue`) whose
/// pattern admits the event's source and type. So a router that missed a
/// rule, matched one too many, or routed to another queue fails here.
#[test]
fn bus_and_queue_requests_per_checkout() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
    let template = storefront_template::Template::load(&path).expect("template");
    let rules = storefront_template::PatternRouter::from_template(&template).expect("router");
    // A two-line order: the API appends the first two, the inventory
    // reserves each line (one event per product stream), the saga confirms.
    let chain = [
        ("cart", "cart.checked.out"),
        ("order", "order.created"),
        ("product", "inventory.stock.reserved"),
        ("product", "inventory.stock.reserved"),
        ("order", "order.confirmed"),
    ];
    let audit_queue = &template
        .function_by_binary("storefront-audit")
        .expect("the audit function")
        .sqs[0]
        .queue;
    let mut deliveries = 0;
    println!("\n| event | rules matched | SQS deliveries |");
    println!("|---|---|---:|");
    for (aggregate, event_type) in chain {
        let source = format!("storefront.{aggregate}");
        let event = storefront_template::router::eventbridge_event(
            "id",
            &source,
            event_type,
            "2026-11-27T10:00:00Z",
            &json!({"eventType": event_type}),
        );
        let hits = rules.matches(event.to_string().as_bytes()).expect("match");
        let mut routed: Vec<(&str, &str)> = hits
            .iter()
            .flat_map(|r| {
                template.rules[r]
                    .targets
                    .iter()
                    .map(move |q| (r.as_str(), q.as_str()))
            })
            .collect();
        routed.sort_unstable();
        let mut expected: Vec<(&str, &str)> = template
            .functions
            .values()
            .flat_map(|f| &f.sqs)
            .flat_map(|sqs| {
                template
                    .rules_for_queue(&sqs.queue)
                    .into_iter()
                    .filter(|r| admits(&r.pattern, &source, event_type))
                    .flat_map(|r| {
                        r.targets
                            .iter()
                            .filter(|q| **q == sqs.queue)
                            .map(|q| (r.logical_id.as_str(), q.as_str()))
                    })
            })
            .collect();
        expected.sort_unstable();
        println!("| {event_type} | {} | {} |", hits.join(", "), routed.len());
        assert_eq!(
            routed, expected,
            "{event_type} from {source}: the (rule, queue) deliveries routed vs. the template's"
        );
        assert!(
            expected.iter().any(|(_, q)| *q == audit_queue),
            "{event_type} reaches the audit queue: {expected:?}"
        );
        deliveries += routed.len();
    }
    println!(
        "| **checkout → confirmed** | {} events published | {deliveries} |",
        chain.len()
    );
}
