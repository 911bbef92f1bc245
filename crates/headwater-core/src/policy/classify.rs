use crate::transport::{Response, SendOutcome};

use super::RetryAfter;

/// How an overloaded Flume asked us to change the batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overload {
    /// Not an overload signal.
    None,
    /// A 503 without a hint: halve the batch.
    Shrink,
    /// A 503 naming the channel's transaction capacity: never send more than this.
    Capacity(usize),
}

/// What the engine does after a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Flume committed the batch: acknowledge every change in it.
    Ack,
    /// Try the same changes again after a backoff.
    Retry {
        /// Whether and how to shrink the batch.
        overload: Overload,
        /// A server-given wait that overrides the backoff.
        retry_after: Option<RetryAfter>,
        /// What went wrong, for the change's `last_error`.
        reason: String,
    },
    /// The request was too large (413): split the batch and lower the byte limit.
    TooLarge {
        /// What went wrong.
        reason: String,
    },
    /// Flume rejected the content (400, or repeated 500s): bisect the batch to find and
    /// dead-letter only the events it rejects.
    Isolate {
        /// Flume's explanation, kept as the dead-letter reason.
        reason: String,
    },
    /// A configuration problem (401, 403, 404, 405, other 4xx): pause the whole outbox,
    /// keep every change, and probe again slowly.
    Block {
        /// What to tell the operator.
        reason: String,
    },
}

/// The tunable part of classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassifyRules {
    /// After this many 500s in a row, bisect as for a 400: one event may be breaking an
    /// interceptor.
    pub isolate_after_server_errors: u32,
}

impl Default for ClassifyRules {
    fn default() -> Self {
        ClassifyRules {
            isolate_after_server_errors: 3,
        }
    }
}

/// Decides what to do about `outcome`.
///
/// `previous_server_errors` counts the 500s that came in a row just before this one.
///
/// | outcome | action |
/// |---|---|
/// | 2xx | [`Action::Ack`] |
/// | 503 | retry, shrinking the batch (to the capacity Flume names, if it does) |
/// | 429, 502, 504, 408, other 5xx, timeout, connection error | retry with backoff |
/// | 413 | [`Action::TooLarge`] |
/// | 400 | [`Action::Isolate`] |
/// | 500 | retry; the `isolate_after_server_errors`-th in a row isolates |
/// | 401, 403, 404, 405, other 4xx, 1xx, 3xx, refused by the browser (CORS) | [`Action::Block`] |
pub fn classify(
    outcome: &SendOutcome,
    previous_server_errors: u32,
    rules: &ClassifyRules,
) -> Action {
    let response = match outcome {
        SendOutcome::Response(response) => response,
        SendOutcome::TimedOut { message } => {
            return retry(Overload::None, None, format!("timed out: {message}"));
        }
        SendOutcome::Refused { message } => {
            return Action::Block {
                reason: message.clone(),
            };
        }
        SendOutcome::ConnectionFailed { message } => {
            return retry(
                Overload::None,
                None,
                format!("connection failed: {message}"),
            );
        }
    };
    let Response {
        status,
        retry_after,
        message,
    } = response;
    let reason = describe(*status, message);
    match status {
        200..=299 => Action::Ack,
        503 => {
            let overload = match parse_capacity_hint(message) {
                Some(capacity) => Overload::Capacity(capacity),
                None => Overload::Shrink,
            };
            retry(overload, *retry_after, reason)
        }
        500 if previous_server_errors + 1 >= rules.isolate_after_server_errors => {
            Action::Isolate { reason }
        }
        408 | 429 | 500..=599 => retry(Overload::None, *retry_after, reason),
        413 => Action::TooLarge { reason },
        400 => Action::Isolate { reason },
        401 => Action::Block {
            reason: format!("{reason} (credentials missing or refused: check the auth headers)"),
        },
        403 => Action::Block {
            reason: format!(
                "{reason} (forbidden: check credentials; in a browser, Flume answers CORS preflights with 403 and needs a proxy in front)"
            ),
        },
        404 | 405 => Action::Block {
            reason: format!("{reason} (check the endpoint URL and that it is Flume's HTTP source)"),
        },
        _ => Action::Block {
            reason: format!("{reason} (unexpected status: check the endpoint configuration)"),
        },
    }
}

fn retry(overload: Overload, retry_after: Option<RetryAfter>, reason: String) -> Action {
    Action::Retry {
        overload,
        retry_after,
        reason,
    }
}

fn describe(status: u16, message: &str) -> String {
    let message = message.trim();
    if message.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {message}")
    }
}

/// Reads the channel capacity out of a Flume 1.x 503 body such as
/// `Put queue for MemoryTransaction of capacity 100 full, consider committing more
/// frequently, ...`.
///
/// ```
/// use headwater_core::policy::parse_capacity_hint;
/// assert_eq!(parse_capacity_hint("Error appending event to channel. Channel might be full.Put queue for MemoryTransaction of capacity 100 full"), Some(100));
/// assert_eq!(parse_capacity_hint("Channel might be full."), None);
/// ```
pub fn parse_capacity_hint(message: &str) -> Option<usize> {
    const MARKER: &str = "of capacity ";
    let start = message.find(MARKER)? + MARKER.len();
    let digits: &str = &message[start..];
    let end = digits
        .find(|ch: char| !ch.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok().filter(|capacity| *capacity > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const FLUME_503_CAPACITY: &str = "Error appending event to channel. Channel might be full.Put queue for MemoryTransaction of capacity 100 full, consider committing more frequently, increasing capacity or increasing thread count";
    const FLUME_503_FULL: &str = "Error appending event to channel. Channel might be full.Space for commit to queue couldn't be acquired. Sinks are likely not keeping up with sources, or the buffer size is too tight";

    fn answer(status: u16, message: &str) -> Action {
        classify(
            &SendOutcome::Response(Response::with_message(status, message)),
            0,
            &ClassifyRules::default(),
        )
    }

    fn is_retry(action: &Action) -> bool {
        matches!(action, Action::Retry { .. })
    }

    #[test]
    fn row_2xx_acks() {
        for status in [200, 201, 204, 299] {
            assert_eq!(answer(status, ""), Action::Ack);
        }
    }

    #[test]
    fn row_503_retries_and_shrinks() {
        assert!(matches!(
            answer(503, FLUME_503_FULL),
            Action::Retry {
                overload: Overload::Shrink,
                ..
            }
        ));
    }

    #[test]
    fn row_503_with_capacity_sets_the_size() {
        assert!(matches!(
            answer(503, FLUME_503_CAPACITY),
            Action::Retry {
                overload: Overload::Capacity(100),
                ..
            }
        ));
        assert!(matches!(
            answer(
                503,
                "Put queue for FileBackedTransaction of capacity 10000 full, ..."
            ),
            Action::Retry {
                overload: Overload::Capacity(10000),
                ..
            }
        ));
    }

    #[test]
    fn row_transient_statuses_retry_without_shrinking() {
        for status in [429, 502, 504, 408] {
            assert!(
                matches!(
                    answer(status, "busy"),
                    Action::Retry {
                        overload: Overload::None,
                        ..
                    }
                ),
                "{status}"
            );
        }
    }

    #[test]
    fn row_retry_after_is_carried() {
        let mut response = Response::status(429);
        response.retry_after = Some(RetryAfter::Delay(Duration::from_secs(5)));
        let action = classify(
            &SendOutcome::Response(response),
            0,
            &ClassifyRules::default(),
        );
        assert!(matches!(
            action,
            Action::Retry {
                retry_after: Some(RetryAfter::Delay(d)),
                ..
            } if d == Duration::from_secs(5)
        ));
    }

    #[test]
    fn row_timeout_and_connection_errors_retry() {
        let rules = ClassifyRules::default();
        let timeout = SendOutcome::TimedOut {
            message: "10s".into(),
        };
        let refused = SendOutcome::ConnectionFailed {
            message: "refused".into(),
        };
        assert!(is_retry(&classify(&timeout, 5, &rules)));
        assert!(is_retry(&classify(&refused, 5, &rules)));
    }

    #[test]
    fn row_413_splits() {
        assert!(matches!(answer(413, ""), Action::TooLarge { .. }));
    }

    #[test]
    fn row_400_isolates_with_flumes_message() {
        let message = "Bad request from client. Request has invalid JSON Syntax.";
        assert_eq!(
            answer(400, message),
            Action::Isolate {
                reason: format!("HTTP 400: {message}")
            }
        );
    }

    #[test]
    fn row_500_retries_then_isolates() {
        let rules = ClassifyRules::default();
        let outcome = SendOutcome::Response(Response::with_message(500, "interceptor"));
        assert!(is_retry(&classify(&outcome, 0, &rules)));
        assert!(is_retry(&classify(&outcome, 1, &rules)));
        assert!(matches!(
            classify(&outcome, 2, &rules),
            Action::Isolate { .. }
        ));
    }

    #[test]
    fn row_configuration_errors_block() {
        for status in [401, 403, 404, 405, 409, 418, 302, 101] {
            assert!(
                matches!(answer(status, ""), Action::Block { .. }),
                "{status}"
            );
        }
    }

    #[test]
    fn row_refused_by_the_browser_blocks() {
        let outcome = SendOutcome::Refused {
            message: "no CORS headers".into(),
        };
        assert_eq!(
            classify(&outcome, 0, &ClassifyRules::default()),
            Action::Block {
                reason: "no CORS headers".into()
            }
        );
    }

    #[test]
    fn other_5xx_retry() {
        for status in [501, 505, 599] {
            assert!(is_retry(&answer(status, "")), "{status}");
        }
    }

    #[test]
    fn capacity_hint_edge_cases() {
        assert_eq!(parse_capacity_hint("of capacity "), None);
        assert_eq!(parse_capacity_hint("of capacity 0 full"), None);
        assert_eq!(
            parse_capacity_hint("of capacity 99999999999999999999999"),
            None
        );
        assert_eq!(parse_capacity_hint("of capacity 7"), Some(7));
    }
}
