//! # storefront-notification
//!
//! Tells shoppers what happened: order created, confirmed, rejected, paid,
//! shipped or cancelled; cart abandoned; welcome on registration. Messages go
//! through a [`Notifier`] port: SES in AWS ([`SesNotifier`]), a local outbox
//! the tests and the local runtime read ([`OutboxNotifier`]). Each attempt is
//! recorded as `notification.sent` or `notification.failed` on the stream
//! `notification#{eventId}`.
//!
//! A redelivered event never sends twice. Sending is an outside side effect,
//! so it cannot ride in a transaction; instead, the Powertools layout: an
//! in-progress record (`idem#notification#{eventId}`, expiring after
//! [`IN_PROGRESS_SECONDS`]) is put with a not-exists condition before
//! sending, and replaced by a complete record in the same append as the
//! `notification.sent` event. A second delivery finds the record and stops;
//! a crash between sending and recording leaves an in-progress record that
//! expires, and the retry sends again with the same provider idempotency key
//! (the eventId), which the provider uses to drop the repeat.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use async_trait::async_trait;
use storefront_domain::events::{NotificationFailed, NotificationSent};
use storefront_domain::order::OrderState;
use storefront_domain::user::UserState;
use storefront_domain::{Event, EventEnvelope, EventType, OrderId, StreamId, seal_batch};
use storefront_runtime::handler::{
    IDEMPOTENCY_TTL_SECONDS, caused_by, decode, idempotency_key, load, stream_of,
};
use storefront_runtime::{
    Config, ConfigError, EventHandler, Globals, HandlerError, Outcome, Stores,
};
use storefront_store::clock::now_epoch_seconds;
use storefront_store::{
    AppendBatch, Condition, StateItem, StateStore, StateWrite, StoreError, StreamAppend,
};

/// The handler's name.
pub const NAME: &str = "notification";

/// The event types this handler consumes.
pub const CONSUMES: &[EventType] = &[
    EventType::OrderCreated,
    EventType::OrderConfirmed,
    EventType::OrderRejected,
    EventType::OrderPaid,
    EventType::OrderShipped,
    EventType::OrderCancelled,
    EventType::CartAbandoned,
    EventType::UserRegistered,
];

/// How long a send may be in progress before another delivery may try again.
pub const IN_PROGRESS_SECONDS: i64 = 60;

/// A message to a shopper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The causing event's id: the provider's idempotency key.
    pub idempotency_key: String,
    /// The address.
    pub to: String,
    /// The template's name, e.g. `order-confirmed`.
    pub template: &'static str,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Try again later (throttling, network).
    #[error("transient: {0}")]
    Transient(String),
    /// Will never work (bad address, rejected content).
    #[error("rejected: {0}")]
    Rejected(String),
}

/// Where messages go.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// `email`, `outbox`, ...
    fn channel(&self) -> &'static str;
    /// Sends, or recognises `message.idempotency_key` as already sent.
    async fn send(&self, message: &Message) -> Result<(), NotifyError>;
}

/// The local outbox: messages are items under `outbox` / `{idempotency key}`.
/// A repeat of the same key is dropped, like a provider's idempotency.
#[derive(Clone)]
pub struct OutboxNotifier {
    state: std::sync::Arc<dyn StateStore>,
}

use storefront_store::keys::OUTBOX;

impl OutboxNotifier {
    /// An outbox in this state store.
    pub fn new(state: std::sync::Arc<dyn StateStore>) -> Self {
        OutboxNotifier { state }
    }
}

#[async_trait]
impl Notifier for OutboxNotifier {
    fn channel(&self) -> &'static str {
        "outbox"
    }

    async fn send(&self, message: &Message) -> Result<(), NotifyError> {
        let write = StateWrite {
            item: StateItem {
                pk: OUTBOX.into(),
                sk: message.idempotency_key.clone(),
                version: 1,
                value: serde_json::json!({
                    "to": message.to, "template": message.template,
                    "subject": message.subject, "body": message.body,
                }),
                expires_at: None,
            },
            condition: Condition::NotExists,
        };
        match self.state.put(write).await {
            Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
            Err(e) => Err(NotifyError::Transient(e.to_string())),
        }
    }
}

/// Amazon SES (v2). The eventId travels as an email tag and a header so a
/// repeat can be recognised downstream; SES itself has no idempotency key,
/// which is why the in-progress record above matters.
#[derive(Clone)]
pub struct SesNotifier {
    client: aws_sdk_sesv2::Client,
    from: String,
}

impl SesNotifier {
    /// Sends from `from` (a verified SES identity).
    pub fn new(client: aws_sdk_sesv2::Client, from: String) -> Self {
        SesNotifier { client, from }
    }
}

#[async_trait]
impl Notifier for SesNotifier {
    fn channel(&self) -> &'static str {
        "email"
    }

    async fn send(&self, message: &Message) -> Result<(), NotifyError> {
        use aws_sdk_sesv2::types::{
            Body, Content, Destination, EmailContent, MessageHeader, MessageTag,
        };
        let content = |text: &str| Content::builder().data(text).charset("UTF-8").build();
        let subject =
            content(&message.subject).map_err(|e| NotifyError::Rejected(e.to_string()))?;
        let text = content(&message.body).map_err(|e| NotifyError::Rejected(e.to_string()))?;
        let header = MessageHeader::builder()
            .name("X-Storefront-Event-Id")
            .value(&message.idempotency_key)
            .build()
            .map_err(|e| NotifyError::Rejected(e.to_string()))?;
        let email = aws_sdk_sesv2::types::Message::builder()
            .subject(subject)
            .body(Body::builder().text(text).build())
            .headers(header)
            .build();
        let tag = MessageTag::builder()
            .name("eventId")
            .value(&message.idempotency_key)
            .build()
            .map_err(|e| NotifyError::Rejected(e.to_string()))?;
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&message.to).build())
            .content(EmailContent::builder().simple(email).build())
            .email_tags(tag)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let text = aws_sdk_sesv2::error::DisplayErrorContext(&e).to_string();
                match e.as_service_error() {
                    Some(s) if s.is_message_rejected() || s.is_bad_request_exception() => {
                        NotifyError::Rejected(text)
                    }
                    _ => NotifyError::Transient(text),
                }
            })
    }
}

/// Everything the notification function reads from its environment. No
/// `Default`: there is no sender to assume.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// What every function gets (`SNAPSHOT_EVERY`, `RUST_LOG`).
    pub globals: Globals,
    /// `SENDER_EMAIL` (required): the verified SES identity messages are sent from.
    pub sender_email: String,
}

impl Settings {
    /// Reads the globals and `SENDER_EMAIL`.
    pub fn from_config(config: &Config) -> Result<Settings, ConfigError> {
        Ok(Settings {
            globals: Globals::from_config(config)?,
            sender_email: config.required("SENDER_EMAIL")?.to_owned(),
        })
    }
}

/// The notification handler.
#[derive(Clone)]
pub struct Notifications {
    stores: Stores,
    notifier: std::sync::Arc<dyn Notifier>,
}

impl Notifications {
    /// A handler on these stores, with the function's settings, sending
    /// through `notifier` (SES from `settings.sender_email` in Lambda, the
    /// local outbox in the local runtime).
    pub fn new(
        stores: Stores,
        settings: &Settings,
        notifier: std::sync::Arc<dyn Notifier>,
    ) -> Self {
        Notifications {
            stores: stores.with_snapshot_every(settings.globals.snapshot_every),
            notifier,
        }
    }

    async fn user_email(&self, user_id: &str) -> Result<Option<String>, HandlerError> {
        let user = load::<UserState>(&self.stores, &stream_of("user", user_id)?)
            .await?
            .state;
        Ok(user
            .user_id
            .is_some()
            .then_some(user.email)
            .filter(|_| !user.deactivated))
    }

    async fn order_owner(
        &self,
        order_id: &OrderId,
    ) -> Result<(Option<String>, OrderState), HandlerError> {
        let order = load::<OrderState>(&self.stores, &stream_of("order", order_id.as_str())?)
            .await?
            .state;
        Ok((order.user_id.as_ref().map(|u| u.to_string()), order))
    }

    /// Who to tell what, or `None` when the event needs no message.
    async fn compose(
        &self,
        envelope: &EventEnvelope,
        event: &Event,
    ) -> Result<Option<(Option<String>, Message)>, HandlerError> {
        let money = |cents: i64, currency: &str| {
            format!("{}.{:02} {currency}", cents / 100, (cents % 100).abs())
        };
        let msg = |to: Option<String>, template: &'static str, subject: String, body: String| {
            Ok(Some((
                to,
                Message {
                    idempotency_key: envelope.event_id.clone(),
                    to: String::new(),
                    template,
                    subject,
                    body,
                },
            )))
        };
        match event {
            Event::UserRegistered(e) => msg(
                Some(e.email.clone()),
                "welcome",
                "Welcome to the storefront".into(),
                format!("Hello {}, your account is ready.", e.name),
            ),
            Event::OrderCreated(e) => {
                let to = self.user_email(e.user_id.as_str()).await?;
                msg(
                    to,
                    "order-created",
                    format!("We received order {}", e.order_id),
                    format!(
                        "Your order {} for {} is being prepared.",
                        e.order_id,
                        money(e.total_cents, e.currency.as_str())
                    ),
                )
            }
            Event::OrderConfirmed(e) => {
                self.about_order(
                    &e.order_id,
                    "order-confirmed",
                    "is confirmed: you can pay now",
                    &msg,
                )
                .await
            }
            Event::OrderRejected(e) => {
                let text = format!("could not be fulfilled: {}", e.reason);
                self.about_order(&e.order_id, "order-rejected", &text, &msg)
                    .await
            }
            Event::OrderPaid(e) => {
                self.about_order(&e.order_id, "order-paid", "is paid: thank you", &msg)
                    .await
            }
            Event::OrderShipped(e) => {
                let text = format!(
                    "has shipped with {} (tracking {})",
                    e.carrier, e.tracking_number
                );
                self.about_order(&e.order_id, "order-shipped", &text, &msg)
                    .await
            }
            Event::OrderCancelled(e) => {
                let text = if e.was_paid {
                    "was cancelled; your payment will be refunded"
                } else {
                    "was cancelled"
                };
                self.about_order(&e.order_id, "order-cancelled", text, &msg)
                    .await
            }
            Event::CartAbandoned(e) => {
                let stream = StreamId::parse(&envelope.stream_id)
                    .map_err(|e| HandlerError::Permanent(e.to_string()))?;
                let to = self.user_email(stream.aggregate_id()).await?;
                msg(
                    to,
                    "cart-abandoned",
                    "You left something in your cart".into(),
                    format!("{} item(s) are still waiting in your cart.", e.units),
                )
            }
            _ => Ok(None),
        }
    }

    async fn about_order<F>(
        &self,
        order_id: &OrderId,
        template: &'static str,
        what: &str,
        msg: &F,
    ) -> Result<Option<(Option<String>, Message)>, HandlerError>
    where
        F: Fn(
            Option<String>,
            &'static str,
            String,
            String,
        ) -> Result<Option<(Option<String>, Message)>, HandlerError>,
    {
        let (owner, _) = self.order_owner(order_id).await?;
        let to = match owner {
            Some(user) => self.user_email(&user).await?,
            None => None,
        };
        msg(
            to,
            template,
            format!("Order {order_id}"),
            format!("Your order {order_id} {what}."),
        )
    }

    async fn record(&self, envelope: &EventEnvelope, event: Event) -> Result<(), StoreError> {
        let stream = StreamId::new("notification", &envelope.event_id)
            .map_err(|e| StoreError::InvalidAppend(e.to_string()))?;
        let (pk, sk) = idempotency_key(NAME, &envelope.event_id);
        let batch = AppendBatch {
            streams: vec![StreamAppend {
                stream: stream.clone(),
                expected_version: 0,
                events: seal_batch(&stream, 0, &[event], |_| caused_by(NAME, envelope)),
            }],
            state: vec![StateWrite {
                item: StateItem {
                    pk,
                    sk,
                    version: 2,
                    value: serde_json::json!({"status": "COMPLETE"}),
                    expires_at: Some(now_epoch_seconds() + IDEMPOTENCY_TTL_SECONDS),
                },
                condition: Condition::Always,
            }],
        };
        match self.stores.events.append_batch(batch).await {
            // Already recorded by an earlier delivery.
            Ok(()) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl EventHandler for Notifications {
    fn name(&self) -> &'static str {
        NAME
    }

    fn consumes(&self) -> &'static [EventType] {
        CONSUMES
    }

    async fn handle(&self, envelope: &EventEnvelope) -> Result<Outcome, HandlerError> {
        let event = decode(envelope)?;
        let (pk, sk) = idempotency_key(NAME, &envelope.event_id);
        if let Some(existing) = self.stores.state.get(&pk, &sk).await? {
            return if existing.value["status"] == "COMPLETE" {
                Ok(Outcome::Duplicate)
            } else {
                Err(HandlerError::Transient(
                    "another delivery is sending this message".into(),
                ))
            };
        }
        let Some((to, mut message)) = self.compose(envelope, &event).await? else {
            return Ok(Outcome::Ignored);
        };
        // Claim the send.
        let claim = StateWrite {
            item: StateItem {
                pk: pk.clone(),
                sk: sk.clone(),
                version: 1,
                value: serde_json::json!({"status": "INPROGRESS"}),
                expires_at: Some(now_epoch_seconds() + IN_PROGRESS_SECONDS),
            },
            condition: Condition::NotExists,
        };
        match self.stores.state.put(claim).await {
            Ok(()) => {}
            Err(StoreError::ConditionFailed { .. }) => {
                return Err(HandlerError::Transient(
                    "another delivery claimed this message".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let channel = self.notifier.channel().to_owned();
        let result = match to {
            Some(to) => {
                message.to = to;
                self.notifier.send(&message).await
            }
            None => Err(NotifyError::Rejected(
                "no active user with an email address to send to".into(),
            )),
        };
        let recorded = match result {
            Ok(()) => Event::NotificationSent(NotificationSent {
                source_event_id: envelope.event_id.clone(),
                channel,
                template: message.template.into(),
                recipient: message.to.clone(),
            }),
            Err(NotifyError::Rejected(reason)) => Event::NotificationFailed(NotificationFailed {
                source_event_id: envelope.event_id.clone(),
                channel,
                template: message.template.into(),
                reason,
            }),
            Err(NotifyError::Transient(reason)) => {
                // Let the next delivery try at once rather than after the claim expires.
                self.stores.state.delete(&pk, &sk).await?;
                return Err(HandlerError::Transient(reason));
            }
        };
        self.record(envelope, recorded).await?;
        Ok(Outcome::Handled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SENDER_EMAIL` is required: without it the settings name it; with it
    /// the globals take their defaults.
    #[test]
    fn settings_need_a_sender() {
        let none = Config::from_pairs(Vec::<(String, String)>::new());
        assert_eq!(
            Settings::from_config(&none),
            Err(ConfigError::Missing("SENDER_EMAIL"))
        );
        let set = Config::from_pairs([("SENDER_EMAIL", "shop@example.com")]);
        assert_eq!(
            Settings::from_config(&set),
            Ok(Settings {
                globals: Globals::default(),
                sender_email: "shop@example.com".into(),
            })
        );
    }
}
