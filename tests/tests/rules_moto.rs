//! The template's rules on a real EventBridge (moto): each handler's pattern
//! is put on a bus with its queue as target, one event of every type in the
//! catalogue is published, and each queue receives exactly the types its
//! handler declares. Fails (never skips) without a moto endpoint.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_eventbridge::types::{PutEventsRequestEntry, Target};
use storefront_domain::EventType;
use storefront_template::Template;

fn endpoint() -> String {
    ["STOREFRONT_AWS_ENDPOINT", "STOREFRONT_DYNAMODB_ENDPOINT"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|e| !e.is_empty()))
        .expect(
            "STOREFRONT_AWS_ENDPOINT is not set: run `make test`, which starts moto on 127.0.0.1",
        )
}

/// Every type reaches exactly the queues of the handlers that declare it.
#[tokio::test]
async fn template_rules_route_on_moto() {
    let sdk = storefront_runtime::aws::local_config(&endpoint());
    let events = storefront_runtime::aws::eventbridge(&sdk);
    let sqs = storefront_runtime::aws::sqs(&sdk);
    let template =
        Template::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).expect("template");
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let bus = format!("rules-{suffix}");
    events
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("bus");

    let declared: Vec<(&str, &[EventType])> = vec![
        (storefront_inventory::NAME, storefront_inventory::CONSUMES),
        (
            storefront_order_workflow::NAME,
            storefront_order_workflow::CONSUMES,
        ),
        (storefront_cart::NAME, storefront_cart::CONSUMES),
        (
            storefront_notification::NAME,
            storefront_notification::CONSUMES,
        ),
        (storefront_audit::NAME, storefront_audit::CONSUMES),
        (storefront_analytics::NAME, storefront_analytics::CONSUMES),
        (storefront_user::NAME, storefront_user::CONSUMES),
    ];
    let mut queue_urls = BTreeMap::new();
    for (name, _) in &declared {
        let f = template
            .function_by_binary(&format!("storefront-{name}"))
            .expect("function");
        let rules = template.rules_for_queue(&f.sqs[0].queue);
        let url = sqs
            .create_queue()
            .queue_name(format!("{name}-{suffix}"))
            .send()
            .await
            .expect("queue")
            .queue_url
            .expect("url");
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("attributes")
            .attributes
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .expect("arn");
        for rule in rules {
            let rule_name = format!("{}-{suffix}", rule.logical_id);
            events
                .put_rule()
                .name(&rule_name)
                .event_bus_name(&bus)
                .event_pattern(rule.pattern.to_string())
                .send()
                .await
                .expect("rule");
            events
                .put_targets()
                .rule(&rule_name)
                .event_bus_name(&bus)
                .targets(Target::builder().id("q").arn(&arn).build().expect("target"))
                .send()
                .await
                .expect("target");
        }
        queue_urls.insert(*name, url);
    }

    // One event of each type, from the source it is published with.
    for chunk in EventType::ALL.chunks(10) {
        let entries: Vec<PutEventsRequestEntry> = chunk
            .iter()
            .map(|t| {
                let family =
                    if t.family() == "inventory" && *t != EventType::InventoryReservationFailed {
                        "product"
                    } else {
                        t.family()
                    };
                PutEventsRequestEntry::builder()
                    .event_bus_name(&bus)
                    .source(format!("storefront.{family}"))
                    .detail_type(t.name())
                    .detail(serde_json::json!({"eventType": t.name()}).to_string())
                    .build()
            })
            .collect();
        let out = events
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .expect("put events");
        assert_eq!(out.failed_entry_count, 0);
    }

    for (name, consumes) in &declared {
        let mut got = BTreeSet::new();
        loop {
            let received = sqs
                .receive_message()
                .queue_url(&queue_urls[name])
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let body: serde_json::Value =
                    serde_json::from_str(m.body().unwrap_or("{}")).expect("json body");
                assert!(
                    got.insert(
                        body["detail-type"]
                            .as_str()
                            .expect("detail-type")
                            .to_owned()
                    ),
                    "{name}: delivered once"
                );
                sqs.delete_message()
                    .queue_url(&queue_urls[name])
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
        let expected: BTreeSet<String> = consumes.iter().map(|t| t.name().to_owned()).collect();
        assert_eq!(got, expected, "{name} receives exactly what it declares");
    }
}
