//! # storefront-audit
//!
//! Every event goes into an append-only, tamper-evident audit log: one hash
//! chain per day (the event's `occurredAt` date). Each record carries the
//! hash of the one before it, so altering, removing or reordering a record
//! breaks the chain, and [`verify_day`] says where.
//!
//! Layout in the state store:
//! - `audit#{day}` / `{seq:012}`: the record (seq, the event's id, type,
//!   stream, version and checksum, `prevHash`, `hash`);
//! - `audit-head#{day}` / `head`: the last seq and hash, version = seq;
//! - `audit-seen#{eventId}` / `seen`: marks an event as logged;
//! - `audit-days` / `{day}`: the days that have a chain.
//!
//! A record is written in one transaction with the head's compare-and-swap
//! and the seen-marker: two deliveries of one event cannot both be logged,
//! and two events cannot take the same seq.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use storefront_domain::envelope::write_canonical;
use storefront_domain::{EventEnvelope, EventType};
use storefront_runtime::handler::caused_by;
use storefront_runtime::{EventHandler, Globals, HandlerError, Outcome, Stores};
use storefront_store::pipeline::{self, Command, Outcome as PipelineOutcome, Plan};
use storefront_store::{Condition, StateItem, StateStore, StateWrite, StoreError};

/// The handler's name.
pub const NAME: &str = "audit";

/// Every event type: the audit log takes all of them.
pub const CONSUMES: &[EventType] = EventType::ALL;

/// The `prevHash` of a day's first record.
pub const GENESIS: &str = "genesis";

/// Partition listing the days that have a chain.
pub const DAYS: &str = "audit-days";

/// One link of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Position in the day's chain, from 1.
    pub seq: u64,
    /// The event.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// Its stream.
    pub stream_id: String,
    /// Its version.
    pub version: u64,
    /// Its checksum, so the log also vouches for the event's content.
    pub checksum: String,
    /// When it happened.
    pub occurred_at: String,
    /// The previous record's hash, or `genesis`.
    pub prev_hash: String,
    /// `sha256:` over the canonical JSON of every other field.
    pub hash: String,
}

impl AuditRecord {
    /// The hash this record should carry.
    pub fn compute_hash(&self) -> String {
        let body = serde_json::json!({
            "seq": self.seq,
            "eventId": self.event_id,
            "eventType": self.event_type,
            "streamId": self.stream_id,
            "version": self.version,
            "checksum": self.checksum,
            "occurredAt": self.occurred_at,
            "prevHash": self.prev_hash,
        });
        let mut canonical = String::new();
        write_canonical(&mut canonical, &body);
        format!(
            "sha256:{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Head {
    seq: u64,
    hash: String,
}

/// The day of an RFC 3339 timestamp (`2026-11-27`).
pub fn day_of(occurred_at: &str) -> &str {
    occurred_at.get(..10).unwrap_or(occurred_at)
}

use storefront_store::keys::{audit_head as head_key, audit_record as record_key};

/// Everything the function reads from its environment: only what every
/// function gets (`SNAPSHOT_EVERY`, `RUST_LOG`).
pub type Settings = Globals;

/// The audit handler.
#[derive(Clone)]
pub struct Audit {
    stores: Stores,
}

impl Audit {
    /// A handler on these stores, with the function's settings.
    pub fn new(stores: Stores, settings: &Settings) -> Self {
        Audit {
            stores: stores.with_snapshot_every(settings.snapshot_every),
        }
    }
}

fn put(
    pk: String,
    sk: String,
    version: u64,
    value: serde_json::Value,
    condition: Condition,
) -> StateWrite {
    StateWrite {
        item: StateItem {
            pk,
            sk,
            version,
            value,
            expires_at: None,
        },
        condition,
    }
}

#[async_trait]
impl EventHandler for Audit {
    fn name(&self) -> &'static str {
        NAME
    }

    fn consumes(&self) -> &'static [EventType] {
        CONSUMES
    }

    async fn handle(&self, envelope: &EventEnvelope) -> Result<Outcome, HandlerError> {
        let (seen_pk, seen_sk) = storefront_store::keys::audit_seen(&envelope.event_id);
        if self.stores.state.get(&seen_pk, seen_sk).await?.is_some() {
            return Ok(Outcome::Duplicate);
        }
        let day = day_of(&envelope.occurred_at).to_owned();
        let (head_pk, head_sk) = head_key(&day);
        // The "seen" record rides in the same append as the chain's new
        // record: it is this handler's idempotency record.
        let seen = |seq: &u64| {
            put(
                seen_pk.clone(),
                seen_sk.into(),
                1,
                serde_json::json!({"day": day, "seq": seq}),
                Condition::NotExists,
            )
        };
        let command = Command {
            events: &*self.stores.events,
            state: &*self.stores.state,
            meta: &|| caused_by(NAME, envelope),
            idempotency: Some(&seen),
            snapshot_every: 0,
            seed: &envelope.event_id,
        };
        let outcome = pipeline::execute(&command, || async {
            let head = self.stores.state.get(&head_pk, head_sk).await?;
            let (prev, condition) = match &head {
                Some(item) => {
                    let h: Head = serde_json::from_value(item.value.clone()).map_err(|e| {
                        HandlerError::Permanent(format!("audit head unreadable: {e}"))
                    })?;
                    (h, Condition::VersionIs(item.version))
                }
                None => (
                    Head {
                        seq: 0,
                        hash: GENESIS.into(),
                    },
                    Condition::NotExists,
                ),
            };
            let mut record = AuditRecord {
                seq: prev.seq + 1,
                event_id: envelope.event_id.clone(),
                event_type: envelope.event_type.clone(),
                stream_id: envelope.stream_id.clone(),
                version: envelope.version,
                checksum: envelope.checksum.clone(),
                occurred_at: envelope.occurred_at.clone(),
                prev_hash: prev.hash,
                hash: String::new(),
            };
            record.hash = record.compute_hash();
            let (rpk, rsk) = record_key(&day, record.seq);
            let value = serde_json::to_value(&record)
                .map_err(|e| HandlerError::Permanent(e.to_string()))?;
            let head_value = serde_json::to_value(Head {
                seq: record.seq,
                hash: record.hash.clone(),
            })
            .map_err(|e| HandlerError::Permanent(e.to_string()))?;
            Ok::<_, HandlerError>(Plan {
                changes: vec![],
                state: vec![
                    put(
                        head_pk.clone(),
                        head_sk.into(),
                        record.seq,
                        head_value,
                        condition,
                    ),
                    put(rpk, rsk, 1, value, Condition::NotExists),
                    put(
                        DAYS.into(),
                        day.clone(),
                        1,
                        serde_json::json!({}),
                        Condition::Always,
                    ),
                ],
                answer: record.seq,
            })
        })
        .await?;
        match outcome {
            PipelineOutcome::Committed(_) => Ok(Outcome::Handled),
            PipelineOutcome::Duplicate | PipelineOutcome::Unchanged(_) => Ok(Outcome::Duplicate),
            PipelineOutcome::Contended { attempts } => Err(HandlerError::Transient(format!(
                "the audit chain head kept moving over {attempts} attempts; SQS will redeliver"
            ))),
        }
    }
}

/// What is wrong with a day's chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditViolation {
    /// A record is not where the chain says one must be.
    #[error("{day}: record {seq} is missing")]
    Missing {
        /// The day.
        day: String,
        /// The missing position.
        seq: u64,
    },
    /// A record's content does not match its hash.
    #[error("{day}: record {seq} was altered (its hash does not match its content)")]
    Altered {
        /// The day.
        day: String,
        /// The altered record.
        seq: u64,
    },
    /// A record does not point at its predecessor's hash.
    #[error("{day}: record {seq} does not follow record {prev}")]
    BrokenLink {
        /// The day.
        day: String,
        /// The record.
        seq: u64,
        /// The one before.
        prev: u64,
    },
    /// The head does not match the last record.
    #[error("{day}: the chain head says {head_seq} records, the last record is {last_seq}")]
    HeadMismatch {
        /// The day.
        day: String,
        /// What the head says.
        head_seq: u64,
        /// What is there.
        last_seq: u64,
    },
    /// A stored record is not readable.
    #[error("{day}: record {key} is unreadable: {reason}")]
    Unreadable {
        /// The day.
        day: String,
        /// The record's key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Why verification could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The chain is broken.
    #[error(transparent)]
    Violation(#[from] AuditViolation),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks one day's chain: every record from 1 to the head is there, each
/// hash matches its content, each record points at the one before, and the
/// head matches the last. Returns the number of records.
pub async fn verify_day(state: &dyn StateStore, day: &str) -> Result<u64, VerifyError> {
    let (head_pk, head_sk) = head_key(day);
    let head: Option<Head> = state
        .get(&head_pk, head_sk)
        .await?
        .and_then(|i| serde_json::from_value(i.value).ok());
    let items = state.query(&storefront_store::keys::audit_day(day)).await?;
    let mut prev_hash = GENESIS.to_owned();
    let mut expected = 1u64;
    for item in &items {
        let record: AuditRecord =
            serde_json::from_value(item.value.clone()).map_err(|e| AuditViolation::Unreadable {
                day: day.into(),
                key: item.sk.clone(),
                reason: e.to_string(),
            })?;
        if record.seq != expected || item.sk != format!("{:012}", record.seq) {
            return Err(AuditViolation::Missing {
                day: day.into(),
                seq: expected,
            }
            .into());
        }
        if record.compute_hash() != record.hash {
            return Err(AuditViolation::Altered {
                day: day.into(),
                seq: record.seq,
            }
            .into());
        }
        if record.prev_hash != prev_hash {
            return Err(AuditViolation::BrokenLink {
                day: day.into(),
                seq: record.seq,
                prev: record.seq - 1,
            }
            .into());
        }
        prev_hash = record.hash;
        expected += 1;
    }
    let last = expected - 1;
    let head_seq = head.as_ref().map_or(0, |h| h.seq);
    if head_seq > last {
        return Err(AuditViolation::Missing {
            day: day.into(),
            seq: last + 1,
        }
        .into());
    }
    if head_seq != last || head.as_ref().is_some_and(|h| h.hash != prev_hash) {
        return Err(AuditViolation::HeadMismatch {
            day: day.into(),
            head_seq,
            last_seq: last,
        }
        .into());
    }
    Ok(last)
}

/// Verifies every day that has a chain; returns (day, records) per day.
pub async fn verify_all(state: &dyn StateStore) -> Result<Vec<(String, u64)>, VerifyError> {
    let mut out = Vec::new();
    for day in state.query(DAYS).await? {
        let n = verify_day(state, &day.sk).await?;
        out.push((day.sk, n));
    }
    Ok(out)
}
