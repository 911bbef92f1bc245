//! Sets of seqs kept as runs (`first..=last`): which lines Flume acknowledged.

use std::collections::BTreeMap;

/// Disjoint, non-adjacent runs of seqs, by their first seq.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Runs {
    runs: BTreeMap<u64, u64>,
    count: u64,
}

impl Runs {
    /// The last seq of the run holding `seq`, if one does.
    pub(crate) fn end_of_run_holding(&self, seq: u64) -> Option<u64> {
        self.runs
            .range(..=seq)
            .next_back()
            .filter(|(_, last)| **last >= seq)
            .map(|(_, last)| *last)
    }

    /// The first seq of the run holding `seq`, if one does.
    pub(crate) fn start_of_run_holding(&self, seq: u64) -> Option<u64> {
        self.runs
            .range(..=seq)
            .next_back()
            .filter(|(_, last)| **last >= seq)
            .map(|(first, _)| *first)
    }

    /// Adds `first..=last`, merging it with the runs it overlaps or touches; returns
    /// the run it is now part of.
    pub(crate) fn insert(&mut self, first: u64, last: u64) -> (u64, u64) {
        let (mut from, mut to) = (first, last);
        if let Some((&start, &end)) = self.runs.range(..=first).next_back()
            && end.saturating_add(1) >= first
        {
            from = start;
        }
        let absorbed: Vec<(u64, u64)> = self
            .runs
            .range(from..=to.saturating_add(1))
            .map(|(&start, &end)| (start, end))
            .collect();
        for (start, end) in absorbed {
            self.runs.remove(&start);
            self.count -= end - start + 1;
            to = to.max(end);
        }
        self.runs.insert(from, to);
        self.count += to - from + 1;
        (from, to)
    }

    /// How many seqs at or below `limit` the runs hold.
    pub(crate) fn count_through(&self, limit: u64) -> u64 {
        if self
            .runs
            .last_key_value()
            .is_none_or(|(_, last)| *last <= limit)
        {
            return self.count;
        }
        self.runs
            .range(..=limit)
            .map(|(&first, &last)| last.min(limit) - first + 1)
            .sum()
    }

    /// The runs, in order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.runs.iter().map(|(&first, &last)| (first, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn runs_merge_and_count_as_a_set_of_seqs_does() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |bound: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % bound
        };
        for _ in 0..200 {
            let mut runs = Runs::default();
            let mut set = BTreeSet::new();
            for _ in 0..40 {
                let first = 1 + next(200);
                let last = first + next(6);
                let (from, to) = runs.insert(first, last);
                set.extend(first..=last);
                assert!(from <= first && to >= last);
                assert!((from..=to).all(|seq| set.contains(&seq)));
                assert!(from == 1 || !set.contains(&(from - 1)));
                assert!(!set.contains(&(to + 1)));
                assert_eq!(runs.count_through(u64::MAX), set.len() as u64);
                let limit = next(220);
                assert_eq!(
                    runs.count_through(limit),
                    set.range(..=limit).count() as u64
                );
                for seq in 0..215 {
                    let end = runs.end_of_run_holding(seq);
                    assert_eq!(end.is_some(), set.contains(&seq), "{seq}");
                    if let Some(end) = end {
                        assert!((seq..=end).all(|s| set.contains(&s)));
                        assert!(!set.contains(&(end + 1)));
                    }
                }
                let listed: Vec<(u64, u64)> = runs.iter().collect();
                assert!(listed.windows(2).all(|pair| pair[0].1 + 1 < pair[1].0));
            }
        }
    }
}
