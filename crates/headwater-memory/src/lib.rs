//! # headwater-memory
//!
//! An in-memory [`ChangeStore`] for headwater: for tests, demos, and native
//! applications that accept losing the outbox with the process (anything that must
//! survive a crash belongs in `headwater-sqlite`). It keeps the same contract as the
//! durable stores (it passes the shared conformance suite), runs on native and wasm32,
//! and is safe to share between tasks: clones share one outbox.
//!
//! Applications get it from the `headwater` facade, whose builder uses it unless told
//! otherwise:
//!
//! ```
//! use headwater::{ChangeData, Headwater, MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let flume = headwater_mock_flume::MockFlume::start(Default::default()).await?;
//! # let url = flume.url();
//! let store = MemoryStore::new();
//! let headwater = Headwater::builder().flume([url]).store(store.clone()).start()?;
//! headwater.capture(ChangeData::delete("todos", "1")?).await?;
//! headwater.flush().await?;
//! assert!(store.snapshot().is_empty(), "delivered changes leave the outbox");
//! headwater.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rustc_hash::FxHashMap;

use chrono::{DateTime, Utc};
use headwater_core::model::{
    Captured, Change, DeadLetter, MAX_SEQ, OutboxEntry, Seq, SyncMarker, UnreadableEntry,
};
use headwater_core::store::{
    ChangeStore, Claim, ClaimRequest, Lease, Location, OldestPending, OutboxStats, Outcome,
    Recorded, StoreError, StoredEntry,
};

/// An outbox held in memory. Clones share the same outbox.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

/// A stored row: a change, or (for tests of quarantine) bytes that do not decode.
#[derive(Debug, Clone)]
enum Row {
    Entry(OutboxEntry),
    Damaged(String),
}

#[derive(Debug, Default)]
struct Inner {
    last_seq: u64,
    /// Pending changes, in seq order.
    outbox: BTreeMap<Seq, Row>,
    pending_bytes: u64,
    /// Dead letters, kept apart so they never slow down the head of line.
    dead: BTreeMap<Seq, DeadLetter>,
    /// Per-record sync markers, by collection then key (the names are shared with the
    /// changes, not copied).
    markers: FxHashMap<Arc<str>, FxHashMap<Arc<str>, SyncMarker>>,
    lease: Option<Lease>,
}

impl Inner {
    fn holds(&self, owner: &str) -> bool {
        self.lease
            .as_ref()
            .is_some_and(|lease| lease.is_held_by(owner))
    }

    fn read(&self, after: Option<Seq>, limit: usize) -> Vec<StoredEntry> {
        self.outbox
            .range((
                after.map_or(Bound::Unbounded, Bound::Excluded),
                Bound::Unbounded,
            ))
            .take(limit)
            .map(|(seq, row)| match row {
                Row::Entry(entry) => Ok(entry.clone()),
                Row::Damaged(raw) => Err(UnreadableEntry {
                    seq: *seq,
                    raw: raw.clone(),
                    error: "the row is not a stored change".into(),
                }),
            })
            .collect()
    }
}

impl MemoryStore {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty outbox whose first seq will be `last_seq + 1` (to test behaviour near
    /// the 2^53 limit).
    pub fn starting_after(last_seq: u64) -> Self {
        let store = Self::default();
        store.lock().last_seq = last_seq;
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation below completes before it could panic, so a poisoned lock still
        // guards consistent data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every change still in the outbox, in seq order (damaged rows left out).
    pub fn snapshot(&self) -> Vec<OutboxEntry> {
        self.lock()
            .outbox
            .values()
            .filter_map(|row| match row {
                Row::Entry(entry) => Some(entry.clone()),
                Row::Damaged(_) => None,
            })
            .collect()
    }

    /// Appends a row that does not decode, as a damaged disk or a newer version might
    /// leave: for tests of quarantine. Returns its seq.
    #[doc(hidden)]
    pub fn append_damaged(&self, raw: &str) -> Result<Seq, StoreError> {
        let mut inner = self.lock();
        let seq = Seq::new(inner.last_seq + 1).ok_or(StoreError::SeqExhausted)?;
        inner.last_seq = seq.get();
        inner.outbox.insert(seq, Row::Damaged(raw.to_owned()));
        Ok(seq)
    }
}

#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
impl ChangeStore for MemoryStore {
    async fn append(&self, changes: Vec<Captured>) -> Result<Vec<Change>, StoreError> {
        let mut inner = self.lock();
        let count = changes.len() as u64;
        if inner.last_seq.saturating_add(count) > MAX_SEQ {
            return Err(StoreError::SeqExhausted);
        }
        let mut stored = Vec::with_capacity(changes.len());
        for captured in changes {
            let seq = Seq::new(inner.last_seq + 1).ok_or(StoreError::SeqExhausted)?;
            inner.last_seq = seq.get();
            let change = Change::new(seq, captured);
            inner.pending_bytes += change.data().weight() as u64;
            stored.push(change.clone());
            inner
                .outbox
                .insert(change.seq(), Row::Entry(OutboxEntry::new(change)));
        }
        Ok(stored)
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        let mut inner = self.lock();
        match request.grant(inner.lease.as_ref()) {
            Err(held) => Ok(Claim::Held(held)),
            Ok(lease) => {
                inner.lease = Some(lease);
                Ok(Claim::Granted(inner.read(request.after, request.limit)))
            }
        }
    }

    async fn record(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        outcome: &Outcome,
    ) -> Result<Recorded, StoreError> {
        let mut inner = self.lock();
        for seq in outcome.acked() {
            if let Some(Row::Entry(entry)) = inner.outbox.remove(seq) {
                inner.pending_bytes = inner
                    .pending_bytes
                    .saturating_sub(entry.change.data().weight() as u64);
            }
        }
        for update in outcome.marked() {
            let keys = inner
                .markers
                .entry(Arc::clone(&update.collection))
                .or_default();
            if let Some(marker) = SyncMarker::advance(keys.get(&update.key), update.seq, now) {
                keys.insert(Arc::clone(&update.key), marker);
            }
        }
        if !inner.holds(owner) {
            return Ok(Recorded::LeaseLost);
        }
        for (seq, delivery) in outcome.retries() {
            if let Some(Row::Entry(entry)) = inner.outbox.get_mut(seq) {
                entry.delivery = delivery.clone();
            }
        }
        for letter in outcome.dead() {
            if let Some(row) = inner.outbox.remove(&letter.seq) {
                if let Row::Entry(entry) = row {
                    inner.pending_bytes = inner
                        .pending_bytes
                        .saturating_sub(entry.change.data().weight() as u64);
                }
                inner.dead.insert(letter.seq, letter.clone());
            }
        }
        Ok(Recorded::Applied)
    }

    async fn release(&self, owner: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.holds(owner) {
            inner.lease = None;
        }
        Ok(())
    }

    async fn pending(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        Ok(self.lock().read(after, limit))
    }

    async fn dead_letters(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self
            .lock()
            .dead
            .range((
                after.map_or(Bound::Unbounded, Bound::Excluded),
                Bound::Unbounded,
            ))
            .take(limit)
            .map(|(_, letter)| letter.clone())
            .collect())
    }

    async fn requeue(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let mut requeued = 0;
        for seq in seqs {
            let Some(entry) = inner.dead.get(seq).and_then(DeadLetter::requeue) else {
                continue;
            };
            inner.dead.remove(seq);
            inner.pending_bytes += entry.change.data().weight() as u64;
            inner.outbox.insert(*seq, Row::Entry(entry));
            requeued += 1;
        }
        Ok(requeued)
    }

    async fn discard(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        Ok(seqs
            .iter()
            .filter(|seq| inner.dead.remove(seq).is_some())
            .count())
    }

    async fn stats(&self) -> Result<OutboxStats, StoreError> {
        let inner = self.lock();
        let oldest = inner.outbox.iter().next().and_then(|(seq, row)| match row {
            Row::Entry(entry) => Some(OldestPending {
                seq: *seq,
                captured_at: entry.change.captured_at(),
                delivery: entry.delivery.clone(),
            }),
            Row::Damaged(_) => None,
        });
        Ok(OutboxStats {
            pending: inner.outbox.len(),
            pending_bytes: inner.pending_bytes,
            dead_lettered: inner.dead.len(),
            oldest,
            newest_seq: inner.outbox.keys().next_back().copied(),
            lease: inner.lease.clone(),
        })
    }

    async fn sync_marker(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<SyncMarker>, StoreError> {
        Ok(self
            .lock()
            .markers
            .get(collection)
            .and_then(|keys| keys.get(key))
            .copied())
    }

    async fn locate(&self, seq: Seq) -> Result<Location, StoreError> {
        let inner = self.lock();
        Ok(if inner.outbox.contains_key(&seq) {
            Location::Pending
        } else if let Some(letter) = inner.dead.get(&seq) {
            Location::DeadLettered(letter.clone())
        } else {
            Location::Gone
        })
    }
}
