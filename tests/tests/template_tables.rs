//! template.yaml and the code agree on the tables: the layout the SAM
//! template deploys is the layout `create_tables` makes for the tests and the
//! local runtime, and the layout the DynamoDB adapter reads and writes.

mod common;

use common::moto_client as client;
use serde_norway::Value;
use storefront_store::dynamodb::{TableNames, create_tables};

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).expect("read template.yaml");
    serde_norway::from_str(&text).expect("template.yaml is YAML")
}

fn resource<'a>(t: &'a Value, name: &str) -> &'a Value {
    &t["Resources"][name]["Properties"]
}

/// (attribute, key type) pairs of a KeySchema, and (attribute, type) of AttributeDefinitions.
fn keys(v: &Value) -> Vec<(String, String)> {
    v["KeySchema"]
        .as_sequence()
        .expect("KeySchema")
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().expect("name").to_owned(),
                k["KeyType"].as_str().expect("type").to_owned(),
            )
        })
        .collect()
}

fn attrs(v: &Value) -> Vec<(String, String)> {
    let mut a: Vec<(String, String)> = v["AttributeDefinitions"]
        .as_sequence()
        .expect("AttributeDefinitions")
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().expect("name").to_owned(),
                k["AttributeType"].as_str().expect("type").to_owned(),
            )
        })
        .collect();
    a.sort();
    a
}

/// The tables `create_tables` makes on moto have exactly the keys, attribute
/// types, stream view and TTL attribute that template.yaml declares.
#[tokio::test]
async fn create_tables_matches_the_template() {
    let t = template();
    let events_t = resource(&t, "EventsTable");
    let state_t = resource(&t, "StateTable");
    assert_eq!(events_t["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    assert_eq!(state_t["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));

    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let names = TableNames {
        events: format!("tpl-events-{suffix}"),
        state: format!("tpl-state-{suffix}"),
    };
    let client = client();
    create_tables(&client, &names)
        .await
        .expect("create tables on moto");

    for (name, declared) in [(&names.events, events_t), (&names.state, state_t)] {
        let described = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .expect("describe");
        let table = described.table().expect("table");
        let made_keys: Vec<(String, String)> = table
            .key_schema()
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect();
        assert_eq!(made_keys, keys(declared), "key schema of {name}");
        let mut made_attrs: Vec<(String, String)> = table
            .attribute_definitions()
            .iter()
            .map(|a| {
                (
                    a.attribute_name().to_owned(),
                    a.attribute_type().as_str().to_owned(),
                )
            })
            .collect();
        made_attrs.sort();
        assert_eq!(made_attrs, attrs(declared), "attributes of {name}");
    }

    let stream = client
        .describe_table()
        .table_name(&names.events)
        .send()
        .await
        .expect("describe");
    let view = stream
        .table()
        .and_then(|t| t.stream_specification())
        .and_then(|s| s.stream_view_type())
        .map(|v| v.as_str().to_owned());
    assert_eq!(
        view.as_deref(),
        events_t["StreamSpecification"]["StreamViewType"].as_str()
    );
    assert!(
        view.is_some(),
        "the events table has a stream: the publisher reads it"
    );

    let ttl = client
        .describe_time_to_live()
        .table_name(&names.state)
        .send()
        .await
        .expect("ttl");
    let ttl_attribute = ttl
        .time_to_live_description()
        .and_then(|d| d.attribute_name());
    assert_eq!(
        ttl_attribute,
        state_t["TimeToLiveSpecification"]["AttributeName"].as_str()
    );
    assert!(ttl_attribute.is_some(), "the state table expires items");
    assert_eq!(
        state_t["TimeToLiveSpecification"]["Enabled"].as_bool(),
        Some(true)
    );
}

/// The notification handler's claims and completion records outlive every
/// redelivery of its queue (visibility timeout × maxReceiveCount) and every
/// message its DLQ keeps, so neither a redelivery nor a redrive finds the
/// key forgotten and sends again.
#[test]
fn notification_records_outlive_redeliveries_and_the_dlq() {
    let t = template();
    let number = |v: &Value| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .expect("a number")
    };
    let queue = resource(&t, "NotificationQueue");
    let redeliveries =
        number(&queue["VisibilityTimeout"]) * number(&queue["RedrivePolicy"]["maxReceiveCount"]);
    let retention = number(&resource(&t, "NotificationDLQ")["MessageRetentionPeriod"]);
    let ttl = u64::try_from(storefront_notification::RECORD_TTL_SECONDS).expect("positive");
    assert!(
        ttl > redeliveries,
        "{ttl} s ≤ {redeliveries} s of redeliveries"
    );
    assert!(
        ttl > retention,
        "{ttl} s ≤ the DLQ's {retention} s retention"
    );
    assert!(
        u64::try_from(storefront_notification::SEND_WINDOW_SECONDS).expect("positive")
            > number(&t["Globals"]["Function"]["Timeout"]),
        "a claim younger than the function's timeout may still be sending"
    );
}

/// Both tables can be restored to a point in time: the events, and the
/// state table's audit chain and idempotency records, which cannot be
/// rebuilt from the events.
#[test]
fn both_tables_have_point_in_time_recovery() {
    let t = template();
    for table in ["EventsTable", "StateTable"] {
        assert_eq!(
            resource(&t, table)["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
            Value::Bool(true),
            "{table}"
        );
    }
}
