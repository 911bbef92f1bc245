//! Arbitrary bytes into the Flume decoder: it never panics, respects its limits, and
//! what it accepts re-encodes and decodes to an equal batch. Where the text is strict
//! JSON, the decoder (a port of Gson's lenient reader) agrees with serde_json: what it
//! accepts is what serde_json reads, through Gson's rules for `List<JSONEvent>`, and it
//! refuses strict JSON only for what Flume refuses in it.
#![no_main]
#![forbid(unsafe_code)]

use headwater_core::flume::{
    DecodeErrorKind, DecodeLimits, FlumeEvent, decode_batch, encode_events,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const LIMITS: DecodeLimits = DecodeLimits {
    max_bytes: 64 * 1024,
    max_events: 64,
    max_depth: 16,
};

/// Whether `decoded` is how Gson's `String` adapter reads `value`.
fn same_scalar(decoded: &str, value: &Value) -> bool {
    match value {
        Value::String(text) => decoded == text,
        Value::Bool(flag) => decoded == flag.to_string(),
        // The decoder keeps a number's literal text; serde_json its value.
        Value::Number(_) => serde_json::from_str::<Value>(decoded).ok().as_ref() == Some(value),
        _ => false,
    }
}

fn agrees(event: &FlumeEvent, value: &Value) -> bool {
    let Value::Object(members) = value else {
        return false;
    };
    let body_ok = match members.get("body") {
        None | Some(Value::Null) => event.body.is_empty(),
        Some(body) => same_scalar(&event.body, body),
    };
    let pairs: Vec<(String, &Value)> = match members.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(headers)) => headers.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Some(Value::Array(pairs)) => {
            let mut named = Vec::new();
            for pair in pairs {
                match pair.as_array().map(Vec::as_slice) {
                    Some([Value::String(name), value]) => named.push((name.clone(), value)),
                    Some([Value::Bool(name), value]) => named.push((name.to_string(), value)),
                    // A number's literal text is the name, which serde_json does not keep.
                    _ => return true,
                }
            }
            named
        }
        Some(_) => return false,
    };
    // serde_json keeps the last of a repeated name, as Gson's map does when it accepts.
    let mut last = std::collections::BTreeMap::new();
    for (name, value) in pairs {
        last.insert(name, value);
    }
    let headers_ok = last.len() == event.headers.len() + event.null_headers.len()
        && last.iter().all(|(name, value)| match value {
            Value::Null => event.null_headers.contains(name),
            value => event
                .headers
                .get(name)
                .is_some_and(|decoded| same_scalar(decoded, value)),
        });
    body_ok && headers_ok
}

fuzz_target!(|data: &[u8]| {
    // Flume decodes the charset first; the decoder sees text.
    let text = String::from_utf8_lossy(data);
    let strict: Option<Value> = serde_json::from_str(&text).ok();
    match decode_batch(&text, &LIMITS) {
        Ok(events) => {
            assert!(events.len() <= LIMITS.max_events);
            let mut encoded = Vec::new();
            encode_events(&events, &mut encoded);
            let encoded = std::str::from_utf8(&encoded).expect("the encoder writes UTF-8");
            let again = decode_batch(encoded, &DecodeLimits::default())
                .expect("what the decoder accepted re-encodes to a valid batch");
            assert_eq!(again, events);
            // Lone surrogate escapes are stored as '?', which serde_json reads otherwise.
            if let Some(Value::Array(values)) = strict.filter(|_| !text.contains("\\u")) {
                assert_eq!(values.len(), events.len());
                for (event, value) in events.iter().zip(&values) {
                    assert!(agrees(event, value), "{event:?} is not {value}");
                }
            }
        }
        Err(error) => {
            assert!(
                error.offset <= text.len(),
                "{error:?} points past the input"
            );
            let status = error.flume_status();
            assert!(matches!(status, 400 | 413 | 500), "{status}");
            if strict.is_some() {
                assert!(
                    !matches!(
                        error.kind,
                        DecodeErrorKind::Empty
                            | DecodeErrorKind::TrailingContent
                            | DecodeErrorKind::BadUnicodeEscape { .. }
                    ),
                    "strict JSON refused as {error:?}"
                );
            }
        }
    }
});
