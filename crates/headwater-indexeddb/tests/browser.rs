//! The IndexedDB store in headless Chromium (run by scripts/test.sh): the shared
//! conformance suite, the app's own schema and upgrades, capture inside the app's own
//! transaction, reload with changes in flight, and two connections claiming at once.
#![cfg(target_arch = "wasm32")]

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use headwater_core::engine::{CaptureError, SyncConfig, Syncer};
use headwater_core::model::{Change, ChangeData, Seq};
use headwater_core::store::{ChangeStore, Claim, StoreError};
use headwater_core::testing::SimFlume;
use headwater_core::testing::conformance::{self, claim_request};
use headwater_indexeddb::{IdbStore, RecordWrite, Schema, open_database, to_js};
use indexed_db_futures::prelude::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

mod common;

use common::{fresh, fresh_name};

wasm_bindgen_test_configure!(run_in_browser);

fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000).unwrap() + TimeDelta::seconds(seconds)
}

/// Writes one record of `todos` at `seconds` and captures its change for `syncer`.
async fn write_todo(
    store: &IdbStore,
    syncer: &Syncer<IdbStore, SimFlume>,
    seconds: i64,
    key: &str,
    value: &serde_json::Value,
) -> Vec<Change> {
    store
        .write(
            &syncer.outbox(),
            t(seconds),
            vec![RecordWrite::put("todos", key, value).unwrap()],
        )
        .await
        .unwrap()
}

headwater_core::conformance_tests!(#[wasm_bindgen_test] async indexeddb_store, || fresh("conformance"));

#[wasm_bindgen_test]
async fn seq_exhaustion_is_an_error_not_a_wrap() {
    let store = fresh("exhaust").await;
    store
        .force_last_seq(headwater_core::model::MAX_SEQ - 1)
        .await
        .unwrap();
    conformance::seq_stays_below_2_pow_53(store).await;
}

#[wasm_bindgen_test]
async fn damaged_rows_are_reported_and_quarantined() {
    conformance::quarantine(fresh("damaged").await, |store: &IdbStore, raw: &str| {
        let store = store.clone();
        let raw = raw.to_owned();
        async move { store.append_damaged(&raw).await.unwrap() }
    })
    .await;
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
                RecordWrite::delete("todos", "2").unwrap(),
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
        .write(
            &outbox,
            t(0),
            vec![RecordWrite::delete("nope", "1").unwrap()],
        )
        .await
        .unwrap_err();
    assert!(matches!(error, CaptureError::Store(_)), "{error:?}");
}

#[wasm_bindgen_test]
async fn a_failing_write_leaves_neither_the_record_nor_an_outbox_entry() {
    let store = fresh("atomic").await;
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
        matches!(error, CaptureError::Store(StoreError::SeqExhausted)),
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
async fn an_aborted_app_transaction_leaves_neither_records_nor_changes() {
    let store = fresh("abort").await;
    let syncer = Syncer::new(store.clone(), SimFlume::new(), SyncConfig::new("tab", 1)).unwrap();
    let outbox = syncer.outbox();
    let tx = store.transaction(&["todos"]).unwrap();
    let todos = tx.object_store("todos").unwrap();
    todos
        .put(to_js(&serde_json::json!({"title": "milk"})).unwrap())
        .with_key(JsValue::from_str("1"))
        .primitive()
        .unwrap();
    let change = ChangeData::insert("todos", "1", &serde_json::json!({"title": "milk"})).unwrap();
    tx.append(outbox.prepare(t(0), vec![change])).await.unwrap();
    tx.abort().unwrap();
    assert_eq!(store.read_record("todos", "1").await.unwrap(), None);
    assert_eq!(
        outbox.status(t(0)).await.unwrap().pending,
        0,
        "no outbox entry survived"
    );
}

#[wasm_bindgen_test]
async fn a_database_grows_from_app_stores_to_headwater_to_an_index_and_keeps_everything() {
    let name = fresh_name("upgrades");
    // Version 1: the app alone, with its own key path.
    let v1 = open_database(&name, 1, |upgrade| {
        upgrade.create_store("todos", Some("id"))
    })
    .await
    .unwrap();
    let tx = v1
        .transaction("todos")
        .with_mode(indexed_db_futures::transaction::TransactionMode::Readwrite)
        .build()
        .unwrap();
    let todos = tx.object_store("todos").unwrap();
    for (id, done) in [("a", true), ("b", false), ("c", true)] {
        todos
            .put(to_js(&serde_json::json!({"id": id, "done": if done { 1 } else { 0 }})).unwrap())
            .primitive()
            .unwrap();
    }
    tx.commit().await.unwrap();
    v1.close();
    assert!(
        IdbStore::new(open_database(&name, 1, |_| Ok(())).await.unwrap()).is_err(),
        "headwater is not installed yet"
    );

    // Version 2: headwater joins with one call; a change is captured and left pending.
    let v2 = open_database(&name, 2, |upgrade| {
        if upgrade.old_version() < 2 {
            upgrade.install_headwater()?;
        }
        Ok(())
    })
    .await
    .unwrap();
    let store = IdbStore::new(v2).unwrap();
    let flume = SimFlume::new();
    let mut syncer = Syncer::new(store.clone(), flume.clone(), SyncConfig::new("tab", 1)).unwrap();
    store
        .write(
            &syncer.outbox(),
            t(0),
            vec![
                RecordWrite::put("todos", "d", &serde_json::json!({"id": "d", "done": 1})).unwrap(),
            ],
        )
        .await
        .unwrap();
    store.close();

    // Version 3: an index on an existing store.
    let v3 = open_database(&name, 3, |upgrade| {
        assert_eq!(upgrade.old_version(), 2);
        upgrade.install_headwater()?; // idempotent
        upgrade.create_index("todos", "by_done", "done", false)
    })
    .await
    .unwrap();
    let store = IdbStore::new(v3).unwrap();
    let tx = store.database().transaction("todos").build().unwrap();
    let done: Vec<JsValue> = tx
        .object_store("todos")
        .unwrap()
        .index("by_done")
        .unwrap()
        .get_all::<JsValue>()
        .with_query::<JsValue, _>(JsValue::from_f64(1.0))
        .await
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        done.len(),
        3,
        "records of versions 1 and 2, found through the app's index"
    );
    drop(tx);
    syncer = Syncer::new(store.clone(), flume.clone(), SyncConfig::new("tab", 2)).unwrap();
    let report = syncer.sync_once(t(100)).await.unwrap();
    assert_eq!(
        report.delivered, 1,
        "the change pending since version 2 is delivered"
    );
    assert_eq!(flume.delivered()[0].headers["key"], "d");
}

#[wasm_bindgen_test]
async fn a_failed_upgrade_leaves_the_database_as_it_was() {
    let name = fresh_name("failed-upgrade");
    open_database(&name, 1, |upgrade| upgrade.create_store("todos", None))
        .await
        .unwrap()
        .close();
    let error = open_database(&name, 2, |upgrade| {
        upgrade.install_headwater()?;
        upgrade.create_index("missing_store", "x", "x", false)
    })
    .await
    .unwrap_err();
    assert!(error.to_string().contains("nothing was changed"), "{error}");
    let db = open_database(&name, 1, |_| Ok(())).await.unwrap();
    assert_eq!(db.version(), 1.0);
    assert!(
        IdbStore::new(db).is_err(),
        "headwater's stores were rolled back too"
    );
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
            .claim(&claim_request("tab#dead", 0, None, 100))
            .await
            .unwrap();
        assert!(matches!(claimed, Claim::Granted(entries) if entries.len() == 5));
        store.close(); // the tab is closed with the batch in flight
    }
    let store = Schema::new(name).app_store("todos").open().await.unwrap();
    config.seed = 2;
    let mut syncer = Syncer::new(store.clone(), flume.clone(), config).unwrap();
    assert_eq!(
        syncer.sync_once(t(10)).await.unwrap().requests,
        0,
        "the lease still holds"
    );
    assert_eq!(
        syncer.sync_once(t(60)).await.unwrap().delivered,
        5,
        "the dead tab's lease lapsed at 60 s"
    );
    assert_eq!(flume.delivered().len(), 5);
    let marker = syncer
        .outbox()
        .sync_marker("todos", "4")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(marker.last_acked_seq.get(), 5);
}

#[wasm_bindgen_test]
async fn two_connections_never_hold_the_lease_at_once() {
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
    let (request_a, request_b) = (
        claim_request("tab-a", 0, None, 30),
        claim_request("tab-b", 0, None, 30),
    );
    let (a, b) = futures::join!(first.claim(&request_a), second.claim(&request_b));
    let granted = [a.unwrap(), b.unwrap()]
        .into_iter()
        .filter(|claim| matches!(claim, Claim::Granted(_)))
        .count();
    assert_eq!(granted, 1, "exactly one tab holds the lease");
}

#[wasm_bindgen_test]
async fn another_tabs_upgrade_closes_this_connection_with_a_typed_error() {
    let name = fresh_name("upgrade");
    let store = Schema::new(name.clone())
        .app_store("todos")
        .open()
        .await
        .unwrap();
    assert!(store.stats().await.is_ok());
    // Another tab opens version 2: this connection closes so that it is not blocked.
    let newer = open_database(&name, 2, |_| Ok(())).await.unwrap();
    let error = store.stats().await.unwrap_err();
    assert!(matches!(error, StoreError::Closed { .. }), "{error:?}");
    assert!(error.to_string().contains("reopen"), "{error}");
    newer.close();
}

/// A database that headwater 0.1 installed (its markers one row per record in
/// `headwater_sync_markers`) is refused until the app's next upgrade installs the
/// marker log; after it, the old markers are still read, and a newer acknowledgement
/// wins over them.
#[wasm_bindgen_test]
async fn markers_of_the_first_layout_are_read_after_the_log_is_installed() {
    let name = fresh_name("legacy");
    let old = serde_json::to_string(&headwater_core::model::SyncMarker {
        last_acked_seq: Seq::new(7).unwrap(),
        acked_at: t(5),
    })
    .unwrap();
    let v1 = open_database(&name, 1, move |upgrade| {
        let db = upgrade.database();
        db.create_object_store("todos")?;
        let parameters = web_sys::IdbObjectStoreParameters::new();
        parameters.set_auto_increment(true);
        // The seqs the first layout gave out, up to the marker's: the generator is past it.
        let changes =
            db.create_object_store_with_optional_parameters("headwater_changes", &parameters)?;
        changes.put_with_key(&JsValue::from_str("sent"), &JsValue::from_f64(7.0))?;
        changes.delete(&JsValue::from_f64(7.0))?;
        for store in [
            "headwater_retries",
            "headwater_dead_letters",
            "headwater_state",
        ] {
            db.create_object_store(store)?;
        }
        db.create_object_store("headwater_sync_markers")?
            .put_with_key(
                &JsValue::from_str(&old),
                &JsValue::from_str(r#"["todos","a"]"#),
            )?;
        Ok(())
    })
    .await
    .unwrap();
    let refused = IdbStore::new(v1).unwrap_err().to_string();
    assert!(refused.contains("headwater_marker_log"), "{refused}");

    let v2 = open_database(&name, 2, headwater_indexeddb::Upgrade::install_headwater)
        .await
        .unwrap();
    let store = IdbStore::new(v2).unwrap();
    let marker = store.sync_marker("todos", "a").await.unwrap().unwrap();
    assert_eq!((marker.last_acked_seq.get(), marker.acked_at), (7, t(5)));
    assert!(store.sync_marker("todos", "b").await.unwrap().is_none());

    let flume = SimFlume::new();
    let mut syncer = Syncer::new(store.clone(), flume, SyncConfig::new("tab", 1)).unwrap();
    let written = write_todo(&store, &syncer, 10, "a", &serde_json::json!({"v": 2})).await;
    syncer.sync_once(t(10)).await.unwrap();
    let marker = store.sync_marker("todos", "a").await.unwrap().unwrap();
    assert_eq!(marker.last_acked_seq, written[0].seq());
    assert_eq!(marker.acked_at, t(10));
}

/// A marker log row that does not read back (and one under a key of no known shape) is
/// left alone: claims and merges go on.
#[wasm_bindgen_test]
async fn a_damaged_marker_row_holds_up_neither_delivery_nor_merges() {
    let store = fresh("damaged-markers").await;
    let flume = SimFlume::new();
    let mut syncer = Syncer::new(store.clone(), flume.clone(), SyncConfig::new("tab", 1)).unwrap();
    write_todo(&store, &syncer, 0, "a", &serde_json::json!(1)).await;
    syncer.sync_once(t(0)).await.unwrap();
    store.damage_marker_log("not an entry").await.unwrap();
    let later = write_todo(&store, &syncer, 1, "b", &serde_json::json!(2)).await;
    // Delivery goes on, and an idle claim merges the rows that read back.
    syncer.sync_once(t(1)).await.unwrap();
    syncer.sync_once(t(100)).await.unwrap();
    assert_eq!(flume.delivered().len(), 2);
    let b = store.sync_marker("todos", "b").await.unwrap().unwrap();
    assert_eq!(b.last_acked_seq, later[0].seq());
    assert!(store.sync_marker("todos", "a").await.unwrap().is_some());
    // Merged: the next idle claim finds only the damaged row to merge, and leaves it.
    syncer.sync_once(t(200)).await.unwrap();
    assert!(store.sync_marker("todos", "b").await.unwrap().is_some());
}

/// The marker log stays right as its rows are merged: many acknowledgements, the same
/// records again and again, lookups from fresh rows, from indexed ones and from both,
/// then idle claims that index and merge.
#[wasm_bindgen_test]
async fn markers_stay_right_across_log_merges() {
    let store = fresh("merges").await;
    let flume = SimFlume::new();
    let mut syncer = Syncer::new(store.clone(), flume, SyncConfig::new("tab", 1)).unwrap();
    let mut last = std::collections::HashMap::new();
    async fn check(store: &IdbStore, last: &std::collections::HashMap<String, Seq>, when: &str) {
        for (key, seq) in last {
            let marker = store.sync_marker("todos", key).await.unwrap().unwrap();
            assert_eq!(marker.last_acked_seq, *seq, "{key} {when}");
        }
        assert!(store.sync_marker("todos", "k99").await.unwrap().is_none());
        assert!(store.sync_marker("todos", "k1 ").await.unwrap().is_none());
    }
    for round in 0..24 {
        let writes = (0..20)
            .map(|i| {
                RecordWrite::put("todos", format!("k{}", (i * 7 + round) % 30), &round).unwrap()
            })
            .collect();
        for change in store
            .write(&syncer.outbox(), t(round), writes)
            .await
            .unwrap()
        {
            last.insert(change.data().key().to_owned(), change.seq());
        }
        // One acknowledgement per round, so one fresh log row each.
        syncer.sync_once(t(round)).await.unwrap();
        match round {
            // Read from fresh rows alone.
            5 => check(&store, &last, "from fresh rows").await,
            // Idle: a claim that finds nothing indexes the fresh rows; later rounds
            // write fresh rows newer than the indexed entries.
            11 => {
                syncer.sync_once(t(100)).await.unwrap();
                check(&store, &last, "after the fresh rows were indexed").await;
            }
            17 => check(&store, &last, "from indexed and fresh rows").await,
            _ => {}
        }
    }
    // Idle twice: the fresh rows are indexed, then indexed rows of one size class are
    // merged.
    syncer.sync_once(t(100)).await.unwrap();
    check(&store, &last, "after a second indexing").await;
    syncer.sync_once(t(101)).await.unwrap();
    check(&store, &last, "after merges").await;
}
