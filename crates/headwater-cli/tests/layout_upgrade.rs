//! A state written by an earlier release of `send` is carried forward on first open: it
//! upgrades in place, keeps the id of every change it holds, and resends nothing Flume
//! had acknowledged.
//!
//! `tests/fixtures/state-v1/` is a state written by `send` at SQLite schema version 1
//! (2026-12-07): 100 lines, the first 30 acknowledged by Flume, then the outbox blocked
//! by a 404 with 70 changes pending. Beside it: the input, the ids Flume acknowledged,
//! and the seq and id of each pending change as the state held them. It is written by
//! `write_the_fixture` below, by hand, once per layout a release ships; a later layout
//! must open this one as it stands.

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
    let state = dir.path().join("state.db");
    let input = dir.path().join("input.jsonl");
    std::fs::copy(fixture().join("state.db"), &state).unwrap();
    std::fs::copy(fixture().join("input.jsonl"), &input).unwrap();
    let acked: BTreeSet<String> = lines(&fixture().join("acked-ids.txt"))
        .into_iter()
        .collect();
    let pending: Vec<(u64, String)> = lines(&fixture().join("pending.txt"))
        .iter()
        .map(|line| {
            let (seq, id) = line.split_once(' ').unwrap();
            (seq.parse().unwrap(), id.to_owned())
        })
        .collect();
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

/// Writes `tests/fixtures/state-v1/`. Run by hand (it replaces the committed fixture):
/// `cargo test -p headwater-cli --test layout_upgrade -- --ignored write_the_fixture`.
#[tokio::test]
#[ignore = "writes the committed fixture the test above reads: run by hand, once per released layout"]
async fn write_the_fixture() {
    let dir = fixture();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("input.jsonl");
    let text: String = (1..=100)
        .map(|i| {
            format!(
                "{{\"collection\":\"todos\",\"key\":\"{}\",\"op\":\"update\",\"value\":{{\"n\":{i},\"title\":\"todo {i}\"}}}}\n",
                i % 7
            )
        })
        .collect();
    std::fs::write(&input, text).unwrap();
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

    let connection = rusqlite::Connection::open(&state).unwrap();
    let pending: Vec<String> = connection
        .prepare("SELECT seq, id FROM headwater_outbox ORDER BY seq")
        .unwrap()
        .query_map([], |row| {
            Ok(format!(
                "{} {}",
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(pending.len(), 70);
    std::fs::write(dir.join("pending.txt"), pending.join("\n") + "\n").unwrap();
    // One file: the log folded in, as a state is after a clean exit.
    connection
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(connection);
    for sidecar in ["state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(dir.join(sidecar));
    }
}
