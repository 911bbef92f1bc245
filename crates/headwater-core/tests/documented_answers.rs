//! docs/delivery-semantics.md holds the one table of how each answer from Flume is
//! handled; this keeps each of its rows and `classify` saying the same thing: the row
//! that names a status says the action the classifier takes for it.

use headwater_core::policy::{Overload, Rejection, Verdict, classify};
use headwater_core::transport::{Response, SendOutcome};

const PAGE: &str = include_str!("../../../docs/delivery-semantics.md");

/// The rows of the page's answer table: (outcome cell, action cell).
fn rows() -> Vec<(String, String)> {
    let section = &PAGE[PAGE
        .find("## How each answer is handled")
        .expect("the answer section")..];
    section
        .lines()
        .skip_while(|line| !line.starts_with("| outcome"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
            (cells[0].trim().to_owned(), cells[1].trim().to_owned())
        })
        .collect()
}

/// The action of the first row whose outcome cell starts with `outcome`.
fn action(outcome: &str) -> String {
    rows()
        .into_iter()
        .find(|(cell, _)| cell.starts_with(outcome))
        .map(|(_, action)| action)
        .unwrap_or_else(|| panic!("no row for {outcome:?} in docs/delivery-semantics.md"))
}

fn answer(status: u16, message: &str) -> Verdict {
    classify(&SendOutcome::Response(Response::with_message(
        status, message,
    )))
}

fn is_retry(verdict: &Verdict, overload: Overload, back_pressure: bool) -> bool {
    matches!(verdict, Verdict::Retry { overload: o, back_pressure: b, .. } if *o == overload && *b == back_pressure)
}

#[test]
fn acknowledged() {
    assert!(action("2xx").starts_with("acknowledge every change"));
    for status in [200, 201, 204] {
        assert_eq!(answer(status, ""), Verdict::Ack, "{status}");
    }
}

#[test]
fn a_503_that_names_a_capacity_sets_the_batch_size() {
    assert!(action("503 naming").starts_with("set the batch size to N at once"));
    let verdict = answer(
        503,
        "Error appending event to channel. Channel might be full.Put queue for MemoryTransaction of capacity 100 full",
    );
    assert!(
        is_retry(&verdict, Overload::Capacity(100), true),
        "{verdict:?}"
    );
}

#[test]
fn a_503_without_a_hint_halves_the_batch() {
    let action = action("503 without a hint");
    assert!(action.starts_with("retry with backoff; halve the batch size"));
    assert!(action.contains("lower the adaptive in-flight limit"));
    let verdict = answer(503, "Channel might be full.");
    assert!(is_retry(&verdict, Overload::Shrink, true), "{verdict:?}");
}

#[test]
fn throttling_and_timeouts_lower_the_in_flight_limit() {
    let action = action("429, 408, 504, timeout");
    assert!(action.starts_with("retry with backoff; lower the adaptive in-flight limit"));
    for status in [429, 408, 504] {
        let verdict = answer(status, "");
        assert!(
            is_retry(&verdict, Overload::None, true),
            "{status}: {verdict:?}"
        );
    }
    let timeout = classify(&SendOutcome::TimedOut {
        message: "no answer".into(),
    });
    assert!(is_retry(&timeout, Overload::None, true), "{timeout:?}");
}

#[test]
fn other_server_errors_and_connection_errors_are_retried() {
    assert_eq!(
        action("502, other 5xx, connection error"),
        "retry with backoff"
    );
    for status in [502, 599] {
        let verdict = answer(status, "");
        assert!(
            is_retry(&verdict, Overload::None, false),
            "{status}: {verdict:?}"
        );
    }
    let refused = classify(&SendOutcome::ConnectionFailed {
        message: "connection refused".into(),
    });
    assert!(is_retry(&refused, Overload::None, false), "{refused:?}");
}

#[test]
fn a_413_splits_the_batch() {
    assert!(action("413").starts_with("split"));
    assert!(matches!(answer(413, ""), Verdict::TooLarge { .. }));
}

#[test]
fn a_400_isolates_and_a_500_retries_then_isolates() {
    assert!(action("400").starts_with("isolate"));
    assert!(matches!(
        answer(400, ""),
        Verdict::Reject {
            rejection: Rejection::BadRequest,
            ..
        }
    ));
    assert!(action("500").contains("isolates its batch"));
    assert!(matches!(
        answer(500, ""),
        Verdict::Reject {
            rejection: Rejection::ServerError,
            ..
        }
    ));
}

#[test]
fn configuration_problems_block() {
    assert!(action("401, 403, 404, 405, 501").contains("block the outbox"));
    assert!(action("other 4xx, 1xx, 3xx").starts_with("block the outbox"));
    for status in [401, 403, 404, 405, 501, 418, 302, 101] {
        assert!(
            matches!(answer(status, ""), Verdict::Block { .. }),
            "{status}: {:?}",
            answer(status, "")
        );
    }
}
