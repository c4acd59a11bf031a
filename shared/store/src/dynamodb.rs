//! The AWS adapter: DynamoDB, table layout of DESIGN §4.
//!
//! EventsTable: `pk` (S) = streamId, `version` (N); immutable items; stream
//! view NEW_IMAGE. StateTable: `pk` (S), `sk` (S), TTL attribute `expiresAt`.
//!
//! - One event, no state writes: one conditional `PutItem`
//!   (`attribute_not_exists(pk)` on the next version): 1 WCU under 1 KB.
//! - Anything more: one `TransactWriteItems`, all or nothing; more than 100
//!   items is refused with [`StoreError::TooManyItems`] before AWS is called.
//! - A lost race is [`StoreError::Conflict`], never an overwrite.
//! - Loads are strongly consistent and follow every page.
//! - Every event read is checksum-verified.
//!
//! `expected_version` must come from a load of the stream: the conditional
//! write rejects versions that are taken, so a stale writer always loses; a
//! writer claiming a version *ahead* of the stream would leave a gap, which
//! only a bug can do, and the cheap single-PutItem path does not pay for a
//! second condition to rule it out.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
    TransactWriteItem,
};
use storefront_domain::{EventEnvelope, StreamId};

use crate::clock::now_epoch_seconds;
use crate::{
    AppendBatch, Condition, EventStore, Page, StateItem, StateStore, StateWrite, StoreError,
};

/// The physical names of the two tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// The event store (`EventsTable` in template.yaml).
    pub events: String,
    /// Views, snapshots, idempotency records (`StateTable` in template.yaml).
    pub state: String,
}

/// Event store and state store on DynamoDB.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
}

fn backend<E: std::error::Error + 'static>(what: &str, e: E) -> StoreError {
    StoreError::Backend {
        backend: "dynamodb",
        detail: format!("{what}: {}", DisplayErrorContext(e)),
    }
}

fn corrupt(table: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: detail.into(),
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The events-table item of an envelope. `data` is kept as its JSON text so
/// the checksum is recomputed over exactly what was written.
pub fn event_to_item(e: &EventEnvelope) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::with_capacity(12);
    item.insert("pk".into(), s(&e.stream_id));
    item.insert("version".into(), n(e.version));
    item.insert("eventId".into(), s(&e.event_id));
    item.insert("eventType".into(), s(&e.event_type));
    item.insert("aggregateType".into(), s(e.aggregate_type()));
    item.insert("occurredAt".into(), s(&e.occurred_at));
    item.insert("schemaVersion".into(), n(e.schema_version));
    item.insert("correlationId".into(), s(&e.correlation_id));
    if let Some(c) = &e.causation_id {
        item.insert("causationId".into(), s(c));
    }
    item.insert("actor".into(), s(&e.actor));
    item.insert("data".into(), s(e.data.to_string()));
    item.insert("checksum".into(), s(&e.checksum));
    item
}

fn get_s<'a>(
    item: &'a HashMap<String, AttributeValue>,
    key: &str,
    table: &'static str,
) -> Result<&'a str, StoreError> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(corrupt(
            table,
            format!("attribute {key} is missing or not a string"),
        )),
    }
}

fn get_n<T: std::str::FromStr>(
    item: &HashMap<String, AttributeValue>,
    key: &str,
    table: &'static str,
) -> Result<T, StoreError> {
    match item.get(key) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| corrupt(table, format!("attribute {key} is not a valid number: {v}"))),
        _ => Err(corrupt(
            table,
            format!("attribute {key} is missing or not a number"),
        )),
    }
}

/// Reads an events-table item back into an envelope and verifies its checksum.
pub fn item_to_event(item: &HashMap<String, AttributeValue>) -> Result<EventEnvelope, StoreError> {
    const T: &str = "events";
    let data_text = get_s(item, "data", T)?;
    let envelope = EventEnvelope {
        event_id: get_s(item, "eventId", T)?.to_owned(),
        event_type: get_s(item, "eventType", T)?.to_owned(),
        stream_id: get_s(item, "pk", T)?.to_owned(),
        version: get_n(item, "version", T)?,
        occurred_at: get_s(item, "occurredAt", T)?.to_owned(),
        schema_version: get_n(item, "schemaVersion", T)?,
        correlation_id: get_s(item, "correlationId", T)?.to_owned(),
        causation_id: match item.get("causationId") {
            Some(AttributeValue::S(c)) => Some(c.clone()),
            _ => None,
        },
        actor: get_s(item, "actor", T)?.to_owned(),
        data: serde_json::from_str(data_text)
            .map_err(|e| corrupt(T, format!("data is not JSON: {e}")))?,
        checksum: get_s(item, "checksum", T)?.to_owned(),
    };
    envelope.verify()?;
    Ok(envelope)
}

fn state_to_item(i: &StateItem) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let mut item = HashMap::with_capacity(5);
    item.insert("pk".into(), s(&i.pk));
    item.insert("sk".into(), s(&i.sk));
    item.insert("version".into(), n(i.version));
    item.insert(
        "value".into(),
        s(
            serde_json::to_string(&i.value)
                .map_err(|e| StoreError::InvalidAppend(e.to_string()))?,
        ),
    );
    if let Some(t) = i.expires_at {
        item.insert("expiresAt".into(), n(t));
    }
    Ok(item)
}

/// A state-table item as a [`StateItem`] (the inverse of what the adapter writes).
pub fn item_to_state(item: &HashMap<String, AttributeValue>) -> Result<StateItem, StoreError> {
    const T: &str = "state";
    Ok(StateItem {
        pk: get_s(item, "pk", T)?.to_owned(),
        sk: get_s(item, "sk", T)?.to_owned(),
        version: get_n(item, "version", T)?,
        value: serde_json::from_str(get_s(item, "value", T)?)
            .map_err(|e| corrupt(T, format!("value is not JSON: {e}")))?,
        expires_at: match item.get("expiresAt") {
            Some(_) => Some(get_n(item, "expiresAt", T)?),
            None => None,
        },
    })
}

fn is_live(item: &StateItem, now: i64) -> bool {
    item.expires_at.is_none_or(|t| t > now)
}

/// The condition expression of a state write, with its names and values.
struct Guard {
    expression: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

fn guard(condition: Condition, version: u64, now: i64) -> Guard {
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    let expression = match condition {
        Condition::Always => None,
        Condition::NotExists => {
            names.insert("#exp".into(), "expiresAt".into());
            values.insert(":now".into(), n(now));
            Some("attribute_not_exists(pk) OR #exp <= :now".to_owned())
        }
        Condition::NewerVersion => {
            names.insert("#exp".into(), "expiresAt".into());
            names.insert("#v".into(), "version".into());
            values.insert(":now".into(), n(now));
            values.insert(":v".into(), n(version));
            Some("attribute_not_exists(pk) OR #exp <= :now OR #v < :v".to_owned())
        }
        Condition::VersionIs(expected) => {
            names.insert("#exp".into(), "expiresAt".into());
            names.insert("#v".into(), "version".into());
            values.insert(":now".into(), n(now));
            values.insert(":expected".into(), n(expected));
            Some(
                "attribute_exists(pk) AND #v = :expected AND (attribute_not_exists(#exp) OR #exp > :now)"
                    .to_owned(),
            )
        }
    };
    Guard {
        expression,
        names,
        values,
    }
}

impl DynamoStore {
    /// Wraps a client built once per cold start.
    pub fn new(client: Client, tables: TableNames) -> Self {
        DynamoStore { client, tables }
    }

    /// The client, for callers that need the raw API (tests, operator tools).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table names.
    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    async fn conflict(&self, stream: &str, expected: u64) -> StoreError {
        let actual = match StreamId::parse(stream) {
            Ok(id) => self.current_version(&id).await.unwrap_or(expected + 1),
            Err(_) => expected + 1,
        };
        StoreError::Conflict {
            stream: stream.to_owned(),
            expected,
            // The condition failed, so the stream is past `expected`, even if
            // the follow-up read lags behind.
            actual: actual.max(expected + 1),
        }
    }

    /// Whether the events table holds `envelope` itself (its position, with
    /// its event id): how a write whose condition failed tells an ambiguous
    /// commit of its own (an earlier attempt of the same call committed, its
    /// response was lost, and the SDK sent it again) from another writer's.
    async fn holds(&self, envelope: &EventEnvelope) -> Result<bool, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.tables.events)
            .key("pk", s(envelope.stream_id.clone()))
            .key("version", n(envelope.version))
            .consistent_read(true)
            .projection_expression("eventId")
            .send()
            .await
            .map_err(|e| backend("GetItem on the events table", e))?;
        Ok(item
            .item()
            .and_then(|i| i.get("eventId"))
            .and_then(|v| v.as_s().ok())
            .is_some_and(|id| *id == envelope.event_id))
    }

    async fn put_one(&self, envelope: &EventEnvelope, expected: u64) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.events)
            .set_item(Some(event_to_item(envelope)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) => match e.err() {
                PutItemError::ConditionalCheckFailedException(_) => {
                    if self.holds(envelope).await? {
                        return Ok(());
                    }
                    Err(self.conflict(&envelope.stream_id, expected).await)
                }
                PutItemError::TransactionConflictException(_) => Err(StoreError::Contention {
                    operation: "PutItem on the events table",
                }),
                _ => Err(backend("PutItem on the events table", e.into_err())),
            },
            Err(e) => Err(backend("PutItem on the events table", e)),
        }
    }

    async fn transact(&self, batch: &AppendBatch) -> Result<(), StoreError> {
        let now = now_epoch_seconds();
        // Remember what each transaction item was, to explain a cancellation.
        enum Origin<'a> {
            Event { stream: &'a str, expected: u64 },
            State { pk: &'a str, sk: &'a str },
        }
        let mut origins = Vec::with_capacity(batch.item_count());
        let mut items = Vec::with_capacity(batch.item_count());
        let build = |e| StoreError::InvalidAppend(format!("cannot build the transaction: {e}"));
        for sa in &batch.streams {
            for e in &sa.events {
                let put = Put::builder()
                    .table_name(&self.tables.events)
                    .set_item(Some(event_to_item(e)))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .map_err(build)?;
                items.push(TransactWriteItem::builder().put(put).build());
                origins.push(Origin::Event {
                    stream: &e.stream_id,
                    expected: sa.expected_version,
                });
            }
        }
        for w in &batch.state {
            let g = guard(w.condition, w.item.version, now);
            let mut put = Put::builder()
                .table_name(&self.tables.state)
                .set_item(Some(state_to_item(&w.item)?));
            if let Some(expr) = g.expression {
                put = put
                    .condition_expression(expr)
                    .set_expression_attribute_names(Some(g.names))
                    .set_expression_attribute_values(Some(g.values));
            }
            items.push(
                TransactWriteItem::builder()
                    .put(put.build().map_err(build)?)
                    .build(),
            );
            origins.push(Origin::State {
                pk: &w.item.pk,
                sk: &w.item.sk,
            });
        }
        // The first event's id names this decision: DynamoDB runs a
        // transaction sent again with the same token (the SDK's retry after
        // a lost response) once, for ten minutes.
        let first = batch.streams.iter().flat_map(|sa| sa.events.first()).next();
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .set_client_request_token(first.map(|e| e.event_id.clone()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) => match e.err() {
                TransactWriteItemsError::TransactionCanceledException(c) => {
                    let reasons = c.cancellation_reasons();
                    let failed = reasons
                        .iter()
                        .position(|r| r.code() == Some("ConditionalCheckFailed"));
                    // An earlier attempt of this very transaction committed
                    // (all or nothing: its first event is there), and only
                    // its response was lost.
                    if failed.is_some()
                        && let Some(first) = first
                        && self.holds(first).await?
                    {
                        return Ok(());
                    }
                    if failed.is_none()
                        && reasons
                            .iter()
                            .any(|r| r.code() == Some("TransactionConflict"))
                    {
                        return Err(StoreError::Contention {
                            operation: "TransactWriteItems",
                        });
                    }
                    match failed.and_then(|i| origins.get(i)) {
                        Some(Origin::Event { stream, expected }) => {
                            Err(self.conflict(stream, *expected).await)
                        }
                        Some(Origin::State { pk, sk }) => Err(StoreError::ConditionFailed {
                            pk: (*pk).to_owned(),
                            sk: (*sk).to_owned(),
                        }),
                        None => Err(StoreError::Backend {
                            backend: "dynamodb",
                            detail: format!("transaction cancelled: {c}"),
                        }),
                    }
                }
                TransactWriteItemsError::TransactionInProgressException(_) => {
                    Err(StoreError::Contention {
                        operation: "TransactWriteItems (the same transaction is in progress)",
                    })
                }
                _ => Err(backend("TransactWriteItems", e.into_err())),
            },
            Err(e) => Err(backend("TransactWriteItems", e)),
        }
    }
}

#[async_trait]
impl EventStore for DynamoStore {
    async fn append_batch(&self, batch: AppendBatch) -> Result<(), StoreError> {
        batch.validate()?;
        let single = batch.state.is_empty()
            && batch.streams.len() == 1
            && batch.streams[0].events.len() == 1;
        if single {
            let sa = &batch.streams[0];
            self.put_one(&sa.events[0], sa.expected_version).await
        } else {
            self.transact(&batch).await
        }
    }

    async fn load(
        &self,
        stream: &StreamId,
        after_version: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.tables.events)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND #v > :after")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":pk", s(stream.to_string()))
                .expression_attribute_values(":after", n(after_version))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("Query on the events table", e))?;
            for item in page.items() {
                out.push(item_to_event(item)?);
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn current_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let page = self
            .client
            .query()
            .table_name(&self.tables.events)
            .consistent_read(true)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(stream.to_string()))
            .projection_expression("#v")
            .expression_attribute_names("#v", "version")
            .scan_index_forward(false)
            .limit(1)
            .send()
            .await
            .map_err(|e| backend("Query on the events table", e))?;
        match page.items().first() {
            Some(item) => get_n(item, "version", "events"),
            None => Ok(0),
        }
    }
}

/// The state items of a query's page that have not expired.
fn live_items(
    items: &[HashMap<String, AttributeValue>],
    now: i64,
) -> Result<Vec<StateItem>, StoreError> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let item = item_to_state(item)?;
        if is_live(&item, now) {
            out.push(item);
        }
    }
    Ok(out)
}

#[async_trait]
impl StateStore for DynamoStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<StateItem>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.state)
            .consistent_read(true)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .send()
            .await
            .map_err(|e| backend("GetItem on the state table", e))?;
        match out.item() {
            Some(item) => {
                let item = item_to_state(item)?;
                Ok(is_live(&item, now_epoch_seconds()).then_some(item))
            }
            None => Ok(None),
        }
    }

    async fn put(&self, write: StateWrite) -> Result<(), StoreError> {
        let g = guard(write.condition, write.item.version, now_epoch_seconds());
        let mut req = self
            .client
            .put_item()
            .table_name(&self.tables.state)
            .set_item(Some(state_to_item(&write.item)?));
        if let Some(expr) = g.expression {
            req = req
                .condition_expression(expr)
                .set_expression_attribute_names(Some(g.names))
                .set_expression_attribute_values(Some(g.values));
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) => match e.err() {
                PutItemError::ConditionalCheckFailedException(_) => {
                    Err(StoreError::ConditionFailed {
                        pk: write.item.pk,
                        sk: write.item.sk,
                    })
                }
                PutItemError::TransactionConflictException(_) => Err(StoreError::Contention {
                    operation: "PutItem on the state table",
                }),
                _ => Err(backend("PutItem on the state table", e.into_err())),
            },
            Err(e) => Err(backend("PutItem on the state table", e)),
        }
    }

    async fn delete(&self, pk: &str, sk: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.tables.state)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| backend("DeleteItem on the state table", e))
    }

    async fn query(&self, pk: &str) -> Result<Vec<StateItem>, StoreError> {
        // Page after page, each as large as DynamoDB makes it (1 MB).
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.query_page(pk, after.as_deref(), usize::MAX).await?;
            out.extend(page.items);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(out),
            }
        }
    }

    async fn query_page(
        &self,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let start =
            after.map(|sk| HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))]));
        let page = self
            .client
            .query()
            .table_name(&self.tables.state)
            .consistent_read(true)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk))
            // Too large for a Limit (query's usize::MAX): none, DynamoDB's 1 MB page.
            .set_limit(i32::try_from(limit.max(1)).ok())
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| backend("Query on the state table", e))?;
        let items = live_items(page.items(), now_epoch_seconds())?;
        let next = page
            .last_evaluated_key()
            .and_then(|key| key.get("sk"))
            .and_then(|sk| sk.as_s().ok())
            .cloned();
        Ok(Page { items, next })
    }

    async fn delete_version(&self, pk: &str, sk: &str, version: u64) -> Result<bool, StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.tables.state)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":v", n(version))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) => match e.err() {
                DeleteItemError::ConditionalCheckFailedException(_) => Ok(false),
                _ => Err(backend("DeleteItem on the state table", e.into_err())),
            },
            Err(e) => Err(backend("DeleteItem on the state table", e)),
        }
    }
}

/// Creates both tables if they do not exist (events with a NEW_IMAGE stream,
/// state with TTL on `expiresAt`), on-demand billing, and waits until they are
/// active. The tests and the local runtime's AWS mode share this function; in
/// AWS the SAM template creates the same layout.
pub async fn create_tables(client: &Client, tables: &TableNames) -> Result<(), StoreError> {
    let key = |name: &str, kt: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kt)
            .build()
            .map_err(|e| StoreError::InvalidAppend(e.to_string()))
    };
    let attr = |name: &str, t: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(t)
            .build()
            .map_err(|e| StoreError::InvalidAppend(e.to_string()))
    };
    // ListTables answers 100 names a page: read them all, or a table on a
    // later page looks absent and its creation fails as already there.
    let mut existing: Vec<String> = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let page = client
            .list_tables()
            .set_exclusive_start_table_name(start.take())
            .send()
            .await
            .map_err(|e| backend("ListTables", e))?;
        existing.extend(page.table_names().iter().cloned());
        match page.last_evaluated_table_name() {
            Some(last) => start = Some(last.to_owned()),
            None => break,
        }
    }
    let have = |name: &str| existing.iter().any(|t| t == name);

    if !have(&tables.events) {
        client
            .create_table()
            .table_name(&tables.events)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("version", KeyType::Range)?)
            .attribute_definitions(attr("pk", ScalarAttributeType::S)?)
            .attribute_definitions(attr("version", ScalarAttributeType::N)?)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewImage)
                    .build()
                    .map_err(|e| StoreError::InvalidAppend(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| backend("CreateTable (events)", e))?;
    }
    if !have(&tables.state) {
        client
            .create_table()
            .table_name(&tables.state)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .attribute_definitions(attr("pk", ScalarAttributeType::S)?)
            .attribute_definitions(attr("sk", ScalarAttributeType::S)?)
            .send()
            .await
            .map_err(|e| backend("CreateTable (state)", e))?;
        client
            .update_time_to_live()
            .table_name(&tables.state)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expiresAt")
                    .build()
                    .map_err(|e| StoreError::InvalidAppend(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| backend("UpdateTimeToLive (state)", e))?;
    }
    for name in [&tables.events, &tables.state] {
        client
            .wait_until_table_exists()
            .table_name(name)
            .wait(std::time::Duration::from_secs(60))
            .await
            .map_err(|e| backend("waiting for the table", e))?;
    }
    Ok(())
}
