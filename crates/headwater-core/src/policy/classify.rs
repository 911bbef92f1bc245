use crate::transport::{Response, SendOutcome};

use super::RetryAfter;

/// How an overloaded Flume asked us to change the batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overload {
    /// Not an overload signal.
    None,
    /// A 503 without a hint: halve the batch.
    Shrink,
    /// A 503 naming the channel's transaction capacity: never send more than this.
    Capacity(usize),
}

/// What an answer means for the batch it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Flume committed the batch: acknowledge every change in it.
    Ack,
    /// Try the same changes again after a backoff.
    Retry {
        /// Whether and how to shrink the batch.
        overload: Overload,
        /// A server-given wait that overrides the backoff.
        retry_after: Option<RetryAfter>,
        /// Whether the answer says the server is overloaded (503, 429, 408, 504, a
        /// timeout): the in-flight limit comes down.
        back_pressure: bool,
        /// What went wrong, for the change's `last_error`.
        reason: String,
    },
    /// The request was too large (413): split the batch and lower the byte limit.
    TooLarge {
        /// What went wrong.
        reason: String,
    },
    /// Flume refused the content: 400 (the body), or 500 (an error while putting the
    /// events, which may be one event breaking an interceptor, or a broken server). The
    /// engine isolates the changes responsible, and condemns one only on evidence that
    /// the fault is its own.
    Reject {
        /// Which refusal.
        rejection: Rejection,
        /// Flume's explanation, kept as the dead-letter reason.
        reason: String,
    },
    /// A configuration problem (401, 403, 404, 405, 501, other 4xx, a TLS failure, a
    /// browser refusing the answer): pause the whole outbox, keep every change, and
    /// probe again slowly.
    Block {
        /// What to tell the operator.
        reason: String,
    },
}

/// The two ways Flume refuses a batch's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// HTTP 400: Flume could not read the body.
    BadRequest,
    /// HTTP 500: Flume failed while putting the events in the channel.
    ServerError,
}

/// Decides what an answer means.
///
/// | outcome | verdict |
/// |---|---|
/// | 2xx | [`Verdict::Ack`] |
/// | 503 | retry, shrinking the batch (to the capacity Flume names, if it does); back pressure |
/// | 429, 408, 504, timeout | retry with backoff; back pressure |
/// | 502, other 5xx, connection error | retry with backoff |
/// | 413 | [`Verdict::TooLarge`] |
/// | 400 | [`Verdict::Reject`] ([`Rejection::BadRequest`]) |
/// | 500 | [`Verdict::Reject`] ([`Rejection::ServerError`]) |
/// | 401, 403, 404, 405, 501, other 4xx, 1xx, 3xx, refused (CORS, TLS) | [`Verdict::Block`] |
pub fn classify(outcome: &SendOutcome) -> Verdict {
    let response = match outcome {
        SendOutcome::Response(response) => response,
        SendOutcome::TimedOut { message } => {
            return retry(Overload::None, None, true, format!("timed out: {message}"));
        }
        SendOutcome::Refused { message } => {
            return Verdict::Block {
                reason: message.clone(),
            };
        }
        SendOutcome::ConnectionFailed { message } => {
            return retry(
                Overload::None,
                None,
                false,
                format!("connection failed: {message}"),
            );
        }
    };
    let Response {
        status,
        retry_after,
        message,
        ..
    } = response;
    let reason = describe(*status, message);
    match status {
        200..=299 => Verdict::Ack,
        503 => {
            let overload = match parse_capacity_hint(message) {
                Some(capacity) => Overload::Capacity(capacity),
                None => Overload::Shrink,
            };
            retry(overload, *retry_after, true, reason)
        }
        408 | 429 | 504 => retry(Overload::None, *retry_after, true, reason),
        500 => Verdict::Reject {
            rejection: Rejection::ServerError,
            reason,
        },
        400 => Verdict::Reject {
            rejection: Rejection::BadRequest,
            reason,
        },
        413 => Verdict::TooLarge { reason },
        501 => Verdict::Block {
            reason: format!(
                "{reason} (the server does not take POST: check that the URL is Flume's HTTP source)"
            ),
        },
        502..=599 => retry(Overload::None, *retry_after, false, reason),
        401 => Verdict::Block {
            reason: format!("{reason} (credentials missing or refused: check the auth headers)"),
        },
        403 => Verdict::Block {
            reason: format!(
                "{reason} (forbidden: check credentials; in a browser, Flume answers CORS preflights with 403 and needs a proxy in front)"
            ),
        },
        404 | 405 => Verdict::Block {
            reason: format!("{reason} (check the endpoint URL and that it is Flume's HTTP source)"),
        },
        _ => Verdict::Block {
            reason: format!("{reason} (unexpected status: check the endpoint configuration)"),
        },
    }
}

fn retry(
    overload: Overload,
    retry_after: Option<RetryAfter>,
    back_pressure: bool,
    reason: String,
) -> Verdict {
    Verdict::Retry {
        overload,
        retry_after,
        back_pressure,
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

    fn answer(status: u16, message: &str) -> Verdict {
        classify(&SendOutcome::Response(Response::with_message(
            status, message,
        )))
    }

    #[test]
    fn row_2xx_acks() {
        for status in [200, 201, 204, 299] {
            assert_eq!(answer(status, ""), Verdict::Ack);
        }
    }

    #[test]
    fn row_503_retries_shrinks_and_pushes_back() {
        assert!(matches!(
            answer(503, FLUME_503_FULL),
            Verdict::Retry {
                overload: Overload::Shrink,
                back_pressure: true,
                ..
            }
        ));
    }

    #[test]
    fn row_503_with_capacity_sets_the_size() {
        assert!(matches!(
            answer(503, FLUME_503_CAPACITY),
            Verdict::Retry {
                overload: Overload::Capacity(100),
                ..
            }
        ));
        assert!(matches!(
            answer(
                503,
                "Put queue for FileBackedTransaction of capacity 10000 full, ..."
            ),
            Verdict::Retry {
                overload: Overload::Capacity(10000),
                ..
            }
        ));
    }

    #[test]
    fn row_overload_statuses_retry_with_back_pressure() {
        for status in [429, 504, 408] {
            assert!(
                matches!(
                    answer(status, "busy"),
                    Verdict::Retry {
                        overload: Overload::None,
                        back_pressure: true,
                        ..
                    }
                ),
                "{status}"
            );
        }
    }

    #[test]
    fn row_broken_gateways_retry_without_back_pressure() {
        for status in [502, 505, 599] {
            assert!(
                matches!(
                    answer(status, ""),
                    Verdict::Retry {
                        back_pressure: false,
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
        assert!(matches!(
            classify(&SendOutcome::Response(response)),
            Verdict::Retry {
                retry_after: Some(RetryAfter::Delay(d)),
                ..
            } if d == Duration::from_secs(5)
        ));
    }

    #[test]
    fn row_timeout_and_connection_errors_retry() {
        let timeout = SendOutcome::TimedOut {
            message: "10s".into(),
        };
        let refused = SendOutcome::ConnectionFailed {
            message: "refused".into(),
        };
        assert!(matches!(
            classify(&timeout),
            Verdict::Retry {
                back_pressure: true,
                ..
            }
        ));
        assert!(matches!(
            classify(&refused),
            Verdict::Retry {
                back_pressure: false,
                ..
            }
        ));
    }

    #[test]
    fn row_413_splits() {
        assert!(matches!(answer(413, ""), Verdict::TooLarge { .. }));
    }

    #[test]
    fn row_400_and_500_reject_with_flumes_message() {
        let message = "Bad request from client. Request has invalid JSON Syntax.";
        assert_eq!(
            answer(400, message),
            Verdict::Reject {
                rejection: Rejection::BadRequest,
                reason: format!("HTTP 400: {message}")
            }
        );
        assert!(matches!(
            answer(500, "interceptor"),
            Verdict::Reject {
                rejection: Rejection::ServerError,
                ..
            }
        ));
    }

    #[test]
    fn row_configuration_errors_block() {
        for status in [401, 403, 404, 405, 409, 418, 501, 302, 101] {
            assert!(
                matches!(answer(status, ""), Verdict::Block { .. }),
                "{status}"
            );
        }
    }

    #[test]
    fn row_refused_blocks() {
        let outcome = SendOutcome::Refused {
            message: "no CORS headers".into(),
        };
        assert_eq!(
            classify(&outcome),
            Verdict::Block {
                reason: "no CORS headers".into()
            }
        );
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
