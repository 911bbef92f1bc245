//! The [`ChangeStore`] trait: where captured changes wait, durably, until Flume has them.
//!
//! A backend only persists and queries. What a lease, a due retry, a dead letter, a
//! requeue or a sync marker *means* is decided here, once, by the functions the
//! backends call inside their transactions: [`ClaimRequest::grant`],
//! [`SyncMarker::advance`](crate::model::SyncMarker::advance),
//! [`DeadLetter::requeue`](crate::model::DeadLetter::requeue), and the [`Outcome`]s
//! the engine hands over ready to write.

mod outcome;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{
    Captured, Change, DeadLetter, Delivery, OutboxEntry, Seq, SyncMarker, UnreadableEntry,
};

pub use outcome::{MarkerUpdate, Outcome};

/// The error type a backend wraps in [`StoreError`]: its own error, kept as the source.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A store operation failed. No change is lost by a failed operation: each method is
/// atomic, so either it happened or nothing did.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The storage is out of space (IndexedDB's `QuotaExceededError`, SQLite's
    /// `SQLITE_FULL`).
    #[error("storage quota exceeded")]
    QuotaExceeded(#[source] BackendError),
    /// The store was closed, or another connection needs it closed (a schema upgrade in
    /// another tab).
    #[error("store closed: {reason}")]
    Closed {
        /// What closed it.
        reason: String,
    },
    /// The store ran out of sequence numbers below 2^53.
    #[error("sequence numbers exhausted")]
    SeqExhausted,
    /// A value the backend cannot hold.
    #[error("cannot store this change")]
    Unstorable(#[source] BackendError),
    /// The outbox is full: it holds as many changes or bytes as it is allowed to.
    #[error("the outbox is full ({reason}); nothing was captured")]
    OutboxFull {
        /// Which limit was reached.
        reason: String,
    },
    /// The store cannot go on: its data is damaged (SQLite's `SQLITE_CORRUPT` or
    /// `SQLITE_NOTADB`), or it cannot be written (read-only). Retrying cannot help, so
    /// delivery stops ([`RunError::StoreUnusable`](crate::engine::RunError)) with every
    /// change left where it was.
    #[error("the store cannot be used")]
    Unusable(#[source] BackendError),
    /// Any other backend failure.
    #[error("store backend error")]
    Backend(#[source] BackendError),
}

impl StoreError {
    /// A backend failure described by `message` alone.
    pub fn backend(message: impl Into<String>) -> Self {
        Self::Backend(message.into().into())
    }

    /// The error with its whole chain of sources, for logs and status lines.
    pub fn describe(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

/// The outbox's sending lease: one syncer at a time sends from an outbox. It renews the
/// lease with every claim; if it dies, the lease lapses and another syncer takes over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The syncer holding it.
    pub owner: String,
    /// When it lapses unless renewed.
    pub until: DateTime<Utc>,
}

/// What a syncer asks of [`ChangeStore::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    /// The syncer asking.
    pub owner: String,
    /// The time of asking.
    pub now: DateTime<Utc>,
    /// Until when the lease is to hold. A syncer renewing a lease that has time left
    /// asks for the same `until` it holds, so a store that finds the granted lease equal
    /// to the stored one need not write it.
    pub lease_until: DateTime<Utc>,
    /// The latest time any syncer could have set a lease or a retry from `now`: later
    /// ones predate a backward clock jump and count as passed.
    pub horizon: DateTime<Utc>,
    /// Read changes after this seq (`None`: from the head of the outbox).
    pub after: Option<Seq>,
    /// Read at most this many changes (zero only renews the lease).
    pub limit: usize,
}

impl Lease {
    /// Whether `owner` holds this lease. The rule every store applies before it writes
    /// an outcome or gives the lease up: only the holder may, and a lease that has
    /// lapsed is still its holder's until another syncer is granted it (see
    /// [`ClaimRequest::grant`]), so a slow syncer's outcomes are not lost to a lapse
    /// nobody acted on.
    pub fn is_held_by(&self, owner: &str) -> bool {
        self.owner == owner
    }
}

impl ClaimRequest {
    /// The lease rule, which every backend applies to the lease it holds: the lease is
    /// granted (or renewed) if nobody holds it, if the asker already does, or if the
    /// holder's lease has lapsed; otherwise the current lease stands.
    pub fn grant(&self, current: Option<&Lease>) -> Result<Lease, Lease> {
        match current {
            Some(lease)
                if !lease.is_held_by(&self.owner)
                    && lease.until > self.now
                    && lease.until <= self.horizon =>
            {
                Err(lease.clone())
            }
            _ => Ok(Lease {
                owner: self.owner.clone(),
                until: self.lease_until,
            }),
        }
    }
}

/// A stored outbox row as [`ChangeStore::claim`] reads it: a change, or a row that does
/// not decode (which the engine quarantines).
pub type StoredEntry = Result<OutboxEntry, UnreadableEntry>;

/// What [`ChangeStore::claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// The lease is the asker's; these are the changes after `after`, in seq order.
    Granted(Vec<StoredEntry>),
    /// Another syncer holds the lease.
    Held(Lease),
}

/// Whether [`ChangeStore::record`] could apply everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recorded {
    /// Every part of the outcome was written.
    Applied,
    /// The asker no longer holds the lease: acknowledgements were applied (a delivered
    /// change is delivered, whoever sent it), retries and dead letters were not.
    LeaseLost,
}

/// Where a change is, by seq.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// Still in the outbox, waiting or being sent.
    Pending,
    /// Set aside for an operator.
    DeadLettered(DeadLetter),
    /// Not in the store: delivered (or discarded from the dead letters, or never
    /// captured).
    Gone,
}

/// Counts and landmarks of an outbox, for a status badge and for flush.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxStats {
    /// Changes waiting in the outbox (including those being sent).
    pub pending: usize,
    /// Their total [`weight`](crate::model::ChangeData::weight) in bytes.
    pub pending_bytes: u64,
    /// Changes set aside for an operator.
    pub dead_lettered: usize,
    /// The oldest pending change's seq, capture time and retry state.
    pub oldest: Option<OldestPending>,
    /// The newest pending change's seq.
    pub newest_seq: Option<Seq>,
    /// The sending lease, if any syncer holds or held one.
    pub lease: Option<Lease>,
}

/// The head of an outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldestPending {
    /// Its seq.
    pub seq: Seq,
    /// When it was captured.
    pub captured_at: DateTime<Utc>,
    /// Its retry state.
    pub delivery: Delivery,
}

/// Durable storage of an outbox.
///
/// The contract every backend keeps (checked by `testing::conformance`, behind the
/// `testing` feature):
///
/// - every method is atomic: one transaction;
/// - `append` assigns strictly increasing sequence numbers, never above
///   [`crate::model::MAX_SEQ`], and never reuses one;
/// - `claim` applies [`ClaimRequest::grant`] to the stored lease and, if granted, stores
///   the new lease and reads changes in seq order; rows that do not decode come back as
///   [`UnreadableEntry`] instead of failing the claim;
/// - `record` applies an [`Outcome`]: acknowledgements always (removing the changes and
///   advancing each record's [`SyncMarker`] with [`SyncMarker::advance`]), retries and
///   dead letters only while `owner` holds the lease;
/// - dead letters keep their seq; `requeue` puts them back with
///   [`DeadLetter::requeue`].
///
/// On wasm32 the trait does not require `Send`, so IndexedDB can implement it.
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
pub trait ChangeStore: crate::MaybeSendSync {
    /// Appends captured changes in order, assigning their sequence numbers.
    async fn append(&self, changes: Vec<Captured>) -> Result<Vec<Change>, StoreError>;

    /// Takes or renews the sending lease and reads up to `limit` changes after `after`.
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError>;

    /// Writes what happened to changes the engine sent.
    async fn record(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        outcome: &Outcome,
    ) -> Result<Recorded, StoreError>;

    /// Writes `outcome` as [`record`](Self::record) does, then claims as
    /// [`claim`](Self::claim) does: the machine's
    /// [`Command::RecordThenClaim`](crate::engine::Command::RecordThenClaim), which a
    /// backend may carry out in one transaction (IndexedDB does: one commit, not two).
    /// The outer error means nothing was written; the inner one, that the outcome was
    /// written and the claim then failed. The default does one after the other.
    async fn record_then_claim(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        outcome: &Outcome,
        request: &ClaimRequest,
    ) -> Result<(Recorded, Result<Claim, StoreError>), StoreError> {
        let recorded = self.record(owner, now, outcome).await?;
        Ok((recorded, self.claim(request).await))
    }

    /// Gives the lease up, if `owner` holds it, so that another syncer can start at once.
    async fn release(&self, owner: &str) -> Result<(), StoreError>;

    /// Up to `limit` pending changes after `after`, in seq order, without a lease (for
    /// an operator's listing).
    async fn pending(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError>;

    /// Up to `limit` dead letters after `after`, in seq order.
    async fn dead_letters(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError>;

    /// Puts dead letters back in line; returns how many were requeued. Unreadable rows
    /// stay where they are.
    async fn requeue(&self, seqs: &[Seq]) -> Result<usize, StoreError>;

    /// Deletes dead letters for good; returns how many were deleted.
    async fn discard(&self, seqs: &[Seq]) -> Result<usize, StoreError>;

    /// Counts and landmarks.
    async fn stats(&self) -> Result<OutboxStats, StoreError>;

    /// The last acknowledged change of one record, if any was acknowledged.
    async fn sync_marker(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<SyncMarker>, StoreError>;

    /// Where the change with `seq` is.
    async fn locate(&self, seq: Seq) -> Result<Location, StoreError>;
}

macro_rules! forward_store {
    ($($wrapper:ty),*) => {$(
        #[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
        #[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
        impl<S: ChangeStore + ?Sized> ChangeStore for $wrapper {
            async fn append(&self, changes: Vec<Captured>) -> Result<Vec<Change>, StoreError> {
                (**self).append(changes).await
            }
            async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
                (**self).claim(request).await
            }
            async fn record(
                &self,
                owner: &str,
                now: DateTime<Utc>,
                outcome: &Outcome,
            ) -> Result<Recorded, StoreError> {
                (**self).record(owner, now, outcome).await
            }
            async fn record_then_claim(
                &self,
                owner: &str,
                now: DateTime<Utc>,
                outcome: &Outcome,
                request: &ClaimRequest,
            ) -> Result<(Recorded, Result<Claim, StoreError>), StoreError> {
                (**self).record_then_claim(owner, now, outcome, request).await
            }
            async fn release(&self, owner: &str) -> Result<(), StoreError> {
                (**self).release(owner).await
            }
            async fn pending(
                &self,
                after: Option<Seq>,
                limit: usize,
            ) -> Result<Vec<StoredEntry>, StoreError> {
                (**self).pending(after, limit).await
            }
            async fn dead_letters(
                &self,
                after: Option<Seq>,
                limit: usize,
            ) -> Result<Vec<DeadLetter>, StoreError> {
                (**self).dead_letters(after, limit).await
            }
            async fn requeue(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
                (**self).requeue(seqs).await
            }
            async fn discard(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
                (**self).discard(seqs).await
            }
            async fn stats(&self) -> Result<OutboxStats, StoreError> {
                (**self).stats().await
            }
            async fn sync_marker(
                &self,
                collection: &str,
                key: &str,
            ) -> Result<Option<SyncMarker>, StoreError> {
                (**self).sync_marker(collection, key).await
            }
            async fn locate(&self, seq: Seq) -> Result<Location, StoreError> {
                (**self).locate(seq).await
            }
        }
    )*};
}

forward_store!(std::sync::Arc<S>, Box<S>);
#[cfg(target_arch = "wasm32")]
forward_store!(std::rc::Rc<S>);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn request(owner: &str, now: i64) -> ClaimRequest {
        ClaimRequest {
            owner: owner.into(),
            now: at(now),
            lease_until: at(now + 60),
            horizon: at(now + 3600),
            after: None,
            limit: 10,
        }
    }

    #[test]
    fn a_lease_is_granted_renewed_refused_and_taken_over() {
        let first = request("a", 0).grant(None).unwrap();
        assert_eq!(first.until, at(60));
        let renewed = request("a", 30).grant(Some(&first)).unwrap();
        assert_eq!(renewed.until, at(90));
        assert_eq!(request("b", 30).grant(Some(&renewed)), Err(renewed.clone()));
        let taken = request("b", 90).grant(Some(&renewed)).unwrap();
        assert_eq!(taken.owner, "b");
    }

    #[test]
    fn a_lease_beyond_the_horizon_predates_a_clock_jump() {
        let lease = Lease {
            owner: "a".into(),
            until: at(0) + TimeDelta::days(3),
        };
        assert!(request("b", 0).grant(Some(&lease)).is_ok());
    }

    #[test]
    fn errors_keep_their_source() {
        let error = StoreError::Backend("disk I/O error".into());
        assert_eq!(error.describe(), "store backend error: disk I/O error");
    }
}
