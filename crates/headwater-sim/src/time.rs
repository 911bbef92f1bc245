//! Virtual time: microseconds since the start of a run, and the wall-clock times the
//! delivery machine is given for them.

use chrono::{DateTime, TimeDelta, Utc};

/// Microseconds since the start of the run.
pub type Micros = u64;

/// One second of virtual time.
pub const SECOND: Micros = 1_000_000;

/// What the machines' wall clock reads at the start of a run.
const START_MILLIS: i64 = 1_700_000_000_000;

/// The wall-clock time of `at`.
pub fn wall(at: Micros) -> DateTime<Utc> {
    let start = DateTime::from_timestamp_millis(START_MILLIS).unwrap_or_default();
    start + TimeDelta::microseconds(i64::try_from(at).unwrap_or(i64::MAX))
}

/// The virtual time of a wall-clock time, rounded up (a deadline is never early), and
/// never before the start.
pub fn virtual_time(at: DateTime<Utc>) -> Micros {
    let start = DateTime::from_timestamp_millis(START_MILLIS).unwrap_or_default();
    let since = at - start;
    let micros = since
        .num_microseconds()
        .unwrap_or(if since > TimeDelta::zero() {
            i64::MAX
        } else {
            0
        });
    let rounded_up = since > TimeDelta::microseconds(micros);
    u64::try_from(micros).unwrap_or(0) + u64::from(rounded_up)
}

/// Seconds, from virtual time.
pub fn seconds(at: Micros) -> f64 {
    at as f64 / SECOND as f64
}

/// Virtual time, from seconds (negative and non-finite values give zero).
pub fn from_seconds(seconds: f64) -> Micros {
    if seconds.is_finite() && seconds > 0.0 {
        (seconds * SECOND as f64).round() as Micros
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_and_virtual_time_round_trip() {
        for at in [0, 1, 999_999, 3_600 * SECOND + 7] {
            assert_eq!(virtual_time(wall(at)), at);
        }
        let between = wall(10) + TimeDelta::nanoseconds(1);
        assert_eq!(virtual_time(between), 11, "a deadline rounds up");
        assert_eq!(virtual_time(wall(0) - TimeDelta::seconds(5)), 0);
    }
}
