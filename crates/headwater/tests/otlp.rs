//! OTLP/HTTP logs from the facade, into the mock's Collector-like receiver: every
//! change arrives once as a log record with its id as `log.record.uid` and its value as
//! a structured body; faults are retried as with Flume; a partial success is counted
//! and shown, and its batch is not sent again.

use headwater::{ChangeData, Headwater, OtlpEncoding, OtlpMapping, Protocol};
use headwater_mock_flume::{MockConfig, MockFault, MockFlume};

fn todo(n: usize) -> ChangeData {
    ChangeData::update(
        "todos",
        format!("todo-{}", n % 40),
        &serde_json::json!({"n": n, "title": "buy milk", "tags": ["a", "b"], "done": n.is_multiple_of(2)}),
    )
    .unwrap()
}

#[tokio::test]
async fn every_change_arrives_once_as_a_log_record_through_faults() {
    let collector = MockFlume::start(MockConfig::default()).await.unwrap();
    for fault in [
        MockFault::Status(503),
        MockFault::DropAfterCommit,
        MockFault::Status(429),
        MockFault::DropBeforeCommit,
    ] {
        collector.push_fault(fault);
    }
    let headwater = Headwater::builder()
        .otlp([collector.otlp_url()], "todo-app")
        .source("laptop-7")
        .batch_size(50)
        .http(|http| http.timeout = std::time::Duration::from_secs(2))
        .configure(|config| {
            config.backoff.base = std::time::Duration::from_millis(5);
            config.backoff.cap = std::time::Duration::from_millis(50);
        })
        .start()
        .unwrap();
    headwater
        .capture_all((0..1000).map(todo).collect())
        .await
        .unwrap();
    headwater.flush().await.unwrap();
    let status = headwater.status().await.unwrap();
    headwater.shutdown().await;

    assert_eq!(collector.unique_ids(), 1000);
    assert_eq!(status.counters.delivered, 1000);
    assert_eq!(status.counters.rejected_by_server, 0);
    assert!(status.counters.retries >= 3, "{:?}", status.counters);
    let first = collector
        .events()
        .into_iter()
        .find(|event| event.headers["seq"] == "1")
        .unwrap();
    assert_eq!(first.headers["collection"], "todos");
    assert_eq!(first.headers["key"], "todo-0");
    assert_eq!(first.headers["op"], "update");
    let body: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"n": 0, "title": "buy milk", "tags": ["a", "b"], "done": true})
    );
    // Changes of one record reach the receiver in capture order (a batch resent after
    // its answer was lost arrives again before the record's next change).
    let mut last = std::collections::BTreeMap::new();
    for event in collector.events() {
        let seq: u64 = event.headers["seq"].parse().unwrap();
        if let Some(previous) = last.insert(event.headers["key"].clone(), seq) {
            assert!(previous <= seq, "{previous} then {seq}");
        }
    }
}

#[tokio::test]
async fn a_partial_success_is_counted_shown_and_not_sent_again() {
    let config = MockConfig {
        drop_containing: Some("poison".into()),
        ..MockConfig::default()
    };
    let collector = MockFlume::start(config).await.unwrap();
    let headwater = Headwater::builder()
        .otlp([collector.otlp_url()], "todo-app")
        .batch_size(10)
        .max_in_flight(1)
        .start()
        .unwrap();
    let changes = (0..100)
        .map(|n| {
            if n == 42 || n == 43 {
                ChangeData::insert("todos", format!("bad-{n}"), &"poison").unwrap()
            } else {
                todo(n)
            }
        })
        .collect();
    headwater.capture_all(changes).await.unwrap();
    headwater.flush().await.unwrap();
    let status = headwater.status().await.unwrap();
    headwater.shutdown().await;

    assert_eq!(collector.unique_ids(), 98);
    assert_eq!(collector.duplicates(), 0, "the batch is not sent again");
    assert_eq!(status.counters.rejected_by_server, 2);
    assert_eq!(status.counters.delivered, 100);
    assert_eq!(status.pending, 0);
    let report = status
        .last_partial_rejection
        .expect("the rejection is shown");
    assert_eq!(report.rejected, 2);
    assert!(
        report.first.get() <= 43 && report.last.get() >= 44,
        "{report:?}"
    );
    assert!(
        report.message.contains("drop_containing"),
        "{}",
        report.message
    );
}

#[tokio::test]
async fn the_json_encoding_delivers_the_same_records() {
    let collector = MockFlume::start(MockConfig::default()).await.unwrap();
    collector.push_fault(MockFault::Status(503));
    let mut otlp = OtlpMapping::with_service_name("todo-app");
    otlp.encoding = OtlpEncoding::Json;
    let headwater = Headwater::builder()
        .otlp([collector.otlp_url()], "todo-app")
        .configure(|config| {
            config.protocol = Protocol::Otlp(otlp);
            config.backoff.base = std::time::Duration::from_millis(5);
        })
        .batch_size(50)
        .start()
        .unwrap();
    headwater
        .capture_all((0..500).map(todo).collect())
        .await
        .unwrap();
    headwater.flush().await.unwrap();
    let status = headwater.status().await.unwrap();
    headwater.shutdown().await;

    assert_eq!(collector.unique_ids(), 500);
    assert_eq!(status.counters.delivered, 500);
    assert!(status.counters.retries >= 1);
    let first = collector
        .events()
        .into_iter()
        .find(|event| event.headers["seq"] == "1")
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"n": 0, "title": "buy milk", "tags": ["a", "b"], "done": true})
    );
}
