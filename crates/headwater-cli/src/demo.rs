//! `headwater demo`: the whole pipeline on one machine, with faults.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use headwater::{ChangeData, Headwater};
use headwater_mock_flume::{MockConfig, MockFlume, RandomFaults};

use crate::cli::{DemoArgs, WireProtocol};
use crate::deliver::{Counts, Ending, Progress, deliver, rate};
use crate::summary::Summary;

/// Changes appended per capture call, as an app writing in bursts would.
const CAPTURE_CHUNK: usize = 1000;

fn check_args(args: &DemoArgs) -> Result<(), String> {
    if !(0.0..=1.0).contains(&args.fault_rate) {
        return Err(format!(
            "--fault-rate must be between 0 and 1, got {}",
            args.fault_rate
        ));
    }
    if args.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    if args.max_in_flight == 0 {
        return Err("--max-in-flight must be at least 1".into());
    }
    if args.transaction_capacity == 0 {
        return Err("--transaction-capacity must be at least 1".into());
    }
    Ok(())
}

pub(crate) async fn run(args: DemoArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    check_args(&args)?;
    let flume = MockFlume::start(MockConfig {
        transaction_capacity: args.transaction_capacity,
        capacity: (args.transaction_capacity * args.max_in_flight).max(100),
        random_faults: Some(RandomFaults::network(args.fault_rate, args.seed)),
        retain_events: false,
        ..MockConfig::default()
    })
    .await?;
    let builder = match args.protocol {
        WireProtocol::Flume => Headwater::builder().flume([flume.url()]),
        WireProtocol::Otlp => Headwater::builder().otlp([flume.otlp_url()], "headwater-demo"),
    };
    let headwater = builder
        .timeout(Duration::from_secs(2))
        .source("headwater-demo")
        .seed(args.seed)
        .batch_size(args.batch_size)
        .max_in_flight(args.max_in_flight)
        .configure(|config| {
            // The faults are injected and short: retry fast so the demo measures
            // throughput, not sleeping. Real deployments keep the defaults (250 ms
            // doubling to 60 s).
            config.backoff.base = Duration::from_millis(5);
            config.backoff.cap = Duration::from_millis(250);
        })
        .start()?;

    if !args.json {
        eprintln!(
            "headwater demo: {} changes → mock {} at {} (fault rate {}, batch size {}, up to {} in flight)",
            args.changes,
            match args.protocol {
                WireProtocol::Flume => "Flume",
                WireProtocol::Otlp => "OTLP receiver",
            },
            match args.protocol {
                WireProtocol::Flume => flume.url().to_owned(),
                WireProtocol::Otlp => flume.otlp_url(),
            },
            args.fault_rate,
            args.batch_size,
            args.max_in_flight
        );
    }
    let total = args.changes as u64;
    let started = Instant::now();
    let captured = Arc::new(AtomicU64::new(0));
    let capture = {
        let headwater = headwater.clone();
        let captured = Arc::clone(&captured);
        async move {
            let mut next = 0;
            while next < args.changes {
                let end = (next + CAPTURE_CHUNK).min(args.changes);
                let chunk = (next..end)
                    .map(demo_change)
                    .collect::<Result<Vec<_>, _>>()?;
                headwater.capture_all(chunk).await?;
                captured.store(end as u64, Ordering::Release);
                next = end;
                tokio::task::yield_now().await;
            }
            Ok::<(), Box<dyn std::error::Error>>(())
        }
    };
    let mut progress = Progress::new(total);
    let counts = Counts {
        captured: Arc::clone(&captured),
        captured_before: 0,
    };
    let ending = deliver(
        &headwater,
        capture,
        std::future::pending(),
        &counts,
        &mut progress,
    )
    .await?;
    let elapsed = started.elapsed();
    let status = headwater.status().await.unwrap_or_default();
    let summary = Summary {
        captured: captured.load(Ordering::Acquire),
        resumed: None,
        delivered_unique: flume.unique_ids() as u64,
        duplicates: Some(flume.duplicates() as u64),
        dead_lettered: status.dead_lettered as u64,
        requests: status.counters.requests,
        retries: status.counters.retries,
        rejected_by_server: status.counters.rejected_by_server,
        elapsed_ms: elapsed.as_millis() as u64,
        events_per_sec: rate(flume.unique_ids() as u64, elapsed),
    };
    flume.shutdown().await;
    summary.print(args.json);
    Ok(match ending {
        Ending::Drained if summary.complete() => ExitCode::SUCCESS,
        Ending::Interrupted => ExitCode::from(130),
        // The demo's memory store does not fail; if delivery stops anyway, say why.
        Ending::StateFailed(reason) | Ending::InputFailed(reason) => {
            eprintln!("error: delivery stopped: {reason}");
            ExitCode::from(130)
        }
        Ending::Blocked(reason) => {
            eprintln!("error: the outbox is blocked: {reason}");
            ExitCode::from(3)
        }
        Ending::Drained => ExitCode::FAILURE,
    })
}

fn demo_change(index: usize) -> Result<ChangeData, headwater::InvalidChange> {
    ChangeData::update(
        "todos",
        format!("todo-{index}"),
        &serde_json::json!({
            "id": index,
            "title": "Buy oat milk and a loaf of sourdough on the way home",
            "done": index.is_multiple_of(3),
            "tags": ["errand", "food"],
            "updated_by": "user-4711",
        }),
    )
}
