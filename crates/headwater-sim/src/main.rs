//! `headwater-sim SCENARIO --clients N [--seed S] [--json] [--plot DIR]`: runs a fleet
//! through a scenario under each policy and prints the figures side by side.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use headwater_core::engine::SyncConfig;
use headwater_sim::plot::{self, Line};
use headwater_sim::report::{self, Report};
use headwater_sim::{Policy, Scenario, simulate_on};
use indicatif::{ProgressBar, ProgressStyle};

/// A hundred thousand machines allocate and free small buffers all the time; mimalloc
/// takes a fifth off the run time that glibc's allocator spends.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Simulates a fleet of headwater clients against a tier of Flume agents.
#[derive(Debug, Parser)]
#[command(name = "headwater-sim", version)]
struct Args {
    /// A preset (steady, outage, partial, brownout, mass-start, slow-tier, retry-after)
    /// or the path of a JSON scenario file.
    scenario: String,
    /// How many clients.
    #[arg(long)]
    clients: Option<usize>,
    /// The seed of every random draw.
    #[arg(long)]
    seed: Option<u64>,
    /// Print the report as one JSON object on the last line of standard output.
    #[arg(long)]
    json: bool,
    /// Write plots (SVG and PNG) into this folder.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// Run only these policies (headwater, seed-loop, no-jitter); all by default.
    #[arg(long = "policy", value_name = "NAME")]
    policies: Vec<String>,
    /// Write every policy's per-second series (offered and accepted events and
    /// requests, backlog, capacity) to this CSV file.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Exit 1 unless every policy lost nothing and reordered nothing, and headwater's
    /// fleet drained.
    #[arg(long)]
    check: bool,
    /// Exit 1 unless the report (wall times left out) equals this JSON file: a
    /// regression check of the delivery machine's behaviour in a fleet.
    #[arg(long, value_name = "FILE")]
    expect: Option<PathBuf>,
    /// Write the report (wall times left out) to this JSON file, for --expect.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Threads to run the fleet on (the result is the same on any number); the cores
    /// of this machine by default.
    #[arg(long)]
    threads: Option<usize>,
    /// A JSON file of `SyncConfig` settings for headwater's machines (as in
    /// docs/configuration.md; what it leaves out keeps its default).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Why a run did not pass.
enum Failure {
    /// The run could not be made (bad arguments, a scenario refused): exit 2.
    Setup(String),
    /// The run was made and a check failed: exit 1.
    Check(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self::Setup(message)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Setup(message)) => {
            eprintln!("headwater-sim: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Check(message)) => {
            eprintln!("headwater-sim: check failed: {message}");
            ExitCode::from(1)
        }
    }
}

/// The report as JSON, without what differs from run to run (wall times).
fn comparable(report: &Report<'_>) -> Result<serde_json::Value, String> {
    let mut value = serde_json::to_value(report).map_err(|error| error.to_string())?;
    if let Some(policies) = value.get_mut("policies").and_then(|p| p.as_array_mut()) {
        for policy in policies {
            if let Some(policy) = policy.as_object_mut() {
                policy.remove("wall_seconds");
            }
        }
    }
    Ok(value)
}

/// The fields where `got` differs from `expected`, by path.
fn differences(
    expected: &serde_json::Value,
    got: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (expected, got) {
        (Value::Object(a), Value::Object(b)) => {
            for key in a.keys().chain(b.keys().filter(|key| !a.contains_key(*key))) {
                let here = format!("{path}.{key}");
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => differences(x, y, &here, out),
                    (x, y) => out.push(format!("{here}: expected {x:?}, got {y:?}")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (index, (x, y)) in a.iter().zip(b).enumerate() {
                differences(x, y, &format!("{path}[{index}]"), out);
            }
        }
        // A figure read back from JSON may differ in its last bit (serde_json's fast
        // float parser): equal within a few units in the last place is equal.
        (Value::Number(a), Value::Number(b))
            if a.as_f64()
                .zip(b.as_f64())
                .is_some_and(|(a, b)| (a - b).abs() <= 1e-12 * a.abs().max(b.abs())) => {}
        (a, b) if a != b => out.push(format!("{path}: expected {a}, got {b}")),
        _ => {}
    }
}

fn run(args: Args) -> Result<(), Failure> {
    let mut scenario = Scenario::open(&args.scenario).map_err(|error| error.to_string())?;
    if let Some(clients) = args.clients {
        scenario.clients = clients;
    }
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    scenario.validate().map_err(|error| error.to_string())?;
    let policies = if args.policies.is_empty() {
        Policy::ALL.to_vec()
    } else {
        args.policies
            .iter()
            .map(|name| {
                Policy::parse(name).ok_or_else(|| {
                    format!("no policy {name:?}: the policies are headwater, seed-loop, no-jitter")
                })
            })
            .collect::<Result<_, _>>()?
    };
    let base: SyncConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
            serde_json::from_str(&text)
                .map_err(|error| format!("{} is not a valid SyncConfig: {error}", path.display()))?
        }
        None => SyncConfig::default(),
    };
    let mut runs = Vec::new();
    for policy in policies {
        let bar = ProgressBar::new(scenario.duration_s as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>10} {bar:40} {pos}/{len} s simulated ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(policy.name());
        let threads = args.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        });
        let run = simulate_on(&scenario, policy, &base, threads, &mut |at| {
            bar.set_position(at as u64);
        })
        .map_err(|error| error.to_string())?;
        bar.finish_and_clear();
        runs.push(run);
    }
    let summaries: Vec<_> = runs.iter().map(|run| run.summary.clone()).collect();
    print!("{}", report::table(&scenario, &summaries));
    if let Some(folder) = &args.plot {
        let lines: Vec<Line<'_>> = runs
            .iter()
            .map(|run| Line {
                name: &run.summary.name,
                series: &run.series,
            })
            .collect();
        match plot::write(folder, &scenario, &lines) {
            Ok(paths) => {
                for path in paths {
                    println!("plot: {}", path.display());
                }
            }
            Err(error) => eprintln!("headwater-sim: {error}"),
        }
    }
    if let Some(path) = &args.csv {
        let mut text = String::from(
            "policy,second,offered_events,offered_requests,accepted_events,accepted_requests,pending,capacity\n",
        );
        for run in &runs {
            let series = &run.series;
            let at = |values: &[u64], second: usize| values.get(second).copied().unwrap_or(0);
            for second in 0..series.pending.len() {
                text.push_str(&format!(
                    "{},{second},{},{},{},{},{},{}\n",
                    run.summary.name,
                    at(&series.offered_events, second),
                    at(&series.offered_requests, second),
                    at(&series.accepted_events, second),
                    at(&series.accepted_requests, second),
                    series.pending[second],
                    series.capacity[second],
                ));
            }
        }
        std::fs::write(path, text)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    }
    let report = Report::new(&scenario, &summaries);
    if let Some(path) = &args.record {
        let text = serde_json::to_string_pretty(&comparable(&report)?)
            .map_err(|error| error.to_string())?;
        std::fs::write(path, text + "\n")
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    }
    if args.json {
        let line = serde_json::to_string(&report).map_err(|error| error.to_string())?;
        println!("{line}");
    }
    if let Some(path) = &args.expect {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let expected: serde_json::Value = serde_json::from_str(&text)
            .map_err(|error| format!("{} is not JSON: {error}", path.display()))?;
        let mut found = Vec::new();
        differences(&expected, &comparable(&report)?, "", &mut found);
        if !found.is_empty() {
            return Err(Failure::Check(format!(
                "the report differs from {} (rerun with --record to accept a change that is explained):\n  {}",
                path.display(),
                found.join("\n  ")
            )));
        }
    }
    if args.check {
        let mut broken = Vec::new();
        for summary in &summaries {
            if summary.lost > 0 {
                broken.push(format!("{} lost {} changes", summary.name, summary.lost));
            }
            if summary.reordered > 0 {
                broken.push(format!(
                    "{} reordered {} changes",
                    summary.name, summary.reordered
                ));
            }
            if summary.name == Policy::Headwater.name()
                && scenario.recovery_s().is_some()
                && !summary.drained
            {
                broken.push("headwater's fleet did not drain".into());
            }
        }
        if !broken.is_empty() {
            return Err(Failure::Check(broken.join("; ")));
        }
    }
    Ok(())
}
