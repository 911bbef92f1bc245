use std::time::Duration;

use rand_core::RngCore;
use serde::{Deserialize, Serialize};

/// Exponential backoff with full jitter: the wait before retry number `attempt` is drawn
/// uniformly from `0 ..= min(cap, base * 2^attempt)`.
///
/// Full jitter spreads the retries of many clients that failed together (a Flume
/// restart) so they do not return in lockstep.
///
/// ```
/// use std::time::Duration;
/// use headwater_core::policy::Backoff;
/// use rand_core::SeedableRng;
/// let mut backoff = Backoff::default();
/// backoff.base = Duration::from_millis(100);
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
/// assert!(backoff.delay(3, &mut rng) <= Duration::from_millis(800));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Backoff {
    /// The ceiling of the first retry's wait.
    #[serde(with = "humantime_serde")]
    pub base: Duration,
    /// The largest wait.
    #[serde(with = "humantime_serde")]
    pub cap: Duration,
    /// How the wait is drawn below its ceiling.
    pub jitter: Jitter,
}

/// How a backoff's wait is drawn below its ceiling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Jitter {
    /// Uniformly from zero to the ceiling (AWS's "full jitter").
    #[default]
    Full,
    /// The ceiling itself: every client that failed together retries together. For
    /// comparison only (the fleet simulator's `no-jitter` policy).
    None,
}

impl Default for Backoff {
    /// 250 ms doubling up to 60 s, full jitter.
    fn default() -> Self {
        Self {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(60),
            jitter: Jitter::Full,
        }
    }
}

impl Backoff {
    /// The ceiling of the wait before retry number `attempt` (0 for the first retry).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A jittered wait before retry number `attempt`.
    pub fn delay(&self, attempt: u32, rng: &mut impl RngCore) -> Duration {
        if self.jitter == Jitter::None {
            return self.ceiling(attempt);
        }
        let ceiling = self.ceiling(attempt).as_millis();
        let ceiling = u64::try_from(ceiling).unwrap_or(u64::MAX);
        let millis = if ceiling == u64::MAX {
            rng.next_u64()
        } else {
            rng.next_u64() % (ceiling + 1)
        };
        Duration::from_millis(millis)
    }
}

/// When to give up on a change and dead-letter it instead of sending it. By default
/// there is no limit: a change is not dropped for being late. `max_age` applies to every
/// change before each send, even one never tried: a change captured while offline or
/// paused is dead-lettered unsent once it is older than `max_age`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryLimits {
    /// Dead-letter after this many failed attempts.
    pub max_attempts: Option<u32>,
    /// Dead-letter once a change is older than this (measured from capture).
    #[serde(with = "humantime_serde")]
    pub max_age: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let backoff = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            jitter: Jitter::Full,
        };
        assert_eq!(backoff.ceiling(0), Duration::from_millis(100));
        assert_eq!(backoff.ceiling(1), Duration::from_millis(200));
        assert_eq!(backoff.ceiling(3), Duration::from_millis(800));
        assert_eq!(backoff.ceiling(4), Duration::from_secs(1));
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_the_ceiling_and_spreads() {
        let backoff = Backoff::default();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let delays: Vec<Duration> = (0..200).map(|_| backoff.delay(2, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(1000)));
        let low = delays
            .iter()
            .filter(|d| **d < Duration::from_millis(500))
            .count();
        assert!((50..150).contains(&low), "{low} of 200 below half");
    }

    #[test]
    fn without_jitter_the_wait_is_the_ceiling() {
        let backoff = Backoff {
            jitter: Jitter::None,
            ..Backoff::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        assert_eq!(backoff.delay(0, &mut rng), Duration::from_millis(250));
        assert_eq!(backoff.delay(3, &mut rng), Duration::from_secs(2));
        assert_eq!(backoff.delay(20, &mut rng), Duration::from_secs(60));
    }

    #[test]
    fn same_seed_same_delays() {
        let backoff = Backoff::default();
        let mut a = ChaCha8Rng::seed_from_u64(3);
        let mut b = ChaCha8Rng::seed_from_u64(3);
        for attempt in 0..10 {
            assert_eq!(
                backoff.delay(attempt, &mut a),
                backoff.delay(attempt, &mut b)
            );
        }
    }
}
