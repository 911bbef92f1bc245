//! A database that is damaged under a running store (bytes changed on disk) is
//! `StoreError::Unusable`, not a backend error to retry, and a syncer on it stops
//! instead of retrying without end.

use chrono::DateTime;
use headwater_core::engine::{RunError, SyncConfig, Syncer};
use headwater_core::model::{Captured, ChangeData, ChangeIdGenerator};
use headwater_core::store::{ChangeStore, StoreError};
use headwater_core::testing::SimFlume;
use headwater_sqlite::{SqliteStore, rusqlite};

#[test]
fn a_damaged_database_stops_delivery_with_the_cause() {
    futures::executor::block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let now = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let mut ids = ChangeIdGenerator::from_seed(1);
        {
            let store = SqliteStore::open(&path).unwrap();
            let changes = (0..2000)
                .map(|n| Captured {
                    id: ids.next_id(now),
                    captured_at: now,
                    data: ChangeData::insert("items", n.to_string(), &serde_json::json!({"n": n}))
                        .unwrap(),
                })
                .collect();
            store.append(changes).await.unwrap();
        }
        // A new store opens the file; then every page but the first (the header and the
        // schema) gets garbage on disk under it.
        // The store's thread may still be closing its connection: the log is moved into
        // the file here, so that the file holds every page.
        rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let store = SqliteStore::open(&path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let page = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
        assert!(bytes.len() > 8 * page, "{} bytes", bytes.len());
        for (at, byte) in bytes.iter_mut().enumerate().skip(page) {
            *byte = (at as u8).wrapping_mul(31) ^ 0xa5;
        }
        std::fs::write(&path, &bytes).unwrap();

        let error = store.stats().await.unwrap_err();
        assert!(
            matches!(error, StoreError::Unusable(_)),
            "{}",
            error.describe()
        );

        let mut syncer =
            Syncer::new(store, SimFlume::new(), SyncConfig::new("unusable", 1)).unwrap();
        // Without the stop the syncer retries without end: a bounded number of sleeps
        // turns that into a failure instead of a hang. Each sleep takes a little real
        // time, because the loop also sleeps while the store's thread works, and on a
        // loaded machine that thread may take a while to answer.
        let sleeps = std::cell::Cell::new(0u32);
        let result = syncer
            .run(
                || now,
                |_| {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    sleeps.set(sleeps.get() + 1);
                    assert!(
                        sleeps.get() < 1000,
                        "a damaged store is retried without end"
                    );
                    futures::future::ready(())
                },
            )
            .await;
        match result {
            Err(RunError::StoreUnusable(reason)) => {
                assert!(reason.contains("malformed"), "{reason}");
            }
            other => panic!("delivery should stop: {other:?}"),
        }
    });
}
