use serde_json::Value;

use super::proto::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList, any_value};

/// A JSON value as an OTLP `AnyValue`: objects become key-value lists (in the JSON's
/// order), arrays arrays, integers that fit `i64` ints, other numbers doubles, and
/// `null` an empty `AnyValue` (OTLP's null).
pub fn any_value(json: &Value) -> AnyValue {
    let value = match json {
        Value::Null => None,
        Value::Bool(flag) => Some(any_value::Value::BoolValue(*flag)),
        Value::Number(number) => Some(match number.as_i64() {
            Some(int) => any_value::Value::IntValue(int),
            None => any_value::Value::DoubleValue(number.as_f64().unwrap_or(f64::NAN)),
        }),
        Value::String(text) => Some(any_value::Value::StringValue(text.clone())),
        Value::Array(items) => Some(any_value::Value::ArrayValue(ArrayValue {
            values: items.iter().map(any_value).collect(),
        })),
        Value::Object(fields) => Some(any_value::Value::KvlistValue(KeyValueList {
            values: fields
                .iter()
                .map(|(key, value)| KeyValue {
                    key: key.clone(),
                    value: Some(any_value(value)),
                    ..KeyValue::default()
                })
                .collect(),
        })),
    };
    AnyValue { value }
}

/// An OTLP `AnyValue` as JSON: the inverse of [`any_value`] for everything it makes
/// (bytes become an array of numbers), for servers and tests that read records back.
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

/// An attribute.
pub(super) fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

/// A string attribute.
pub(super) fn string_attribute(key: &str, value: &str) -> KeyValue {
    attribute(key, any_value::Value::StringValue(value.to_owned()))
}
