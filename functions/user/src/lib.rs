//! # storefront-user
//!
//! The user profile view and the user directory. Each user event catches the
//! profile view (`view#user#{id}`) up with the store, so duplicates and
//! out-of-order deliveries change nothing; the directory item (`users` /
//! `{id}`) is written in the same transaction.
//!
//! The welcome flow: `user.registered` is also consumed by the notification
//! handler, which sends the welcome message exactly once (and records
//! `notification.sent`); this handler puts the new user in the directory.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use async_trait::async_trait;
use storefront_domain::user::UserState;
use storefront_domain::{EventEnvelope, EventType};
use storefront_runtime::handler::{consumed_stream, project};
use storefront_runtime::{Config, ConfigError, EventHandler, HandlerError, Outcome, Stores};
use storefront_store::{Condition, StateItem, StateWrite};

/// The handler's name.
pub const NAME: &str = "user";

/// The event types this handler consumes.
pub const CONSUMES: &[EventType] = &[
    EventType::UserRegistered,
    EventType::UserProfileUpdated,
    EventType::UserDeactivated,
];

/// Partition of the user directory (sort key: user id).
pub const DIRECTORY: &str = "users";

/// The profile view's key.
pub fn view_key(user_id: &str) -> (String, &'static str) {
    (format!("view#user#{user_id}"), "profile")
}

/// The user handler.
#[derive(Clone)]
pub struct Users {
    stores: Stores,
}

impl Users {
    /// A handler on these stores.
    pub fn new(stores: Stores) -> Self {
        Users { stores }
    }

    /// From the function's environment.
    pub fn from_config(
        config: &Config,
        sdk: &storefront_runtime::aws::SdkConfig,
    ) -> Result<Self, ConfigError> {
        Ok(Users::new(storefront_runtime::lambda::dynamo_stores(
            config, sdk,
        )?))
    }
}

#[async_trait]
impl EventHandler for Users {
    fn name(&self) -> &'static str {
        NAME
    }

    fn consumes(&self) -> &'static [EventType] {
        CONSUMES
    }

    async fn handle(&self, envelope: &EventEnvelope) -> Result<Outcome, HandlerError> {
        let Some(stream) = consumed_stream(CONSUMES, envelope)? else {
            return Ok(Outcome::Ignored);
        };
        let user_id = stream.aggregate_id().to_owned();
        let (pk, sk) = view_key(&user_id);
        project::<UserState>(
            &*self.stores.events,
            &*self.stores.state,
            &stream,
            (&pk, sk),
            |user, _| {
                let value = serde_json::json!({
                    "email": user.email,
                    "name": user.name,
                    "status": if user.deactivated { "deactivated" } else { "active" },
                });
                vec![StateWrite {
                    item: StateItem {
                        pk: DIRECTORY.into(),
                        sk: user_id.clone(),
                        version: user.version,
                        value,
                        expires_at: None,
                    },
                    condition: Condition::Always,
                }]
            },
        )
        .await
    }
}
