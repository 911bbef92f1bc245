//! Every deadline of the machine in one table, in the manner of quinn-proto's
//! `TimerTable`: a new deadline is one variant of [`Timer`], and a wall clock set back
//! moves all of them in one place.
//!
//! (Two kinds of wait live with their data instead: a change's retry time is stored
//! with the change, and covered by the horizon rule, and an isolation keeps its own
//! waits and shifts them itself.)

use chrono::{DateTime, TimeDelta, Utc};

/// A deadline of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// A backoff ends: no request starts before it.
    Backoff,
    /// A failed store command may be tried again.
    StoreRetry,
    /// The linger after a capture ends, so that a burst of captures shares a request.
    Linger,
    /// An idle syncer looks at the store again: the last claim plus
    /// `idle_poll_interval`.
    IdlePoll,
    /// This syncer's lease lapses unless renewed (it is renewed halfway).
    LeaseExpiry,
    /// Another syncer's lease lapses. Armed while another syncer holds the lease.
    OtherLease,
    /// A blocked outbox probes the server again.
    BlockedProbe,
    /// Pacing after failures lets the next batch go.
    Pace,
}

impl Timer {
    const COUNT: usize = 8;

    fn index(self) -> usize {
        self as usize
    }
}

/// When each [`Timer`] is due, if it is armed.
#[derive(Debug, Clone, Default)]
pub(super) struct TimerTable {
    deadlines: [Option<DateTime<Utc>>; Timer::COUNT],
}

impl TimerTable {
    /// When `timer` is due, if it is armed.
    pub(super) fn get(&self, timer: Timer) -> Option<DateTime<Utc>> {
        self.deadlines[timer.index()]
    }

    /// Whether `timer` is armed.
    pub(super) fn is_armed(&self, timer: Timer) -> bool {
        self.get(timer).is_some()
    }

    /// Whether `timer` is armed and not yet due at `now`.
    pub(super) fn is_pending(&self, timer: Timer, now: DateTime<Utc>) -> bool {
        self.get(timer).is_some_and(|at| at > now)
    }

    /// Arms `timer` for `at`.
    pub(super) fn set(&mut self, timer: Timer, at: DateTime<Utc>) {
        self.deadlines[timer.index()] = Some(at);
    }

    /// Disarms `timer`.
    pub(super) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer.index()] = None;
    }

    /// Moves every deadline back by `back` (the wall clock was set back): a wait of
    /// 250 ms stays 250 ms instead of lasting until the clock catches up.
    pub(super) fn shift_back(&mut self, back: TimeDelta) {
        for at in self.deadlines.iter_mut().flatten() {
            *at = at
                .checked_sub_signed(back)
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn timers_are_set_stopped_and_shifted_together() {
        let mut timers = TimerTable::default();
        timers.set(Timer::Backoff, at(10));
        timers.set(Timer::BlockedProbe, DateTime::<Utc>::MIN_UTC);
        assert!(timers.is_pending(Timer::Backoff, at(5)));
        assert!(!timers.is_pending(Timer::Backoff, at(10)));
        assert!(!timers.is_armed(Timer::Linger));
        timers.shift_back(TimeDelta::seconds(3));
        assert_eq!(timers.get(Timer::Backoff), Some(at(7)));
        assert_eq!(
            timers.get(Timer::BlockedProbe),
            Some(DateTime::<Utc>::MIN_UTC),
            "a deadline at the start of time stays there"
        );
        timers.stop(Timer::Backoff);
        assert_eq!(timers.get(Timer::Backoff), None);
    }
}
