use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::flume::EncodedBatch;
use crate::store::{ChangeStore, Claim, ClaimRequest, Outcome, Recorded, StoreError};
use crate::transport::{SendOutcome, Transport};

use super::machine::{Command, DeliveryMachine, RequestId, SendRequest};
use super::outbox::Outbox;
use super::shared::Shared;
use super::status::SyncStatus;
use super::{ConfigError, SyncConfig};

/// What one [`Syncer::sync_once`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncReport {
    /// Requests sent (empty probes included).
    pub requests: u64,
    /// Changes acknowledged by Flume.
    pub delivered: u64,
    /// Changes dead-lettered.
    pub dead_lettered: u64,
    /// Changes acknowledged unsent because a later change superseded them.
    pub coalesced: u64,
    /// Batches scheduled for another attempt after a backoff.
    pub retries: u64,
    /// The outbox is blocked by a configuration problem.
    pub blocked: bool,
}

/// Why a run loop stopped on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The store was closed (or must close for another connection's schema upgrade);
    /// reopen it and start a new syncer.
    #[error("the store was closed: {0}")]
    StoreClosed(String),
    /// The store is damaged or cannot be written ([`StoreError::Unusable`], described
    /// with its causes): retrying cannot help, so delivery stopped. Repair or replace
    /// the store, then start a new syncer.
    #[error("{0}")]
    StoreUnusable(String),
}

/// The async driver of a [`DeliveryMachine`]: it claims from the store, sends through
/// the transport (several requests at once), and records outcomes, as the machine asks.
/// It holds no clock: [`sync_once`](Self::sync_once) takes `now`, and
/// [`run`](Self::run) a clock and a sleep function, so it runs on any runtime (the
/// `headwater` crate gives it tokio's, or the browser's).
///
/// ```
/// # use headwater_core::engine::{Syncer, SyncConfig};
/// # use headwater_core::model::ChangeData;
/// # use headwater_core::transport::{SendOutcome, Response, Transport};
/// # use headwater_core::flume::EncodedBatch;
/// # struct Flume;
/// # #[async_trait::async_trait]
/// # impl Transport for Flume {
/// #     async fn send(&self, _: EncodedBatch<'_>) -> SendOutcome { SendOutcome::Response(Response::status(200)) }
/// # }
/// futures::executor::block_on(async {
///     let now = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
///     let store = headwater_memory::MemoryStore::new();
///     let mut syncer = Syncer::new(store, Flume, SyncConfig::new("docs", 42)).unwrap();
///     let outbox = syncer.outbox();
///     outbox.capture(now, ChangeData::delete("todos", "1").unwrap()).await.unwrap();
///     let report = syncer.sync_once(now).await.unwrap();
///     assert_eq!(report.delivered, 1);
/// });
/// ```
pub struct Syncer<S, T> {
    store: S,
    transport: T,
    machine: DeliveryMachine,
    shared: Arc<Shared>,
    on_delivered: Option<DeliveryObserver>,
}

/// Told each delivered change's latency, capture to acknowledgement.
#[cfg(not(target_arch = "wasm32"))]
pub type DeliveryObserver = Box<dyn FnMut(Duration) + Send>;
/// Told each delivered change's latency, capture to acknowledgement.
#[cfg(target_arch = "wasm32")]
pub type DeliveryObserver = Box<dyn FnMut(Duration)>;

/// Hands the machine's latencies to the observer, if there is one.
fn observe(machine: &mut DeliveryMachine, observer: &mut Option<DeliveryObserver>) {
    if let Some(observer) = observer {
        for latency in machine.take_latencies() {
            observer(latency);
        }
    }
}

impl<S, T> std::fmt::Debug for Syncer<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer")
            .field("owner", &self.machine.owner())
            .field("batch_size", &self.machine.batch_size())
            .field("in_flight", &self.machine.requests_in_flight())
            .field("in_flight_limit", &self.machine.in_flight_limit())
            .finish_non_exhaustive()
    }
}

/// A seed for the change ids distinct from the jitter's, from the same configured seed.
const ID_STREAM: u64 = 0x9e37_79b9_7f4a_7c15;

/// What a store command gave back.
enum StoreDone {
    Claimed(ClaimRequest, Result<Claim, StoreError>),
    Recorded(Outcome, Result<Recorded, StoreError>),
    RecordedThenClaimed(
        Outcome,
        ClaimRequest,
        Result<(Recorded, Result<Claim, StoreError>), StoreError>,
    ),
    Released(Result<(), StoreError>),
}

/// A boxed future: `Send` natively (so the syncer runs on a multi-threaded runtime),
/// not in the browser, where IndexedDB and fetch futures are `!Send`.
#[cfg(not(target_arch = "wasm32"))]
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
#[cfg(target_arch = "wasm32")]
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

impl<S: ChangeStore + Clone, T: Transport> Syncer<S, T> {
    /// A syncer over `store` and `transport`, if `config` is valid.
    pub fn new(store: S, transport: T, config: SyncConfig) -> Result<Self, ConfigError> {
        let machine = DeliveryMachine::new(config)?;
        let seed = machine.config().seed;
        // Nothing has happened yet: the view holds the machine's limits alone.
        let view = SyncStatus {
            batch_size: machine.batch_size(),
            in_flight_limit: machine.in_flight_limit(),
            ..SyncStatus::default()
        };
        let shared = Arc::new(Shared::new(
            seed ^ ID_STREAM,
            view,
            machine.config().outbox_limits,
        ));
        Ok(Self {
            store,
            transport,
            machine,
            shared,
            on_delivered: None,
        })
    }

    /// Calls `observer` with each delivered change's latency, from capture to Flume's
    /// acknowledgement (for a histogram, say), right after the answer arrives.
    pub fn on_delivered(&mut self, observer: DeliveryObserver) {
        self.machine.keep_latencies(true);
        self.on_delivered = Some(observer);
    }

    /// The application's handle: capture, status, dead letters, shutdown.
    pub fn outbox(&self) -> Outbox<S> {
        Outbox::new(self.store.clone(), Arc::clone(&self.shared))
    }

    /// The configuration in force.
    pub fn config(&self) -> &SyncConfig {
        self.machine.config()
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The state machine this syncer drives.
    pub fn machine(&self) -> &DeliveryMachine {
        &self.machine
    }

    /// The batch size in force right now.
    pub fn batch_size(&self) -> usize {
        self.machine.batch_size()
    }

    fn take_signals(machine: &mut DeliveryMachine, shared: &Shared, now: DateTime<Utc>) {
        let signals = &shared.signals;
        if signals.captured.swap(false, Ordering::AcqRel) {
            machine.handle_captured(now);
        }
        if signals.requeued.swap(false, Ordering::AcqRel) {
            machine.handle_requeued(now);
        }
        if signals.flush_now.swap(false, Ordering::AcqRel) {
            machine.handle_flush_now(now);
        }
        machine.handle_paused(now, signals.paused.load(Ordering::Acquire));
        if signals.shutdown.load(Ordering::Acquire) {
            machine.shutdown();
        }
    }

    /// Does everything delivery can do at `now`, with every request answered before it
    /// returns: claims, sends (several at once, up to the in-flight limit), bisects and
    /// splits as answers require, and records outcomes. It returns when only time can
    /// bring more (a backoff, a retry, a blocked outbox's probe) or nothing is left.
    ///
    /// For tests and simulations, which drive time themselves; an application runs
    /// [`run`](Self::run) (or the `headwater` facade, which does).
    pub async fn sync_once(&mut self, now: DateTime<Utc>) -> Result<SyncReport, StoreError> {
        let before = self.machine.counters();
        let Self {
            store,
            transport,
            machine,
            shared,
            on_delivered,
        } = self;
        Self::take_signals(machine, shared, now);
        let mut sends: FuturesUnordered<BoxFuture<'_, (RequestId, Vec<u8>, SendOutcome)>> =
            FuturesUnordered::new();
        let mut failure: Option<StoreError> = None;
        // A bound far above any real step; it only guards against a rule that loops.
        for _ in 0..1_000_000 {
            while let Some(command) = machine.poll_command(now) {
                match split(command) {
                    Step::Send(request) => sends.push(Box::pin(send(transport, request))),
                    Step::Store(command) => {
                        let owner = machine.owner().to_owned();
                        let done = perform(store, owner, now, command).await;
                        if let Some(error) = Self::handle_store(machine, shared, now, done) {
                            failure.get_or_insert(error);
                        }
                    }
                }
            }
            let Some((id, body, outcome)) = sends.next().await else {
                break;
            };
            machine.handle_answer(now, id, outcome, body);
            observe(machine, on_delivered);
        }
        shared.publish(machine.status(now));
        drop(sends);
        if let Some(error) = failure {
            return Err(error);
        }
        let after = self.machine.counters();
        Ok(SyncReport {
            requests: after.requests - before.requests,
            delivered: after.delivered - before.delivered,
            dead_lettered: after.dead_lettered - before.dead_lettered,
            coalesced: after.coalesced - before.coalesced,
            retries: after.retries - before.retries,
            blocked: self.machine.status(now).blocked.is_some(),
        })
    }

    /// Gives a store result to the machine; returns the error, if it was one.
    fn handle_store(
        machine: &mut DeliveryMachine,
        shared: &Shared,
        now: DateTime<Utc>,
        done: StoreDone,
    ) -> Option<StoreError> {
        match done {
            StoreDone::Claimed(request, Ok(claim)) => machine.handle_claimed(now, &request, claim),
            StoreDone::Recorded(_, Ok(recorded)) => {
                machine.handle_recorded(now, recorded);
                shared.notify_progress();
            }
            StoreDone::RecordedThenClaimed(_, request, Ok((recorded, claim))) => {
                shared.notify_progress();
                match claim {
                    Ok(claim) => {
                        machine.handle_recorded_then_claimed(now, recorded, &request, Ok(claim));
                    }
                    Err(error) => {
                        machine.handle_recorded_then_claimed(now, recorded, &request, Err(&error));
                        return Some(error);
                    }
                }
            }
            StoreDone::RecordedThenClaimed(outcome, _, Err(error)) => {
                machine.handle_store_failed(now, Some(outcome), &error);
                return Some(error);
            }
            StoreDone::Released(result) => {
                if let Err(error) = result {
                    tracing::warn!(error = %error.describe(), "could not give up the lease; it lapses on its own");
                }
                machine.handle_released(now);
            }
            StoreDone::Claimed(_, Err(error)) => {
                machine.handle_store_failed(now, None, &error);
                return Some(error);
            }
            StoreDone::Recorded(outcome, Err(error)) => {
                machine.handle_store_failed(now, Some(outcome), &error);
                return Some(error);
            }
        }
        None
    }

    /// Runs delivery until [`Outbox::shutdown`] is called.
    ///
    /// The loop is runtime-agnostic: `clock` gives wall time and `sleep` a timer future
    /// (`tokio::time::sleep` natively, a `setTimeout` future in the browser). It keeps
    /// up to the in-flight limit of requests going while there is work, sleeps until
    /// the next retry is due, and wakes at once when a change is captured. Shutdown
    /// lets the requests in flight finish and be recorded, so no request is cut off.
    /// Store errors other than a closed or unusable store are logged and retried with
    /// backoff; a closed store ends the loop with [`RunError::StoreClosed`], an unusable
    /// one with [`RunError::StoreUnusable`].
    pub async fn run<C, Sleep, F>(&mut self, clock: C, sleep: Sleep) -> Result<(), RunError>
    where
        C: Fn() -> DateTime<Utc>,
        Sleep: Fn(Duration) -> F,
        F: Future<Output = ()>,
    {
        let result = self.run_inner(&clock, &sleep).await;
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.publish(self.machine.status(clock()));
        result
    }

    async fn run_inner<C, Sleep, F>(&mut self, clock: &C, sleep: &Sleep) -> Result<(), RunError>
    where
        C: Fn() -> DateTime<Utc>,
        Sleep: Fn(Duration) -> F,
        F: Future<Output = ()>,
    {
        let Self {
            store,
            transport,
            machine,
            shared,
            on_delivered,
        } = self;
        let mut sends: FuturesUnordered<BoxFuture<'_, (RequestId, Vec<u8>, SendOutcome)>> =
            FuturesUnordered::new();
        let mut store_op: Option<BoxFuture<'_, StoreDone>> = None;
        let mut timer: Option<(DateTime<Utc>, Pin<Box<F>>)> = None;
        loop {
            let now = clock();
            Self::take_signals(machine, shared, now);
            // Sends never wait for the store; the machine asks for one store command at
            // a time, and none while one is under way.
            while let Some(command) = machine.poll_command(now) {
                match split(command) {
                    Step::Send(request) => sends.push(Box::pin(send(transport, request))),
                    Step::Store(command) => {
                        store_op = Some(Box::pin(perform(
                            store,
                            machine.owner().to_owned(),
                            now,
                            command,
                        )));
                    }
                }
            }
            shared.publish(machine.status(now));
            if machine.is_stopped() {
                return Ok(());
            }
            // The timer is made again only when the time to wake changes.
            let deadline = machine
                .poll_timeout(now)
                .unwrap_or(now + chrono::TimeDelta::hours(1));
            if timer.as_ref().is_none_or(|(at, _)| *at != deadline) {
                let wait = (deadline - now).to_std().unwrap_or(Duration::ZERO);
                timer = Some((deadline, Box::pin(sleep(wait))));
            }
            let mut woken = std::pin::pin!(shared.wake.wait());
            // Everything that is ready is taken at once, so that neither the store nor
            // the answers can starve the other.
            // Sends are polled first: a new request starts on the wire before the store
            // operation (which may run right here, as the memory store's does) takes
            // its turn.
            let (done, answers, rang) = futures::future::poll_fn(|cx| {
                let mut answers = Vec::new();
                while let Poll::Ready(Some(answer)) = sends.poll_next_unpin(cx) {
                    answers.push(answer);
                }
                let mut done = None;
                if let Some(op) = store_op.as_mut()
                    && let Poll::Ready(result) = op.as_mut().poll(cx)
                {
                    done = Some(result);
                }
                let woken = woken.as_mut().poll(cx).is_ready();
                let rang = timer
                    .as_mut()
                    .is_some_and(|(_, timer)| timer.as_mut().poll(cx).is_ready());
                if done.is_some() || !answers.is_empty() || woken || rang {
                    Poll::Ready((done, answers, rang))
                } else {
                    Poll::Pending
                }
            })
            .await;
            if rang {
                timer = None;
            }
            let now = clock();
            for (id, body, outcome) in answers {
                machine.handle_answer(now, id, outcome, body);
            }
            observe(machine, on_delivered);
            if let Some(done) = done {
                store_op = None;
                match Self::handle_store(machine, shared, now, done) {
                    Some(StoreError::Closed { reason }) => {
                        return Err(RunError::StoreClosed(reason));
                    }
                    Some(error @ StoreError::Unusable(_)) => {
                        return Err(RunError::StoreUnusable(error.describe()));
                    }
                    _ => {}
                }
            }
        }
    }
}

async fn send<T: Transport>(
    transport: &T,
    request: SendRequest,
) -> (RequestId, Vec<u8>, SendOutcome) {
    let outcome = transport
        .send(
            EncodedBatch::new(&request.body, request.events)
                .on_route(request.route)
                .in_format(request.format),
        )
        .await;
    (request.id, request.body, outcome)
}

/// A command for the store.
enum StoreCommand {
    Claim(ClaimRequest),
    Record(Outcome),
    RecordThenClaim(Outcome, ClaimRequest),
    Release,
}

/// A command for the transport or for the store.
enum Step {
    Send(SendRequest),
    Store(StoreCommand),
}

fn split(command: Command) -> Step {
    match command {
        Command::Send(request) => Step::Send(request),
        Command::Claim(request) => Step::Store(StoreCommand::Claim(request)),
        Command::Record(outcome) => Step::Store(StoreCommand::Record(outcome)),
        Command::RecordThenClaim(outcome, request) => {
            Step::Store(StoreCommand::RecordThenClaim(outcome, request))
        }
        Command::Release => Step::Store(StoreCommand::Release),
    }
}

async fn perform<S: ChangeStore>(
    store: &S,
    owner: String,
    now: DateTime<Utc>,
    command: StoreCommand,
) -> StoreDone {
    match command {
        StoreCommand::Claim(request) => {
            let result = store.claim(&request).await;
            StoreDone::Claimed(request, result)
        }
        StoreCommand::Record(outcome) => {
            let result = store.record(&owner, now, &outcome).await;
            StoreDone::Recorded(outcome, result)
        }
        StoreCommand::RecordThenClaim(outcome, request) => {
            let result = store
                .record_then_claim(&owner, now, &outcome, &request)
                .await;
            StoreDone::RecordedThenClaimed(outcome, request, result)
        }
        StoreCommand::Release => StoreDone::Released(store.release(&owner).await),
    }
}
