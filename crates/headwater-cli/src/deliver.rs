//! Runs a syncer until its outbox is empty, showing progress on stderr.

use std::time::{Duration, Instant};

use chrono::Utc;
use headwater_core::engine::{Outbox, SyncStatus, Syncer};
use headwater_http::HttpTransport;
use headwater_memory::MemoryStore;
use indicatif::{ProgressBar, ProgressStyle};

/// How a delivery ended.
pub enum Ending {
    /// Nothing left to send.
    Drained,
    /// Flume refused the configuration (401, 404, ...): retrying cannot help.
    Blocked(String),
    /// The user pressed Ctrl-C.
    Interrupted,
}

pub struct Delivery {
    pub ending: Ending,
    pub status: SyncStatus,
    pub elapsed: Duration,
}

/// A progress bar over `total` changes on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} delivered ({per_sec}) {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Runs `syncer` until everything captured through `outbox` is delivered or
/// dead-lettered (and `expected` changes were captured), the outbox is blocked, or
/// Ctrl-C.
pub async fn run_until_drained(
    syncer: Syncer<MemoryStore, HttpTransport>,
    outbox: &Outbox<MemoryStore>,
    expected: u64,
    captured: impl Fn() -> u64,
    bar: &ProgressBar,
    started: Instant,
) -> Delivery {
    let mut syncer = syncer;
    let runner = tokio::spawn(async move {
        let result = syncer.run(Utc::now, tokio::time::sleep).await;
        (syncer, result)
    });
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let ending = loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut ctrl_c => break Ending::Interrupted,
        }
        let Ok(status) = outbox.status(Utc::now()).await else {
            continue;
        };
        bar.set_position(status.counters.delivered);
        bar.set_message(format!(
            "{} requests, {} retries{}",
            status.counters.requests,
            status.counters.retries,
            status
                .last_error
                .as_deref()
                .filter(|_| status.pending > 0)
                .map(|error| format!(", last error: {}", shorten(error)))
                .unwrap_or_default()
        ));
        if let Some(reason) = status.blocked {
            break Ending::Blocked(reason);
        }
        if captured() >= expected && status.pending == 0 && status.in_flight == 0 {
            break Ending::Drained;
        }
    };
    let elapsed = started.elapsed();
    outbox.shutdown();
    if let Ok((_syncer, Err(error))) = runner.await {
        tracing::warn!(%error, "the syncer stopped with an error");
    }
    let status = outbox.status(Utc::now()).await.unwrap_or_default();
    bar.set_position(status.counters.delivered);
    bar.finish_and_clear();
    Delivery {
        ending,
        status,
        elapsed,
    }
}

fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

/// Events per second over `elapsed`.
pub fn rate(events: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    }
}
