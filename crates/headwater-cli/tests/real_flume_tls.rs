//! `headwater send` to a real Flume 1.11 agent serving HTTPS from a keystore signed by
//! a private CA. Needs the agent that `FLUME_TLS=1 scripts/flume-agent.sh` starts;
//! `scripts/test.sh` starts it and runs this with `--ignored` when Java, Maven and
//! openssl are present.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start an agent with `FLUME_TLS=1 flume_start DIR` (scripts/flume-agent.sh)")
    })
}

/// `id` → how many times, from the file_roll sink's `{k=v, ...} body` lines.
fn ids_in_sink(sink: &Path, run: &str) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    let Ok(entries) = std::fs::read_dir(sink) else {
        return ids;
    };
    for entry in entries.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines().filter(|line| line.contains(run)) {
            let Some(headers) = line.strip_prefix('{').and_then(|l| l.split_once("} ")) else {
                continue;
            };
            for pair in headers.0.split(", ") {
                if let Some(id) = pair.strip_prefix("id=") {
                    *ids.entry(id.to_owned()).or_default() += 1;
                }
            }
        }
    }
    ids
}

fn send(url: &str, input: &Path, state: &Path, extra: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_headwater"))
        .args([
            "send",
            "--to",
            url,
            "--json",
            "--timeout-ms",
            "5000",
            "--state",
        ])
        .arg(state)
        .args(extra)
        .arg(input)
        .output()
        .unwrap()
}

#[test]
#[ignore = "needs a real Flume agent over HTTPS: scripts/test.sh starts one (FLUME_TLS=1 scripts/flume-agent.sh) and runs this with --ignored"]
fn send_over_https_with_the_private_ca_delivers_every_change_once() {
    let (url, ca, sink) = (
        var("HEADWATER_FLUME_URL"),
        var("HEADWATER_FLUME_CA"),
        PathBuf::from(var("HEADWATER_FLUME_SINK")),
    );
    assert!(url.starts_with("https://"), "{url}");
    let dir = tempfile::tempdir().unwrap();
    let run = format!("tls-run-{}", std::process::id());
    let input = dir.path().join("changes.jsonl");
    let lines: String = (0..1000)
        .map(|i| format!("{{\"collection\":\"{run}\",\"key\":\"{i}\",\"op\":\"insert\",\"value\":{{\"n\":{i}}}}}\n"))
        .collect();
    std::fs::write(&input, lines).unwrap();
    let state = dir.path().join("state.db");

    // Without the CA: blocked, with the cause named, nothing lost.
    let output = send(&url, &input, &state, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("certificate authority") && stderr.contains("--ca-cert"),
        "{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["dead_lettered"], 0, "{summary}");

    // With it: the same changes, under their first ids, each once.
    let output = send(&url, &input, &state, &["--ca-cert", &ca]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["resumed"], 1000, "{summary}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let ids = loop {
        let ids = ids_in_sink(&sink, &run);
        if ids.len() >= 1000 || Instant::now() > deadline {
            break ids;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(ids.len(), 1000, "every change arrived");
    assert!(ids.values().all(|&count| count == 1), "each id once");
}
