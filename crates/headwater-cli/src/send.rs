//! `headwater send`: deliver a JSON-lines file to Flume through the full engine.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::Utc;
use headwater_core::engine::{SyncConfig, Syncer};
use headwater_http::{HttpConfig, HttpTransport, Selection};
use headwater_memory::MemoryStore;

use crate::cli::SendArgs;
use crate::deliver::{Ending, progress_bar, rate, run_until_drained};
use crate::input::parse_changes;
use crate::summary::Summary;

pub async fn run(args: SendArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|error| format!("cannot read {}: {error}", args.file.display()))?;
    let changes = parse_changes(&text)?;
    let mut http = HttpConfig::new(args.to.iter().map(|url| url.trim().to_owned()));
    http.selection = if args.round_robin {
        Selection::RoundRobin
    } else {
        Selection::Failover
    };
    http.timeout = Duration::from_millis(args.timeout_ms);
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("--header {header:?} is not NAME:VALUE"))?;
        http.headers
            .push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let transport = HttpTransport::new(http)?;
    let seed = getrandom::u64()
        .map_err(|error| format!("no OS random source for the change ids: {error}"))?;
    let mut config = SyncConfig::new(args.source.clone(), seed);
    config.batch.max_events = args.batch_size;
    config.lease = Duration::from_millis(args.timeout_ms).max(Duration::from_secs(1)) * 3;
    let syncer = Syncer::new(MemoryStore::new(), transport, config)?;
    let outbox = syncer.outbox();

    let total = changes.len() as u64;
    if !args.json {
        eprintln!(
            "sending {total} changes from {} to {}",
            args.file.display(),
            args.to.join(", ")
        );
    }
    let started = Instant::now();
    outbox.capture_all(Utc::now(), changes).await?;
    let bar = progress_bar(total);
    let delivery = run_until_drained(syncer, &outbox, total, || total, &bar, started).await;
    let status = &delivery.status;
    let summary = Summary {
        captured: total,
        delivered_unique: status.counters.delivered,
        duplicates: None,
        dead_lettered: status.dead_lettered as u64,
        requests: status.counters.requests,
        retries: status.counters.retries,
        elapsed_ms: delivery.elapsed.as_millis() as u64,
        events_per_sec: rate(status.counters.delivered, delivery.elapsed),
    };
    summary.print(args.json);
    for entry in outbox.dead_letters(20).await.unwrap_or_default() {
        eprintln!(
            "dead-lettered: {}/{} ({}): {}",
            entry.change.data.collection,
            entry.change.data.key,
            entry.change.id,
            entry
                .delivery
                .last_error
                .as_deref()
                .unwrap_or("no reason recorded")
        );
    }
    Ok(match delivery.ending {
        Ending::Drained if summary.complete() => ExitCode::SUCCESS,
        Ending::Drained => ExitCode::FAILURE,
        Ending::Blocked(reason) => {
            eprintln!(
                "error: Flume refused the configuration, so nothing more was sent ({} changes not delivered): {reason}",
                status.pending + status.in_flight
            );
            ExitCode::from(3)
        }
        Ending::Interrupted => {
            eprintln!(
                "interrupted: {} changes not delivered",
                status.pending + status.in_flight
            );
            ExitCode::from(130)
        }
    })
}
