//! `headwater demo`: the whole pipeline on one machine, with faults.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use headwater_core::engine::{SyncConfig, Syncer};
use headwater_core::model::ChangeData;
use headwater_http::{HttpConfig, HttpTransport};
use headwater_memory::MemoryStore;
use headwater_mock_flume::{MockConfig, MockFlume, RandomFaults};

use crate::cli::DemoArgs;
use crate::deliver::{Ending, progress_bar, rate, run_until_drained};
use crate::summary::Summary;

/// Changes appended per capture call, as an app writing in bursts would.
const CAPTURE_CHUNK: usize = 1000;

pub async fn run(args: DemoArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    if !(0.0..=1.0).contains(&args.fault_rate) {
        return Err(format!(
            "--fault-rate must be between 0 and 1, got {}",
            args.fault_rate
        )
        .into());
    }
    let flume = MockFlume::start(MockConfig {
        transaction_capacity: args.transaction_capacity,
        capacity: args.transaction_capacity.max(100),
        random_faults: Some(RandomFaults::network(args.fault_rate, args.seed)),
        retain_events: false,
        ..MockConfig::default()
    })
    .await?;
    let mut http = HttpConfig::new([flume.url()]);
    http.timeout = Duration::from_secs(2);
    let mut config = SyncConfig::new("headwater-demo", args.seed);
    config.batch.max_events = args.batch_size;
    // The faults are injected and short: retry fast so the demo measures throughput,
    // not sleeping. Real deployments keep the defaults (250 ms doubling to 60 s).
    config.backoff.base = Duration::from_millis(5);
    config.backoff.cap = Duration::from_millis(250);
    let syncer = Syncer::new(MemoryStore::new(), HttpTransport::new(http)?, config)?;
    let outbox = syncer.outbox();

    if !args.json {
        eprintln!(
            "headwater demo: {} changes → mock Flume at {} (fault rate {}, batch size {})",
            args.changes,
            flume.url(),
            args.fault_rate,
            args.batch_size
        );
    }
    let total = args.changes as u64;
    let bar = progress_bar(total);
    let started = Instant::now();
    let captured = Arc::new(AtomicU64::new(0));
    let capturing = {
        let outbox = outbox.clone();
        let captured = Arc::clone(&captured);
        tokio::spawn(async move {
            let mut next = 0;
            while next < args.changes {
                let end = (next + CAPTURE_CHUNK).min(args.changes);
                let chunk = (next..end)
                    .map(demo_change)
                    .collect::<Result<Vec<_>, _>>()?;
                outbox.capture_all(Utc::now(), chunk).await?;
                captured.store(end as u64, Ordering::Release);
                next = end;
                tokio::task::yield_now().await;
            }
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        })
    };
    let delivery = run_until_drained(
        syncer,
        &outbox,
        total,
        || captured.load(Ordering::Acquire),
        &bar,
        started,
    )
    .await;
    capturing
        .await?
        .map_err(|error| -> Box<dyn std::error::Error> { error })?;

    let summary = Summary {
        captured: captured.load(Ordering::Acquire),
        delivered_unique: flume.unique_ids() as u64,
        duplicates: Some(flume.duplicates() as u64),
        dead_lettered: delivery.status.dead_lettered as u64,
        requests: delivery.status.counters.requests,
        retries: delivery.status.counters.retries,
        elapsed_ms: delivery.elapsed.as_millis() as u64,
        events_per_sec: rate(flume.unique_ids() as u64, delivery.elapsed),
    };
    flume.shutdown().await;
    summary.print(args.json);
    Ok(match delivery.ending {
        Ending::Drained if summary.complete() => ExitCode::SUCCESS,
        Ending::Interrupted => ExitCode::from(130),
        _ => ExitCode::FAILURE,
    })
}

fn demo_change(index: usize) -> Result<ChangeData, headwater_core::model::InvalidChange> {
    ChangeData::upsert(
        "todos",
        format!("todo-{index}"),
        &serde_json::json!({
            "id": index,
            "title": "Buy oat milk and a loaf of sourdough on the way home",
            "done": index % 3 == 0,
            "tags": ["errand", "food"],
            "updated_by": "user-4711",
        }),
    )
}
