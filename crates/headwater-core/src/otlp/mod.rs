//! OTLP/HTTP logs, headwater's second protocol: a change becomes an OpenTelemetry
//! `LogRecord`, a batch an `ExportLogsServiceRequest` in protobuf for `POST /v1/logs`,
//! and the Collector's answers (a partial success, a `google.rpc.Status`) are read back.
//!
//! | change | log record |
//! |---|---|
//! | id (UUIDv7) | attribute `log.record.uid`, the semantic convention for a record's unique id |
//! | capture time | `time_unix_nano` |
//! | the time of the attempt | `observed_time_unix_nano` |
//! | value | `body`, as a structured `AnyValue` (objects become key-value lists); no body for a delete |
//! | collection, key, op, seq | attributes `headwater.collection`, `headwater.key`, `headwater.op`, `headwater.seq` |
//! | the change's own headers | attributes of the same names (the mapped ones above win) |
//! | the mapping's source | resource attribute `service.instance.id` |
//! | [`OtlpMapping::service_name`] | resource attribute `service.name` |
//! | the mapping's static headers | resource attributes |
//!
//! ```
//! use headwater_core::flume::{EventMapping, Push};
//! use headwater_core::model::{Captured, Change, ChangeData, ChangeIdGenerator, Seq};
//! use headwater_core::otlp::{OtlpEncoder, OtlpMapping, proto};
//! use prost::Message;
//!
//! let now = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
//! let data = ChangeData::insert("todos", "1", &serde_json::json!({"done": false})).unwrap();
//! let id = ChangeIdGenerator::from_seed(1).next_id(now);
//! let change = Change::new(Seq::new(1).unwrap(), Captured { id, captured_at: now, data });
//!
//! let mut encoder = OtlpEncoder::new(&EventMapping::with_source("phone-7"), &OtlpMapping::default());
//! let mut body = Vec::new();
//! encoder.start(&mut body, now);
//! assert_eq!(encoder.push(&mut body, 0, &change, 1 << 20), Push::Added);
//! encoder.finish(&mut body);
//!
//! let request = proto::collector::logs::v1::ExportLogsServiceRequest::decode(&body[..]).unwrap();
//! let record = &request.resource_logs[0].scope_logs[0].log_records[0];
//! assert_eq!(record.time_unix_nano, 1_700_000_000_000_000_000);
//! let uid = record.attributes.iter().find(|kv| kv.key == "log.record.uid").unwrap();
//! assert_eq!(uid.value.as_ref().unwrap().value, Some(proto::common::v1::any_value::Value::StringValue(id.to_string())));
//! ```

mod answer;
mod encode;
mod json;
mod mapping;
mod protobuf;
mod value;

pub use answer::{OtlpAnswer, RpcStatus, read_answer};
pub use encode::OtlpEncoder;
pub use mapping::{OtlpEncoding, OtlpMapping};
pub use value::json_value;

/// The OTLP message types (prost), from `opentelemetry-proto`: what a server or a test
/// decodes requests with.
pub use opentelemetry_proto::tonic as proto;

/// The attribute that carries a change's id.
pub const UID_ATTRIBUTE: &str = "log.record.uid";
/// The attribute that carries a change's collection.
pub const COLLECTION_ATTRIBUTE: &str = "headwater.collection";
/// The attribute that carries a change's key.
pub const KEY_ATTRIBUTE: &str = "headwater.key";
/// The attribute that carries a change's op (`insert`, `update`, `delete`).
pub const OP_ATTRIBUTE: &str = "headwater.op";
/// The attribute that carries a change's seq in its outbox.
pub const SEQ_ATTRIBUTE: &str = "headwater.seq";
/// The content type of protobuf OTLP requests.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";
/// The content type of JSON OTLP requests.
pub const JSON_CONTENT_TYPE: &str = "application/json";
