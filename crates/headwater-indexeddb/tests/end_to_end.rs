//! In headless Chromium, end to end: records written to IndexedDB, synced by the
//! browser run loop through `fetch` to a mock Flume that scripts/test.sh starts (URLs
//! at compile time: `HEADWATER_MOCK_CORS_URL`, `HEADWATER_MOCK_STRICT_URL`). Also the
//! browser benchmark, which logs its figures (it asserts nothing about speed).
#![cfg(target_arch = "wasm32")]

use std::time::Duration;

use chrono::Utc;
use headwater_core::engine::{SyncConfig, SyncStatus, Syncer};
use headwater_http::{HttpConfig, HttpTransport};
use headwater_indexeddb::browser::{BrowserSync, sleep};
use headwater_indexeddb::{IdbStore, RecordWrite};
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

mod common;

use common::fresh;

wasm_bindgen_test_configure!(run_in_browser);

fn url(name: &str, value: Option<&'static str>) -> &'static str {
    value.unwrap_or_else(|| {
        panic!("{name} was not set at compile time: run these through scripts/test.sh")
    })
}

fn syncer(store: &IdbStore, url: &str, seed: u64) -> Syncer<IdbStore, HttpTransport> {
    let mut http = HttpConfig::new([url]);
    http.timeout = Duration::from_secs(5);
    Syncer::new(
        store.clone(),
        HttpTransport::new(http, Utc::now).unwrap(),
        SyncConfig::new(format!("tab-{seed}"), seed),
    )
    .unwrap()
}

/// A syncer on `store` sending to the mock Flume with CORS.
fn cors_syncer(store: &IdbStore, seed: u64) -> Syncer<IdbStore, HttpTransport> {
    syncer(
        store,
        url(
            "HEADWATER_MOCK_CORS_URL",
            option_env!("HEADWATER_MOCK_CORS_URL"),
        ),
        seed,
    )
}

fn writes(count: usize) -> Vec<RecordWrite> {
    (0..count)
        .map(|i| {
            RecordWrite::put(
                "todos",
                format!("todo-{i}"),
                &serde_json::json!({"n": i, "title": "oat milk é"}),
            )
            .unwrap()
        })
        .collect()
}

/// Waits (on the browser's timer) until `done` holds for the status, for at most 20 s.
async fn wait_for(
    outbox: &headwater_core::engine::Outbox<IdbStore>,
    done: impl Fn(&SyncStatus) -> bool,
) -> SyncStatus {
    for _ in 0..100 {
        let status = outbox.status(Utc::now()).await.unwrap();
        if done(&status) {
            return status;
        }
        sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out: {:?}", outbox.status(Utc::now()).await);
}

#[wasm_bindgen_test]
async fn writes_in_indexeddb_reach_flume_through_a_cors_proxy() {
    let store = fresh("e2e").await;
    let running = BrowserSync::start(cors_syncer(&store, 1), Utc::now, |_| {});
    let written = store
        .write(running.outbox(), Utc::now(), writes(300))
        .await
        .unwrap();
    let status = wait_for(running.outbox(), SyncStatus::is_synced).await;
    assert_eq!(status.counters.delivered, 300);
    let last = written.last().unwrap();
    let marker = running
        .outbox()
        .sync_marker("todos", "todo-299")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        marker.last_acked_seq,
        last.seq(),
        "the record shows as synced"
    );
    running.stop();
}

#[wasm_bindgen_test]
async fn against_flume_without_cors_the_outbox_reports_blocked_and_keeps_everything() {
    let store = fresh("strict").await;
    let running = BrowserSync::start(
        syncer(
            &store,
            url(
                "HEADWATER_MOCK_STRICT_URL",
                option_env!("HEADWATER_MOCK_STRICT_URL"),
            ),
            2,
        ),
        Utc::now,
        |_| {},
    );
    store
        .write(running.outbox(), Utc::now(), writes(20))
        .await
        .unwrap();
    let status = wait_for(running.outbox(), |status| status.blocked.is_some()).await;
    assert!(
        status.blocked.as_deref().unwrap().contains("CORS"),
        "{status:?}"
    );
    assert_eq!(
        (status.pending + status.in_flight, status.dead_lettered),
        (20, 0)
    );
    let requests = status.counters.requests;
    sleep(Duration::from_millis(500)).await;
    let later = running.outbox().status(Utc::now()).await.unwrap();
    assert_eq!(
        later.counters.requests, requests,
        "blocked means no loop of requests"
    );
    running.stop();
}

/// Runs `sync` until `count` changes are delivered and written, and gives the rate.
async fn timed_sync(
    sync: Syncer<IdbStore, HttpTransport>,
    count: usize,
    now: &impl Fn() -> f64,
) -> f64 {
    let running = BrowserSync::start(sync, Utc::now, |_| {});
    let started = now();
    // Acknowledged first (counted as answers arrive), then recorded in the store.
    loop {
        let progress = running.outbox().progress();
        if running.outbox().counters().delivered >= count as u64 {
            let status = running.outbox().status(Utc::now()).await.unwrap();
            if status.is_synced() {
                break;
            }
        }
        progress.await;
    }
    let rate = count as f64 / ((now() - started) / 1000.0);
    assert_eq!(running.outbox().counters().delivered, count as u64);
    running.stop();
    rate
}

/// Waits for `request` and gives its result.
async fn request_done(request: &web_sys::IdbRequest) -> wasm_bindgen::JsValue {
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        request.set_onsuccess(Some(&resolve));
        request.set_onerror(Some(&reject));
    });
    wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
    request.result().unwrap()
}

/// Waits until `tx` commits.
async fn committed(tx: &web_sys::IdbTransaction) {
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        tx.set_oncomplete(Some(&resolve));
        tx.set_onabort(Some(&reject));
    });
    wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
}

/// IndexedDB's own floor for an outbox, without headwater: `count` stored texts of a
/// captured change's size, read a hundred at a time (`getAll` from the first key left)
/// and each hundred deleted by key range, a transaction for each read and each delete
/// (the browser's default durability, which Chromium makes relaxed, as headwater's
/// acknowledgements are). What any IndexedDB outbox pays to hand its rows out once;
/// rows per second.
async fn indexeddb_floor(count: usize, now: &impl Fn() -> f64) -> f64 {
    use wasm_bindgen::JsCast;
    use web_sys::{IdbDatabase, IdbKeyRange, IdbTransactionMode};

    let factory = web_sys::window().unwrap().indexed_db().unwrap().unwrap();
    let open = factory
        .open_with_u32(&common::fresh_name("floor"), 1)
        .unwrap();
    let upgrading = open.clone();
    let upgrade = wasm_bindgen::closure::Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
        let db: IdbDatabase = upgrading.result().unwrap().unchecked_into();
        let parameters = web_sys::IdbObjectStoreParameters::new();
        parameters.set_auto_increment(true);
        db.create_object_store_with_optional_parameters("rows", &parameters)
            .unwrap();
    });
    open.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
    let db: IdbDatabase = request_done(&open).await.unchecked_into();
    drop(upgrade);
    let text = wasm_bindgen::JsValue::from_str(
        r#"{"id":"0190f6d2-9a4b-7c3e-8d5f-000000000001","captured_at":"2026-12-07T07:00:00Z","collection":"todos","key":"todo-1","op":"update","value":{"n":1,"title":"oat milk é"}}"#,
    );
    let fill = db
        .transaction_with_str_and_mode("rows", IdbTransactionMode::Readwrite)
        .unwrap();
    let rows = fill.object_store("rows").unwrap();
    for _ in 0..count {
        rows.add(&text).unwrap();
    }
    committed(&fill).await;

    let started = now();
    let mut next = 1.0;
    loop {
        let read = db.transaction_with_str("rows").unwrap();
        let range = IdbKeyRange::lower_bound(&next.into()).unwrap();
        let got: js_sys::Array = request_done(
            &read
                .object_store("rows")
                .unwrap()
                .get_all_with_key_and_limit(&range, 100)
                .unwrap(),
        )
        .await
        .unchecked_into();
        if got.length() == 0 {
            break;
        }
        let last = next + f64::from(got.length()) - 1.0;
        let delete = db
            .transaction_with_str_and_mode("rows", IdbTransactionMode::Readwrite)
            .unwrap();
        delete
            .object_store("rows")
            .unwrap()
            .delete(&IdbKeyRange::bound(&next.into(), &last.into()).unwrap())
            .unwrap();
        committed(&delete).await;
        next = last + 1.0;
    }
    let rate = count as f64 / ((now() - started) / 1000.0);
    db.close();
    rate
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}

/// Browser benchmark: the cost of a captured write (record + outbox entry in one
/// transaction) against a plain record write, and changes per second synced from
/// IndexedDB to the mock Flume. Plain and captured writes alternate in blocks of ten, so
/// that the machine's drift (other processes, the disk) falls on both alike, and the
/// medians of the blocks are compared (a strict write waits for the disk, and a few
/// wait much longer). The sync
/// of 10,000 changes runs three times after a warm-up sync of 2,000, each timed from
/// start to the last acknowledgement written, watched through the syncer's published
/// counters (a store read in between would compete with the syncer for IndexedDB); the
/// median rate is given, and the warm-up's.
#[wasm_bindgen_test]
async fn browser_benchmark() {
    const WRITES: usize = 200;
    const BLOCK: usize = 10;
    const SYNCED: usize = 10_000;
    const ROUNDS: u64 = 3;
    const WARM_UP: usize = 2_000;
    // Sub-millisecond where the browser allows (Date has whole milliseconds).
    let performance = web_sys::window().unwrap().performance().unwrap();
    let now = || performance.now();
    let store = fresh("bench").await;
    let sync = cors_syncer(&store, 3);
    let outbox = sync.outbox();

    // Blocks of ten writes each way, alternating: the browser's clock has a tenth of a
    // millisecond here, too coarse for one write.
    let (mut plain, mut captured) = (Vec::new(), Vec::new());
    let mut captures = writes(WRITES).into_iter();
    for block in 0..WRITES / BLOCK {
        let started = now();
        for i in block * BLOCK..(block + 1) * BLOCK {
            store
                .write_record_only(
                    "todos",
                    &format!("plain-{i}"),
                    &serde_json::json!({"n": i, "title": "oat milk é"}),
                )
                .await
                .unwrap();
        }
        plain.push((now() - started) / BLOCK as f64);
        let started = now();
        for write in captures.by_ref().take(BLOCK) {
            store.write(&outbox, Utc::now(), vec![write]).await.unwrap();
        }
        captured.push((now() - started) / BLOCK as f64);
    }
    let (plain, captured) = (median(plain), median(captured));

    // Round 1 syncs this database (the 200 captured writes and 9,800 more); rounds 2
    // and 3 fresh ones of 10,000.
    store
        .write(&outbox, Utc::now(), writes(SYNCED - WRITES))
        .await
        .unwrap();
    let mut rounds = vec![(store, sync)];
    for round in 2..=ROUNDS {
        let store = fresh("bench").await;
        let sync = cors_syncer(&store, 3 + round);
        store
            .write(&sync.outbox(), Utc::now(), writes(SYNCED))
            .await
            .unwrap();
        rounds.push((store, sync));
    }
    // A warm-up sync first: the first in a page is slower (code and the browser's
    // caches are cold). Its rate is given too.
    let warm = fresh("bench").await;
    let warm_sync = cors_syncer(&warm, 2);
    warm.write(&warm_sync.outbox(), Utc::now(), writes(WARM_UP))
        .await
        .unwrap();
    let cold = timed_sync(warm_sync, WARM_UP, &now).await;
    let mut rates = Vec::new();
    for (_store, sync) in rounds {
        rates.push(timed_sync(sync, SYNCED, &now).await);
    }
    // IndexedDB's own floor, three times, in the same page after the syncs.
    let mut floors = Vec::new();
    for _ in 0..ROUNDS {
        floors.push(indexeddb_floor(SYNCED, &now).await);
    }
    let floor = median(floors.clone());
    console_log!(
        "browser benchmark: IndexedDB's own floor for an outbox (read 100, delete their range, no headwater, no network): {floor:.0} rows/s (median of {}); headwater's sync is {:.0} % of it",
        floors
            .iter()
            .map(|rate| format!("{rate:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        100.0 * median(rates.clone()) / floor
    );
    console_log!(
        "browser benchmark: plain record write {plain:.2} ms, captured write (record + outbox, one transaction) {captured:.2} ms ({:.2}x); synced {} changes from IndexedDB to the mock Flume at {:.0} changes/s (median of {ROUNDS} runs after a warm-up of {WARM_UP} at {cold:.0}: {})",
        captured / plain,
        SYNCED,
        median(rates.clone()),
        rates
            .iter()
            .map(|rate| format!("{rate:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
