//! Property tests of the whole engine: random captures, sync steps, Flume faults, crashes
//! with restarts and clock jumps, against the memory store and a simulated Flume.
//!
//! The model is a plain list of steps that proptest generates and shrinks (equivalent to
//! a `proptest-state-machine` reference machine whose state is only what the invariants
//! need: what was captured and what was poisoned). After the steps, faults stop and the
//! syncer drains; then every invariant of delivery is checked.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::FutureExt;
use futures::executor::block_on;
use headwater_core::engine::{SyncConfig, Syncer};
use headwater_core::model::ChangeData;
use headwater_core::testing::{Fault, SimFlume, id_counts};
use headwater_memory::MemoryStore;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    /// Capture `count` changes; `poison` marks one of them as an event Flume rejects.
    Capture { count: usize, poison: Option<usize> },
    /// One `sync_once` at the current time.
    Sync,
    /// The next request meets this fault.
    Fault(FaultKind),
    /// The process dies (mid-request if `mid_request`, after Flume committed); a new
    /// syncer starts on the same store.
    Crash { mid_request: bool },
    /// The clock moves (backwards too: wall clocks do).
    Jump(i64),
}

#[derive(Debug, Clone, Copy)]
enum FaultKind {
    Overloaded,
    TooManyRequests(u64),
    ServerError,
    BadGateway,
    TimeoutAfterCommit,
    ConnectionRefused,
    Unauthorized,
}

impl FaultKind {
    fn fault(self) -> Fault {
        match self {
            FaultKind::Overloaded => Fault::Status(
                503,
                "Error appending event to channel. Channel might be full.Space for commit to queue couldn't be acquired.".into(),
            ),
            FaultKind::TooManyRequests(seconds) => Fault::TooManyRequests(seconds),
            FaultKind::ServerError => Fault::Status(500, "Unexpected error".into()),
            FaultKind::BadGateway => Fault::Status(502, "Bad Gateway".into()),
            FaultKind::TimeoutAfterCommit => Fault::TimeoutAfterCommit,
            FaultKind::ConnectionRefused => Fault::ConnectionRefused,
            FaultKind::Unauthorized => Fault::Status(401, "Unauthorized".into()),
        }
    }
}

fn fault_kind() -> impl Strategy<Value = FaultKind> {
    prop_oneof![
        Just(FaultKind::Overloaded),
        (0u64..90).prop_map(FaultKind::TooManyRequests),
        Just(FaultKind::ServerError),
        Just(FaultKind::BadGateway),
        Just(FaultKind::TimeoutAfterCommit),
        Just(FaultKind::ConnectionRefused),
        Just(FaultKind::Unauthorized),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1usize..40, prop::option::weighted(0.15, 0usize..40)).prop_map(|(count, poison)| Step::Capture {
            count,
            poison: poison.map(|at| at % count),
        }),
        6 => Just(Step::Sync),
        3 => fault_kind().prop_map(Step::Fault),
        1 => any::<bool>().prop_map(|mid_request| Step::Crash { mid_request }),
        2 => prop_oneof![-120i64..0, 0i64..600, 3_600i64..86_400].prop_map(Step::Jump),
    ]
}

#[derive(Debug, Clone)]
struct Setup {
    max_events: usize,
    transaction_capacity: Option<usize>,
    steps: Vec<Step>,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        1usize..160,
        prop::option::of(5usize..120),
        prop::collection::vec(step(), 1..60),
    )
        .prop_map(|(max_events, transaction_capacity, steps)| Setup {
            max_events,
            transaction_capacity,
            steps,
        })
}

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000).unwrap()
}

struct World {
    store: MemoryStore,
    flume: SimFlume,
    config: SyncConfig,
    syncer: Syncer<MemoryStore, SimFlume>,
    now: DateTime<Utc>,
    restarts: u64,
    captured: Vec<(u64, String)>,
    poisoned: HashSet<String>,
    faults: u64,
}

impl World {
    fn new(setup: &Setup) -> Self {
        let store = MemoryStore::new();
        let mut flume = SimFlume::new();
        if let Some(capacity) = setup.transaction_capacity {
            flume = flume.with_transaction_capacity(capacity);
        }
        let mut config = SyncConfig::new("prop", 0);
        config.batch.max_events = setup.max_events;
        config.lease = Duration::from_secs(30);
        let syncer = Syncer::new(store.clone(), flume.clone(), config.clone()).unwrap();
        World {
            store,
            flume,
            config,
            syncer,
            now: start(),
            restarts: 0,
            captured: Vec::new(),
            poisoned: HashSet::new(),
            faults: 0,
        }
    }

    fn restart(&mut self) {
        self.restarts += 1;
        self.config.seed = self.restarts;
        self.syncer =
            Syncer::new(self.store.clone(), self.flume.clone(), self.config.clone()).unwrap();
    }

    fn sync(&mut self) -> Result<(), TestCaseError> {
        let before = block_on(self.syncer.outbox().status(self.now)).unwrap();
        let report = block_on(self.syncer.sync_once(self.now)).unwrap();
        if before.next_attempt_at.is_some_and(|at| at > self.now) && before.blocked.is_none() {
            prop_assert_eq!(
                report.requests,
                0,
                "no request before the head's retry is due (no busy loop)"
            );
        }
        if report.blocked {
            let after = block_on(self.syncer.outbox().status(self.now)).unwrap();
            prop_assert!(
                after.blocked.is_some(),
                "a blocked report shows in the status"
            );
            prop_assert_eq!(
                after.dead_lettered,
                before.dead_lettered,
                "blocking dead-letters nothing"
            );
            prop_assert_eq!(
                after.pending + after.in_flight,
                before.pending + before.in_flight - report.delivered - report.dead_lettered,
                "a blocked outbox keeps every change"
            );
        }
        Ok(())
    }

    fn apply(&mut self, step: &Step) -> Result<(), TestCaseError> {
        match step {
            Step::Capture { count, poison } => {
                let base = self.captured.len();
                let changes = (0..*count)
                    .map(|offset| {
                        let key = if Some(offset) == *poison {
                            format!("poison-{}", base + offset)
                        } else {
                            format!("k{}", base + offset)
                        };
                        ChangeData::upsert("items", key, &serde_json::json!({"n": base + offset}))
                            .unwrap()
                    })
                    .collect();
                let stored = block_on(self.syncer.outbox().capture_all(self.now, changes)).unwrap();
                for change in stored {
                    let id = change.id.to_string();
                    if change.data.key.starts_with("poison") {
                        self.poisoned.insert(id.clone());
                    }
                    self.captured.push((change.seq.0, id));
                }
            }
            Step::Sync => self.sync()?,
            Step::Fault(kind) => {
                self.faults += 1;
                self.flume.push_fault(kind.fault());
            }
            Step::Crash { mid_request } => {
                if *mid_request {
                    self.faults += 1;
                    self.flume.push_fault(Fault::HangAfterCommit);
                    // If the request started it hangs: the process dies holding its lease.
                    let _ = self.syncer.sync_once(self.now).now_or_never();
                    self.flume.clear_faults();
                }
                self.restart();
            }
            Step::Jump(seconds) => self.now += TimeDelta::seconds(*seconds),
        }
        Ok(())
    }

    /// Faults stop; step until the outbox is empty, letting time pass when nothing is due.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        self.flume.clear_faults();
        let limit = 50 + self.captured.len() * 4;
        for _ in 0..limit {
            let report = block_on(self.syncer.sync_once(self.now)).unwrap();
            let status = block_on(self.syncer.outbox().status(self.now)).unwrap();
            if status.pending == 0 && status.in_flight == 0 {
                return Ok(());
            }
            if !report.more_ready() {
                self.now += TimeDelta::seconds(121);
            }
        }
        Err(TestCaseError::fail(format!(
            "did not drain in {limit} steps"
        )))
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let delivered = self.flume.delivered_ids();
        let counts = id_counts(&delivered);
        let dead: HashSet<String> = block_on(self.store_dead_letters()).into_iter().collect();
        let captured: HashSet<&String> = self.captured.iter().map(|(_, id)| id).collect();

        for (_, id) in &self.captured {
            if !self.poisoned.contains(id) {
                prop_assert!(
                    counts.contains_key(id.as_str()),
                    "non-poisoned change {} never reached the sink",
                    id
                );
            }
        }
        let unique: HashSet<&str> = counts.keys().copied().collect();
        let expected: HashSet<&str> = captured
            .iter()
            .filter(|id| !dead.contains(id.as_str()))
            .map(|id| id.as_str())
            .collect();
        prop_assert_eq!(
            unique,
            expected,
            "unique ids at the sink = captured - dead-lettered"
        );
        let poisoned: HashSet<String> = self.poisoned.clone();
        prop_assert_eq!(
            &dead,
            &poisoned,
            "exactly the poisoned changes are dead-lettered"
        );

        let seq_of: HashMap<&str, u64> = self
            .captured
            .iter()
            .map(|(seq, id)| (id.as_str(), *seq))
            .collect();
        let mut seen = HashSet::new();
        let first_seqs: Vec<u64> = delivered
            .iter()
            .filter(|id| seen.insert(id.as_str()))
            .map(|id| seq_of[id.as_str()])
            .collect();
        prop_assert!(
            first_seqs.windows(2).all(|pair| pair[0] < pair[1]),
            "first deliveries follow capture order: {:?}",
            first_seqs
        );

        let ambiguous = self.flume.ambiguous_ids();
        for (id, count) in &counts {
            if *count > 1 {
                prop_assert!(
                    ambiguous.contains(*id),
                    "{} arrived {} times without a lost ack",
                    id,
                    count
                );
            }
        }

        let duplicates = delivered.len() - counts.len();
        let bound = self.faults
            + self.captured.len() as u64
            + duplicates as u64
            + (self.restarts + 1) * 2
            + self.poisoned.len() as u64 * 20;
        prop_assert!(
            self.flume.requests() <= bound,
            "{} requests for {} changes, {} faults, {} poisoned: more than the bound {}",
            self.flume.requests(),
            self.captured.len(),
            self.faults,
            self.poisoned.len(),
            bound
        );
        Ok(())
    }

    async fn store_dead_letters(&self) -> Vec<String> {
        self.syncer
            .outbox()
            .dead_letters(usize::MAX)
            .await
            .unwrap()
            .into_iter()
            .map(|entry| entry.change.id.to_string())
            .collect()
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("tests/properties.proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    /// No change is lost, only poisoned changes are dead-lettered, order and
    /// idempotency hold, and requests stay within a bound of the work.
    #[test]
    fn delivery_survives_faults_crashes_and_clock_jumps(setup in setup()) {
        let mut world = World::new(&setup);
        for step in &setup.steps {
            world.apply(step)?;
        }
        world.drain()?;
        world.check()?;
    }

    /// With a channel smaller than the configured batch, everything still arrives and the
    /// batch size settles at or below the channel's transactionCapacity.
    #[test]
    fn batch_size_settles_at_the_transaction_capacity(capacity in 1usize..120, count in 1usize..400) {
        let setup = Setup { max_events: 150, transaction_capacity: Some(capacity), steps: vec![] };
        let mut world = World::new(&setup);
        world.apply(&Step::Capture { count, poison: None })?;
        world.drain()?;
        world.check()?;
        if count > capacity {
            prop_assert!(world.syncer.batch_size() <= capacity);
        }
        let batches = count.div_ceil(capacity) as u64;
        prop_assert!(world.flume.requests() <= batches + 2, "{} requests for {} batches", world.flume.requests(), batches);
    }
}
