//! The `headwater` binary as a user runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use headwater_mock_flume::{MockConfig, MockFault, MockFlume};

fn headwater() -> Command {
    Command::new(env!("CARGO_BIN_EXE_headwater"))
}

fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("headwater-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

/// Runs `headwater send --to URL ARGS FILE` with `contents` as the file, and a state
/// of its own.
async fn send(url: &str, args: &[&str], name: &str, contents: &str) -> std::process::Output {
    let file = temp_file(name, contents);
    let state = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_headwater"))
        .args(["send", "--to", url, "--state"])
        .arg(state.path().join("state.db"))
        .args(args)
        .arg(&file)
        .output()
        .await
        .unwrap();
    std::fs::remove_file(file).unwrap();
    output
}

#[test]
fn demo_delivers_everything_and_prints_one_json_object() {
    let output = headwater()
        .args([
            "demo",
            "--changes",
            "3000",
            "--fault-rate",
            "0.2",
            "--seed",
            "7",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "exactly one line on stdout: {stdout}"
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for key in [
        "captured",
        "delivered_unique",
        "duplicates",
        "dead_lettered",
        "requests",
        "retries",
        "elapsed_ms",
        "events_per_sec",
    ] {
        assert!(summary.get(key).is_some(), "{key} missing from {summary}");
    }
    assert_eq!(summary["captured"], 3000);
    assert_eq!(summary["delivered_unique"], 3000);
    assert_eq!(summary["dead_lettered"], 0);
    assert!(
        summary["retries"].as_u64().unwrap() > 0,
        "faults were injected"
    );
}

#[test]
fn demo_rejects_a_bad_fault_rate() {
    let output = headwater()
        .args(["demo", "--fault-rate", "1.5"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--fault-rate must be between 0 and 1")
    );
}

#[tokio::test]
async fn send_delivers_a_file_through_the_engine() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    let lines: String = (0..250)
        .map(|i| format!("{{\"collection\":\"todos\",\"key\":\"{i}\",\"op\":\"insert\",\"value\":{{\"n\":{i}}}}}\n"))
        .collect();
    let file = temp_file("valid.jsonl", &lines);
    let state = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_headwater"))
        .args([
            "send",
            "--to",
            flume.url(),
            "--json",
            "--header",
            "x-demo: 1",
            "--state",
        ])
        .arg(state.path().join("state.db"))
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["delivered_unique"], 250);
    assert_eq!(summary["duplicates"], serde_json::Value::Null);
    assert_eq!(flume.unique_ids(), 250);
    let first = &flume.events()[0];
    assert_eq!(first.headers["collection"], "todos");
    assert_eq!(first.headers["source"], "headwater-cli");
    assert_eq!(first.body, r#"{"n":0}"#);
}

#[tokio::test]
async fn send_refuses_a_malformed_file_and_sends_nothing() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    let output = send(
        flume.url(),
        &[],
        "invalid.jsonl",
        "{\"collection\":\"c\",\"key\":\"1\",\"op\":\"insert\",\"value\":1}\n{oops\n{\"collection\":\"c\",\"key\":\"2\",\"op\":\"insert\"}\n",
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 2:") && stderr.contains("line 3:"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was sent"), "{stderr}");
    assert_eq!(flume.requests(), 0);
}

#[tokio::test]
async fn send_stops_with_the_reason_when_flume_refuses_the_configuration() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    flume.push_fault(MockFault::Status(404));
    let output = send(
        flume.url(),
        &[],
        "blocked.jsonl",
        "{\"collection\":\"c\",\"key\":\"1\",\"op\":\"delete\"}\n",
    )
    .await;
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("HTTP 404") && stderr.contains("1 changes not delivered"),
        "{stderr}"
    );
}

#[test]
fn send_names_a_bad_url() {
    let file = temp_file("url.jsonl", "");
    let output = headwater()
        .args(["send", "--to", "flume:5140"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a valid http or https URL"));
    std::fs::remove_file(file).unwrap();
}

#[tokio::test]
async fn mock_flume_serves_until_stopped() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_headwater"))
        .args([
            "mock-flume",
            "--bind",
            "127.0.0.1:0",
            "--transaction-capacity",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let client = reqwest::Client::new();
    let post = |body: &'static str| {
        client
            .post(url.trim())
            .header("content-type", "application/json; charset=UTF-8")
            .body(body)
            .send()
    };
    assert_eq!(post(r#"[{"body":"a"}]"#).await.unwrap().status(), 200);
    assert_eq!(post(r#"[{},{},{}]"#).await.unwrap().status(), 503);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The probe of the durability issue: `send` killed with SIGKILL partway through 5,000
/// lines to a slow Flume (the sink takes 300 events/s), then run again on the same
/// file: each line arrives under one id only, the one of its first capture.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_killed_partway_resumes_under_the_same_ids() {
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("sink.jsonl");
    let flume = MockFlume::start(MockConfig {
        drain_rate: Some(300.0),
        sink_file: Some(sink.clone()),
        retain_events: false,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let input = dir.path().join("changes.jsonl");
    let lines: String = (0..5000)
        .map(|i| format!("{{\"collection\":\"todos\",\"key\":\"{i}\",\"op\":\"insert\",\"value\":{{\"n\":{i}}}}}\n"))
        .collect();
    std::fs::write(&input, lines).unwrap();
    let state = dir.path().join("state.db");
    let send = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_headwater"))
            .args(["send", "--to", flume.url(), "--json", "--state"])
            .arg(&state)
            .arg(&input)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let mut first = send();
    tokio::time::sleep(Duration::from_secs(4)).await;
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    let delivered_before = flume.unique_ids();
    assert!(
        delivered_before > 0 && delivered_before < 5000,
        "killed partway: {delivered_before} delivered"
    );
    let second = send().wait_with_output().await.unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(
        summary["resumed"], 5000,
        "the first run had captured every line"
    );
    let mut ids_per_key: std::collections::HashMap<String, std::collections::HashSet<String>> =
        Default::default();
    for line in std::fs::read_to_string(&sink).unwrap().lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        ids_per_key
            .entry(event["headers"]["key"].as_str().unwrap().to_owned())
            .or_default()
            .insert(event["headers"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids_per_key.len(), 5000, "every line arrived");
    assert!(
        ids_per_key.values().all(|ids| ids.len() == 1),
        "a line arrived under two ids"
    );
    let distinct: usize = ids_per_key
        .values()
        .map(std::collections::HashSet::len)
        .sum();
    assert_eq!(distinct, 5000);
}

/// The pipelining issue's check: with four requests in flight and a tenth of them
/// meeting a fault (503, 502, 504, slow answers, connections dropped before or after
/// the commit), each key's changes still arrive in capture order, counting first
/// copies, and every line arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_under_faults_keeps_each_keys_changes_in_capture_order() {
    let flume = MockFlume::start(MockConfig {
        random_faults: Some(headwater_mock_flume::RandomFaults::network(0.1, 7)),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    const KEYS: usize = 20;
    const PER_KEY: usize = 150;
    let lines: String = (0..KEYS * PER_KEY)
        .map(|i| {
            format!(
                "{{\"collection\":\"todos\",\"key\":\"k{}\",\"op\":\"update\",\"value\":{{\"n\":{}}}}}\n",
                i % KEYS,
                i / KEYS
            )
        })
        .collect();
    let output = send(
        flume.url(),
        &["--json", "--batch-size", "50", "--max-in-flight", "4"],
        "ordered.jsonl",
        &lines,
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut seen = std::collections::HashSet::new();
    let mut last_per_key: std::collections::HashMap<String, i64> = Default::default();
    let mut first_copies = 0;
    for event in flume.events() {
        if !seen.insert(event.headers["id"].clone()) {
            continue;
        }
        first_copies += 1;
        let n = serde_json::from_str::<serde_json::Value>(&event.body).unwrap()["n"]
            .as_i64()
            .unwrap();
        let key = event.headers["key"].clone();
        if let Some(last) = last_per_key.insert(key.clone(), n) {
            assert_eq!(n, last + 1, "key {key}: change {n} arrived after {last}");
        } else {
            assert_eq!(n, 0, "key {key}: its first change to arrive was {n}");
        }
    }
    assert_eq!(first_copies, KEYS * PER_KEY, "every line arrived");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        summary["retries"].as_u64().unwrap() > 0,
        "the faults were met and retried: {summary}"
    );
}

/// `--route-by-key` over two agents: both take requests, and each key's changes all
/// reach one agent, in capture order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_route_by_key_keeps_each_key_on_one_agent_in_order() {
    let first = MockFlume::start(MockConfig::default()).await.unwrap();
    let second = MockFlume::start(MockConfig::default()).await.unwrap();
    const KEYS: usize = 40;
    const PER_KEY: usize = 25;
    let lines: String = (0..KEYS * PER_KEY)
        .map(|i| {
            format!(
                "{{\"collection\":\"todos\",\"key\":\"k{}\",\"op\":\"update\",\"value\":{{\"n\":{}}}}}\n",
                i % KEYS,
                i / KEYS
            )
        })
        .collect();
    let both = format!("{},{}", first.url(), second.url());
    let output = send(
        &both,
        &["--json", "--route-by-key", "--batch-size", "20"],
        "routed.jsonl",
        &lines,
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut agent_of_key: std::collections::HashMap<String, usize> = Default::default();
    for (agent, flume) in [&first, &second].into_iter().enumerate() {
        let mut last_per_key: std::collections::HashMap<String, i64> = Default::default();
        for event in flume.events() {
            let key = event.headers["key"].clone();
            let n = serde_json::from_str::<serde_json::Value>(&event.body).unwrap()["n"]
                .as_i64()
                .unwrap();
            let owner = *agent_of_key.entry(key.clone()).or_insert(agent);
            assert_eq!(owner, agent, "key {key} reached both agents");
            let expected = last_per_key.get(&key).map_or(0, |last| last + 1);
            assert_eq!(
                n, expected,
                "key {key}: change {n} arrived after {expected}"
            );
            last_per_key.insert(key, n);
        }
        assert!(flume.unique_ids() > 0, "agent {agent} took no requests");
    }
    assert_eq!(first.unique_ids() + second.unique_ids(), KEYS * PER_KEY);
}

fn numbered_lines(count: usize) -> String {
    (0..count)
        .map(|i| format!("{{\"collection\":\"todos\",\"key\":\"{i}\",\"op\":\"insert\",\"value\":{{\"n\":{i}}}}}\n"))
        .collect()
}

/// Runs `send --json` on `input` with `state`, returning the exit code, the summary
/// and stderr.
async fn send_with_state(
    url: &str,
    input: &std::path::Path,
    state: &std::path::Path,
) -> (Option<i32>, serde_json::Value, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_headwater"))
        .args(["send", "--to", url, "--json", "--state"])
        .arg(state)
        .arg(input)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let summary = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("no JSON summary ({error}): {stderr}"));
    (output.status.code(), summary, stderr)
}

/// The evidence issue's probe: a server that answers 500 to every request for a while
/// (a proxy during a deploy) costs retries, never data. Before the evidence rule this
/// dead-lettered all 300 changes in under two seconds.
#[tokio::test]
async fn a_flume_that_answers_500_to_everything_for_a_while_condemns_nothing() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    for _ in 0..12 {
        flume.push_fault(MockFault::Status(500));
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("changes.jsonl");
    std::fs::write(&input, numbered_lines(300)).unwrap();
    let (code, summary, stderr) =
        send_with_state(flume.url(), &input, &dir.path().join("state.db")).await;
    assert_eq!(code, Some(0), "{summary} {stderr}");
    assert_eq!(summary["dead_lettered"], 0, "{summary}");
    assert_eq!(summary["delivered_unique"], 300, "{summary}");
    assert!(summary["retries"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(flume.unique_ids(), 300);
    assert_eq!(flume.clear_faults(), 0, "every 500 was met");
}

/// A 400 to everything is a proxy or configuration problem, not 300 bad changes: `send`
/// stops blocked (exit 3) with every change kept, and a rerun after the fix delivers
/// them all under their first ids.
#[tokio::test]
async fn a_flume_that_answers_400_to_everything_blocks_and_a_rerun_delivers_all() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    for _ in 0..1000 {
        flume.push_fault(MockFault::Status(400));
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("changes.jsonl");
    std::fs::write(&input, numbered_lines(300)).unwrap();
    let state = dir.path().join("state.db");
    let (code, summary, stderr) = send_with_state(flume.url(), &input, &state).await;
    assert_eq!(code, Some(3), "blocked: {summary} {stderr}");
    assert_eq!(summary["dead_lettered"], 0, "{summary}");
    assert_eq!(flume.unique_ids(), 0);
    assert!(stderr.contains("HTTP 400"), "{stderr}");

    assert!(flume.clear_faults() > 0);
    let (code, summary, stderr) = send_with_state(flume.url(), &input, &state).await;
    assert_eq!(code, Some(0), "{summary} {stderr}");
    assert_eq!(summary["dead_lettered"], 0, "{summary}");
    assert_eq!(summary["resumed"], 300, "{summary}");
    assert_eq!(flume.unique_ids(), 300);
}

/// A `--header` value (a proxy's credentials) appears in no output, even with debug
/// logging and an error to report.
#[tokio::test]
async fn header_values_never_appear_in_output() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    flume.push_fault(MockFault::Status(401));
    let file = temp_file(
        "secret.jsonl",
        "{\"collection\":\"c\",\"key\":\"1\",\"op\":\"delete\"}\n",
    );
    let state = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_headwater"))
        .env("RUST_LOG", "trace")
        .args([
            "send",
            "--to",
            flume.url(),
            "--header",
            "authorization: Bearer s3cret-token",
        ])
        .arg("--state")
        .arg(state.path().join("state.db"))
        .arg(&file)
        .output()
        .await
        .unwrap();
    std::fs::remove_file(file).unwrap();
    assert_eq!(output.status.code(), Some(3));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(all.contains("401"), "{all}");
    assert!(!all.contains("s3cret"), "{all}");
}

/// `send --metrics-addr` serves Prometheus text during the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_serves_prometheus_metrics_while_it_runs() {
    let flume = MockFlume::start(MockConfig {
        drain_rate: Some(400.0),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("changes.jsonl");
    std::fs::write(&input, numbered_lines(1500)).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_headwater"))
        .args(["send", "--to", flume.url(), "--json", "--metrics-addr"])
        .arg(addr.to_string())
        .arg("--state")
        .arg(dir.path().join("state.db"))
        .arg(&input)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://{addr}/metrics");
    let mut text = String::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(response) = reqwest::get(&url).await {
            text = response.text().await.unwrap_or_default();
            if text.contains("headwater_delivery_latency_seconds")
                && text.contains("outcome=\"accepted\"")
            {
                break;
            }
        }
    }
    for series in [
        "headwater_pending_changes{source=\"headwater-cli\"}",
        "headwater_oldest_pending_age_seconds",
        "headwater_in_flight_limit",
        "headwater_requests_total{source=\"headwater-cli\",outcome=\"accepted\"}",
        "headwater_retries_total",
        "headwater_delivery_latency_seconds",
        "headwater_stalled",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    assert!(child.wait().await.unwrap().success());
}

/// `--max-rate` paces the run: 600 changes at 300 per second cannot be delivered in
/// much under two seconds, and are not all delivered half a second in (unpaced, the
/// mock takes them all in a few milliseconds). Both checks hold however slow the
/// machine is: pacing is a floor on the time, never a promise of speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_with_max_rate_spreads_the_changes_over_time() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("changes.jsonl");
    std::fs::write(&input, numbered_lines(600)).unwrap();
    let started = std::time::Instant::now();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_headwater"))
        .args(["send", "--to", flume.url(), "--json", "--max-rate", "300"])
        .arg("--state")
        .arg(dir.path().join("state.db"))
        .arg(&input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let early = flume.unique_ids();
    let output = child.wait_with_output().await.unwrap();
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(flume.unique_ids(), 600);
    // At most the first chunk (30) and half a second's worth (150) by then.
    assert!(early <= 300, "{early} changes delivered after 0.5 s");
    // The last chunk of 30 is due at (600 - 30) / 300 = 1.9 s.
    assert!(
        elapsed >= Duration::from_millis(1800),
        "done in {elapsed:?}"
    );
}

#[test]
fn send_refuses_a_max_rate_that_is_not_above_zero() {
    let file = temp_file("rate.jsonl", &numbered_lines(1));
    for rate in ["0", "nan"] {
        let output = headwater()
            .args(["send", "--to", "http://127.0.0.1:9/", "--max-rate", rate])
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "--max-rate {rate}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("--max-rate must be a number"),
            "--max-rate {rate}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::remove_file(file).unwrap();
}

/// `headwater send … | head -c 0`: the reader is gone before the summary is written.
/// The delivery is done; the closed pipe is no panic (exit 101) and changes no code.
#[tokio::test]
async fn send_to_a_closed_stdout_exits_as_the_delivery_did() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    let lines = numbered_lines(20);
    let file = temp_file("closed-stdout.jsonl", &lines);
    let state = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_headwater"))
        .args(["send", "--to", flume.url(), "--state"])
        .arg(state.path().join("state.db"))
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(flume.unique_ids(), 20);
    std::fs::remove_file(file).unwrap();
}

#[test]
fn send_refuses_a_header_the_http_layer_owns() {
    let file = temp_file("owned-header.jsonl", "");
    let state = tempfile::tempdir().unwrap();
    for header in [
        "Content-Length: 5",
        "Host: flume",
        "Transfer-Encoding: chunked",
    ] {
        let output = headwater()
            .args(["send", "--to", "http://127.0.0.1:9/", "--header", header])
            .arg("--state")
            .arg(state.path().join("state.db"))
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{header}: {stderr}");
        assert!(stderr.contains("HTTP layer"), "{header}: {stderr}");
    }
    std::fs::remove_file(file).unwrap();
}

/// A password in an endpoint URL is a credential: at trace level, through failed
/// connections and delivered batches, it appears in no output.
#[tokio::test]
async fn send_never_prints_a_password_from_a_url() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_url = format!("http://ops:s3cret-down@{}/", down.local_addr().unwrap());
    drop(down);
    let up_url = flume.url().replacen("http://", "http://ops:s3cret-up@", 1);
    let lines = numbered_lines(20);
    let file = temp_file("password.jsonl", &lines);
    let state = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_headwater"))
        .env("RUST_LOG", "trace")
        .args(["send", "--round-robin", "--batch-size", "1", "--to"])
        .arg(format!("{down_url},{up_url}"))
        .arg("--state")
        .arg(state.path().join("state.db"))
        .arg(&file)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(flume.unique_ids(), 20);
    assert!(
        stderr.contains("request failed"),
        "the down endpoint was tried: {stderr}"
    );
    assert!(stderr.contains("<redacted>@127.0.0.1"), "{stderr}");
    for output in [&stderr, &stdout] {
        assert!(!output.contains("s3cret"), "{output}");
    }

    let bad = headwater()
        .args(["send", "--to", "http://ops:s3cret-bad@flume:port:x/"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
    std::fs::remove_file(file).unwrap();
}

/// One state, one sender, whatever path names it: a symlink or a hard link to a state
/// in use is refused (exit 2), and every line reaches Flume once. Before the lock was
/// taken on the database file itself, each path had its own lock file and both runs
/// sent.
#[cfg(unix)]
#[tokio::test]
async fn a_state_in_use_is_refused_through_a_symlink_and_a_hard_link() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("changes.jsonl");
    std::fs::write(&input, numbered_lines(400)).unwrap();
    let state = dir.path().join("state.db");
    // 400 changes at 200/s: two seconds in which the state is in use.
    let mut first = tokio::process::Command::new(env!("CARGO_BIN_EXE_headwater"))
        .args(["send", "--to", flume.url(), "--max-rate", "200", "--state"])
        .arg(&state)
        .arg(&input)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if flume.unique_ids() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(flume.unique_ids() > 0, "the first run is sending");
    let symlink = dir.path().join("symlink.db");
    std::os::unix::fs::symlink(&state, &symlink).unwrap();
    let hard_link = dir.path().join("hard-link.db");
    std::fs::hard_link(&state, &hard_link).unwrap();
    // `--fresh` on the very path would empty the state under the running sender.
    for (other, fresh) in [(&symlink, false), (&hard_link, false), (&state, true)] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_headwater"))
            .args(["send", "--to", flume.url(), "--state"])
            .arg(other)
            .args(fresh.then_some("--fresh"))
            .arg(&input)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{}: {stderr}",
            other.display()
        );
        assert!(
            stderr.contains("another `headwater send` is using the state"),
            "{stderr}"
        );
    }
    assert!(first.wait().await.unwrap().success());
    assert_eq!(flume.unique_ids(), 400);
    assert_eq!(flume.event_count(), 400, "no line sent twice");
}

/// A Flume that is not there: the progress line names the cause in words and says that
/// `send` keeps retrying, instead of reading like a run that hangs.
#[test]
fn send_to_nothing_says_what_it_meets_and_that_it_retries() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let file = temp_file("nothing.jsonl", &numbered_lines(3));
    let state = tempfile::tempdir().unwrap();
    let mut child = headwater()
        .args(["send", "--to", &format!("http://{address}/"), "--state"])
        .arg(state.path().join("state.db"))
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A run that never prints what it meets must fail the test, not hang it: after a
    // minute the child is killed, its stderr ends, and the assertion below fails.
    let (done, watched) = std::sync::mpsc::channel::<()>();
    let pid = child.id().to_string();
    let watchdog = std::thread::spawn(move || {
        if watched.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = Command::new("kill").args(["-9", &pid]).status();
        }
    });
    let mut line = String::new();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    // The first progress line off a terminal comes after 5 s.
    while stderr.read_line(&mut line).unwrap() > 0 && !line.contains("retrying after") {}
    let _ = done.send(());
    watchdog.join().unwrap();
    let _ = child.kill();
    child.wait().unwrap();
    assert!(
        line.contains(&format!(
            "nothing listens at {address} (connection refused)"
        )),
        "{line}"
    );
    std::fs::remove_file(file).unwrap();

    let output = headwater()
        .args(["send", "--to", "http://[::1]:0/"])
        .arg(state.path().join("none.jsonl"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("port 0 cannot be connected to"), "{stderr}");
}

/// A state cut short (a copy that stopped, a bad restore) read as one holding fewer
/// changes: a rerun reported every line delivered with 0 requests, and exited 0. Now it
/// is named damaged, with what to do, and nothing is sent.
#[tokio::test]
async fn a_state_cut_short_is_named_damaged_and_nothing_is_sent() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("changes.jsonl");
    std::fs::write(&input, numbered_lines(3000)).unwrap();
    let state = dir.path().join("state.db");
    let (code, _, stderr) = send_with_state(flume.url(), &input, &state).await;
    assert_eq!(code, Some(0), "{stderr}");
    // Every page into the file, the log emptied: what is cut off below is nowhere else
    // (pages still in the log would be read from there, and the state would be whole).
    headwater::sqlite::rusqlite::Connection::open(&state)
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let length = std::fs::metadata(&state).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&state)
        .unwrap()
        .set_len(length / 2)
        .unwrap();
    let before = flume.event_count();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_headwater"))
        .args(["send", "--to", flume.url(), "--state"])
        .arg(&state)
        .arg(&input)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is damaged"), "{stderr}");
    assert!(stderr.contains("--fresh"), "{stderr}");
    assert!(output.stdout.is_empty(), "no summary");
    assert_eq!(flume.event_count(), before);
}

/// Standard input is read twice like a file (it is copied first): checked whole, then
/// captured, so a bad line there sends nothing either, and every bad line is counted.
#[tokio::test]
async fn send_reads_standard_input_and_counts_every_bad_line() {
    use tokio::io::AsyncWriteExt;
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let run = |input: String, name: &'static str| {
        let url = flume.url().to_owned();
        let state = state.path().join(name);
        async move {
            let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_headwater"))
                .args(["send", "--to", &url, "--json", "--state"])
                .arg(state)
                .arg("-")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input.as_bytes()).await.unwrap();
            drop(stdin);
            child.wait_with_output().await.unwrap()
        }
    };
    let mut bad = numbered_lines(100);
    for n in 0..25 {
        bad.push_str(&format!("not a change {n}\n"));
    }
    let output = run(bad, "bad.db").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("25 invalid line(s), nothing was sent (the first 20 shown)"),
        "{stderr}"
    );
    assert_eq!(flume.event_count(), 0);

    let output = run(numbered_lines(2500), "good.db").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["delivered_unique"], 2500, "{summary}");
    assert_eq!(flume.unique_ids(), 2500);
}

/// Runs `headwater dead-letters --state STATE ARGS`: the exit code, stdout and stderr.
fn dead_letters(state: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = headwater()
        .args(["dead-letters", "--state"])
        .arg(state)
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// One change a proxy in front of Flume refuses with 400 is isolated and set aside;
/// the operator lists it, requeues it (a rerun delivers it under its first id once the
/// proxy lets it through), or discards it.
#[tokio::test]
async fn dead_letters_are_listed_requeued_and_discarded() {
    let strict = MockFlume::start(MockConfig {
        refuse_containing: Some("POISON".into()),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("changes.jsonl");
    let mut lines = numbered_lines(20);
    lines.push_str(r#"{"collection":"todos","key":"bad","op":"insert","value":{"t":"POISON"}}"#);
    lines.push('\n');
    std::fs::write(&input, lines).unwrap();
    let state = dir.path().join("state.db");
    let (code, summary, stderr) = send_with_state(strict.url(), &input, &state).await;
    assert_eq!(code, Some(1), "{summary} {stderr}");
    assert_eq!(summary["dead_lettered"], 1, "{summary}");
    assert_eq!(strict.unique_ids(), 20);
    assert!(
        stderr.contains("headwater dead-letters --state"),
        "the summary says how to see them: {stderr}"
    );

    let (code, listed, _) = dead_letters(&state, &["list"]);
    assert_eq!(code, Some(0));
    let line = listed.lines().collect::<Vec<_>>();
    assert_eq!(line.len(), 1, "{listed}");
    assert!(line[0].starts_with("21\ttodos/bad insert ("), "{listed}");
    assert!(
        line[0].contains("400"),
        "the reason names the answer: {listed}"
    );
    let (code, json, _) = dead_letters(&state, &["list", "--json"]);
    assert_eq!(code, Some(0));
    let letter: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(letter["seq"], 21, "{json}");
    let id = letter["content"]["change"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the change and its id: {json}"))
        .to_owned();

    let (code, _, stderr) = dead_letters(&state, &["requeue", "7"]);
    assert_eq!(
        code,
        Some(1),
        "seq 7 was delivered, not set aside: {stderr}"
    );
    let (code, _, stderr) = dead_letters(&state, &["requeue", "21"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("requeued 1"), "{stderr}");

    let lenient = MockFlume::start(MockConfig::default()).await.unwrap();
    let (code, summary, stderr) = send_with_state(lenient.url(), &input, &state).await;
    assert_eq!(code, Some(0), "{summary} {stderr}");
    assert_eq!(summary["dead_lettered"], 0, "{summary}");
    let events = lenient.events();
    assert_eq!(events.len(), 1, "only the requeued change is sent");
    assert_eq!(events[0].headers["id"], id, "under its first id");

    let other = dir.path().join("other.db");
    let (code, _, _) = send_with_state(strict.url(), &input, &other).await;
    assert_eq!(code, Some(1));
    let (code, _, stderr) = dead_letters(&other, &["discard", "--all"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("discarded 1"), "{stderr}");
    let (code, listed, stderr) = dead_letters(&other, &["list"]);
    assert_eq!((code, listed.as_str()), (Some(0), ""), "{stderr}");
    let (code, summary, stderr) = send_with_state(strict.url(), &input, &other).await;
    assert_eq!(code, Some(0), "nothing is left to send: {summary} {stderr}");

    let (code, _, stderr) = dead_letters(&dir.path().join("missing.db"), &["list"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no state file there"), "{stderr}");
    assert!(
        !dir.path().join("missing.db").exists(),
        "nothing is created"
    );
    let (code, _, stderr) = dead_letters(&input, &["list"]);
    assert_eq!(code, Some(2), "a file that is not a state: {stderr}");
}

/// `send --check` reads the input as `send` would and sends nothing: no `--to` is
/// needed, and no state is made.
#[test]
fn send_check_validates_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("changes.jsonl");
    std::fs::write(&input, numbered_lines(25)).unwrap();
    let state = dir.path().join("state.db");
    let output = headwater()
        .args(["send", "--check", "--state"])
        .arg(&state)
        .arg(&input)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("25 changes, every line valid; nothing was sent"),
        "{stdout}"
    );
    assert!(!state.exists(), "no state is made");

    std::fs::write(&input, "{\"collection\":\"c\"}\n[1]\n").unwrap();
    let output = headwater()
        .args(["send", "--check", "--json"])
        .arg(&input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("line 1:") && stderr.contains("line 2: a JSON array"),
        "{stderr}"
    );

    let output = headwater()
        .args(["send", "--check", "--to", "ftp://flume/"])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "a URL given is checked too");
}

/// An input cut short while `send` reads it the second time stops the run with code 5
/// and says what to do, not that the state failed (code 4).
#[test]
fn an_input_that_changes_while_it_is_sent_stops_with_its_own_code() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let flume = runtime
        .block_on(MockFlume::start(MockConfig::default()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("changes.jsonl");
    // 10,000 lines (far more than the reader's buffer) taken in at 2,000 a second.
    std::fs::write(&input, numbered_lines(10_000)).unwrap();
    let mut child = headwater()
        .args(["send", "--to", flume.url(), "--max-rate", "2000", "--state"])
        .arg(dir.path().join("state.db"))
        .arg(&input)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut started = String::new();
    stderr.read_line(&mut started).unwrap();
    assert!(started.starts_with("sending 10000 changes"), "{started}");
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&input, "").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(5), "{rest}");
    assert!(
        rest.contains("the input changed while it was being sent"),
        "{rest}"
    );
    assert!(
        !rest.contains("failed, so delivery stopped"),
        "not a state failure: {rest}"
    );
    assert!(rest.contains("Put the input back"), "{rest}");
}

/// Bytes changed in a committed frame of the state's write-ahead log, with later
/// commits after it: SQLite would drop those commits in silence (and `send` resend what
/// Flume had acknowledged). The rerun names the state damaged and sends nothing.
#[tokio::test]
async fn a_state_whose_log_is_damaged_is_named_and_nothing_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let flume = MockFlume::start(MockConfig {
        drain_rate: Some(300.0),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let input = dir.path().join("changes.jsonl");
    std::fs::write(&input, numbered_lines(3000)).unwrap();
    let state = dir.path().join("state.db");
    let mut first = tokio::process::Command::new(env!("CARGO_BIN_EXE_headwater"))
        .args(["send", "--to", flume.url(), "--json", "--state"])
        .arg(&state)
        .arg(&input)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.start_kill().unwrap(); // SIGKILL: the log is left as it was
    first.wait().await.unwrap();
    let wal = dir.path().join("state.db-wal");
    let mut log = std::fs::read(&wal).unwrap();
    let page = u32::from_be_bytes([log[8], log[9], log[10], log[11]]) as usize;
    let frame = 24 + page;
    assert!(
        log.len() > 32 + 10 * frame,
        "the log holds commits: {} bytes",
        log.len()
    );
    log[32 + frame + 24 + 64] ^= 0x5a; // the page of the second frame
    std::fs::write(&wal, &log).unwrap();
    let requests = flume.requests();

    let (code, _, stderr) = {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_headwater"))
            .args(["send", "--to", flume.url(), "--json", "--state"])
            .arg(&state)
            .arg(&input)
            .output()
            .await
            .unwrap();
        (
            output.status.code(),
            output.stdout,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("is damaged: frame 2 of its write-ahead log is damaged"),
        "{stderr}"
    );
    assert_eq!(flume.requests(), requests, "nothing was sent");
}

/// The sample input docs/cli.md shows first for `send` (what an operator copies) is
/// delivered as it stands, and README's sample too.
#[tokio::test]
async fn the_documented_sample_inputs_are_delivered() {
    for (page, name, section) in [
        (
            include_str!("../../../docs/cli.md"),
            "docs/cli.md",
            "## `headwater send",
        ),
        (
            include_str!("../../../README.md"),
            "README.md",
            "## The `headwater` command",
        ),
    ] {
        let from = page
            .find(section)
            .unwrap_or_else(|| panic!("{name} has {section}"));
        let start = page[from..].find("```json\n").expect("a JSON block") + from + 8;
        let end = page[start..].find("```").expect("the block ends") + start;
        let sample = &page[start..end];
        let lines = sample
            .lines()
            .filter(|line| !line.trim().is_empty())
            .count();
        assert!(lines >= 2, "{name}: {sample}");
        let flume = MockFlume::start(MockConfig::default()).await.unwrap();
        let output = send(flume.url(), &["--json"], "sample.jsonl", sample).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{name}'s sample: {stderr}");
        assert_eq!(flume.unique_ids(), lines, "{name}: every line delivered");
    }
}

#[tokio::test]
async fn send_delivers_over_otlp_and_reports_a_partial_success() {
    let collector = MockFlume::start(MockConfig {
        drop_containing: Some("poison".into()),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let lines: String = (0..300)
        .map(|i| {
            let value = if i == 77 {
                "\"poison\"".to_owned()
            } else {
                format!("{{\"n\":{i}}}")
            };
            format!(
                "{{\"collection\":\"todos\",\"key\":\"{i}\",\"op\":\"insert\",\"value\":{value}}}\n"
            )
        })
        .collect();
    let url = collector.otlp_url();
    let output = send(
        &url,
        &[
            "--protocol",
            "otlp",
            "--service-name",
            "todo-app",
            "--otlp-encoding",
            "json",
            "--json",
        ],
        "otlp.jsonl",
        &lines,
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        summary["delivered_unique"], 300,
        "acknowledged, the dropped one too"
    );
    assert_eq!(summary["rejected_by_server"], 1);
    assert_eq!(collector.unique_ids(), 299);
    assert_eq!(collector.duplicates(), 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("dropped some of its records"),
        "the rejection is logged: {stderr}"
    );
    let first = collector
        .events()
        .into_iter()
        .find(|event| event.headers["key"] == "0")
        .unwrap();
    assert_eq!(first.body, r#"{"n":0}"#);
    assert_eq!(first.headers["op"], "insert");
}

#[test]
fn demo_over_otlp_delivers_everything() {
    let output = headwater()
        .args(["demo", "--protocol", "otlp", "--changes", "3000", "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["delivered_unique"], 3000);
    assert_eq!(summary["rejected_by_server"], 0);
}
