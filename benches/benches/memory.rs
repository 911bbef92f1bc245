//! Bytes the memory store holds per pending change, for a ~200-byte JSON value,
//! counted by dhat's allocator (heap bytes in use, not timing).
//!
//! Run: `cargo bench -p headwater-benches --bench memory`

use chrono::DateTime;
use futures::executor::block_on;
use headwater_benches::realistic_data;
use headwater_core::engine::{SyncConfig, Syncer};
use headwater_core::flume::EncodedBatch;
use headwater_core::transport::{Response, SendOutcome, Transport};
use headwater_memory::MemoryStore;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

struct Unused;

#[async_trait::async_trait]
impl Transport for Unused {
    async fn send(&self, _batch: EncodedBatch<'_>) -> SendOutcome {
        SendOutcome::Response(Response::status(200))
    }
}

const CHANGES: usize = 100_000;

fn main() {
    // `cargo test --benches` runs this once in test mode: keep it quick there.
    let count = if std::env::args().any(|arg| arg == "--bench") {
        CHANGES
    } else {
        1_000
    };
    let _profiler = dhat::Profiler::builder().testing().build();
    let store = MemoryStore::new();
    let syncer = Syncer::new(store.clone(), Unused, SyncConfig::new("bench", 1)).unwrap();
    let outbox = syncer.outbox();
    let now = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
    let value_bytes = realistic_data(1)[0].value_json().unwrap().len();
    let before = dhat::HeapStats::get().curr_bytes;
    for chunk in realistic_data(count).chunks(1_000) {
        block_on(outbox.capture_all(now, chunk.to_vec())).unwrap();
    }
    let after = dhat::HeapStats::get().curr_bytes;
    let per_change = (after - before) as f64 / count as f64;
    println!(
        "memory/pending_change: {per_change:.0} bytes held per pending change ({count} changes, value of {value_bytes} bytes of JSON, key of 11 bytes, collection of 5)"
    );
    drop(outbox);
    drop(syncer);
    drop(store);
}
