//! What a run measures: per-second series of the load offered to and accepted by the
//! tier and of the fleet's backlog, and from them the figures a policy is judged by.

use serde::Serialize;

use crate::time::{Micros, SECOND};

/// Per-second counts over a run.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Events in requests sent, by the second they were sent (accepted or not).
    pub offered_events: Vec<u64>,
    /// Requests with events sent, by second.
    pub offered_requests: Vec<u64>,
    /// Events the tier committed, by second.
    pub accepted_events: Vec<u64>,
    /// Requests with events the tier committed, by second.
    pub accepted_requests: Vec<u64>,
    /// The fleet's pending changes (captured, not acknowledged) at each second.
    pub pending: Vec<u64>,
    /// The tier's capacity (events/s) at each second.
    pub capacity: Vec<f64>,
}

fn bump(series: &mut Vec<u64>, at: Micros, by: u64) {
    let second = usize::try_from(at / SECOND).unwrap_or(usize::MAX);
    if second == usize::MAX {
        return;
    }
    if series.len() <= second {
        series.resize(second + 1, 0);
    }
    series[second] += by;
}

impl Series {
    /// A request of `events` events was sent at `at`.
    pub fn offered(&mut self, at: Micros, events: usize) {
        if events > 0 {
            bump(&mut self.offered_events, at, events as u64);
            bump(&mut self.offered_requests, at, 1);
        }
    }

    /// The tier committed a request of `events` events at `at`.
    pub fn accepted(&mut self, at: Micros, events: usize) {
        if events > 0 {
            bump(&mut self.accepted_events, at, events as u64);
            bump(&mut self.accepted_requests, at, 1);
        }
    }

    /// The state at the start of each second.
    pub fn sample(&mut self, pending: u64, capacity: f64) {
        self.pending.push(pending);
        self.capacity.push(capacity);
    }

    /// Adds the offered and accepted counts of `other` (a shard's) to these.
    pub fn add(&mut self, other: &Self) {
        fn add(into: &mut Vec<u64>, from: &[u64]) {
            if into.len() < from.len() {
                into.resize(from.len(), 0);
            }
            for (into, from) in into.iter_mut().zip(from) {
                *into += from;
            }
        }
        add(&mut self.offered_events, &other.offered_events);
        add(&mut self.offered_requests, &other.offered_requests);
        add(&mut self.accepted_events, &other.accepted_events);
        add(&mut self.accepted_requests, &other.accepted_requests);
    }

    fn sum(series: &[u64], from: usize, to: usize) -> u64 {
        series.iter().take(to).skip(from).sum()
    }
}

/// A histogram of latencies in buckets 1 % apart, for percentiles of millions of
/// changes in a few kilobytes.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    buckets: Vec<u64>,
    count: u64,
}

const GROWTH: f64 = 1.01;

impl Latencies {
    /// Adds one latency.
    pub fn add(&mut self, latency: Micros) {
        let millis = latency as f64 / 1_000.0;
        let bucket = ((millis + 1.0).ln() / GROWTH.ln()).ceil() as usize;
        if self.buckets.len() <= bucket {
            self.buckets.resize(bucket + 1, 0);
        }
        self.buckets[bucket] += 1;
        self.count += 1;
    }

    /// Adds the latencies of `other`.
    pub fn merge(&mut self, other: &Self) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (into, from) in self.buckets.iter_mut().zip(&other.buckets) {
            *into += from;
        }
        self.count += other.count;
    }

    /// The `share` percentile (0.99 for p99), in seconds (`None` without latencies).
    pub fn percentile(&self, share: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (share * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let millis = GROWTH.powf(bucket as f64) - 1.0;
                return Some(millis / 1_000.0);
            }
        }
        None
    }
}

/// How one policy did in one scenario: the figures of docs/fleet.md.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `headwater`, `seed-loop` or `no-jitter`.
    pub name: String,
    /// Whether the fleet's pending fell to two seconds of load after recovery.
    pub drained: bool,
    /// Time from recovery to drained ÷ the ideal `B / (C − L)` (at the end of the run if
    /// it did not drain).
    pub drain_ratio: Option<f64>,
    /// The most events/s offered in any 10 s window from recovery until drained ÷ C.
    pub peak_offered_ratio: f64,
    /// The same for requests with events, ÷ the requests/s of full batches the tier
    /// accepts when saturated (C ÷ `transaction_capacity`).
    pub peak_offered_requests_ratio: f64,
    /// Requests with events sent ÷ those the tier committed, from recovery until
    /// drained.
    pub amplification: Option<f64>,
    /// p99 of capture-to-acknowledgement latency of changes captured after recovery, in
    /// seconds (changes still waiting at the end count with their wait so far).
    pub fresh_p99_s: Option<f64>,
    /// When the last client's pre-recovery backlog was acknowledged, after recovery ÷
    /// the ideal.
    pub last_client_ratio: Option<f64>,
    /// Changes neither delivered, nor waiting, nor dead-lettered (must be 0).
    pub lost: u64,
    /// Commits of a change already committed.
    pub duplicates: u64,
    /// First commits of a change after a later change of its record (must be 0).
    pub reordered: u64,
    /// Changes dead-lettered.
    pub dead_lettered: u64,
    /// The fleet's pending changes at recovery (B).
    pub backlog_at_recovery: u64,
    /// The ideal drain time `B / (C − L)`, in seconds.
    pub ideal_drain_s: Option<f64>,
    /// Seconds from recovery until drained (or until the end).
    pub drain_s: Option<f64>,
    /// Requests with events sent over the whole run.
    pub requests: u64,
    /// Changes captured over the whole run.
    pub captured: u64,
    /// Seconds of virtual time simulated.
    pub simulated_s: f64,
    /// Seconds of wall time the run took.
    pub wall_seconds: f64,
}

/// What the summary is computed from, besides the series.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// When the fleet recovered (the start of the window measured).
    pub recovery: Micros,
    /// When it drained, if it did.
    pub drained_at: Option<Micros>,
    /// When the run ended.
    pub end: Micros,
    /// The fleet's pending at recovery.
    pub backlog: u64,
    /// When the last client's backlog was done (`None`: some never was).
    pub last_backlog_done: Option<Micros>,
    /// Whether there was anything to recover from.
    pub has_recovery: bool,
}

/// The figures of a run.
pub fn summarize(
    name: &str,
    series: &Series,
    outcome: &Outcome,
    capacity: f64,
    load: f64,
    transaction_capacity: usize,
) -> Summary {
    let second = |at: Micros| usize::try_from(at / SECOND).unwrap_or(usize::MAX);
    let from = second(outcome.recovery);
    let until = outcome.drained_at.unwrap_or(outcome.end);
    let to = second(until).max(from + 1);
    let ideal = (outcome.has_recovery && outcome.backlog > 0 && capacity > load)
        .then(|| outcome.backlog as f64 / (capacity - load));
    let since_recovery = |at: Micros| at.saturating_sub(outcome.recovery) as f64 / SECOND as f64;
    let window = 10;
    let peak = |values: &[u64]| -> f64 {
        let last = to.saturating_sub(window).max(from);
        (from..=last)
            .map(|start| Series::sum(values, start, start + window))
            .max()
            .unwrap_or(0) as f64
            / window as f64
    };
    let sent = Series::sum(&series.offered_requests, from, to);
    let accepted = Series::sum(&series.accepted_requests, from, to);
    let full_batches_per_s = capacity / transaction_capacity.max(1) as f64;
    Summary {
        name: name.into(),
        drained: outcome.drained_at.is_some(),
        drain_ratio: ideal.map(|ideal| since_recovery(until) / ideal),
        peak_offered_ratio: peak(&series.offered_events) / capacity,
        peak_offered_requests_ratio: peak(&series.offered_requests) / full_batches_per_s,
        amplification: (accepted > 0).then(|| sent as f64 / accepted as f64),
        fresh_p99_s: None,
        last_client_ratio: ideal
            .map(|ideal| since_recovery(outcome.last_backlog_done.unwrap_or(outcome.end)) / ideal),
        lost: 0,
        duplicates: 0,
        reordered: 0,
        dead_lettered: 0,
        backlog_at_recovery: outcome.backlog,
        ideal_drain_s: ideal,
        drain_s: outcome.has_recovery.then(|| since_recovery(until)),
        requests: series.offered_requests.iter().sum(),
        captured: 0,
        simulated_s: outcome.end as f64 / SECOND as f64,
        wall_seconds: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_a_percent() {
        let mut latencies = Latencies::default();
        assert_eq!(latencies.percentile(0.99), None);
        for millis in 1..=1_000 {
            latencies.add(millis * 1_000);
        }
        let p99 = latencies.percentile(0.99).unwrap();
        assert!((p99 - 0.990).abs() < 0.011, "{p99}");
        let p50 = latencies.percentile(0.5).unwrap();
        assert!((p50 - 0.500).abs() < 0.006, "{p50}");
    }

    #[test]
    fn the_figures_follow_their_definitions() {
        let mut series = Series::default();
        // Recovery at 100 s; 200 events/s offered in 20-event requests for 20 s, half
        // of them committed.
        for second in 100..120 {
            for request in 0..10 {
                let at = second * SECOND + request;
                series.offered(at, 20);
                if request % 2 == 0 {
                    series.accepted(at, 20);
                }
            }
        }
        let outcome = Outcome {
            recovery: 100 * SECOND,
            drained_at: Some(120 * SECOND),
            end: 180 * SECOND,
            backlog: 1_000,
            last_backlog_done: Some(110 * SECOND),
            has_recovery: true,
        };
        let summary = summarize("headwater", &series, &outcome, 150.0, 100.0, 100);
        assert_eq!(summary.ideal_drain_s, Some(20.0));
        assert_eq!(summary.drain_ratio, Some(1.0));
        assert!((summary.peak_offered_ratio - 200.0 / 150.0).abs() < 1e-9);
        assert!((summary.peak_offered_requests_ratio - 10.0 / 1.5).abs() < 1e-9);
        assert_eq!(summary.amplification, Some(2.0));
        assert_eq!(summary.last_client_ratio, Some(0.5));
        assert!(summary.drained);
    }
}
