use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::Seq;
use crate::store::OutboxStats;

/// Running totals of one syncer since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SyncCounters {
    /// Requests handed to the transport (empty probes included). One may take more than
    /// one HTTP POST: the next endpoint after one that refused or could not be reached,
    /// or a resend after a credential refresh.
    pub requests: u64,
    /// Times a batch was scheduled for another attempt after a backoff.
    pub retries: u64,
    /// Changes Flume acknowledged.
    pub delivered: u64,
    /// Changes set aside for an operator.
    pub dead_lettered: u64,
    /// Changes acknowledged without sending because a later change to the same record
    /// superseded them (only with coalescing on).
    pub coalesced: u64,
    /// Refused batches taken apart to find the changes Flume refuses.
    pub bisections: u64,
    /// Empty batches sent to tell a broken server from a refused change.
    pub probes: u64,
    /// Outbox rows that did not decode and were moved to the dead letters.
    pub quarantined: u64,
    /// Records the server dropped from batches it accepted, by its own count (an OTLP
    /// partial success). They are not sent again, as the protocol requires:
    /// [`SyncStatus::last_partial_rejection`] says which batch and why.
    pub rejected_by_server: u64,
    /// Answers to requests, by kind.
    pub answers: AnswerCounts,
}

/// How the requests of a syncer ended, by kind (the `outcome` label of
/// `headwater_requests_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AnswerCounts {
    /// 2xx.
    pub accepted: u64,
    /// 503 (Flume's channel full) and 429: Flume pushes back.
    pub throttled: u64,
    /// Other 4xx (and 1xx, 3xx): refusals.
    pub client_errors: u64,
    /// Other 5xx.
    pub server_errors: u64,
    /// No answer within the request timeout.
    pub timeouts: u64,
    /// The connection failed or dropped.
    pub connection_failures: u64,
    /// The transport refused to send as configured (TLS, CORS).
    pub refused: u64,
}

impl AnswerCounts {
    /// Counts `outcome`.
    pub fn count(&mut self, outcome: &crate::transport::SendOutcome) {
        use crate::transport::SendOutcome;
        let slot = match outcome {
            SendOutcome::Response(response) => match response.status {
                200..=299 => &mut self.accepted,
                429 | 503 => &mut self.throttled,
                500..=599 => &mut self.server_errors,
                _ => &mut self.client_errors,
            },
            SendOutcome::TimedOut { .. } => &mut self.timeouts,
            SendOutcome::ConnectionFailed { .. } => &mut self.connection_failures,
            SendOutcome::Refused { .. } => &mut self.refused,
        };
        *slot += 1;
    }
}

/// What an application shows in a sync badge, and what tests assert on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SyncStatus {
    /// Changes waiting in the outbox (those being sent included).
    pub pending: usize,
    /// Their total size in bytes (values, names and headers).
    pub pending_bytes: u64,
    /// Changes being sent, or taken apart after a refusal.
    pub in_flight: usize,
    /// Changes set aside for an operator.
    pub dead_lettered: usize,
    /// When the oldest pending change was captured.
    pub oldest_pending_at: Option<DateTime<Utc>>,
    /// The oldest pending change's seq.
    pub oldest_pending_seq: Option<Seq>,
    /// Why the outbox is paused, if it is: a configuration problem (401, 403, 404, ...)
    /// that retrying cannot fix. Nothing is dropped while blocked.
    pub blocked: Option<String>,
    /// The last error, cleared when a batch goes through.
    pub last_error: Option<String>,
    /// When the syncer will try next, if it is waiting.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The batch size in force (it adapts to Flume's capacity).
    pub batch_size: usize,
    /// How many requests may be in flight now (it adapts to how Flume answers).
    pub in_flight_limit: usize,
    /// Set when delivery has stalled: since this time no change was delivered (or set
    /// aside) although changes wait, and the outbox is neither blocked nor paused, for
    /// longer than `stall_after`. `last_error` and `oldest_pending_at` say more. A Flume
    /// that takes connections but never answers looks like this.
    pub stalled_since: Option<DateTime<Utc>>,
    /// The last batch the server accepted but dropped records of (an OTLP partial
    /// success): which changes it held, how many records were dropped and why.
    pub last_partial_rejection: Option<PartialRejectionReport>,
    /// Totals since the syncer started.
    pub counters: SyncCounters,
}

/// A batch the server accepted while dropping some of its records (OTLP's
/// `partial_success`). The server says how many, not which: any of `first`..=`last`
/// may be among them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PartialRejectionReport {
    /// When the answer came.
    pub at: DateTime<Utc>,
    /// The lowest seq in the batch.
    pub first: Seq,
    /// The highest seq in the batch.
    pub last: Seq,
    /// How many changes the batch held.
    pub changes: usize,
    /// How many records the server dropped.
    pub rejected: u64,
    /// The server's reason.
    pub message: String,
}

impl SyncStatus {
    /// Nothing left to send and nothing set aside.
    pub fn is_synced(&self) -> bool {
        self.pending == 0 && self.in_flight == 0 && self.dead_lettered == 0
    }

    /// Nothing left to send (dead letters aside).
    pub fn is_drained(&self) -> bool {
        self.pending == 0 && self.in_flight == 0
    }

    /// Adds the store's counts to the engine's view. A head that waits for a retry
    /// (set by this syncer or one before it) shows its error.
    pub(crate) fn with_stats(mut self, stats: &OutboxStats, now: DateTime<Utc>) -> Self {
        self.pending = stats.pending;
        self.pending_bytes = stats.pending_bytes;
        self.dead_lettered = stats.dead_lettered;
        self.oldest_pending_at = stats.oldest.as_ref().map(|oldest| oldest.captured_at);
        self.oldest_pending_seq = stats.oldest.as_ref().map(|oldest| oldest.seq);
        if let Some(oldest) = &stats.oldest {
            let waiting = oldest.delivery.next_attempt_at.filter(|at| *at > now);
            if self.last_error.is_none() && waiting.is_some() {
                self.last_error = oldest.delivery.last_error.clone();
            }
        }
        self
    }
}
