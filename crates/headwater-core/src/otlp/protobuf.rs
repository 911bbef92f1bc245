//! Writing a change's log record straight into a request body in protobuf: no message
//! structs, no allocation per record. A nested message's length is only known once it
//! is written, so a one-byte length is reserved first and widened in place when the
//! message turns out longer than 127 bytes (rare but for values).
//!
//! The JSON value streams into the `AnyValue` through serde, in the JSON's own order.

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// The keys of the fields written here: `(field number << 3) | wire type`.
pub(super) mod key {
    /// `LogRecord.time_unix_nano`, fixed64.
    pub(crate) const TIME: u8 = 1 << 3 | 1;
    /// `LogRecord.observed_time_unix_nano`, fixed64.
    pub(crate) const OBSERVED_TIME: u8 = 11 << 3 | 1;
    /// `LogRecord.body`, an `AnyValue`.
    pub(crate) const BODY: u8 = 5 << 3 | 2;
    /// `LogRecord.attributes`, a `KeyValue`.
    pub(crate) const ATTRIBUTE: u8 = 6 << 3 | 2;
    /// `KeyValue.key`, a string; also `KeyValueList.values` and `ArrayValue.values`.
    pub(crate) const FIRST: u8 = 1 << 3 | 2;
    /// `KeyValue.value`, an `AnyValue`.
    pub(crate) const VALUE: u8 = 2 << 3 | 2;
    /// `AnyValue.string_value`.
    pub(crate) const STRING: u8 = 1 << 3 | 2;
    /// `AnyValue.bool_value`, varint.
    pub(crate) const BOOL: u8 = 2 << 3;
    /// `AnyValue.int_value`, varint.
    pub(crate) const INT: u8 = 3 << 3;
    /// `AnyValue.double_value`, fixed64.
    pub(crate) const DOUBLE: u8 = 4 << 3 | 1;
    /// `AnyValue.array_value`.
    pub(crate) const ARRAY: u8 = 5 << 3 | 2;
    /// `AnyValue.kvlist_value`.
    pub(crate) const KVLIST: u8 = 6 << 3 | 2;
}

pub(super) fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Opens a length-delimited field: its key and a one-byte length to fill in
/// [`close`]. Returns where its content starts.
pub(super) fn open(out: &mut Vec<u8>, key: u8) -> usize {
    out.push(key);
    out.push(0);
    out.len()
}

/// Closes the field [`open`] started at `start`: its length goes in, widened in place
/// if it needs more than one byte.
pub(super) fn close(out: &mut Vec<u8>, start: usize) {
    let len = out.len() - start;
    if len < 0x80 {
        out[start - 1] = len as u8;
        return;
    }
    let mut length = [0u8; 10];
    let mut used = 0;
    let mut rest = len;
    while rest >= 0x80 {
        length[used] = (rest as u8) | 0x80;
        rest >>= 7;
        used += 1;
    }
    length[used] = rest as u8;
    out[start - 1] = length[0];
    out.splice(start..start, length[1..=used].iter().copied());
}

/// A length-delimited field of bytes.
pub(super) fn bytes_field(out: &mut Vec<u8>, key: u8, bytes: &[u8]) {
    out.push(key);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A fixed64 field.
pub(super) fn fixed64_field(out: &mut Vec<u8>, key: u8, value: u64) {
    out.push(key);
    out.extend_from_slice(&value.to_le_bytes());
}

/// A `KeyValue` attribute whose value is a string.
pub(super) fn string_attribute(out: &mut Vec<u8>, name: &str, value: &str) {
    let start = open(out, key::ATTRIBUTE);
    bytes_field(out, key::FIRST, name.as_bytes());
    let value_start = open(out, key::VALUE);
    bytes_field(out, key::STRING, value.as_bytes());
    close(out, value_start);
    close(out, start);
}

/// A `KeyValue` attribute whose value is an int.
pub(super) fn int_attribute(out: &mut Vec<u8>, name: &str, value: i64) {
    let start = open(out, key::ATTRIBUTE);
    bytes_field(out, key::FIRST, name.as_bytes());
    let value_start = open(out, key::VALUE);
    out.push(key::INT);
    varint(out, value as u64);
    close(out, value_start);
    close(out, start);
}

/// Writes the content of an `AnyValue` (its one field; nothing for `null`) for the JSON
/// value it is deserialized from.
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
        Ok(())
    }

    fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<(), E> {
        self.0.push(key::BOOL);
        varint(self.0, u64::from(value));
        Ok(())
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<(), E> {
        self.0.push(key::INT);
        varint(self.0, value as u64);
        Ok(())
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<(), E> {
        match i64::try_from(value) {
            Ok(int) => self.visit_i64(int),
            Err(_) => self.visit_f64(value as f64),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<(), E> {
        fixed64_field(self.0, key::DOUBLE, value.to_bits());
        Ok(())
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<(), E> {
        bytes_field(self.0, key::STRING, value.as_bytes());
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let out = self.0;
        let start = open(out, key::ARRAY);
        loop {
            let item = open(out, key::FIRST);
            if items.next_element_seed(AnyValue(out))?.is_none() {
                // No item after all: drop the field just opened.
                out.truncate(item - 2);
                break;
            }
            close(out, item);
        }
        close(out, start);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut fields: A) -> Result<(), A::Error> {
        let out = self.0;
        let start = open(out, key::KVLIST);
        loop {
            let pair = open(out, key::FIRST);
            if fields.next_key_seed(Key(out))?.is_none() {
                out.truncate(pair - 2);
                break;
            }
            let value = open(out, key::VALUE);
            fields.next_value_seed(AnyValue(out))?;
            close(out, value);
            close(out, pair);
        }
        close(out, start);
        Ok(())
    }
}

/// Writes an object's key as `KeyValue.key`.
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
        bytes_field(self.0, key::FIRST, value.as_bytes());
        Ok(())
    }
}
