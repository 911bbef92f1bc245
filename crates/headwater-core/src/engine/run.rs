use std::future::Future;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::{Either, select};

use crate::store::{ChangeStore, StoreError};
use crate::transport::Transport;

use super::syncer::{SyncReport, Syncer};

/// Why a run loop stopped on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The store was closed (or must close for another connection's schema upgrade);
    /// reopen it and start a new syncer.
    #[error("the store was closed: {0}")]
    StoreClosed(String),
}

impl<S: ChangeStore + Clone, T: Transport> Syncer<S, T> {
    /// Runs delivery until [`Outbox::shutdown`](super::Outbox::shutdown) is called.
    ///
    /// The loop is runtime-agnostic: `clock` gives wall time and `sleep` a timer future
    /// (`tokio::time::sleep` natively, a `setTimeout` future in the browser). It sends
    /// as long as there is work, sleeps until the next retry is due, and wakes at once
    /// when a change is captured (then waits `linger` so a burst shares a request).
    /// Shutdown lets the step in progress finish, so no request is cut off. Store
    /// errors other than a closed store are logged and retried with backoff.
    pub async fn run<C, Sleep, F>(&mut self, clock: C, sleep: Sleep) -> Result<(), RunError>
    where
        C: Fn() -> DateTime<Utc>,
        Sleep: Fn(Duration) -> F,
        F: Future<Output = ()>,
    {
        let shared = std::sync::Arc::clone(self.shared());
        let mut store_failures = 0u32;
        loop {
            if shared.shutdown.load(Ordering::Acquire) {
                return Ok(());
            }
            let now = clock();
            let wait = match self.sync_once(now).await {
                Ok(report) if report.more_ready() => {
                    store_failures = 0;
                    continue;
                }
                Ok(report) => {
                    store_failures = 0;
                    self.wait_after(now, &report).await
                }
                Err(StoreError::Closed(reason)) => return Err(RunError::StoreClosed(reason)),
                Err(error) => {
                    tracing::warn!(%error, "store error; retrying");
                    shared.view().last_error = Some(error.to_string());
                    store_failures = store_failures.saturating_add(1);
                    self.config().backoff.ceiling(store_failures)
                }
            };
            let woken = {
                let timer = pin!(sleep(wait));
                let wake = pin!(shared.wake.wait());
                matches!(select(timer, wake).await, Either::Right(_))
            };
            let linger = self.config().linger;
            if woken && !linger.is_zero() && !shared.shutdown.load(Ordering::Acquire) {
                sleep(linger).await;
            }
        }
    }

    /// How long to sleep after a step that left nothing to do right now.
    async fn wait_after(&self, now: DateTime<Utc>, report: &SyncReport) -> Duration {
        let poll = self.config().idle_poll_interval;
        let until = if report.blocked {
            self.blocked_until()
        } else if report.retrying > 0 {
            self.shared().view().next_attempt_at
        } else {
            match self.outbox().store().stats(now).await {
                Ok(stats) => stats.next_attempt_at,
                Err(_) => None,
            }
        };
        until
            .and_then(|at| (at - now).to_std().ok())
            .map_or(poll, |wait| wait.min(poll))
    }
}
