use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Change, Seq};

/// The retry bookkeeping of one change, persisted with it so that it survives restarts.
///
/// Whether a change is in flight is not stored per change: one syncer at a time holds
/// the outbox's lease (see [`Lease`](crate::store::Lease)), and what it has in flight
/// lives in its memory. If it dies, the lease lapses and the next syncer sends the
/// changes again (at-least-once; the `id` header lets consumers drop duplicates).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not to be sent before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// What went wrong the last time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Delivery {
    /// A freshly captured change: no attempts yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the change may be sent at `now`.
    ///
    /// A retry time after `horizon` (the latest any syncer could have set from `now`)
    /// was set before the wall clock jumped backwards; it counts as due, so that a clock
    /// set back by a day does not hold delivery back by a day.
    pub fn is_due(&self, now: DateTime<Utc>, horizon: DateTime<Utc>) -> bool {
        self.next_attempt_at
            .is_none_or(|at| at <= now || at > horizon)
    }

    /// The bookkeeping after one more failed attempt.
    pub fn failed(&self, next_attempt_at: DateTime<Utc>, error: &str) -> Self {
        Self {
            attempts: self.attempts.saturating_add(1),
            next_attempt_at: Some(next_attempt_at),
            last_error: Some(error.to_owned()),
        }
    }
}

/// A change together with its retry bookkeeping, as a store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The change.
    pub change: Change,
    /// Its retry bookkeeping.
    pub delivery: Delivery,
}

impl OutboxEntry {
    /// A freshly appended change.
    pub fn new(change: Change) -> Self {
        Self {
            change,
            delivery: Delivery::new(),
        }
    }

    /// Sets this change aside with `reason`.
    pub fn dead_letter(&self, reason: &str, at: DateTime<Utc>) -> DeadLetter {
        DeadLetter {
            seq: self.change.seq(),
            content: DeadContent::Change(self.change.clone()),
            reason: reason.to_owned(),
            at,
            attempts: self.delivery.attempts,
        }
    }
}

/// A stored outbox row that no longer decodes (damaged bytes, or written by a newer
/// version of headwater). The syncer quarantines it in the dead letters, raw bytes and
/// all, and goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableEntry {
    /// Where it sits in the outbox.
    pub seq: Seq,
    /// The row as stored, as text (bytes that are not UTF-8 are replaced).
    pub raw: String,
    /// Why it does not decode.
    pub error: String,
}

impl UnreadableEntry {
    /// Quarantines this row.
    pub fn quarantine(&self, at: DateTime<Utc>) -> DeadLetter {
        DeadLetter {
            seq: self.seq,
            content: DeadContent::Unreadable {
                raw: self.raw.clone(),
            },
            reason: format!(
                "quarantined: the stored change does not decode: {}",
                self.error
            ),
            at,
            attempts: 0,
        }
    }
}

/// What a dead letter holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeadContent {
    /// The change, as captured.
    Change(Change),
    /// A row that did not decode, as it was stored.
    Unreadable {
        /// The stored text.
        raw: String,
    },
}

/// A change set aside for an operator: it is not sent again until it is requeued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Its place in the outbox (it keeps it when requeued).
    pub seq: Seq,
    /// The change, or the raw row of one that did not decode.
    pub content: DeadContent,
    /// Why, in words an operator can act on (Flume's own message where there is one).
    pub reason: String,
    /// When it was set aside.
    pub at: DateTime<Utc>,
    /// Failed attempts before it was set aside.
    pub attempts: u32,
}

impl DeadLetter {
    /// The change, if it is readable.
    pub fn change(&self) -> Option<&Change> {
        match &self.content {
            DeadContent::Change(change) => Some(change),
            DeadContent::Unreadable { .. } => None,
        }
    }

    /// Puts the change back in line with its attempts reset, keeping its seq and id.
    /// An unreadable row cannot be requeued (it would only be quarantined again).
    pub fn requeue(&self) -> Option<OutboxEntry> {
        self.change().cloned().map(OutboxEntry::new)
    }
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

impl SyncMarker {
    /// The marker after `seq` of this record was acknowledged at `now`, or `None` if the
    /// existing marker is already past it (a late duplicate acknowledgement).
    pub fn advance(existing: Option<&Self>, seq: Seq, now: DateTime<Utc>) -> Option<Self> {
        match existing {
            Some(marker) if marker.last_acked_seq > seq => None,
            _ => Some(Self {
                last_acked_seq: seq,
                acked_at: now,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn due_now_later_or_past_the_horizon() {
        let mut delivery = Delivery::new();
        assert!(delivery.is_due(at(0), at(100)));
        delivery = delivery.failed(at(10), "503");
        assert_eq!(delivery.attempts, 1);
        assert!(!delivery.is_due(at(5), at(100)));
        assert!(delivery.is_due(at(10), at(100)));
        assert!(
            delivery.is_due(at(5), at(5) + TimeDelta::seconds(1)),
            "a retry time beyond the horizon predates a clock jump"
        );
    }

    #[test]
    fn markers_only_move_forward() {
        let first = SyncMarker::advance(None, Seq(5), at(1)).unwrap();
        assert_eq!(SyncMarker::advance(Some(&first), Seq(3), at(2)), None);
        let next = SyncMarker::advance(Some(&first), Seq(9), at(3)).unwrap();
        assert_eq!(next.last_acked_seq, Seq(9));
    }
}
