//! One email per event, with faults on the wire between SES's SDK and moto
//! (`storefront-faults`): a send whose answer is lost is never resent, by the
//! SDK or by a redelivery; it is marked unknown and listed. A send that
//! surely did not leave is retried and sent once. A claim left by a sender
//! that died mid-send is not resent either.

mod common;

use std::sync::Arc;

use common::Shop;
use serde_json::json;
use storefront_domain::EventEnvelope;
use storefront_faults::{Fault, FaultProxy};
use storefront_notification::{Notifications, OutboxNotifier, SesNotifier};
use storefront_runtime::{EventHandler, HandlerError, Outcome};
use storefront_store::keys::UNKNOWN_SENDS;
use storefront_store::{Condition, StateItem, StateWrite};

const SENDER: &str = "shop@example.com";
/// SES v2's SendEmail, as the proxy names it (the path's last segment).
const SEND_EMAIL: &str = "outbound-emails";

fn moto() -> String {
    std::env::var("STOREFRONT_AWS_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .expect(
            "STOREFRONT_AWS_ENDPOINT is not set: run `make test`, which starts moto on 127.0.0.1",
        )
}

/// A shop with one registered user, and the `user.registered` event.
async fn registered() -> (Shop, EventEnvelope) {
    let shop = Shop::new();
    shop.ok(
        "POST",
        "/users",
        Some(("gina", false)),
        Some(json!({"email": "gina@example.com", "name": "Gina"})),
    )
    .await;
    let event = shop
        .new_events()
        .await
        .into_iter()
        .find(|e| e.event_type == "user.registered")
        .expect("event");
    (shop, event)
}

/// The notification handler sending through SES on moto, via a fault proxy.
async fn ses_handler(shop: &Shop) -> (Notifications, FaultProxy) {
    let direct = aws_sdk_sesv2::Client::new(&storefront_runtime::aws::local_config(&moto()));
    direct
        .create_email_identity()
        .email_identity(SENDER)
        .send()
        .await
        .expect("verify the sender on moto");
    let proxy = FaultProxy::start(&moto()).await.expect("proxy");
    let ses = aws_sdk_sesv2::Client::new(&storefront_runtime::aws::local_config(proxy.endpoint()));
    let handler = Notifications::new(
        shop.stores.clone(),
        &common::notification_settings(),
        Arc::new(SesNotifier::new(ses, SENDER.into())),
    );
    (handler, proxy)
}

async fn unknown(shop: &Shop) -> Vec<String> {
    shop.stores
        .state
        .query(UNKNOWN_SENDS)
        .await
        .expect("unknown sends")
        .into_iter()
        .map(|i| i.sk)
        .collect()
}

/// SES received the send, its answer was lost: the SDK does not send it
/// again, the handler marks it unknown and lists it, and a redelivery of the
/// event sends nothing.
#[tokio::test]
async fn a_send_whose_answer_is_lost_is_never_resent() {
    let (shop, event) = registered().await;
    let (handler, proxy) = ses_handler(&shop).await;
    proxy.inject(SEND_EMAIL, Fault::CommitThenDrop);
    assert_eq!(
        handler.handle(&event).await.expect("handled"),
        Outcome::Handled
    );
    assert_eq!(
        proxy.forwarded(SEND_EMAIL),
        1,
        "one request reached SES, none after it"
    );
    assert_eq!(unknown(&shop).await, vec![event.event_id.clone()]);
    assert_eq!(
        handler.handle(&event).await.expect("again"),
        Outcome::Duplicate
    );
    assert_eq!(
        proxy.forwarded(SEND_EMAIL),
        1,
        "the redelivery sent nothing"
    );
}

/// A send refused before it left (a throttle) frees its claim: the
/// redelivery sends it, once.
#[tokio::test]
async fn a_send_that_did_not_leave_is_retried_once() {
    let (shop, event) = registered().await;
    let (handler, proxy) = ses_handler(&shop).await;
    proxy.inject(SEND_EMAIL, Fault::Throttle);
    assert!(matches!(
        handler.handle(&event).await,
        Err(HandlerError::Transient(_))
    ));
    assert_eq!(proxy.forwarded(SEND_EMAIL), 0);
    assert_eq!(
        handler.handle(&event).await.expect("sent"),
        Outcome::Handled
    );
    assert_eq!(
        handler.handle(&event).await.expect("again"),
        Outcome::Duplicate
    );
    assert_eq!(proxy.forwarded(SEND_EMAIL), 1, "sent once");
    assert!(unknown(&shop).await.is_empty());
}

/// A claim older than the send window (its sender died while sending) is
/// marked unknown by the next delivery, not resent.
#[tokio::test]
async fn a_claim_left_by_a_dead_sender_is_not_resent() {
    let (shop, event) = registered().await;
    let handler = Notifications::new(
        shop.stores.clone(),
        &common::notification_settings(),
        Arc::new(OutboxNotifier::new(shop.stores.state.clone())),
    );
    let (pk, sk) = storefront_runtime::handler::idempotency_key("notification", &event.event_id);
    let long_ago = storefront_store::clock::now_epoch_seconds()
        - storefront_notification::SEND_WINDOW_SECONDS
        - 1;
    shop.stores
        .state
        .put(StateWrite {
            item: StateItem {
                pk,
                sk,
                version: 1,
                value: json!({"status": "INPROGRESS", "since": long_ago}),
                expires_at: None,
            },
            condition: Condition::NotExists,
        })
        .await
        .expect("claim");
    assert_eq!(
        handler.handle(&event).await.expect("handled"),
        Outcome::Handled
    );
    assert!(shop.outbox().await.is_empty(), "not resent");
    assert_eq!(unknown(&shop).await, vec![event.event_id.clone()]);
    assert_eq!(
        handler.handle(&event).await.expect("again"),
        Outcome::Duplicate
    );
}

/// A send to an endpoint nobody listens on never left: it is a transient
/// failure (the claim is freed for a retry), not an unknown outcome, so a
/// redelivery to a notifier that works sends it, once.
#[tokio::test]
async fn a_refused_connection_is_transient() {
    use storefront_notification::{Message, Notifier, NotifyError};
    let nobody = || {
        let ses = aws_sdk_sesv2::Client::new(&storefront_runtime::aws::local_config(
            "http://127.0.0.1:9",
        ));
        SesNotifier::new(ses, SENDER.into())
    };
    let message = Message {
        idempotency_key: "e-1".into(),
        to: "gina@example.com".into(),
        template: "welcome",
        subject: "Hi".into(),
        body: "Hello".into(),
    };
    let outcome = nobody().send(&message).await;
    assert!(
        matches!(outcome, Err(NotifyError::Transient(_))),
        "{outcome:?}"
    );

    let (shop, event) = registered().await;
    let refused = Notifications::new(
        shop.stores.clone(),
        &common::notification_settings(),
        Arc::new(nobody()),
    );
    let handled = refused.handle(&event).await;
    assert!(
        matches!(handled, Err(HandlerError::Transient(_))),
        "{handled:?}"
    );
    assert!(unknown(&shop).await.is_empty(), "not an unknown outcome");
    let working = Notifications::new(
        shop.stores.clone(),
        &common::notification_settings(),
        Arc::new(OutboxNotifier::new(shop.stores.state.clone())),
    );
    assert_eq!(
        working.handle(&event).await.expect("sent"),
        Outcome::Handled,
        "the claim was freed"
    );
    assert_eq!(shop.outbox().await.len(), 1, "sent once");
    assert_eq!(
        working.handle(&event).await.expect("again"),
        Outcome::Duplicate
    );
}
