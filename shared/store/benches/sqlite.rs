//! The SQLite store (the local runtime's): appending one event, and how the
//! cost of loading an aggregate grows with its stream's length, folded from
//! the start or from a snapshot (10, 1,000 and 100,000 events). Run with
//! `cargo bench -p storefront-store`; figures in BENCHMARKS.md.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use storefront_domain::product::{ProductCommand, ProductState};
use storefront_domain::{Aggregate, Currency, Event, EventMeta, Sku, StreamId, seal_batch};
use storefront_store::aggregate::{load, load_full, save_snapshot};
use storefront_store::sqlite::SqliteStore;
use storefront_store::{AppendBatch, EventStore, StreamAppend};

/// Event ids are unique across the whole database.
static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

fn meta(_: usize) -> EventMeta {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    EventMeta {
        event_id: format!("0190f3c2-7a6b-7c3d-8e9f-{n:012x}"),
        occurred_at: "2026-11-27T10:00:00.000Z".into(),
        correlation_id: "req-0190f3c2".into(),
        causation_id: None,
        actor: "admin".into(),
    }
}

/// `n` events of a product: created, then stock adjusted up and down.
fn product_events(n: usize) -> Vec<Event> {
    let mut state = ProductState::default();
    let mut events = Vec::with_capacity(n);
    let mut step = 0i64;
    while events.len() < n {
        let command = if step == 0 {
            ProductCommand::Create {
                sku: Sku::new("MUG-1").unwrap(),
                name: "Mug".into(),
                price_cents: 1_250,
                currency: Currency::new("EUR").unwrap(),
                stock: 100,
            }
        } else {
            ProductCommand::AdjustStock {
                delta: if step % 2 == 0 { 3 } else { -2 },
                reason: "stock count".into(),
            }
        };
        step += 1;
        let decided = state.decide(&command).unwrap();
        state = state.fold(decided.iter());
        events.extend(decided);
    }
    events.truncate(n);
    events
}

/// Writes `events` to `stream` in batches of 100 (the transaction limit).
async fn write_stream(store: &SqliteStore, stream: &StreamId, events: &[Event]) {
    let mut version = 0u64;
    for chunk in events.chunks(100) {
        let sealed = seal_batch(stream, version, chunk, |i| meta(version as usize + i));
        store
            .append_batch(AppendBatch {
                streams: vec![StreamAppend {
                    stream: stream.clone(),
                    expected_version: version,
                    events: sealed,
                }],
                state: vec![],
            })
            .await
            .unwrap();
        version += chunk.len() as u64;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn append(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.db")).unwrap();
    let stream = StreamId::new("product", "MUG-1").unwrap();
    let events = product_events(2);
    let mut version = 0u64;
    rt.block_on(write_stream(&store, &stream, &events[..1]));
    version += 1;

    let mut g = c.benchmark_group("sqlite_append");
    g.throughput(Throughput::Elements(1));
    // One event per append, as a single-event command writes it: the
    // envelope is sealed before the clock starts.
    g.bench_function("one event, file-backed WAL", |b| {
        b.iter_custom(|iters| {
            let sealed: Vec<_> = (0..iters)
                .map(|i| {
                    seal_batch(&stream, version + i, &events[1..2], |_| {
                        meta((version + i) as usize)
                    })
                })
                .collect();
            let start = Instant::now();
            rt.block_on(async {
                for envelopes in sealed {
                    store.append(&stream, version, envelopes).await.unwrap();
                    version += 1;
                }
            });
            start.elapsed()
        })
    });
    g.finish();
}

fn load_growth(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.db")).unwrap();
    let mut g = c.benchmark_group("sqlite_load");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    for n in [10usize, 1_000, 100_000] {
        let full = StreamId::new("product", &format!("FULL-{n}")).unwrap();
        let snap = StreamId::new("product", &format!("SNAP-{n}")).unwrap();
        let events = product_events(n);
        rt.block_on(async {
            write_stream(&store, &full, &events).await;
            write_stream(&store, &snap, &events).await;
            // With SNAPSHOT_EVERY=100 a stream is on average 50 events past
            // its last snapshot; below 100 events it has none.
            if n >= 100 {
                let at = n - 50;
                let state = ProductState::default().fold(events[..at].iter());
                save_snapshot(&store, &snap, &state, at as u64)
                    .await
                    .unwrap();
            }
        });
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("no snapshot", n), &full, |b, s| {
            b.iter(|| {
                rt.block_on(load_full::<ProductState>(&store, black_box(s)))
                    .unwrap()
            })
        });
        g.bench_with_input(BenchmarkId::new("snapshot 50 back", n), &snap, |b, s| {
            b.iter(|| {
                rt.block_on(load::<ProductState>(&store, &store, black_box(s)))
                    .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, append, load_growth);
criterion_main!(benches);
