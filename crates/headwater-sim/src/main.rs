//! `headwater-sim SCENARIO --clients N [--seed S] [--json] [--plot DIR]`: runs a fleet
//! through a scenario under each policy and prints the figures side by side.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use headwater_sim::plot::{self, Line};
use headwater_sim::report::{self, Report};
use headwater_sim::{Policy, Scenario, simulate};
use indicatif::{ProgressBar, ProgressStyle};

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
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("headwater-sim: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<(), String> {
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
        let run = simulate(&scenario, policy, &mut |at| bar.set_position(at as u64))
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
    if args.json {
        let report = Report::new(&scenario, &summaries);
        let line = serde_json::to_string(&report).map_err(|error| error.to_string())?;
        println!("{line}");
    }
    Ok(())
}
