//! The stall watchdog (a change waiting with none delivered for longer than
//! `stall_after` is reported and logged once) and the delivery latencies a driver may
//! take for a histogram.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{DeliveryMachine, Lifecycle, delta};

/// The watchdog's clock.
#[derive(Debug, Default)]
pub(super) struct Watchdog {
    /// Since when changes have waited with none delivered or set aside. `None` while
    /// nothing waits.
    since: Option<DateTime<Utc>>,
    /// Changes finished (delivered, dead-lettered, coalesced, quarantined) when `since`
    /// was last set.
    mark: u64,
    /// The stall was reported.
    warned: bool,
}

impl DeliveryMachine {
    /// Since when the head of the outbox has not moved, if that is longer than
    /// `stall_after` while changes wait and the outbox is neither blocked nor paused.
    pub fn stalled_since(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let after = delta(self.config.stall_after?);
        if self.blocked.is_some() || self.paused || self.lifecycle != Lifecycle::Running {
            return None;
        }
        self.watchdog.since.filter(|since| now - *since >= after)
    }

    /// Moves the watchdog's clock: it restarts whenever a change is finished, and stops
    /// while nothing waits.
    pub(super) fn track_progress(&mut self, now: DateTime<Utc>) {
        let counters = &self.counters;
        let finished =
            counters.delivered + counters.dead_lettered + counters.coalesced + counters.quarantined;
        let waiting = !self.window.is_empty() || !self.requests.is_empty();
        if finished != self.watchdog.mark || !waiting {
            self.watchdog.mark = finished;
            self.watchdog.since = waiting.then_some(now);
            self.watchdog.warned = false;
        } else if self.watchdog.since.is_none() {
            self.watchdog.since = Some(now);
        }
        if !self.watchdog.warned
            && let Some(since) = self.stalled_since(now)
        {
            self.watchdog.warned = true;
            tracing::warn!(
                %since,
                waiting = self.window.len(),
                last_error = self.last_error.as_deref().unwrap_or("none"),
                "delivery has stalled: no change delivered for longer than stall_after"
            );
        }
    }

    /// When the watchdog wants to look again (to notice a stall and say so).
    pub(super) fn watchdog_deadline(&self) -> Option<DateTime<Utc>> {
        match (
            self.watchdog.since,
            self.config.stall_after,
            self.watchdog.warned,
        ) {
            (Some(since), Some(after), false) => Some(since + delta(after)),
            _ => None,
        }
    }

    /// Starts (or stops) keeping each delivered change's latency, capture to
    /// acknowledgement, for [`take_latencies`](Self::take_latencies). Off by default:
    /// only a driver that drains them turns it on.
    pub fn keep_latencies(&mut self, keep: bool) {
        self.latencies = keep.then(Vec::new);
    }

    /// The latencies of the changes delivered since the last call.
    pub fn take_latencies(&mut self) -> Vec<Duration> {
        self.latencies
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }
}
