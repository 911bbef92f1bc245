//! Times the SQLite store's operations one by one, as the syncer uses them (claim 100,
//! record their acknowledgement), without HTTP: `cargo run --release -p
//! headwater-benches --example sqlite_ops -- COUNT`.

use std::time::{Duration, Instant};

use headwater::ChangeStore;
use headwater::sqlite::SqliteStore;
use headwater_benches::{realistic_captured, sqlite_options_from_env};
use headwater_core::store::{Claim, ClaimRequest, Outcome};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let options = sqlite_options_from_env();
    let store = SqliteStore::open_with(dir.path().join("outbox.db"), &options).unwrap();
    let now = chrono::Utc::now();
    let captured = realistic_captured(count, 1, now);
    let started = Instant::now();
    for chunk in captured.chunks(100) {
        store.append(chunk.to_vec()).await.unwrap();
    }
    let append = started.elapsed();
    let (mut claim_time, mut record_time) = (Duration::ZERO, Duration::ZERO);
    let mut after = None;
    loop {
        let request = ClaimRequest {
            owner: "bench".into(),
            now,
            lease_until: now + chrono::TimeDelta::seconds(60),
            horizon: now + chrono::TimeDelta::seconds(3600),
            after,
            limit: 100,
        };
        let started = Instant::now();
        let Claim::Granted(entries) = store.claim(&request).await.unwrap() else {
            panic!("held")
        };
        claim_time += started.elapsed();
        if entries.is_empty() {
            break;
        }
        let mut outcome = Outcome::default();
        for entry in &entries {
            let entry = entry.as_ref().unwrap();
            outcome.ack(&entry.change);
            after = Some(entry.change.seq());
        }
        let started = Instant::now();
        store.record("bench", now, &outcome).await.unwrap();
        record_time += started.elapsed();
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / count as f64;
    println!(
        "{count} changes: append {:.2} µs/change, claim {:.2} µs/change, record {:.2} µs/change",
        per(append),
        per(claim_time),
        per(record_time)
    );
}
