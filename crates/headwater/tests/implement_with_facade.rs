//! A store and a transport implemented against `headwater` alone (no other headwater
//! crate named): everything their traits take and return is reachable from the facade.
#![cfg(not(target_arch = "wasm32"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use headwater::store::{
    Captured, Change, ChangeStore, Claim, ClaimRequest, DateTime, DeadLetter, Location,
    OutboxStats, Outcome, Recorded, Seq, StoreError, StoredEntry, SyncMarker, Utc,
};
use headwater::transport::{EncodedBatch, Response, SendOutcome, Transport};
use headwater::{ChangeData, Headwater, MemoryStore, Outbox};

/// A store that counts appends and hands everything else to the memory store.
struct CountingStore {
    inner: MemoryStore,
    appends: Arc<AtomicUsize>,
}

#[headwater::async_trait]
impl ChangeStore for CountingStore {
    async fn append(&self, changes: Vec<Captured>) -> Result<Vec<Change>, StoreError> {
        self.appends.fetch_add(1, Ordering::Relaxed);
        self.inner.append(changes).await
    }
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        self.inner.claim(request).await
    }
    async fn record(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        outcome: &Outcome,
    ) -> Result<Recorded, StoreError> {
        self.inner.record(owner, now, outcome).await
    }
    async fn release(&self, owner: &str) -> Result<(), StoreError> {
        self.inner.release(owner).await
    }
    async fn pending(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        self.inner.pending(after, limit).await
    }
    async fn dead_letters(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.dead_letters(after, limit).await
    }
    async fn requeue(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
        self.inner.requeue(seqs).await
    }
    async fn discard(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
        self.inner.discard(seqs).await
    }
    async fn stats(&self) -> Result<OutboxStats, StoreError> {
        self.inner.stats().await
    }
    async fn sync_marker(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<SyncMarker>, StoreError> {
        self.inner.sync_marker(collection, key).await
    }
    async fn locate(&self, seq: Seq) -> Result<Location, StoreError> {
        self.inner.locate(seq).await
    }
}

/// A transport that takes every batch, counting its events.
struct CountingTransport {
    events: Arc<AtomicUsize>,
}

#[headwater::async_trait]
impl Transport for CountingTransport {
    async fn send(&self, batch: EncodedBatch<'_>) -> SendOutcome {
        self.events.fetch_add(batch.events, Ordering::Relaxed);
        SendOutcome::Response(Response::status(200))
    }
}

#[tokio::test]
async fn a_store_and_a_transport_need_only_the_facade() {
    let appends = Arc::new(AtomicUsize::new(0));
    let events = Arc::new(AtomicUsize::new(0));
    let headwater = Headwater::builder()
        .store(CountingStore {
            inner: MemoryStore::new(),
            appends: Arc::clone(&appends),
        })
        .transport(CountingTransport {
            events: Arc::clone(&events),
        })
        .start()
        .unwrap();
    let receipt = headwater
        .capture(ChangeData::insert("todos", "1", &"milk").unwrap())
        .await
        .unwrap();
    receipt.delivered().await.unwrap();
    let outbox: &Outbox<headwater::DynStore> = headwater.outbox();
    assert_eq!(
        outbox.status(headwater.clock_now()).await.unwrap().pending,
        0
    );
    assert_eq!(appends.load(Ordering::Relaxed), 1);
    assert_eq!(events.load(Ordering::Relaxed), 1);
    headwater.shutdown().await;
}
