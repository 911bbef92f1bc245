//! OTLP/HTTP logs against Flume JSON, for the same 100 realistic changes (six headers or
//! attributes, a ~200-byte JSON value): bytes on the wire per event (protobuf alone,
//! and gzipped as the transport sends it), and the time to encode and to compress.
//!
//! Run: `cargo bench -p headwater-benches --bench otlp` (the sizes are printed first).

use std::hint::black_box;
use std::io::Write;

use criterion::{Criterion, criterion_group, criterion_main};
use headwater_benches::{realistic_changes, realistic_mapping};
use headwater_core::flume::BatchEncoder;
use headwater_core::otlp::{OtlpEncoder, OtlpEncoding, OtlpMapping};

fn otlp_body(encoder: &mut OtlpEncoder, changes: &[headwater_core::model::Change]) -> Vec<u8> {
    let now = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap_or_default();
    let mut body = Vec::new();
    encoder.start(&mut body, now);
    for (events, change) in changes.iter().enumerate() {
        encoder.push(&mut body, events, change, usize::MAX);
    }
    encoder.finish(&mut body);
    body
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap_or_default();
    encoder.finish().unwrap_or_default()
}

fn otlp(c: &mut Criterion) {
    let changes = realistic_changes(100);
    let mut flume = BatchEncoder::new(realistic_mapping());
    flume.encode(&changes, usize::MAX);
    let flume_len = flume.batch().body.len();
    let mut encoder = OtlpEncoder::new(&realistic_mapping(), &OtlpMapping::default());
    let body = otlp_body(&mut encoder, &changes);
    let gzipped = gzip(&body);
    let mut json_mapping = OtlpMapping::default();
    json_mapping.encoding = OtlpEncoding::Json;
    let mut json_encoder = OtlpEncoder::new(&realistic_mapping(), &json_mapping);
    let json = otlp_body(&mut json_encoder, &changes);
    let per = |bytes: usize| bytes as f64 / changes.len() as f64;
    let share = |bytes: usize| 100.0 * bytes as f64 / flume_len as f64;
    println!(
        "bytes per event: Flume JSON {:.0}; OTLP protobuf {:.0} ({:.0} %), gzipped {:.0} ({:.0} %); OTLP JSON {:.0} ({:.0} %), gzipped {:.0} ({:.0} %)",
        per(flume_len),
        per(body.len()),
        share(body.len()),
        per(gzipped.len()),
        share(gzipped.len()),
        per(json.len()),
        share(json.len()),
        per(gzip(&json).len()),
        share(gzip(&json).len()),
    );

    let mut group = c.benchmark_group("otlp_100_events");
    group.bench_function("flume_json_encode", |b| {
        b.iter(|| {
            flume.encode(black_box(&changes), usize::MAX);
            black_box(flume.batch().body.len())
        });
    });
    group.bench_function("otlp_protobuf_encode", |b| {
        b.iter(|| black_box(otlp_body(&mut encoder, black_box(&changes)).len()));
    });
    group.bench_function("otlp_json_encode", |b| {
        b.iter(|| black_box(otlp_body(&mut json_encoder, black_box(&changes)).len()));
    });
    group.bench_function("otlp_gzip_fast", |b| {
        b.iter(|| black_box(gzip(black_box(&body)).len()));
    });
    group.finish();
}

criterion_group!(benches, otlp);
criterion_main!(benches);
