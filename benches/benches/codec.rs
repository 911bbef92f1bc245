//! Encode and decode of 100-event batches of realistic changes (six headers, a ~200-byte
//! JSON body), against a plain serde_json derive of the same structure in the same run.
//!
//! Run: `cargo bench -p headwater-benches --bench codec`

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use headwater_benches::{realistic_changes, realistic_mapping};
use headwater_core::flume::{BatchEncoder, DecodeLimits, FlumeEvent, decode_batch, encode_events};
use serde::{Deserialize, Serialize};

/// The same structure as a Flume event, the way one would write it with serde.
#[derive(Serialize, Deserialize)]
struct SerdeEvent {
    headers: BTreeMap<String, String>,
    body: String,
}

fn codec(c: &mut Criterion) {
    let changes = realistic_changes(100);
    let mut encoder = BatchEncoder::new(realistic_mapping());
    encoder.encode(&changes, usize::MAX);
    let body = std::str::from_utf8(encoder.batch().body)
        .unwrap()
        .to_owned();
    let events: Vec<FlumeEvent> = decode_batch(&body, &DecodeLimits::default()).unwrap();
    let serde_events: Vec<SerdeEvent> = serde_json::from_str(&body).unwrap();
    assert_eq!(events[0].headers.len(), 6);

    let mut group = c.benchmark_group("encode_100_events");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("headwater_from_changes", |b| {
        b.iter(|| {
            encoder.encode(black_box(&changes), usize::MAX);
            black_box(encoder.batch().body.len())
        });
    });
    let mut buffer = Vec::with_capacity(body.len());
    group.bench_function("headwater_from_events", |b| {
        b.iter(|| {
            encode_events(black_box(&events), &mut buffer);
            black_box(buffer.len())
        });
    });
    let mut buffer = Vec::with_capacity(body.len());
    group.bench_function("serde_json_derive", |b| {
        b.iter(|| {
            buffer.clear();
            serde_json::to_writer(&mut buffer, black_box(&serde_events)).unwrap();
            black_box(buffer.len())
        });
    });
    group.finish();

    let mut group = c.benchmark_group("decode_100_events");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("headwater", |b| {
        b.iter(|| decode_batch(black_box(&body), &DecodeLimits::default()).unwrap());
    });
    group.bench_function("serde_json_derive", |b| {
        b.iter(|| serde_json::from_str::<Vec<SerdeEvent>>(black_box(&body)).unwrap());
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
