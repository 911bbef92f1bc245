use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};

use crate::model::{
    Captured, Change, ChangeData, ChangeIdGenerator, InvalidChange, OutboxEntry, Seq, SyncMarker,
};
use crate::store::{ChangeStore, StoreError};

use super::status::{SyncCounters, SyncStatus};
use super::wake::Wake;

/// A capture that did not happen. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// The change itself is invalid.
    #[error(transparent)]
    Invalid(#[from] InvalidChange),
    /// The store refused the write.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The engine's state that the application may read while the syncer runs.
#[derive(Debug, Default)]
pub(crate) struct EngineView {
    pub(crate) blocked: Option<String>,
    pub(crate) last_error: Option<String>,
    pub(crate) next_attempt_at: Option<DateTime<Utc>>,
    pub(crate) batch_size: usize,
    pub(crate) counters: SyncCounters,
}

/// What an [`Outbox`] and its [`Syncer`](super::Syncer) share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) wake: Wake,
    pub(crate) shutdown: AtomicBool,
    pub(crate) ids: Mutex<ChangeIdGenerator>,
    pub(crate) view: Mutex<EngineView>,
}

impl Shared {
    pub(crate) fn new(id_seed: u64, batch_size: usize) -> Self {
        Shared {
            wake: Wake::default(),
            shutdown: AtomicBool::new(false),
            ids: Mutex::new(ChangeIdGenerator::from_seed(id_seed)),
            view: Mutex::new(EngineView {
                batch_size,
                ..EngineView::default()
            }),
        }
    }

    pub(crate) fn view(&self) -> std::sync::MutexGuard<'_, EngineView> {
        self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The application's side of headwater: capture changes, watch the sync status, handle
/// dead letters. Cheap to clone; every clone talks to the same store and wakes the same
/// [`Syncer`](super::Syncer).
#[derive(Debug)]
pub struct Outbox<S> {
    store: S,
    shared: Arc<Shared>,
}

impl<S: Clone> Clone for Outbox<S> {
    fn clone(&self) -> Self {
        Outbox {
            store: self.store.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: ChangeStore> Outbox<S> {
    pub(crate) fn new(store: S, shared: Arc<Shared>) -> Self {
        Outbox { store, shared }
    }

    /// The store behind this outbox.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Captures one change at `now`: gives it its idempotency id, appends it to the
    /// store and wakes the syncer.
    pub async fn capture(
        &self,
        now: DateTime<Utc>,
        data: ChangeData,
    ) -> Result<Change, CaptureError> {
        let mut changes = self.capture_all(now, vec![data]).await?;
        changes.pop().ok_or_else(|| {
            CaptureError::Store(StoreError::Backend("append returned nothing".into()))
        })
    }

    /// Captures several changes atomically (all or none), in order.
    pub async fn capture_all(
        &self,
        now: DateTime<Utc>,
        changes: Vec<ChangeData>,
    ) -> Result<Vec<Change>, CaptureError> {
        let captured = self.prepare(now, changes)?;
        let stored = self.store.append(captured).await?;
        self.shared.wake.notify();
        Ok(stored)
    }

    /// Gives changes their ids and capture time without storing them, for a store whose
    /// write API appends them in the application's own transaction (IndexedDB). Call
    /// [`wake`](Self::wake) after the transaction commits.
    pub fn prepare(
        &self,
        now: DateTime<Utc>,
        changes: Vec<ChangeData>,
    ) -> Result<Vec<Captured>, CaptureError> {
        let mut ids = self
            .shared
            .ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        changes
            .into_iter()
            .map(|data| {
                if data.collection.is_empty() {
                    return Err(CaptureError::Invalid(InvalidChange::EmptyCollection));
                }
                Ok(Captured {
                    id: ids.next_id(now),
                    captured_at: now,
                    data,
                })
            })
            .collect()
    }

    /// The sync status: counts from the store, the engine's state, totals.
    pub async fn status(&self, now: DateTime<Utc>) -> Result<SyncStatus, StoreError> {
        let stats = self.store.stats(now).await?;
        let view = self.shared.view();
        Ok(SyncStatus {
            pending: stats.pending,
            in_flight: stats.in_flight,
            dead_lettered: stats.dead_lettered,
            blocked: view.blocked.clone(),
            last_error: view.last_error.clone().or(stats.last_error),
            next_attempt_at: view.next_attempt_at.or(stats.next_attempt_at),
            batch_size: view.batch_size,
            counters: view.counters,
        })
    }

    /// Dead-lettered changes with their reasons, oldest first.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.store.dead_letters(limit).await
    }

    /// Puts dead-lettered changes back in line (after the cause is fixed) and wakes the
    /// syncer. Returns how many were requeued.
    pub async fn requeue(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
        let count = self.store.requeue(seqs).await?;
        self.shared.wake.notify();
        Ok(count)
    }

    /// The last acknowledged change of a record: it is synced once this reaches the seq
    /// of its latest capture.
    pub async fn sync_marker(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<SyncMarker>, StoreError> {
        self.store.sync_marker(collection, key).await
    }

    /// Wakes the syncer (after changes were appended elsewhere, or the network returned).
    pub fn wake(&self) {
        self.shared.wake.notify();
    }

    /// Asks the run loop to stop after the step it is in.
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.wake.notify();
    }
}
