//! Shared fixtures of headwater's criterion benchmarks (in `benches/`): realistic
//! changes, the mapping they are sent with, and the bench mock Flume in a process of
//! its own.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use chrono::{DateTime, Utc};
use headwater_core::flume::EventMapping;
use headwater_core::model::{Captured, Change, ChangeData, ChangeIdGenerator, Seq};

/// A to-do record of about 200 bytes of JSON.
pub fn realistic_value(index: usize) -> serde_json::Value {
    serde_json::json!({
        "id": index,
        "title": "Buy oat milk and a loaf of sourdough on the way home",
        "done": index.is_multiple_of(2),
        "tags": ["errand", "food", "weekly"],
        "updated_by": "user-4711@example.org",
        "priority": 3,
        "notes": "ask for the seeded one",
    })
}

/// The data of `count` realistic changes.
pub fn realistic_data(count: usize) -> Vec<ChangeData> {
    (0..count)
        .map(|index| {
            ChangeData::update("todos", format!("todo-{index:06}"), &realistic_value(index))
                .expect("a JSON value")
        })
        .collect()
}

/// `count` realistic changes captured at `now`, with ids from `seed`: what an outbox
/// appends.
pub fn realistic_captured(count: usize, seed: u64, now: DateTime<Utc>) -> Vec<Captured> {
    let mut ids = ChangeIdGenerator::from_seed(seed);
    realistic_data(count)
        .into_iter()
        .map(|data| Captured {
            id: ids.next_id(now),
            captured_at: now,
            data,
        })
        .collect()
}

/// `count` realistic changes as a store holds them.
pub fn realistic_changes(count: usize) -> Vec<Change> {
    let now = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap_or_default();
    realistic_captured(count, 1, now)
        .into_iter()
        .enumerate()
        .map(|(index, captured)| {
            Change::new(Seq::new(index as u64 + 1).unwrap_or(Seq::ZERO), captured)
        })
        .collect()
}

/// SQLite options for a benchmark: `synchronous = FULL`, or NORMAL when the `NORMAL`
/// environment variable is set.
pub fn sqlite_options_from_env() -> headwater_sqlite::SqliteOptions {
    let mut options = headwater_sqlite::SqliteOptions::default();
    if std::env::var_os("NORMAL").is_some() {
        options.synchronous = headwater_sqlite::Synchronous::Normal;
    }
    options
}

/// The default mapping without `seq`: six headers (id, timestamp, op, collection, key,
/// source).
pub fn realistic_mapping() -> EventMapping {
    let mut mapping = EventMapping::with_source("bench-client-7");
    mapping.headers.seq = None;
    mapping
}

/// The bench mock Flume (`bench-mock-flume`) in a process of its own, so that it does not
/// share a runtime (or a profile) with what is measured. It exits when its stdin closes.
#[derive(Debug)]
pub struct MockProcess {
    child: Child,
    /// Its URL.
    pub url: String,
}

impl MockProcess {
    /// Starts it (the binary is built next to the benches).
    pub fn start() -> Self {
        let exe = std::env::current_exe()
            .ok()
            .and_then(|exe| {
                exe.parent()
                    .and_then(|deps| deps.parent())
                    .map(|dir| dir.join("bench-mock-flume"))
            })
            .expect("the bench's own path");
        let mut child = Command::new(exe)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the bench mock Flume (cargo bench builds it)");
        let mut url = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut url)
            .expect("the mock prints its URL");
        Self {
            child,
            url: url.trim().to_owned(),
        }
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
