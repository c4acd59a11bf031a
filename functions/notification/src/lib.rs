//! # storefront-notification
//!
//! Tells shoppers what happened: order created, confirmed, rejected, paid,
//! shipped or cancelled; cart abandoned; welcome on registration. Messages go
//! through a [`Notifier`] port: SES in AWS ([`SesNotifier`]), a local outbox
//! the tests and the local runtime read ([`OutboxNotifier`]). Each attempt is
//! recorded as `notification.sent` or `notification.failed` on the stream
//! `notification#{eventId}`.
//!
//! One email per event, as far as the provider allows. Sending is an outside
//! side effect, so it cannot ride in a transaction; instead, the Powertools
//! layout: a claim (`idem#notification#{eventId}`, in progress since a
//! time) is put with a not-exists condition before sending, and replaced by
//! a complete record in the same append as the `notification.sent` event.
//! Both live [`RECORD_TTL_SECONDS`], past every redelivery and past the DLQ's
//! 14-day retention, so no delivery or redrive finds the key forgotten.
//!
//! A send whose outcome is unknown is never resent blindly: when the request
//! may have reached SES but no answer came (a timeout, a cut connection), or
//! when a later delivery finds a claim older than [`SEND_WINDOW_SECONDS`]
//! (the sender died mid-send), the key is marked unknown, counted
//! (`NotificationsUnknown`, alarmed in template.yaml) and listed in
//! [`storefront_store::keys::UNKNOWN_SENDS`] for an operator
//! (`storefront notifications unknown`). Only a send that surely did not
//! leave (throttled, refused before sending) frees its claim for a retry.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use async_trait::async_trait;
use storefront_domain::events::{NotificationFailed, NotificationSent};
use storefront_domain::order::OrderState;
use storefront_domain::user::UserState;
use storefront_domain::{Event, EventEnvelope, EventType, OrderId, StreamId, seal_batch};
use storefront_runtime::handler::{caused_by, decode, idempotency_key, load, stream_of};
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

/// How long a send may be in progress: past this, a claim still in
/// progress means its sender died while sending (the function's timeout is
/// far shorter), and the outcome is unknown.
pub const SEND_WINDOW_SECONDS: i64 = 120;

/// How long a claim or a completion record is kept: longer than any
/// redelivery (visibility timeout × maxReceiveCount) and than the DLQ's
/// 14-day retention, so a redrive never finds the key forgotten.
pub const RECORD_TTL_SECONDS: i64 = 15 * 24 * 3600;

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
    /// The request may have reached the provider but no answer came (a
    /// timeout, a cut connection): it may or may not have been sent.
    #[error("outcome unknown: {0}")]
    Unknown(String),
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

use storefront_store::keys::{OUTBOX, UNKNOWN_SENDS};

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
        // No retry by the SDK: a send resent after a lost answer could mail
        // twice; an unknown outcome is recorded instead (see the crate doc).
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&message.to).build())
            .content(EmailContent::builder().simple(email).build())
            .email_tags(tag)
            .customize()
            .config_override(
                aws_sdk_sesv2::config::Builder::default()
                    .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::disabled()),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                use aws_sdk_sesv2::error::SdkError;
                let text = aws_sdk_sesv2::error::DisplayErrorContext(&e).to_string();
                match &e {
                    SdkError::ServiceError(s)
                        if s.err().is_message_rejected() || s.err().is_bad_request_exception() =>
                    {
                        NotifyError::Rejected(text)
                    }
                    // SES answered: whatever it said, it did not send.
                    SdkError::ServiceError(_) | SdkError::ConstructionFailure(_) => {
                        NotifyError::Transient(text)
                    }
                    // No connection could be made, or the request could
                    // not be built: it never left.
                    SdkError::DispatchFailure(d) if d.is_io() || d.is_user() => {
                        NotifyError::Transient(text)
                    }
                    // It may have left (a timeout, a connection cut before
                    // the answer) and no readable answer came back.
                    _ => NotifyError::Unknown(text),
                }
            })
    }
}

/// Everything the notification function reads from its environment. No
/// `Default`: there is no sender to assume.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// What every function gets (`SNAPSHOT_EVERY`, the log level and format).
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

    /// Marks the send of `envelope` as of unknown outcome: never resent,
    /// counted and listed for an operator.
    async fn mark_unknown(&self, envelope: &EventEnvelope, reason: &str) -> Result<(), StoreError> {
        let (pk, sk) = idempotency_key(NAME, &envelope.event_id);
        let value = serde_json::json!({"status": "UNKNOWN", "reason": reason, "eventType": envelope.event_type});
        let expires_at = Some(now_epoch_seconds() + RECORD_TTL_SECONDS);
        self.stores
            .events
            .append_batch(AppendBatch {
                streams: vec![],
                state: vec![
                    StateWrite {
                        item: StateItem {
                            pk,
                            sk,
                            version: 2,
                            value: value.clone(),
                            expires_at,
                        },
                        condition: Condition::Always,
                    },
                    StateWrite {
                        item: StateItem {
                            pk: UNKNOWN_SENDS.into(),
                            sk: envelope.event_id.clone(),
                            version: 1,
                            value,
                            expires_at,
                        },
                        condition: Condition::Always,
                    },
                ],
            })
            .await?;
        metrics::counter!("NotificationsUnknown").increment(1);
        tracing::error!(event_id = %envelope.event_id, reason, "notification outcome unknown; not resent (storefront notifications unknown)");
        Ok(())
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
                    expires_at: Some(now_epoch_seconds() + RECORD_TTL_SECONDS),
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
            return match existing.value["status"].as_str() {
                Some("COMPLETE") | Some("UNKNOWN") => Ok(Outcome::Duplicate),
                _ if existing.value["since"]
                    .as_i64()
                    .is_some_and(|since| since + SEND_WINDOW_SECONDS < now_epoch_seconds()) =>
                {
                    // Its sender died mid-send: it may or may not have gone out.
                    self.mark_unknown(envelope, "an earlier delivery stopped while sending")
                        .await?;
                    Ok(Outcome::Handled)
                }
                _ => Err(HandlerError::Transient(
                    "another delivery is sending this message".into(),
                )),
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
                value: serde_json::json!({"status": "INPROGRESS", "since": now_epoch_seconds()}),
                expires_at: Some(now_epoch_seconds() + RECORD_TTL_SECONDS),
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
                // It surely did not leave: let the next delivery try at once.
                self.stores.state.delete(&pk, &sk).await?;
                return Err(HandlerError::Transient(reason));
            }
            Err(NotifyError::Unknown(reason)) => {
                self.mark_unknown(envelope, &reason).await?;
                return Ok(Outcome::Handled);
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
