//! Delivery over loopback, in one run, next to its ceiling: the same 100-event bodies
//! prebuilt and POSTed raw through the same HTTP client to the same server, one and
//! four requests at a time. Then headwater (the facade, its run loop and real clock):
//! one change per request, the default batch with one request in flight, and the
//! default (pipelined, adaptive) over the memory store and over SQLite. And capture
//! cost per store.
//!
//! The server is the bench mock in a process of its own, or a real Flume agent if
//! `HEADWATER_BENCH_FLUME_URL` is set (`scripts/flume-agent.sh` starts one; give it a
//! transactionCapacity of at least 100).
//!
//! Run: `cargo bench -p headwater-benches --bench delivery`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use headwater::sqlite::{SqliteOptions, SqliteStore, Synchronous};
use headwater::{ChangeStore, Headwater, HttpConfig, HttpTransport, MemoryStore, Transport};
use headwater_benches::{MockProcess, realistic_captured, realistic_changes, realistic_mapping};
use headwater_core::flume::{BatchEncoder, EncodedBatch};
use headwater_core::transport::SendOutcome;

/// Events per prebuilt body, the default batch size.
const BATCH: usize = 100;

fn target(mock: &Option<MockProcess>) -> String {
    std::env::var("HEADWATER_BENCH_FLUME_URL").unwrap_or_else(|_| {
        mock.as_ref()
            .map(|mock| mock.url.clone())
            .unwrap_or_default()
    })
}

fn http(url: &str) -> HttpConfig {
    let mut config = HttpConfig::new([url]);
    config.timeout = Duration::from_secs(10);
    config
}

/// The ceiling: prebuilt bodies (of distinct events, as headwater sends, so that the
/// server does the same work), `in_flight` senders over one client.
fn raw(runtime: &tokio::runtime::Runtime, url: &str, bodies: usize, in_flight: usize) -> Duration {
    let mut encoder = BatchEncoder::new(realistic_mapping());
    let changes = realistic_changes(bodies * BATCH);
    let prebuilt: Arc<Vec<Vec<u8>>> = Arc::new(
        changes
            .chunks(BATCH)
            .map(|chunk| {
                encoder.encode(chunk, usize::MAX);
                encoder.batch().body.to_vec()
            })
            .collect(),
    );
    let transport = Arc::new(HttpTransport::new(http(url), chrono::Utc::now).unwrap());
    runtime.block_on(async move {
        let started = Instant::now();
        let senders: Vec<_> = (0..in_flight)
            .map(|sender| {
                let (prebuilt, transport) = (Arc::clone(&prebuilt), Arc::clone(&transport));
                tokio::spawn(async move {
                    for index in (sender..bodies).step_by(in_flight) {
                        let outcome = transport
                            .send(EncodedBatch::new(&prebuilt[index], BATCH))
                            .await;
                        assert!(
                            matches!(&outcome, SendOutcome::Response(r) if r.status == 200),
                            "{outcome:?}"
                        );
                    }
                })
            })
            .collect();
        for sender in senders {
            sender.await.unwrap();
        }
        started.elapsed()
    })
}

/// headwater delivering `count` changes already captured in `store`: from start to the
/// last acknowledgement.
fn headwater(
    runtime: &tokio::runtime::Runtime,
    url: &str,
    store: impl ChangeStore + 'static,
    count: usize,
    batch: usize,
    in_flight: usize,
) -> Duration {
    runtime.block_on(async move {
        let now = chrono::Utc::now();
        let captured = realistic_captured(count, count as u64, now);
        for chunk in captured.chunks(1000) {
            store.append(chunk.to_vec()).await.unwrap();
        }
        let started = Instant::now();
        let headwater = Headwater::builder()
            .http(|config| *config = http(url))
            .batch_size(batch)
            .max_in_flight(in_flight)
            .store(store)
            .start()
            .unwrap();
        headwater.flush().await.unwrap();
        let elapsed = started.elapsed();
        let status = headwater.status().await.unwrap();
        assert_eq!(status.counters.delivered, count as u64, "{status:?}");
        headwater.shutdown().await;
        elapsed
    })
}

fn sqlite(dir: &tempfile::TempDir, synchronous: Synchronous) -> SqliteStore {
    let path = dir.path().join(format!("bench-{}.db", rand_name()));
    let mut options = SqliteOptions::default();
    options.synchronous = synchronous;
    SqliteStore::open_with(path, &options).unwrap()
}

fn rand_name() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

fn delivery(c: &mut Criterion) {
    let mock = std::env::var_os("HEADWATER_BENCH_FLUME_URL")
        .is_none()
        .then(MockProcess::start);
    let url = target(&mock);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    const BODIES: usize = 500;
    if mock.is_none() {
        // A JVM answers slowly until its JIT has compiled the source's hot paths; warm
        // it so that the first bench does not measure that.
        for _ in 0..30 {
            raw(&runtime, &url, BODIES, 4);
        }
    }
    let mut group = c.benchmark_group("delivery");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));

    group.throughput(Throughput::Elements((BODIES * BATCH) as u64));
    for in_flight in [1, 4] {
        group.bench_function(format!("raw_{in_flight}_in_flight"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| raw(&runtime, &url, BODIES, in_flight))
                    .sum()
            });
        });
    }

    const CHANGES: usize = 50_000;
    let runs: [(&str, usize, usize, usize); 4] = [
        ("headwater_batch_1", 1, 1, 2_000),
        ("headwater_batch_100_1_in_flight", BATCH, 1, CHANGES),
        ("headwater_default_memory", BATCH, 4, CHANGES),
        ("headwater_default_sqlite", BATCH, 4, CHANGES),
    ];
    for (name, batch, in_flight, count) in runs {
        group.throughput(Throughput::Elements(count as u64));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        if name.ends_with("sqlite") {
                            let store = sqlite(&dir, Synchronous::Full);
                            headwater(&runtime, &url, store, count, batch, in_flight)
                        } else {
                            headwater(&runtime, &url, MemoryStore::new(), count, batch, in_flight)
                        }
                    })
                    .sum()
            });
        });
    }
    group.finish();
}

/// Capture cost: 100 changes per transaction, appended to each store.
fn capture(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    let chunk = realistic_captured(100, 3, now);
    let mut group = c.benchmark_group("capture_100_per_transaction");
    group.throughput(Throughput::Elements(100));
    group.sample_size(30);
    let memory = MemoryStore::new();
    group.bench_function("memory", |b| {
        b.iter(|| runtime.block_on(memory.append(chunk.clone())).unwrap());
    });
    for (name, synchronous) in [
        ("sqlite_full", Synchronous::Full),
        ("sqlite_normal", Synchronous::Normal),
    ] {
        let store = sqlite(&dir, synchronous);
        group.bench_function(name, |b| {
            b.iter(|| runtime.block_on(store.append(chunk.clone())).unwrap());
        });
    }
    group.finish();
}

criterion_group!(benches, delivery, capture);
criterion_main!(benches);
