//! The HTTP transport against the mock Flume: each kind of answer becomes the right
//! outcome.
#![cfg(not(target_arch = "wasm32"))]

use std::time::Duration;

use headwater_core::flume::EncodedBatch;
use headwater_core::policy::{RetryAfter, parse_capacity_hint};
use headwater_core::transport::{SendOutcome, Transport};
use headwater_http::{HttpConfig, HttpTransport, Selection};
use headwater_mock_flume::{MockConfig, MockFault, MockFlume, jetty};

const ONE_EVENT: &[u8] = r#"[{"headers":{"id":"a"},"body":"caf\u00e9 ü"}]"#.as_bytes();

fn batch(body: &[u8]) -> EncodedBatch<'_> {
    EncodedBatch::new(body, 1)
}

fn transport(urls: &[&str], configure: impl FnOnce(&mut HttpConfig)) -> HttpTransport {
    let mut config = HttpConfig::new(urls.iter().copied());
    config.timeout = Duration::from_millis(500);
    configure(&mut config);
    HttpTransport::new(config, chrono::Utc::now).unwrap()
}

fn response(outcome: SendOutcome) -> headwater_core::transport::Response {
    match outcome {
        SendOutcome::Response(response) => response,
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[tokio::test]
async fn a_commit_is_200_and_the_text_arrives_intact() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    let http = transport(&[flume.url()], |_| {});
    let answer = response(http.send(batch(ONE_EVENT)).await);
    assert_eq!((answer.status, answer.message.as_str()), (200, ""));
    assert_eq!(
        flume.events()[0].body,
        "café ü",
        "non-ASCII survives: the charset is sent"
    );
}

#[tokio::test]
async fn each_status_comes_back_with_flumes_message() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    let http = transport(&[flume.url()], |_| {});
    for status in [400, 401, 403, 404, 405, 408, 413, 500, 502, 503, 504] {
        flume.push_fault(MockFault::Status(status));
        let answer = response(http.send(batch(ONE_EVENT)).await);
        assert_eq!(answer.status, status);
        assert!(
            !answer.message.contains('<'),
            "markup is stripped: {}",
            answer.message
        );
        if status == 503 {
            assert!(
                answer.message.starts_with(jetty::CHANNEL_FULL),
                "{}",
                answer.message
            );
        }
    }
    assert_eq!(flume.event_count(), 0);
    let answer = response(http.send(batch(b"{}")).await);
    assert_eq!(
        (answer.status, answer.message.as_str()),
        (400, jetty::BAD_REQUEST)
    );
}

#[tokio::test]
async fn retry_after_is_read() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    let http = transport(&[flume.url()], |_| {});
    flume.push_fault(MockFault::Status(429));
    let answer = response(http.send(batch(ONE_EVENT)).await);
    assert_eq!(answer.status, 429);
    assert_eq!(
        answer.retry_after,
        Some(RetryAfter::Delay(Duration::from_secs(1)))
    );
}

#[tokio::test]
async fn the_capacity_hint_survives_the_error_page() {
    let flume = MockFlume::start(MockConfig {
        transaction_capacity: 2,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let http = transport(&[flume.url()], |_| {});
    let body = br#"[{"body":"1"},{"body":"2"},{"body":"3"}]"#;
    let answer = response(http.send(EncodedBatch::new(body, 3)).await);
    assert_eq!(answer.status, 503);
    assert_eq!(parse_capacity_hint(&answer.message), Some(2));
}

#[tokio::test]
async fn a_hanging_flume_times_out() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    let http = transport(&[flume.url()], |c| c.timeout = Duration::from_millis(200));
    flume.push_fault(MockFault::Hang);
    let outcome = http.send(batch(ONE_EVENT)).await;
    assert!(
        matches!(outcome, SendOutcome::TimedOut { .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn dropped_connections_are_connection_failures() {
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    let http = transport(&[flume.url()], |_| {});
    flume.push_fault(MockFault::DropBeforeCommit);
    let outcome = http.send(batch(ONE_EVENT)).await;
    assert!(
        matches!(outcome, SendOutcome::ConnectionFailed { .. }),
        "{outcome:?}"
    );
    assert_eq!(flume.event_count(), 0, "dropped before the commit");
    flume.push_fault(MockFault::DropAfterCommit);
    let outcome = http.send(batch(ONE_EVENT)).await;
    assert!(
        matches!(outcome, SendOutcome::ConnectionFailed { .. }),
        "{outcome:?}"
    );
    assert_eq!(flume.event_count(), 1, "committed, but the answer was lost");
}

/// A URL where nothing listens.
async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    url
}

#[tokio::test]
async fn failover_moves_on_when_an_endpoint_is_down() {
    let dead = dead_url().await;
    let flume = MockFlume::start(MockConfig::default()).await.unwrap();
    let http = transport(&[&dead, flume.url()], |_| {});
    for _ in 0..3 {
        assert_eq!(response(http.send(batch(ONE_EVENT)).await).status, 200);
    }
    assert_eq!(flume.event_count(), 3);

    let only_dead = transport(&[&dead], |_| {});
    let outcome = only_dead.send(batch(ONE_EVENT)).await;
    assert!(
        matches!(&outcome, SendOutcome::ConnectionFailed { message } if message.contains(&dead)),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn round_robin_spreads_requests() {
    let a = MockFlume::start(MockConfig::default()).await.unwrap();
    let b = MockFlume::start(MockConfig::default()).await.unwrap();
    let http = transport(&[a.url(), b.url()], |c| c.selection = Selection::RoundRobin);
    for _ in 0..6 {
        assert_eq!(response(http.send(batch(ONE_EVENT)).await).status, 200);
    }
    assert_eq!((a.requests(), b.requests()), (3, 3));
}

#[tokio::test]
async fn routing_by_key_sends_each_route_to_its_endpoint_and_fails_over_from_it() {
    let a = MockFlume::start(MockConfig::default()).await.unwrap();
    let b = MockFlume::start(MockConfig::default()).await.unwrap();
    let http = transport(&[a.url(), b.url()], |c| c.selection = Selection::ByKey);
    for route in [0, 1, 1, 2, 3, 1] {
        let sent = http.send(batch(ONE_EVENT).on_route(Some(route))).await;
        assert_eq!(response(sent).status, 200);
    }
    assert_eq!(
        (a.requests(), b.requests()),
        (2, 4),
        "routes 0 and 2 to a, 1 and 3 to b"
    );
    b.shutdown().await;
    let sent = http.send(batch(ONE_EVENT).on_route(Some(1))).await;
    assert_eq!(
        response(sent).status,
        200,
        "b is down: route 1 fails over to a"
    );
    assert_eq!(a.requests(), 3);
}

#[tokio::test]
async fn an_endpoint_that_refuses_rests_while_the_others_take_the_requests() {
    let refusing = MockFlume::start(MockConfig::default()).await.unwrap();
    for _ in 0..10 {
        refusing.push_fault(MockFault::Status(404));
    }
    let healthy = MockFlume::start(MockConfig::default()).await.unwrap();
    let http = transport(&[refusing.url(), healthy.url()], |_| {});
    for _ in 0..3 {
        assert_eq!(response(http.send(batch(ONE_EVENT)).await).status, 200);
    }
    assert_eq!(
        healthy.event_count(),
        3,
        "the healthy endpoint took every batch"
    );
    assert_eq!(
        refusing.requests(),
        1,
        "the refusing one rests after its 404"
    );

    let both = MockFlume::start(MockConfig::default()).await.unwrap();
    for _ in 0..10 {
        both.push_fault(MockFault::Status(404));
    }
    let other = MockFlume::start(MockConfig::default()).await.unwrap();
    for _ in 0..10 {
        other.push_fault(MockFault::Status(405));
    }
    let http = transport(&[both.url(), other.url()], |_| {});
    assert_eq!(
        response(http.send(batch(ONE_EVENT)).await).status,
        405,
        "when every endpoint refuses, the refusal is the answer (and the outbox blocks)"
    );
}

#[tokio::test]
async fn endpoint_rests_are_timed_by_the_clock_the_transport_is_given() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    let refusing = MockFlume::start(MockConfig::default()).await.unwrap();
    refusing.push_fault(MockFault::Status(404));
    let healthy = MockFlume::start(MockConfig::default()).await.unwrap();
    let millis = Arc::new(AtomicI64::new(1_700_000_000_000));
    let clock = Arc::clone(&millis);
    let mut config = HttpConfig::new([refusing.url(), healthy.url()]);
    config.timeout = Duration::from_millis(500);
    let http = HttpTransport::new(config, move || {
        chrono::DateTime::from_timestamp_millis(clock.load(Ordering::SeqCst)).unwrap()
    })
    .unwrap();
    assert_eq!(response(http.send(batch(ONE_EVENT)).await).status, 200);
    assert_eq!(response(http.send(batch(ONE_EVENT)).await).status, 200);
    assert_eq!(refusing.requests(), 1, "it rests while the clock stands");
    millis.fetch_add(3_600_000, Ordering::SeqCst);
    assert_eq!(response(http.send(batch(ONE_EVENT)).await).status, 200);
    assert_eq!(
        refusing.requests(),
        2,
        "an hour later by the given clock (not the system's) it is tried first again"
    );
}
