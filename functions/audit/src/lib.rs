//! # storefront-audit
//!
//! Every event goes into an append-only, tamper-evident audit log: per day
//! (the event's `occurredAt` date), [`SHARDS`] hash chains, an event going
//! to the chain of its stream ([`shard_of`]). Each record carries the hash
//! of the one before it, so altering, removing or reordering a record breaks
//! its chain, and [`verify_day`] says where.
//!
//! Why shards: a chain's head is compare-and-swapped once per record, and
//! one DynamoDB partition key takes about 1,000 writes a second; with one
//! chain for the whole shop that head would cap every event the shop makes
//! and every concurrent audit invocation would race for it. With the chain
//! split by stream, each head takes 1/[`SHARDS`] of the load, and a stream's
//! events, which are the ones whose order matters, stay in one chain, in the
//! order they were audited.
//!
//! Layout in the state store:
//! - `audit#{day}#{shard}` / `{seq:012}`: the record (seq, the event's id,
//!   type, stream, version and checksum, `prevHash`, `hash`);
//! - `audit-head#{day}#{shard}` / `head`: the last seq and hash, version = seq;
//! - `audit-seen#{eventId}` / `seen`: marks an event as logged;
//! - `audit-days` / `{day}`: the days that have chains, and how many shards
//!   (written with a chain's first record only, so it is not hot either).
//!
//! A record is written in one transaction with its head's compare-and-swap
//! and the seen-marker: two deliveries of one event cannot both be logged,
//! and two events cannot take the same seq. A day written before the chain
//! was sharded (`audit#{day}`, `audit-head#{day}`) still verifies.

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
pub const DAYS: &str = storefront_store::keys::AUDIT_DAYS;

/// The number of chains per day. Part of the stored layout: a day records
/// the count it was written with, and [`verify_day`] reads it from there.
pub const SHARDS: u32 = 16;

/// The chain (of [`SHARDS`]) that audits the events of `stream_id`: the
/// first four bytes of the stream id's SHA-256, modulo [`SHARDS`], so that
/// every writer and reader agrees, whatever the process.
pub fn shard_of(stream_id: &str) -> u32 {
    let digest = Sha256::digest(stream_id.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % SHARDS
}

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
/// function gets (`SNAPSHOT_EVERY`, the log level and format).
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
        let shard = shard_of(&envelope.stream_id);
        let (head_pk, head_sk) = head_key(&day, Some(shard));
        // The "seen" record rides in the same append as the chain's new
        // record: it is this handler's idempotency record.
        let seen = |seq: &u64| {
            put(
                seen_pk.clone(),
                seen_sk.into(),
                1,
                serde_json::json!({"day": day, "shard": shard, "seq": seq}),
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
            let (rpk, rsk) = record_key(&day, Some(shard), record.seq);
            let value = serde_json::to_value(&record)
                .map_err(|e| HandlerError::Permanent(e.to_string()))?;
            let head_value = serde_json::to_value(Head {
                seq: record.seq,
                hash: record.hash.clone(),
            })
            .map_err(|e| HandlerError::Permanent(e.to_string()))?;
            let mut state = vec![
                put(
                    head_pk.clone(),
                    head_sk.into(),
                    record.seq,
                    head_value,
                    condition,
                ),
                put(rpk, rsk, 1, value, Condition::NotExists),
            ];
            if record.seq == 1 {
                // A chain's first record lists its day: once per chain, not per event.
                state.push(put(
                    DAYS.into(),
                    day.clone(),
                    1,
                    serde_json::json!({"shards": SHARDS}),
                    Condition::Always,
                ));
            }
            Ok::<_, HandlerError>(Plan {
                changes: vec![],
                state,
                answer: record.seq,
            })
        })
        .await?;
        match outcome {
            PipelineOutcome::Committed(_) => Ok(Outcome::Handled),
            PipelineOutcome::Duplicate | PipelineOutcome::Unchanged(_) => Ok(Outcome::Duplicate),
            PipelineOutcome::Contended { attempts } => Err(HandlerError::Transient(format!(
                "the audit chain's head kept moving over {attempts} attempts; SQS will redeliver"
            ))),
        }
    }
}

/// What is wrong with a day's chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditViolation {
    /// A record is not where the chain says one must be.
    #[error("{chain}: record {seq} is missing")]
    Missing {
        /// The chain: its day, and its shard after `#`.
        chain: String,
        /// The missing position.
        seq: u64,
    },
    /// A record's content does not match its hash.
    #[error("{chain}: record {seq} was altered (its hash does not match its content)")]
    Altered {
        /// The chain: its day, and its shard after `#`.
        chain: String,
        /// The altered record.
        seq: u64,
    },
    /// A record does not point at its predecessor's hash.
    #[error("{chain}: record {seq} does not follow record {prev}")]
    BrokenLink {
        /// The chain: its day, and its shard after `#`.
        chain: String,
        /// The record.
        seq: u64,
        /// The one before.
        prev: u64,
    },
    /// The head does not match the last record.
    #[error("{chain}: the chain head says {head_seq} records, the last record is {last_seq}")]
    HeadMismatch {
        /// The chain: its day, and its shard after `#`.
        chain: String,
        /// What the head says.
        head_seq: u64,
        /// What is there.
        last_seq: u64,
    },
    /// A stored record is not readable.
    #[error("{chain}: record {key} is unreadable: {reason}")]
    Unreadable {
        /// The chain: its day, and its shard after `#`.
        chain: String,
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

/// Checks every chain of one day (the shards its `audit-days` item names,
/// and the unsharded chain of data written before sharding); returns the
/// number of records. See [`verify_chain`].
pub async fn verify_day(state: &dyn StateStore, day: &str) -> Result<u64, VerifyError> {
    let shards = match state.get(DAYS, day).await? {
        Some(item) => item
            .value
            .get("shards")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
        None => 0,
    };
    let mut records = verify_chain(state, day, None).await?;
    for shard in 0..shards {
        let shard = u32::try_from(shard).map_err(|_| AuditViolation::Unreadable {
            chain: day.into(),
            key: DAYS.into(),
            reason: format!("{shards} shards"),
        })?;
        records += verify_chain(state, day, Some(shard)).await?;
    }
    Ok(records)
}

/// Checks one chain of `day`: every record from 1 to the head is there, each
/// hash matches its content, each record points at the one before, and the
/// head matches the last. Returns the number of records (0 for a chain that
/// has none).
pub async fn verify_chain(
    state: &dyn StateStore,
    day: &str,
    shard: Option<u32>,
) -> Result<u64, VerifyError> {
    let chain = match shard {
        Some(shard) => format!("{day}#{shard:02}"),
        None => day.to_owned(),
    };
    let (head_pk, head_sk) = head_key(day, shard);
    let head: Option<Head> = state
        .get(&head_pk, head_sk)
        .await?
        .and_then(|i| serde_json::from_value(i.value).ok());
    let items = state
        .query(&storefront_store::keys::audit_day(day, shard))
        .await?;
    let mut prev_hash = GENESIS.to_owned();
    let mut expected = 1u64;
    for item in &items {
        let record: AuditRecord =
            serde_json::from_value(item.value.clone()).map_err(|e| AuditViolation::Unreadable {
                chain: chain.clone(),
                key: item.sk.clone(),
                reason: e.to_string(),
            })?;
        if record.seq != expected || item.sk != format!("{:012}", record.seq) {
            return Err(AuditViolation::Missing {
                chain,
                seq: expected,
            }
            .into());
        }
        if record.compute_hash() != record.hash {
            return Err(AuditViolation::Altered {
                chain,
                seq: record.seq,
            }
            .into());
        }
        if record.prev_hash != prev_hash {
            return Err(AuditViolation::BrokenLink {
                chain,
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
            chain,
            seq: last + 1,
        }
        .into());
    }
    if head_seq != last || head.as_ref().is_some_and(|h| h.hash != prev_hash) {
        return Err(AuditViolation::HeadMismatch {
            chain,
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
