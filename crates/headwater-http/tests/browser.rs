//! In headless Chromium: the core and the memory store run in the browser, and the HTTP
//! transport delivers through `fetch` to a mock Flume that scripts/test.sh starts.
//!
//! The mock's URLs come at compile time (a wasm test cannot read the environment at run
//! time): `HEADWATER_MOCK_CORS_URL` (a mock with CORS on, as a proxy in front of Flume
//! would add) and `HEADWATER_MOCK_STRICT_URL` (a mock answering exactly as Flume, which
//! sends no CORS headers).
#![cfg(target_arch = "wasm32")]

use std::time::Duration;

use chrono::{DateTime, Utc};
use headwater_core::engine::{SyncConfig, SyncReport, Syncer};
use headwater_core::flume::{DecodeLimits, EncodedBatch, decode_batch};
use headwater_core::model::ChangeData;
use headwater_core::testing::conformance;
use headwater_core::transport::{SendOutcome, Transport};
use headwater_http::{HttpConfig, HttpTransport};
use headwater_memory::MemoryStore;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

fn url(name: &str, value: Option<&'static str>) -> &'static str {
    value.unwrap_or_else(|| {
        panic!("{name} was not set at compile time: run the browser tests through scripts/test.sh")
    })
}

fn cors_url() -> &'static str {
    url(
        "HEADWATER_MOCK_CORS_URL",
        option_env!("HEADWATER_MOCK_CORS_URL"),
    )
}

fn strict_url() -> &'static str {
    url(
        "HEADWATER_MOCK_STRICT_URL",
        option_env!("HEADWATER_MOCK_STRICT_URL"),
    )
}

#[wasm_bindgen_test]
async fn the_memory_store_passes_the_conformance_suite_in_the_browser() {
    conformance::run_all(|| async { MemoryStore::new() }).await;
}

#[wasm_bindgen_test]
fn wall_time_works_in_the_browser() {
    // std::time::Instant panics on wasm32-unknown-unknown; chrono's wasmbind clock works.
    let now = Utc::now();
    assert!(now.timestamp() > 1_700_000_000);
}

/// A syncer over the memory store with ten changes captured, sending to `url`.
async fn ten_changes_for(
    url: &str,
) -> (
    Syncer<MemoryStore, HttpTransport>,
    headwater_core::engine::Outbox<MemoryStore>,
) {
    let syncer = Syncer::new(
        MemoryStore::new(),
        transport(url),
        SyncConfig::new("browser-test", 8),
    )
    .unwrap();
    let outbox = syncer.outbox();
    let changes = (0..10)
        .map(|i| ChangeData::update("todos", format!("k{i}"), &i).unwrap())
        .collect();
    outbox.capture_all(Utc::now(), changes).await.unwrap();
    (syncer, outbox)
}

/// Jumps to when the next attempt is due (after its backoff, and once failures have
/// gone on for a while, after the pacer's wait) instead of waiting for it, and syncs
/// then: the report of the first sync that made a request, and when it ran.
async fn next_attempt(
    syncer: &mut Syncer<MemoryStore, HttpTransport>,
    outbox: &headwater_core::engine::Outbox<MemoryStore>,
    mut now: DateTime<Utc>,
) -> (SyncReport, DateTime<Utc>) {
    for _ in 0..3 {
        let status = outbox.status(now).await.unwrap();
        now = status.next_attempt_at.map_or(now, |at| at.max(now));
        let report = syncer.sync_once(now).await.unwrap();
        if report.requests > 0 {
            return (report, now);
        }
    }
    panic!(
        "no request by {now}: {:?}",
        outbox.status(now).await.unwrap()
    );
}

fn transport(url: &str) -> HttpTransport {
    let mut config = HttpConfig::new([url]);
    config.timeout = Duration::from_secs(5);
    HttpTransport::new(config, Utc::now).unwrap()
}

#[wasm_bindgen_test]
async fn fetch_delivers_a_batch_through_a_cors_proxy() {
    let http = transport(cors_url());
    let body = r#"[{"headers":{"id":"browser-1"},"body":"from the browser é"}]"#;
    let outcome = http.send(EncodedBatch::new(body.as_bytes(), 1)).await;
    assert!(
        matches!(&outcome, SendOutcome::Response(response) if response.status == 200),
        "{outcome:?}"
    );
    let events = decode_batch(body, &DecodeLimits::default()).unwrap();
    assert_eq!(events[0].body, "from the browser é");
}

#[wasm_bindgen_test]
async fn the_engine_syncs_from_the_browser_with_flumes_answers_intact() {
    let syncer = Syncer::new(
        MemoryStore::new(),
        transport(cors_url()),
        SyncConfig::new("browser-test", 7),
    )
    .unwrap();
    syncs_250_changes_in_three_requests(syncer).await;
}

/// Captures 250 changes and syncs once: all delivered, in three requests of the
/// default batch size. Gives the status after.
async fn syncs_250_changes_in_three_requests(
    mut syncer: Syncer<MemoryStore, HttpTransport>,
) -> headwater_core::engine::SyncStatus {
    let outbox = syncer.outbox();
    let changes = (0..250)
        .map(|i| {
            ChangeData::update(
                "todos",
                format!("k{i}"),
                &serde_json::json!({"n": i, "é": true}),
            )
            .unwrap()
        })
        .collect();
    outbox.capture_all(Utc::now(), changes).await.unwrap();
    syncer.sync_once(Utc::now()).await.unwrap();
    let status = outbox.status(Utc::now()).await.unwrap();
    assert!(status.is_synced(), "{status:?}");
    assert_eq!(status.counters.delivered, 250);
    assert_eq!(status.counters.requests, 3);
    status
}

/// OTLP/HTTP logs from the browser: gzip-compressed protobuf through fetch (the
/// `Content-Encoding` header passes the CORS preflight the proxy answers), and the
/// receiver's protobuf answer read back.
#[cfg(feature = "otlp")]
#[wasm_bindgen_test]
async fn the_engine_delivers_otlp_logs_from_the_browser() {
    use headwater_core::otlp::OtlpMapping;
    use headwater_core::protocol::Protocol;

    let otlp_url = format!("{}/v1/logs", cors_url().trim_end_matches('/'));
    let mut config = SyncConfig::new("browser-test", 9);
    config.protocol = Protocol::Otlp(OtlpMapping::with_service_name("browser-app"));
    let syncer = Syncer::new(MemoryStore::new(), transport(&otlp_url), config).unwrap();
    let status = syncs_250_changes_in_three_requests(syncer).await;
    assert_eq!(status.counters.rejected_by_server, 0);
}

#[wasm_bindgen_test]
async fn without_cors_the_outbox_is_blocked_with_the_reason_and_keeps_every_change() {
    // Flume answers the preflight with 403 and sends no CORS headers: fetch fails before
    // the page can read any answer ("Failed to fetch"). While the browser is online, the
    // transport reports repeated failures as refused, and the engine blocks instead of
    // looping.
    let http = transport(strict_url());
    let batch = EncodedBatch::new(b"[]", 0);
    for _ in 0..2 {
        let outcome = http.send(batch).await;
        assert!(
            matches!(outcome, SendOutcome::ConnectionFailed { .. }),
            "{outcome:?}"
        );
    }
    let outcome = http.send(batch).await;
    assert!(
        matches!(&outcome, SendOutcome::Refused { message } if message.contains("CORS")),
        "{outcome:?}"
    );

    let (mut syncer, outbox) = ten_changes_for(strict_url()).await;
    let mut now = Utc::now();
    let mut blocked = false;
    for _ in 0..3 {
        let (report, at) = next_attempt(&mut syncer, &outbox, now).await;
        assert_eq!(report.requests, 1, "{report:?}");
        (blocked, now) = (report.blocked, at);
    }
    assert!(blocked, "blocked after the third refused request");
    let now = now + chrono::TimeDelta::seconds(1);
    assert_eq!(syncer.sync_once(now).await.unwrap().requests, 0, "no loop");
    let status = outbox.status(Utc::now()).await.unwrap();
    assert!(
        status.blocked.as_deref().unwrap().contains("CORS"),
        "{status:?}"
    );
    assert_eq!((status.pending, status.dead_lettered), (10, 0));
}

fn down_url() -> &'static str {
    url(
        "HEADWATER_FLUME_DOWN_URL",
        option_env!("HEADWATER_FLUME_DOWN_URL"),
    )
}

#[wasm_bindgen_test]
async fn a_flume_that_is_down_gets_backoff_not_a_cors_block() {
    // Nothing listens at this URL: the no-cors probe fails too, so this is a Flume that
    // is down, not one that withholds CORS headers, however often it fails.
    let http = transport(down_url());
    let batch = EncodedBatch::new(b"[]", 0);
    for _ in 0..5 {
        let outcome = http.send(batch).await;
        assert!(
            matches!(outcome, SendOutcome::ConnectionFailed { .. }),
            "{outcome:?}"
        );
    }

    let (mut syncer, outbox) = ten_changes_for(down_url()).await;
    let mut now = Utc::now();
    for _ in 0..6 {
        let report;
        (report, now) = next_attempt(&mut syncer, &outbox, now).await;
        assert_eq!(report.requests, 1, "{report:?}");
        assert!(!report.blocked, "a Flume that is down does not block");
    }
    // Right after a failure the batch waits for its backoff: no request at the same
    // instant.
    assert_eq!(syncer.sync_once(now).await.unwrap().requests, 0, "backoff");
    let status = outbox.status(Utc::now()).await.unwrap();
    assert_eq!(status.blocked, None, "{status:?}");
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| !e.contains("CORS")),
        "{status:?}"
    );
    assert_eq!((status.pending, status.dead_lettered), (10, 0));
}

#[wasm_bindgen_test]
async fn a_relative_url_is_resolved_against_the_page() {
    // docs/browser.md puts Flume behind the app's own origin at a path: the transport
    // resolves the path against the page, as fetch would, and the request reaches the
    // page's own server (here the test runner's, which answers it one way or another).
    let page = web_sys::window().unwrap().location().origin().unwrap();
    let http = transport("/flume/");
    assert_eq!(http.endpoints()[0].as_str(), format!("{page}/flume/"));
    let outcome = http.send(EncodedBatch::new(b"[]", 0)).await;
    assert!(
        matches!(outcome, SendOutcome::Response(_)),
        "the page's server answered: {outcome:?}"
    );
}
