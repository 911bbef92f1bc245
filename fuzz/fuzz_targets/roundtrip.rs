//! Arbitrary events (any strings: control characters, non-ASCII, empty names) and
//! arbitrary changes → encode → decode → equal.
#![no_main]
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use headwater_core::flume::{
    BatchEncoder, DecodeLimits, EventMapping, Fit, FlumeEvent, decode_batch, encode_events,
};
use headwater_core::model::{Captured, Change, ChangeData, ChangeIdGenerator, OpKind, Seq};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    events: Vec<(Vec<(String, String)>, String)>,
    changes: Vec<ArbitraryChange>,
    static_headers: Vec<(String, String)>,
    millis: i64,
}

#[derive(Debug, Arbitrary)]
struct ArbitraryChange {
    collection: String,
    key: String,
    delete: bool,
    value: String,
    headers: Vec<(String, String)>,
    seq: u64,
}

fuzz_target!(|input: Input| {
    let events: Vec<FlumeEvent> = input
        .events
        .into_iter()
        .map(|(headers, body)| {
            let mut event = FlumeEvent::with_body(body);
            event.headers = headers.into_iter().collect();
            event
        })
        .collect();
    let mut buffer = Vec::new();
    encode_events(&events, &mut buffer);
    let decoded = decode_batch(
        std::str::from_utf8(&buffer).unwrap(),
        &DecodeLimits::default(),
    );
    assert_eq!(decoded.as_ref(), Ok(&events));

    let mut mapping = EventMapping::with_source("fuzz");
    mapping.static_headers = input
        .static_headers
        .into_iter()
        .filter(|(name, _)| !name.is_empty() && !mapping.headers.sets(name))
        .collect();
    let now = chrono::DateTime::from_timestamp_millis(input.millis % 8_000_000_000_000)
        .unwrap_or_default();
    let mut ids = ChangeIdGenerator::from_seed(input.millis as u64);
    let changes: Vec<Change> = input
        .changes
        .into_iter()
        .filter(|change| !change.collection.is_empty() && !change.key.is_empty())
        .map(|change| {
            let data = if change.delete {
                ChangeData::delete(change.collection, change.key)
            } else {
                ChangeData::update(change.collection, change.key, &change.value)
            }
            .unwrap();
            let data = change
                .headers
                .into_iter()
                .filter(|(name, _)| !name.is_empty())
                .fold(data, |data, (name, value)| {
                    data.with_header(name, value).unwrap()
                });
            Change::new(
                Seq::new(change.seq % (1 << 53)).unwrap_or(Seq::ZERO),
                Captured {
                    id: ids.next_id(now),
                    captured_at: now,
                    data,
                },
            )
        })
        .collect();
    let mut encoder = BatchEncoder::new(mapping.clone());
    assert_eq!(
        encoder.encode(&changes, usize::MAX),
        Fit::Events(changes.len())
    );
    let body = std::str::from_utf8(encoder.batch().body).unwrap();
    let decoded = decode_batch(body, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.len(), changes.len());
    for (event, change) in decoded.iter().zip(&changes) {
        let mut expected: BTreeMap<String, String> = mapping
            .static_headers
            .clone()
            .into_iter()
            .filter(|(name, _)| !change.data().headers().contains_key(name))
            .collect();
        expected.extend(change.data().headers().clone());
        expected.insert("id".into(), change.id().to_string());
        expected.insert("timestamp".into(), now.timestamp_millis().to_string());
        expected.insert("op".into(), change.data().kind().as_str().into());
        expected.insert("collection".into(), change.data().collection().to_owned());
        expected.insert("key".into(), change.data().key().to_owned());
        expected.insert("seq".into(), change.seq().get().to_string());
        expected.insert("source".into(), "fuzz".into());
        assert_eq!(event.headers, expected);
        // The body is the value's JSON text as it was captured (empty for a delete).
        let body = change.data().value_json().unwrap_or("");
        assert_eq!(
            change.data().kind() == OpKind::Delete,
            change.data().value_json().is_none()
        );
        assert_eq!(event.body, body);
    }
});
