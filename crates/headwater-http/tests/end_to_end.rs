//! Memory store → engine → HTTP transport → mock Flume over loopback, with faults.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use headwater_core::engine::{SyncConfig, Syncer};
use headwater_core::model::{Change, ChangeData};
use headwater_http::{HttpConfig, HttpTransport};
use headwater_memory::MemoryStore;
use headwater_mock_flume::{MockConfig, MockFault, MockFlume, RandomFaults};

fn config(configure: impl FnOnce(&mut SyncConfig)) -> SyncConfig {
    let mut config = SyncConfig::new("e2e", 11);
    config.backoff.base = Duration::from_millis(5);
    config.backoff.cap = Duration::from_millis(100);
    config.lease = Duration::from_secs(5);
    configure(&mut config);
    config
}

fn transport(flume: &MockFlume) -> HttpTransport {
    let mut http = HttpConfig::new([flume.url()]);
    http.timeout = Duration::from_millis(500);
    HttpTransport::new(http, Utc::now).unwrap()
}

fn changes(count: usize) -> Vec<ChangeData> {
    (0..count)
        .map(|i| {
            ChangeData::update(
                "items",
                format!("k{i}"),
                &serde_json::json!({"n": i, "text": "ünïcödé"}),
            )
            .unwrap()
        })
        .collect()
}

/// A syncer over a fresh memory store, sending to `flume`, with `count` changes captured.
async fn captured(
    flume: &MockFlume,
    count: usize,
    configure: impl FnOnce(&mut SyncConfig),
) -> (Syncer<MemoryStore, HttpTransport>, Vec<Change>) {
    let syncer = Syncer::new(MemoryStore::new(), transport(flume), config(configure)).unwrap();
    let changes = syncer
        .outbox()
        .capture_all(Utc::now(), changes(count))
        .await
        .unwrap();
    (syncer, changes)
}

/// Runs the syncer until the outbox is empty (or 30 s pass), then shuts it down.
async fn deliver(syncer: Syncer<MemoryStore, HttpTransport>) -> Syncer<MemoryStore, HttpTransport> {
    let outbox = syncer.outbox();
    let mut syncer = syncer;
    let run = tokio::spawn(async move {
        syncer.run(Utc::now, tokio::time::sleep).await.unwrap();
        syncer
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = outbox.status(Utc::now()).await.unwrap();
        if status.pending == 0 && status.in_flight == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not delivered in 30 s: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    outbox.shutdown();
    run.await.unwrap()
}

#[tokio::test]
async fn a_batch_over_transaction_capacity_is_delivered_after_one_extra_request() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    let (syncer, captured) = captured(&flume, 150, |c| c.batch.max_events = 150).await;
    let syncer = deliver(syncer).await;
    let expected: Vec<String> = captured.iter().map(|c| c.id().to_string()).collect();
    assert_eq!(flume.ids(), expected, "every change, once, in order");
    assert_eq!(flume.requests(), 3, "150 refused with 503, then 100 and 50");
    assert_eq!(syncer.batch_size(), 100);
    assert_eq!(flume.events()[0].body, r#"{"n":0,"text":"ünïcödé"}"#);
}

#[tokio::test]
async fn lost_acks_duplicate_only_their_batch_with_the_same_ids() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    flume.push_fault(MockFault::DropAfterCommit);
    let (syncer, captured) = captured(&flume, 250, |_| {}).await;
    deliver(syncer).await;
    let ids = flume.ids();
    assert_eq!(flume.unique_ids(), 250);
    assert_eq!(
        flume.duplicates(),
        100,
        "the first batch of 100 arrived twice"
    );
    let first_batch: HashSet<String> = captured[..100].iter().map(|c| c.id().to_string()).collect();
    let mut seen = HashSet::new();
    for id in &ids {
        if !seen.insert(id) {
            assert!(
                first_batch.contains(id),
                "{id} duplicated without a lost ack"
            );
        }
    }
}

#[tokio::test]
async fn drops_before_commit_and_hangs_lose_and_duplicate_nothing() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    flume.push_fault(MockFault::DropBeforeCommit);
    flume.push_fault(MockFault::Hang);
    flume.push_fault(MockFault::Status(503));
    let (syncer, _) = captured(&flume, 120, |_| {}).await;
    let syncer = deliver(syncer).await;
    assert_eq!((flume.unique_ids(), flume.duplicates()), (120, 0));
    let status = syncer.outbox().status(Utc::now()).await.unwrap();
    assert_eq!(status.counters.retries, 3);
}

#[tokio::test]
async fn random_network_faults_lose_nothing() {
    let flume = MockFlume::start(MockConfig {
        random_faults: Some(RandomFaults::network(0.2, 5)),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let (syncer, _) = captured(&flume, 2000, |_| {}).await;
    let syncer = deliver(syncer).await;
    assert_eq!(flume.unique_ids(), 2000);
    let status = syncer.outbox().status(Utc::now()).await.unwrap();
    assert_eq!(status.dead_lettered, 0);
    assert!(status.counters.retries > 0, "faults happened");
}

#[tokio::test]
async fn a_slow_sink_fills_the_channel_and_delivery_adapts() {
    let flume = MockFlume::start(MockConfig {
        capacity: 200,
        transaction_capacity: 100,
        drain_rate: Some(5000.0),
        keep_alive: Duration::from_millis(50),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let (syncer, _) = captured(&flume, 1500, |_| {}).await;
    deliver(syncer).await;
    assert_eq!((flume.unique_ids(), flume.duplicates()), (1500, 0));
}
