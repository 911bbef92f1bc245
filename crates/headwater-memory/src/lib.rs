//! # headwater-memory
//!
//! An in-memory [`ChangeStore`] for headwater: for native applications that accept
//! losing the outbox with the process, for tests, and for the demo. It keeps the same
//! contract as the durable stores (it passes the shared conformance suite), runs on
//! native and wasm32, and is safe to share between tasks: clones share one outbox.
//!
//! ```
//! use headwater_core::engine::{SyncConfig, Syncer};
//! use headwater_core::flume::EncodedBatch;
//! use headwater_core::model::ChangeData;
//! use headwater_core::transport::{Response, SendOutcome, Transport};
//! use headwater_memory::MemoryStore;
//!
//! struct AcceptAll;
//! #[async_trait::async_trait]
//! impl Transport for AcceptAll {
//!     async fn send(&self, _batch: EncodedBatch<'_>) -> SendOutcome {
//!         SendOutcome::Response(Response::status(200))
//!     }
//! }
//!
//! futures::executor::block_on(async {
//!     let now = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
//!     let mut syncer = Syncer::new(MemoryStore::new(), AcceptAll, SyncConfig::new("doc", 1)).unwrap();
//!     let outbox = syncer.outbox();
//!     outbox.capture(now, ChangeData::delete("todos", "1").unwrap()).await.unwrap();
//!     assert_eq!(syncer.sync_once(now).await.unwrap().delivered, 1);
//!     assert!(outbox.status(now).await.unwrap().is_synced());
//! });
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use headwater_core::model::{
    Captured, Change, Delivery, DeliveryState, MAX_SEQ, OutboxEntry, Seq, SyncMarker,
};
use headwater_core::store::{ChangeStore, OutboxStats, StoreError};

/// An outbox held in memory. Clones share the same outbox.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    last_seq: u64,
    /// Pending and in-flight changes, in seq order.
    outbox: BTreeMap<Seq, OutboxEntry>,
    /// Dead-lettered changes, kept apart so they never slow down the head of line.
    dead: BTreeMap<Seq, OutboxEntry>,
    /// Per-record sync markers (ordered: no hashing of two strings per ack).
    markers: BTreeMap<(String, String), SyncMarker>,
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

    /// Every change still in the outbox (pending or in flight), in seq order.
    pub fn snapshot(&self) -> Vec<OutboxEntry> {
        self.lock().outbox.values().cloned().collect()
    }
}

fn holds(entry: &OutboxEntry, owner: &str) -> bool {
    matches!(&entry.delivery.state, DeliveryState::InFlight { owner: holder, .. } if holder == owner)
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
            inner.last_seq += 1;
            let change = Change::new(Seq(inner.last_seq), captured);
            stored.push(change.clone());
            inner.outbox.insert(
                change.seq,
                OutboxEntry {
                    change,
                    delivery: Delivery::new(),
                },
            );
        }
        Ok(stored)
    }

    async fn claim(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        horizon: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut inner = self.lock();
        let mut claimed = Vec::new();
        for entry in inner.outbox.values_mut() {
            if claimed.len() == limit || !entry.delivery.is_claimable(now, horizon) {
                break;
            }
            entry.delivery.state = DeliveryState::InFlight {
                owner: owner.to_owned(),
                lease_until,
            };
            claimed.push(entry.clone());
        }
        Ok(claimed)
    }

    async fn ack(&self, seqs: &[Seq], now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for seq in seqs {
            if let Some(entry) = inner.outbox.remove(seq) {
                let data = entry.change.data;
                let marker =
                    inner
                        .markers
                        .entry((data.collection, data.key))
                        .or_insert(SyncMarker {
                            last_acked_seq: *seq,
                            acked_at: now,
                        });
                if marker.last_acked_seq <= *seq {
                    *marker = SyncMarker {
                        last_acked_seq: *seq,
                        acked_at: now,
                    };
                }
            }
        }
        Ok(())
    }

    async fn release(&self, owner: &str, seqs: &[Seq]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for seq in seqs {
            if let Some(entry) = inner
                .outbox
                .get_mut(seq)
                .filter(|entry| holds(entry, owner))
            {
                entry.delivery.state = DeliveryState::Pending;
            }
        }
        Ok(())
    }

    async fn schedule_retry(
        &self,
        owner: &str,
        seqs: &[Seq],
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for seq in seqs {
            if let Some(entry) = inner
                .outbox
                .get_mut(seq)
                .filter(|entry| holds(entry, owner))
            {
                let delivery = &mut entry.delivery;
                delivery.state = DeliveryState::Pending;
                delivery.attempts = delivery.attempts.saturating_add(1);
                delivery.next_attempt_at = Some(next_attempt_at);
                delivery.last_error = Some(error.to_owned());
            }
        }
        Ok(())
    }

    async fn dead_letter(
        &self,
        owner: &str,
        seqs: &[Seq],
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for seq in seqs {
            if inner
                .outbox
                .get(seq)
                .is_some_and(|entry| holds(entry, owner))
            {
                if let Some(mut entry) = inner.outbox.remove(seq) {
                    entry.delivery.state = DeliveryState::DeadLettered {
                        reason: reason.to_owned(),
                        at: now,
                    };
                    entry.delivery.last_error = Some(reason.to_owned());
                    inner.dead.insert(*seq, entry);
                }
            }
        }
        Ok(())
    }

    async fn release_expired(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let mut released = 0;
        for entry in inner.outbox.values_mut() {
            if let DeliveryState::InFlight { lease_until, .. } = entry.delivery.state {
                if lease_until <= now {
                    entry.delivery.state = DeliveryState::Pending;
                    released += 1;
                }
            }
        }
        Ok(released)
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(self.lock().dead.values().take(limit).cloned().collect())
    }

    async fn requeue(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let mut requeued = 0;
        for seq in seqs {
            if let Some(mut entry) = inner.dead.remove(seq) {
                entry.delivery = Delivery::new();
                inner.outbox.insert(*seq, entry);
                requeued += 1;
            }
        }
        Ok(requeued)
    }

    async fn stats(&self, now: DateTime<Utc>) -> Result<OutboxStats, StoreError> {
        let inner = self.lock();
        let deliveries = inner.outbox.values().map(|entry| &entry.delivery);
        Ok(OutboxStats::tally(deliveries, inner.dead.len(), now))
    }

    async fn sync_marker(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<SyncMarker>, StoreError> {
        Ok(self
            .lock()
            .markers
            .get(&(collection.to_owned(), key.to_owned()))
            .copied())
    }
}
