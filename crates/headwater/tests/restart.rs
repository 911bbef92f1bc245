//! A process that restarts after a crash takes its outbox's lease back at once, without
//! the application naming an `owner`: the crashed process held the database's lock, so
//! the lease it left can only be its own.
//!
//! The child is this same test binary, run with `HEADWATER_RESTART_CHILD` set: it
//! captures with Flume unreachable (so the changes stay pending and the lease held),
//! says so on stdout, and waits to be killed.
#![cfg(all(unix, feature = "sqlite"))]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use headwater::sqlite::{SqliteStore, migrate, rusqlite};
use headwater::{ChangeData, Headwater};
use headwater_mock_flume::{MockConfig, MockFlume};

const CHANGES: usize = 20;

#[test]
fn child() {
    let Ok(db) = std::env::var("HEADWATER_RESTART_CHILD") else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let unreachable = format!("http://{}/", closed.local_addr().unwrap());
        drop(closed);
        let headwater = Headwater::builder()
            .flume([unreachable])
            .store(SqliteStore::open(&db).unwrap())
            .start()
            .unwrap();
        for n in 0..CHANGES {
            headwater
                .capture(
                    ChangeData::insert("items", n.to_string(), &serde_json::json!({"n": n}))
                        .unwrap(),
                )
                .await
                .unwrap();
        }
        // Wait until delivery has tried (and so holds the lease), then report.
        while headwater.status().await.unwrap().counters.requests == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("holding the lease");
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
}

#[tokio::test]
async fn a_restart_after_a_crash_takes_the_lease_back_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    migrate(&rusqlite::Connection::open(&db).unwrap()).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("HEADWATER_RESTART_CHILD", &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|line| line.is_ok_and(|line| line.contains("holding the lease"))),
        "the child never held the lease"
    );
    child.kill().unwrap(); // SIGKILL: the lease stays in the database, 60 s long
    child.wait().unwrap();
    let lease = SqliteStore::open(&db).unwrap();
    let stats = headwater::ChangeStore::stats(&lease).await.unwrap();
    assert_eq!(stats.pending, CHANGES);
    assert!(stats.lease.is_some(), "the dead process's lease is there");

    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    let headwater = Headwater::builder()
        .flume([flume.url()])
        .store(SqliteStore::open(&db).unwrap())
        .start()
        .unwrap();
    // The default lease is 60 s: waiting it out would take far longer than this.
    tokio::time::timeout(Duration::from_secs(20), headwater.flush())
        .await
        .expect("the restarted process took its lease back at once")
        .unwrap();
    assert_eq!(flume.unique_ids(), CHANGES);
    headwater.shutdown().await;
}
