//! The discrete-event loop: clients capture, send and are answered in virtual time,
//! deterministically from the scenario's seed.
//!
//! Time advances in windows no longer than the network's shortest one-way trip. In a
//! window, the tier takes the requests that reach it (answers leave it at least a
//! one-way trip later: after the window), then every shard of clients, on its own
//! thread, takes the tier's replies to its requests (counting what was committed and
//! drawing each answer's way back) and handles its events (requests it sends reach the
//! tier at least a one-way trip later: after the window too). The tier reads no
//! shard's state, so its part, the only one on one thread, is small. Every event is
//! ordered by time, client and that client's own count, and every random draw belongs
//! to a client or to the tier, so a run is the same on any number of threads.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::Thread;
use std::time::Instant;

use headwater_core::engine::SyncConfig;
use headwater_core::model::ChangeData;
use headwater_core::policy::{Endpoints, Jitter, Selection};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::calendar::{Calendar, Key};
use crate::client::{FleetClient, MachineClient, SeedLoopClient};
use crate::error::SimError;
use crate::ledger::RECORDS;
use crate::metrics::{Latencies, Outcome, Series, Summary, summarize};
use crate::scenario::{Scenario, Spreading};
use crate::shard::{Arrival, Reply, Shard, Slot, unit};
use crate::tier::{Reply as TierReply, Tier};
use crate::time::{Micros, SECOND, from_seconds, seconds};

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
    pub const ALL: [Self; 3] = [Self::Headwater, Self::SeedLoop, Self::NoJitter];

    /// The name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Headwater => "headwater",
            Self::SeedLoop => "seed-loop",
            Self::NoJitter => "no-jitter",
        }
    }

    /// The policy called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|policy| policy.name() == name)
    }

    /// The delivery machine's configuration for client `index` under this policy, from
    /// `base` (headwater's defaults unless told otherwise).
    pub fn config(self, base: &SyncConfig, index: usize, seed: u64) -> SyncConfig {
        let mut config = base.clone();
        config.mapping.source = format!("client-{index}");
        config.seed = seed;
        if self == Self::NoJitter {
            config.backoff.jitter = Jitter::None;
        }
        config
    }
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

/// Simulates `scenario` under `policy` with headwater's default configuration.
/// `progress` is told the virtual seconds done.
pub fn simulate(
    scenario: &Scenario,
    policy: Policy,
    progress: &mut dyn FnMut(f64),
) -> Result<Run, SimError> {
    simulate_with(scenario, policy, &SyncConfig::default(), progress)
}

/// Simulates `scenario` under `policy`, the delivery machines configured from `base`
/// (its source and seed are set per client), on as many threads as the machine has
/// cores (the result does not depend on it).
pub fn simulate_with(
    scenario: &Scenario,
    policy: Policy,
    base: &SyncConfig,
    progress: &mut dyn FnMut(f64),
) -> Result<Run, SimError> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    simulate_on(scenario, policy, base, threads, progress)
}

/// [`simulate_with`] on `threads` threads.
pub fn simulate_on(
    scenario: &Scenario,
    policy: Policy,
    base: &SyncConfig,
    threads: usize,
    progress: &mut dyn FnMut(f64),
) -> Result<Run, SimError> {
    scenario.validate()?;
    base.validate()?;
    let started = Instant::now();
    let mut seeds = ChaCha8Rng::seed_from_u64(scenario.seed);
    let endpoints = |primary: u64| {
        let selection = match scenario.spreading {
            Spreading::RoundRobin => Selection::RoundRobin,
            Spreading::ByKey => Selection::ByKey,
            Spreading::FailoverFirst | Spreading::Failover => Selection::Failover,
        };
        let endpoints = Endpoints::new(
            scenario.agents,
            selection,
            Endpoints::DEFAULT_REST,
            Endpoints::DEFAULT_REST_CAP,
        );
        match scenario.spreading {
            Spreading::FailoverFirst => endpoints,
            Spreading::Failover | Spreading::RoundRobin | Spreading::ByKey => {
                endpoints.with_primary(usize::try_from(primary).unwrap_or(0))
            }
        }
    };
    // The workload (each client's rate and capture times) is drawn from the seed alone,
    // so every policy of a run meets the same captures.
    let mut draws = Vec::with_capacity(scenario.clients);
    for _ in 0..scenario.clients {
        let normal = standard_normal(&mut seeds);
        let spread = scenario.rate_spread;
        let factor = (spread * normal - spread * spread / 2.0).exp();
        draws.push(ClientDraws {
            machine: seeds.next_u64(),
            captures: seeds.next_u64(),
            network: seeds.next_u64(),
            rate: factor / scenario.capture_interval_s,
        });
    }
    let tier = Tier::new(scenario, ChaCha8Rng::seed_from_u64(seeds.next_u64()));
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
    let shared = Arc::new(scenario.clone());
    let threads = threads.clamp(1, scenario.clients.max(1));
    let shard_count = if threads == 1 {
        1
    } else {
        (threads * SHARDS_PER_THREAD).min(scenario.clients)
    };
    match policy {
        Policy::Headwater | Policy::NoJitter => {
            let mut slots = Vec::with_capacity(scenario.clients);
            for (index, draws) in draws.into_iter().enumerate() {
                let mut config = policy.config(base, index, draws.machine);
                if scenario.spreading == Spreading::ByKey {
                    config.routes = Some(scenario.agents);
                }
                let client = MachineClient::new(config, endpoints(draws.captures))?;
                slots.push(Slot::new(client, draws.captures, draws.network, draws.rate));
            }
            let shards = split(slots, shard_count, &templates, &shared);
            Sim::new(scenario, shards, tier, threads).run(policy, started, progress)
        }
        Policy::SeedLoop => {
            let slots = draws
                .into_iter()
                .map(|draws| {
                    let client = SeedLoopClient::new(endpoints(draws.captures));
                    Slot::new(client, draws.captures, draws.network, draws.rate)
                })
                .collect();
            let shards = split(slots, shard_count, &templates, &shared);
            Sim::new(scenario, shards, tier, threads).run(policy, started, progress)
        }
    }
}

/// What is drawn for one client.
struct ClientDraws {
    machine: u64,
    captures: u64,
    network: u64,
    rate: f64,
}

/// Splits the fleet into `count` shards of neighbouring clients.
fn split<C: FleetClient>(
    mut slots: Vec<Slot<C>>,
    count: usize,
    templates: &Arc<[ChangeData]>,
    scenario: &Arc<Scenario>,
) -> Vec<Mutex<Shard<C>>> {
    let size = slots.len().div_ceil(count.max(1)).max(1);
    let mut shards = Vec::new();
    let mut first = 0;
    while !slots.is_empty() {
        let rest = slots.split_off(size.min(slots.len()));
        let taken = std::mem::replace(&mut slots, rest);
        let len = taken.len();
        shards.push(Mutex::new(Shard::new(
            shards.len() as u32,
            first,
            taken,
            Arc::clone(templates),
            Arc::clone(scenario),
        )));
        first += len as u32;
    }
    shards
}

/// A standard normal draw (Box-Muller).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let (a, b) = (unit(rng), unit(rng));
    (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A shard's thread that panicked left nothing half-done that matters: the run
    // stops with the panic.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many shards each thread owns: a thread that finishes its own shards early takes
/// another's instead of waiting, so the threads finish a window together. A shard runs
/// on its owner's thread whenever it can, which keeps its memory in that thread's
/// allocator and cache.
const SHARDS_PER_THREAD: usize = 4;

/// How long a waiting thread spins before it parks (a window takes tens to hundreds of
/// microseconds; parking and being woken costs a few).
const SPINS: u32 = 2_000;

/// Tells the worker threads when a window may start and learns when they are done.
struct Gate {
    /// The window's number: a worker starts when it changes.
    round: AtomicU64,
    /// The window's end.
    end: AtomicU64,
    /// The window in which each shard was last taken.
    taken: Vec<AtomicU64>,
    /// Workers done with the window.
    done: AtomicUsize,
    stop: AtomicBool,
    /// The thread that opens windows, woken by the last worker done.
    coordinator: Thread,
}

impl Gate {
    fn new(shards: usize) -> Self {
        Self {
            taken: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            round: AtomicU64::new(0),
            end: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            coordinator: std::thread::current(),
        }
    }

    /// Runs shards not yet taken in window `round`: thread `thread`'s own first, then
    /// any left.
    fn take_shards<C: FleetClient>(
        &self,
        shards: &[Mutex<Shard<C>>],
        thread: usize,
        threads: usize,
        round: u64,
        end: Micros,
    ) -> Result<(), SimError> {
        let own = (thread..shards.len()).step_by(threads);
        for index in own.chain(0..shards.len()) {
            if self.taken[index].swap(round, Ordering::AcqRel) != round {
                lock(&shards[index]).run_until(end)?;
            }
        }
        Ok(())
    }
}

/// Waits until `ready` holds: spinning a little, then parking until unparked. Whoever
/// makes `ready` true unparks this thread after doing so, so no wake-up is missed
/// (an unpark before the park makes the park return at once).
fn wait_until(ready: impl Fn() -> bool) {
    for _ in 0..SPINS {
        if ready() {
            return;
        }
        std::hint::spin_loop();
    }
    while !ready() {
        std::thread::park();
    }
}

struct Sim<'a, C> {
    scenario: &'a Scenario,
    shards: Vec<Mutex<Shard<C>>>,
    tier: Tier,
    arrivals: Calendar<Arrival>,
    /// Accepted load and samples (the offered load is counted by the shards).
    series: Series,
    /// Threads that run the shards, this one included.
    threads: usize,
}

impl<'a, C: FleetClient + Send> Sim<'a, C> {
    fn new(
        scenario: &'a Scenario,
        shards: Vec<Mutex<Shard<C>>>,
        tier: Tier,
        threads: usize,
    ) -> Self {
        Sim {
            scenario,
            shards,
            tier,
            arrivals: Calendar::default(),
            series: Series::default(),
            threads,
        }
    }

    /// The longest a window may be: the shortest one-way trip, less a microsecond for
    /// rounding.
    fn window(&self) -> Micros {
        let scenario = self.scenario;
        let shortest_ms =
            (scenario.rtt_ms - scenario.rtt_jitter_ms).max(0.0) * scenario.latency_factor / 2.0;
        ((shortest_ms * 1_000.0).floor() as Micros)
            .saturating_sub(1)
            .max(1)
    }

    /// A request reaches the tier; what the tier does with it goes to its shard, to be
    /// taken there (on that shard's thread) before its next window.
    fn arrive(&mut self, replies: &mut [Vec<Reply>], key: Key, arrival: Arrival) {
        let now = key.at;
        let reply = self
            .tier
            .offer(arrival.agent as usize, now, arrival.events as usize);
        if let TierReply::Answer {
            at,
            committed: true,
            ..
        } = &reply
        {
            self.series
                .accepted((*at).max(now), arrival.events as usize);
        }
        replies[arrival.shard as usize].push(Reply {
            flight: arrival.flight,
            agent: arrival.agent,
            arrived: now,
            reply,
        });
    }

    fn run(
        mut self,
        policy: Policy,
        started: Instant,
        progress: &mut dyn FnMut(f64),
    ) -> Result<Run, SimError> {
        let scenario = self.scenario;
        let recovery_at = scenario.recovery_s().map(from_seconds);
        let online_at =
            (scenario.initial_backlog_s > 0.0).then(|| from_seconds(scenario.initial_backlog_s));
        let capacity = scenario.capacity();
        let load = scenario.load();
        let duration = from_seconds(scenario.duration_s);
        let drained_level = (2.0 * load).floor() as u64;
        let window = self.window();
        let shards = std::mem::take(&mut self.shards);
        for shard in &shards {
            lock(shard).start(online_at.is_some())?;
        }
        let mut recovery = None;
        let mut backlog = 0;
        let mut drained_at = None;
        let mut end = duration;
        let mut now: Micros = 0;
        let mut next_tick: Micros = 0;
        let gate = Gate::new(shards.len());
        let mut replies: Vec<Vec<Reply>> = shards.iter().map(|_| Vec::new()).collect();
        let failure: Mutex<Option<SimError>> = Mutex::new(None);
        let result = std::thread::scope(|scope| -> Result<(), SimError> {
            let threads = self.threads;
            let workers: Vec<Thread> = (1..threads)
                .map(|thread| {
                    let (gate, failure, shards) = (&gate, &failure, &shards);
                    scope
                        .spawn(move || {
                            let mut round = 0;
                            loop {
                                wait_until(|| {
                                    gate.stop.load(Ordering::Acquire)
                                        || gate.round.load(Ordering::Acquire) != round
                                });
                                if gate.stop.load(Ordering::Acquire) {
                                    return;
                                }
                                round = gate.round.load(Ordering::Acquire);
                                let end = gate.end.load(Ordering::Acquire);
                                if let Err(error) =
                                    gate.take_shards(shards, thread, threads, round, end)
                                {
                                    lock(failure).get_or_insert(error);
                                }
                                gate.done.fetch_add(1, Ordering::AcqRel);
                                gate.coordinator.unpark();
                            }
                        })
                        .thread()
                        .clone()
                })
                .collect();
            let outcome = (|| -> Result<(), SimError> {
                while now <= end {
                    if now == next_tick {
                        if online_at == Some(now) {
                            for shard in &shards {
                                lock(shard).go_online(now)?;
                            }
                        }
                        if recovery_at == Some(now) {
                            recovery = Some(now);
                            for shard in &shards {
                                let mut shard = lock(shard);
                                shard.recovery = Some(now);
                                backlog += shard.tally.pending;
                                for slot in &mut shard.slots {
                                    slot.ledger.mark_backlog(now);
                                }
                            }
                        }
                        let pending: u64 =
                            shards.iter().map(|shard| lock(shard).tally.pending).sum();
                        if drained_at.is_none() && recovery.is_some() && pending <= drained_level {
                            drained_at = Some(now);
                            // A minute more, for the changes captured meanwhile.
                            end = end.min(now + 60 * SECOND);
                        }
                        self.series
                            .sample(pending, self.tier.capacity_at(seconds(now)));
                        progress(seconds(now));
                        next_tick += SECOND;
                    }
                    let until = (now + window).min(next_tick).min(end + 1);
                    // The tier takes the requests that reach it in the window (sent in
                    // earlier ones); its answers reach the clients a one-way trip later,
                    // after the window, and the shards take its replies first thing.
                    while let Some((key, arrival)) = self.arrivals.pop_before(until) {
                        self.arrive(&mut replies, key, arrival);
                    }
                    for (shard, replies) in shards.iter().zip(&mut replies) {
                        if !replies.is_empty() {
                            lock(shard).replies.append(replies);
                        }
                    }
                    gate.end.store(until, Ordering::Release);
                    gate.done.store(0, Ordering::Release);
                    let round = gate.round.fetch_add(1, Ordering::AcqRel) + 1;
                    for worker in &workers {
                        worker.unpark();
                    }
                    gate.take_shards(&shards, 0, threads, round, until)?;
                    wait_until(|| gate.done.load(Ordering::Acquire) == workers.len());
                    if let Some(error) = lock(&failure).take() {
                        return Err(error);
                    }
                    for shard in &shards {
                        let mut shard = lock(shard);
                        for (key, arrival) in shard.outgoing.drain(..) {
                            self.arrivals.push(key, arrival);
                        }
                    }
                    now = until;
                }
                Ok(())
            })();
            gate.stop.store(true, Ordering::Release);
            for worker in &workers {
                worker.unpark();
            }
            outcome
        });
        result?;
        let end = end.min(duration);
        let mut lost = 0;
        let mut last_backlog_done = Some(0);
        let mut offered = Series::default();
        let mut fresh = Latencies::default();
        let (mut captured, mut dead) = (0, 0);
        let (mut duplicates, mut reordered, mut unknown_commits) = (0, 0, 0);
        for shard in &shards {
            let shard = lock(shard);
            for (index, slot) in shard.slots.iter().enumerate() {
                let stored = slot.client.stored().map_err(|source| SimError::Store {
                    client: index,
                    source,
                })?;
                lost += slot.ledger.pending().saturating_sub(stored as u64);
                lost += slot.ledger.acked_uncommitted();
                last_backlog_done = match (last_backlog_done, slot.ledger.backlog_done()) {
                    (Some(latest), Some(done)) => Some(latest.max(done)),
                    _ => None,
                };
                if let Some(recovery) = recovery {
                    for captured_at in slot.ledger.waiting_since().filter(|at| *at >= recovery) {
                        fresh.add(end.saturating_sub(captured_at));
                    }
                }
            }
            offered.add(&shard.tally.series);
            fresh.merge(&shard.tally.fresh);
            captured += shard.tally.captured;
            dead += shard.tally.dead;
            duplicates += shard.tally.duplicates;
            reordered += shard.tally.reordered;
            unknown_commits += shard.tally.unknown_commits;
        }
        if unknown_commits > 0 {
            return Err(SimError::Inconsistent(format!(
                "the tier committed {} changes that no client captured",
                unknown_commits
            )));
        }
        self.series.offered_events = offered.offered_events;
        self.series.offered_requests = offered.offered_requests;
        let outcome = Outcome {
            recovery: recovery.unwrap_or(0),
            drained_at,
            end,
            backlog,
            last_backlog_done,
            has_recovery: recovery.is_some(),
        };
        let mut summary = summarize(
            policy.name(),
            &self.series,
            &outcome,
            capacity,
            load,
            scenario.transaction_capacity,
        );
        summary.fresh_p99_s = fresh.percentile(0.99);
        summary.lost = lost;
        summary.duplicates = duplicates;
        summary.reordered = reordered;
        summary.dead_lettered = dead;
        summary.captured = captured;
        summary.wall_seconds = started.elapsed().as_secs_f64();
        Ok(Run {
            summary,
            series: self.series,
            recovery_s: recovery.map(seconds),
        })
    }
}
