//! The discrete-event loop: clients capture, send and are answered in virtual time,
//! one event at a time in time order, deterministically from the scenario's seed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Instant;

use headwater_core::engine::{ConfigError, SyncConfig};
use headwater_core::model::{ChangeData, InvalidChange, Seq};
use headwater_core::policy::{Endpoints, Jitter, Selection};
use headwater_core::store::StoreError;
use headwater_core::transport::SendOutcome;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::client::{Effects, FleetClient, MachineClient, RequestKey, SeedLoopClient};
use crate::ledger::{Commit, Ledger, RECORDS};
use crate::metrics::{Latencies, Outcome, Series, Summary, summarize};
use crate::scenario::{Scenario, Spreading};
use crate::tier::{Reply, Tier};
use crate::time::{Micros, SECOND, from_seconds, seconds, wall};

/// How a fleet's clients deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Policy {
    /// headwater's delivery machine with its defaults.
    Headwater,
    /// The seed article's loop: one batch of up to 100 at a time, a fixed 5 s retry,
    /// no jitter.
    SeedLoop,
    /// headwater's delivery machine and defaults with the backoff's jitter turned off.
    NoJitter,
}

impl Policy {
    /// Every policy, in report order.
    pub const ALL: [Policy; 3] = [Policy::Headwater, Policy::SeedLoop, Policy::NoJitter];

    /// The name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Headwater => "headwater",
            Policy::SeedLoop => "seed-loop",
            Policy::NoJitter => "no-jitter",
        }
    }

    /// The policy called `name`.
    pub fn parse(name: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|policy| policy.name() == name)
    }

    /// The delivery machine's configuration for client `index` under this policy.
    pub fn config(self, index: usize, seed: u64) -> SyncConfig {
        let mut config = SyncConfig::new(format!("client-{index}"), seed);
        if self == Policy::NoJitter {
            config.backoff.jitter = Jitter::None;
        }
        config
    }
}

/// Why a run stopped short.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The scenario cannot run.
    #[error(transparent)]
    Scenario(#[from] crate::scenario::ScenarioError),
    /// A client's configuration was refused.
    #[error("the delivery machine's configuration was refused: {0}")]
    Config(#[from] ConfigError),
    /// A change could not be made.
    #[error("a change could not be made: {0}")]
    Change(#[from] InvalidChange),
    /// The simulation contradicts itself (a bug here, not in what it simulates).
    #[error("the simulation is inconsistent: {0}")]
    Inconsistent(String),
    /// A client's store failed (the memory store never should).
    #[error("client {client}'s store failed: {source}")]
    Store {
        /// Which client.
        client: usize,
        /// What failed.
        source: StoreError,
    },
}

/// What one policy did in one scenario.
#[derive(Debug, Clone)]
pub struct Run {
    /// The figures.
    pub summary: Summary,
    /// The per-second series behind them.
    pub series: Series,
    /// When the fleet recovered, in seconds.
    pub recovery_s: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Capture(u32),
    Wake { client: u32, generation: u32 },
    Arrive(u32),
    Answer(u32),
    Tick,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Event {
    at: Micros,
    order: u64,
    kind: Kind,
}

impl Ord for Event {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One client and what the simulation keeps beside it.
struct Slot<C> {
    client: C,
    ledger: Ledger,
    captures: ChaCha8Rng,
    /// Captures per second (before bursts).
    rate: f64,
    wake: Option<Micros>,
    generation: u32,
}

/// A request on its way.
struct Flight {
    client: u32,
    key: RequestKey,
    seqs: Vec<Seq>,
    /// When the current try left the client.
    sent_at: Micros,
    /// The endpoints to try, in order, and which one this try goes to.
    order: Vec<usize>,
    attempt: usize,
    outcome: Option<SendOutcome>,
    /// Whether the connection was refused (nothing reached Flume).
    refused: bool,
}

struct Sim<'a, C> {
    scenario: &'a Scenario,
    slots: Vec<Slot<C>>,
    flights: Vec<Option<Flight>>,
    free_flights: Vec<u32>,
    queue: BinaryHeap<Reverse<Event>>,
    order: u64,
    tier: Tier,
    network: ChaCha8Rng,
    templates: Arc<[ChangeData]>,
    series: Series,
    fresh: Latencies,
    pending: u64,
    recovery: Option<Micros>,
    effects: Effects,
    duplicates: u64,
    reordered: u64,
    unknown_commits: u64,
    dead: u64,
    captured: u64,
}

/// Simulates `scenario` under `policy`. `progress` is told the virtual seconds done.
pub fn simulate(
    scenario: &Scenario,
    policy: Policy,
    progress: &mut dyn FnMut(f64),
) -> Result<Run, SimError> {
    scenario.validate()?;
    let started = Instant::now();
    let mut seeds = ChaCha8Rng::seed_from_u64(scenario.seed);
    let endpoints = |primary: u64| {
        let selection = match scenario.spreading {
            Spreading::RoundRobin => Selection::RoundRobin,
            Spreading::FailoverFirst | Spreading::FailoverPrimary => Selection::Failover,
        };
        let endpoints = Endpoints::new(
            scenario.agents,
            selection,
            Endpoints::DEFAULT_REST,
            Endpoints::DEFAULT_REST_CAP,
        );
        match scenario.spreading {
            Spreading::FailoverFirst => endpoints,
            Spreading::FailoverPrimary | Spreading::RoundRobin => {
                endpoints.with_primary(usize::try_from(primary).unwrap_or(0))
            }
        }
    };
    // The workload (each client's rate and capture times) is drawn from the seed alone,
    // so every policy of a run meets the same captures.
    let mut slots_rates = Vec::with_capacity(scenario.clients);
    for _ in 0..scenario.clients {
        let normal = standard_normal(&mut seeds);
        let spread = scenario.rate_spread;
        let factor = (spread * normal - spread * spread / 2.0).exp();
        slots_rates.push((
            seeds.next_u64(),
            seeds.next_u64(),
            factor / scenario.capture_interval_s,
        ));
    }
    let tier = Tier::new(scenario, ChaCha8Rng::seed_from_u64(seeds.next_u64()));
    let network = ChaCha8Rng::seed_from_u64(seeds.next_u64());
    let templates: Arc<[ChangeData]> = (0..RECORDS)
        .map(|record| {
            ChangeData::update(
                "todos",
                format!("todo-{record}"),
                &serde_json::json!({"title": "buy milk and bread", "done": false, "list": "groceries"}),
            )
        })
        .collect::<Result<Vec<_>, _>>()?
        .into();
    match policy {
        Policy::Headwater | Policy::NoJitter => {
            let mut slots = Vec::with_capacity(scenario.clients);
            for (index, (machine_seed, capture_seed, rate)) in slots_rates.into_iter().enumerate() {
                let client = MachineClient::new(
                    policy.config(index, machine_seed),
                    endpoints(capture_seed),
                )?;
                slots.push(slot(client, capture_seed, rate));
            }
            Sim::new(scenario, slots, tier, network, templates).run(policy, started, progress)
        }
        Policy::SeedLoop => {
            let slots = slots_rates
                .into_iter()
                .map(|(_, capture_seed, rate)| {
                    slot(
                        SeedLoopClient::new(endpoints(capture_seed)),
                        capture_seed,
                        rate,
                    )
                })
                .collect();
            Sim::new(scenario, slots, tier, network, templates).run(policy, started, progress)
        }
    }
}

fn slot<C>(client: C, capture_seed: u64, rate: f64) -> Slot<C> {
    Slot {
        client,
        ledger: Ledger::new(),
        captures: ChaCha8Rng::seed_from_u64(capture_seed),
        rate,
        wake: None,
        generation: 0,
    }
}

/// A uniform draw from (0, 1].
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

/// A standard normal draw (Box-Muller).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let (a, b) = (unit(rng), unit(rng));
    (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
}

impl<'a, C: FleetClient> Sim<'a, C> {
    fn new(
        scenario: &'a Scenario,
        slots: Vec<Slot<C>>,
        tier: Tier,
        network: ChaCha8Rng,
        templates: Arc<[ChangeData]>,
    ) -> Self {
        Sim {
            scenario,
            slots,
            flights: Vec::new(),
            free_flights: Vec::new(),
            queue: BinaryHeap::new(),
            order: 0,
            tier,
            network,
            templates,
            series: Series::default(),
            fresh: Latencies::default(),
            pending: 0,
            recovery: None,
            effects: Effects::default(),
            duplicates: 0,
            reordered: 0,
            unknown_commits: 0,
            dead: 0,
            captured: 0,
        }
    }

    fn push(&mut self, at: Micros, kind: Kind) {
        self.order += 1;
        self.queue.push(Reverse(Event {
            at,
            order: self.order,
            kind,
        }));
    }

    /// One way across the network.
    fn one_way(&mut self) -> Micros {
        let scenario = self.scenario;
        let jitter = (unit(&mut self.network) * 2.0 - 1.0) * scenario.rtt_jitter_ms;
        let rtt_ms = (scenario.rtt_ms + jitter) * scenario.latency_factor;
        from_seconds(rtt_ms / 2_000.0)
    }

    fn burst_factor(&self, now: Micros) -> f64 {
        match &self.scenario.burst {
            Some(burst) if (burst.from_s..burst.to_s).contains(&seconds(now)) => burst.factor,
            _ => 1.0,
        }
    }

    fn schedule_capture(&mut self, client: u32, now: Micros) {
        let factor = self.burst_factor(now);
        let slot = &mut self.slots[client as usize];
        let gap = -unit(&mut slot.captures).ln() / (slot.rate * factor);
        let at = now + from_seconds(gap).max(1);
        self.push(at, Kind::Capture(client));
    }

    fn store_failed(client: u32) -> impl FnOnce(StoreError) -> SimError {
        move |source| SimError::Store {
            client: client as usize,
            source,
        }
    }

    /// Takes what a client asked for: requests go out, acknowledgements are counted,
    /// and its timer is set.
    fn settle(&mut self, client: u32, now: Micros) {
        let mut effects = std::mem::take(&mut self.effects);
        for send in effects.sends.drain(..) {
            self.series.offered(now, send.seqs.len());
            let order = self.slots[client as usize]
                .client
                .endpoints()
                .order(wall(now));
            let flight = Flight {
                client,
                key: send.key,
                seqs: send.seqs,
                sent_at: now,
                order,
                attempt: 0,
                outcome: None,
                refused: false,
            };
            let index = match self.free_flights.pop() {
                Some(index) => {
                    self.flights[index as usize] = Some(flight);
                    index
                }
                None => {
                    self.flights.push(Some(flight));
                    (self.flights.len() - 1) as u32
                }
            };
            let arrive = now + self.one_way();
            self.push(arrive, Kind::Arrive(index));
        }
        let fresh_from = self.recovery.unwrap_or(0);
        for seq in effects.acked.drain(..) {
            let slot = &mut self.slots[client as usize];
            if let Some(captured_at) = slot.ledger.acked(seq.0, now) {
                self.pending -= 1;
                if self.recovery.is_some() && captured_at >= fresh_from {
                    self.fresh.add(now - captured_at);
                }
            }
        }
        for seq in effects.dead.drain(..) {
            let slot = &mut self.slots[client as usize];
            let before = slot.ledger.pending();
            slot.ledger.set_aside(seq.0);
            self.pending -= before - slot.ledger.pending();
            self.dead += 1;
        }
        self.effects = effects;
        let slot = &mut self.slots[client as usize];
        if let Some(at) = slot.client.next_wake(now) {
            let at = at.max(now + 1);
            if slot.wake.is_none_or(|wake| at < wake) {
                slot.generation = slot.generation.wrapping_add(1);
                slot.wake = Some(at);
                let generation = slot.generation;
                self.push(at, Kind::Wake { client, generation });
            }
        }
    }

    fn capture(&mut self, client: u32, now: Micros, count: usize) -> Result<(), SimError> {
        let slot = &mut self.slots[client as usize];
        let records: Vec<u8> = (0..count)
            .map(|_| (slot.captures.next_u32() % RECORDS as u32) as u8)
            .collect();
        let changes = records
            .iter()
            .map(|record| self.templates[usize::from(*record)].clone())
            .collect();
        let seqs = slot
            .client
            .capture(now, changes, &mut self.effects)
            .map_err(Self::store_failed(client))?;
        for (seq, record) in seqs.iter().zip(records) {
            slot.ledger.captured(seq.0, now, record);
        }
        self.pending += seqs.len() as u64;
        self.captured += seqs.len() as u64;
        self.settle(client, now);
        Ok(())
    }

    fn arrive(&mut self, index: u32, now: Micros) {
        let Some((client, agent, sent_at, seqs)) = self.flights[index as usize].as_mut().map(|f| {
            let agent = f.order.get(f.attempt).copied().unwrap_or(0);
            (f.client, agent, f.sent_at, std::mem::take(&mut f.seqs))
        }) else {
            return;
        };
        let reply = self.tier.offer(agent, seconds(now), seqs.len());
        let timeout = from_seconds(self.scenario.request_timeout_s);
        let mut refused = false;
        let (answer_at, outcome) = match reply {
            Reply::Refused => {
                refused = true;
                let message = format!("agent {agent}: connection refused");
                (
                    now + self.one_way(),
                    SendOutcome::ConnectionFailed { message },
                )
            }
            Reply::Answer {
                at,
                response,
                committed,
            } => {
                let answered = from_seconds(at).max(now);
                if committed {
                    self.series.accepted(answered, seqs.len());
                    let ledger = &mut self.slots[client as usize].ledger;
                    for seq in &seqs {
                        match ledger.committed(seq.0) {
                            Commit::First => {}
                            Commit::Reordered => self.reordered += 1,
                            Commit::Duplicate => self.duplicates += 1,
                            Commit::Unknown => self.unknown_commits += 1,
                        }
                    }
                }
                let lost = committed && unit(&mut self.network) <= self.scenario.answer_loss;
                let back = answered + self.one_way();
                if lost || back > sent_at + timeout {
                    let message = "no answer within the request timeout".into();
                    (sent_at + timeout, SendOutcome::TimedOut { message })
                } else {
                    (back, SendOutcome::Response(response))
                }
            }
        };
        if let Some(flight) = self.flights[index as usize].as_mut() {
            flight.seqs = seqs;
            flight.outcome = Some(outcome);
            flight.refused = refused;
        }
        self.push(answer_at.max(now), Kind::Answer(index));
    }

    fn answer(&mut self, index: u32, now: Micros) -> Result<(), SimError> {
        let Some(mut flight) = self.flights[index as usize].take() else {
            return Ok(());
        };
        let client = flight.client;
        let agent = flight.order.get(flight.attempt).copied().unwrap_or(0);
        let outcome = flight.outcome.take().unwrap_or(SendOutcome::TimedOut {
            message: "no answer".into(),
        });
        let endpoints = self.slots[client as usize].client.endpoints();
        match &outcome {
            SendOutcome::Response(_) => endpoints.succeeded(agent),
            _ => endpoints.failed(agent, wall(now)),
        }
        if flight.refused && flight.attempt + 1 < flight.order.len() {
            // As the HTTP transport does: nothing reached Flume, so the same request
            // goes to the next endpoint at once.
            flight.attempt += 1;
            flight.refused = false;
            flight.sent_at = now;
            self.flights[index as usize] = Some(flight);
            let arrive = now + self.one_way();
            self.push(arrive, Kind::Arrive(index));
            return Ok(());
        }
        self.free_flights.push(index);
        let mut effects = std::mem::take(&mut self.effects);
        let result =
            self.slots[client as usize]
                .client
                .answer(now, flight.key, outcome, &mut effects);
        self.effects = effects;
        result.map_err(Self::store_failed(client))?;
        self.settle(client, now);
        Ok(())
    }

    fn wake(&mut self, client: u32, generation: u32, now: Micros) -> Result<(), SimError> {
        let slot = &mut self.slots[client as usize];
        if slot.generation != generation {
            return Ok(());
        }
        slot.wake = None;
        let mut effects = std::mem::take(&mut self.effects);
        let result = slot.client.wake(now, &mut effects);
        self.effects = effects;
        result.map_err(Self::store_failed(client))?;
        self.settle(client, now);
        Ok(())
    }

    fn run(
        mut self,
        policy: Policy,
        started: Instant,
        progress: &mut dyn FnMut(f64),
    ) -> Result<Run, SimError> {
        let scenario = self.scenario;
        let recovery_at = scenario.recovery_s().map(from_seconds);
        let capacity = scenario.capacity();
        let load = scenario.load();
        let duration = from_seconds(scenario.duration_s);
        let drained_level = (2.0 * load).floor() as u64;
        for client in 0..self.slots.len() as u32 {
            let backlog = scenario.initial_backlog_s * self.slots[client as usize].rate;
            let count = backlog.round() as usize;
            if count > 0 {
                self.capture(client, 0, count)?;
            }
            self.schedule_capture(client, 0);
        }
        self.push(0, Kind::Tick);
        let mut backlog = 0;
        let mut drained_at = None;
        let mut end = duration;
        while let Some(Reverse(event)) = self.queue.pop() {
            let now = event.at;
            if now > end {
                break;
            }
            match event.kind {
                Kind::Capture(client) => {
                    self.capture(client, now, 1)?;
                    self.schedule_capture(client, now);
                }
                Kind::Wake { client, generation } => self.wake(client, generation, now)?,
                Kind::Arrive(index) => self.arrive(index, now),
                Kind::Answer(index) => self.answer(index, now)?,
                Kind::Tick => {
                    if recovery_at == Some(now) {
                        self.recovery = Some(now);
                        backlog = self.pending;
                        for slot in &mut self.slots {
                            slot.ledger.mark_backlog(now);
                        }
                    }
                    if drained_at.is_none()
                        && self.recovery.is_some()
                        && self.pending <= drained_level
                    {
                        drained_at = Some(now);
                        // A minute more, for the changes captured meanwhile.
                        end = end.min(now + 60 * SECOND);
                    }
                    self.series
                        .sample(self.pending, self.tier.capacity_at(seconds(now)));
                    progress(seconds(now));
                    self.push(now + SECOND, Kind::Tick);
                }
            }
        }
        let end = end.min(duration);
        let mut lost = 0;
        let mut last_backlog_done = Some(0);
        for (index, slot) in self.slots.iter().enumerate() {
            let stored = slot
                .client
                .stored()
                .map_err(Self::store_failed(index as u32))?;
            lost += slot.ledger.pending().saturating_sub(stored as u64);
            lost += slot.ledger.acked_uncommitted();
            last_backlog_done = match (last_backlog_done, slot.ledger.backlog_done()) {
                (Some(latest), Some(done)) => Some(latest.max(done)),
                _ => None,
            };
            if let Some(recovery) = self.recovery {
                for captured_at in slot.ledger.waiting_since().filter(|at| *at >= recovery) {
                    self.fresh.add(end.saturating_sub(captured_at));
                }
            }
        }
        let outcome = Outcome {
            recovery: self.recovery.unwrap_or(0),
            drained_at,
            end,
            backlog,
            last_backlog_done,
            has_recovery: self.recovery.is_some(),
        };
        let mut summary = summarize(
            policy.name(),
            &self.series,
            &outcome,
            capacity,
            load,
            scenario.transaction_capacity,
        );
        summary.fresh_p99_s = self.fresh.percentile(0.99);
        if self.unknown_commits > 0 {
            return Err(SimError::Inconsistent(format!(
                "the tier committed {} changes that no client captured",
                self.unknown_commits
            )));
        }
        summary.lost = lost;
        summary.duplicates = self.duplicates;
        summary.reordered = self.reordered;
        summary.dead_lettered = self.dead;
        summary.captured = self.captured;
        summary.wall_seconds = started.elapsed().as_secs_f64();
        Ok(Run {
            summary,
            series: self.series,
            recovery_s: self.recovery.map(seconds),
        })
    }
}
