use std::collections::VecDeque;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::config::{MockFault, RandomFaults};

/// Where each request's fault comes from: the queue first, then the seeded draw.
#[derive(Debug)]
pub(crate) struct Faults {
    queued: VecDeque<MockFault>,
    random: Option<(RandomFaults, ChaCha8Rng)>,
}

impl Faults {
    pub(crate) fn new(random: Option<RandomFaults>) -> Self {
        Self {
            queued: VecDeque::new(),
            random: random.map(|faults| {
                let rng = ChaCha8Rng::seed_from_u64(faults.seed);
                (faults, rng)
            }),
        }
    }

    pub(crate) fn push(&mut self, fault: MockFault) {
        self.queued.push_back(fault);
    }

    /// Forgets the queued faults; returns how many there were.
    pub(crate) fn clear(&mut self) -> usize {
        let count = self.queued.len();
        self.queued.clear();
        count
    }

    pub(crate) fn next(&mut self) -> Option<MockFault> {
        if let Some(fault) = self.queued.pop_front() {
            return Some(fault);
        }
        let (faults, rng) = self.random.as_mut()?;
        let roll = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        if roll >= faults.rate || faults.kinds.is_empty() {
            return None;
        }
        let index = (rng.next_u64() % faults.kinds.len() as u64) as usize;
        faults.kinds.get(index).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_faults_come_first_then_the_seeded_rate() {
        let mut faults = Faults::new(Some(RandomFaults {
            rate: 0.25,
            seed: 3,
            kinds: vec![MockFault::Status(503)],
        }));
        faults.push(MockFault::Hang);
        assert_eq!(faults.next(), Some(MockFault::Hang));
        let hits = (0..4000).filter(|_| faults.next().is_some()).count();
        assert!((800..1200).contains(&hits), "{hits} of 4000 at rate 0.25");
    }

    #[test]
    fn no_plan_no_faults() {
        let mut faults = Faults::new(None);
        assert_eq!(faults.next(), None);
    }
}
