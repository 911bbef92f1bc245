//! What the engine hands a store to write after answers came back.

use std::ops::RangeInclusive;
use std::sync::Arc;

use crate::model::{Change, DeadLetter, Delivery, Seq};

/// One record's sync marker to advance (with
/// [`SyncMarker::advance`](crate::model::SyncMarker::advance)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerUpdate {
    /// The record's collection.
    pub collection: Arc<str>,
    /// The record's key.
    pub key: Arc<str>,
    /// The highest seq of this record acknowledged in this outcome.
    pub seq: Seq,
}

/// What happened to changes the engine sent, ready to write in one transaction:
/// acknowledgements (with each record's marker), retry bookkeeping, and dead letters.
///
/// ```
/// use headwater_core::store::Outcome;
/// let outcome = Outcome::default();
/// assert!(outcome.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    acked: Vec<Seq>,
    /// One entry per acknowledged change; `markers` keeps the latest per record.
    marked: Vec<MarkerUpdate>,
    retries: Vec<(Seq, Delivery)>,
    dead: Vec<DeadLetter>,
    removed_bytes: u64,
}

impl Outcome {
    /// Flume committed `change`: remove it and advance its record's marker.
    pub fn ack(&mut self, change: &Change) {
        self.acked.push(change.seq());
        self.removed_bytes += change.data().weight() as u64;
        self.marked.push(MarkerUpdate {
            collection: Arc::clone(change.data().collection_shared()),
            key: Arc::clone(change.data().key_shared()),
            seq: change.seq(),
        });
    }

    /// `seq` failed and waits for another attempt with this bookkeeping.
    pub fn retry(&mut self, seq: Seq, delivery: Delivery) {
        self.retries.push((seq, delivery));
    }

    /// Sets a change (or an unreadable row) aside.
    pub fn dead_letter(&mut self, letter: DeadLetter) {
        if let Some(change) = letter.change() {
            self.removed_bytes += change.data().weight() as u64;
        }
        self.dead.push(letter);
    }

    /// Adds everything of `other` to this outcome (later writes win).
    pub fn merge(&mut self, other: Self) {
        self.acked.extend(other.acked);
        self.marked.extend(other.marked);
        self.retries.extend(other.retries);
        self.dead.extend(other.dead);
        self.removed_bytes += other.removed_bytes;
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.acked.is_empty() && self.retries.is_empty() && self.dead.is_empty()
    }

    /// The acknowledged seqs, in the order they were acknowledged.
    pub fn acked(&self) -> &[Seq] {
        &self.acked
    }

    /// The acknowledged seqs as runs of consecutive seqs, ascending, for backends that
    /// delete key ranges (IndexedDB, SQLite).
    pub fn acked_runs(&self) -> Vec<RangeInclusive<Seq>> {
        let mut seqs = self.acked.clone();
        seqs.sort_unstable();
        seqs.dedup();
        let mut runs: Vec<RangeInclusive<Seq>> = Vec::new();
        for seq in seqs {
            match runs.last_mut() {
                Some(run) if run.end().0 + 1 == seq.0 => *run = *run.start()..=seq,
                _ => runs.push(seq..=seq),
            }
        }
        runs
    }

    /// Every acknowledged change's record and seq, in acknowledgement order (a record
    /// may come more than once; [`SyncMarker::advance`](crate::model::SyncMarker::advance)
    /// keeps the highest). For stores where a marker update is cheap.
    pub fn marked(&self) -> &[MarkerUpdate] {
        &self.marked
    }

    /// The markers to advance: one per record, at its highest acknowledged seq. For
    /// stores where each marker update is a write.
    pub fn markers(&self) -> Vec<MarkerUpdate> {
        let mut marked = self.marked.clone();
        marked.sort_unstable_by(|a, b| {
            (&a.collection, &a.key, std::cmp::Reverse(a.seq)).cmp(&(
                &b.collection,
                &b.key,
                std::cmp::Reverse(b.seq),
            ))
        });
        marked.dedup_by(|later, kept| later.collection == kept.collection && later.key == kept.key);
        marked
    }

    /// Retry bookkeeping to store, by seq.
    pub fn retries(&self) -> &[(Seq, Delivery)] {
        &self.retries
    }

    /// Dead letters to move out of the outbox.
    pub fn dead(&self) -> &[DeadLetter] {
        &self.dead
    }

    /// The weight in bytes of the readable changes this outcome removes from the outbox.
    pub fn removed_bytes(&self) -> u64 {
        self.removed_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acked_seqs_come_as_runs() {
        let outcome = Outcome {
            acked: vec![Seq(7), Seq(3), Seq(4), Seq(5), Seq(9), Seq(8), Seq(12)],
            ..Outcome::default()
        };
        assert_eq!(
            outcome.acked_runs(),
            vec![Seq(3)..=Seq(5), Seq(7)..=Seq(9), Seq(12)..=Seq(12)]
        );
    }
}
