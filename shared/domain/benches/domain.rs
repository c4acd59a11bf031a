//! Hot paths of the pure domain: deciding and evolving over a 1,000-event
//! cart stream, and the envelope (seal = encode + checksum; JSON out and in;
//! verify + typed decode). Run with `cargo bench -p storefront-domain`;
//! figures and what dominates them are in BENCHMARKS.md.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use storefront_domain::cart::{CartCommand, CartState, ProductInfo};
use storefront_domain::{
    Aggregate, Currency, Event, EventEnvelope, EventMeta, OrderId, Sku, StreamId, UserId,
    seal_batch,
};

const STREAM_LEN: usize = 1_000;

fn meta(n: usize) -> EventMeta {
    EventMeta {
        event_id: format!("0190f3c2-7a6b-7c3d-8e9f-{n:012x}"),
        occurred_at: "2026-11-27T10:00:00.000Z".into(),
        correlation_id: "req-0190f3c2".into(),
        causation_id: None,
        actor: "u-bench".into(),
    }
}

fn product(n: usize) -> ProductInfo {
    ProductInfo {
        sku: Sku::new(format!("SKU-{n}")).unwrap(),
        name: format!("Product {n}"),
        price_cents: 1_250 + n as i64,
        currency: Currency::new("EUR").unwrap(),
        discontinued: false,
    }
}

/// The next command a busy shopper sends to a cart in `state`: add items until
/// five lines, change a quantity, remove a line, check out every 50th step.
fn next_command(state: &CartState, step: usize) -> CartCommand {
    if step % 50 == 49 && !state.lines.is_empty() {
        return CartCommand::Checkout {
            order_id: OrderId::new(format!("o-{step}")).unwrap(),
        };
    }
    if state.lines.len() >= 5 {
        let sku = state.lines[step % state.lines.len()].sku.clone();
        if step.is_multiple_of(3) {
            return CartCommand::RemoveItem { sku };
        }
        return CartCommand::ChangeQuantity {
            sku,
            quantity: (step % 7 + 1) as i64,
        };
    }
    let p = product(step % 11);
    CartCommand::AddItem {
        user_id: UserId::new("u-bench").unwrap(),
        sku: p.sku.clone(),
        quantity: 1,
        product: Some(p),
    }
}

/// The commands and the 1,000 events they decide, from an empty cart.
fn cart_history() -> (Vec<CartCommand>, Vec<Event>) {
    let mut state = CartState::default();
    let mut commands = Vec::new();
    let mut events = Vec::new();
    let mut step = 0;
    while events.len() < STREAM_LEN {
        let command = next_command(&state, step);
        step += 1;
        let Ok(decided) = state.decide(&command) else {
            continue;
        };
        state = state.fold(decided.iter());
        commands.push(command);
        events.extend(decided);
    }
    events.truncate(STREAM_LEN);
    (commands, events)
}

fn decide_evolve(c: &mut Criterion) {
    let (commands, events) = cart_history();
    let stream = StreamId::new("cart", "u-bench").unwrap();
    let envelopes = seal_batch(&stream, 0, &events, meta);
    let mut g = c.benchmark_group("cart_1000_events");
    g.throughput(Throughput::Elements(STREAM_LEN as u64));
    g.bench_function("evolve_fold", |b| {
        b.iter(|| CartState::default().fold(black_box(&events).iter()))
    });
    g.bench_function("decide_then_evolve", |b| {
        b.iter(|| {
            let mut state = CartState::default();
            for command in black_box(&commands) {
                if let Ok(decided) = state.decide(command) {
                    state = state.fold(decided.iter());
                }
            }
            state
        })
    });
    // What a load does with a stream read from the store: verify every
    // checksum, decode the typed event, evolve.
    g.bench_function("verify_decode_evolve", |b| {
        b.iter(|| {
            let mut state = CartState::default();
            for envelope in black_box(&envelopes) {
                state = state.evolve(&envelope.decode().unwrap());
            }
            state
        })
    });
    g.finish();
}

fn envelope(c: &mut Criterion) {
    let stream = StreamId::new("cart", "u-bench").unwrap();
    let p = product(3);
    let event = CartState::default()
        .decide(&CartCommand::AddItem {
            user_id: UserId::new("u-bench").unwrap(),
            sku: p.sku.clone(),
            quantity: 2,
            product: Some(p),
        })
        .unwrap()
        .pop()
        .unwrap();
    let m = meta(7);
    let sealed = EventEnvelope::seal(&stream, 7, &event, &m);
    let json = serde_json::to_vec(&sealed).unwrap();

    let mut g = c.benchmark_group("envelope");
    g.throughput(Throughput::Elements(1));
    g.bench_function("seal (encode + checksum)", |b| {
        b.iter(|| EventEnvelope::seal(black_box(&stream), 7, black_box(&event), &m))
    });
    g.bench_function("to_json", |b| {
        b.iter(|| serde_json::to_vec(black_box(&sealed)).unwrap())
    });
    g.bench_function("from_json", |b| {
        b.iter(|| serde_json::from_slice::<EventEnvelope>(black_box(&json)).unwrap())
    });
    g.bench_function("verify + decode", |b| {
        b.iter(|| black_box(&sealed).decode().unwrap())
    });
    g.bench_function(
        "round trip (seal, to_json, from_json, verify + decode)",
        |b| {
            b.iter(|| {
                let e = EventEnvelope::seal(&stream, 7, black_box(&event), &m);
                let bytes = serde_json::to_vec(&e).unwrap();
                let back: EventEnvelope = serde_json::from_slice(&bytes).unwrap();
                back.decode().unwrap()
            })
        },
    );
    g.finish();
}

criterion_group!(benches, decide_evolve, envelope);
criterion_main!(benches);
