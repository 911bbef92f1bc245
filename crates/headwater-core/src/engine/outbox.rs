use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use chrono::{DateTime, Utc};

use crate::model::{Captured, Change, ChangeData, DeadLetter, InvalidChange, Seq, SyncMarker};
use crate::store::{ChangeStore, StoreError, StoredEntry};

use super::shared::Shared;
use super::status::{SyncCounters, SyncStatus};

/// A capture that did not happen. Nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The change itself is invalid.
    #[error(transparent)]
    Invalid(#[from] InvalidChange),
    /// The store refused the write.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The capture would be written where delivery does not read (an application's
    /// SQLite transaction on one database while delivery reads another store): refused,
    /// since its changes would wait there unsent. The message names the fix.
    #[error("{0}")]
    NotWhereDeliveryReads(String),
}

/// The application's side of the core: capture changes, watch the sync status, handle
/// dead letters. Every call that needs the time takes `now` (the `headwater` facade
/// reads the clock for you). Cheap to clone; every clone talks to the same store and
/// wakes the same [`Syncer`](super::Syncer).
#[derive(Debug)]
pub struct Outbox<S> {
    store: S,
    shared: Arc<Shared>,
}

impl<S: Clone> Clone for Outbox<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: ChangeStore> Outbox<S> {
    pub(crate) fn new(store: S, shared: Arc<Shared>) -> Self {
        Self { store, shared }
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
        changes
            .pop()
            .ok_or_else(|| CaptureError::Store(StoreError::backend("append returned nothing")))
    }

    /// Captures several changes atomically (all or none), in order.
    pub async fn capture_all(
        &self,
        now: DateTime<Utc>,
        changes: Vec<ChangeData>,
    ) -> Result<Vec<Change>, CaptureError> {
        if self.shared.limits.is_set() {
            self.check_room(&changes).await?;
        }
        let captured = self.prepare(now, changes);
        let stored = self.store.append(captured).await?;
        self.appended(&stored);
        Ok(stored)
    }

    /// Refuses a capture that would pass a hard limit, and warns once when the soft
    /// threshold is crossed. An application capturing in its own transaction calls it
    /// before writing.
    pub async fn check_room(&self, changes: &[ChangeData]) -> Result<(), StoreError> {
        let limits = self.shared.limits;
        let stats = self.store.stats().await?;
        let adding = changes.len();
        let adding_bytes: u64 = changes.iter().map(|change| change.weight() as u64).sum();
        if let Some(max) = limits.max_pending
            && stats.pending + adding > max
        {
            return Err(StoreError::OutboxFull {
                reason: format!(
                    "{} changes pending, {adding} more would pass outbox_limits.max_pending = {max}",
                    stats.pending
                ),
            });
        }
        if let Some(max) = limits.max_pending_bytes
            && stats.pending_bytes + adding_bytes > max
        {
            return Err(StoreError::OutboxFull {
                reason: format!(
                    "{} bytes pending, {adding_bytes} more would pass outbox_limits.max_pending_bytes = {max}",
                    stats.pending_bytes
                ),
            });
        }
        if let Some(warn) = limits.warn_pending {
            let over = stats.pending + adding > warn;
            if over && !self.shared.over_warn.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    pending = stats.pending + adding,
                    threshold = warn,
                    "the outbox is past its warning threshold: is Flume keeping up?"
                );
            } else if !over {
                self.shared.over_warn.store(false, Ordering::Release);
            }
        }
        Ok(())
    }

    /// Gives changes their ids and capture time without storing them, for a store whose
    /// write API appends them in the application's own transaction (IndexedDB, SQLite).
    /// Call [`appended`](Self::appended) after that transaction commits.
    pub fn prepare(&self, now: DateTime<Utc>, changes: Vec<ChangeData>) -> Vec<Captured> {
        let mut ids = self
            .shared
            .ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        changes
            .into_iter()
            .map(|data| Captured {
                id: ids.next_id(now),
                captured_at: now,
                data,
            })
            .collect()
    }

    /// Tells the syncer that these changes were appended (and committed).
    pub fn appended(&self, changes: &[Change]) {
        if let Some(last) = changes.iter().map(Change::seq).max() {
            self.shared.captured(last);
        }
    }

    /// The highest seq captured through this outbox (0 if none yet).
    pub fn last_captured(&self) -> Seq {
        Seq(self.shared.last_captured.load(Ordering::Acquire))
    }

    /// The sync status: the store's counts with the syncer's state.
    pub async fn status(&self, now: DateTime<Utc>) -> Result<SyncStatus, StoreError> {
        let stats = self.store.stats().await?;
        let view = self.shared.view().clone();
        Ok(view.with_stats(&stats, now))
    }

    /// Why the outbox is blocked, as the syncer last published it (`None`: it is not).
    /// Reads nothing from the store, like [`counters`](Self::counters).
    pub fn blocked(&self) -> Option<String> {
        self.shared.view().blocked.clone()
    }

    /// The syncer's running totals as it last published them. Unlike
    /// [`status`](Self::status) it reads nothing from the store, so it is cheap enough
    /// to call on every [`progress`](Self::progress) (a progress bar, a test waiting for
    /// a count).
    pub fn counters(&self) -> SyncCounters {
        self.shared.view().counters
    }

    /// Up to `limit` dead letters after `after`, oldest first.
    pub async fn dead_letters(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.store.dead_letters(after, limit).await
    }

    /// Up to `limit` pending changes after `after`, oldest first.
    pub async fn pending(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        self.store.pending(after, limit).await
    }

    /// Puts dead-lettered changes back in line (after the cause is fixed) and wakes the
    /// syncer. Returns how many were requeued.
    pub async fn requeue(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
        let count = self.store.requeue(seqs).await?;
        self.shared.signal(&self.shared.signals.requeued);
        Ok(count)
    }

    /// Deletes dead letters for good. Returns how many were deleted.
    pub async fn discard(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
        let count = self.store.discard(seqs).await?;
        self.shared.notify_progress();
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
        self.shared.signal(&self.shared.signals.captured);
    }

    /// Skips the current backoff or blocked wait: the syncer tries at once.
    pub fn flush_now(&self) {
        self.shared.signal(&self.shared.signals.flush_now);
    }

    /// Stops sending (captures go on); requests in flight finish.
    pub fn pause(&self) {
        self.shared.signals.paused.store(true, Ordering::Release);
        self.shared.wake.notify();
    }

    /// Sends again after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.shared.signals.paused.store(false, Ordering::Release);
        self.shared.wake.notify();
    }

    /// Whether sending is paused.
    pub fn is_paused(&self) -> bool {
        self.shared.signals.paused.load(Ordering::Acquire)
    }

    /// Asks the syncer to stop: it finishes the requests in flight, records them, gives
    /// up its lease and returns from [`run`](super::Syncer::run).
    pub fn shutdown(&self) {
        self.shared.signal(&self.shared.signals.shutdown);
    }

    /// Whether the syncer has stopped.
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::Acquire)
    }

    /// A future that resolves at the syncer's next progress (an outcome written, a state
    /// change). Create it before checking a condition, then await it, so no progress is
    /// missed in between.
    pub fn progress(&self) -> event_listener::EventListener {
        self.shared.listen()
    }
}
