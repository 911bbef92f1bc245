//! A whole-engine scenario: captures, sync steps, Flume faults, crashes with restarts
//! and clock jumps against a store and [`SimFlume`], with the invariants of delivery
//! checked at every step and after draining. The property tests generate scenarios
//! with proptest, the `engine` fuzz target with `arbitrary`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::FutureExt;
use futures::executor::block_on;

use super::{Fault, POISON_HEADER, SimFlume, id_counts};
use crate::engine::{SyncConfig, Syncer};
use crate::model::ChangeData;
use crate::store::ChangeStore;

/// How a poisoned change breaks Flume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poison {
    /// Flume cannot read it: 400 for any batch holding it.
    BadRequest,
    /// An interceptor throws on it: 500 for any batch holding it.
    Throws,
}

/// One thing that happens in a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Capture `count` changes; `poison` marks one of them (by position) as an event
    /// Flume refuses (with the [`POISON_HEADER`], so it stays a change of its record).
    /// With `repeat`, the changes go to a handful of records, several changes each, so
    /// that per-record order is put to the test.
    Capture {
        /// How many changes.
        count: usize,
        /// Which one is poisoned, if any, and how.
        poison: Option<(usize, Poison)>,
        /// Whether keys repeat.
        repeat: bool,
    },
    /// One `sync_once` at the current time.
    Sync,
    /// The next request meets this fault.
    Fault(FaultKind),
    /// The process dies (mid-request, after Flume committed, if `mid_request`); a new
    /// syncer starts on the same store.
    Crash {
        /// Whether a request was in flight.
        mid_request: bool,
    },
    /// The clock moves by this many seconds (backwards too: wall clocks do).
    Jump(i64),
}

/// The faults a scenario can script.
///
/// A 500 or 400 comes as an outage of at least two requests ("Flume answers 500 to
/// everything for a while"): a refusal of exactly one request that lands on a change
/// sent alone right between two acceptances is, by design, evidence that the change is
/// poisoned (see `engine::machine::isolation`), so a model that scripted such single
/// refusals would be scripting poison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// 503, channel full (no capacity hint).
    Overloaded,
    /// 429 with `Retry-After` of this many seconds.
    TooManyRequests(u64),
    /// 500 to every request, for this many requests (at least two).
    ServerErrors(u8),
    /// 400 to every request (a proxy gone wrong), for this many requests (at least two).
    BadRequests(u8),
    /// 502 from a proxy.
    BadGateway,
    /// Flume commits, the answer is lost.
    TimeoutAfterCommit,
    /// Nothing reaches Flume.
    ConnectionRefused,
    /// 401: a configuration problem that blocks the outbox.
    Unauthorized,
}

impl FaultKind {
    /// The simulated Flume's faults for this kind, one per request.
    pub fn faults(self) -> Vec<Fault> {
        match self {
            Self::ServerErrors(count) => {
                vec![Fault::Status(500, "Unexpected error".into()); usize::from(count.max(2))]
            }
            Self::BadRequests(count) => {
                vec![Fault::Status(400, super::BAD_REQUEST.into()); usize::from(count.max(2))]
            }
            other => vec![other.fault()],
        }
    }

    fn fault(self) -> Fault {
        match self {
            Self::Overloaded => Fault::Status(
                503,
                "Error appending event to channel. Channel might be full.Space for commit to queue couldn't be acquired.".into(),
            ),
            Self::TooManyRequests(seconds) => Fault::TooManyRequests(seconds),
            Self::ServerErrors(_) => Fault::Status(500, "Unexpected error".into()),
            Self::BadRequests(_) => Fault::Status(400, super::BAD_REQUEST.into()),
            Self::BadGateway => Fault::Status(502, "Bad Gateway".into()),
            Self::TimeoutAfterCommit => Fault::TimeoutAfterCommit,
            Self::ConnectionRefused => Fault::ConnectionRefused,
            Self::Unauthorized => Fault::Status(401, "Unauthorized".into()),
        }
    }
}

/// The shape of a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// The syncer's `batch.max_events`.
    pub max_events: usize,
    /// The syncer's `max_in_flight` (1: total order).
    pub max_in_flight: usize,
    /// The simulated channel's `transactionCapacity`, if limited.
    pub transaction_capacity: Option<usize>,
    /// What happens, in order.
    pub steps: Vec<Step>,
}

/// A broken invariant, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Violation {}

fn failed(error: impl fmt::Display) -> Violation {
    Violation(format!("unexpected error: {error}"))
}

macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            return Err(Violation(format!($($message)+)));
        }
    };
}

/// Runs `setup` against `store` (empty) and checks every invariant.
pub fn run<S: ChangeStore + Clone>(store: S, setup: &Setup) -> Result<(), Violation> {
    let mut scenario = Scenario::new(store, setup)?;
    for step in &setup.steps {
        scenario.apply(step)?;
    }
    scenario.drain()?;
    scenario.check()
}

/// A running scenario: the store, the simulated Flume, the current syncer, and what
/// the invariants need to know.
pub struct Scenario<S> {
    store: S,
    flume: SimFlume,
    config: SyncConfig,
    syncer: Syncer<S, SimFlume>,
    now: DateTime<Utc>,
    restarts: u64,
    /// Every captured change: seq, id, record key.
    captured: Vec<(u64, String, String)>,
    poisoned: HashSet<String>,
    faults: u64,
    /// The lengths of the runs of faults queued since faults last stopped, in order.
    fault_runs: Vec<usize>,
    /// Whether changes were captured since the last sync (new work may go at once).
    fresh_captures: bool,
    /// Times the wall clock was set back.
    set_backs: usize,
    /// The time of the last sync step.
    synced_at: Option<DateTime<Utc>>,
}

impl<S: ChangeStore + Clone> Scenario<S> {
    /// A fresh scenario over an empty `store`.
    pub fn new(store: S, setup: &Setup) -> Result<Self, Violation> {
        let mut flume = SimFlume::new();
        if let Some(capacity) = setup.transaction_capacity {
            flume = flume.with_transaction_capacity(capacity.max(1));
        }
        let mut config = SyncConfig::new("scenario", 0);
        config.batch.max_events = setup.max_events.max(1);
        config.max_in_flight = setup.max_in_flight.clamp(1, 8);
        config.lease = Duration::from_secs(30);
        let syncer = Syncer::new(store.clone(), flume.clone(), config.clone()).map_err(failed)?;
        Ok(Self {
            store,
            flume,
            config,
            syncer,
            now: DateTime::from_timestamp_millis(1_700_000_000_000).unwrap_or_default(),
            restarts: 0,
            captured: Vec::new(),
            poisoned: HashSet::new(),
            faults: 0,
            fault_runs: Vec::new(),
            fresh_captures: false,
            set_backs: 0,
            synced_at: None,
        })
    }

    /// The syncer running now.
    pub fn syncer(&self) -> &Syncer<S, SimFlume> {
        &self.syncer
    }

    /// The simulated Flume.
    pub fn flume(&self) -> &SimFlume {
        &self.flume
    }

    fn restart(&mut self) -> Result<(), Violation> {
        self.restarts += 1;
        self.config.seed = self.restarts;
        self.syncer = Syncer::new(self.store.clone(), self.flume.clone(), self.config.clone())
            .map_err(failed)?;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), Violation> {
        let outbox = self.syncer.outbox();
        let before = block_on(outbox.status(self.now)).map_err(failed)?;
        let report = block_on(self.syncer.sync_once(self.now)).map_err(failed)?;
        let horizon =
            self.now + TimeDelta::from_std(self.config.schedule_horizon()).unwrap_or_default();
        let waiting = before
            .next_attempt_at
            .is_some_and(|at| at > self.now && at <= horizon);
        let fresh = std::mem::take(&mut self.fresh_captures);
        // A clock set back since the last step can make a retry time pass the horizon
        // (see `drain`), and the change due at once: the status published at that step
        // could not know.
        let set_back = self
            .synced_at
            .replace(self.now)
            .is_some_and(|at| at > self.now);
        if waiting && before.blocked.is_none() && !fresh && !set_back {
            ensure!(
                report.requests == 0,
                "{} requests while the syncer said it waits until {:?} (a busy loop)",
                report.requests,
                before.next_attempt_at
            );
        }
        if report.blocked {
            let after = block_on(outbox.status(self.now)).map_err(failed)?;
            ensure!(
                after.blocked.is_some(),
                "a blocked report shows in the status"
            );
            ensure!(
                after.dead_lettered as u64 <= before.dead_lettered as u64 + report.dead_lettered,
                "blocking dead-lettered changes"
            );
        }
        Ok(())
    }

    /// Applies one step, checking the invariants that hold at every step.
    pub fn apply(&mut self, step: &Step) -> Result<(), Violation> {
        match step {
            Step::Capture {
                count,
                poison,
                repeat,
            } => {
                let base = self.captured.len();
                // With one request in flight, changes that break an interceptor (500)
                // one after another hold the line: nothing else can be sent to show that
                // Flume takes other events, and a run of such changes looks like an
                // interceptor that throws on every event, which must condemn nothing. So
                // total-order scenarios poison with 400s only.
                let poison = match poison {
                    Some((at, Poison::Throws)) if self.config.max_in_flight == 1 => {
                        Some((*at, Poison::BadRequest))
                    }
                    other => *other,
                };
                let changes = (0..*count)
                    .map(|offset| {
                        let index = base + offset;
                        let key = if *repeat {
                            format!("r{}", index % 5)
                        } else {
                            format!("k{index}")
                        };
                        let data =
                            ChangeData::update("items", key, &serde_json::json!({"n": index}))?;
                        // A poisoned change keeps its record: the changes after it wait
                        // for it, and go on once it is dead-lettered.
                        Ok(match poison {
                            Some((at, kind)) if at == offset => {
                                let status = match kind {
                                    Poison::BadRequest => "400",
                                    Poison::Throws => "500",
                                };
                                data.with_header(POISON_HEADER, status)?
                            }
                            _ => data,
                        })
                    })
                    .collect::<Result<Vec<_>, crate::model::InvalidChange>>()
                    .map_err(failed)?;
                let stored = block_on(self.syncer.outbox().capture_all(self.now, changes))
                    .map_err(failed)?;
                self.fresh_captures = true;
                for change in stored {
                    let id = change.id().to_string();
                    if change.data().headers().contains_key(POISON_HEADER) {
                        self.poisoned.insert(id.clone());
                    }
                    let key = change.data().key().to_owned();
                    self.captured.push((change.seq().0, id, key));
                }
            }
            Step::Sync => self.sync()?,
            Step::Fault(kind) => {
                let faults = kind.faults();
                self.fault_runs.push(faults.len());
                for fault in faults {
                    self.faults += 1;
                    self.flume.push_fault(fault);
                }
            }
            Step::Crash { mid_request } => {
                if *mid_request {
                    self.faults += 1;
                    self.fault_runs.push(1);
                    self.flume.push_fault(Fault::HangAfterCommit);
                    // If the request started it hangs: the process dies holding its lease.
                    let _ = self.syncer.sync_once(self.now).now_or_never();
                    self.stop_faults();
                }
                self.restart()?;
            }
            Step::Jump(seconds) => {
                self.set_backs += usize::from(*seconds < 0);
                self.now += TimeDelta::try_seconds(*seconds).unwrap_or_default();
            }
        }
        Ok(())
    }

    /// Drops the faults not applied yet, except the rest of a run under way: a run of
    /// 400s or 500s cut short could leave one refusal between two acceptances, which is
    /// by design evidence that the change is poisoned (see [`FaultKind`]).
    fn stop_faults(&mut self) {
        let queued: usize = self.fault_runs.iter().sum();
        let applied = queued.saturating_sub(self.flume.faults_left());
        let mut end = 0;
        let mut keep = 0;
        for run in &self.fault_runs {
            let start = end;
            end += run;
            if applied > start && applied < end {
                keep = end - applied;
                break;
            }
        }
        self.flume.keep_faults(keep);
        self.fault_runs = if keep > 0 { vec![keep] } else { Vec::new() };
    }

    /// Faults stop; steps until the outbox is empty, letting time pass between steps
    /// (two minutes, or less when the machine asks to be woken sooner). Fails if that
    /// takes more steps than the work explains.
    ///
    /// Each time the clock was set back explains up to one schedule horizon more: a
    /// retry time or a dead syncer's lease written before the jump, and now less than a
    /// horizon ahead, cannot be told from one written after it, and is honoured (the
    /// rule that keeps two syncers apart and a `Retry-After` obeyed; see
    /// docs/delivery-semantics.md, "A clock set back").
    ///
    /// Now and then it captures a fresh change, as a running application would: a change
    /// Flume refuses with 500 is condemned only when Flume is seen to take other
    /// changes around it, so a poisoned change with nothing else to send waits (retried
    /// with backoff) until there is.
    pub fn drain(&mut self) -> Result<(), Violation> {
        self.stop_faults();
        let horizon_steps = self.config.schedule_horizon().as_secs().div_ceil(121) as usize;
        let limit = 60 + self.poisoned.len() * 16 + self.set_backs * horizon_steps;
        for step in 0..limit {
            if step % 2 == 1 {
                self.apply(&Step::Capture {
                    count: 1,
                    poison: None,
                    repeat: false,
                })?;
            }
            // Within a step, the machine is also woken when it asks to be, up to a few
            // seconds ahead: pacing after failures lets a batch go every so often, as a
            // run loop would, where one sync every two minutes would see only the first.
            let step_end = self.now + TimeDelta::seconds(121);
            for _ in 0..10_000 {
                block_on(self.syncer.sync_once(self.now)).map_err(failed)?;
                let status = block_on(self.syncer.outbox().status(self.now)).map_err(failed)?;
                if status.pending == 0 && status.in_flight == 0 {
                    return Ok(());
                }
                match status.next_attempt_at {
                    Some(at)
                        if at > self.now
                            && at < step_end
                            && at - self.now <= TimeDelta::seconds(10) =>
                    {
                        self.now = at;
                    }
                    _ => break,
                }
            }
            self.now = self.now.max(step_end);
        }
        Err(Violation(format!("did not drain in {limit} steps")))
    }

    /// Checks every invariant of delivery (after [`drain`](Self::drain)).
    pub fn check(&self) -> Result<(), Violation> {
        let delivered = self.flume.delivered_ids();
        let counts = id_counts(&delivered);
        let dead: HashSet<String> = block_on(self.syncer.outbox().dead_letters(None, usize::MAX))
            .map_err(failed)?
            .into_iter()
            .filter_map(|letter| letter.change().map(|change| change.id().to_string()))
            .collect();

        for (_, id, _) in &self.captured {
            if !self.poisoned.contains(id) {
                ensure!(
                    counts.contains_key(id.as_str()),
                    "non-poisoned change {id} never reached the sink"
                );
            }
        }
        let unique: HashSet<&str> = counts.keys().copied().collect();
        let expected: HashSet<&str> = self
            .captured
            .iter()
            .map(|(_, id, _)| id.as_str())
            .filter(|id| !dead.contains(*id))
            .collect();
        ensure!(
            unique == expected,
            "unique ids at the sink ({}) differ from captured minus dead-lettered ({})",
            unique.len(),
            expected.len()
        );
        ensure!(
            dead == self.poisoned,
            "dead-lettered {:?}, but exactly the poisoned {:?} should be",
            dead,
            self.poisoned
        );

        // First deliveries keep capture order: per record always, and in total with one
        // request in flight.
        let placed: HashMap<&str, (u64, &str)> = self
            .captured
            .iter()
            .map(|(seq, id, key)| (id.as_str(), (*seq, key.as_str())))
            .collect();
        let mut seen = HashSet::new();
        let firsts: Vec<(u64, &str)> = delivered
            .iter()
            .filter(|id| seen.insert(id.as_str()))
            .filter_map(|id| placed.get(id.as_str()).copied())
            .collect();
        if self.config.max_in_flight == 1 {
            let seqs: Vec<u64> = firsts.iter().map(|(seq, _)| *seq).collect();
            ensure!(
                seqs.windows(2).all(|pair| pair[0] < pair[1]),
                "first deliveries are out of capture order: {seqs:?}"
            );
        }
        let mut last_per_record: HashMap<&str, u64> = HashMap::new();
        for (seq, key) in &firsts {
            if let Some(previous) = last_per_record.insert(key, *seq) {
                ensure!(
                    previous < *seq,
                    "record {key}: seq {seq} arrived after seq {previous}"
                );
            }
        }

        let ambiguous = self.flume.ambiguous_ids();
        for (id, count) in &counts {
            if *count > 1 {
                ensure!(
                    ambiguous.contains(*id),
                    "{id} arrived {count} times without a lost ack"
                );
            }
        }

        let duplicates = delivered.len() - counts.len();
        let bound = self.faults * 4
            + self.captured.len() as u64
            + duplicates as u64
            + (self.restarts + 1) * 4
            + self.poisoned.len() as u64 * 40;
        ensure!(
            self.flume.requests() <= bound,
            "{} requests for {} changes, {} faults, {} poisoned: more than the bound {bound}",
            self.flume.requests(),
            self.captured.len(),
            self.faults,
            self.poisoned.len()
        );
        Ok(())
    }
}
