use prost::Message;

use super::proto::collector::logs::v1::ExportLogsServiceResponse;
use crate::transport::PartialRejection;

/// How much of an answer's text is kept.
const MESSAGE_LIMIT: usize = 1024;

/// `google.rpc.Status`, the body of an OTLP error answer (its `details` are left out):
/// what [`read_answer`] reads, and what a server answers with.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct RpcStatus {
    /// The gRPC status code (3, invalid argument, for a bad request; 14, unavailable,
    /// for one to retry).
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// What went wrong, for a person.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// What an OTLP answer's body says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtlpAnswer {
    /// Records the server dropped although it answered 2xx (`partial_success`).
    pub rejected: Option<PartialRejection>,
    /// The server's message: a `google.rpc.Status` message for an error, a partial
    /// success's message (a warning when nothing was rejected), or the text of a body
    /// that is neither.
    pub message: String,
}

fn bounded(mut text: String) -> String {
    if text.len() > MESSAGE_LIMIT {
        let mut end = MESSAGE_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|value| {
        value
            .split(';')
            .next()
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
    })
}

/// A 64-bit count in OTLP's JSON mapping: a decimal string, or a number.
fn json_count(value: Option<&serde_json::Value>) -> i64 {
    match value {
        Some(serde_json::Value::String(text)) => text.parse().unwrap_or(0),
        Some(serde_json::Value::Number(number)) => number.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn json_text(value: Option<&serde_json::Value>) -> String {
    value
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Reads the body of an answer to an OTLP request: for a 2xx an
/// `ExportLogsServiceResponse` (its `partial_success`), otherwise a `google.rpc.Status`;
/// each in protobuf, or in JSON when `content_type` says so. A body that is neither is
/// kept as text. Never fails: an answer's status decides what happens to a batch, and
/// the body only explains it.
///
/// ```
/// use headwater_core::otlp::read_answer;
/// let answer = read_answer(200, Some("application/json"),
///     br#"{"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"too old"}}"#);
/// let rejected = answer.rejected.unwrap();
/// assert_eq!((rejected.count, rejected.message.as_str()), (2, "too old"));
/// ```
pub fn read_answer(status: u16, content_type: Option<&str>, body: &[u8]) -> OtlpAnswer {
    let success = (200..300).contains(&status);
    let (count, message) = if is_json(content_type) {
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
            return OtlpAnswer {
                rejected: None,
                message: bounded(String::from_utf8_lossy(body).into_owned()),
            };
        };
        if success {
            let partial = json
                .get("partialSuccess")
                .or_else(|| json.get("partial_success"));
            let partial = partial.unwrap_or(&serde_json::Value::Null);
            (
                json_count(
                    partial
                        .get("rejectedLogRecords")
                        .or_else(|| partial.get("rejected_log_records")),
                ),
                json_text(
                    partial
                        .get("errorMessage")
                        .or_else(|| partial.get("error_message")),
                ),
            )
        } else {
            (0, json_text(json.get("message")))
        }
    } else if success {
        match ExportLogsServiceResponse::decode(body) {
            Ok(response) => response
                .partial_success
                .map_or((0, String::new()), |partial| {
                    (partial.rejected_log_records, partial.error_message)
                }),
            Err(_) => (0, String::from_utf8_lossy(body).into_owned()),
        }
    } else {
        match RpcStatus::decode(body) {
            Ok(status) if !status.message.is_empty() => (0, status.message),
            _ => (0, String::from_utf8_lossy(body).into_owned()),
        }
    };
    let message = bounded(message);
    OtlpAnswer {
        rejected: (success && count > 0).then(|| PartialRejection {
            count: count.unsigned_abs(),
            message: message.clone(),
        }),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::super::proto::collector::logs::v1::ExportLogsPartialSuccess;
    use super::*;

    #[test]
    fn a_plain_success_rejects_nothing() {
        let body = ExportLogsServiceResponse::default().encode_to_vec();
        assert_eq!(read_answer(200, None, &body), OtlpAnswer::default());
        let json = br#"{"partialSuccess":{}}"#;
        assert_eq!(
            read_answer(200, Some("application/json"), json),
            OtlpAnswer::default()
        );
    }

    #[test]
    fn a_partial_success_in_protobuf_names_the_count_and_the_reason() {
        let body = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 3,
                error_message: "records too old".into(),
            }),
        }
        .encode_to_vec();
        let answer = read_answer(200, Some("application/x-protobuf"), &body);
        assert_eq!(
            answer.rejected,
            Some(PartialRejection {
                count: 3,
                message: "records too old".into()
            })
        );
    }

    #[test]
    fn a_warning_without_rejections_is_only_a_message() {
        let answer = read_answer(
            200,
            Some("application/json; charset=utf-8"),
            br#"{"partialSuccess":{"errorMessage":"deprecated field"}}"#,
        );
        assert_eq!(answer.rejected, None);
        assert_eq!(answer.message, "deprecated field");
    }

    #[test]
    fn an_error_status_gives_its_message() {
        let body = RpcStatus {
            code: 3,
            message: "proto: cannot parse invalid wire-format data".into(),
        }
        .encode_to_vec();
        let answer = read_answer(400, Some("application/x-protobuf"), &body);
        assert_eq!(
            answer.message,
            "proto: cannot parse invalid wire-format data"
        );
        let json = br#"{"code":3,"message":"ReadObject: expect { or n"}"#;
        assert_eq!(
            read_answer(400, Some("application/json"), json).message,
            "ReadObject: expect { or n"
        );
        assert_eq!(
            read_answer(415, Some("text/plain"), b"unsupported media type").message,
            "unsupported media type"
        );
    }

    #[test]
    fn garbage_is_kept_as_bounded_text() {
        let body = vec![0xff; 5000];
        let answer = read_answer(503, None, &body);
        assert!(answer.message.len() <= MESSAGE_LIMIT);
        assert_eq!(
            read_answer(200, Some("application/json"), b"{oops").rejected,
            None
        );
    }
}
