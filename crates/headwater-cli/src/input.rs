//! Reading changes from JSON lines, all or nothing.

use std::collections::BTreeMap;

use headwater_core::model::{ChangeData, InvalidChange, JsonText, Op};
use serde::Deserialize;

/// One line of the input file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    collection: String,
    key: String,
    op: Op,
    #[serde(default)]
    value: Option<serde_json::Value>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Why a file cannot be sent; each problem names its line.
#[derive(Debug, thiserror::Error)]
#[error("{} invalid line(s), nothing was sent:\n{}", problems.len(), problems.join("\n"))]
pub struct InvalidInput {
    /// "line N: what is wrong", for at most the first 20 problems.
    pub problems: Vec<String>,
}

/// Parses every line; if any is invalid, returns them all (up to 20) and nothing else.
pub fn parse_changes(text: &str) -> Result<Vec<ChangeData>, InvalidInput> {
    let mut changes = Vec::new();
    let mut problems = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        match parse_line(raw) {
            Ok(change) => changes.push(change),
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

fn parse_line(raw: &str) -> Result<ChangeData, String> {
    let line: Line = serde_json::from_str(raw).map_err(|error| error.to_string())?;
    let value = match (line.op, line.value) {
        (Op::Delete, None | Some(serde_json::Value::Null)) => None,
        (Op::Delete, Some(_)) => return Err("a delete carries no value".into()),
        (_, None) => return Err(format!("an {} needs a value", line.op)),
        (_, Some(value)) => Some(JsonText::from_serialize(&value).map_err(|e| e.to_string())?),
    };
    if line.collection.is_empty() {
        return Err(InvalidChange::EmptyCollection.to_string());
    }
    Ok(ChangeData {
        collection: line.collection,
        key: line.key,
        op: line.op,
        value,
        headers: line.headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_lines_become_changes() {
        let text = r#"{"collection":"todos","key":"1","op":"insert","value":{"t":"milk"}}

{"collection":"todos","key":"1","op":"delete","headers":{"tenant":"acme"}}
"#;
        let changes = parse_changes(text).unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].value_json(), Some(r#"{"t":"milk"}"#));
        assert_eq!(changes[1].op, Op::Delete);
        assert_eq!(changes[1].headers["tenant"], "acme");
    }

    #[test]
    fn every_bad_line_is_named_and_nothing_is_returned() {
        let text = r#"{"collection":"todos","key":"1","op":"insert","value":1}
not json
{"collection":"todos","key":"2","op":"insert"}
{"collection":"todos","key":"3","op":"delete","value":5}
{"collection":"","key":"4","op":"update","value":1}
{"collection":"todos","key":"5","op":"upsert","value":1}
{"collection":"todos","key":"6","op":"insert","value":1,"extra":true}"#;
        let error = parse_changes(text).unwrap_err();
        let lines: Vec<&str> = error
            .problems
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect();
        assert_eq!(
            lines,
            ["line 2", "line 3", "line 4", "line 5", "line 6", "line 7"]
        );
        assert!(error.problems[1].contains("needs a value"));
        assert!(error.problems[2].contains("carries no value"));
    }
}
