use serde_json::Value;

use super::proto::common::v1::{AnyValue, KeyValue, any_value};

/// An OTLP `AnyValue` as JSON: the inverse of the encoder's mapping of a value to
/// a body (bytes become an array of numbers), for servers and tests that read records back.
pub fn json_value(value: &AnyValue) -> Value {
    match &value.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(text)) => Value::String(text.clone()),
        Some(any_value::Value::BoolValue(flag)) => Value::Bool(*flag),
        Some(any_value::Value::IntValue(int)) => Value::from(*int),
        Some(any_value::Value::DoubleValue(double)) => Value::from(*double),
        Some(any_value::Value::BytesValue(bytes)) => Value::from(bytes.clone()),
        Some(any_value::Value::ArrayValue(array)) => {
            Value::Array(array.values.iter().map(json_value).collect())
        }
        Some(any_value::Value::KvlistValue(list)) => Value::Object(
            list.values
                .iter()
                .map(|pair| {
                    (
                        pair.key.clone(),
                        pair.value.as_ref().map_or(Value::Null, json_value),
                    )
                })
                .collect(),
        ),
        #[allow(unreachable_patterns)]
        Some(_) => Value::Null,
    }
}

/// A string attribute, as a message (for the resource, made once per encoder).
pub(super) fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}
