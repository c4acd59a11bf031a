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

use std::collections::BTreeSet;

use async_trait::async_trait;
use storefront_domain::user::UserState;
use storefront_domain::{EventEnvelope, EventType};
use storefront_runtime::handler::{consumed_stream, project};
use storefront_runtime::{EventHandler, Globals, HandlerError, Outcome, Projection, Stores};
use storefront_store::{Condition, StateItem, StateWrite};

/// The handler's name.
pub const NAME: &str = "user";

/// The event types this handler consumes.
pub const CONSUMES: &[EventType] = &[
    EventType::UserRegistered,
    EventType::UserProfileUpdated,
    EventType::UserDeactivated,
];

use storefront_store::keys::{USER_DIRECTORY as DIRECTORY, user_view as view_key};

/// Everything the function reads from its environment: only what every
/// function gets (`SNAPSHOT_EVERY`, the log level and format).
pub type Settings = Globals;

/// The user handler.
#[derive(Clone)]
pub struct Users {
    stores: Stores,
}

impl Users {
    /// A handler on these stores, with the function's settings.
    pub fn new(stores: Stores, settings: &Settings) -> Self {
        Users {
            stores: stores.with_snapshot_every(settings.snapshot_every),
        }
    }
}

#[async_trait]
impl EventHandler for Users {
    fn name(&self) -> &'static str {
        NAME
    }

    fn projection(&self) -> Option<&dyn Projection> {
        Some(self)
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

#[async_trait]
impl Projection for Users {
    /// Every profile view and its directory item.
    async fn reset(&self, streams: &BTreeSet<String>) -> Result<(), HandlerError> {
        for user in streams.iter().filter_map(|s| s.strip_prefix("user#")) {
            let (pk, sk) = view_key(user);
            self.stores.state.delete(&pk, sk).await?;
            self.stores.state.delete(DIRECTORY, user).await?;
        }
        Ok(())
    }
}
