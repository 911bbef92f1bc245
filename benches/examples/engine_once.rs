//! One `sync_once` over 10 000 changes with a transport that accepts at once, for
//! counting instructions: `valgrind --tool=callgrind --toggle-collect='*sync_once*'
//! target/release/examples/engine_once [ROUNDS]`.

use std::hint::black_box;

use chrono::DateTime;
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

fn main() {
    let now = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
    let mut syncer =
        Syncer::new(MemoryStore::new(), AcceptAll, SyncConfig::new("bench", 1)).unwrap();
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    for _ in 0..rounds {
        block_on(syncer.outbox().capture_all(now, realistic_data(10_000))).unwrap();
        let started = std::time::Instant::now();
        let report = block_on(syncer.sync_once(now)).unwrap();
        assert_eq!(report.delivered, 10_000);
        eprintln!(
            "{:.2} µs/change",
            started.elapsed().as_secs_f64() * 1e6 / 10_000.0
        );
    }
}
