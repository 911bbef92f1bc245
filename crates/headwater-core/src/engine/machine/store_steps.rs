//! The machine's side of the store: when to claim and how many changes, when to write
//! outcomes, and what the store's answers mean. One store command is under way at a
//! time.

use chrono::{DateTime, Utc};

use crate::model::Seq;
use crate::store::{Claim, ClaimRequest, Outcome, Recorded, StoreError};

use super::timers::Timer;
use super::{Command, DeliveryMachine, Lifecycle, delta};

/// Store work in progress or waiting, and how far the outbox was read.
#[derive(Debug, Default)]
pub(super) struct StoreSteps {
    /// A store command is under way.
    pub(super) busy: bool,
    /// What happened to changes, not yet written.
    pub(super) pending: Outcome,
    /// Acknowledgements in the store command under way (written once it succeeds).
    pub(super) acks_being_written: usize,
    /// Store commands failed in a row.
    failures: u32,
    /// The highest seq read.
    cursor: Option<Seq>,
    /// The last claim found nothing after the cursor.
    pub(super) exhausted: bool,
    /// Dead letters were requeued below the cursor: read from the head again at the
    /// next quiet moment.
    pub(super) rescan: bool,
}

impl DeliveryMachine {
    /// Whether the window needs more changes from the store: it is running low, or
    /// every loaded change waits behind another of its record (then more are read, up to
    /// a bound, so that other records keep going). Changes in requests or isolations do
    /// not count.
    fn wants_changes(&self) -> bool {
        let ready = self.window.len() - self.window.busy();
        !self.store.exhausted
            && (ready < self.capacity / 2
                || (self.starved && self.window.len() < self.capacity * 8))
    }

    /// The store command to carry out now while delivering, if any.
    pub(super) fn next_store_step(&mut self, now: DateTime<Utc>) -> Option<Command> {
        // Outcomes are written as soon as the store is free (an acknowledgement not yet
        // written is one a crash sends again, and only a lost answer may make a
        // duplicate), unless the window runs low: then the claim comes with them in one
        // store step. Written alone first, they let the window empty before each claim,
        // and the wire stood idle for a round trip after it.
        if !self.store.pending.is_empty() && !self.wants_changes() {
            return Some(self.record_pending());
        }
        if let Some(claim) = self.claim_if_needed(now) {
            self.store.busy = true;
            self.timers
                .set(Timer::IdlePoll, now + delta(self.config.idle_poll_interval));
            if self.store.pending.is_empty() {
                return Some(Command::Claim(claim));
            }
            let outcome = std::mem::take(&mut self.store.pending);
            self.store.acks_being_written = outcome.acked().len();
            return Some(Command::RecordThenClaim(outcome, claim));
        }
        if !self.store.pending.is_empty() {
            return Some(self.record_pending());
        }
        None
    }

    /// The store command to carry out now while shutting down: the last outcomes, then
    /// giving the lease up once nothing is in flight.
    pub(super) fn shutdown_step(&mut self) -> Option<Command> {
        if !self.store.pending.is_empty() {
            return Some(self.record_pending());
        }
        if self.requests.is_empty() {
            self.store.busy = true;
            return Some(Command::Release);
        }
        None
    }

    fn record_pending(&mut self) -> Command {
        self.store.busy = true;
        self.store.acks_being_written = self.store.pending.acked().len();
        Command::Record(std::mem::take(&mut self.store.pending))
    }

    /// Acknowledgements Flume gave that are not written yet: the changes a crash now
    /// would send again, besides those in flight.
    pub(super) fn unwritten_acks(&self) -> usize {
        self.store.pending.acked().len() + self.store.acks_being_written
    }

    fn claim_if_needed(&mut self, now: DateTime<Utc>) -> Option<ClaimRequest> {
        if let Some(until) = self.timers.get(Timer::Linger) {
            if until > now {
                return None;
            }
            self.timers.stop(Timer::Linger);
        }
        if let Some(until) = self.timers.get(Timer::OtherLease) {
            let due = [Some(until), self.timers.get(Timer::IdlePoll)]
                .into_iter()
                .flatten()
                .min();
            if due.is_some_and(|at| at > now) {
                return None;
            }
        }
        let quiet = self.requests.is_empty() && self.store.pending.is_empty();
        if self.store.rescan && quiet {
            self.store.rescan = false;
            self.store.cursor = None;
            self.store.exhausted = false;
        }
        let lease = delta(self.config.lease);
        let lease_until = self.timers.get(Timer::LeaseExpiry);
        let renew =
            lease_until.is_none_or(|until| until - now < lease / 2 || until > self.horizon(now));
        let idle_poll = self.store.exhausted
            && self.window.is_empty()
            && self.timers.get(Timer::IdlePoll).is_none_or(|at| now >= at);
        let want = self.wants_changes();
        if !(want || idle_poll || (renew && (!self.window.is_empty() || !self.requests.is_empty())))
        {
            return None;
        }
        let limit = if want || idle_poll {
            let ready = self.window.len() - self.window.busy();
            self.capacity.saturating_sub(ready).max(1)
        } else {
            0
        };
        Some(ClaimRequest {
            owner: self.owner.clone(),
            now,
            // A lease with more than half its time left is not moved, so that the store
            // can see an unchanged lease and write nothing.
            lease_until: match lease_until {
                Some(until) if !renew => until,
                _ => now + lease,
            },
            horizon: self.horizon(now),
            after: self.store.cursor,
            limit,
        })
    }

    /// The store answered a [`Command::Claim`] at `now`.
    pub fn handle_claimed(&mut self, now: DateTime<Utc>, request: &ClaimRequest, claim: Claim) {
        self.observe_clock(now);
        self.store.busy = false;
        match claim {
            Claim::Held(lease) => {
                self.store.failures = 0;
                self.timers.set(Timer::OtherLease, lease.until);
                self.lose_lease();
            }
            Claim::Granted(entries) => {
                self.store.failures = 0;
                self.timers.stop(Timer::OtherLease);
                self.timers.set(Timer::LeaseExpiry, request.lease_until);
                if request.limit > 0 {
                    self.store.exhausted = entries.len() < request.limit;
                }
                if let Some(oldest) = entries
                    .iter()
                    .find_map(|entry| entry.as_ref().ok())
                    .map(|entry| entry.change.captured_at())
                {
                    self.pacer.on_first_backlog(now, oldest);
                }
                for entry in entries {
                    let seq = match &entry {
                        Ok(entry) => entry.change.seq(),
                        Err(unreadable) => unreadable.seq,
                    };
                    let cursor = self.store.cursor.map_or(seq, |cursor| cursor.max(seq));
                    self.store.cursor = Some(cursor);
                    match entry {
                        Ok(entry) => {
                            if !self.window.contains(seq) {
                                self.window.insert(entry);
                            }
                        }
                        Err(unreadable) => {
                            tracing::warn!(seq = %seq, error = %unreadable.error, "quarantining an outbox row that does not decode");
                            self.store.pending.dead_letter(unreadable.quarantine(now));
                            self.counters.quarantined += 1;
                        }
                    }
                }
            }
        }
    }

    /// The lease is someone else's: forget what was read and not yet sent.
    fn lose_lease(&mut self) {
        self.timers.stop(Timer::LeaseExpiry);
        self.window.drop_ready();
        self.store.cursor = None;
        self.store.exhausted = false;
    }

    /// A store command failed at `now`: the machine tries it again after a backoff. For
    /// a [`Command::Record`], give its outcome back: nothing of it was written.
    pub fn handle_store_failed(
        &mut self,
        now: DateTime<Utc>,
        outcome: Option<Outcome>,
        error: &StoreError,
    ) {
        self.observe_clock(now);
        self.store.busy = false;
        self.store.acks_being_written = 0;
        if let Some(mut again) = outcome {
            again.merge(std::mem::take(&mut self.store.pending));
            self.store.pending = again;
        }
        self.store.failures = self.store.failures.saturating_add(1);
        let wait = self.config.backoff.ceiling(self.store.failures);
        self.timers.set(Timer::StoreRetry, now + delta(wait));
        let text = error.describe();
        tracing::warn!(error = %text, "store error; retrying");
        self.last_error = Some(format!("store error: {text}"));
    }

    /// The store wrote a [`Command::Record`] at `now`.
    pub fn handle_recorded(&mut self, now: DateTime<Utc>, recorded: Recorded) {
        self.observe_clock(now);
        self.store.busy = false;
        self.store.acks_being_written = 0;
        self.store.failures = 0;
        if recorded == Recorded::LeaseLost {
            tracing::warn!("the outbox's lease passed to another syncer; it sends from now on");
            self.lose_lease();
        }
    }

    /// The store carried out a [`Command::RecordThenClaim`] at `now`: the outcome was
    /// written (`recorded`), and then the claim gave `claim` (or failed). After a lost
    /// lease the claim's changes are not taken: the machine starts over from the store.
    pub fn handle_recorded_then_claimed(
        &mut self,
        now: DateTime<Utc>,
        recorded: Recorded,
        request: &ClaimRequest,
        claim: Result<Claim, &StoreError>,
    ) {
        let lost = recorded == Recorded::LeaseLost;
        self.handle_recorded(now, recorded);
        match claim {
            Ok(_) if lost => {}
            Ok(claim) => self.handle_claimed(now, request, claim),
            Err(error) => self.handle_store_failed(now, None, error),
        }
    }

    /// The store carried out a [`Command::Release`] at `now` (or failed to: the lease
    /// then lapses on its own).
    pub fn handle_released(&mut self, now: DateTime<Utc>) {
        self.observe_clock(now);
        self.store.busy = false;
        self.lifecycle = Lifecycle::Stopped;
    }
}
