//! template.yaml ⇄ code: every function crate has a resource and every
//! resource a crate; each handler's rule selects exactly the event types its
//! crate declares (evaluated with the same quamina matcher the local runtime
//! routes with); queues, DLQs, alarms, mappings and policies are wired as
//! DESIGN §4–5 says.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Value, json};
use storefront_domain::EventType;
use storefront_template::router::eventbridge_event;
use storefront_template::{PatternRouter, Template};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template() -> Template {
    Template::load(root().join("template.yaml")).expect("template.yaml parses")
}

/// The handlers and the event types each declares in code.
fn handlers() -> Vec<(&'static str, &'static [EventType])> {
    vec![
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
    ]
}

/// The sources an event of a type can come with: the aggregate type of the
/// stream it is appended to (inventory reservations live on product streams).
fn sources(t: EventType) -> Vec<String> {
    let mut s = vec![format!("storefront.{}", t.family())];
    if t.family() == "inventory" {
        s.push("storefront.product".into());
    }
    s
}

fn event(t: EventType, source: &str) -> Vec<u8> {
    let detail = json!({"eventId": "e", "eventType": t.name(), "streamId": "x#y", "version": 1});
    eventbridge_event("e", source, t.name(), "2026-11-27T10:00:00.000Z", &detail)
        .to_string()
        .into_bytes()
}

/// Every crate under functions/ is a function in the template, built from its own binary, and every function resource points at an existing crate.
#[test]
fn every_crate_has_a_resource_and_back() {
    let t = template();
    let mut crates = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("functions")).expect("functions/") {
        let dir = entry.expect("entry").path();
        let manifest = dir.join("Cargo.toml");
        if !manifest.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&manifest).expect("manifest");
        let name = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("name = \"")
                    .and_then(|r| r.strip_suffix('"'))
            })
            .expect("package name")
            .to_owned();
        let f = t
            .function_by_binary(&name)
            .unwrap_or_else(|| panic!("crate {name} has no function in template.yaml"));
        let dir_name = dir
            .file_name()
            .and_then(|d| d.to_str())
            .expect("dir")
            .to_owned();
        assert_eq!(
            f.code_uri,
            format!("functions/{dir_name}"),
            "{name}'s CodeUri"
        );
        crates.insert(name);
    }
    for f in t.functions.values() {
        assert!(
            crates.contains(&f.binary),
            "{} is built from {}, which is not a crate under functions/",
            f.logical_id,
            f.binary
        );
    }
    assert_eq!(
        crates.len(),
        10,
        "api, publisher, seven handlers and the sweeper"
    );
}

/// Each handler's rule (the rules targeting its queue) accepts exactly the types the handler declares, and rejects every other type in the catalogue.
#[test]
fn rules_select_exactly_the_declared_types() {
    let t = template();
    for (name, consumes) in handlers() {
        let f = t
            .function_by_binary(&format!("storefront-{name}"))
            .unwrap_or_else(|| panic!("{name} function"));
        assert_eq!(f.sqs.len(), 1, "{name} has one queue");
        let queue = &f.sqs[0].queue;
        let rules = t.rules_for_queue(queue);
        assert!(!rules.is_empty(), "{name}: a rule targets {queue}");
        let router = PatternRouter::new(rules.iter().map(|r| (r.logical_id.as_str(), &r.pattern)))
            .expect("patterns");
        for ty in EventType::ALL {
            for source in sources(*ty) {
                let routed = !router
                    .matches(&event(*ty, &source))
                    .expect("match")
                    .is_empty();
                assert_eq!(
                    routed,
                    consumes.contains(ty),
                    "{name} ⇐ {} from {source}",
                    ty.name()
                );
            }
        }
        // Nothing from another system gets in.
        let foreign =
            eventbridge_event("e", "aws.ec2", "order.created", "t", &json!({})).to_string();
        assert!(
            router
                .matches(foreign.as_bytes())
                .expect("match")
                .is_empty(),
            "{name} ignores foreign sources"
        );
    }
}

/// Queues: visibility ≥ 6 × the function's timeout, a DLQ with maxReceiveCount 5, an alarm on the DLQ and one on the queue's oldest message's age (both to the alarm topic), a queue policy naming only its rule; mappings report batch item failures.
#[test]
fn queues_dlqs_alarms_and_mappings() {
    let t = template();
    let raw = &t.raw["Resources"];
    for (name, _) in handlers() {
        let f = t
            .function_by_binary(&format!("storefront-{name}"))
            .expect("function");
        let source = &f.sqs[0];
        assert!(
            source.report_batch_item_failures,
            "{name} reports partial failures"
        );
        let queue = &t.queues[&source.queue];
        assert!(
            queue.visibility_timeout >= 6 * f.timeout,
            "{name}: visibility {} < 6 × {}",
            queue.visibility_timeout,
            f.timeout
        );
        let (dlq, max) = queue
            .redrive
            .clone()
            .unwrap_or_else(|| panic!("{name} queue has a DLQ"));
        assert_eq!(max, 5, "{name} maxReceiveCount");
        assert!(t.queues.contains_key(&dlq), "{name} DLQ {dlq} exists");
        // The alarms on `queue`'s `metric` that notify the alarm topic.
        let alarms = |metric: &str, queue: &str| -> Vec<&Value> {
            raw.as_object()
                .expect("resources")
                .values()
                .filter(|r| {
                    r["Type"] == "AWS::CloudWatch::Alarm"
                        && r["Properties"]["Namespace"] == "AWS/SQS"
                        && r["Properties"]["MetricName"] == metric
                        && r["Properties"]["AlarmActions"] == json!([{"Ref": "AlarmTopic"}])
                        && r["Properties"]["Dimensions"].as_array().is_some_and(|d| {
                            d.iter().any(|x| {
                                x["Name"] == "QueueName"
                                    && x["Value"]
                                        == json!({"Fn::GetAtt": format!("{queue}.QueueName")})
                            })
                        })
                })
                .collect()
        };
        assert!(
            !alarms("ApproximateNumberOfMessagesVisible", &dlq).is_empty(),
            "{name}: an alarm on the alarm topic watches {dlq}"
        );
        // A handler that stops consuming (throttled, mapping disabled) leaves
        // its DLQ empty: the queue's oldest message's age shows it.
        let age = alarms("ApproximateAgeOfOldestMessage", &source.queue);
        assert_eq!(
            age.len(),
            1,
            "{name}: one alarm on the alarm topic watches the age of {}'s oldest message",
            source.queue
        );
        let threshold = age[0]["Properties"]["Threshold"]
            .as_u64()
            .expect("threshold");
        assert!(
            (60..=900).contains(&threshold) && age[0]["Properties"]["Statistic"] == "Maximum",
            "{name}: the age alarm fires on the maximum age, within minutes ({threshold} s)"
        );
        let policies: Vec<&Value> = raw
            .as_object()
            .expect("resources")
            .values()
            .filter(|r| {
                r["Type"] == "AWS::SQS::QueuePolicy"
                    && r["Properties"]["Queues"][0] == json!({"Ref": source.queue})
            })
            .collect();
        assert_eq!(policies.len(), 1, "{name}: one queue policy");
        let statement = &policies[0]["Properties"]["PolicyDocument"]["Statement"][0];
        let rules = t.rules_for_queue(&source.queue);
        assert_eq!(rules.len(), 1);
        assert_eq!(
            statement["Condition"]["ArnEquals"]["aws:SourceArn"],
            json!({"Fn::GetAtt": format!("{}.Arn", rules[0].logical_id)}),
            "{name}: only its rule may send"
        );
        let target = &raw[&rules[0].logical_id]["Properties"]["Targets"][0];
        assert!(
            target["DeadLetterConfig"]["Arn"].is_object(),
            "{name}: rule target has a DLQ"
        );
        assert!(
            target["RetryPolicy"].is_object(),
            "{name}: rule target has a retry policy"
        );
    }
    let sweeper = t
        .function_by_binary("storefront-cart-sweeper")
        .expect("sweeper");
    // The deadlines are only as sharp as the schedule: it fires at least as
    // often as the shortest one, and a sweep's budget ends before its timeout.
    assert_eq!(sweeper.schedules.len(), 1, "one schedule");
    let every = storefront_template::model::rate_seconds(&sweeper.schedules[0]).expect("a rate");
    let minutes = |name: &str| match sweeper.environment.get(name) {
        Some(storefront_template::EnvValue::Literal(v)) => v.parse::<u64>().expect("minutes") * 60,
        other => panic!("{name} is a literal number of minutes: {other:?}"),
    };
    for deadline in [
        "CONFIRMATION_TIMEOUT_MINUTES",
        "PAYMENT_TIMEOUT_MINUTES",
        "CART_IDLE_MINUTES",
    ] {
        assert!(
            every <= minutes(deadline),
            "the sweeper runs every {every} s, less often than {deadline}"
        );
    }
    let budget = match sweeper.environment.get("SWEEP_BUDGET_SECONDS") {
        Some(storefront_template::EnvValue::Literal(v)) => v.parse::<u64>().expect("seconds"),
        other => panic!("SWEEP_BUDGET_SECONDS is a literal number: {other:?}"),
    };
    assert!(
        budget < sweeper.timeout,
        "a sweep stops starting work before its function times out"
    );
    let publisher = t
        .function_by_binary("storefront-publisher")
        .expect("publisher");
    assert!(
        publisher.streams[0].bisect_on_error && publisher.streams[0].report_batch_item_failures
    );
}

/// No policy grants `*` actions or resources, and nothing may delete or update an event.
#[test]
fn policies_are_narrow() {
    let t = template();
    // The append-only check below must have met the event store's grants.
    let mut event_store_grants = 0;
    for f in t.functions.values() {
        for policy in &f.policies {
            let text = policy.to_string();
            assert!(
                !text.contains("\"*\""),
                "{}: no wildcard action or resource: {text}",
                f.logical_id
            );
            for statement in policy["Statement"].as_array().into_iter().flatten() {
                let actions: Vec<String> = match &statement["Action"] {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) => a
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                    _ => vec![],
                };
                if statement["Resource"] == json!({"Fn::GetAtt": "EventsTable.Arn"}) {
                    event_store_grants += 1;
                    for a in &actions {
                        assert!(
                            ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query"]
                                .contains(&a.as_str()),
                            "{}: the event store is append-only, {a} is not allowed",
                            f.logical_id
                        );
                    }
                }
            }
        }
    }
    let naming_the_table = t
        .functions
        .values()
        .filter(|f| {
            f.policies
                .iter()
                .any(|p| p.to_string().contains("EventsTable"))
        })
        .count();
    assert!(
        naming_the_table > 0 && event_store_grants >= naming_the_table,
        "{naming_the_table} functions name the events table, {event_store_grants} grants on EventsTable.Arn were checked"
    );
}

/// Each function's policy names only its tables, the bus or SES; only the
/// publisher may put events on the bus, and only `storefront.*` sources;
/// only the notification function may send mail, and only from the sender.
/// (Which DynamoDB actions on which table is derived from the code's store
/// calls in `least_privilege.rs`.)
#[test]
fn least_privilege_per_function() {
    let t = template();
    assert!(t.functions.len() >= 10);
    for f in t.functions.values() {
        let binary = f.binary.as_str();
        for policy in &f.policies {
            for statement in policy["Statement"].as_array().into_iter().flatten() {
                assert_eq!(statement["Effect"], "Allow", "{binary}");
                // A table or bus by its logical id; SES by its ARN pattern.
                let resource = storefront_template::model::referenced(&statement["Resource"])
                    .or_else(|| {
                        statement["Resource"]
                            .to_string()
                            .contains(":ses:")
                            .then(|| "ses".to_owned())
                    })
                    .unwrap_or_else(|| {
                        panic!("{binary}: unexpected resource {}", statement["Resource"])
                    });
                let actions: Vec<String> = match &statement["Action"] {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) => a
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                    _ => vec![],
                };
                assert!(!actions.is_empty(), "{binary}: a statement without actions");
                match resource.as_str() {
                    "EventsTable" | "StateTable" => assert!(
                        actions.iter().all(|a| a.starts_with("dynamodb:")),
                        "{binary}: {actions:?} on {resource}"
                    ),
                    "Bus" => {
                        assert_eq!(
                            binary, "storefront-publisher",
                            "only the publisher puts events"
                        );
                        assert_eq!(actions, ["events:PutEvents"], "{binary}");
                        assert_eq!(
                            statement["Condition"]["StringLike"]["events:source"], "storefront.*",
                            "PutEvents limited to our sources"
                        );
                    }
                    "ses" => {
                        assert_eq!(
                            binary, "storefront-notification",
                            "only notifications send mail"
                        );
                        assert_eq!(actions, ["ses:SendEmail"], "{binary}");
                        assert!(
                            statement["Condition"]["StringEquals"]["ses:FromAddress"].is_object(),
                            "SES limited to the sender"
                        );
                    }
                    other => panic!("{binary}: a grant on {other}"),
                }
            }
        }
    }
    let publisher = t
        .function_by_binary("storefront-publisher")
        .expect("publisher");
    assert!(
        publisher
            .policies
            .iter()
            .any(|p| p.to_string().contains("events:PutEvents")),
        "the publisher may put events"
    );
}
