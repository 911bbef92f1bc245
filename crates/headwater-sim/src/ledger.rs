//! What the simulation knows about one client's changes, apart from the client: when
//! each was captured, whether the tier committed it and whether the client recorded
//! its acknowledgement. It is what `lost`, `duplicates`, `reordered` and the latencies
//! are counted from.

use std::collections::VecDeque;

use crate::time::Micros;

/// How many records each client writes to (its changes go to one of them at random, so
/// that a record's changes can be reordered if delivery ever let them).
pub const RECORDS: usize = 8;

#[derive(Debug, Clone, Copy)]
struct Entry {
    captured_at: Micros,
    record: u8,
    committed: bool,
    acked: bool,
}

/// What a commit at the tier was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// The change's first commit, in its record's order.
    First,
    /// Its first commit, after a later change of its record was committed.
    Reordered,
    /// It had been committed before.
    Duplicate,
    /// No such change was captured.
    Unknown,
}

/// One client's changes, by seq (1, 2, 3, … as its store assigns them).
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// The seq of `entries[0]`; every seq below it was committed and acknowledged.
    base: u64,
    entries: VecDeque<Entry>,
    /// Per record, the highest seq committed so far.
    last_commit: [u64; RECORDS],
    /// Changes captured and not acknowledged.
    pending: u64,
    /// Changes acknowledged that the tier never committed.
    acked_uncommitted: u64,
    /// The last seq captured before recovery, while some of them wait.
    backlog_mark: Option<u64>,
    /// When the last of those was acknowledged.
    backlog_done: Option<Micros>,
}

impl Ledger {
    /// An empty ledger (the first seq is 1).
    pub fn new() -> Self {
        Self {
            base: 1,
            ..Self::default()
        }
    }

    /// Changes captured and not yet acknowledged.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Acknowledgements of changes the tier never committed: changes lost.
    pub fn acked_uncommitted(&self) -> u64 {
        self.acked_uncommitted
    }

    /// When the backlog held at recovery was acknowledged (`None`: not yet, or no mark).
    pub fn backlog_done(&self) -> Option<Micros> {
        self.backlog_done
    }

    fn next_seq(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    /// Change `seq` was captured at `at`, to record `record`. Seqs come in order; a gap
    /// (a seq the store skipped) is recorded as changes already delivered.
    pub fn captured(&mut self, seq: u64, at: Micros, record: u8) {
        while self.next_seq() < seq {
            self.entries.push_back(Entry {
                captured_at: at,
                record,
                committed: true,
                acked: true,
            });
        }
        if seq < self.next_seq() {
            return;
        }
        self.entries.push_back(Entry {
            captured_at: at,
            record,
            committed: false,
            acked: false,
        });
        self.pending += 1;
    }

    /// The tier committed change `seq`.
    pub fn committed(&mut self, seq: u64) -> Commit {
        if seq < self.base {
            return Commit::Duplicate;
        }
        let Some(entry) = usize::try_from(seq - self.base)
            .ok()
            .and_then(|index| self.entries.get_mut(index))
        else {
            return Commit::Unknown;
        };
        if entry.committed {
            return Commit::Duplicate;
        }
        entry.committed = true;
        let last = &mut self.last_commit[usize::from(entry.record) % RECORDS];
        let reordered = seq < *last;
        *last = (*last).max(seq);
        self.trim();
        if reordered {
            Commit::Reordered
        } else {
            Commit::First
        }
    }

    /// The client recorded change `seq` as delivered at `now`; gives when it was
    /// captured, the first time.
    pub fn acked(&mut self, seq: u64, now: Micros) -> Option<Micros> {
        let index = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        let entry = self.entries.get_mut(index)?;
        if entry.acked {
            return None;
        }
        entry.acked = true;
        if !entry.committed {
            self.acked_uncommitted += 1;
            entry.committed = true;
        }
        self.pending -= 1;
        let captured_at = entry.captured_at;
        self.trim();
        if let Some(mark) = self.backlog_mark
            && self.base > mark
        {
            self.backlog_mark = None;
            self.backlog_done = Some(now);
        }
        Some(captured_at)
    }

    /// The client dead-lettered change `seq`: it waits no more, and was not delivered.
    pub fn set_aside(&mut self, seq: u64) {
        let Some(entry) = seq
            .checked_sub(self.base)
            .and_then(|index| usize::try_from(index).ok())
            .and_then(|index| self.entries.get_mut(index))
        else {
            return;
        };
        if !entry.acked {
            entry.acked = true;
            entry.committed = true;
            self.pending -= 1;
            self.trim();
        }
    }

    /// When each change still waiting was captured.
    pub fn waiting_since(&self) -> impl Iterator<Item = Micros> + '_ {
        self.entries
            .iter()
            .filter(|entry| !entry.acked)
            .map(|entry| entry.captured_at)
    }

    fn trim(&mut self) {
        while self
            .entries
            .front()
            .is_some_and(|entry| entry.committed && entry.acked)
        {
            self.entries.pop_front();
            self.base += 1;
        }
    }

    /// Recovery at `now`: the changes captured so far are the client's backlog, done
    /// once all of them are acknowledged.
    pub fn mark_backlog(&mut self, now: Micros) {
        let last = self.next_seq() - 1;
        if self.base > last {
            self.backlog_done = Some(now);
        } else {
            self.backlog_mark = Some(last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_are_told_apart() {
        let mut ledger = Ledger::new();
        for seq in 1..=4 {
            ledger.captured(seq, seq * 10, (seq % 2) as u8);
        }
        assert_eq!(ledger.committed(2), Commit::First);
        assert_eq!(ledger.committed(4), Commit::First);
        assert_eq!(ledger.committed(2), Commit::Duplicate);
        assert_eq!(ledger.committed(1), Commit::First, "record 1's first");
        assert_eq!(ledger.acked(1, 100), Some(10));
        assert_eq!(ledger.acked(2, 100), Some(20));
        assert_eq!(ledger.committed(1), Commit::Duplicate, "below the base");
        assert_eq!(ledger.committed(9), Commit::Unknown);
        assert_eq!(ledger.pending(), 2);
        // Seq 3 (record 1) after seq 1 is in order; record 0's seq 4 came before 2.
        let mut other = Ledger::new();
        for seq in 1..=3 {
            other.captured(seq, 0, 0);
        }
        assert_eq!(other.committed(3), Commit::First);
        assert_eq!(other.committed(1), Commit::Reordered);
    }

    #[test]
    fn the_backlog_is_done_when_its_last_change_is_acknowledged() {
        let mut ledger = Ledger::new();
        for seq in 1..=3 {
            ledger.captured(seq, 0, 0);
        }
        ledger.mark_backlog(50);
        ledger.captured(4, 60, 0);
        for seq in [1, 2, 4] {
            ledger.committed(seq);
            ledger.acked(seq, 70);
        }
        assert_eq!(ledger.backlog_done(), None);
        ledger.committed(3);
        ledger.acked(3, 80);
        assert_eq!(ledger.backlog_done(), Some(80));
        assert_eq!(ledger.acked_uncommitted(), 0);

        let mut empty = Ledger::new();
        empty.mark_backlog(5);
        assert_eq!(empty.backlog_done(), Some(5), "no backlog: done at once");
    }

    #[test]
    fn an_acknowledgement_without_a_commit_is_a_loss() {
        let mut ledger = Ledger::new();
        ledger.captured(1, 0, 0);
        ledger.acked(1, 5);
        assert_eq!(ledger.acked_uncommitted(), 1);
    }
}
