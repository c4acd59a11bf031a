//! Every key of the state table, built here and nowhere else.
//!
//! The state table holds many kinds of item side by side (views, indexes,
//! idempotency records, snapshots, the audit chain, the outbox); each kind's
//! partition and sort keys are spelled once, in this module, so a writer and
//! a reader can never disagree on where an item lives, and the whole layout
//! reads in one place:
//!
//! | item | pk | sk |
//! | --- | --- | --- |
//! | snapshot of a stream | `snapshot#{stream}` | `snapshot` |
//! | a handler's idempotency record | `idem#{handler}#{eventId}` | `done` |
//! | an API request's recorded answer | `idem#api#{caller}#{key}` | `response` |
//! | catalogue index | `catalog` | sku |
//! | a shopper's orders / every order | `orders#{user}` / `orders#all` | order id |
//! | cart view | `view#cart#{user}` | `cart` |
//! | cart activity index | `activity#carts` | user |
//! | profile view | `view#user#{user}` | `profile` |
//! | user directory | `users` | user |
//! | placed orders not yet confirmed | `awaiting-confirmation` | order id |
//! | confirmed, unpaid orders | `awaiting-payment` | order id |
//! | where the sweeper stopped in an index | `sweep-cursors` | the index's pk |
//! | analytics per order / per cart | `analytics#orders` / `analytics#carts` | order id / user |
//! | audit chain record / head / days / seen | `audit#{day}#{shard}` / `audit-head#{day}#{shard}` / `audit-days` / `audit-seen#{eventId}` | seq / `head` / day / `seen` |
//! | notification outbox | `outbox` | idempotency key |
//! | notifications of unknown outcome | `notifications#unknown` | event id |

use storefront_domain::StreamId;

/// A (partition key, sort key) pair.
pub type Key = (String, &'static str);

/// The snapshot of `stream`.
pub fn snapshot(stream: &StreamId) -> Key {
    (format!("snapshot#{stream}"), "snapshot")
}

/// The idempotency record of `handler` for the event `event_id`.
pub fn handled(handler: &str, event_id: &str) -> Key {
    (format!("idem#{handler}#{event_id}"), "done")
}

/// The recorded answer to an API request with an `Idempotency-Key`, scoped to its caller.
pub fn api_request(caller: &str, key: &str) -> Key {
    (
        format!("{API_REQUEST_PREFIX}{caller}#{key}"),
        API_REQUEST_SK,
    )
}

/// What every recorded API answer's partition key starts with.
pub const API_REQUEST_PREFIX: &str = "idem#api#";

/// The sort key of every recorded API answer.
pub const API_REQUEST_SK: &str = "response";

/// The catalogue index (sort key: sku).
pub const CATALOG: &str = "catalog";

/// Every order (sort key: order id).
pub const ALL_ORDERS: &str = "orders#all";

/// A shopper's orders (sort key: order id).
pub fn orders_of(user_id: &str) -> String {
    format!("orders#{user_id}")
}

/// A shopper's cart view.
pub fn cart_view(user_id: &str) -> Key {
    (format!("view#cart#{user_id}"), "cart")
}

/// The cart activity index (sort key: user id), which the sweeper reads.
pub const CART_ACTIVITY: &str = "activity#carts";

/// A user's profile view.
pub fn user_view(user_id: &str) -> Key {
    (format!("view#user#{user_id}"), "profile")
}

/// The user directory (sort key: user id).
pub const USER_DIRECTORY: &str = "users";

/// Orders placed and not yet confirmed or rejected (sort key: order id;
/// value `{"placedAt": ...}`), written with the order's creation and read
/// by the sweeper, which rejects the ones still pending past their deadline.
pub const AWAITING_CONFIRMATION: &str = "awaiting-confirmation";

/// Where a sweep that ran out of time stopped in each index (sort key: the
/// index's partition key; value `{"after": sk}`), so the next one resumes there.
pub const SWEEP_CURSORS: &str = "sweep-cursors";

/// Confirmed orders awaiting payment (sort key: order id), which the sweeper reads.
pub const AWAITING_PAYMENT: &str = "awaiting-payment";

/// The analytics items per order (sort key: order id).
pub const ANALYTICS_ORDERS: &str = "analytics#orders";

/// The analytics items per cart (sort key: user id).
pub const ANALYTICS_CARTS: &str = "analytics#carts";

/// Record `seq` of the audit chain of `day`, shard `shard` (`None`: the
/// single chain per day that data written before the chain was sharded has).
pub fn audit_record(day: &str, shard: Option<u32>, seq: u64) -> (String, String) {
    (audit_day(day, shard), format!("{seq:012}"))
}

/// The partition of one audit chain of `day` (sort key: zero-padded seq):
/// `audit#{day}#{shard:02}`, or `audit#{day}` for the unsharded chain.
pub fn audit_day(day: &str, shard: Option<u32>) -> String {
    match shard {
        Some(shard) => format!("audit#{day}#{shard:02}"),
        None => format!("audit#{day}"),
    }
}

/// The head of one audit chain of `day` (see [`audit_day`]).
pub fn audit_head(day: &str, shard: Option<u32>) -> Key {
    match shard {
        Some(shard) => (format!("audit-head#{day}#{shard:02}"), "head"),
        None => (format!("audit-head#{day}"), "head"),
    }
}

/// The days that have an audit chain (sort key: day; value: the number of
/// shards, `{"shards": n}`).
pub const AUDIT_DAYS: &str = "audit-days";

/// The audit handler's record that it chained `event_id`.
pub fn audit_seen(event_id: &str) -> Key {
    (format!("audit-seen#{event_id}"), "seen")
}

/// The notification outbox (sort key: the message's idempotency key).
pub const OUTBOX: &str = "outbox";

/// Notifications whose send has an unknown outcome (sort key: the event id),
/// for an operator to check with the provider.
pub const UNKNOWN_SENDS: &str = "notifications#unknown";
