use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Running totals of one syncer since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCounters {
    /// HTTP requests sent.
    pub requests: u64,
    /// Requests whose batch was scheduled for another attempt.
    pub retries: u64,
    /// Changes Flume acknowledged.
    pub delivered: u64,
    /// Changes set aside for an operator.
    pub dead_lettered: u64,
    /// Changes acknowledged without sending because a later change to the same record
    /// superseded them (only with coalescing on).
    pub coalesced: u64,
}

/// What an application shows in a sync badge, and what tests assert on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// Changes waiting to be sent.
    pub pending: usize,
    /// Changes being sent.
    pub in_flight: usize,
    /// Changes set aside for an operator.
    pub dead_lettered: usize,
    /// Why the outbox is paused, if it is: a configuration problem (401, 403, 404, ...)
    /// that retrying cannot fix. Nothing is dropped while blocked.
    pub blocked: Option<String>,
    /// The last error the syncer met.
    pub last_error: Option<String>,
    /// When the syncer will try next, if it is waiting.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The batch size in force (it adapts to Flume's capacity).
    pub batch_size: usize,
    /// Totals since the syncer started.
    pub counters: SyncCounters,
}

impl SyncStatus {
    /// Nothing left to send and nothing set aside.
    pub fn is_synced(&self) -> bool {
        self.pending == 0 && self.in_flight == 0 && self.dead_lettered == 0
    }
}
