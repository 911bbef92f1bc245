use chrono::{DateTime, Utc};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use super::json;
use super::mapping::{OtlpEncoding, OtlpMapping};
use super::proto::common::v1::InstrumentationScope;
use super::proto::resource::v1::Resource;
use super::protobuf::{self, key};
use super::value::string_attribute;
use super::{COLLECTION_ATTRIBUTE, KEY_ATTRIBUTE, OP_ATTRIBUTE, SEQ_ATTRIBUTE, UID_ATTRIBUTE};
use crate::flume::{EventMapping, Push};
use crate::model::Change;
use crate::transport::BodyFormat;

/// `ExportLogsServiceRequest.resource_logs`, `ResourceLogs.scope_logs`,
/// `ScopeLogs.log_records`: the fields that nest a batch's records (each key one byte).
const RESOURCE_LOGS: u32 = 1;
const SCOPE_LOGS: u32 = 2;
/// `ScopeLogs.log_records`, a `LogRecord`: field 2, length-delimited.
const LOG_RECORD_KEY: u8 = 2 << 3 | 2;
/// The most bytes the two lengths that depend on the records take (two varints of a
/// `u32`): a batch's size is checked against its limit with them counted in full.
const LENGTHS: usize = 10;

/// Encodes changes into one `ExportLogsServiceRequest` (one resource, one scope), in
/// protobuf or in OTLP's JSON encoding ([`OtlpMapping::encoding`]), a record at a time,
/// as the engine builds batches: [`start`](Self::start), [`push`](Self::push) each
/// change, [`finish`](Self::finish).
///
/// The records are written as they come, straight into the body (no message structs);
/// `finish` puts the resource and scope in front (in protobuf their lengths are only
/// known then). Sizes are checked on the finished message.
#[derive(Debug, Clone)]
pub struct OtlpEncoder {
    frame: Frame,
    /// `observed_time_unix_nano` of the batch being built.
    observed: u64,
    /// Where [`encoded_len`](Self::encoded_len) writes.
    scratch: Vec<u8>,
}

/// What surrounds the records.
#[derive(Debug, Clone)]
enum Frame {
    /// `ResourceLogs.resource` and `ScopeLogs.scope`, each with its key and length.
    Protobuf {
        resource_field: Vec<u8>,
        scope_field: Vec<u8>,
    },
    /// The text before the first record and after the last.
    Json { before: Vec<u8>, after: Vec<u8> },
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

/// The resource's attributes: `service.name`, `service.instance.id`, then the static
/// headers (those two names excepted).
fn resource_attributes<'a>(
    mapping: &'a EventMapping,
    otlp: &'a OtlpMapping,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    [
        ("service.name", otlp.service_name.as_str()),
        ("service.instance.id", mapping.source.as_str()),
    ]
    .into_iter()
    .chain(
        mapping
            .static_headers
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "service.name" | "service.instance.id"))
            .map(|(name, value)| (name.as_str(), value.as_str())),
    )
}

impl OtlpEncoder {
    /// An encoder for `mapping` (its source and static headers) and `otlp`.
    pub fn new(mapping: &EventMapping, otlp: &OtlpMapping) -> Self {
        let scope_name = "headwater";
        let scope_version = env!("CARGO_PKG_VERSION");
        let frame = match otlp.encoding {
            OtlpEncoding::Protobuf => {
                let resource = Resource {
                    attributes: resource_attributes(mapping, otlp)
                        .map(|(name, value)| string_attribute(name, value))
                        .collect(),
                    ..Resource::default()
                };
                let scope = InstrumentationScope {
                    name: scope_name.into(),
                    version: scope_version.into(),
                    ..InstrumentationScope::default()
                };
                Frame::Protobuf {
                    resource_field: field(1, &resource),
                    scope_field: field(1, &scope),
                }
            }
            OtlpEncoding::Json => {
                let mut before = b"{\"resourceLogs\":[{\"resource\":{\"attributes\":[".to_vec();
                for (index, (name, value)) in resource_attributes(mapping, otlp).enumerate() {
                    if index > 0 {
                        before.push(b',');
                    }
                    json::string_attribute(&mut before, name, value);
                }
                before.extend_from_slice(b"]},\"scopeLogs\":[{\"scope\":{\"name\":");
                json::string(&mut before, scope_name);
                before.extend_from_slice(b",\"version\":");
                json::string(&mut before, scope_version);
                before.extend_from_slice(b"},\"logRecords\":[");
                Frame::Json {
                    before,
                    after: b"]}]}]}".to_vec(),
                }
            }
        };
        Self {
            frame,
            observed: 0,
            scratch: Vec::new(),
        }
    }

    /// What its bodies are.
    pub fn format(&self) -> BodyFormat {
        match self.frame {
            Frame::Protobuf { .. } => BodyFormat::OtlpProtobuf,
            Frame::Json { .. } => BodyFormat::OtlpJson,
        }
    }

    /// Starts an empty batch in `body`, replacing what it held; `now` is the records'
    /// `observed_time_unix_nano`.
    pub fn start(&mut self, body: &mut Vec<u8>, now: DateTime<Utc>) {
        body.clear();
        self.observed = nanos(now);
    }

    /// The bytes `finish` adds around the records (an upper bound).
    fn overhead(&self) -> usize {
        match &self.frame {
            // Two keys of one byte, the two nesting lengths, the resource and the scope.
            Frame::Protobuf {
                resource_field,
                scope_field,
            } => 2 + LENGTHS + resource_field.len() + scope_field.len(),
            Frame::Json { before, after } => before.len() + after.len(),
        }
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
        self.write_record(body, change);
        if body.len() + self.overhead() > max_bytes {
            body.truncate(mark);
            return Push::Full;
        }
        Push::Added
    }

    /// Closes the batch in `body`: the resource and the scope go in front of its
    /// records. A batch without records is an empty request.
    pub fn finish(&self, body: &mut Vec<u8>) {
        match &self.frame {
            Frame::Protobuf { .. } if body.is_empty() => {}
            Frame::Protobuf {
                resource_field,
                scope_field,
            } => {
                let scope_logs = scope_field.len() + body.len();
                let resource_logs =
                    resource_field.len() + 1 + encoded_len_varint(scope_logs as u64) + scope_logs;
                let mut front = Vec::with_capacity(self.overhead());
                encode_key(RESOURCE_LOGS, WireType::LengthDelimited, &mut front);
                encode_varint(resource_logs as u64, &mut front);
                front.extend_from_slice(resource_field);
                encode_key(SCOPE_LOGS, WireType::LengthDelimited, &mut front);
                encode_varint(scope_logs as u64, &mut front);
                front.extend_from_slice(scope_field);
                body.splice(0..0, front);
            }
            Frame::Json { .. } if body.is_empty() => body.extend_from_slice(b"{}"),
            Frame::Json { before, after } => {
                body.splice(0..0, before.iter().copied());
                body.extend_from_slice(after);
            }
        }
    }

    /// The size of a request that holds `change` alone.
    pub fn encoded_len(&mut self, change: &Change) -> usize {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        self.write_record(&mut scratch, change);
        let len = scratch.len() + self.overhead();
        self.scratch = scratch;
        len
    }

    /// Appends `change`'s log record to the records in `out`.
    fn write_record(&self, out: &mut Vec<u8>, change: &Change) {
        match self.frame {
            Frame::Protobuf { .. } => {
                let start = protobuf::open(out, LOG_RECORD_KEY);
                self.write_protobuf_record(out, change);
                protobuf::close(out, start);
            }
            Frame::Json { .. } => {
                if !out.is_empty() {
                    out.push(b',');
                }
                self.write_json_record(out, change);
            }
        }
    }

    /// The attributes of `change`'s record, in order: id, collection, key, op, then its
    /// own headers (those with the names of the first four, or of the seq, left out);
    /// the seq is written apart, as an int.
    fn string_attributes<'a>(
        change: &'a Change,
        uid: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> {
        let data = change.data();
        [
            (UID_ATTRIBUTE, uid),
            (COLLECTION_ATTRIBUTE, data.collection()),
            (KEY_ATTRIBUTE, data.key()),
            (OP_ATTRIBUTE, data.kind().as_str()),
        ]
        .into_iter()
        .chain(
            data.headers()
                .iter()
                .filter(|(name, _)| {
                    !matches!(
                        name.as_str(),
                        UID_ATTRIBUTE
                            | COLLECTION_ATTRIBUTE
                            | KEY_ATTRIBUTE
                            | OP_ATTRIBUTE
                            | SEQ_ATTRIBUTE
                    )
                })
                .map(|(name, value)| (name.as_str(), value.as_str())),
        )
    }

    fn seq_of(change: &Change) -> i64 {
        i64::try_from(change.seq().get()).unwrap_or(i64::MAX)
    }

    /// Writes the fields of `change`'s log record in protobuf.
    fn write_protobuf_record(&self, out: &mut Vec<u8>, change: &Change) {
        let captured = nanos(change.captured_at());
        // Zero is "unset" in OTLP, and left out as prost leaves it out.
        if captured != 0 {
            protobuf::fixed64_field(out, key::TIME, captured);
        }
        if let Some(json) = change.data().value_json() {
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
        let mut attributes = Self::string_attributes(change, uid);
        // The four mapped attributes, the seq, then the change's own headers.
        for (name, value) in attributes.by_ref().take(4) {
            protobuf::string_attribute(out, name, value);
        }
        protobuf::int_attribute(out, SEQ_ATTRIBUTE, Self::seq_of(change));
        for (name, value) in attributes {
            protobuf::string_attribute(out, name, value);
        }
        if self.observed != 0 {
            protobuf::fixed64_field(out, key::OBSERVED_TIME, self.observed);
        }
    }

    /// Writes `change`'s log record as a JSON object.
    fn write_json_record(&self, out: &mut Vec<u8>, change: &Change) {
        out.push(b'{');
        let captured = nanos(change.captured_at());
        if captured != 0 {
            json::u64_field(out, "timeUnixNano", captured);
            out.push(b',');
        }
        if self.observed != 0 {
            json::u64_field(out, "observedTimeUnixNano", self.observed);
            out.push(b',');
        }
        if let Some(value) = change.data().value_json() {
            out.extend_from_slice(b"\"body\":");
            let mark = out.len();
            let mut deserializer = serde_json::Deserializer::from_str(value);
            let written = serde::de::DeserializeSeed::deserialize(
                json::AnyValue(&mut *out),
                &mut deserializer,
            );
            if written.is_err() {
                out.truncate(mark);
                out.extend_from_slice(b"{\"stringValue\":");
                json::string(out, value);
                out.push(b'}');
            }
            out.push(b',');
        }
        out.extend_from_slice(b"\"attributes\":[");
        let mut uid = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let uid = change.id().as_uuid().hyphenated().encode_lower(&mut uid);
        let mut attributes = Self::string_attributes(change, uid);
        for (name, value) in attributes.by_ref().take(4) {
            json::string_attribute(out, name, value);
            out.push(b',');
        }
        json::int_attribute(out, SEQ_ATTRIBUTE, Self::seq_of(change));
        for (name, value) in attributes {
            out.push(b',');
            json::string_attribute(out, name, value);
        }
        out.extend_from_slice(b"]}");
    }
}
