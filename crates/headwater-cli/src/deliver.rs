//! Waiting for delivery while showing progress, until everything is delivered, Flume
//! refuses the configuration, or the user interrupts (Ctrl-C or SIGTERM).

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use headwater::{FlushError, Headwater, SyncStatus};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How a delivery ended.
pub(crate) enum Ending {
    /// Nothing left to send (dead letters aside).
    Drained,
    /// Flume refused the configuration (401, 404, TLS, ...): retrying cannot help.
    Blocked(String),
    /// The user pressed Ctrl-C, or the process got SIGTERM.
    Interrupted,
    /// The state failed under delivery (damaged, full, read-only): delivery stopped.
    StateFailed(String),
    /// The input could not be read again as it was checked (it changed, or reading it
    /// failed) partway: capture stopped, and so did delivery.
    InputFailed(String),
}

/// What the user sees while delivery runs, on stderr: a progress bar on a terminal, a
/// line every few seconds otherwise (CI, nohup, a log file), so that a run that
/// retries for minutes is never silent.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    started: Instant,
    last_line: Instant,
    interval: Duration,
}

impl Progress {
    /// Progress over `total` changes.
    pub(crate) fn new(total: u64) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} delivered ({per_sec})\n{wide_msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            total,
            started: Instant::now(),
            last_line: Instant::now(),
            interval: if terminal {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(5)
            },
        }
    }

    /// How often to look at the status.
    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    fn describe(status: &SyncStatus) -> String {
        let mut text = format!(
            "{} requests, {} retries, {} pending",
            status.counters.requests, status.counters.retries, status.pending
        );
        if status.dead_lettered > 0 {
            text.push_str(&format!(", {} dead-lettered", status.dead_lettered));
        }
        if let Some(reason) = &status.blocked {
            text.push_str(&format!(", blocked: {reason}"));
        } else if let Some(error) = &status.last_error {
            // A failure that is not a block is retried with backoff until it clears:
            // say so, or a Flume that is down reads like a send that hangs.
            text.push_str(&format!(", retrying after: {error}"));
        }
        text
    }

    /// Shows `done` of the total, with the status.
    pub(crate) fn update(&mut self, done: u64, status: &SyncStatus) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(Self::describe(status));
            }
            None => {
                if self.last_line.elapsed() >= self.interval {
                    self.last_line = Instant::now();
                    let seconds = self.started.elapsed().as_secs_f64().max(0.001);
                    eprintln!(
                        "delivered {done}/{} ({:.0}/s), {}",
                        self.total,
                        done as f64 / seconds,
                        Self::describe(status)
                    );
                }
            }
        }
    }

    /// Clears the bar.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Resolves on Ctrl-C, or on SIGTERM (on Unix).
pub(crate) async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Counts of one run: changes captured so far by this run, and by earlier runs of the
/// same input.
pub(crate) struct Counts {
    pub captured: Arc<AtomicU64>,
    pub captured_before: u64,
}

/// Waits until `capture` has finished and everything it captured is delivered or
/// dead-lettered, showing progress. Ctrl-C, SIGTERM or a blocked outbox end it early;
/// delivery is then shut down (requests in flight finish and are recorded). `abort`
/// ends it with its error whenever it completes (an input found changed mid-run).
pub(crate) async fn deliver<C, A, E>(
    headwater: &Headwater,
    capture: C,
    abort: A,
    counts: &Counts,
    progress: &mut Progress,
) -> Result<Ending, E>
where
    C: Future<Output = Result<(), E>>,
    A: Future<Output = E>,
{
    let mut ticker = tokio::time::interval(progress.interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let interrupted = interrupted();
    tokio::pin!(capture, interrupted, abort);
    let mut capturing = true;
    let ending = loop {
        let flush = async {
            if capturing {
                std::future::pending::<Result<(), FlushError>>().await
            } else {
                headwater.flush().await
            }
        };
        tokio::select! {
            result = &mut capture, if capturing => {
                result?;
                capturing = false;
            }
            result = flush => match result {
                Ok(()) => break Ending::Drained,
                Err(FlushError::Blocked(reason)) => break Ending::Blocked(reason),
                Err(FlushError::Store(error)) => break Ending::StateFailed(error.to_string()),
                Err(FlushError::Stopped) => {
                    break Ending::StateFailed("delivery stopped (its error is logged above)".into());
                }
                Err(error) => {
                    tracing::warn!(%error, "delivery stopped");
                    break Ending::Interrupted;
                }
            },
            _ = &mut interrupted => break Ending::Interrupted,
            error = &mut abort => {
                headwater.shutdown().await;
                progress.finish();
                return Err(error);
            }
            _ = ticker.tick() => {
                if let Ok(status) = headwater.status().await {
                    if let Some(reason) = status.blocked.clone()
                        && !capturing {
                            break Ending::Blocked(reason);
                        }
                    let captured = counts.captured.load(Ordering::Acquire);
                    let open = (status.pending + status.dead_lettered) as u64;
                    let done = (counts.captured_before + captured).saturating_sub(open);
                    progress.update(done, &status);
                }
            }
        }
    };
    headwater.shutdown().await;
    progress.finish();
    Ok(ending)
}

/// Events per second over `elapsed`.
pub(crate) fn rate(events: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    }
}
