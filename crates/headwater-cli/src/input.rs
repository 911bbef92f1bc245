//! Reading changes from JSON lines, all or nothing.

use std::collections::BTreeMap;

use headwater_core::flume::{BatchEncoder, EventMapping};
use headwater_core::model::{
    Captured, Change, ChangeData, ChangeIdGenerator, JsonText, MAX_SEQ, Op, OpKind, Seq,
};
use serde::Deserialize;
use serde_json::value::RawValue;

/// One line of the input. The value is kept as the JSON text it is, checked but not
/// rebuilt: it becomes the event body as it was written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    collection: String,
    key: String,
    op: OpKind,
    #[serde(default, borrow)]
    value: Option<&'a RawValue>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Why an input cannot be sent; each problem names its line.
#[derive(Debug, thiserror::Error)]
#[error("{} invalid line(s), nothing was sent:\n{}", problems.len(), problems.join("\n"))]
pub(crate) struct InvalidInput {
    /// "line N: what is wrong", for at most the first 20 problems.
    pub problems: Vec<String>,
}

/// Limits a line must keep to.
pub(crate) struct LineRules<'a> {
    /// The mapping events are sent with (the event size depends on it).
    pub mapping: &'a EventMapping,
    /// The largest event, encoded, in bytes.
    pub max_event_bytes: usize,
}

/// Parses every line; if any is invalid, returns them all (up to 20) and nothing else.
pub(crate) fn parse_changes(
    input: &[u8],
    rules: &LineRules<'_>,
) -> Result<Vec<ChangeData>, InvalidInput> {
    let mut encoder = BatchEncoder::new(rules.mapping.clone());
    let mut ids = ChangeIdGenerator::from_seed(0);
    let mut changes = Vec::new();
    let mut problems = Vec::new();
    for (index, raw) in input.split(|byte| *byte == b'\n').enumerate() {
        let number = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let result = std::str::from_utf8(raw)
            .map_err(|error| {
                format!(
                    "not UTF-8 (invalid byte at column {})",
                    error.valid_up_to() + 1
                )
            })
            .and_then(|text| {
                if text.trim().is_empty() {
                    return Ok(None);
                }
                parse_line(text).map(Some)
            })
            .and_then(|change| match change {
                Some(change) => {
                    check_size(&mut encoder, &mut ids, &change, rules.max_event_bytes)?;
                    Ok(Some(change))
                }
                None => Ok(None),
            });
        match result {
            Ok(Some(change)) => changes.push(change),
            Ok(None) => {}
            Err(problem) => {
                if problems.len() < 20 {
                    problems.push(format!("line {number}: {problem}"));
                } else {
                    break;
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(changes)
    } else {
        Err(InvalidInput { problems })
    }
}

/// serde_json's message without its own "at line 1 column N" (a line is parsed alone).
fn describe(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let message = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(message, _)| message);
    if error.column() > 0 {
        format!("column {}: {message}", error.column())
    } else {
        message.to_owned()
    }
}

fn parse_line(raw: &str) -> Result<ChangeData, String> {
    let line: Line<'_> = serde_json::from_str(raw).map_err(|error| describe(&error))?;
    let value = match line.value {
        Some(value) if value.get() == "null" && line.op == OpKind::Delete => None,
        Some(value) => Some(JsonText::from_raw(value)),
        None => None,
    };
    let op = Op::from_parts(line.op, value).map_err(|error| error.to_string())?;
    let mut change =
        ChangeData::new(line.collection, line.key, op).map_err(|error| error.to_string())?;
    for (name, value) in line.headers {
        change = change
            .with_header(name, value)
            .map_err(|error| error.to_string())?;
    }
    Ok(change)
}

/// Refuses a change whose event (with the longest seq and its headers) would pass the
/// per-event limit: it could never be sent.
fn check_size(
    encoder: &mut BatchEncoder,
    ids: &mut ChangeIdGenerator,
    change: &ChangeData,
    max_event_bytes: usize,
) -> Result<(), String> {
    let now = chrono::DateTime::from_timestamp_millis(4_102_444_800_000).unwrap_or_default();
    let probe = Change::new(
        Seq(MAX_SEQ),
        Captured {
            id: ids.next_id(now),
            captured_at: now,
            data: change.clone(),
        },
    );
    let size = encoder.encoded_len(&probe);
    if size > max_event_bytes {
        return Err(format!(
            "the event is {size} bytes, over --max-event-bytes ({max_event_bytes})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(mapping: &EventMapping) -> LineRules<'_> {
        LineRules {
            mapping,
            max_event_bytes: 1 << 20,
        }
    }

    #[test]
    fn valid_lines_become_changes() {
        let text = br#"{"collection":"todos","key":"1","op":"insert","value":{"t": "milk"}}

{"collection":"todos","key":"1","op":"delete","headers":{"tenant":"acme"}}
"#;
        let mapping = EventMapping::default();
        let changes = parse_changes(text, &rules(&mapping)).unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(
            changes[0].value_json(),
            Some(r#"{"t": "milk"}"#),
            "the value is sent as written"
        );
        assert_eq!(changes[1].kind(), OpKind::Delete);
        assert_eq!(changes[1].headers()["tenant"], "acme");
    }

    #[test]
    fn every_bad_line_is_named_and_nothing_is_returned() {
        let mut text = br#"{"collection":"todos","key":"1","op":"insert","value":1}
not json
{"collection":"todos","key":"2","op":"insert"}
{"collection":"todos","key":"3","op":"delete","value":5}
{"collection":"","key":"4","op":"update","value":1}
{"collection":"todos","key":"5","op":"upsert","value":1}
{"collection":"todos","key":"6","op":"insert","value":1,"extra":true}
"#
        .to_vec();
        text.extend_from_slice(b"{\"collection\":\"c\",\"key\":\"\xff\",\"op\":\"delete\"}\n");
        let mapping = EventMapping::default();
        let error = parse_changes(&text, &rules(&mapping)).unwrap_err();
        let lines: Vec<&str> = error
            .problems
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                "line 2", "line 3", "line 4", "line 5", "line 6", "line 7", "line 8"
            ]
        );
        assert_eq!(error.problems[0], "line 2: column 2: expected ident");
        assert!(error.problems[1].contains("needs a value"));
        assert!(error.problems[2].contains("carries no value"));
        assert!(
            error.problems[6].contains("not UTF-8"),
            "{}",
            error.problems[6]
        );
    }

    #[test]
    fn a_line_over_the_event_limit_is_refused_before_anything_is_sent() {
        let big = format!(
            "{{\"collection\":\"c\",\"key\":\"k\",\"op\":\"insert\",\"value\":\"{}\"}}\n",
            "x".repeat(2000)
        );
        let mapping = EventMapping::default();
        let rules = LineRules {
            mapping: &mapping,
            max_event_bytes: 1024,
        };
        let error = parse_changes(big.as_bytes(), &rules).unwrap_err();
        assert!(
            error.problems[0].starts_with("line 1: the event is")
                && error.problems[0].contains("--max-event-bytes (1024)"),
            "{}",
            error.problems[0]
        );
    }
}
