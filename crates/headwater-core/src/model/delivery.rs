use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Change, Seq};

/// Where a change stands in delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting to be sent (at `next_attempt_at`, if set).
    Pending,
    /// Claimed by a syncer that is sending it. If the lease runs out (a crashed process,
    /// a closed tab), the change counts as pending again.
    InFlight {
        /// The syncer that claimed it.
        owner: String,
        /// When the claim lapses.
        lease_until: DateTime<Utc>,
    },
    /// Set aside: it will not be sent again until an operator requeues it.
    DeadLettered {
        /// Why, in words an operator can act on (Flume's own message where there is one).
        reason: String,
        /// When it was set aside.
        at: DateTime<Utc>,
    },
}

/// The delivery bookkeeping of one change, persisted with it so that it survives restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Pending, in flight or dead-lettered.
    pub state: DeliveryState,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not to be sent before this time.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// What went wrong the last time.
    pub last_error: Option<String>,
}

impl Delivery {
    /// A freshly captured change: pending, no attempts yet.
    pub fn new() -> Self {
        Delivery {
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
        }
    }

    /// Whether a syncer may claim it at `now`: pending (or in flight with a lapsed lease)
    /// and due.
    ///
    /// A lease or a retry time after `horizon` (the latest any syncer could have set from
    /// `now`) was set before the wall clock jumped backwards; it counts as lapsed or due,
    /// so that a clock set back by a day does not hold delivery back by a day.
    pub fn is_claimable(&self, now: DateTime<Utc>, horizon: DateTime<Utc>) -> bool {
        let passed = |at: DateTime<Utc>| at <= now || at > horizon;
        let free = match &self.state {
            DeliveryState::Pending => true,
            DeliveryState::InFlight { lease_until, .. } => passed(*lease_until),
            DeliveryState::DeadLettered { .. } => false,
        };
        free && self.next_attempt_at.is_none_or(passed)
    }
}

impl Default for Delivery {
    fn default() -> Self {
        Self::new()
    }
}

/// A change together with its delivery bookkeeping, as a store holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The change.
    pub change: Change,
    /// Its delivery state.
    pub delivery: Delivery,
}

/// The last acknowledged change of one record, kept after the change leaves the outbox so
/// that an application can show "synced".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncMarker {
    /// The highest seq of this record that Flume acknowledged.
    pub last_acked_seq: Seq,
    /// When that acknowledgement arrived.
    pub acked_at: DateTime<Utc>,
}
