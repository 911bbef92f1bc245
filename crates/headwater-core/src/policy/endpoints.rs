//! Which endpoint gets the next request, and which rest after failing: the spreading
//! rule of a transport with several Flume endpoints, as a pure function of what
//! happened and `now`, so that the HTTP transport and the fleet simulator run the same
//! rule.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// How requests are spread over several endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Selection {
    /// Always the first endpoint that is not resting; the next one only when it cannot
    /// be reached (Flume's `default_failover`).
    #[default]
    Failover,
    /// Each request to the next endpoint in turn, skipping those resting (Flume's
    /// `default_loadbalance` with `round_robin`).
    RoundRobin,
    /// Each request to the endpoint of its route (a record's changes all have the same
    /// route: see `SyncConfig::routes`), failing over from it in turn: a record's
    /// changes reach one agent while it is up, so its channel keeps their order.
    ByKey,
}

#[derive(Debug, Clone, Default)]
struct Health {
    failures: u32,
    resting_until: Option<DateTime<Utc>>,
}

/// Endpoint order and health. Wall time measures rests (not `Instant`, which panics in
/// the browser); a clock jump only shortens or lengthens one.
///
/// ```
/// use std::time::Duration;
/// use headwater_core::policy::{Endpoints, Selection};
/// let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
/// let mut endpoints = Endpoints::new(3, Selection::Failover, Duration::from_secs(1), Duration::from_secs(30));
/// assert_eq!(endpoints.order(now), [0, 1, 2]);
/// endpoints.failed(0, now);
/// assert_eq!(endpoints.order(now), [1, 2, 0], "the first rests for a second");
/// ```
#[derive(Debug, Clone)]
pub struct Endpoints {
    selection: Selection,
    rest: Duration,
    rest_cap: Duration,
    health: Vec<Health>,
    next: usize,
    primary: usize,
}

impl Endpoints {
    /// How long an unreachable endpoint rests at first, by default.
    pub const DEFAULT_REST: Duration = Duration::from_secs(1);
    /// The longest rest, by default.
    pub const DEFAULT_REST_CAP: Duration = Duration::from_secs(30);

    /// `count` endpoints spread by `selection`; an unreachable one rests `rest`, twice
    /// as long after each further failure, up to `rest_cap`.
    pub fn new(count: usize, selection: Selection, rest: Duration, rest_cap: Duration) -> Self {
        Self {
            selection,
            rest,
            rest_cap,
            health: vec![Health::default(); count],
            next: 0,
            primary: 0,
        }
    }

    /// Starts from endpoint `primary` (modulo the count) instead of the first: failover
    /// prefers it and moves on from it; round-robin starts its turn there. A fleet whose
    /// clients each start from their own primary spreads over the endpoints.
    pub fn with_primary(mut self, primary: usize) -> Self {
        let count = self.health.len().max(1);
        self.primary = primary % count;
        self.next = self.primary;
        self
    }

    /// The endpoints to try for one request, in order: those not resting first (from
    /// the primary for failover, from the next in turn for round-robin), then the
    /// resting ones, soonest back first, so a request always has somewhere to go.
    pub fn order(&mut self, now: DateTime<Utc>) -> Vec<usize> {
        self.order_for(now, None)
    }

    /// [`order`](Self::order) for a request on `route`: with [`Selection::ByKey`], from
    /// the route's endpoint.
    pub fn order_for(&mut self, now: DateTime<Utc>, route: Option<usize>) -> Vec<usize> {
        let count = self.health.len();
        let start = match self.selection {
            Selection::Failover => self.primary,
            Selection::ByKey => route.map_or(self.primary, |route| route % count.max(1)),
            Selection::RoundRobin => {
                let start = self.next % count.max(1);
                self.next = self.next.wrapping_add(1);
                start
            }
        };
        let rotated = (0..count).map(|offset| (start + offset) % count);
        let (mut ready, mut resting): (Vec<usize>, Vec<usize>) = rotated.partition(|&index| {
            self.health[index]
                .resting_until
                .is_none_or(|until| until <= now)
        });
        resting.sort_by_key(|&index| self.health[index].resting_until);
        ready.append(&mut resting);
        ready
    }

    /// Endpoint `index` answered: it is healthy again.
    pub fn succeeded(&mut self, index: usize) {
        if let Some(health) = self.health.get_mut(index) {
            *health = Health::default();
        }
    }

    /// Endpoint `index` answered with a refusal of its own (a wrong path, missing
    /// credentials, no POST): it rests as long as a failing endpoint rests at most, while
    /// the others take the requests.
    pub fn refused(&mut self, index: usize, now: DateTime<Utc>) {
        let rest_cap = self.rest_cap;
        if let Some(health) = self.health.get_mut(index) {
            health.failures = health.failures.saturating_add(1);
            health.resting_until =
                Some(now + TimeDelta::from_std(rest_cap).unwrap_or(TimeDelta::seconds(30)));
        }
    }

    /// Endpoint `index` could not be reached: it rests, longer after each failure in a
    /// row.
    pub fn failed(&mut self, index: usize, now: DateTime<Utc>) {
        let (rest, rest_cap) = (self.rest, self.rest_cap);
        if let Some(health) = self.health.get_mut(index) {
            let factor = 1u32
                .checked_shl(health.failures.min(31))
                .unwrap_or(u32::MAX);
            let rest = rest.saturating_mul(factor).min(rest_cap);
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
        let mut endpoints = Endpoints::new(
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
    fn failover_from_a_primary_moves_on_from_it() {
        let mut endpoints = Endpoints::new(
            3,
            Selection::Failover,
            Duration::from_secs(1),
            Duration::from_secs(8),
        )
        .with_primary(4);
        assert_eq!(endpoints.order(at(0)), [1, 2, 0]);
        endpoints.failed(1, at(0));
        assert_eq!(endpoints.order(at(0)), [2, 0, 1]);
        assert_eq!(endpoints.order(at(1)), [1, 2, 0], "back after its rest");
    }

    #[test]
    fn by_key_starts_at_the_routes_endpoint_and_fails_over_from_it() {
        let mut endpoints = Endpoints::new(
            3,
            Selection::ByKey,
            Duration::from_secs(1),
            Duration::from_secs(8),
        );
        assert_eq!(endpoints.order_for(at(0), Some(2)), [2, 0, 1]);
        assert_eq!(endpoints.order_for(at(0), Some(4)), [1, 2, 0]);
        endpoints.failed(1, at(0));
        assert_eq!(endpoints.order_for(at(0), Some(1)), [2, 0, 1]);
        assert_eq!(
            endpoints.order_for(at(2), Some(1)),
            [1, 2, 0],
            "back after its rest"
        );
    }

    #[test]
    fn round_robin_rotates_and_skips_resting_endpoints() {
        let mut endpoints = Endpoints::new(
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
        let mut endpoints = Endpoints::new(
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
