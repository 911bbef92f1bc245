//! What an answer means for the changes its request carried: acknowledged, retried
//! after a backoff (the batch shrunk if Flume asked), taken apart to find a change
//! Flume refuses, dead-lettered on evidence, or the outbox blocked by a configuration
//! problem.

use chrono::{DateTime, Utc};
use rand_core::RngCore;

use crate::engine::PartialRejectionReport;
use crate::model::Seq;
use crate::policy::{Overload, Rejection, RetryAfter, Verdict, classify};
use crate::transport::{PartialRejection, SendOutcome};

use super::isolation::{IsoAnswer, IsoEffect, IsoRequest, Isolation};
use super::timers::Timer;
use super::window::SlotState;
use super::{DeliveryMachine, Purpose, RequestId, delta};

impl DeliveryMachine {
    /// Dead-letters one loaded change.
    pub(super) fn condemn(&mut self, now: DateTime<Utc>, seq: Seq, reason: &str) {
        if let Some(slot) = self.window.remove(seq) {
            tracing::warn!(seq = %seq, id = %slot.entry.change.id(), %reason, "dead-lettering change");
            self.store
                .pending
                .dead_letter(slot.entry.dead_letter(reason, now));
            self.counters.dead_lettered += 1;
        }
        for isolation in self.isolations.iter_mut().flatten() {
            isolation.forget(seq);
        }
    }

    fn ack(&mut self, now: DateTime<Utc>, seqs: &[Seq]) {
        for seq in seqs {
            if let Some(slot) = self.window.remove(*seq) {
                if let Some(latencies) = &mut self.latencies {
                    let waited = now - slot.entry.change.captured_at();
                    latencies.push(waited.to_std().unwrap_or_default());
                }
                self.store.pending.ack(&slot.entry.change);
                self.counters.delivered += 1;
            }
        }
    }

    /// The answer to request `id` arrived at `now`. `body` is the request's buffer,
    /// given back for reuse.
    pub fn handle_answer(
        &mut self,
        now: DateTime<Utc>,
        id: RequestId,
        outcome: SendOutcome,
        body: Vec<u8>,
    ) {
        self.observe_clock(now);
        self.recycled.push(body);
        let Some(request) = self.requests.remove(&id) else {
            return;
        };
        self.counters.answers.count(&outcome);
        let verdict = classify(&outcome);
        let accepted = verdict == Verdict::Ack;
        let real = match &request.purpose {
            Purpose::Batch { seqs, .. } => !seqs.is_empty(),
            Purpose::Isolation { request, .. } => !matches!(request, IsoRequest::Probe(_)),
        };
        let back_pressure = matches!(
            verdict,
            Verdict::Retry {
                back_pressure: true,
                ..
            }
        );
        let rtt = accepted.then(|| (now - request.sent_at).to_std().unwrap_or_default());
        self.concurrency.on_answer(now, rtt, back_pressure);
        match (&verdict, rtt) {
            (Verdict::Ack, Some(rtt)) if real => self.pacer.on_accepted(now, rtt),
            // A batch over the channel's transactionCapacity is cut and sent again at
            // once: a setting to learn, not a load to back off from.
            (
                Verdict::Retry {
                    overload: Overload::Capacity(capacity),
                    ..
                },
                _,
            ) if request_events(&request.purpose) > *capacity => {}
            (Verdict::Retry { .. }, _) => self.pacer.on_failure(now, back_pressure),
            _ => {}
        }
        self.health.last_any = Some(accepted);
        if accepted && real {
            self.health.real_successes += 1;
            self.health.refused_alone.clear();
        }
        if accepted && real {
            self.on_success();
        } else if accepted {
            self.unblock();
        }
        if matches!(verdict, Verdict::Reject { .. }) && !real {
            // An empty batch refused right after a change was refused alone spoils that
            // refusal's evidence: Flume refuses everything for a while. (With several
            // requests in flight, the next answer of the change's own isolation may come
            // after another isolation's probe was refused. A refusal of changes proves
            // nothing of the kind: they may be poisoned themselves.)
            let own = match &request.purpose {
                Purpose::Isolation { index, .. } => Some(*index),
                Purpose::Batch { .. } => None,
            };
            for (index, isolation) in self.isolations.iter_mut().enumerate() {
                if Some(index) != own
                    && let Some(isolation) = isolation
                {
                    isolation.spoil_evidence();
                }
            }
        }
        if accepted
            && let SendOutcome::Response(response) = &outcome
            && let Some(rejection) = &response.partially_rejected
        {
            self.note_partial_rejection(now, &request.purpose, rejection);
        }
        match request.purpose {
            Purpose::Batch { seqs, superseded } => {
                self.handle_batch_answer(now, seqs, superseded, request.body_len, verdict);
            }
            Purpose::Isolation { index, request } => {
                self.handle_isolation_answer(now, index, request, verdict);
            }
        }
    }

    /// The server accepted a request but says it dropped `rejection.count` of its
    /// records. They are acknowledged with the rest (the protocol forbids sending them
    /// again), and the rejection is counted, logged and shown in the status.
    fn note_partial_rejection(
        &mut self,
        now: DateTime<Utc>,
        purpose: &Purpose,
        rejection: &PartialRejection,
    ) {
        let seqs = match purpose {
            Purpose::Batch { seqs, .. } => seqs.clone(),
            Purpose::Isolation { request, .. } => request.seqs(),
        };
        let (Some(first), Some(last)) = (seqs.iter().min(), seqs.iter().max()) else {
            return;
        };
        self.counters.rejected_by_server += rejection.count;
        tracing::warn!(
            first = first.get(),
            last = last.get(),
            rejected = rejection.count,
            reason = %rejection.message,
            "the server accepted a batch but dropped some of its records; they are not sent again"
        );
        self.last_partial_rejection = Some(PartialRejectionReport {
            at: now,
            first: *first,
            last: *last,
            changes: seqs.len(),
            rejected: rejection.count,
            message: rejection.message.clone(),
        });
    }

    fn on_success(&mut self) {
        self.failures_in_row = 0;
        self.sizer.on_success();
        self.last_error = None;
        self.unblock();
    }

    fn unblock(&mut self) {
        if self.blocked.take().is_some() {
            self.timers.stop(Timer::BlockedProbe);
            tracing::info!("outbox unblocked");
        }
    }

    fn backoff_until(
        &mut self,
        now: DateTime<Utc>,
        attempts: u32,
        retry_after: Option<RetryAfter>,
    ) -> DateTime<Utc> {
        let wait = match retry_after {
            Some(retry_after) => {
                // The server's wait, and a random share of up to half of it more: a
                // fleet told the same Retry-After does not come back in lockstep.
                let wait = retry_after.delay_from(now).min(self.config.max_retry_after);
                let share = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                wait + wait.mul_f64(share / 2.0)
            }
            None => self.config.backoff.delay(attempts, &mut self.rng),
        };
        now + delta(wait)
    }

    fn retry_later(&mut self, seqs: &[Seq], at: DateTime<Utc>, reason: &str) {
        for seq in seqs {
            if let Some(slot) = self.window.get(*seq) {
                let delivery = slot.entry.delivery.failed(at, reason);
                self.store.pending.retry(*seq, delivery.clone());
                self.window.set_delivery(*seq, delivery);
            }
        }
    }

    fn block(&mut self, now: DateTime<Utc>, reason: String) {
        let probe_at = now + delta(self.config.blocked_probe_interval);
        tracing::warn!(%reason, %probe_at, "outbox blocked by a configuration problem; every change is kept");
        self.last_error = Some(reason.clone());
        self.blocked = Some(reason);
        self.timers.set(Timer::BlockedProbe, probe_at);
    }

    fn handle_batch_answer(
        &mut self,
        now: DateTime<Utc>,
        seqs: Vec<Seq>,
        superseded: Vec<Seq>,
        body_len: usize,
        verdict: Verdict,
    ) {
        let all: Vec<Seq> = seqs.iter().chain(&superseded).copied().collect();
        match verdict {
            Verdict::Ack => {
                for seq in &superseded {
                    if let Some(slot) = self.window.remove(*seq) {
                        self.store.pending.ack(&slot.entry.change);
                        self.counters.coalesced += 1;
                    }
                }
                self.ack(now, &seqs);
                for seq in &seqs {
                    if let Some(slot) = self.window.get_mut(*seq) {
                        slot.server_errors = 0;
                    }
                }
            }
            Verdict::Retry {
                overload: Overload::Capacity(capacity),
                ..
            } if seqs.len() > capacity => {
                // A batch over the channel's transactionCapacity fails every time: cut
                // it to the size Flume named and send again at once.
                self.sizer
                    .on_overload(seqs.len(), Overload::Capacity(capacity));
                self.window.set_state(&all, SlotState::Ready);
            }
            Verdict::Retry {
                overload,
                retry_after,
                reason,
                ..
            } => {
                self.sizer.on_overload(seqs.len(), overload);
                self.window.set_state(&all, SlotState::Ready);
                self.fail_and_back_off(now, &all, retry_after, reason);
            }
            Verdict::TooLarge { reason } => {
                self.window.set_state(&all, SlotState::Ready);
                if seqs.len() == 1 {
                    self.condemn(now, seqs[0], &reason);
                } else {
                    let first_alone = self
                        .window
                        .get(seqs[0])
                        .map(|slot| slot.entry.change.clone())
                        .map_or(0, |change| self.encoder.encoded_len(&change));
                    self.sizer.on_too_large((body_len / 2).max(first_alone));
                }
            }
            Verdict::Reject { rejection, reason } => {
                let mut errors = 0;
                if rejection == Rejection::ServerError {
                    for seq in &seqs {
                        if let Some(slot) = self.window.get_mut(*seq) {
                            slot.server_errors += 1;
                            errors = errors.max(slot.server_errors);
                        }
                    }
                }
                self.window.set_state(&superseded, SlotState::Ready);
                if rejection == Rejection::ServerError
                    && errors < self.config.isolation.isolate_after_server_errors
                {
                    // A passing 500 is most often the server's: retry the batch whole.
                    self.window.set_state(&seqs, SlotState::Ready);
                    self.fail_and_back_off(now, &seqs, None, reason);
                } else {
                    self.isolate(seqs, rejection, reason);
                }
            }
            Verdict::Block { reason } => {
                self.window.set_state(&all, SlotState::Ready);
                self.block(now, reason);
            }
        }
    }

    fn fail_and_back_off(
        &mut self,
        now: DateTime<Utc>,
        seqs: &[Seq],
        retry_after: Option<RetryAfter>,
        reason: String,
    ) {
        let attempts = seqs
            .iter()
            .filter_map(|seq| self.window.get(*seq))
            .map(|slot| slot.entry.delivery.attempts)
            .max()
            .unwrap_or(0)
            .max(self.failures_in_row);
        self.failures_in_row = self.failures_in_row.saturating_add(1);
        let until = self.backoff_until(now, attempts, retry_after);
        // The machine's backoff ends at the later of the one in force and this one.
        let backoff_ends = self
            .timers
            .get(Timer::Backoff)
            .map_or(until, |current| current.max(until));
        self.timers.set(Timer::Backoff, backoff_ends);
        self.retry_later(seqs, until, &reason);
        self.counters.retries += 1;
        tracing::debug!(%reason, %until, changes = seqs.len(), "batch retried after backoff");
        self.last_error = Some(reason);
    }

    fn isolate(&mut self, seqs: Vec<Seq>, rejection: Rejection, reason: String) {
        tracing::info!(changes = seqs.len(), %reason, "isolating the changes Flume refuses");
        self.counters.bisections += 1;
        self.last_error = Some(reason.clone());
        self.window.set_state(&seqs, SlotState::Isolating);
        let isolation = Isolation::new(seqs, rejection, &self.health);
        match self.isolations.iter().position(Option::is_none) {
            Some(free) => self.isolations[free] = Some(isolation),
            None => self.isolations.push(Some(isolation)),
        }
    }

    fn handle_isolation_answer(
        &mut self,
        now: DateTime<Utc>,
        index: usize,
        request: IsoRequest,
        verdict: Verdict,
    ) {
        let answer = match &verdict {
            Verdict::Ack => IsoAnswer::Accepted,
            Verdict::Reject { rejection, reason } => IsoAnswer::Rejected {
                rejection: *rejection,
                reason: reason.clone(),
            },
            Verdict::TooLarge { reason } => IsoAnswer::TooLarge {
                reason: reason.clone(),
            },
            Verdict::Retry { .. } | Verdict::Block { .. } => IsoAnswer::Failed,
        };
        let seqs = request.seqs();
        match verdict {
            Verdict::Retry {
                overload: Overload::Capacity(capacity),
                ..
            } if seqs.len() > capacity => {
                // Over the channel's transactionCapacity: the part is cut to the size
                // Flume named when it is sent again, at once.
                self.sizer
                    .on_overload(seqs.len(), Overload::Capacity(capacity));
            }
            Verdict::Retry {
                overload,
                retry_after,
                reason,
                ..
            } => {
                if !seqs.is_empty() {
                    self.sizer.on_overload(seqs.len(), overload);
                }
                self.fail_and_back_off(now, &seqs, retry_after, reason);
            }
            Verdict::Block { reason } => self.block(now, reason),
            Verdict::TooLarge { reason } if seqs.len() > 1 => {
                self.sizer.on_too_large(self.sizer.max_bytes() / 2);
                self.last_error = Some(reason);
            }
            Verdict::Reject { reason, .. } => {
                if !seqs.is_empty() {
                    self.retry_later(&seqs, now, &reason);
                }
                self.last_error = Some(reason);
            }
            _ => {}
        }
        let rules = self.iso_rules();
        let backoff = self.config.backoff;
        let rng = &mut self.rng;
        let mut backoff_until = |count: u32| now + delta(backoff.delay(count, &mut *rng));
        let Some(isolation) = self.isolations.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        let effects = isolation.handle(
            answer,
            &mut self.health,
            &self.window,
            &rules,
            &mut backoff_until,
        );
        for effect in effects {
            match effect {
                IsoEffect::Ack(seqs) => self.ack(now, &seqs),
                IsoEffect::Condemn { seq, reason } => self.condemn(now, seq, &reason),
                IsoEffect::BackOff { reason } => {
                    let held = self.isolations[index]
                        .as_ref()
                        .map(Isolation::seqs)
                        .unwrap_or_default();
                    let until = self.isolations[index]
                        .as_ref()
                        .and_then(Isolation::wake_at)
                        .unwrap_or(now);
                    self.retry_later(&held, until, &reason);
                    self.counters.retries += 1;
                    if self.total_order() {
                        self.timers.set(Timer::Backoff, until);
                    }
                }
                IsoEffect::Block { reason } => self.block(now, reason),
            }
        }
        if self.isolations[index]
            .as_ref()
            .is_some_and(Isolation::is_done)
        {
            self.isolations[index] = None;
        }
    }
}

/// How many changes a request carries.
fn request_events(purpose: &Purpose) -> usize {
    match purpose {
        Purpose::Batch { seqs, .. } => seqs.len(),
        Purpose::Isolation { request, .. } => request.seqs().len(),
    }
}
