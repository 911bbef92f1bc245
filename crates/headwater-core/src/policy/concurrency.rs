use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// How many requests may be in flight at once, adapted to how Flume answers.
///
/// This is the adaptive request concurrency that Vector's HTTP sinks use, a feedback loop
/// after TCP congestion control: the limit starts at 1; once per round trip (the
/// smoothed round-trip time), if requests waited for the limit, no answer pushed back
/// and the round trips of that period were no slower than the smoothed ones, it grows
/// by one; if an answer pushed back (503, 429, 408, 504, a timeout) or the round trips
/// grew by more than `2.5` standard deviations, it is cut to 90 %. It never passes the
/// configured maximum. With `adaptive` off the limit is the maximum.
///
/// ```
/// use std::time::Duration;
/// use headwater_core::policy::ConcurrencyLimit;
/// let mut limit = ConcurrencyLimit::new(4, true);
/// assert_eq!(limit.limit(), 1);
/// let mut now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
/// for _ in 0..50 {
///     limit.on_start(limit.limit());
///     now += chrono::TimeDelta::milliseconds(10);
///     limit.on_answer(now, Some(Duration::from_millis(10)), false);
/// }
/// assert_eq!(limit.limit(), 4);
/// limit.on_answer(now + chrono::TimeDelta::seconds(1), None, true);
/// assert_eq!(limit.limit(), 3);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ConcurrencyLimit {
    max: usize,
    adaptive: bool,
    limit: usize,
    past: Option<Ewma>,
    current_sum: f64,
    current_count: u32,
    next_update: Option<DateTime<Utc>>,
    back_pressure: bool,
    reached_limit: bool,
}

/// How quickly the smoothed round trip follows new measurements.
const EWMA_ALPHA: f64 = 0.4;
/// How many standard deviations of round-trip growth count as pushing back.
const RTT_DEVIATION_SCALE: f64 = 2.5;
/// The factor a push-back cuts the limit by.
const DECREASE_RATIO: f64 = 0.9;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Ewma {
    mean: f64,
    variance: f64,
}

impl Ewma {
    fn update(&mut self, value: f64) {
        let difference = value - self.mean;
        self.mean += EWMA_ALPHA * difference;
        self.variance = (1.0 - EWMA_ALPHA) * (self.variance + EWMA_ALPHA * difference * difference);
    }
}

impl ConcurrencyLimit {
    /// A limit of at most `max` requests (at least 1), adapting if `adaptive`.
    pub fn new(max: usize, adaptive: bool) -> Self {
        let max = max.max(1);
        Self {
            max,
            adaptive,
            limit: if adaptive { 1 } else { max },
            past: None,
            current_sum: 0.0,
            current_count: 0,
            next_update: None,
            back_pressure: false,
            reached_limit: false,
        }
    }

    /// Requests allowed in flight now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The configured maximum.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A request started; `in_flight` counts it.
    pub fn on_start(&mut self, in_flight: usize) {
        if in_flight >= self.limit {
            self.reached_limit = true;
        }
    }

    /// An answer arrived at `now`: `rtt` is the round trip of a request Flume processed
    /// (`None` for failures), `back_pressure` whether the answer asked to slow down.
    pub fn on_answer(&mut self, now: DateTime<Utc>, rtt: Option<Duration>, back_pressure: bool) {
        if !self.adaptive {
            return;
        }
        self.back_pressure |= back_pressure;
        if let Some(rtt) = rtt {
            self.current_sum += rtt.as_secs_f64();
            self.current_count += 1;
        }
        let current =
            (self.current_count > 0).then(|| self.current_sum / f64::from(self.current_count));
        let Some(mut past) = self.past else {
            if let Some(current) = current {
                self.past = Some(Ewma {
                    mean: current,
                    variance: 0.0,
                });
                self.next_update = Some(now + seconds(current));
                self.reset_period();
            } else if self.back_pressure {
                self.decrease();
                self.reset_period();
            }
            return;
        };
        if self.next_update.is_some_and(|at| now < at) && !back_pressure {
            return;
        }
        let threshold = past.variance.sqrt() * RTT_DEVIATION_SCALE;
        let slower =
            current.is_some_and(|current| current >= past.mean + threshold && threshold > 0.0);
        if self.back_pressure || slower {
            self.decrease();
        } else if self.reached_limit && current.is_some_and(|current| current <= past.mean) {
            self.limit = (self.limit + 1).min(self.max);
        }
        if let Some(current) = current {
            past.update(current);
            self.past = Some(past);
        }
        self.next_update = Some(now + seconds(past.mean));
        self.reset_period();
    }

    fn decrease(&mut self) {
        self.limit = ((self.limit as f64 * DECREASE_RATIO) as usize).max(1);
    }

    fn reset_period(&mut self) {
        self.current_sum = 0.0;
        self.current_count = 0;
        self.back_pressure = false;
        self.reached_limit = false;
    }
}

fn seconds(value: f64) -> TimeDelta {
    TimeDelta::from_std(Duration::from_secs_f64(value.clamp(0.0, 3600.0)))
        .unwrap_or(TimeDelta::seconds(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + millis).unwrap()
    }

    fn run(limit: &mut ConcurrencyLimit, start: i64, rounds: i64, rtt_ms: u64) -> i64 {
        let mut now = start;
        for _ in 0..rounds {
            limit.on_start(limit.limit());
            now += rtt_ms as i64;
            limit.on_answer(at(now), Some(Duration::from_millis(rtt_ms)), false);
        }
        now
    }

    #[test]
    fn fixed_when_not_adaptive() {
        let mut limit = ConcurrencyLimit::new(4, false);
        assert_eq!(limit.limit(), 4);
        limit.on_answer(at(0), None, true);
        assert_eq!(limit.limit(), 4);
        assert_eq!(ConcurrencyLimit::new(0, false).limit(), 1);
    }

    #[test]
    fn grows_while_round_trips_stay_flat_and_stops_at_the_maximum() {
        let mut limit = ConcurrencyLimit::new(8, true);
        run(&mut limit, 0, 100, 5);
        assert_eq!(limit.limit(), 8);
    }

    #[test]
    fn does_not_grow_without_demand() {
        let mut limit = ConcurrencyLimit::new(8, true);
        let mut now = 0;
        for _ in 0..100 {
            now += 5;
            limit.on_answer(at(now), Some(Duration::from_millis(5)), false);
        }
        assert_eq!(limit.limit(), 1, "requests never waited for the limit");
    }

    #[test]
    fn back_pressure_cuts_and_slow_round_trips_cut() {
        let mut limit = ConcurrencyLimit::new(10, true);
        let now = run(&mut limit, 0, 200, 5);
        assert_eq!(limit.limit(), 10);
        limit.on_answer(at(now + 1), None, true);
        assert_eq!(limit.limit(), 9);
        // A little jitter sets a deviation; then round trips jump tenfold.
        let now = run(&mut limit, now + 1, 10, 6);
        let now = run(&mut limit, now, 10, 5);
        let before = limit.limit();
        run(&mut limit, now, 20, 60);
        assert!(
            limit.limit() < before,
            "{} not below {before}",
            limit.limit()
        );
        assert!(limit.limit() >= 1);
    }
}
