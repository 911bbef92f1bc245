//! Which endpoint gets the next request, and which are resting after failures.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::Selection;

#[derive(Debug, Clone, Default)]
struct Health {
    failures: u32,
    resting_until: Option<DateTime<Utc>>,
}

/// Endpoint order and health. Wall time (not `Instant`, which panics in the browser)
/// measures rests; a clock jump only shortens or lengthens one.
#[derive(Debug)]
pub(crate) struct Endpoints {
    selection: Selection,
    rest: Duration,
    rest_cap: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    health: Vec<Health>,
    next: usize,
}

impl Endpoints {
    pub(crate) fn new(
        count: usize,
        selection: Selection,
        rest: Duration,
        rest_cap: Duration,
    ) -> Self {
        Endpoints {
            selection,
            rest,
            rest_cap,
            state: Mutex::new(State {
                health: vec![Health::default(); count],
                next: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The endpoints to try for one request, in order: those not resting first (from
    /// the first for failover, from the next in turn for round-robin), then the resting
    /// ones, soonest back first, so a request always has somewhere to go.
    pub(crate) fn order(&self, now: DateTime<Utc>) -> Vec<usize> {
        let mut state = self.lock();
        let count = state.health.len();
        let start = match self.selection {
            Selection::Failover => 0,
            Selection::RoundRobin => {
                let start = state.next % count.max(1);
                state.next = state.next.wrapping_add(1);
                start
            }
        };
        let rotated = (0..count).map(|offset| (start + offset) % count);
        let (mut ready, mut resting): (Vec<usize>, Vec<usize>) = rotated.partition(|&index| {
            state.health[index]
                .resting_until
                .is_none_or(|until| until <= now)
        });
        resting.sort_by_key(|&index| state.health[index].resting_until);
        ready.append(&mut resting);
        ready
    }

    pub(crate) fn succeeded(&self, index: usize) {
        if let Some(health) = self.lock().health.get_mut(index) {
            *health = Health::default();
        }
    }

    /// The endpoint answered with a refusal of its own (a wrong path, missing
    /// credentials, no POST): it rests as long as a failing endpoint rests at most, while
    /// the others take the requests.
    pub(crate) fn refused(&self, index: usize, now: DateTime<Utc>) {
        let mut state = self.lock();
        if let Some(health) = state.health.get_mut(index) {
            health.failures = health.failures.saturating_add(1);
            health.resting_until =
                Some(now + TimeDelta::from_std(self.rest_cap).unwrap_or(TimeDelta::seconds(30)));
        }
    }

    pub(crate) fn failed(&self, index: usize, now: DateTime<Utc>) {
        let mut state = self.lock();
        if let Some(health) = state.health.get_mut(index) {
            let factor = 1u32
                .checked_shl(health.failures.min(31))
                .unwrap_or(u32::MAX);
            let rest = self.rest.saturating_mul(factor).min(self.rest_cap);
            health.failures = health.failures.saturating_add(1);
            health.resting_until =
                Some(now + TimeDelta::from_std(rest).unwrap_or(TimeDelta::seconds(30)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn failover_prefers_the_first_healthy_endpoint() {
        let endpoints = Endpoints::new(
            3,
            Selection::Failover,
            Duration::from_secs(1),
            Duration::from_secs(8),
        );
        assert_eq!(endpoints.order(at(0)), [0, 1, 2]);
        endpoints.failed(0, at(0));
        assert_eq!(endpoints.order(at(0)), [1, 2, 0]);
        assert_eq!(endpoints.order(at(1)), [0, 1, 2], "back after its rest");
        endpoints.failed(0, at(1));
        assert_eq!(
            endpoints.order(at(2)),
            [1, 2, 0],
            "the second rest is twice as long"
        );
        assert_eq!(endpoints.order(at(3)), [0, 1, 2]);
        endpoints.succeeded(0);
        endpoints.failed(0, at(3));
        assert_eq!(endpoints.order(at(4)), [0, 1, 2], "success resets the rest");
    }

    #[test]
    fn round_robin_rotates_and_skips_resting_endpoints() {
        let endpoints = Endpoints::new(
            3,
            Selection::RoundRobin,
            Duration::from_secs(5),
            Duration::from_secs(5),
        );
        assert_eq!(endpoints.order(at(0))[0], 0);
        assert_eq!(endpoints.order(at(0))[0], 1);
        assert_eq!(endpoints.order(at(0))[0], 2);
        endpoints.failed(1, at(0));
        let firsts: Vec<usize> = (0..4).map(|_| endpoints.order(at(1))[0]).collect();
        assert_eq!(firsts, [0, 2, 2, 0]);
    }

    #[test]
    fn when_all_rest_the_soonest_back_comes_first() {
        let endpoints = Endpoints::new(
            2,
            Selection::Failover,
            Duration::from_secs(1),
            Duration::from_secs(60),
        );
        endpoints.failed(0, at(0));
        endpoints.failed(0, at(0));
        endpoints.failed(1, at(0));
        assert_eq!(endpoints.order(at(0)), [1, 0]);
    }
}
