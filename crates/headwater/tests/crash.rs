//! Crashes with real processes: a child captures (inside its own SQLite transactions,
//! next to its own rows) and syncs to a mock Flume, while this process kills it with
//! SIGKILL at random moments, 20 times, restarting it each time. At the end every
//! change the child committed is in the mock's sink under its original id, duplicates
//! are no more than (2 × in flight + 1) batches per kill (those in flight, and those
//! acknowledged but not yet written: docs/delivery-semantics.md), and the outbox is
//! empty.
//!
//! The child is this same test binary, run with `HEADWATER_CRASH_CHILD` set: the
//! `child` test then plays the application (and does nothing in a normal run).
#![cfg(all(unix, feature = "sqlite"))]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use headwater::sqlite::{SqliteOptions, SqliteStore, configure_connection, migrate, rusqlite};
use headwater::{ChangeData, Headwater};
use headwater_mock_flume::{MockConfig, MockFlume};

/// Changes the child captures over all its lives.
const TOTAL: i64 = 8000;
/// Changes per application transaction.
const CHUNK: i64 = 25;
const KILLS: usize = 20;
const MAX_EVENTS: usize = 50;
const MAX_IN_FLIGHT: usize = 4;

fn app_connection(path: &Path) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(path).unwrap();
    configure_connection(&connection, &SqliteOptions::default()).unwrap();
    migrate(&connection).unwrap();
    connection
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS items (n INTEGER PRIMARY KEY, change_id TEXT NOT NULL)",
        )
        .unwrap();
    connection
}

/// The application: captures until `TOTAL` changes are committed, then waits until
/// Flume has them all.
#[test]
fn child() {
    let (Ok(db), Ok(url)) = (
        std::env::var("HEADWATER_CRASH_CHILD"),
        std::env::var("HEADWATER_CRASH_URL"),
    ) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let path = Path::new(&db);
        let mut connection = app_connection(path);
        let headwater = Headwater::builder()
            .flume([url])
            .source("crash-child")
            .batch_size(MAX_EVENTS)
            .max_in_flight(MAX_IN_FLIGHT)
            .timeout(Duration::from_secs(2))
            .store(SqliteStore::open(path).unwrap())
            .configure(|config| {
                // A restart takes its lease back at once, as `headwater send` does.
                config.owner = Some("crash-child".into());
                config.lease = Duration::from_secs(10);
                config.backoff.base = Duration::from_millis(5);
                config.backoff.cap = Duration::from_millis(100);
            })
            .start()
            .unwrap();
        loop {
            let done: i64 = connection
                .query_row("SELECT COUNT(*) FROM items", [], |row| row.get(0))
                .unwrap();
            if done >= TOTAL {
                break;
            }
            let tx = connection.transaction().unwrap();
            let chunk: Vec<ChangeData> = (done..(done + CHUNK).min(TOTAL))
                .map(|n| {
                    ChangeData::insert("items", n.to_string(), &serde_json::json!({"n": n}))
                        .unwrap()
                })
                .collect();
            let changes = headwater.capture_in(&tx, chunk).unwrap();
            for change in &changes {
                let n: i64 = change.data().key().parse().unwrap();
                tx.execute(
                    "INSERT INTO items (n, change_id) VALUES (?1, ?2)",
                    rusqlite::params![n, change.id().to_string()],
                )
                .unwrap();
            }
            tx.commit().unwrap();
            headwater.wake();
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        headwater.flush().await.unwrap();
        headwater.shutdown().await;
    });
}

/// A small deterministic generator for the kill times.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_twenty_times_nothing_is_lost_and_ids_never_change() {
    let flume = MockFlume::start(MockConfig {
        capacity: 1_000_000,
        transaction_capacity: 1000,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let child = |db: &Path| {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child", "--nocapture", "--test-threads", "1"])
            .env("HEADWATER_CRASH_CHILD", db)
            .env("HEADWATER_CRASH_URL", flume.url())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut random = Lcg(0x5eed);
    let mut kills = 0;
    while kills < KILLS {
        let mut process = child(&db);
        tokio::time::sleep(Duration::from_millis(40 + random.next(300))).await;
        if process.try_wait().unwrap().is_some() {
            break; // it finished its work before this kill
        }
        process.kill().unwrap(); // SIGKILL: no clean-up of any kind
        process.wait().unwrap();
        kills += 1;
    }
    assert_eq!(
        kills, KILLS,
        "every kill landed while the child was at work"
    );
    let mut last = child(&db);
    let status = tokio::task::spawn_blocking(move || last.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "the last run completes");

    let connection = app_connection(&db);
    let committed: Vec<String> = connection
        .prepare("SELECT change_id FROM items ORDER BY n")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        committed.len() as i64,
        TOTAL,
        "the application committed everything"
    );
    let mut at_sink: HashMap<String, usize> = HashMap::new();
    for event in flume.events() {
        *at_sink.entry(event.headers["id"].clone()).or_default() += 1;
    }
    let missing = committed
        .iter()
        .filter(|id| !at_sink.contains_key(*id))
        .count();
    assert_eq!(
        missing, 0,
        "every committed change reached Flume under its original id"
    );
    assert_eq!(
        at_sink.len(),
        committed.len(),
        "no id that was not committed"
    );
    let duplicates: usize = at_sink.values().map(|count| count - 1).sum();
    assert!(
        duplicates <= kills * (2 * MAX_IN_FLIGHT + 1) * MAX_EVENTS,
        "{duplicates} duplicates for {kills} kills: more than (2 x in flight + 1) batches each"
    );
    let store = SqliteStore::open(&db).unwrap();
    use headwater::ChangeStore;
    assert_eq!(
        store.stats().await.unwrap().pending,
        0,
        "the outbox is empty"
    );
    println!(
        "crash test: {kills} kills, {} changes committed, {} events at the sink, {duplicates} duplicates, 0 missing",
        committed.len(),
        flume.events().len()
    );
}
