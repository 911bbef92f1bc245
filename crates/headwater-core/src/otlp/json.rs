//! Writing a change's log record straight into a request body in OTLP's JSON encoding
//! (the protobuf JSON mapping with OTLP's rules: lowerCamelCase names, 64-bit integers
//! as decimal strings, `{}` for an empty `AnyValue`). The JSON value streams into the
//! `AnyValue` through serde, in the JSON's own order.

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// A JSON string, quoted and escaped.
pub(super) fn string(out: &mut Vec<u8>, text: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// `{"key":NAME,"value":{"stringValue":VALUE}}`.
pub(super) fn string_attribute(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(b"{\"key\":");
    string(out, name);
    out.extend_from_slice(b",\"value\":{\"stringValue\":");
    string(out, value);
    out.extend_from_slice(b"}}");
}

/// `{"key":NAME,"value":{"intValue":"VALUE"}}`.
pub(super) fn int_attribute(out: &mut Vec<u8>, name: &str, value: i64) {
    out.extend_from_slice(b"{\"key\":");
    string(out, name);
    out.extend_from_slice(b",\"value\":{\"intValue\":\"");
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    out.extend_from_slice(b"\"}}");
}

/// `"NAME":"VALUE"` for a 64-bit unsigned field (a decimal string, as OTLP's JSON wants).
pub(super) fn u64_field(out: &mut Vec<u8>, name: &str, value: u64) {
    string(out, name);
    out.extend_from_slice(b":\"");
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    out.push(b'"');
}

/// Writes the `AnyValue` object for the JSON value it is deserialized from.
pub(super) struct AnyValue<'a>(pub(super) &'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for AnyValue<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnyValue<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.0.extend_from_slice(b"{}");
        Ok(())
    }

    fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<(), E> {
        self.0.extend_from_slice(if value {
            b"{\"boolValue\":true}"
        } else {
            b"{\"boolValue\":false}"
        });
        Ok(())
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<(), E> {
        self.0.extend_from_slice(b"{\"intValue\":\"");
        self.0
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self.0.extend_from_slice(b"\"}");
        Ok(())
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<(), E> {
        match i64::try_from(value) {
            Ok(int) => self.visit_i64(int),
            Err(_) => self.visit_f64(value as f64),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<(), E> {
        self.0.extend_from_slice(b"{\"doubleValue\":");
        let _ = serde_json::to_writer(&mut *self.0, &value);
        self.0.push(b'}');
        Ok(())
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<(), E> {
        self.0.extend_from_slice(b"{\"stringValue\":");
        string(self.0, value);
        self.0.push(b'}');
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let out = self.0;
        out.extend_from_slice(b"{\"arrayValue\":{\"values\":[");
        let mut first = true;
        loop {
            let mark = out.len();
            if !first {
                out.push(b',');
            }
            if items.next_element_seed(AnyValue(out))?.is_none() {
                out.truncate(mark);
                break;
            }
            first = false;
        }
        out.extend_from_slice(b"]}}");
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut fields: A) -> Result<(), A::Error> {
        let out = self.0;
        out.extend_from_slice(b"{\"kvlistValue\":{\"values\":[");
        let mut first = true;
        loop {
            let mark = out.len();
            if !first {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"key\":");
            if fields.next_key_seed(Key(out))?.is_none() {
                out.truncate(mark);
                break;
            }
            out.extend_from_slice(b",\"value\":");
            fields.next_value_seed(AnyValue(out))?;
            out.push(b'}');
            first = false;
        }
        out.extend_from_slice(b"]}}");
        Ok(())
    }
}

/// Writes an object's key as a JSON string.
struct Key<'a>(&'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<(), E> {
        string(self.0, value);
        Ok(())
    }
}
