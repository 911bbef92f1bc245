//! Small fleets through the presets: the invariants hold whatever the policy, runs are
//! deterministic from their seed, and the command line reports what it promises.

use std::process::Command;

use headwater_core::engine::SyncConfig;
use headwater_sim::{Policy, Run, Scenario, SimError, simulate_on};

/// One thread per run: the tests run side by side.
fn simulate(scenario: &Scenario, policy: Policy) -> Result<Run, SimError> {
    simulate_on(scenario, policy, &SyncConfig::default(), 1, &mut |_| {})
}

fn fleet(preset: &str, clients: usize) -> Scenario {
    let mut scenario = Scenario::preset(preset).expect("a preset");
    scenario.clients = clients;
    scenario
}

#[test]
fn nothing_is_lost_or_reordered_through_an_outage_or_a_brownout() {
    for preset in ["outage", "brownout", "retry-after"] {
        for policy in Policy::ALL {
            let scenario = fleet(preset, 60);
            let run = simulate(&scenario, policy).unwrap();
            let summary = &run.summary;
            assert_eq!(summary.lost, 0, "{preset} {}", summary.name);
            assert_eq!(summary.reordered, 0, "{preset} {}", summary.name);
            assert_eq!(
                summary.duplicates, 0,
                "no answer is lost: {preset} {}",
                summary.name
            );
            assert_eq!(summary.dead_lettered, 0, "{preset} {}", summary.name);
            // With 60 clients a channel holds 8 events: the seed loop's batches of up
            // to 100 never fit, by its design; headwater's machine shrinks its batches.
            if policy != Policy::SeedLoop {
                assert!(summary.drained, "{preset} {}: {summary:?}", summary.name);
            }
            assert!(summary.backlog_at_recovery > 0, "{preset}");
        }
    }
}

#[test]
fn lost_answers_make_duplicates_and_nothing_else() {
    let mut scenario = fleet("steady", 100);
    scenario.answer_loss = 0.02;
    scenario.duration_s = 300.0;
    let run = simulate(&scenario, Policy::Headwater).unwrap();
    assert!(run.summary.duplicates > 0, "{:?}", run.summary);
    assert_eq!(run.summary.lost, 0);
    assert_eq!(run.summary.reordered, 0);
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let scenario = fleet("outage", 60);
    let first = simulate(&scenario, Policy::Headwater).unwrap();
    let second = simulate(&scenario, Policy::Headwater).unwrap();
    let mut a = first.summary.clone();
    let mut b = second.summary.clone();
    a.wall_seconds = 0.0;
    b.wall_seconds = 0.0;
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert_eq!(first.series.offered_events, second.series.offered_events);
}

#[test]
fn the_result_does_not_depend_on_the_number_of_threads() {
    let scenario = fleet("retry-after", 90);
    let runs: Vec<Run> = [1, 3]
        .into_iter()
        .map(|threads| {
            simulate_on(
                &scenario,
                Policy::Headwater,
                &SyncConfig::default(),
                threads,
                &mut |_| {},
            )
            .unwrap()
        })
        .collect();
    let mut figures: Vec<_> = runs.iter().map(|run| run.summary.clone()).collect();
    for summary in &mut figures {
        summary.wall_seconds = 0.0;
    }
    assert_eq!(format!("{:?}", figures[0]), format!("{:?}", figures[1]));
    assert_eq!(
        runs[0].series.accepted_events,
        runs[1].series.accepted_events
    );
}

fn sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_headwater-sim"))
        .args(args)
        .output()
        .expect("headwater-sim runs")
}

#[test]
fn json_is_one_line_with_the_scenario_and_every_policy() {
    let output = sim(&["outage", "--clients", "40", "--seed", "3", "--json"]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let last = stdout.lines().last().unwrap();
    let report: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(report["name"], "outage");
    assert_eq!(report["clients"], 40);
    assert_eq!(report["seed"], 3);
    assert_eq!(report["agents"], 3);
    let policies = report["policies"].as_array().unwrap();
    let names: Vec<&str> = policies
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["headwater", "seed-loop", "no-jitter"]);
    for policy in policies {
        for field in [
            "drain_ratio",
            "drained",
            "peak_offered_ratio",
            "peak_offered_requests_ratio",
            "amplification",
            "fresh_p99_s",
            "last_client_ratio",
            "lost",
            "duplicates",
            "reordered",
            "wall_seconds",
        ] {
            assert!(policy.get(field).is_some(), "{field} missing from {policy}");
        }
    }
}

#[test]
fn a_bad_scenario_file_is_refused_naming_the_field() {
    let folder = std::env::temp_dir().join(format!("headwater-sim-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    for (text, named) in [
        (r#"{"agents": 0}"#, "agents"),
        (r#"{"capacity_per_client": -0.5}"#, "capacity_per_client"),
        (
            r#"{"duration_s": 600, "disruption": {"kind": "outage", "from_s": 60, "to_s": 700}}"#,
            "disruption.to_s",
        ),
        (r#"{"clients": 10, "colour": "blue"}"#, "colour"),
    ] {
        let path = folder.join("scenario.json");
        std::fs::write(&path, text).unwrap();
        let output = sim(&[path.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2), "{text}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{text}: {stderr}");
    }
    let output = sim(&["no-such-preset"]);
    assert_eq!(output.status.code(), Some(2));
    std::fs::remove_dir_all(&folder).ok();
}
