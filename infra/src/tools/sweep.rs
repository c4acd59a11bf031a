//! `storefront bench sweep`: the sweeper over a shop with many overdue
//! carts and orders (BENCHMARKS.md).
//!
//! A scratch store (an SQLite file, or fresh tables on a DynamoDB endpoint
//! such as moto) is seeded with `--carts` idle carts of one line and
//! `--orders` confirmed, unpaid orders, each with its index item, as the
//! cart handler and the saga would have left them. Then, at a clock two
//! days on (every deadline passed), the sweeper runs as its schedule would
//! run it on Lambda: invocation after invocation, each within `--budget`,
//! each resuming where the last one stopped, until one finishes. A last,
//! quiet sweep shows what a sweep costs once the work is done.
//!
//! Every store call goes through a [`Recording`], so the figures are counted,
//! not estimated: on SQLite each call is one trip to the database thread; on
//! DynamoDB each is one request (an aggregate's load is two: its snapshot's
//! `GetItem` and its tail's `Query`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use serde::Serialize;
use storefront_cart_sweeper::{Settings, SweepReport, Sweeper};
use storefront_domain::cart::{CartCommand, CartState, ProductInfo};
use storefront_domain::order::{OrderCommand, OrderState};
use storefront_domain::{
    Aggregate, Currency, EventMeta, OrderId, Sku, StreamId, UserId, seal_batch,
};
use storefront_runtime::Stores;
use storefront_store::clock::{new_event_id, now_rfc3339};
use storefront_store::dynamodb::{DynamoStore, TableNames, create_tables};
use storefront_store::keys::{AWAITING_PAYMENT, CART_ACTIVITY};
use storefront_store::recording::Recording;
use storefront_store::sqlite::SqliteStore;
use storefront_store::{
    AppendBatch, Condition, EventStore, StateItem, StateStore, StateWrite, StoreError, StreamAppend,
};

/// `bench sweep` options.
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// Idle carts (one line each) to seed.
    #[arg(long, default_value_t = 100_000)]
    pub carts: usize,
    /// Confirmed, unpaid orders to seed.
    #[arg(long, default_value_t = 10_000)]
    pub orders: usize,
    /// Each invocation's budget, as `SWEEP_BUDGET_SECONDS` gives it on Lambda.
    #[arg(long, default_value = "40s")]
    pub budget: humantime::Duration,
    /// Seed and sweep fresh tables on this DynamoDB endpoint (moto, say)
    /// instead of a scratch SQLite file.
    #[arg(long)]
    pub dynamodb_endpoint: Option<String>,
    /// Print the result as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum SweepBenchError {
    /// The scratch store could not be made or seeded.
    #[error("cannot set up the scratch store: {0}")]
    Store(#[from] StoreError),
    /// A sweep failed as a whole (an index could not be read).
    #[error("a sweep failed: {0}")]
    Sweep(#[from] storefront_runtime::HandlerError),
    /// The scratch folder could not be made.
    #[error("cannot make a scratch folder: {0}")]
    Io(#[from] std::io::Error),
}

/// One invocation of the sweeper.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Invocation {
    /// Wall time, seconds.
    pub seconds: f64,
    /// What it did.
    pub report: SweepReport,
    /// Store calls by kind (DynamoDB requests on DynamoDB).
    pub calls: BTreeMap<String, u64>,
}

/// The whole measurement.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepBench {
    /// `sqlite` or the DynamoDB endpoint.
    pub backend: String,
    /// Carts seeded.
    pub carts: usize,
    /// Orders seeded.
    pub orders: usize,
    /// Budget per invocation, seconds.
    pub budget_seconds: f64,
    /// Seeding time, seconds (not part of the sweep).
    pub seed_seconds: f64,
    /// The invocations until one finished.
    pub invocations: Vec<Invocation>,
    /// A sweep once everything was done.
    pub quiet: Invocation,
}

fn meta() -> EventMeta {
    EventMeta {
        event_id: new_event_id(),
        occurred_at: now_rfc3339(),
        correlation_id: "bench-sweep".into(),
        causation_id: None,
        actor: "system:bench".into(),
    }
}

fn index_item(pk: &str, sk: &str, version: u64, value: serde_json::Value) -> StateWrite {
    StateWrite {
        item: StateItem {
            pk: pk.into(),
            sk: sk.into(),
            version,
            value,
            expires_at: None,
        },
        condition: Condition::Always,
    }
}

fn invalid(e: impl std::fmt::Display) -> StoreError {
    StoreError::InvalidAppend(e.to_string())
}

/// An idle cart of one line, with its activity index item.
fn cart(i: usize) -> Result<AppendBatch, StoreError> {
    let user = format!("bench-cart-{i:06}");
    let sku = Sku::new("BENCH-1").map_err(invalid)?;
    let currency = Currency::new("EUR").map_err(invalid)?;
    let events = CartState::default()
        .decide(&CartCommand::AddItem {
            user_id: UserId::new(user.clone()).map_err(invalid)?,
            sku: sku.clone(),
            quantity: 1,
            product: Some(ProductInfo {
                sku,
                name: "Bench mug".into(),
                price_cents: 1000,
                currency,
                discontinued: false,
            }),
        })
        .map_err(invalid)?;
    let stream = StreamId::new("cart", &user).map_err(invalid)?;
    let sealed = seal_batch(&stream, 0, &events, |_| meta());
    let version = sealed.len() as u64;
    Ok(AppendBatch {
        streams: vec![StreamAppend {
            stream,
            expected_version: 0,
            events: sealed,
        }],
        state: vec![index_item(
            CART_ACTIVITY,
            &user,
            version,
            serde_json::json!({ "lastActivityAt": now_rfc3339(), "units": 1 }),
        )],
    })
}

/// A confirmed, unpaid order, with its awaiting-payment index item.
fn order(i: usize) -> Result<AppendBatch, StoreError> {
    let id = format!("bench-order-{i:06}");
    let created = OrderState::default()
        .decide(&OrderCommand::Create {
            order_id: OrderId::new(id.clone()).map_err(invalid)?,
            user_id: UserId::new(format!("bench-buyer-{i:06}")).map_err(invalid)?,
            lines: vec![storefront_domain::events::OrderLine {
                sku: Sku::new("BENCH-1").map_err(invalid)?,
                name: "Bench mug".into(),
                quantity: 1,
                unit_price_cents: 1000,
            }],
            currency: Currency::new("EUR").map_err(invalid)?,
            placed_at: now_rfc3339(),
        })
        .map_err(invalid)?;
    let state = created
        .iter()
        .fold(OrderState::default(), |s, e| s.evolve(e));
    let confirmed = state.decide(&OrderCommand::Confirm).map_err(invalid)?;
    let events: Vec<_> = created.into_iter().chain(confirmed).collect();
    let stream = StreamId::new("order", &id).map_err(invalid)?;
    Ok(AppendBatch {
        streams: vec![StreamAppend {
            events: seal_batch(&stream, 0, &events, |_| meta()),
            stream,
            expected_version: 0,
        }],
        state: vec![index_item(
            AWAITING_PAYMENT,
            &id,
            1,
            serde_json::json!({ "confirmedAt": now_rfc3339() }),
        )],
    })
}

async fn seed(events: &dyn EventStore, carts: usize, orders: usize) -> Result<(), StoreError> {
    let batches = (0..orders)
        .map(order)
        .chain((0..carts).map(cart))
        .collect::<Result<Vec<_>, _>>()?;
    let mut appends = futures::stream::iter(batches)
        .map(|batch| events.append_batch(batch))
        .buffer_unordered(16);
    while let Some(done) = appends.next().await {
        done?;
    }
    Ok(())
}

fn named(calls: BTreeMap<storefront_store::iam::PortCall, u64>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (call, n) in calls {
        let name = match call {
            storefront_store::iam::PortCall::Append { .. } => "append".to_owned(),
            other => format!("{other:?}").to_lowercase(),
        };
        *out.entry(name).or_default() += n;
    }
    out
}

fn minus(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Seeds, sweeps until done, then sweeps once more.
pub async fn run(args: &SweepArgs) -> Result<SweepBench, SweepBenchError> {
    let scratch = tempfile::tempdir()?;
    let (backend, events, state): (String, Arc<dyn EventStore>, Arc<dyn StateStore>) =
        match &args.dynamodb_endpoint {
            Some(endpoint) => {
                let sdk = storefront_runtime::aws::local_config(endpoint);
                let client = storefront_runtime::aws::dynamodb(&sdk);
                let suffix = new_event_id();
                let tables = TableNames {
                    events: format!("bench-events-{suffix}"),
                    state: format!("bench-state-{suffix}"),
                };
                create_tables(&client, &tables).await?;
                let store = Arc::new(DynamoStore::new(client, tables));
                (endpoint.clone(), store.clone(), store)
            }
            None => {
                let path: PathBuf = scratch.path().join("sweep.db");
                let store = Arc::new(SqliteStore::open(path)?);
                ("sqlite".into(), store.clone(), store)
            }
        };
    let started = Instant::now();
    seed(&*events, args.carts, args.orders).await?;
    let seed_seconds = started.elapsed().as_secs_f64();

    let recording = Recording::new(events, state);
    let budget: Duration = args.budget.into();
    let sweeper = Sweeper::new(
        Stores {
            events: recording.clone(),
            state: recording.clone(),
            snapshot_every: storefront_runtime::settings::DEFAULT_SNAPSHOT_EVERY,
        },
        &Settings {
            budget,
            ..Settings::default()
        },
    );
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        + 2 * 86_400;
    let invoke = || async {
        let before = named(recording.calls());
        let started = Instant::now();
        let report = sweeper.sweep_within(later, budget).await?;
        Ok::<_, SweepBenchError>(Invocation {
            seconds: started.elapsed().as_secs_f64(),
            report,
            calls: minus(&named(recording.calls()), &before),
        })
    };
    let mut invocations = Vec::new();
    loop {
        let invocation = invoke().await?;
        let more = invocation.report.stopped_early;
        invocations.push(invocation);
        if !more {
            break;
        }
    }
    let quiet = invoke().await?;
    Ok(SweepBench {
        backend,
        carts: args.carts,
        orders: args.orders,
        budget_seconds: budget.as_secs_f64(),
        seed_seconds,
        invocations,
        quiet,
    })
}

fn calls_text(calls: &BTreeMap<String, u64>) -> String {
    let total: u64 = calls.values().sum();
    let parts: Vec<String> = calls.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!("{total} ({})", parts.join(", "))
}

/// The result as text.
pub fn render(bench: &SweepBench) -> String {
    let mut out = format!(
        "sweep over {} idle carts and {} unpaid orders on {} (seeded in {:.1} s), budget {:.0} s per invocation\n",
        bench.carts, bench.orders, bench.backend, bench.seed_seconds, bench.budget_seconds
    );
    let mut total_seconds = 0.0;
    let mut total_calls: BTreeMap<String, u64> = BTreeMap::new();
    for (i, inv) in bench.invocations.iter().enumerate() {
        total_seconds += inv.seconds;
        for (k, v) in &inv.calls {
            *total_calls.entry(k.clone()).or_default() += v;
        }
        out.push_str(&format!(
            "  invocation {}: {:.1} s, {} carts abandoned, {} orders expired, {} failures{}, store calls {}\n",
            i + 1,
            inv.seconds,
            inv.report.carts_abandoned,
            inv.report.orders_expired,
            inv.report.failures,
            if inv.report.stopped_early {
                ", stopped early"
            } else {
                ""
            },
            calls_text(&inv.calls)
        ));
    }
    out.push_str(&format!(
        "  all: {:.1} s in {} invocations, store calls {}\n",
        total_seconds,
        bench.invocations.len(),
        calls_text(&total_calls)
    ));
    out.push_str(&format!(
        "  the next sweep (nothing due): {:.3} s, store calls {}\n",
        bench.quiet.seconds,
        calls_text(&bench.quiet.calls)
    ));
    out
}
