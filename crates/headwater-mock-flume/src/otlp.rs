//! An OpenTelemetry Collector's OTLP/HTTP logs receiver (`POST /v1/logs`, protobuf,
//! gzip or not), in front of the same channel and sink as the Flume source: each log
//! record is kept as an event whose `id` header is its `log.record.uid`, so counts,
//! distinct ids and the sink file read the same for both protocols.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use headwater_core::flume::FlumeEvent;
use headwater_core::otlp::proto::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use headwater_core::otlp::proto::logs::v1::LogRecord;
use headwater_core::otlp::{
    COLLECTION_ATTRIBUTE, JSON_CONTENT_TYPE, KEY_ATTRIBUTE, OP_ATTRIBUTE, PROTOBUF_CONTENT_TYPE,
    RpcStatus, SEQ_ATTRIBUTE, UID_ATTRIBUTE, json_value,
};
use prost::Message;

use crate::metrics::add;
use crate::state::{ConnectionKill, Shared};

/// What a Collector says to a body over its limit.
const TOO_LARGE: &str = "http: request body too large";

/// The path of OTLP/HTTP logs.
pub(crate) const LOGS_PATH: &str = "/v1/logs";

/// The encoding of a request, which its answer takes too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names, if OTLP has it.
    fn of(headers: &HeaderMap) -> Option<Self> {
        let mime = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .map(str::trim)
            .unwrap_or("");
        if mime.eq_ignore_ascii_case(PROTOBUF_CONTENT_TYPE) {
            Some(Self::Protobuf)
        } else if mime.eq_ignore_ascii_case(JSON_CONTENT_TYPE) {
            Some(Self::Json)
        } else {
            None
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => PROTOBUF_CONTENT_TYPE,
            Self::Json => JSON_CONTENT_TYPE,
        }
    }

    /// An answer with `body` in this encoding.
    fn answer(self, status: StatusCode, body: Vec<u8>) -> Response {
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type()),
        );
        response
    }

    /// An error answer as the Collector gives it: a `google.rpc.Status` (gRPC code 3,
    /// invalid argument, for a 400; 14, unavailable, otherwise).
    fn error(self, status: StatusCode, message: &str) -> Response {
        let code = if status == StatusCode::BAD_REQUEST {
            3
        } else {
            14
        };
        let body = match self {
            Self::Protobuf => RpcStatus {
                code,
                message: message.to_owned(),
            }
            .encode_to_vec(),
            Self::Json => serde_json::json!({"code": code, "message": message})
                .to_string()
                .into_bytes(),
        };
        let mut response = self.answer(status, body);
        // As the Flume side: only a 429 says when to come back.
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }

    fn decode(self, bytes: &[u8]) -> Result<ExportLogsServiceRequest, String> {
        match self {
            Self::Protobuf => {
                ExportLogsServiceRequest::decode(bytes).map_err(|cause| format!("proto: {cause}"))
            }
            Self::Json => serde_json::from_slice(bytes).map_err(|cause| format!("json: {cause}")),
        }
    }

    fn encode(self, answer: &ExportLogsServiceResponse) -> Vec<u8> {
        match self {
            Self::Protobuf => answer.encode_to_vec(),
            Self::Json => serde_json::to_vec(answer).unwrap_or_default(),
        }
    }
}

pub(crate) async fn handle(
    shared: &Arc<Shared>,
    kill: &ConnectionKill,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    add(&shared.counters.requests, 1);
    let Some(encoding) = Encoding::of(headers) else {
        let mut response = (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported media type, supported: [application/json, application/x-protobuf]",
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return response;
    };
    // A Collector answers 400 to a body over its max_request_body_size, before or after
    // inflating it.
    let Ok(body) = axum::body::to_bytes(body, shared.config.max_request_bytes).await else {
        return encoding.error(StatusCode::BAD_REQUEST, TOO_LARGE);
    };
    let drop_after_commit = match shared.fault_before_commit(kill).await {
        Ok(drop) => drop,
        Err(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return encoding.error(
                status,
                status.canonical_reason().unwrap_or("injected fault"),
            );
        }
    };
    let gzipped = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("gzip"));
    let bytes = if gzipped {
        let mut plain = Vec::new();
        let limit = shared.config.max_request_bytes as u64;
        match flate2::read::GzDecoder::new(&body[..])
            .take(limit + 1)
            .read_to_end(&mut plain)
        {
            Ok(_) if plain.len() as u64 <= limit => plain,
            Ok(_) => return encoding.error(StatusCode::BAD_REQUEST, TOO_LARGE),
            Err(cause) => {
                return encoding.error(StatusCode::BAD_REQUEST, &format!("gzip: {cause}"));
            }
        }
    } else {
        body.to_vec()
    };
    if let Some(poison) = &shared.config.refuse_containing
        && bytes
            .windows(poison.len().max(1))
            .any(|window| window == poison.as_bytes())
    {
        return encoding.error(
            StatusCode::BAD_REQUEST,
            "the request holds a refused record",
        );
    }
    let request = match encoding.decode(&bytes) {
        Ok(request) => request,
        Err(message) => return encoding.error(StatusCode::BAD_REQUEST, &message),
    };
    let mut events = Vec::new();
    let mut dropped = 0i64;
    for record in request
        .resource_logs
        .iter()
        .flat_map(|resource| &resource.scope_logs)
        .flat_map(|scope| &scope.log_records)
    {
        let event = event_of(record);
        let drop = shared.config.drop_containing.as_ref().is_some_and(|text| {
            event.body.contains(text.as_str())
                || event
                    .headers
                    .values()
                    .any(|value| value.contains(text.as_str()))
        });
        if drop {
            dropped += 1;
        } else {
            events.push(event);
        }
    }
    if let Err(message) = shared.commit(events).await {
        return encoding.error(StatusCode::SERVICE_UNAVAILABLE, &message);
    }
    shared.after_commit(kill, drop_after_commit).await;
    let answer = ExportLogsServiceResponse {
        partial_success: (dropped > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: dropped,
            error_message: format!(
                "{dropped} log record(s) dropped by the mock's drop_containing filter"
            ),
        }),
    };
    encoding.answer(StatusCode::OK, encoding.encode(&answer))
}

/// A log record as a Flume event: headwater's attributes under Flume's header names
/// (`id`, `collection`, `key`, `op`, `seq`), others under their own, and the body as
/// JSON.
fn event_of(record: &LogRecord) -> FlumeEvent {
    let mut headers = BTreeMap::new();
    for attribute in &record.attributes {
        let name = match attribute.key.as_str() {
            UID_ATTRIBUTE => "id",
            COLLECTION_ATTRIBUTE => "collection",
            KEY_ATTRIBUTE => "key",
            OP_ATTRIBUTE => "op",
            SEQ_ATTRIBUTE => "seq",
            other => other,
        };
        let value = attribute.value.as_ref().map(json_value).unwrap_or_default();
        let text = match value {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        };
        headers.insert(name.to_owned(), text);
    }
    headers.insert(
        "timestamp".into(),
        (record.time_unix_nano / 1_000_000).to_string(),
    );
    FlumeEvent {
        headers,
        null_headers: BTreeSet::new(),
        body: record
            .body
            .as_ref()
            .map(|body| json_value(body).to_string())
            .unwrap_or_default(),
    }
}
