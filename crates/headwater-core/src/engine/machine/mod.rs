//! The delivery step as a sans-IO state machine, in the manner of quinn-proto's
//! `Connection`. Nothing here reads a clock, awaits, or does I/O: every call takes
//! `now`, so every rule is tested without an executor, and faster than real time.
//! [`Syncer`](super::Syncer) is the async driver that performs what it asks, and the
//! fleet simulator runs a hundred thousand of them.
//!
//! The driver's loop:
//!
//! 1. **Drain**: call [`DeliveryMachine::poll_command`] until it returns `None`, and
//!    carry out each [`Command`] (claim from the store, send a batch, record what
//!    happened, give up the lease). Several sends may be under way at once; store
//!    commands come one at a time.
//! 2. **Wait** until [`DeliveryMachine::poll_timeout`], or until something happens.
//! 3. **Feed** what happened: an answer ([`handle_answer`](DeliveryMachine::handle_answer)),
//!    a store result (`handle_claimed`, `handle_recorded`, …), a capture, a pause.
//!    Then drain again.
//!
//! How the code is laid out: this file holds the state and the loop; `timers` every
//! deadline; `batches` what goes into the next request; `answers` what an answer means
//! for the changes it carried; `store_steps` the claims and outcomes; `watchdog` the
//! stall watchdog and latencies; `window` the changes read from the store;
//! `isolation` taking a refused batch apart.

mod answers;
mod batches;
mod isolation;
mod store_steps;
mod timers;
mod watchdog;
mod window;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::engine::PartialRejectionReport;
use crate::model::Seq;
use crate::policy::{BatchSizer, ConcurrencyLimit, Pacer};
use crate::protocol::Codec;
use crate::store::ClaimRequest;
use crate::store::Outcome;
use crate::transport::BodyFormat;

use super::status::{SyncCounters, SyncStatus};
use super::{ConfigError, SyncConfig};

use isolation::{Health, IsoRequest, IsoRules, Isolation};
use store_steps::StoreSteps;
use timers::{Timer, TimerTable};
use watchdog::Watchdog;
use window::Window;

/// Names one request in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(u64);

/// A request to send: an encoded batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    /// Give this back with the answer.
    pub id: RequestId,
    /// The body to POST: a JSON array of Flume events, or the configured protocol's.
    pub body: Vec<u8>,
    /// How many events it holds (zero for an empty probe).
    pub events: usize,
    /// The route of every change it holds, when batches are cut by route
    /// ([`SyncConfig::routes`]); `None` otherwise, and for probes.
    pub route: Option<usize>,
    /// What the body is (the configured protocol's format).
    pub format: BodyFormat,
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

/// Where the machine is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    /// Delivering.
    Running,
    /// No new requests; the ones in flight finish and are recorded, then the lease is
    /// given up.
    ShuttingDown,
    /// The lease was given up: nothing more to do.
    Stopped,
}

/// The delivery state machine of one syncer. See the module docs.
#[derive(Debug)]
pub struct DeliveryMachine {
    config: SyncConfig,
    owner: String,
    encoder: Codec,
    sizer: BatchSizer,
    concurrency: ConcurrencyLimit,
    pacer: Pacer,
    rng: ChaCha8Rng,
    window: Window,
    /// How many changes the window reads ahead.
    capacity: usize,
    /// The configuration's schedule horizon (computed once: it is asked for at every
    /// step).
    horizon_ahead: TimeDelta,
    requests: BTreeMap<RequestId, InFlight>,
    next_request: u64,
    isolations: Vec<Option<Isolation>>,
    store: StoreSteps,
    timers: TimerTable,
    lifecycle: Lifecycle,
    paused: bool,
    /// Loaded changes are ready but none can be batched (each waits behind another
    /// change of its record).
    starved: bool,
    /// Failed requests since the last success: the exponent of the next backoff.
    failures_in_row: u32,
    /// Why the outbox is blocked by a configuration problem, if it is.
    blocked: Option<String>,
    health: Health,
    last_error: Option<String>,
    counters: SyncCounters,
    last_partial_rejection: Option<PartialRejectionReport>,
    /// The latest `now` seen, to notice a wall clock set back.
    last_now: Option<DateTime<Utc>>,
    watchdog: Watchdog,
    /// Delivery latencies not yet taken, when kept.
    latencies: Option<Vec<Duration>>,
    recycled: Vec<Vec<u8>>,
}

/// Mixed into the seed for the pacer's one draw.
const PACING_STREAM: u64 = 0x5851_f42d_4c95_7f2d;

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::days(36_500))
}

impl DeliveryMachine {
    /// A machine for `config`, if it is valid.
    pub fn new(config: SyncConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let sizer = BatchSizer::new(config.batch);
        let capacity = (config.max_in_flight * config.batch.max_events * 2).max(256);
        Ok(Self {
            owner: config.owner_name(),
            encoder: Codec::new(&config.protocol, &config.mapping),
            concurrency: ConcurrencyLimit::new(config.max_in_flight, config.adaptive_concurrency),
            pacer: Pacer::new(config.pacing).with_spread(
                // A draw of its own, so that the jitter's stream stays as it was.
                (ChaCha8Rng::seed_from_u64(config.seed ^ PACING_STREAM).next_u64() >> 11) as f64
                    / (1u64 << 53) as f64,
            ),
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            window: Window::default(),
            capacity,
            horizon_ahead: delta(config.schedule_horizon()),
            requests: BTreeMap::new(),
            next_request: 0,
            isolations: Vec::new(),
            store: StoreSteps::default(),
            timers: TimerTable::default(),
            lifecycle: Lifecycle::Running,
            paused: false,
            starved: false,
            failures_in_row: 0,
            blocked: None,
            health: Health::default(),
            last_error: None,
            counters: SyncCounters::default(),
            last_partial_rejection: None,
            last_now: None,
            watchdog: Watchdog::default(),
            latencies: None,
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

    /// The rate a backlog goes out at after failures (events/s), while pacing holds
    /// sends back.
    pub fn paced_rate(&self) -> Option<f64> {
        self.pacer.rate()
    }

    /// Running totals since the machine started.
    pub fn counters(&self) -> SyncCounters {
        self.counters
    }

    fn total_order(&self) -> bool {
        self.config.max_in_flight == 1
    }

    fn horizon(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + self.horizon_ahead
    }

    fn iso_rules(&self) -> IsoRules {
        IsoRules {
            total_order: self.total_order(),
            server_error_strikes: self.config.isolation.server_error_strikes,
            max_events: self.sizer.max_events(),
            quiet: self.requests.is_empty(),
        }
    }

    /// Whether another syncer holds the outbox's lease.
    fn held_by_other(&self) -> bool {
        self.timers.is_armed(Timer::OtherLease)
    }

    /// Whether requests may start (requests in flight go on either way).
    fn sending(&self) -> bool {
        self.lifecycle == Lifecycle::Running && !self.paused && !self.held_by_other()
    }

    /// The machine's view of delivery at `now`, for a status badge (the store adds its
    /// counts).
    pub fn status(&self, now: DateTime<Utc>) -> SyncStatus {
        SyncStatus {
            stalled_since: self.stalled_since(now),
            in_flight: self.window.busy(),
            blocked: self.blocked.clone(),
            last_error: self.last_error.clone(),
            next_attempt_at: self.next_attempt_at(now),
            batch_size: self.sizer.max_events(),
            in_flight_limit: self.concurrency.limit(),
            counters: self.counters,
            last_partial_rejection: self.last_partial_rejection.clone(),
            ..SyncStatus::default()
        }
    }

    /// When the machine will send next, if nothing can be sent before then: a blocked
    /// outbox's probe, the end of a backoff, or the first retry due.
    fn next_attempt_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.blocked.is_some() {
            return self.timers.get(Timer::BlockedProbe);
        }
        if let Some(backoff_ends) = self.timers.get(Timer::Backoff).filter(|ends| *ends > now) {
            return Some(backoff_ends);
        }
        if !self.requests.is_empty() {
            // Sending, not waiting.
            return None;
        }
        let horizon = self.horizon(now);
        // Changes that are due wait for nothing, unless pacing holds them back.
        let paced = self.timers.get(Timer::Pace).filter(|at| *at > now);
        if paced.is_none() && self.window.any_due(now, horizon) {
            return None;
        }
        let mut next = self.window.earliest_retry(now, horizon);
        if let Some(paced) = paced {
            next = Some(next.map_or(paced, |next| next.min(paced)));
        }
        for isolation in self.isolations.iter().flatten() {
            match isolation.wake_at().filter(|at| *at > now) {
                Some(at) => next = Some(next.map_or(at, |next| next.min(at))),
                None => return None,
            }
        }
        next
    }

    /// A wall clock set back moves every wait of the machine back with it: a backoff of
    /// 250 ms stays 250 ms, instead of lasting until the clock catches up. (Times stored
    /// with changes are covered by the horizon rule instead.) Every call that takes
    /// `now` starts here.
    fn observe_clock(&mut self, now: DateTime<Utc>) {
        let last = self.last_now.replace(now);
        let Some(back) = last.filter(|last| *last > now).map(|last| last - now) else {
            return;
        };
        self.timers.shift_back(back);
        self.pacer.shift_back(back);
        for isolation in self.isolations.iter_mut().flatten() {
            isolation.shift_times(back);
        }
    }

    /// Something was captured at `now`: look at the store again (after the configured
    /// linger, if the syncer was idle, so that a burst of captures shares a request).
    pub fn handle_captured(&mut self, now: DateTime<Utc>) {
        self.observe_clock(now);
        if self.store.exhausted
            && !self.config.linger.is_zero()
            && !self.timers.is_armed(Timer::Linger)
        {
            self.timers
                .set(Timer::Linger, now + delta(self.config.linger));
        }
        self.store.exhausted = false;
    }

    /// Stops (or resumes) starting requests at `now`; captures and requests in flight go
    /// on.
    pub fn handle_paused(&mut self, now: DateTime<Utc>, paused: bool) {
        self.observe_clock(now);
        self.paused = paused;
    }

    /// Dead letters were requeued (with seqs below what was read): read the outbox from
    /// its head again at the next quiet moment.
    pub fn handle_requeued(&mut self, now: DateTime<Utc>) {
        self.observe_clock(now);
        self.store.rescan = true;
        self.store.exhausted = false;
    }

    /// Skip the wait of a backoff or a blocked outbox's probe interval: try now.
    pub fn handle_flush_now(&mut self, now: DateTime<Utc>) {
        self.observe_clock(now);
        self.timers.stop(Timer::Backoff);
        self.timers.stop(Timer::StoreRetry);
        self.store.exhausted = false;
        if self.blocked.is_some() {
            self.timers
                .set(Timer::BlockedProbe, DateTime::<Utc>::MIN_UTC);
        }
        self.window.clear_retry_times();
    }

    /// Stop: no new requests; the ones in flight finish and are recorded, then the lease
    /// is given up.
    pub fn shutdown(&mut self) {
        if self.lifecycle == Lifecycle::Running {
            self.lifecycle = Lifecycle::ShuttingDown;
        }
    }

    /// Whether the machine has stopped (after [`shutdown`](Self::shutdown)).
    pub fn is_stopped(&self) -> bool {
        self.lifecycle == Lifecycle::Stopped
    }

    /// What to do next at `now`, if anything. Call until it returns `None`, then wait for
    /// an answer, a store result, [`poll_timeout`](Self::poll_timeout), or a capture.
    #[must_use]
    pub fn poll_command(&mut self, now: DateTime<Utc>) -> Option<Command> {
        if self.is_stopped() {
            return None;
        }
        self.observe_clock(now);
        self.track_progress(now);
        // An idle wire is filled first: a batch ready to go goes out before the store
        // step that writes the last answers (the wire stood idle for its length).
        if self.requests.is_empty()
            && self.sending()
            && let Some(request) = self.next_send(now)
        {
            return Some(Command::Send(request));
        }
        if !self.store.busy && !self.timers.is_pending(Timer::StoreRetry, now) {
            if self.lifecycle == Lifecycle::ShuttingDown {
                return self.shutdown_step();
            }
            if let Some(command) = self.next_store_step(now) {
                return Some(command);
            }
        }
        if !self.sending() {
            return None;
        }
        self.next_send(now).map(Command::Send)
    }

    /// When to call [`poll_command`](Self::poll_command) again if nothing else happens
    /// first: a backoff ends, a retry falls due, a blocked outbox probes, the lease needs
    /// renewing, or the idle poll.
    #[must_use]
    pub fn poll_timeout(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_stopped() || self.store.busy {
            return None;
        }
        // The earliest deadline after `now`, without collecting them (this runs after
        // every step of every machine).
        let mut next: Option<DateTime<Utc>> = None;
        let mut consider = |at: Option<DateTime<Utc>>| {
            if let Some(at) = at.filter(|at| *at > now) {
                next = Some(next.map_or(at, |next| next.min(at)));
            }
        };
        for timer in [
            Timer::StoreRetry,
            Timer::Linger,
            Timer::OtherLease,
            Timer::IdlePoll,
        ] {
            consider(self.timers.get(timer));
        }
        if let Some(until) = self.timers.get(Timer::LeaseExpiry)
            && (!self.window.is_empty() || !self.requests.is_empty())
        {
            consider(Some(until - delta(self.config.lease) / 2));
        }
        consider(self.watchdog_deadline());
        if self.blocked.is_some() {
            consider(self.timers.get(Timer::BlockedProbe));
        } else {
            consider(self.timers.get(Timer::Backoff));
            consider(self.timers.get(Timer::Pace));
            let horizon = self.horizon(now);
            consider(self.window.earliest_retry(now, horizon));
            for isolation in self.isolations.iter().flatten() {
                consider(isolation.wake_at());
            }
        }
        next
    }
}

#[cfg(test)]
mod tests;
