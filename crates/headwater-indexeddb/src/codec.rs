//! headwater's values as the JSON text its rows hold (changes, retry bookkeeping, dead
//! letters, the lease), written and read back.

use headwater_core::store::StoreError;
use wasm_bindgen::JsValue;

use crate::error::{describe_js, unstorable};

/// The text of a stored value (a string, or a description of whatever else is there).
pub(crate) fn text_of(value: &JsValue) -> String {
    value.as_string().unwrap_or_else(|| describe_js(value))
}

/// `value` as the JSON text a row holds.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> Result<JsValue, StoreError> {
    serde_json::to_string(value)
        .map(|text| JsValue::from_str(&text))
        .map_err(unstorable)
}

/// The value a row's JSON text holds.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(value: &JsValue) -> Result<T, StoreError> {
    serde_json::from_str(&text_of(value))
        .map_err(|error| StoreError::backend(format!("a stored record does not decode: {error}")))
}
