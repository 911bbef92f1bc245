//! A state written by an earlier release of `send` is carried forward on first open: it
//! upgrades in place, keeps the id of every change it holds, and resends nothing Flume
//! had acknowledged.
//!
//! `tests/fixtures/state-v1/` is a state written by `send` at SQLite schema version 1
//! (2026-12-07), in the outbox layout (every line copied into the state): 100 lines,
//! the first 30 acknowledged by Flume, then the outbox blocked by a 404 with 70 changes
//! pending. Beside it: the input, the ids Flume acknowledged, and the seq and id of each
//! pending change as the state held them. Versions since make new states in the lines
//! layout, so this fixture can no longer be written; it stays as it is.
//!
//! `tests/fixtures/state-lines-v1/` is the same run by the first version with the lines
//! layout (the input sent in place, ids derived from the state's seed and each line's
//! number): the state, the input, the ids acknowledged, and the seq and id under which
//! that version sends each of the 70 others. `write_the_lines_fixture` below writes it,
//! by hand, once per layout a release ships; a later version must open it as it stands
//! and send the same ids.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use headwater::sqlite::rusqlite;
use headwater_mock_flume::{MockConfig, MockFault, MockFlume};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-v1")
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn send(url: &str, state: &Path, input: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_headwater"))
        .args(["send", "--to", url, "--json", "--state"])
        .arg(state)
        .args(args)
        .arg(input)
        .output()
        .await
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), report)
}

#[tokio::test]
async fn a_state_from_schema_version_1_resumes_with_its_ids_and_resends_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (state, input, acked, pending) = copy_fixture(&fixture(), dir.path());
    assert_eq!(
        std::fs::read_to_string(&input).unwrap(),
        fixture_input(),
        "both fixtures send the same lines"
    );
    assert_eq!(
        (acked.len(), pending.len()),
        (30, 70),
        "the fixture as written"
    );

    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    let (code, report) = send(flume.url(), &state, &input, &[]).await;
    assert_eq!(code, Some(0), "{report}");
    let events = flume.events();
    let sent: Vec<String> = events
        .iter()
        .map(|event| event.headers["id"].clone())
        .collect();
    let expected: Vec<String> = pending.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(
        sent, expected,
        "the pending changes, each once, in order, under the ids the state held"
    );
    assert!(
        sent.iter().all(|id| !acked.contains(id)),
        "nothing acknowledged is sent again"
    );
    let seqs: Vec<String> = events
        .iter()
        .map(|event| event.headers["seq"].clone())
        .collect();
    let expected_seqs: Vec<String> = pending.iter().map(|(seq, _)| seq.to_string()).collect();
    assert_eq!(seqs, expected_seqs, "and under their seqs");

    // Upgraded in place: the state now reads as this build's layout.
    let connection = rusqlite::Connection::open(&state).unwrap();
    let version: String = connection
        .query_row(
            "SELECT value FROM headwater_meta WHERE name = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(version, headwater::sqlite::SCHEMA_VERSION.to_string());
    drop(connection);

    let again = MockFlume::start(MockConfig::default()).await.unwrap();
    let (code, report) = send(again.url(), &state, &input, &[]).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(again.event_count(), 0, "a rerun sends nothing: {report}");
}

fn lines_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-lines-v1")
}

/// The fixture's state and input copied into `dir`; the ids Flume acknowledged; the
/// seq and id of each change still to send.
fn copy_fixture(
    from: &Path,
    dir: &Path,
) -> (PathBuf, PathBuf, BTreeSet<String>, Vec<(u64, String)>) {
    let state = dir.join("state.db");
    let input = dir.join("input.jsonl");
    std::fs::copy(from.join("state.db"), &state).unwrap();
    std::fs::copy(from.join("input.jsonl"), &input).unwrap();
    let acked = lines(&from.join("acked-ids.txt")).into_iter().collect();
    let pending = lines(&from.join("pending.txt"))
        .iter()
        .map(|line| {
            let (seq, id) = line.split_once(' ').unwrap();
            (seq.parse().unwrap(), id.to_owned())
        })
        .collect();
    (state, input, acked, pending)
}

#[tokio::test]
async fn a_state_in_the_first_lines_layout_resumes_under_the_ids_it_would_have_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (state, input, acked, pending) = copy_fixture(&lines_fixture(), dir.path());
    assert_eq!(
        (acked.len(), pending.len()),
        (30, 70),
        "the fixture as written"
    );
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    let (code, report) = send(flume.url(), &state, &input, &[]).await;
    assert_eq!(code, Some(0), "{report}");
    let sent: Vec<(u64, String)> = flume
        .events()
        .iter()
        .map(|event| {
            (
                event.headers["seq"].parse().unwrap(),
                event.headers["id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        sent, pending,
        "the other 70 lines, each once, in order, under the seqs and ids that version gave them"
    );
    assert!(
        sent.iter().all(|(_, id)| !acked.contains(id)),
        "nothing acknowledged is sent again"
    );
    let again = MockFlume::start(MockConfig::default()).await.unwrap();
    let (code, report) = send(again.url(), &state, &input, &[]).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(again.event_count(), 0, "a rerun sends nothing: {report}");
}

/// The 100 lines both fixtures send.
fn fixture_input() -> String {
    (1..=100)
        .map(|i| {
            format!(
                "{{\"collection\":\"todos\",\"key\":\"{}\",\"op\":\"update\",\"value\":{{\"n\":{i},\"title\":\"todo {i}\"}}}}\n",
                i % 7
            )
        })
        .collect()
}

/// Writes `tests/fixtures/state-lines-v1/`. Run by hand (it replaces the committed
/// fixture): `cargo test -p headwater-cli --test layout_upgrade -- --ignored
/// write_the_lines_fixture`.
#[tokio::test]
#[ignore = "writes the committed fixture the test above reads: run by hand, once per released layout"]
async fn write_the_lines_fixture() {
    let dir = lines_fixture();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("input.jsonl");
    std::fs::write(&input, fixture_input()).unwrap();
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    // Three requests of 10 go through; then the path is wrong (404) and the outbox blocks.
    for _ in 0..3 {
        flume.push_fault(MockFault::Delay(Duration::ZERO));
    }
    for _ in 0..20 {
        flume.push_fault(MockFault::Status(404));
    }
    let state = dir.join("state.db");
    let (code, report) = send(
        flume.url(),
        &state,
        &input,
        &["--batch-size", "10", "--max-in-flight", "1"],
    )
    .await;
    assert_eq!(code, Some(3), "blocked by the 404: {report}");
    let acked: Vec<String> = flume
        .events()
        .iter()
        .map(|event| event.headers["id"].clone())
        .collect();
    assert_eq!(acked.len(), 30, "{report}");
    std::fs::write(dir.join("acked-ids.txt"), acked.join("\n") + "\n").unwrap();
    // One file: the log folded in, as a state is after a clean exit.
    let connection = rusqlite::Connection::open(&state).unwrap();
    connection
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(connection);
    for sidecar in ["state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(dir.join(sidecar));
    }
    // What this version sends for the other lines: a copy of the state, run to the end.
    let scratch = tempfile::tempdir().unwrap();
    let copy = scratch.path().join("state.db");
    std::fs::copy(&state, &copy).unwrap();
    let rest = MockFlume::start(MockConfig::default()).await.unwrap();
    let (code, report) = send(rest.url(), &copy, &input, &[]).await;
    assert_eq!(code, Some(0), "{report}");
    let pending: Vec<String> = rest
        .events()
        .iter()
        .map(|event| format!("{} {}", event.headers["seq"], event.headers["id"]))
        .collect();
    assert_eq!(pending.len(), 70, "{report}");
    std::fs::write(dir.join("pending.txt"), pending.join("\n") + "\n").unwrap();
}
