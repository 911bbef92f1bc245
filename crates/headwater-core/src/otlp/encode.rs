use chrono::{DateTime, Utc};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use super::mapping::OtlpMapping;
use super::proto::common::v1::InstrumentationScope;
use super::proto::common::v1::any_value;
use super::proto::logs::v1::LogRecord;
use super::proto::resource::v1::Resource;
use super::value::{attribute, string_attribute};
use super::{COLLECTION_ATTRIBUTE, KEY_ATTRIBUTE, OP_ATTRIBUTE, SEQ_ATTRIBUTE, UID_ATTRIBUTE};
use crate::flume::{EventMapping, Push};
use crate::model::Change;

/// `ExportLogsServiceRequest.resource_logs`, `ResourceLogs.scope_logs`,
/// `ScopeLogs.log_records`: the fields that nest a batch's records (each key one byte).
const RESOURCE_LOGS: u32 = 1;
const SCOPE_LOGS: u32 = 2;
const LOG_RECORDS: u32 = 2;
/// The most bytes the two lengths that depend on the records take (two varints of a
/// `u32`): a batch's size is checked against its limit with them counted in full.
const LENGTHS: usize = 10;

/// Encodes changes into one `ExportLogsServiceRequest` (one resource, one scope) in
/// protobuf, a record at a time, as the engine builds batches: [`start`](Self::start),
/// [`push`](Self::push) each change, [`finish`](Self::finish).
///
/// The records are written as they come; `finish` puts the resource and scope in front,
/// whose lengths are only known then. Sizes are checked on the finished message.
#[derive(Debug, Clone)]
pub struct OtlpEncoder {
    /// `ResourceLogs.resource` and `ScopeLogs.scope`, each with its key and length.
    resource_field: Vec<u8>,
    scope_field: Vec<u8>,
    /// `observed_time_unix_nano` of the batch being built.
    observed: u64,
    record: LogRecord,
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
            record: LogRecord::default(),
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
        self.fill(change);
        let len = self.record.encoded_len();
        let added = 1 + encoded_len_varint(len as u64) + len;
        if body.len() + added + self.overhead() > max_bytes {
            return Push::Full;
        }
        encode_key(LOG_RECORDS, WireType::LengthDelimited, body);
        encode_varint(len as u64, body);
        self.record.encode_raw(body);
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
        self.fill(change);
        let len = self.record.encoded_len();
        1 + encoded_len_varint(len as u64) + len + self.overhead()
    }

    /// The log record of `change`, as the batch being built holds it.
    pub fn log_record(&mut self, change: &Change) -> LogRecord {
        self.fill(change);
        self.record.clone()
    }

    /// Fills the encoder's record (its buffers reused) with `change`.
    fn fill(&mut self, change: &Change) {
        let data = change.data();
        let record = &mut self.record;
        record.time_unix_nano = nanos(change.captured_at());
        record.observed_time_unix_nano = self.observed;
        record.body = data
            .value_json()
            .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok())
            .map(|value| super::value::any_value(&value));
        record.attributes.clear();
        record
            .attributes
            .push(string_attribute(UID_ATTRIBUTE, &change.id().to_string()));
        record
            .attributes
            .push(string_attribute(COLLECTION_ATTRIBUTE, data.collection()));
        record
            .attributes
            .push(string_attribute(KEY_ATTRIBUTE, data.key()));
        record
            .attributes
            .push(string_attribute(OP_ATTRIBUTE, data.kind().as_str()));
        record.attributes.push(attribute(
            SEQ_ATTRIBUTE,
            any_value::Value::IntValue(i64::try_from(change.seq().get()).unwrap_or(i64::MAX)),
        ));
        for (name, value) in data.headers() {
            if !matches!(
                name.as_str(),
                UID_ATTRIBUTE | COLLECTION_ATTRIBUTE | KEY_ATTRIBUTE | OP_ATTRIBUTE | SEQ_ATTRIBUTE
            ) {
                record.attributes.push(string_attribute(name, value));
            }
        }
    }
}
