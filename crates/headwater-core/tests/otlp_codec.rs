//! The OTLP codec's properties: any batch of changes the encoder builds, in protobuf or
//! in JSON, decodes with the OTLP message types (prost, and their serde for JSON) into
//! the same changes (ids, times, record, op, seq, headers,
//! the value as a structured body), stays within its byte limit, and its size of one
//! change alone bounds the real one; the answer reader takes any bytes without panicking.

use std::collections::BTreeMap;

use headwater_core::flume::{EventMapping, Push};
use headwater_core::model::{Captured, Change, ChangeData, ChangeIdGenerator, Seq};
use headwater_core::otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use headwater_core::otlp::proto::common::v1::{AnyValue, any_value};
use headwater_core::otlp::{OtlpEncoder, OtlpEncoding, OtlpMapping, json_value, read_answer};
use proptest::prelude::*;
use prost::Message;
use serde_json::Value;

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{0,6}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
struct Spec {
    collection: String,
    key: String,
    value: Option<Value>,
    headers: BTreeMap<String, String>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        "[a-z]{1,8}",
        "\\PC{1,10}",
        prop::option::of(json()),
        prop::collection::btree_map("[a-z.]{1,8}", "\\PC{0,8}", 0..3),
    )
        .prop_map(|(collection, key, value, headers)| Spec {
            collection,
            key,
            value,
            headers,
        })
}

fn attribute<'a>(
    record: &'a headwater_core::otlp::proto::logs::v1::LogRecord,
    key: &str,
) -> Option<&'a AnyValue> {
    record
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

fn text(value: Option<&AnyValue>) -> Option<&str> {
    match value?.value.as_ref()? {
        any_value::Value::StringValue(text) => Some(text),
        _ => None,
    }
}

proptest! {
    #[test]
    fn batches_decode_into_the_changes_they_hold(
        specs in prop::collection::vec(spec(), 1..12),
        captured_millis in 0i64..4_000_000_000_000,
        sent_millis in 1i64..4_000_000_000_000,
        max_bytes in 64usize..4096,
        first_seq in 1u64..1_000_000,
        json in any::<bool>(),
    ) {
        let captured_at = chrono::DateTime::from_timestamp_millis(captured_millis).unwrap();
        let now = chrono::DateTime::from_timestamp_millis(sent_millis).unwrap();
        let mut ids = ChangeIdGenerator::from_seed(first_seq);
        let changes: Vec<Change> = specs
            .iter()
            .enumerate()
            .map(|(n, spec)| {
                let data = match &spec.value {
                    Some(value) => ChangeData::update(spec.collection.clone(), spec.key.clone(), value),
                    None => ChangeData::delete(spec.collection.clone(), spec.key.clone()),
                }
                .unwrap();
                let data = spec
                    .headers
                    .iter()
                    .fold(data, |data, (name, value)| data.with_header(name.clone(), value.clone()).unwrap());
                Change::new(
                    Seq::new(first_seq + n as u64).unwrap(),
                    Captured { id: ids.next_id(captured_at), captured_at, data },
                )
            })
            .collect();
        let mut otlp = OtlpMapping::with_service_name("app");
        if json {
            otlp.encoding = OtlpEncoding::Json;
        }
        let mut encoder = OtlpEncoder::new(&EventMapping::with_source("phone-7"), &otlp);
        let mut body = Vec::new();
        encoder.start(&mut body, now);
        let mut pushed = 0;
        for change in &changes {
            if encoder.push(&mut body, pushed, change, max_bytes) != Push::Added {
                break;
            }
            pushed += 1;
        }
        encoder.finish(&mut body);
        prop_assert!(body.len() <= max_bytes || pushed == 0, "{} bytes over {max_bytes}", body.len());

        let request: ExportLogsServiceRequest = if json {
            serde_json::from_slice(&body).unwrap_or_else(|error| {
                panic!("{error}: {}", String::from_utf8_lossy(&body))
            })
        } else {
            ExportLogsServiceRequest::decode(&body[..]).unwrap()
        };
        let records: Vec<_> = request
            .resource_logs
            .iter()
            .flat_map(|resource| &resource.scope_logs)
            .flat_map(|scope| &scope.log_records)
            .collect();
        prop_assert_eq!(records.len(), pushed);
        if pushed > 0 {
            let resource = request.resource_logs[0].resource.as_ref().unwrap();
            let names: Vec<_> = resource.attributes.iter().map(|kv| kv.key.as_str()).collect();
            prop_assert_eq!(names, vec!["service.name", "service.instance.id"]);
        }
        for (record, change) in records.iter().zip(&changes) {
            let data = change.data();
            prop_assert_eq!(record.time_unix_nano, captured_millis as u64 * 1_000_000);
            prop_assert_eq!(record.observed_time_unix_nano, sent_millis as u64 * 1_000_000);
            let id = change.id().to_string();
            prop_assert_eq!(text(attribute(record, "log.record.uid")), Some(id.as_str()));
            prop_assert_eq!(text(attribute(record, "headwater.collection")), Some(data.collection()));
            prop_assert_eq!(text(attribute(record, "headwater.key")), Some(data.key()));
            prop_assert_eq!(text(attribute(record, "headwater.op")), Some(data.kind().as_str()));
            prop_assert_eq!(
                attribute(record, "headwater.seq").and_then(|v| v.value.clone()),
                Some(any_value::Value::IntValue(change.seq().get() as i64))
            );
            for (name, value) in data.headers() {
                if !name.starts_with("headwater.") && name != "log.record.uid" {
                    prop_assert_eq!(text(attribute(record, name)), Some(value.as_str()));
                }
            }
            let expected = data.value_json().map(|json| serde_json::from_str::<Value>(json).unwrap());
            prop_assert_eq!(record.body.as_ref().map(json_value), expected);
        }
        // The size of a request holding one change alone bounds the real one closely.
        let first = &changes[0];
        let alone = encoder.encoded_len(first);
        let mut single = Vec::new();
        encoder.start(&mut single, now);
        let _ = encoder.push(&mut single, 0, first, usize::MAX);
        encoder.finish(&mut single);
        prop_assert!(single.len() <= alone && alone <= single.len() + 10, "{} vs {alone}", single.len());
        if json {
            prop_assert_eq!(single.len(), alone, "JSON sizes are exact");
        }
    }

    #[test]
    fn any_answer_is_read_without_panicking(
        status in 100u16..600,
        json in any::<bool>(),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let content_type = if json { Some("application/json") } else { Some("application/x-protobuf") };
        let answer = read_answer(status, content_type, &body);
        prop_assert!(answer.message.len() <= 1024);
        if !(200..300).contains(&status) {
            prop_assert!(answer.rejected.is_none());
        }
    }
}
