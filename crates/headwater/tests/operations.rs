//! What an operator relies on: a stall is reported, and a bounded outbox refuses a
//! capture with a typed error instead of dropping anything.

use std::time::Duration;

use headwater::{CaptureError, ChangeData, Headwater, StoreError};
use headwater_mock_flume::{MockConfig, MockFault, MockFlume};

#[tokio::test]
async fn a_flume_that_takes_connections_but_never_answers_shows_as_stalled() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    for _ in 0..10 {
        flume.push_fault(MockFault::Hang);
    }
    let headwater = Headwater::builder()
        .flume([flume.url()])
        // Shutdown waits for the request in flight: keep its timeout short.
        .timeout(Duration::from_secs(4))
        .configure(|config| config.stall_after = Some(Duration::from_secs(1)))
        .start()
        .unwrap();
    headwater
        .capture(ChangeData::insert("todos", "1", &"milk").unwrap())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        let status = headwater.status().await.unwrap();
        if status.stalled_since.is_some() || started.elapsed() > Duration::from_secs(10) {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.stalled_since.is_some(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "seen within the configured time (and well before the request timeout)"
    );
    assert_eq!((status.pending, status.blocked), (1, None));
    headwater.shutdown().await;
}

#[tokio::test]
async fn a_full_outbox_refuses_the_capture_and_keeps_what_it_holds() {
    // A Flume that is down: nothing drains.
    let headwater = Headwater::builder()
        .flume(["http://127.0.0.1:9/"])
        .configure(|config| {
            config.outbox_limits.max_pending = Some(3);
        })
        .start()
        .unwrap();
    for n in 0..3 {
        headwater
            .capture(ChangeData::insert("todos", n.to_string(), &n).unwrap())
            .await
            .unwrap();
    }
    let refused = headwater
        .capture(ChangeData::insert("todos", "3", &3).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, CaptureError::Store(StoreError::OutboxFull { reason }) if reason.contains("max_pending = 3")),
        "{refused:?}"
    );
    let all = headwater
        .capture_all(vec![ChangeData::delete("todos", "0").unwrap()])
        .await;
    assert!(all.is_err(), "capture_all is refused whole");
    let status = headwater.status().await.unwrap();
    assert_eq!(status.pending, 3, "the three captured are kept");
    headwater.shutdown().await;
}

#[tokio::test]
async fn capture_when_room_waits_for_delivery_instead_of_failing() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    for _ in 0..3 {
        flume.push_fault(MockFault::Delay(Duration::from_millis(200)));
    }
    let headwater = Headwater::builder()
        .flume([flume.url()])
        .configure(|config| config.outbox_limits.max_pending = Some(5))
        .start()
        .unwrap();
    let mut refused = 0;
    for n in 0..40 {
        let change = ChangeData::insert("todos", n.to_string(), &n).unwrap();
        if headwater.capture(change.clone()).await.is_err() {
            refused += 1;
            headwater.capture_when_room(change).await.unwrap();
        }
    }
    assert!(refused > 0, "the outbox filled while Flume was slow");
    headwater.flush().await.unwrap();
    assert_eq!(
        flume.unique_ids(),
        40,
        "every change captured and delivered"
    );
    headwater.shutdown().await;
}

/// A Flume that answers 401 blocks the outbox: a caller waiting on a receipt hears why,
/// instead of waiting until the block clears (or forever), and the change is kept.
#[tokio::test]
async fn a_receipt_of_a_blocked_outbox_fails_with_the_reason() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    for _ in 0..100 {
        flume.push_fault(MockFault::Status(401));
    }
    let headwater = Headwater::builder().flume([flume.url()]).start().unwrap();
    let receipt = headwater
        .capture(ChangeData::insert("todos", "1", &"milk").unwrap())
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(20), receipt.delivered())
        .await
        .expect("the receipt answers once the outbox is blocked");
    match waited {
        Err(headwater::FlushError::Blocked(reason)) => {
            assert!(reason.contains("401"), "{reason}");
        }
        other => panic!("expected Blocked, got {other:?}"),
    }
    assert_eq!(headwater.status().await.unwrap().pending, 1);
    headwater.shutdown().await;
}

/// Natively a handle leads from `start`, before its delivery task has first run (on a
/// current-thread runtime it has not run yet when `start` returns), and no longer once
/// delivery has ended.
#[tokio::test(flavor = "current_thread")]
async fn a_native_handle_leads_from_start_until_shutdown() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    let headwater = Headwater::builder()
        .flume([flume.url()])
        .source("leader")
        .start()
        .unwrap();
    assert!(headwater.is_leader(), "leading as start returns");
    headwater.shutdown().await;
    assert!(!headwater.is_leader(), "delivery has ended");
}
