use chrono::{DateTime, Utc};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use super::mapping::OtlpMapping;
use super::proto::common::v1::InstrumentationScope;
use super::proto::resource::v1::Resource;
use super::protobuf::{self, key};
use super::value::string_attribute;
use super::{COLLECTION_ATTRIBUTE, KEY_ATTRIBUTE, OP_ATTRIBUTE, SEQ_ATTRIBUTE, UID_ATTRIBUTE};
use crate::flume::{EventMapping, Push};
use crate::model::Change;

/// `ExportLogsServiceRequest.resource_logs`, `ResourceLogs.scope_logs`,
/// `ScopeLogs.log_records`: the fields that nest a batch's records (each key one byte).
const RESOURCE_LOGS: u32 = 1;
const SCOPE_LOGS: u32 = 2;
/// `ScopeLogs.log_records`, a `LogRecord`: field 2, length-delimited.
const LOG_RECORD_KEY: u8 = 2 << 3 | 2;
/// The most bytes the two lengths that depend on the records take (two varints of a
/// `u32`): a batch's size is checked against its limit with them counted in full.
const LENGTHS: usize = 10;

/// Encodes changes into one `ExportLogsServiceRequest` (one resource, one scope) in
/// protobuf, a record at a time, as the engine builds batches: [`start`](Self::start),
/// [`push`](Self::push) each change, [`finish`](Self::finish).
///
/// The records are written as they come, straight into the body (no message structs);
/// `finish` puts the resource and scope in front, whose lengths are only known then.
/// Sizes are checked on the finished message.
#[derive(Debug, Clone)]
pub struct OtlpEncoder {
    /// `ResourceLogs.resource` and `ScopeLogs.scope`, each with its key and length.
    resource_field: Vec<u8>,
    scope_field: Vec<u8>,
    /// `observed_time_unix_nano` of the batch being built.
    observed: u64,
    /// Where [`encoded_len`](Self::encoded_len) writes.
    scratch: Vec<u8>,
}

/// Nanoseconds since the epoch; times before it are 0 (unset in OTLP).
fn nanos(at: DateTime<Utc>) -> u64 {
    at.timestamp_nanos_opt()
        .and_then(|nanos| u64::try_from(nanos).ok())
        .unwrap_or(0)
}

fn field(tag: u32, message: &impl Message) -> Vec<u8> {
    let mut bytes = Vec::new();
    prost::encoding::message::encode(tag, message, &mut bytes);
    bytes
}

impl OtlpEncoder {
    /// An encoder for `mapping` (its source and static headers) and `otlp`.
    pub fn new(mapping: &EventMapping, otlp: &OtlpMapping) -> Self {
        let mut attributes = vec![
            string_attribute("service.name", &otlp.service_name),
            string_attribute("service.instance.id", &mapping.source),
        ];
        attributes.extend(
            mapping
                .static_headers
                .iter()
                .filter(|(name, _)| {
                    !matches!(name.as_str(), "service.name" | "service.instance.id")
                })
                .map(|(name, value)| string_attribute(name, value)),
        );
        let resource = Resource {
            attributes,
            ..Resource::default()
        };
        let scope = InstrumentationScope {
            name: "headwater".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..InstrumentationScope::default()
        };
        Self {
            resource_field: field(1, &resource),
            scope_field: field(1, &scope),
            observed: 0,
            scratch: Vec::new(),
        }
    }

    /// Starts an empty batch in `body`, replacing what it held; `now` is the records'
    /// `observed_time_unix_nano`.
    pub fn start(&mut self, body: &mut Vec<u8>, now: DateTime<Utc>) {
        body.clear();
        self.observed = nanos(now);
    }

    /// The bytes `finish` adds in front of `records` bytes of records (an upper bound).
    fn overhead(&self) -> usize {
        // Two keys of one byte, the two nesting lengths, the resource and the scope.
        2 + LENGTHS + self.resource_field.len() + self.scope_field.len()
    }

    /// Appends `change` to the batch in `body` if the finished request stays within
    /// `max_bytes`.
    pub fn push(
        &mut self,
        body: &mut Vec<u8>,
        _events: usize,
        change: &Change,
        max_bytes: usize,
    ) -> Push {
        let mark = body.len();
        let start = protobuf::open(body, LOG_RECORD_KEY);
        self.write_record(body, change);
        protobuf::close(body, start);
        if body.len() + self.overhead() > max_bytes {
            body.truncate(mark);
            return Push::Full;
        }
        Push::Added
    }

    /// Closes the batch in `body`: the resource and the scope go in front of its
    /// records. A batch without records stays empty (an empty request).
    pub fn finish(&self, body: &mut Vec<u8>) {
        if body.is_empty() {
            return;
        }
        let scope_logs = self.scope_field.len() + body.len();
        let resource_logs =
            self.resource_field.len() + 1 + encoded_len_varint(scope_logs as u64) + scope_logs;
        let mut front = Vec::with_capacity(self.overhead());
        encode_key(RESOURCE_LOGS, WireType::LengthDelimited, &mut front);
        encode_varint(resource_logs as u64, &mut front);
        front.extend_from_slice(&self.resource_field);
        encode_key(SCOPE_LOGS, WireType::LengthDelimited, &mut front);
        encode_varint(scope_logs as u64, &mut front);
        front.extend_from_slice(&self.scope_field);
        body.splice(0..0, front);
    }

    /// The size of a request that holds `change` alone.
    pub fn encoded_len(&mut self, change: &Change) -> usize {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let start = protobuf::open(&mut scratch, LOG_RECORD_KEY);
        self.write_record(&mut scratch, change);
        protobuf::close(&mut scratch, start);
        let len = scratch.len() + self.overhead();
        self.scratch = scratch;
        len
    }

    /// Writes the fields of `change`'s log record.
    fn write_record(&self, out: &mut Vec<u8>, change: &Change) {
        let data = change.data();
        let captured = nanos(change.captured_at());
        // Zero is "unset" in OTLP, and left out as prost leaves it out.
        if captured != 0 {
            protobuf::fixed64_field(out, key::TIME, captured);
        }
        if let Some(json) = data.value_json() {
            let start = protobuf::open(out, key::BODY);
            let mut deserializer = serde_json::Deserializer::from_str(json);
            let written = serde::de::DeserializeSeed::deserialize(
                protobuf::AnyValue(&mut *out),
                &mut deserializer,
            );
            if written.is_err() {
                // Values are checked JSON from capture; should a stored one not be, it
                // goes as the text it is rather than not at all.
                out.truncate(start);
                protobuf::bytes_field(out, key::STRING, json.as_bytes());
            }
            protobuf::close(out, start);
        }
        let mut uid = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let uid = change.id().as_uuid().hyphenated().encode_lower(&mut uid);
        protobuf::string_attribute(out, UID_ATTRIBUTE, uid);
        protobuf::string_attribute(out, COLLECTION_ATTRIBUTE, data.collection());
        protobuf::string_attribute(out, KEY_ATTRIBUTE, data.key());
        protobuf::string_attribute(out, OP_ATTRIBUTE, data.kind().as_str());
        protobuf::int_attribute(
            out,
            SEQ_ATTRIBUTE,
            i64::try_from(change.seq().get()).unwrap_or(i64::MAX),
        );
        for (name, value) in data.headers() {
            if !matches!(
                name.as_str(),
                UID_ATTRIBUTE | COLLECTION_ATTRIBUTE | KEY_ATTRIBUTE | OP_ATTRIBUTE | SEQ_ATTRIBUTE
            ) {
                protobuf::string_attribute(out, name, value);
            }
        }
        if self.observed != 0 {
            protobuf::fixed64_field(out, key::OBSERVED_TIME, self.observed);
        }
    }
}
