//! The conformance suite against the DynamoDB adapter on a moto server.
//!
//! `make test` starts moto on 127.0.0.1 and sets `STOREFRONT_DYNAMODB_ENDPOINT`.
//! Without it these tests fail (they never skip): a green run always means
//! the DynamoDB adapter was exercised.

mod conformance;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use conformance::{Harness, created, seal, stream};
use storefront_store::StoreError;
use storefront_store::dynamodb::{
    DynamoStore, TableNames, create_tables, event_to_item, item_to_event,
};

fn endpoint() -> String {
    match std::env::var("STOREFRONT_DYNAMODB_ENDPOINT") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "STOREFRONT_DYNAMODB_ENDPOINT is not set. The DynamoDB suite needs a moto server: \
             run `make test`, which starts one on 127.0.0.1, or start `moto_server -H 127.0.0.1 -p 5000` \
             and export STOREFRONT_DYNAMODB_ENDPOINT=http://127.0.0.1:5000"
        ),
    }
}

fn client() -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version_latest()
        .endpoint_url(endpoint())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// Each store gets its own pair of tables, so tests run in parallel on one moto.
struct Dynamo;

#[async_trait]
impl Harness for Dynamo {
    type Store = DynamoStore;

    async fn store(&self) -> DynamoStore {
        let suffix = uuid::Uuid::now_v7().simple().to_string();
        let tables = TableNames {
            events: format!("events-{suffix}"),
            state: format!("state-{suffix}"),
        };
        let client = client();
        create_tables(&client, &tables)
            .await
            .unwrap_or_else(|e| panic!("cannot create tables on moto at {}: {e}", endpoint()));
        DynamoStore::new(client, tables)
    }

    async fn tamper(&self, store: &DynamoStore, stream: &str, version: u64) {
        store
            .client()
            .update_item()
            .table_name(&store.tables().events)
            .key("pk", AttributeValue::S(stream.into()))
            .key("version", AttributeValue::N(version.to_string()))
            .update_expression("SET #d = :d")
            .expression_attribute_names("#d", "data")
            .expression_attribute_values(
                ":d",
                AttributeValue::S(r#"{"delta":1,"onHand":999999,"reason":"count"}"#.into()),
            )
            .send()
            .await
            .expect("tamper");
    }
}

conformance_suite!(Dynamo);

/// create_tables is idempotent and gives the layout of DESIGN §4: pk/version keys, a NEW_IMAGE stream, TTL on expiresAt.
#[tokio::test]
async fn table_layout() {
    let store = Dynamo.store().await;
    let client = store.client();
    create_tables(client, store.tables())
        .await
        .expect("second call is a no-op");
    let events = client
        .describe_table()
        .table_name(&store.tables().events)
        .send()
        .await
        .expect("describe");
    let table = events.table().expect("table");
    let keys: Vec<(String, String)> = table
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            ("pk".to_owned(), "HASH".to_owned()),
            ("version".to_owned(), "RANGE".to_owned())
        ]
    );
    let spec = table.stream_specification().expect("stream");
    assert!(spec.stream_enabled());
    assert_eq!(
        spec.stream_view_type().map(|v| v.as_str()),
        Some("NEW_IMAGE")
    );
    let ttl = client
        .describe_time_to_live()
        .table_name(&store.tables().state)
        .send()
        .await
        .expect("ttl");
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some("expiresAt")
    );
}

/// An item converts to an envelope and back unchanged; missing attributes are a typed corruption error.
#[tokio::test]
async fn item_conversion() {
    let s = stream("ITEM");
    let envelope = seal(&s, 0, &[created("ITEM", 3)]).remove(0);
    let item = event_to_item(&envelope);
    assert_eq!(item_to_event(&item).expect("round trip"), envelope);
    let mut broken: HashMap<String, AttributeValue> = item.clone();
    broken.remove("checksum");
    assert!(matches!(
        item_to_event(&broken),
        Err(StoreError::Corrupt {
            table: "events",
            ..
        })
    ));
    let mut bad_number = item;
    bad_number.insert("version".into(), AttributeValue::N("one".into()));
    assert!(matches!(
        item_to_event(&bad_number),
        Err(StoreError::Corrupt { .. })
    ));
}
