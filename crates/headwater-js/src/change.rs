//! A change as JavaScript gives it: the package has already turned the value into JSON
//! text (`JSON.stringify` in the page is faster than walking the object from wasm).

use headwater::{ChangeData, InvalidChange, JsonText, Op};
use wasm_bindgen::JsValue;

use crate::error;

/// The change `op` to `collection`/`key`, with `value_json` for inserts and updates and
/// the caller's own `headers` (a plain object of strings, or undefined).
pub(crate) fn change_data(
    collection: String,
    key: String,
    op: &str,
    value_json: Option<String>,
    headers: JsValue,
) -> Result<ChangeData, JsValue> {
    let invalid = |reason: InvalidChange| error::coded("INVALID_CHANGE", reason);
    let value = |text: Option<String>| -> Result<JsonText, JsValue> {
        let text = text.ok_or_else(|| {
            error::coded(
                "INVALID_CHANGE",
                format!(
                    "an {op} of {collection}/{key} needs a value (any JSON value; null is one)"
                ),
            )
        })?;
        JsonText::parse(&text).map_err(|reason| {
            error::coded(
                "INVALID_CHANGE",
                format!("the value of {collection}/{key} is not JSON: {reason}"),
            )
        })
    };
    let op = match op {
        "insert" => Op::Insert(value(value_json)?),
        "update" => Op::Update(value(value_json)?),
        "delete" => Op::Delete,
        other => {
            return Err(error::coded(
                "INVALID_CHANGE",
                format!(
                    "op {other:?} of {collection}/{key} is none of \"insert\", \"update\", \"delete\""
                ),
            ));
        }
    };
    let mut data = ChangeData::new(collection, key, op).map_err(invalid)?;
    if !headers.is_undefined() && !headers.is_null() {
        let headers: std::collections::BTreeMap<String, String> =
            serde_wasm_bindgen::from_value(headers).map_err(|reason| {
                error::coded(
                    "INVALID_CHANGE",
                    format!("headers must be an object of strings: {reason}"),
                )
            })?;
        for (name, value) in headers {
            data = data.with_header(name, value).map_err(invalid)?;
        }
    }
    Ok(data)
}
