//! The running headwater: what an application calls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use headwater_core::engine::{CaptureError, Outbox, SyncStatus, Syncer};
use headwater_core::model::{Change, ChangeData, ChangeId, DeadLetter, Seq, SyncMarker};
use headwater_core::store::{ChangeStore, Location, StoreError, StoredEntry};

use crate::parts::{DynStore, DynTransport};
use crate::runtime::{self, SharedClock, Task};
use crate::start_error::StartError;

/// How long waiting for delivery gathers progress events before it looks at the store.
const PROGRESS_COALESCE: Duration = Duration::from_millis(10);

struct Inner {
    outbox: Outbox<DynStore>,
    clock: SharedClock,
    task: Mutex<Option<Task>>,
    /// Whether this handle's delivery runs (in a browser with a leader lock, only the
    /// tab holding it).
    leading: Arc<AtomicBool>,
    /// Dropped to stop waiting for the leader lock (shutdown of a tab that never led).
    stop_waiting: Mutex<Option<futures::channel::oneshot::Sender<()>>>,
    /// The database file delivery reads, with a SQLite store.
    #[cfg(feature = "sqlite")]
    pub(crate) delivery_database: Option<std::path::PathBuf>,
    /// Retries soon after the page comes back online (removed with the last handle).
    #[cfg(target_arch = "wasm32")]
    _online: Option<crate::online::OnlineWake>,
}

/// How [`Headwater::spawn`] runs delivery.
pub(crate) struct SpawnOptions {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) metrics_interval: Duration,
    pub(crate) leader_lock: Option<String>,
    #[cfg(feature = "sqlite")]
    pub(crate) delivery_database: Option<std::path::PathBuf>,
    /// Held by the delivery task until it ends (see `sqlite::sole_process_lock`).
    #[cfg(feature = "sqlite")]
    pub(crate) process_lock: Option<std::fs::File>,
}

impl Drop for Inner {
    /// When the last handle goes, delivery stops after the requests in flight; what is
    /// not delivered stays in the store.
    fn drop(&mut self) {
        self.outbox.shutdown();
    }
}

/// A running headwater: capture changes, watch delivery, handle dead letters, stop.
///
/// Cheap to clone; all clones drive the same outbox. When the last clone is dropped,
/// delivery stops after the requests in flight (call [`shutdown`](Self::shutdown) to
/// wait for that).
///
/// ```no_run
/// use headwater::{ChangeData, Headwater};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let headwater = Headwater::builder().flume(["http://127.0.0.1:5140/"]).start()?;
/// let receipt = headwater
///     .capture(ChangeData::insert("todos", "1", &serde_json::json!({"title": "milk"}))?)
///     .await?;
/// headwater.flush().await?;
/// assert!(headwater.sync_marker("todos", "1").await?.is_some());
/// println!("{} delivered", receipt.id());
/// headwater.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Headwater {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Headwater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Headwater")
            .field("stopped", &self.inner.outbox.is_stopped())
            .field("paused", &self.inner.outbox.is_paused())
            .field("last_captured", &self.inner.outbox.last_captured())
            .finish()
    }
}

/// A captured change: its place and idempotency id, and a way to wait for its delivery.
#[derive(Clone)]
pub struct Receipt {
    seq: Seq,
    id: ChangeId,
    headwater: Headwater,
}

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receipt")
            .field("seq", &self.seq)
            .field("id", &self.id)
            .finish()
    }
}

/// How a change's delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivered {
    /// Flume acknowledged it.
    Acknowledged,
    /// It was set aside for an operator, for this reason.
    DeadLettered(String),
}

/// Why waiting for delivery ended without it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// The outbox is blocked by a configuration problem (a 401, a wrong URL, TLS): every
    /// change is kept, and delivery goes on once it is fixed.
    #[error("the outbox is blocked: {0}")]
    Blocked(String),
    /// Sending is paused.
    #[error("sending is paused: call resume()")]
    Paused,
    /// Delivery has stopped (shut down, or the store was closed).
    #[error("delivery has stopped")]
    Stopped,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Receipt {
    /// The change's place in the outbox.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// The change's idempotency key, sent as Flume's `id` header.
    pub fn id(&self) -> ChangeId {
        self.id
    }

    /// Resolves once the change is acknowledged by Flume or dead-lettered. Fails with
    /// the reason if, while it waits, the outbox is blocked (every change is kept; it
    /// goes on once the cause is fixed), paused or stopped.
    pub async fn delivered(&self) -> Result<Delivered, FlushError> {
        let outbox = &self.headwater.inner.outbox;
        loop {
            let progress = outbox.progress();
            let asked = self.headwater.now();
            let located = outbox.store().locate(self.seq).await?;
            let read = self.headwater.since(asked);
            match located {
                Location::Gone => return Ok(Delivered::Acknowledged),
                Location::DeadLettered(letter) => {
                    return Ok(Delivered::DeadLettered(letter.reason));
                }
                // Still pending (or a state a later store may report): wait for it.
                _ => {}
            }
            if let Some(reason) = outbox.blocked() {
                return Err(FlushError::Blocked(reason));
            }
            self.headwater.check_can_progress()?;
            self.headwater.wait_for_progress(progress, read).await;
        }
    }
}

impl Headwater {
    pub(crate) fn spawn(
        syncer: Syncer<DynStore, DynTransport>,
        clock: SharedClock,
        options: SpawnOptions,
    ) -> Result<Self, StartError> {
        let outbox = syncer.outbox();
        #[cfg(target_arch = "wasm32")]
        let outbox_for_online = outbox.clone();
        let mut syncer = syncer;
        #[cfg(feature = "metrics")]
        {
            let source = syncer.config().mapping.source.clone();
            let latency_key = crate::metrics::latency_key(&source);
            syncer.on_delivered(Box::new(move |latency| {
                crate::metrics::delivered(&latency_key, latency);
            }));
            runtime::spawn(crate::metrics::report(
                outbox.clone(),
                Arc::clone(&clock),
                source,
                options.metrics_interval,
            ))?;
        }
        let run_clock = Arc::clone(&clock);
        // Natively, and in a browser without a leader lock, this handle leads from the
        // start (not only once its task first runs); with a lock, once it is granted.
        let leads_at_once = cfg!(not(target_arch = "wasm32")) || options.leader_lock.is_none();
        let leading = Arc::new(AtomicBool::new(leads_at_once));
        let (stop_waiting, waiting_stopped) = futures::channel::oneshot::channel::<()>();
        let task_leading = Arc::clone(&leading);
        let leader_lock = options.leader_lock;
        #[cfg(feature = "sqlite")]
        let process_lock = options.process_lock;
        let task = runtime::spawn(async move {
            // Released when delivery has ended, not when the last handle goes: until
            // then, no other process may take the lease under the same name.
            #[cfg(feature = "sqlite")]
            let _process_lock = process_lock;
            #[cfg(target_arch = "wasm32")]
            let _held = match leader_lock {
                Some(name) => {
                    let acquire =
                        std::pin::pin!(crate::leader::acquire(&name, Arc::clone(&task_leading)));
                    match futures::future::select(acquire, waiting_stopped).await {
                        futures::future::Either::Left((held, _)) => {
                            // Without Web Locks every tab syncs, as the outbox's lease
                            // keeps them apart.
                            task_leading.store(true, Ordering::Release);
                            held
                        }
                        // Shut down before this tab ever led.
                        futures::future::Either::Right(_) => return,
                    }
                }
                None => None,
            };
            #[cfg(not(target_arch = "wasm32"))]
            {
                // Natively there is one process per outbox: no leader to wait for.
                let _ = (leader_lock, waiting_stopped);
            }
            let result = syncer.run(move || run_clock.now(), runtime::sleep).await;
            task_leading.store(false, Ordering::Release);
            if let Err(error) = result {
                tracing::error!(%error, "delivery stopped");
            }
        })?;
        // On wasm32 the store is `!Send` and everything runs on one thread: the `Arc` is
        // then only a shared pointer, as natively it is also a thread-safe one.
        #[allow(clippy::arc_with_non_send_sync)]
        Ok(Self {
            inner: Arc::new(Inner {
                outbox,
                clock,
                task: Mutex::new(Some(task)),
                leading,
                stop_waiting: Mutex::new(Some(stop_waiting)),
                #[cfg(feature = "sqlite")]
                delivery_database: options.delivery_database,
                #[cfg(target_arch = "wasm32")]
                _online: crate::online::OnlineWake::listen(outbox_for_online),
            }),
        })
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.now()
    }

    /// The database file delivery reads, with a SQLite store.
    #[cfg(feature = "sqlite")]
    pub(crate) fn delivery_database(&self) -> Option<&std::path::Path> {
        self.inner.delivery_database.as_deref()
    }

    pub(crate) fn receipt(&self, change: &Change) -> Receipt {
        Receipt {
            seq: change.seq(),
            id: change.id(),
            headwater: self.clone(),
        }
    }

    /// Whether this handle's delivery runs: natively from `start` until delivery ends (a
    /// shutdown, or a store that stopped it). In a browser with
    /// [`leader_lock`](crate::Builder::leader_lock), only in the tab holding the lock; the
    /// others capture only, and take over when the leader's tab closes.
    pub fn is_leader(&self) -> bool {
        self.inner.leading.load(Ordering::Acquire)
    }

    /// Captures one change: it gets its idempotency id and capture time now, is stored
    /// durably (as durable as the store), and delivery starts at once.
    pub async fn capture(&self, change: ChangeData) -> Result<Receipt, CaptureError> {
        let stored = self.inner.outbox.capture(self.now(), change).await?;
        Ok(self.receipt(&stored))
    }

    /// [`capture`](Self::capture), but when a bounded outbox is full
    /// (`SyncConfig::outbox_limits`), waits for delivery to make room instead of
    /// failing with `OutboxFull`. It still fails for any other reason, and if delivery
    /// has stopped.
    pub async fn capture_when_room(&self, change: ChangeData) -> Result<Receipt, CaptureError> {
        loop {
            let progress = self.inner.outbox.progress();
            match self.capture(change.clone()).await {
                Err(CaptureError::Store(StoreError::OutboxFull { .. }))
                    if !self.inner.outbox.is_stopped() =>
                {
                    progress.await;
                }
                other => return other,
            }
        }
    }

    /// A future that resolves at delivery's next change of state (an acknowledgement,
    /// a retry, a block, a stall) after this call: a page re-renders its sync badge
    /// from [`status`](Self::status) after each. Take it *before* reading the status,
    /// so that a change while you read is not missed.
    ///
    /// ```no_run
    /// # async fn demo(headwater: headwater::Headwater) {
    /// loop {
    ///     let next = headwater.changed();
    ///     let status = headwater.status().await.unwrap();
    ///     println!("{} pending, stalled: {}", status.pending, status.stalled_since.is_some());
    ///     next.await;
    /// }
    /// # }
    /// ```
    pub fn changed(&self) -> impl Future<Output = ()> + 'static {
        self.inner.outbox.progress()
    }

    /// Captures several changes atomically (all or none), in order.
    pub async fn capture_all(
        &self,
        changes: Vec<ChangeData>,
    ) -> Result<Vec<Receipt>, CaptureError> {
        let stored = self.inner.outbox.capture_all(self.now(), changes).await?;
        Ok(stored.iter().map(|change| self.receipt(change)).collect())
    }

    /// What delivery is doing: pending, in flight, dead-lettered, blocked, the last
    /// error, totals.
    pub async fn status(&self) -> Result<SyncStatus, StoreError> {
        self.inner.outbox.status(self.now()).await
    }

    /// The last acknowledged change of a record: it is synced once this reaches the seq
    /// of its last capture.
    pub async fn sync_marker(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<SyncMarker>, StoreError> {
        self.inner.outbox.sync_marker(collection, key).await
    }

    /// Up to `limit` dead letters after `after`, oldest first.
    pub async fn dead_letters(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.outbox.dead_letters(after, limit).await
    }

    /// Puts dead letters back in line, same seq and id; returns how many.
    pub async fn requeue(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
        self.inner.outbox.requeue(seqs).await
    }

    /// Deletes dead letters for good; returns how many.
    pub async fn discard(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
        self.inner.outbox.discard(seqs).await
    }

    /// Up to `limit` pending changes after `after`, oldest first.
    pub async fn pending(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        self.inner.outbox.pending(after, limit).await
    }

    /// Tells delivery that changes were appended elsewhere (after an application's own
    /// transaction committed, or when the network came back).
    pub fn wake(&self) {
        self.inner.outbox.wake();
    }

    /// Skips the current backoff (or a blocked outbox's wait): try now.
    pub fn flush_now(&self) {
        self.inner.outbox.flush_now();
    }

    /// Stops sending; captures go on, requests in flight finish.
    pub fn pause(&self) {
        self.inner.outbox.pause();
    }

    /// Sends again after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.inner.outbox.resume();
    }

    /// Waits for the syncer's next progress, then a little more, so that the many
    /// events of a fast delivery are read in one look at the store rather than one each:
    /// at least [`PROGRESS_COALESCE`], and four times what the last look (`read`) took,
    /// so that looking keeps to a fifth of the store's time whatever the store. (In a
    /// busy page an IndexedDB read takes milliseconds and competes with delivery's own
    /// transactions: a look every 10 ms slowed a sync of 10,000 changes by a third.)
    async fn wait_for_progress(&self, progress: event_listener::EventListener, read: Duration) {
        progress.await;
        runtime::sleep(PROGRESS_COALESCE.max(read * 4)).await;
    }

    /// Wall time since `then` by the handle's clock (zero if it went back).
    fn since(&self, then: chrono::DateTime<chrono::Utc>) -> Duration {
        (self.now() - then).to_std().unwrap_or_default()
    }

    fn check_can_progress(&self) -> Result<(), FlushError> {
        let outbox = &self.inner.outbox;
        if outbox.is_stopped() {
            return Err(FlushError::Stopped);
        }
        if outbox.is_paused() {
            return Err(FlushError::Paused);
        }
        Ok(())
    }

    /// Resolves when every change captured before the call (through this handle, or
    /// pending in the store) is delivered or dead-lettered. Fails at once with the
    /// reason if the outbox is blocked, paused or stopped.
    pub async fn flush(&self) -> Result<(), FlushError> {
        let outbox = &self.inner.outbox;
        let stats = outbox.store().stats().await?;
        let target = stats.newest_seq.map_or(outbox.last_captured(), |newest| {
            newest.max(outbox.last_captured())
        });
        loop {
            let progress = outbox.progress();
            let asked = self.now();
            let status = outbox.status(asked).await?;
            let read = self.since(asked);
            if status
                .oldest_pending_seq
                .is_none_or(|oldest| oldest > target)
            {
                return Ok(());
            }
            if let Some(reason) = status.blocked {
                return Err(FlushError::Blocked(reason));
            }
            self.check_can_progress()?;
            self.wait_for_progress(progress, read).await;
        }
    }

    /// Stops delivery: the requests in flight finish and are recorded, the lease is
    /// given up, and what is not delivered stays in the store for the next start.
    /// Resolves when delivery has stopped. Other clones of this handle can still read
    /// the store, but nothing more is sent.
    pub async fn shutdown(&self) {
        let outbox = &self.inner.outbox;
        outbox.shutdown();
        drop(
            self.inner
                .stop_waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match task {
            Some(task) => task.join().await,
            // Another clone is joining the task: wait until it has stopped.
            None => loop {
                let progress = outbox.progress();
                if outbox.is_stopped() {
                    break;
                }
                progress.await;
            },
        }
    }

    /// The core's outbox behind this handle, for capture inside an application's own
    /// transaction ([`Outbox::prepare`] and [`Outbox::appended`]) and other advanced use.
    pub fn outbox(&self) -> &Outbox<DynStore> {
        &self.inner.outbox
    }

    /// The current time on this headwater's clock (the system's, unless a test set one).
    pub fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        self.now()
    }
}
