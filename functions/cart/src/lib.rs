//! # storefront-cart
//!
//! Cart views for queries, and the activity index the sweeper reads to find
//! abandoned carts.
//!
//! Each cart event catches the cart's view up with the store (the events
//! after the view's version, folded, written with compare-and-swap), so
//! duplicates and out-of-order deliveries change nothing and a late event
//! never rolls the view back. The activity item (`activity#carts` /
//! `{userId}`) carries the time of the last change that was not itself an
//! abandonment, and how many units the cart holds; it is written in the same
//! transaction as the view.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::BTreeSet;

use async_trait::async_trait;
use storefront_domain::cart::CartState;
use storefront_domain::{EventEnvelope, EventType};
use storefront_runtime::handler::{consumed_stream, project};
use storefront_runtime::{EventHandler, Globals, HandlerError, Outcome, Projection, Stores};
use storefront_store::{Condition, StateItem, StateWrite};

/// The handler's name.
pub const NAME: &str = "cart";

/// The event types this handler consumes.
pub const CONSUMES: &[EventType] = &[
    EventType::CartCreated,
    EventType::CartItemAdded,
    EventType::CartItemRemoved,
    EventType::CartItemQuantityChanged,
    EventType::CartCleared,
    EventType::CartCheckedOut,
    EventType::CartAbandoned,
];

use storefront_store::keys::{CART_ACTIVITY as ACTIVITY, cart_view as view_key};

/// Everything the function reads from its environment: only what every
/// function gets (`SNAPSHOT_EVERY`, the log level and format).
pub type Settings = Globals;

/// The cart views handler.
#[derive(Clone)]
pub struct CartViews {
    stores: Stores,
}

impl CartViews {
    /// A handler on these stores, with the function's settings.
    pub fn new(stores: Stores, settings: &Settings) -> Self {
        CartViews {
            stores: stores.with_snapshot_every(settings.snapshot_every),
        }
    }
}

fn activity(user_id: &str, cart: &CartState, tail: &[EventEnvelope]) -> Vec<StateWrite> {
    let last_activity = tail
        .iter()
        .filter(|e| e.event_type != EventType::CartAbandoned.name())
        .map(|e| e.occurred_at.as_str())
        .max();
    match last_activity {
        Some(at) => vec![StateWrite {
            item: StateItem {
                pk: ACTIVITY.into(),
                sk: user_id.to_owned(),
                version: cart.version,
                value: serde_json::json!({
                    "lastActivityAt": at,
                    "units": cart.lines.iter().map(|l| l.quantity).sum::<u32>(),
                }),
                expires_at: None,
            },
            condition: Condition::Always,
        }],
        None => vec![],
    }
}

#[async_trait]
impl EventHandler for CartViews {
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
        project::<CartState>(
            &*self.stores.events,
            &*self.stores.state,
            &stream,
            (&pk, sk),
            |cart, tail| activity(&user_id, cart, tail),
        )
        .await
    }
}

/// Reads a cart view (None before the cart's first event is projected).
pub async fn read_view(
    stores: &Stores,
    user_id: &str,
) -> Result<Option<(u64, CartState)>, HandlerError> {
    let (pk, sk) = view_key(user_id);
    match stores.state.get(&pk, sk).await? {
        Some(item) => Ok(serde_json::from_value(item.value)
            .ok()
            .map(|c| (item.version, c))),
        None => Ok(None),
    }
}

#[async_trait]
impl Projection for CartViews {
    /// Every cart's view and its activity index item.
    async fn reset(&self, streams: &BTreeSet<String>) -> Result<(), HandlerError> {
        for user in streams.iter().filter_map(|s| s.strip_prefix("cart#")) {
            let (pk, sk) = view_key(user);
            self.stores.state.delete(&pk, sk).await?;
            self.stores.state.delete(ACTIVITY, user).await?;
        }
        Ok(())
    }
}
