//! Cost as work grows: the delivery rate with 10 thousand to 10 million changes
//! pending, from the memory store and from SQLite (`synchronous = FULL`), through an
//! in-process transport that accepts every batch at once, so that the store and the
//! machine are what is measured; and how long a capture takes while a sync runs.
//!
//! Run: `cargo bench -p headwater-benches --bench backlog` (all sizes up to 10 million:
//! several minutes and ~7 GB of memory for the memory store's largest backlog);
//! `HEADWATER_BACKLOG_MAX=1000000` stops at a million. Not criterion: one pass per size,
//! as a backlog of millions is set up once, not sampled.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use headwater_benches::realistic_data;
use headwater_core::engine::{Outbox, SyncConfig, Syncer};
use headwater_core::flume::EncodedBatch;
use headwater_core::store::ChangeStore;
use headwater_core::transport::{Response, SendOutcome, Transport};
use headwater_memory::MemoryStore;
use headwater_sqlite::SqliteStore;

/// Accepts every batch at once.
struct AcceptAll;

#[async_trait::async_trait]
impl Transport for AcceptAll {
    async fn send(&self, _batch: EncodedBatch<'_>) -> SendOutcome {
        SendOutcome::Response(Response::status(200))
    }
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000).unwrap_or_default()
}

/// Fills `outbox` with `count` changes, 10,000 to a transaction.
async fn fill<S: ChangeStore>(outbox: &Outbox<S>, count: usize) {
    let template = realistic_data(10_000);
    let mut left = count;
    while left > 0 {
        let take = left.min(template.len());
        outbox
            .capture_all(now(), template[..take].to_vec())
            .await
            .expect("the store takes the backlog");
        left -= take;
    }
}

/// Delivers a backlog of `count` changes from `store`: events/s.
async fn drain<S: ChangeStore + Clone + 'static>(store: S, count: usize) -> f64 {
    let mut syncer = Syncer::new(store, AcceptAll, SyncConfig::new("bench", 1)).unwrap();
    fill(&syncer.outbox(), count).await;
    let started = Instant::now();
    let report = syncer.sync_once(now()).await.expect("the sync runs");
    let elapsed = started.elapsed();
    assert_eq!(report.delivered, count as u64, "every change delivered");
    count as f64 / elapsed.as_secs_f64()
}

/// p50 and p99 of a one-change capture into SQLite while a sync of `backlog` runs, one
/// capture every millisecond.
async fn capture_latency(path: &std::path::Path, backlog: usize) -> (Duration, Duration, usize) {
    let store = SqliteStore::open(path).unwrap();
    let mut syncer = Syncer::new(store, AcceptAll, SyncConfig::new("bench", 1)).unwrap();
    let outbox = syncer.outbox();
    fill(&outbox, backlog).await;
    let one = realistic_data(1).remove(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    let captures = async {
        let mut latencies = Vec::new();
        while !done.load(std::sync::atomic::Ordering::Acquire) {
            let started = Instant::now();
            outbox.capture(now(), one.clone()).await.unwrap();
            latencies.push(started.elapsed());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies
    };
    let sync = async {
        let report = syncer.sync_once(now()).await.expect("the sync runs");
        done.store(true, std::sync::atomic::Ordering::Release);
        report
    };
    let (mut latencies, _) = tokio::join!(captures, sync);
    latencies.sort();
    let at = |share: f64| latencies[((latencies.len() - 1) as f64 * share) as usize];
    (at(0.5), at(0.99), latencies.len())
}

fn main() {
    // `cargo test --benches` runs this once in test mode: keep it quick there.
    let benching = std::env::args().any(|arg| arg == "--bench");
    let max: usize = std::env::var("HEADWATER_BACKLOG_MAX")
        .ok()
        .and_then(|max| max.parse().ok())
        .unwrap_or(10_000_000);
    let sizes: Vec<usize> = if benching {
        [10_000, 100_000, 1_000_000, 10_000_000]
            .into_iter()
            .filter(|size| *size <= max)
            .collect()
    } else {
        vec![1_000]
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        for &size in &sizes {
            let rate = drain(MemoryStore::new(), size).await;
            println!("backlog/memory/{size}: {rate:.0} events/s");
        }
        for &size in &sizes {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path().join("outbox.db")).unwrap();
            let rate = drain(store, size).await;
            println!("backlog/sqlite/{size}: {rate:.0} events/s");
        }
        let dir = tempfile::tempdir().unwrap();
        let backlog = if benching { 100_000 } else { 1_000 };
        let (p50, p99, count) = capture_latency(&dir.path().join("outbox.db"), backlog).await;
        println!(
            "backlog/capture_while_syncing/sqlite/{backlog}: p50 {:.2} ms, p99 {:.2} ms ({count} captures)",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    });
}
