//! Flume's HTTP source with `JSONHandler`: a POST (or GET) becomes a batch that the
//! channel takes whole or not at all.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use headwater_core::flume::{DecodeErrorKind, DecodeLimits, decode_batch_with_replacement};

use crate::charset::request_text;
use crate::jetty::{self, error_page};
use crate::metrics::add;
use crate::state::{ConnectionKill, Shared};

pub(crate) async fn handle(
    shared: &Arc<Shared>,
    kill: &ConnectionKill,
    path: &str,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    add(&shared.counters.requests, 1);
    let Ok(body) = axum::body::to_bytes(body, shared.config.max_request_bytes).await else {
        return error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "Request body over the mock's limit of {} bytes",
                shared.config.max_request_bytes
            ),
            path,
        );
    };
    let drop_after_commit = match shared.fault_before_commit(kill).await {
        Ok(drop) => drop,
        Err(code) => return fault_status(code, path),
    };
    if let Some(poison) = &shared.config.refuse_containing
        && body
            .windows(poison.len().max(1))
            .any(|window| window == poison.as_bytes())
    {
        return error_page(StatusCode::BAD_REQUEST, jetty::BAD_REQUEST, path);
    }

    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let text = match request_text(content_type, &body) {
        Ok(text) => text,
        Err(message) => return deserializer_failed(&message, path),
    };
    let limits = DecodeLimits {
        max_bytes: usize::MAX,
        max_events: usize::MAX,
        max_depth: 10_000,
    };
    let events = match decode_batch_with_replacement(&text.text, &limits, text.unpaired) {
        Ok(events) => events,
        Err(error) => {
            return match error.kind {
                DecodeErrorKind::Empty | DecodeErrorKind::NullDocument => {
                    deserializer_failed(jetty::NULL_LIST, path)
                }
                DecodeErrorKind::NullEvent => deserializer_failed(jetty::NULL_EVENT, path),
                // Gson's NumberFormatException and LinkedTreeMap's NullPointerException
                // reach Flume unwrapped.
                DecodeErrorKind::BadUnicodeEscape { escape } => deserializer_failed(&escape, path),
                DecodeErrorKind::NullHeaderName => deserializer_failed(jetty::NULL_KEY, path),
                _ => error_page(StatusCode::BAD_REQUEST, jetty::BAD_REQUEST, path),
            };
        }
    };
    if let Err(message) = shared.commit(events).await {
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{}{message}", jetty::CHANNEL_FULL),
            path,
        );
    }
    shared.after_commit(kill, drop_after_commit).await;
    StatusCode::OK.into_response()
}

fn deserializer_failed(message: &str, path: &str) -> Response {
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        &format!("{}{message}", jetty::DESERIALIZER_FAILED),
        path,
    )
}

fn fault_status(code: u16, path: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = match code {
        503 => format!("{}{}", jetty::CHANNEL_FULL, jetty::NO_SPACE),
        _ => status
            .canonical_reason()
            .unwrap_or("Injected fault")
            .to_owned(),
    };
    let mut response = error_page(status, &message, path);
    if code == 429 {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}
