//! The [`ChangeStore`] trait: where captured changes wait, durably, until Flume has them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Captured, Change, Delivery, DeliveryState, OutboxEntry, Seq, SyncMarker};

/// A store operation failed. No change is lost by a failed operation: each method is
/// atomic, so either it happened or nothing did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The storage is out of space (IndexedDB's `QuotaExceededError`).
    #[error("storage quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The store was closed, or another connection needs it closed (a schema upgrade in
    /// another tab).
    #[error("store closed: {0}")]
    Closed(String),
    /// The store ran out of sequence numbers below 2^53.
    #[error("sequence numbers exhausted")]
    SeqExhausted,
    /// A value the backend cannot hold.
    #[error("cannot store this change: {0}")]
    Unstorable(String),
    /// Any other backend failure.
    #[error("store backend error: {0}")]
    Backend(String),
}

/// Counts for a status badge and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxStats {
    /// Changes waiting to be sent (including those whose lease ran out).
    pub pending: usize,
    /// Changes claimed under a live lease.
    pub in_flight: usize,
    /// Changes set aside for an operator.
    pub dead_lettered: usize,
    /// The head change's scheduled retry, if it is waiting for one.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The head change's last error.
    pub last_error: Option<String>,
}

impl OutboxStats {
    /// Counts an outbox from its entries' delivery states, in seq order (the first is
    /// the head of line), plus the number of dead letters kept apart.
    pub fn tally<'a>(
        outbox: impl IntoIterator<Item = &'a Delivery>,
        dead_lettered: usize,
        now: DateTime<Utc>,
    ) -> Self {
        let mut stats = OutboxStats {
            dead_lettered,
            ..OutboxStats::default()
        };
        for (index, delivery) in outbox.into_iter().enumerate() {
            match delivery.state {
                DeliveryState::InFlight { lease_until, .. } if lease_until > now => {
                    stats.in_flight += 1;
                }
                _ => stats.pending += 1,
            }
            if index == 0 {
                stats.next_attempt_at = delivery.next_attempt_at.filter(|at| *at > now);
                stats.last_error = delivery.last_error.clone();
            }
        }
        stats
    }
}

/// Durable storage of an outbox.
///
/// The contract every backend keeps (checked by [`testing::conformance`](crate::testing), behind the `testing`
/// feature):
///
/// - every method is atomic;
/// - `append` assigns strictly increasing sequence numbers, never above [`crate::model::MAX_SEQ`];
/// - `claim` serves the *head of line*: the changes after the dead-lettered ones in seq
///   order, stopping at the first one that is in flight under a live lease or not yet
///   due. That keeps delivery in capture order and one batch in flight per outbox;
/// - `ack` removes changes whoever holds them (a delivered change is delivered) and
///   updates each record's [`SyncMarker`]; the other transitions only apply to changes
///   the caller still holds under `owner`, so a syncer whose lease ran out cannot disturb
///   the one that took over.
///
/// On wasm32 the trait does not require `Send`, so IndexedDB can implement it.
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
pub trait ChangeStore: crate::MaybeSendSync {
    /// Appends captured changes in order, assigning their sequence numbers.
    async fn append(&self, changes: Vec<Captured>) -> Result<Vec<Change>, StoreError>;

    /// Claims up to `limit` changes from the head of line for `owner`, until `lease_until`.
    ///
    /// Whether a change is free and due is [`Delivery::is_claimable`](crate::model::Delivery::is_claimable)`(now, horizon)`:
    /// leases and retry times after `horizon` predate a backward clock jump and count as
    /// passed.
    async fn claim(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        horizon: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Removes delivered changes and records each record's sync marker.
    async fn ack(&self, seqs: &[Seq], now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Returns claimed changes to pending without counting an attempt (they were not
    /// sent, or they were split off a batch).
    async fn release(&self, owner: &str, seqs: &[Seq]) -> Result<(), StoreError>;

    /// Returns claimed changes to pending after a failed attempt: one more attempt, not
    /// before `next_attempt_at`, with `error` as the last error.
    async fn schedule_retry(
        &self,
        owner: &str,
        seqs: &[Seq],
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Sets claimed changes aside with `reason`.
    async fn dead_letter(
        &self,
        owner: &str,
        seqs: &[Seq],
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Makes changes whose lease ran out pending again; returns how many.
    async fn release_expired(&self, now: DateTime<Utc>) -> Result<usize, StoreError>;

    /// Dead-lettered changes in seq order, at most `limit`.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Makes dead-lettered changes pending again with their attempts reset; returns how
    /// many were requeued. They keep their seq, so they go to the head of the line.
    async fn requeue(&self, seqs: &[Seq]) -> Result<usize, StoreError>;

    /// Counts and the head's retry state.
    async fn stats(&self, now: DateTime<Utc>) -> Result<OutboxStats, StoreError>;

    /// The last acknowledged change of one record, if any was acknowledged.
    async fn sync_marker(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<SyncMarker>, StoreError>;
}
