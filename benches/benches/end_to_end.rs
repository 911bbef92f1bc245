//! End to end over loopback: memory store → engine → HTTP transport → the mock Flume in
//! another process. Events per second at batch size 1 (one POST per change, the naive
//! approach) against the default batch of 100. The engine keeps one batch in flight per
//! outbox (that is what keeps capture order), so there is no pipelined variant.
//!
//! Run: `cargo bench -p headwater-benches --bench end_to_end`

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use headwater_benches::realistic_data;
use headwater_core::engine::{SyncConfig, Syncer};
use headwater_http::{HttpConfig, HttpTransport};
use headwater_memory::MemoryStore;

/// The mock Flume process; it exits when its stdin closes.
struct MockProcess {
    child: Child,
    url: String,
}

impl MockProcess {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bench-mock-flume"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the mock Flume");
        let mut url = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut url)
            .expect("the mock prints its URL");
        MockProcess {
            child,
            url: url.trim().to_owned(),
        }
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Delivers `count` changes at `batch` events per request; returns the time taken by
/// delivery alone (capture is not timed).
fn deliver(runtime: &tokio::runtime::Runtime, url: &str, count: usize, batch: usize) -> Duration {
    runtime.block_on(async {
        let transport = HttpTransport::new(HttpConfig::new([url])).unwrap();
        let mut config = SyncConfig::new("bench", 1);
        config.batch.max_events = batch;
        let mut syncer = Syncer::new(MemoryStore::new(), transport, config).unwrap();
        syncer
            .outbox()
            .capture_all(Utc::now(), realistic_data(count))
            .await
            .unwrap();
        let started = Instant::now();
        let report = syncer.sync_once(Utc::now()).await.unwrap();
        assert_eq!(report.retries, 0, "no faults in the bench");
        assert_eq!(report.delivered, count as u64);
        started.elapsed()
    })
}

fn end_to_end(c: &mut Criterion) {
    let mock = MockProcess::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("end_to_end");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for (name, batch, count) in [("batch_1", 1, 1_000), ("batch_100", 100, 20_000)] {
        group.throughput(Throughput::Elements(count as u64));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| deliver(&runtime, &mock.url, count, batch))
                    .sum()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
