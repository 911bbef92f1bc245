//! The OTLP codec on arbitrary input: any bytes as an answer are read without a panic,
//! and arbitrary changes encode into a request that decodes into as many records, each
//! with its change's id, within the byte limit.
#![no_main]
#![forbid(unsafe_code)]

use arbitrary::Arbitrary;
use headwater_core::flume::{EventMapping, Push};
use headwater_core::model::{Captured, Change, ChangeData, ChangeIdGenerator, Seq};
use headwater_core::otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use headwater_core::otlp::{OtlpEncoder, OtlpMapping, read_answer};
use libfuzzer_sys::fuzz_target;
use prost::Message;

#[derive(Debug, Arbitrary)]
struct Input {
    status: u16,
    json_answer: bool,
    answer: Vec<u8>,
    changes: Vec<(String, String, Option<String>, Vec<(String, String)>)>,
    static_headers: Vec<(String, String)>,
    millis: i64,
    max_bytes: u16,
}

fuzz_target!(|input: Input| {
    let content_type = if input.json_answer { "application/json" } else { "application/x-protobuf" };
    let _ = read_answer(input.status, Some(content_type), &input.answer);

    let mut mapping = EventMapping::with_source("fuzz");
    mapping.static_headers = input.static_headers.into_iter().collect();
    let now = chrono::DateTime::from_timestamp_millis(input.millis % 8_000_000_000_000)
        .unwrap_or_default();
    let mut ids = ChangeIdGenerator::from_seed(input.millis as u64);
    let changes: Vec<Change> = input
        .changes
        .into_iter()
        .filter(|(collection, key, _, _)| !collection.is_empty() && !key.is_empty())
        .enumerate()
        .filter_map(|(n, (collection, key, value, headers))| {
            let data = match value {
                // Any text as a JSON value: a string when it does not parse.
                Some(value) => match serde_json::from_str::<serde_json::Value>(&value) {
                    Ok(json) => ChangeData::update(collection, key, &json),
                    Err(_) => ChangeData::update(collection, key, &value),
                },
                None => ChangeData::delete(collection, key),
            }
            .ok()?;
            let data = headers
                .into_iter()
                .filter(|(name, _)| !name.is_empty())
                .try_fold(data, |data, (name, value)| data.with_header(name, value).ok())?;
            Some(Change::new(
                Seq::new(n as u64 + 1)?,
                Captured { id: ids.next_id(now), captured_at: now, data },
            ))
        })
        .collect();
    let max_bytes = usize::from(input.max_bytes).max(64);
    let mut encoder = OtlpEncoder::new(&mapping, &OtlpMapping::default());
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
    assert!(pushed == 0 || body.len() <= max_bytes);
    let request = ExportLogsServiceRequest::decode(&body[..]).unwrap();
    let records: Vec<_> = request
        .resource_logs
        .iter()
        .flat_map(|resource| &resource.scope_logs)
        .flat_map(|scope| &scope.log_records)
        .collect();
    assert_eq!(records.len(), pushed);
    for (record, change) in records.iter().zip(&changes) {
        let uid = change.id().to_string();
        assert!(record.attributes.iter().any(|kv| kv.key == "log.record.uid"
            && kv.value.as_ref().and_then(|v| v.value.as_ref())
                == Some(&headwater_core::otlp::proto::common::v1::any_value::Value::StringValue(uid.clone()))));
    }
});
