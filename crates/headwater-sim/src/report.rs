//! The report of a run: a table for people, one JSON line for programs.

use serde::Serialize;

use crate::metrics::Summary;
use crate::scenario::Scenario;

/// Everything a run of one scenario found, as `--json` prints it: the scenario's
/// parameters at the top level, the policies' figures in `policies`.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// The scenario's parameters.
    #[serde(flatten)]
    pub scenario: &'a Scenario,
    /// The tier's capacity C, events/s.
    pub capacity_events_per_s: f64,
    /// The fleet's steady load L, events/s.
    pub load_events_per_s: f64,
    /// When the fleet recovered, in seconds, if it had anything to recover from.
    pub recovery_s: Option<f64>,
    /// One entry per policy.
    pub policies: Vec<&'a Summary>,
}

impl<'a> Report<'a> {
    /// The report of `summaries` for `scenario`.
    pub fn new(scenario: &'a Scenario, summaries: &'a [Summary]) -> Self {
        Report {
            scenario,
            capacity_events_per_s: scenario.capacity(),
            load_events_per_s: scenario.load(),
            recovery_s: scenario.recovery_s(),
            policies: summaries.iter().collect(),
        }
    }
}

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |value| format!("{value:.2}"))
}

/// The figures as a table, one row per policy.
pub fn table(scenario: &Scenario, summaries: &[Summary]) -> String {
    let mut out = format!(
        "{}: {} clients, {} agents, C = {:.0} events/s, L = {:.0} events/s{}\n",
        scenario.name,
        scenario.clients,
        scenario.agents,
        scenario.capacity(),
        scenario.load(),
        scenario
            .recovery_s()
            .map(|at| format!(", recovery at {at:.0} s"))
            .unwrap_or_default(),
    );
    out.push_str(
        "policy      drained  drain  peak  peak req  amplif  fresh p99 s  last client  lost  dup  reord  wall s\n",
    );
    for summary in summaries {
        out.push_str(&format!(
            "{:<11} {:<7} {:>6} {:>5.2} {:>9.2} {:>7} {:>12} {:>12} {:>5} {:>4} {:>6} {:>7.1}\n",
            summary.name,
            if summary.drained { "yes" } else { "no" },
            ratio(summary.drain_ratio),
            summary.peak_offered_ratio,
            summary.peak_offered_requests_ratio,
            ratio(summary.amplification),
            summary
                .fresh_p99_s
                .map_or_else(|| "-".into(), |p99| format!("{p99:.1}")),
            ratio(summary.last_client_ratio),
            summary.lost,
            summary.duplicates,
            summary.reordered,
            summary.wall_seconds,
        ));
    }
    out
}
