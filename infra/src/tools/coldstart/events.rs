//! A representative first event for each function: built from the journey's
//! first events with the domain's own deciders, routed through the
//! template's rules to find a function's SQS batch, or the stream batch and
//! schedule event the publisher and the sweeper get.

use serde_json::{Value, json};
use storefront_domain::cart::{CartCommand, CartState, ProductInfo};
use storefront_domain::order::{OrderCommand, OrderState};
use storefront_domain::user::{UserCommand, UserState};
use storefront_domain::{
    Aggregate, Currency, Event, EventEnvelope, EventMeta, OrderId, Sku, StreamId, UserId,
};
use storefront_template::router::eventbridge_event;
use storefront_template::{Function, PatternRouter, Template};

use super::ColdstartError;

fn meta(n: usize, actor: &str) -> EventMeta {
    EventMeta {
        event_id: format!("0190f3c2-7a6b-7c3d-8e9f-{n:012x}"),
        occurred_at: "2026-11-27T10:00:00.000Z".into(),
        correlation_id: "bench-request".into(),
        causation_id: None,
        actor: actor.into(),
    }
}

/// Envelopes of the journey's first events, to pick representative ones from.
fn candidates() -> Result<Vec<EventEnvelope>, ColdstartError> {
    let bad = |e: storefront_domain::DomainError| ColdstartError::Run(e.to_string());
    let user = UserId::new("u-bench").map_err(bad)?;
    let sku = Sku::new("MUG-1").map_err(bad)?;
    let order_id = OrderId::new("o-bench").map_err(bad)?;
    let mut out = Vec::new();
    let mut seal = |stream: StreamId, events: Vec<Event>| {
        for (i, e) in events.iter().enumerate() {
            let n = out.len();
            out.push(EventEnvelope::seal(
                &stream,
                i as u64 + 1,
                e,
                &meta(n, "u-bench"),
            ));
        }
    };
    let users = UserState::default()
        .decide(&UserCommand::Register {
            user_id: user.clone(),
            email: "bench@example.com".into(),
            name: "Bench".into(),
        })
        .map_err(bad)?;
    seal(StreamId::new("user", "u-bench").map_err(bad)?, users);
    let cart = CartState::default();
    let added = cart
        .decide(&CartCommand::AddItem {
            user_id: user.clone(),
            sku: sku.clone(),
            quantity: 2,
            product: Some(ProductInfo {
                sku,
                name: "Mug".into(),
                price_cents: 1250,
                currency: Currency::new("EUR").map_err(bad)?,
                discontinued: false,
            }),
        })
        .map_err(bad)?;
    let cart = cart.fold(added.iter());
    let mut cart_events = added;
    let checked_out = cart
        .decide(&CartCommand::Checkout {
            order_id: order_id.clone(),
        })
        .map_err(bad)?;
    cart_events.extend(checked_out);
    seal(StreamId::new("cart", "u-bench").map_err(bad)?, cart_events);
    let order = OrderState::default();
    let mut order_events = order
        .decide(&OrderCommand::Create {
            order_id,
            user_id: user,
            lines: cart.order_lines(),
            currency: Currency::new("EUR").map_err(bad)?,
            placed_at: "2026-11-27T10:00:00.000Z".into(),
        })
        .map_err(bad)?;
    let confirmed = order
        .fold(order_events.iter())
        .decide(&OrderCommand::Confirm)
        .map_err(bad)?;
    order_events.extend(confirmed);
    seal(
        StreamId::new("order", "o-bench").map_err(bad)?,
        order_events,
    );
    Ok(out)
}

fn bus_event(e: &EventEnvelope) -> Value {
    let detail = serde_json::to_value(e).unwrap_or(Value::Null);
    eventbridge_event(
        &e.event_id,
        &format!("storefront.{}", e.aggregate_type()),
        &e.event_type,
        &e.occurred_at,
        &detail,
    )
}

/// A representative first event for a function, and its name.
pub fn event_for(
    template: &Template,
    function: Option<&Function>,
) -> Result<(String, Value), ColdstartError> {
    let Some(f) = function else {
        return Ok((
            "custom {\"hello\":\"world\"}".into(),
            json!({"hello": "world"}),
        ));
    };
    let all = candidates()?;
    if f.http {
        return Ok((
            "API Gateway HTTP GET /health".into(),
            json!({
                "version": "2.0", "routeKey": "$default", "rawPath": "/health", "rawQueryString": "",
                "headers": {"host": "bench.execute-api.us-east-1.amazonaws.com"},
                "requestContext": {
                    "accountId": "000000000000", "apiId": "bench", "domainName": "bench.execute-api.us-east-1.amazonaws.com",
                    "domainPrefix": "bench", "requestId": "bench-1", "routeKey": "$default", "stage": "$default",
                    "time": "27/Nov/2026:10:00:00 +0000", "timeEpoch": 1_795_773_600_000u64,
                    "http": {"method": "GET", "path": "/health", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"}
                },
                "isBase64Encoded": false
            }),
        ));
    }
    if !f.streams.is_empty() {
        let e = all
            .iter()
            .find(|e| e.event_type == "cart.item.added")
            .or(all.first())
            .ok_or_else(|| ColdstartError::Run("no candidate event".into()))?;
        let mut image = serde_json::Map::new();
        for (k, v) in storefront_store::dynamodb::event_to_item(e) {
            let typed = if let Ok(s) = v.as_s() {
                json!({"S": s})
            } else if let Ok(n) = v.as_n() {
                json!({"N": n})
            } else {
                continue;
            };
            image.insert(k, typed);
        }
        return Ok((
            format!("DynamoDB stream INSERT of {}", e.event_type),
            json!({"Records": [{
                "eventID": "1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {"Keys": {"pk": image["pk"], "version": image["version"]}, "NewImage": image,
                             "SequenceNumber": "100", "SizeBytes": 400, "StreamViewType": "NEW_IMAGE"},
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/events/stream/2026-11-27T00:00:00.000"
            }]}),
        ));
    }
    if let Some(source) = f.sqs.first() {
        let patterns: Vec<(&str, &Value)> = template
            .rules_for_queue(&source.queue)
            .into_iter()
            .map(|r| (r.logical_id.as_str(), &r.pattern))
            .collect();
        let rules = PatternRouter::new(patterns).map_err(|e| ColdstartError::Run(e.to_string()))?;
        for e in &all {
            let body = bus_event(e).to_string();
            if rules
                .matches(body.as_bytes())
                .is_ok_and(|hits| !hits.is_empty())
            {
                return Ok((
                    format!("SQS batch of 1: {}", e.event_type),
                    json!({"Records": [{
                        "messageId": "bench-message-1", "receiptHandle": "bench-receipt-1", "body": body,
                        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795773600000",
                                       "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1795773600000"},
                        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                        "eventSourceARN": format!("arn:aws:sqs:us-east-1:000000000000:{}", source.queue),
                        "awsRegion": "us-east-1"
                    }]}),
                ));
            }
        }
        return Err(ColdstartError::Run(format!(
            "{}: no sample event matches the rules of queue {}",
            f.binary, source.queue
        )));
    }
    Ok((
        "EventBridge Scheduled Event".into(),
        json!({
            "version": "0", "id": "bench-schedule-1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "000000000000", "time": "2026-11-27T10:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:000000000000:rule/bench"], "detail": {}
        }),
    ))
}
