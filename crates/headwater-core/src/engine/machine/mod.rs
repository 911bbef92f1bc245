//! The delivery step as a sans-IO state machine, in the manner of quinn-proto's
//! `Connection`: [`DeliveryMachine::poll_command`] says what to do next (claim from the
//! store, send a batch, record what happened, give up the lease),
//! [`DeliveryMachine::poll_timeout`] when to ask again, and the `handle_*` methods take
//! what happened. Every call takes `now`; nothing here reads a clock, awaits, or does
//! I/O, so every rule is tested without an executor, and faster than real time.
//! [`Syncer`](super::Syncer) is the async driver that performs what it asks.

mod isolation;
mod window;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use crate::flume::{BatchEncoder, Push};
use crate::model::Seq;
use crate::policy::{
    BatchSizer, ConcurrencyLimit, Overload, Rejection, RetryAfter, Verdict, classify,
};
use crate::store::{Claim, ClaimRequest, Outcome, Recorded, StoreError};
use crate::transport::SendOutcome;

use super::status::{SyncCounters, SyncStatus};
use super::{ConfigError, SyncConfig};

use isolation::{Health, IsoAnswer, IsoEffect, IsoRequest, IsoRules, Isolation};
use window::{SlotState, Window};

/// Names one request in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(u64);

/// A request to send: an encoded batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    /// Give this back with the answer.
    pub id: RequestId,
    /// The JSON array to POST.
    pub body: Vec<u8>,
    /// How many events it holds (zero for an empty probe).
    pub events: usize,
}

/// What the machine asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Call [`ChangeStore::claim`](crate::store::ChangeStore::claim) with this, then
    /// [`DeliveryMachine::handle_claimed`].
    Claim(ClaimRequest),
    /// Send this with the transport, then [`DeliveryMachine::handle_answer`]. Several
    /// may be in flight at once.
    Send(SendRequest),
    /// Call [`ChangeStore::record`](crate::store::ChangeStore::record) with this, then
    /// [`DeliveryMachine::handle_recorded`].
    Record(Outcome),
    /// Call [`ChangeStore::record_then_claim`](crate::store::ChangeStore::record_then_claim)
    /// with these, then [`DeliveryMachine::handle_recorded_then_claimed`]: an outcome to
    /// write while the window runs low, so the claim comes in the same store step.
    RecordThenClaim(Outcome, ClaimRequest),
    /// Call [`ChangeStore::release`](crate::store::ChangeStore::release), then
    /// [`DeliveryMachine::handle_released`]: the machine is shutting down.
    Release,
}

/// What a request in flight holds.
#[derive(Debug, Clone)]
enum Purpose {
    /// An ordinary batch (or the probe of a blocked outbox).
    Batch {
        seqs: Vec<Seq>,
        superseded: Vec<Seq>,
    },
    /// A request of an isolation.
    Isolation { index: usize, request: IsoRequest },
}

#[derive(Debug, Clone)]
struct InFlight {
    purpose: Purpose,
    sent_at: DateTime<Utc>,
    body_len: usize,
}

#[derive(Debug, Clone)]
struct Blocked {
    reason: String,
    probe_at: DateTime<Utc>,
}

/// Store work in progress or waiting.
#[derive(Debug, Default)]
struct StoreState {
    busy: bool,
    pending: Outcome,
    failures: u32,
    retry_at: Option<DateTime<Utc>>,
    last_claim_at: Option<DateTime<Utc>>,
}

/// The delivery state machine of one syncer. See the module docs.
#[derive(Debug)]
pub struct DeliveryMachine {
    config: SyncConfig,
    owner: String,
    encoder: BatchEncoder,
    sizer: BatchSizer,
    concurrency: ConcurrencyLimit,
    rng: ChaCha8Rng,
    window: Window,
    capacity: usize,
    requests: BTreeMap<RequestId, InFlight>,
    next_request: u64,
    isolations: Vec<Option<Isolation>>,
    store: StoreState,
    cursor: Option<Seq>,
    exhausted: bool,
    rescan: bool,
    lease_until: Option<DateTime<Utc>>,
    held_by_other: Option<DateTime<Utc>>,
    gate: Option<DateTime<Utc>>,
    failures_in_row: u32,
    blocked: Option<Blocked>,
    health: Health,
    last_error: Option<String>,
    counters: SyncCounters,
    shutting_down: bool,
    released: bool,
    paused: bool,
    /// Loaded changes are ready but none can be batched (each waits behind another
    /// change of its record).
    starved: bool,
    linger_until: Option<DateTime<Utc>>,
    /// The latest `now` seen, to notice a wall clock set back.
    last_now: Option<DateTime<Utc>>,
    /// Since when changes have waited with none delivered or set aside: the stall
    /// watchdog's clock. `None` while nothing waits.
    progress_at: Option<DateTime<Utc>>,
    /// Changes finished (delivered, dead-lettered, coalesced, quarantined) when
    /// `progress_at` was last set.
    progress_mark: u64,
    stall_warned: bool,
    /// Delivery latencies not yet taken, when kept.
    latencies: Option<Vec<Duration>>,
    recycled: Vec<Vec<u8>>,
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::days(36_500))
}

impl DeliveryMachine {
    /// A machine for `config`, if it is valid.
    pub fn new(config: SyncConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let sizer = BatchSizer::new(config.batch);
        let capacity = (config.max_in_flight * config.batch.max_events * 2).max(256);
        Ok(DeliveryMachine {
            owner: config.owner_name(),
            encoder: BatchEncoder::new(config.mapping.clone()),
            concurrency: ConcurrencyLimit::new(config.max_in_flight, config.adaptive_concurrency),
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            window: Window::default(),
            capacity,
            requests: BTreeMap::new(),
            next_request: 0,
            isolations: Vec::new(),
            store: StoreState::default(),
            cursor: None,
            exhausted: false,
            rescan: false,
            lease_until: None,
            held_by_other: None,
            gate: None,
            failures_in_row: 0,
            blocked: None,
            health: Health::default(),
            last_error: None,
            counters: SyncCounters::default(),
            shutting_down: false,
            released: false,
            paused: false,
            progress_at: None,
            progress_mark: 0,
            stall_warned: false,
            latencies: None,
            starved: false,
            linger_until: None,
            last_now: None,
            recycled: Vec::new(),
            sizer,
            config,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    /// The name the machine holds the outbox's lease under.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The batch size in force right now.
    pub fn batch_size(&self) -> usize {
        self.sizer.max_events()
    }

    /// The byte limit of a batch in force right now.
    pub fn max_bytes(&self) -> usize {
        self.sizer.max_bytes()
    }

    /// How many requests may be in flight right now.
    pub fn in_flight_limit(&self) -> usize {
        self.concurrency.limit()
    }

    /// Requests in flight.
    pub fn requests_in_flight(&self) -> usize {
        self.requests.len()
    }

    /// The changes request `id` carries, in seq order, while it is in flight (empty for
    /// an empty probe, `None` once answered): for drivers that trace requests, and for
    /// the fleet simulator, which tells the simulated tier what each request commits
    /// without decoding its body.
    pub fn request_seqs(&self, id: RequestId) -> Option<Vec<Seq>> {
        self.requests
            .get(&id)
            .map(|request| match &request.purpose {
                Purpose::Batch { seqs, .. } => seqs.clone(),
                Purpose::Isolation { request, .. } => request.seqs(),
            })
    }

    fn total_order(&self) -> bool {
        self.config.max_in_flight == 1
    }

    fn horizon(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + delta(self.config.schedule_horizon())
    }

    fn iso_rules(&self) -> IsoRules {
        IsoRules {
            total_order: self.total_order(),
            server_error_strikes: self.config.isolation.server_error_strikes,
            max_events: self.sizer.max_events(),
        }
    }

    /// The machine's view of delivery, for a status badge (the store adds its counts).
    pub fn status(&self, now: DateTime<Utc>) -> SyncStatus {
        SyncStatus {
            stalled_since: self.stalled_since(now),
            in_flight: self.window.busy(),
            blocked: self.blocked.as_ref().map(|b| b.reason.clone()),
            last_error: self.last_error.clone(),
            next_attempt_at: self.next_attempt_at(now),
            batch_size: self.sizer.max_events(),
            in_flight_limit: self.concurrency.limit(),
            counters: self.counters,
            ..SyncStatus::default()
        }
    }

    /// Since when the head of the outbox has not moved, if that is longer than
    /// `stall_after` while changes wait and the outbox is neither blocked nor paused.
    pub fn stalled_since(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let after = delta(self.config.stall_after?);
        if self.blocked.is_some() || self.paused || self.shutting_down {
            return None;
        }
        self.progress_at.filter(|since| now - *since >= after)
    }

    /// Moves the watchdog's clock: it restarts whenever a change is finished, and stops
    /// while nothing waits.
    fn track_progress(&mut self, now: DateTime<Utc>) {
        let counters = &self.counters;
        let finished =
            counters.delivered + counters.dead_lettered + counters.coalesced + counters.quarantined;
        let waiting = !self.window.is_empty() || !self.requests.is_empty();
        if finished != self.progress_mark || !waiting {
            self.progress_mark = finished;
            self.progress_at = waiting.then_some(now);
            self.stall_warned = false;
        } else if self.progress_at.is_none() {
            self.progress_at = Some(now);
        }
        if !self.stall_warned
            && let Some(since) = self.stalled_since(now)
        {
            self.stall_warned = true;
            tracing::warn!(
                %since,
                waiting = self.window.len(),
                last_error = self.last_error.as_deref().unwrap_or("none"),
                "delivery has stalled: no change delivered for longer than stall_after"
            );
        }
    }

    /// When the machine will send next, if nothing can be sent before then: a blocked
    /// outbox's probe, the end of a backoff, or the first retry due.
    fn next_attempt_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let Some(blocked) = &self.blocked {
            return Some(blocked.probe_at);
        }
        if let Some(gate) = self.gate.filter(|gate| *gate > now) {
            return Some(gate);
        }
        if !self.requests.is_empty() {
            // Sending, not waiting (and this runs on every turn: no scan of the window).
            return None;
        }
        let horizon = self.horizon(now);
        if self.window.any_due(now, horizon) {
            return None;
        }
        let mut next = self.window.earliest_retry(now, horizon);
        for isolation in self.isolations.iter().flatten() {
            match isolation.wake_at().filter(|at| *at > now) {
                Some(at) => next = Some(next.map_or(at, |next| next.min(at))),
                None => return None,
            }
        }
        next
    }

    /// Something was captured at `now`: look at the store again (after the configured
    /// linger, if the syncer was idle, so that a burst of captures shares a request).
    pub fn handle_captured(&mut self, now: DateTime<Utc>) {
        if self.exhausted && !self.config.linger.is_zero() && self.linger_until.is_none() {
            self.linger_until = Some(now + delta(self.config.linger));
        }
        self.exhausted = false;
    }

    /// Stops (or resumes) starting requests; captures and requests in flight go on.
    pub fn handle_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Dead letters were requeued (with seqs below what was read): read the outbox from
    /// its head again at the next quiet moment.
    pub fn handle_requeued(&mut self) {
        self.rescan = true;
        self.exhausted = false;
    }

    /// Skip the wait of a backoff or a blocked outbox's probe interval: try now.
    pub fn handle_flush_now(&mut self) {
        self.gate = None;
        self.exhausted = false;
        self.store.retry_at = None;
        if let Some(blocked) = &mut self.blocked {
            blocked.probe_at = DateTime::<Utc>::MIN_UTC;
        }
        self.window.clear_retry_times();
    }

    /// Stop: no new requests; the ones in flight finish and are recorded, then the lease
    /// is given up.
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
    }

    /// Whether the machine has stopped (after [`shutdown`](Self::shutdown)).
    pub fn is_stopped(&self) -> bool {
        self.released
    }

    /// What to do next at `now`, if anything. Call until it returns `None`, then wait for
    /// an answer, a store result, [`poll_timeout`](Self::poll_timeout), or a capture.
    pub fn poll_command(&mut self, now: DateTime<Utc>) -> Option<Command> {
        if self.released {
            return None;
        }
        self.observe_clock(now);
        self.track_progress(now);
        // An idle wire is filled first: a batch ready to go goes out before the store
        // step that writes the last answers (the wire stood idle for its length).
        if self.requests.is_empty()
            && !(self.shutting_down || self.paused || self.held_by_other.is_some())
            && let Some(request) = self.next_send(now)
        {
            return Some(Command::Send(request));
        }
        if !self.store.busy && self.store.retry_at.is_none_or(|at| at <= now) {
            // Outcomes are written as soon as the store is free (an acknowledgement not
            // yet written is one a crash sends again, and only a lost answer may make a
            // duplicate), unless the window runs low: then the claim comes with them in
            // one store step. Written alone first, they let the window empty before
            // each claim, and the wire stood idle for a round trip after it.
            let hungry = !self.shutting_down && self.wants_changes();
            if !self.store.pending.is_empty() && !hungry {
                self.store.busy = true;
                return Some(Command::Record(std::mem::take(&mut self.store.pending)));
            }
            if self.shutting_down {
                if self.requests.is_empty() {
                    self.store.busy = true;
                    return Some(Command::Release);
                }
                return None;
            }
            if let Some(claim) = self.claim_if_needed(now) {
                self.store.busy = true;
                self.store.last_claim_at = Some(now);
                if self.store.pending.is_empty() {
                    return Some(Command::Claim(claim));
                }
                let outcome = std::mem::take(&mut self.store.pending);
                return Some(Command::RecordThenClaim(outcome, claim));
            }
            if !self.store.pending.is_empty() {
                self.store.busy = true;
                return Some(Command::Record(std::mem::take(&mut self.store.pending)));
            }
        }
        if self.shutting_down || self.paused || self.held_by_other.is_some() {
            return None;
        }
        self.next_send(now).map(Command::Send)
    }

    /// A wall clock set back moves every wait of the machine back with it: a backoff of
    /// 250 ms stays 250 ms, instead of lasting until the clock catches up. (Times stored
    /// with changes are covered by the horizon rule instead.)
    fn observe_clock(&mut self, now: DateTime<Utc>) {
        let last = self.last_now.replace(now);
        let Some(back) = last.filter(|last| *last > now).map(|last| last - now) else {
            return;
        };
        let shift = |at: &mut Option<DateTime<Utc>>| {
            if let Some(time) = at.as_mut() {
                *time -= back;
            }
        };
        shift(&mut self.gate);
        shift(&mut self.store.retry_at);
        shift(&mut self.store.last_claim_at);
        shift(&mut self.linger_until);
        shift(&mut self.lease_until);
        shift(&mut self.held_by_other);
        if let Some(blocked) = &mut self.blocked {
            blocked.probe_at -= back;
        }
        for isolation in self.isolations.iter_mut().flatten() {
            isolation.shift_times(back);
        }
    }

    /// Whether the window needs more changes from the store: it is running low, or
    /// every loaded change waits behind another of its record (then more are read, up to
    /// a bound, so that other records keep going). Changes in requests or isolations do
    /// not count.
    fn wants_changes(&self) -> bool {
        let ready = self.window.len() - self.window.busy();
        !self.exhausted
            && (ready < self.capacity / 2
                || (self.starved && self.window.len() < self.capacity * 8))
    }

    fn claim_if_needed(&mut self, now: DateTime<Utc>) -> Option<ClaimRequest> {
        if let Some(until) = self.linger_until {
            if until > now {
                return None;
            }
            self.linger_until = None;
        }
        if let Some(until) = self.held_by_other {
            let poll = self
                .store
                .last_claim_at
                .map(|at| at + delta(self.config.idle_poll_interval));
            let due = [Some(until), poll].into_iter().flatten().min();
            if due.is_some_and(|at| at > now) {
                return None;
            }
        }
        let quiet = self.requests.is_empty() && self.store.pending.is_empty();
        if self.rescan && quiet {
            self.rescan = false;
            self.cursor = None;
            self.exhausted = false;
        }
        let lease = delta(self.config.lease);
        let renew = self
            .lease_until
            .is_none_or(|until| until - now < lease / 2 || until > self.horizon(now));
        let idle_poll = self.exhausted
            && self.window.is_empty()
            && self
                .store
                .last_claim_at
                .is_none_or(|at| now >= at + delta(self.config.idle_poll_interval));
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
            lease_until: match self.lease_until {
                Some(until) if !renew => until,
                _ => now + lease,
            },
            horizon: self.horizon(now),
            after: self.cursor,
            limit,
        })
    }

    /// When to call [`poll_command`](Self::poll_command) again if nothing else happens
    /// first: a backoff ends, a retry falls due, a blocked outbox probes, the lease needs
    /// renewing, or the idle poll.
    pub fn poll_timeout(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.released {
            return None;
        }
        let mut times: Vec<DateTime<Utc>> = Vec::new();
        if self.store.busy {
            return None;
        }
        if let Some(at) = self.store.retry_at {
            times.push(at);
        }
        if let Some(at) = self.linger_until {
            times.push(at);
        }
        let idle = delta(self.config.idle_poll_interval);
        if let Some(until) = self.held_by_other {
            times.push(until);
        }
        if let Some(at) = self.store.last_claim_at {
            times.push(at + idle);
        }
        if let Some(until) = self.lease_until
            && (!self.window.is_empty() || !self.requests.is_empty())
        {
            times.push(until - delta(self.config.lease) / 2);
        }
        if let (Some(since), Some(after), false) =
            (self.progress_at, self.config.stall_after, self.stall_warned)
        {
            // Wake to notice the stall and say so.
            times.push(since + delta(after));
        }
        if let Some(blocked) = &self.blocked {
            times.push(blocked.probe_at);
        } else {
            if let Some(gate) = self.gate {
                times.push(gate);
            }
            let horizon = self.horizon(now);
            if let Some(at) = self.window.earliest_retry(now, horizon) {
                times.push(at);
            }
            times.extend(
                self.isolations
                    .iter()
                    .flatten()
                    .filter_map(Isolation::wake_at),
            );
        }
        times.into_iter().filter(|at| *at > now).min()
    }

    fn allocate_body(&mut self) -> Vec<u8> {
        self.recycled.pop().unwrap_or_default()
    }

    fn next_send(&mut self, now: DateTime<Utc>) -> Option<SendRequest> {
        let limit = if self.blocked.is_some() {
            if self.blocked.as_ref().is_some_and(|b| b.probe_at > now) || !self.requests.is_empty()
            {
                return None;
            }
            1
        } else {
            if self.gate.is_some_and(|gate| gate > now) {
                return None;
            }
            self.concurrency.limit()
        };
        if self.requests.len() >= limit {
            return None;
        }
        let isolating = self
            .requests
            .values()
            .filter(|request| matches!(request.purpose, Purpose::Isolation { .. }))
            .count();
        // Isolations never take every slot while other changes could go: the answers
        // to other changes are what tells a poisoned change from a failing server.
        if isolating > 0
            && !self.total_order()
            && let Some(request) = self.next_batch(now)
        {
            return Some(request);
        }
        if let Some(request) = self.next_isolation_request(now) {
            return Some(request);
        }
        if self.total_order() && self.isolations.iter().flatten().next().is_some() {
            return None;
        }
        self.next_batch(now)
    }

    fn next_isolation_request(&mut self, now: DateTime<Utc>) -> Option<SendRequest> {
        let rules = self.iso_rules();
        for index in 0..self.isolations.len() {
            let Some(isolation) = self.isolations[index].as_mut() else {
                continue;
            };
            let Some(request) = isolation.next_request(now, &self.health, &self.window, &rules)
            else {
                continue;
            };
            let mut body = self.recycled.pop().unwrap_or_default();
            self.encoder.start(&mut body);
            let seqs = request.seqs();
            let mut events = 0;
            for seq in &seqs {
                if let Some(slot) = self.window.get(*seq) {
                    // Parts come from a batch that fit; the configured limit bounds them.
                    if self
                        .encoder
                        .push(&mut body, events, &slot.entry.change, usize::MAX)
                        == Push::Added
                    {
                        events += 1;
                    }
                }
            }
            self.encoder.finish(&mut body);
            if matches!(request, IsoRequest::Probe(_)) {
                self.counters.probes += 1;
            }
            return Some(self.launch(now, Purpose::Isolation { index, request }, body, events));
        }
        None
    }

    fn launch(
        &mut self,
        now: DateTime<Utc>,
        purpose: Purpose,
        body: Vec<u8>,
        events: usize,
    ) -> SendRequest {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.requests.insert(
            id,
            InFlight {
                purpose,
                sent_at: now,
                body_len: body.len(),
            },
        );
        self.concurrency.on_start(self.requests.len());
        self.counters.requests += 1;
        SendRequest { id, body, events }
    }

    fn next_batch(&mut self, now: DateTime<Utc>) -> Option<SendRequest> {
        let horizon = self.horizon(now);
        loop {
            let picked = self.window.candidates(
                now,
                horizon,
                self.sizer.max_events(),
                self.total_order(),
                self.config.coalesce,
            );
            if picked.send.is_empty() {
                self.starved = self.window.len() > self.window.busy();
                return None;
            }
            self.starved = false;
            // Changes past their retry limits are dead-lettered instead of sent.
            let expired = self.expire(now, &picked.send);
            if !expired.is_empty() {
                continue;
            }
            let mut body = self.allocate_body();
            self.encoder.start(&mut body);
            let mut sent = Vec::with_capacity(picked.send.len());
            let max_bytes = self.sizer.max_bytes();
            for seq in &picked.send {
                let Some(slot) = self.window.get(*seq) else {
                    continue;
                };
                match self
                    .encoder
                    .push(&mut body, sent.len(), &slot.entry.change, max_bytes)
                {
                    Push::Added => sent.push(*seq),
                    Push::Full => break,
                }
            }
            if sent.is_empty() {
                // The first change alone passes the byte limit in force. If it fits the
                // configured limit, the lowered one may be a passing proxy's: send it
                // alone once. Beyond the configured limit it can never be sent.
                let first = picked.send[0];
                let change = self
                    .window
                    .get(first)
                    .map(|slot| slot.entry.change.clone())?;
                let alone = self.encoder.encoded_len(&change);
                let configured = self.sizer.configured().max_bytes;
                if alone <= configured {
                    self.encoder.start(&mut body);
                    let _ = self.encoder.push(&mut body, 0, &change, usize::MAX);
                    sent.push(first);
                } else {
                    let reason = format!(
                        "the change encodes to {alone} bytes, over the batch limit of {configured} bytes"
                    );
                    self.recycled.push(body);
                    self.condemn(now, first, &reason);
                    continue;
                }
            }
            self.encoder.finish(&mut body);
            // Superseded changes ride with the batch holding their record's latest change.
            let superseded: Vec<Seq> = picked
                .superseded
                .into_iter()
                .filter(|seq| {
                    let record = self.window.get(*seq).map(|slot| slot.record);
                    sent.iter()
                        .any(|s| self.window.get(*s).map(|slot| slot.record) == record)
                })
                .collect();
            self.window.set_state(&sent, SlotState::Sending);
            self.window.set_state(&superseded, SlotState::Sending);
            let events = sent.len();
            return Some(self.launch(
                now,
                Purpose::Batch {
                    seqs: sent,
                    superseded,
                },
                body,
                events,
            ));
        }
    }

    /// Dead-letters the changes among `seqs` that passed a retry limit; returns them.
    fn expire(&mut self, now: DateTime<Utc>, seqs: &[Seq]) -> Vec<Seq> {
        let limits = self.config.retry_limits;
        if limits.max_attempts.is_none() && limits.max_age.is_none() {
            return Vec::new();
        }
        let mut expired = Vec::new();
        for seq in seqs {
            let Some(slot) = self.window.get(*seq) else {
                continue;
            };
            let attempts = slot.entry.delivery.attempts;
            let too_many = limits.max_attempts.is_some_and(|max| attempts >= max);
            let too_old = limits
                .max_age
                .is_some_and(|age| now - slot.entry.change.captured_at() > delta(age));
            if too_many || too_old {
                let last = slot.entry.delivery.last_error.as_deref().unwrap_or("none");
                let why = if too_many {
                    "attempt limit"
                } else {
                    "age limit"
                };
                let reason =
                    format!("gave up at the {why} after {attempts} attempts; last error: {last}");
                expired.push((*seq, reason));
            }
        }
        let seqs: Vec<Seq> = expired.iter().map(|(seq, _)| *seq).collect();
        for (seq, reason) in expired {
            self.condemn(now, seq, &reason);
        }
        seqs
    }

    /// Dead-letters one loaded change.
    fn condemn(&mut self, now: DateTime<Utc>, seq: Seq, reason: &str) {
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

    /// The answer to request `id` arrived at `now`. `body` is the request's buffer,
    /// given back for reuse.
    pub fn handle_answer(
        &mut self,
        now: DateTime<Utc>,
        id: RequestId,
        outcome: SendOutcome,
        body: Vec<u8>,
    ) {
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
        self.health.last_any = Some(accepted);
        if accepted && real {
            self.health.real_successes += 1;
            self.health.refused_alone.clear();
        }
        if accepted && real {
            self.on_success();
        } else if accepted && self.blocked.take().is_some() {
            tracing::info!("outbox unblocked");
        }
        match request.purpose {
            Purpose::Batch { seqs, superseded } => {
                self.handle_batch_answer(now, seqs, superseded, request.body_len, verdict)
            }
            Purpose::Isolation { index, request } => {
                self.handle_isolation_answer(now, index, request, verdict)
            }
        }
    }

    fn on_success(&mut self) {
        self.failures_in_row = 0;
        self.sizer.on_success();
        self.last_error = None;
        if self.blocked.take().is_some() {
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
            Some(retry_after) => retry_after.delay_from(now).min(self.config.max_retry_after),
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
        self.blocked = Some(Blocked { reason, probe_at });
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
        self.gate = Some(self.gate.map_or(until, |gate| gate.max(until)));
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
                        self.gate = Some(until);
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

    /// The store answered a [`Command::Claim`].
    pub fn handle_claimed(&mut self, now: DateTime<Utc>, request: &ClaimRequest, claim: Claim) {
        self.store.busy = false;
        match claim {
            Claim::Held(lease) => {
                self.store.failures = 0;
                self.held_by_other = Some(lease.until);
                self.lease_until = None;
                self.window.drop_ready();
                self.cursor = None;
                self.exhausted = false;
            }
            Claim::Granted(entries) => {
                self.store.failures = 0;
                self.held_by_other = None;
                self.lease_until = Some(request.lease_until);
                if request.limit > 0 {
                    self.exhausted = entries.len() < request.limit;
                }
                for entry in entries {
                    match entry {
                        Ok(entry) => {
                            let seq = entry.change.seq();
                            self.cursor = Some(self.cursor.map_or(seq, |cursor| cursor.max(seq)));
                            if !self.window.contains(seq) {
                                self.window.insert(entry);
                            }
                        }
                        Err(unreadable) => {
                            let seq = unreadable.seq;
                            self.cursor = Some(self.cursor.map_or(seq, |cursor| cursor.max(seq)));
                            tracing::warn!(seq = %seq, error = %unreadable.error, "quarantining an outbox row that does not decode");
                            self.store.pending.dead_letter(unreadable.quarantine(now));
                            self.counters.quarantined += 1;
                        }
                    }
                }
            }
        }
    }

    /// A store command failed: the machine tries it again after a backoff. For a
    /// [`Command::Record`], give its outcome back: nothing of it was written.
    pub fn handle_store_failed(
        &mut self,
        now: DateTime<Utc>,
        outcome: Option<Outcome>,
        error: &StoreError,
    ) {
        self.store.busy = false;
        if let Some(mut again) = outcome {
            again.merge(std::mem::take(&mut self.store.pending));
            self.store.pending = again;
        }
        self.store_failed(now, error);
    }

    fn store_failed(&mut self, now: DateTime<Utc>, error: &StoreError) {
        self.store.failures = self.store.failures.saturating_add(1);
        let wait = self.config.backoff.ceiling(self.store.failures);
        self.store.retry_at = Some(now + delta(wait));
        let text = error.describe();
        tracing::warn!(error = %text, "store error; retrying");
        self.last_error = Some(format!("store error: {text}"));
    }

    /// The store wrote a [`Command::Record`].
    pub fn handle_recorded(&mut self, recorded: Recorded) {
        self.store.busy = false;
        match recorded {
            Recorded::Applied => self.store.failures = 0,
            Recorded::LeaseLost => {
                tracing::warn!("the outbox's lease passed to another syncer; it sends from now on");
                self.store.failures = 0;
                self.lease_until = None;
                self.window.drop_ready();
                self.cursor = None;
                self.exhausted = false;
            }
        }
    }

    /// The store carried out a [`Command::RecordThenClaim`]: the outcome was written
    /// (`recorded`), and then the claim gave `claim` (or failed). After a lost lease the
    /// claim's changes are not taken: the machine starts over from the store.
    pub fn handle_recorded_then_claimed(
        &mut self,
        now: DateTime<Utc>,
        recorded: Recorded,
        request: &ClaimRequest,
        claim: Result<Claim, &StoreError>,
    ) {
        let lost = recorded == Recorded::LeaseLost;
        self.handle_recorded(recorded);
        match claim {
            Ok(_) if lost => {}
            Ok(claim) => self.handle_claimed(now, request, claim),
            Err(error) => self.handle_store_failed(now, None, error),
        }
    }

    /// The store carried out a [`Command::Release`] (or failed to: the lease then lapses
    /// on its own).
    pub fn handle_released(&mut self) {
        self.store.busy = false;
        self.released = true;
    }
}

#[cfg(test)]
mod tests;
