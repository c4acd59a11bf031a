//! The appending handlers on DynamoDB with faults on the wire (a proxy
//! between the SDK and moto, `storefront-faults`): a reservation that meets
//! another transaction is retried in process, one whose answer was lost is
//! recognised, and the audit chain records an event once though its
//! compare-and-swap's answer was lost. Each test asserts the state after:
//! one reservation per line, versions contiguous, one audit record.

use storefront_domain::events::{OrderCreated, OrderLine, ProductCreated};
use storefront_domain::{
    Currency, Event, EventEnvelope, EventMeta, OrderId, Sku, StreamId, UserId, seal_batch,
};
use storefront_faults::{Fault, FaultProxy};
use storefront_runtime::{EventHandler, Globals, Outcome, Stores};
use storefront_store::EventStore;
use storefront_store::clock::{new_event_id, now_rfc3339};
use storefront_store::dynamodb::{DynamoStore, TableNames, create_tables};

fn moto() -> String {
    std::env::var("STOREFRONT_DYNAMODB_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .expect("STOREFRONT_DYNAMODB_ENDPOINT is not set: run `make test`, which starts moto on 127.0.0.1")
}

/// Fresh tables; a store straight on moto for the set-up, and stores
/// through a fault proxy for the handler.
async fn stores() -> (DynamoStore, Stores, FaultProxy) {
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let tables = TableNames {
        events: format!("hf-events-{suffix}"),
        state: format!("hf-state-{suffix}"),
    };
    let direct = storefront_runtime::aws::dynamodb(&storefront_runtime::aws::local_config(&moto()));
    create_tables(&direct, &tables)
        .await
        .expect("tables on moto");
    let proxy = FaultProxy::start(&moto()).await.expect("proxy");
    let through =
        storefront_runtime::aws::dynamodb(&storefront_runtime::aws::local_config(proxy.endpoint()));
    (
        DynamoStore::new(direct, tables.clone()),
        Stores::from(DynamoStore::new(through, tables)),
        proxy,
    )
}

fn meta() -> EventMeta {
    EventMeta {
        event_id: new_event_id(),
        occurred_at: now_rfc3339(),
        correlation_id: "handler-faults".into(),
        causation_id: None,
        actor: "system:test".into(),
    }
}

async fn append(store: &DynamoStore, stream: &str, event: Event) -> EventEnvelope {
    let stream = StreamId::parse(stream).expect("stream");
    let version = store.current_version(&stream).await.expect("version");
    let sealed = seal_batch(&stream, version, &[event], |_| meta());
    store
        .append(&stream, version, sealed.clone())
        .await
        .expect("append");
    sealed.into_iter().next().expect("one")
}

/// Two products with stock, and an order for one of each.
async fn order(store: &DynamoStore, id: &str) -> EventEnvelope {
    let eur = Currency::new("EUR").expect("eur");
    let mut lines = Vec::new();
    for sku in ["MUG", "CUP"] {
        let stream = format!("product#{sku}");
        if store
            .current_version(&StreamId::parse(&stream).expect("stream"))
            .await
            .expect("version")
            == 0
        {
            append(
                store,
                &stream,
                Event::ProductCreated(ProductCreated {
                    sku: Sku::new(sku).expect("sku"),
                    name: sku.into(),
                    price_cents: 500,
                    currency: eur.clone(),
                    initial_stock: 10,
                }),
            )
            .await;
        }
        lines.push(OrderLine {
            sku: Sku::new(sku).expect("sku"),
            name: sku.into(),
            quantity: 1,
            unit_price_cents: 500,
        });
    }
    append(
        store,
        &format!("order#{id}"),
        Event::OrderCreated(OrderCreated {
            order_id: OrderId::new(id).expect("order id"),
            user_id: UserId::new("ann").expect("user"),
            lines,
            total_cents: 1000,
            currency: eur,
            placed_at: now_rfc3339(),
        }),
    )
    .await
}

async fn reservations(store: &DynamoStore, order_id: &str) -> usize {
    let mut n = 0;
    for sku in ["MUG", "CUP"] {
        let events = store
            .load(
                &StreamId::parse(&format!("product#{sku}")).expect("stream"),
                0,
            )
            .await
            .expect("load");
        let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
        assert_eq!(
            versions,
            (1..=events.len() as u64).collect::<Vec<_>>(),
            "contiguous"
        );
        n += events
            .iter()
            .filter(|e| e.event_type == "inventory.stock.reserved" && e.data["orderId"] == order_id)
            .count();
    }
    n
}

/// A reservation that meets another transaction is decided again in
/// process (no redelivery needed); one whose answer was lost after the
/// commit is recognised; a redelivery is a duplicate. Each order reserves
/// its two lines once.
#[tokio::test]
async fn inventory_rides_out_conflicts_and_lost_answers() {
    let (setup, stores, proxy) = stores().await;
    let inventory = storefront_inventory::Inventory::new(stores, &Default::default());

    let first = order(&setup, "o-conflict").await;
    proxy.inject("TransactWriteItems", Fault::TransactionConflict);
    proxy.inject("TransactWriteItems", Fault::TransactionConflict);
    assert_eq!(
        inventory.handle(&first).await.expect("handled"),
        Outcome::Handled
    );
    assert_eq!(proxy.pending(), 0, "both conflicts were met");
    assert_eq!(reservations(&setup, "o-conflict").await, 2);

    let second = order(&setup, "o-lost").await;
    proxy.inject("TransactWriteItems", Fault::CommitThenDrop);
    assert_eq!(
        inventory.handle(&second).await.expect("handled"),
        Outcome::Handled
    );
    assert_eq!(proxy.pending(), 0);
    assert_eq!(reservations(&setup, "o-lost").await, 2, "reserved once");
    assert_eq!(
        inventory.handle(&second).await.expect("again"),
        Outcome::Duplicate
    );
    assert_eq!(reservations(&setup, "o-lost").await, 2);
}

/// The audit chain's compare-and-swap whose answer was lost after the
/// commit records the event once; the chain verifies.
#[tokio::test]
async fn the_audit_chain_records_an_event_once_though_its_answer_was_lost() {
    let (setup, stores, proxy) = stores().await;
    let audit = storefront_audit::Audit::new(stores, &Globals::default());
    let events = [order(&setup, "o-a1").await, order(&setup, "o-a2").await];
    proxy.inject("TransactWriteItems", Fault::CommitThenDrop);
    for e in &events {
        let outcome = audit.handle(e).await.expect("handled");
        assert!(
            matches!(outcome, Outcome::Handled | Outcome::Duplicate),
            "{outcome:?}"
        );
    }
    proxy.inject("TransactWriteItems", Fault::TransactionConflict);
    let outcome = audit.handle(&events[0]).await.expect("again");
    assert_eq!(outcome, Outcome::Duplicate, "already chained");
    assert_eq!(proxy.pending(), 1, "the duplicate wrote nothing");
    let days = storefront_audit::verify_all(&setup)
        .await
        .expect("chain intact");
    let records: u64 = days.iter().map(|(_, n)| n).sum();
    assert_eq!(records, 2, "one record per event");
}
