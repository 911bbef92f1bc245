//! The IndexedDB store in headless Chromium (run by scripts/test.sh): the shared
//! conformance suite, atomic capture, reload with changes in flight, and two
//! connections claiming at once.
#![cfg(target_arch = "wasm32")]

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use headwater_core::engine::{SyncConfig, Syncer};
use headwater_core::store::{ChangeStore, StoreError};
use headwater_core::testing::{SimFlume, conformance};
use headwater_indexeddb::{RecordWrite, Schema};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

mod common;

use common::{fresh, fresh_name};

wasm_bindgen_test_configure!(run_in_browser);

fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000).unwrap() + TimeDelta::seconds(seconds)
}

#[wasm_bindgen_test]
async fn the_indexeddb_store_passes_the_conformance_suite() {
    conformance::run_all(|| fresh("conformance")).await;
}

#[wasm_bindgen_test]
async fn a_write_puts_the_record_and_its_outbox_entry_together() {
    let store = fresh("write").await;
    let syncer = Syncer::new(store.clone(), SimFlume::new(), SyncConfig::new("tab", 1)).unwrap();
    let outbox = syncer.outbox();
    let written = store
        .write(
            &outbox,
            t(0),
            vec![
                RecordWrite::put("todos", "1", &serde_json::json!({"title": "milk"})).unwrap(),
                RecordWrite::delete("todos", "2"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(written.len(), 2);
    assert_eq!(
        store.read_record("todos", "1").await.unwrap(),
        Some(serde_json::json!({"title": "milk"}))
    );
    assert_eq!(outbox.status(t(0)).await.unwrap().pending, 2);
    let error = store
        .write(&outbox, t(0), vec![RecordWrite::delete("nope", "1")])
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("not one of the app's object stores"),
        "{error}"
    );
}

#[wasm_bindgen_test]
async fn a_failing_write_leaves_neither_the_record_nor_an_outbox_entry() {
    let name = fresh_name("atomic");
    let store = Schema::new(name.clone())
        .app_store("todos")
        .open()
        .await
        .unwrap();
    let syncer = Syncer::new(store.clone(), SimFlume::new(), SyncConfig::new("tab", 1)).unwrap();
    let outbox = syncer.outbox();
    store
        .force_last_seq(headwater_core::model::MAX_SEQ)
        .await
        .unwrap();
    let error = store
        .write(
            &outbox,
            t(0),
            vec![RecordWrite::put("todos", "1", &serde_json::json!(1)).unwrap()],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            headwater_core::engine::CaptureError::Store(StoreError::SeqExhausted)
        ),
        "{error:?}"
    );
    assert_eq!(
        store.read_record("todos", "1").await.unwrap(),
        None,
        "the record write rolled back"
    );
    assert_eq!(outbox.status(t(0)).await.unwrap().pending, 0);
}

#[wasm_bindgen_test]
async fn changes_in_flight_survive_a_reload_and_are_delivered_after_the_lease() {
    let name = fresh_name("reload");
    let flume = SimFlume::new();
    let mut config = SyncConfig::new("tab", 1);
    config.lease = Duration::from_secs(30);
    {
        let store = Schema::new(name.clone())
            .app_store("todos")
            .open()
            .await
            .unwrap();
        let syncer = Syncer::new(store.clone(), flume.clone(), config.clone()).unwrap();
        let writes = (0..5)
            .map(|i| RecordWrite::put("todos", i.to_string(), &i).unwrap())
            .collect();
        store.write(&syncer.outbox(), t(0), writes).await.unwrap();
        let claimed = store
            .claim("tab#dead", t(0), t(30), t(3600), 100)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 5);
        store.close(); // the tab is closed with the batch in flight
    }
    let store = Schema::new(name).app_store("todos").open().await.unwrap();
    config.seed = 2;
    let mut syncer = Syncer::new(store.clone(), flume.clone(), config).unwrap();
    assert!(
        syncer.sync_once(t(10)).await.unwrap().idle,
        "the lease still holds"
    );
    assert_eq!(store.release_expired(t(30)).await.unwrap(), 5);
    assert_eq!(syncer.sync_once(t(30)).await.unwrap().delivered, 5);
    assert_eq!(flume.delivered().len(), 5);
    let marker = syncer
        .outbox()
        .sync_marker("todos", "4")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(marker.last_acked_seq.0, 5);
}

#[wasm_bindgen_test]
async fn two_connections_never_claim_the_same_change() {
    let name = fresh_name("tabs");
    let first = Schema::new(name.clone())
        .app_store("todos")
        .open()
        .await
        .unwrap();
    let second = Schema::new(name).app_store("todos").open().await.unwrap();
    let syncer = Syncer::new(first.clone(), SimFlume::new(), SyncConfig::new("tab", 1)).unwrap();
    let writes = (0..50)
        .map(|i| RecordWrite::put("todos", i.to_string(), &i).unwrap())
        .collect();
    first.write(&syncer.outbox(), t(0), writes).await.unwrap();
    let (a, b) = futures::join!(
        first.claim("tab-a", t(0), t(60), t(3600), 30),
        second.claim("tab-b", t(0), t(60), t(3600), 30)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(!a.is_empty() || !b.is_empty());
    for entry in &a {
        assert!(
            b.iter().all(|other| other.change.seq != entry.change.seq),
            "both tabs claimed seq {}",
            entry.change.seq
        );
    }
    assert!(
        a.is_empty() || b.is_empty(),
        "one batch in flight per outbox"
    );
}

#[wasm_bindgen_test]
async fn another_tabs_upgrade_closes_this_connection_with_a_typed_error() {
    let name = fresh_name("upgrade");
    let store = Schema::new(name.clone())
        .app_store("todos")
        .open()
        .await
        .unwrap();
    assert!(store.stats(t(0)).await.is_ok());
    // Another tab opens version 2: this connection closes so that it is not blocked.
    let newer = indexed_db_futures::database::Database::open(name.as_str())
        .with_version(2u8)
        .await
        .unwrap();
    let error = store.stats(t(0)).await.unwrap_err();
    assert!(matches!(error, StoreError::Closed(_)), "{error:?}");
    assert!(error.to_string().contains("reopen"), "{error}");
    newer.close();
}
