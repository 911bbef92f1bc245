//! CPU cost of the core's bookkeeping per change: claim → batch → encode → ack over the
//! memory store, with a transport that accepts at once (no I/O).
//!
//! Run: `cargo bench -p headwater-benches --bench engine`

use std::hint::black_box;

use chrono::DateTime;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures::executor::block_on;
use headwater_benches::realistic_data;
use headwater_core::engine::{SyncConfig, Syncer};
use headwater_core::flume::EncodedBatch;
use headwater_core::transport::{Response, SendOutcome, Transport};
use headwater_memory::MemoryStore;

struct AcceptAll;

#[async_trait::async_trait]
impl Transport for AcceptAll {
    async fn send(&self, batch: EncodedBatch<'_>) -> SendOutcome {
        black_box(batch.body.len());
        SendOutcome::Response(Response::status(200))
    }
}

const CHANGES: usize = 10_000;

fn filled_syncer() -> Syncer<MemoryStore, AcceptAll> {
    let now = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
    let syncer = Syncer::new(MemoryStore::new(), AcceptAll, SyncConfig::new("bench", 1)).unwrap();
    block_on(syncer.outbox().capture_all(now, realistic_data(CHANGES))).unwrap();
    syncer
}

fn sync_all(syncer: &mut Syncer<MemoryStore, AcceptAll>) {
    let now = DateTime::from_timestamp_millis(1_700_000_001_000).unwrap();
    let report = block_on(syncer.sync_once(now)).unwrap();
    assert_eq!(report.delivered, CHANGES as u64);
}

fn engine(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(CHANGES as u64));
    group.sample_size(20);
    group.bench_function("claim_encode_ack_per_10k_changes", |b| {
        b.iter_batched(
            filled_syncer,
            |mut syncer| sync_all(&mut syncer),
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
