use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ChangeId;

/// The largest sequence number a store may assign: 2^53 - 1, so that JavaScript (and
/// IndexedDB keys read through JavaScript numbers) can hold every seq exactly.
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// A store-assigned position in one outbox. Sequence numbers only grow, so they give the
/// total order in which changes were captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A new record.
    Insert,
    /// A new version of an existing record.
    Update,
    /// The record was removed; the change carries no value.
    Delete,
}

impl Op {
    /// The lowercase name used in the `op` Flume header.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change that cannot be captured as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidChange {
    /// The value could not be turned into JSON (a map with non-string keys, a float NaN).
    #[error("the value of {collection}/{key} is not representable as JSON: {reason}")]
    NotJson {
        /// The record's collection.
        collection: String,
        /// The record's key.
        key: String,
        /// serde_json's explanation.
        reason: String,
    },
    /// The collection name is empty.
    #[error("a change needs a non-empty collection name")]
    EmptyCollection,
}

/// The content of a change: which record, what happened, the new value and any headers of
/// the caller's own. This is what an application hands to capture.
///
/// ```
/// use headwater_core::model::{ChangeData, Op};
/// let change = ChangeData::upsert("todos", "42", &serde_json::json!({"title": "milk"}))
///     .unwrap()
///     .with_header("tenant", "acme");
/// assert_eq!(change.op, Op::Update);
/// assert_eq!(change.value_json(), Some(r#"{"title":"milk"}"#));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeData {
    /// The collection (table, object store) the record belongs to.
    pub collection: String,
    /// The record's key within its collection.
    pub key: String,
    /// What happened.
    pub op: Op,
    /// The record's new value as compact JSON; `None` for deletes.
    pub value: Option<JsonText>,
    /// Extra Flume headers for this change. Names that the event mapping sets itself
    /// (`id`, `timestamp`, ...) are overridden by the mapping.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl ChangeData {
    fn with_value(
        op: Op,
        collection: impl Into<String>,
        key: impl Into<String>,
        value: &impl Serialize,
    ) -> Result<Self, InvalidChange> {
        let collection = collection.into();
        let key = key.into();
        if collection.is_empty() {
            return Err(InvalidChange::EmptyCollection);
        }
        match JsonText::from_serialize(value) {
            Ok(raw) => Ok(ChangeData {
                collection,
                key,
                op,
                value: Some(raw),
                headers: BTreeMap::new(),
            }),
            Err(error) => Err(InvalidChange::NotJson {
                collection,
                key,
                reason: error.to_string(),
            }),
        }
    }

    /// A new record with its value.
    pub fn insert(
        collection: impl Into<String>,
        key: impl Into<String>,
        value: &impl Serialize,
    ) -> Result<Self, InvalidChange> {
        Self::with_value(Op::Insert, collection, key, value)
    }

    /// A new version of a record (insert-or-update).
    pub fn upsert(
        collection: impl Into<String>,
        key: impl Into<String>,
        value: &impl Serialize,
    ) -> Result<Self, InvalidChange> {
        Self::with_value(Op::Update, collection, key, value)
    }

    /// The record was deleted.
    pub fn delete(
        collection: impl Into<String>,
        key: impl Into<String>,
    ) -> Result<Self, InvalidChange> {
        let collection = collection.into();
        if collection.is_empty() {
            return Err(InvalidChange::EmptyCollection);
        }
        Ok(ChangeData {
            collection,
            key: key.into(),
            op: Op::Delete,
            value: None,
            headers: BTreeMap::new(),
        })
    }

    /// Adds a Flume header of the caller's own to this change.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// The value as compact JSON text, if there is one.
    pub fn value_json(&self) -> Option<&str> {
        self.value.as_ref().map(JsonText::as_str)
    }
}

/// Compact JSON text that is known to be valid JSON.
///
/// Values are serialized once, at capture, and sent as they are: encoding a batch never
/// re-serializes a value. Stores keep it as a plain string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct JsonText(String);

impl JsonText {
    /// Serializes `value` to compact JSON.
    pub fn from_serialize(value: &impl Serialize) -> Result<Self, serde_json::Error> {
        serde_json::to_string(value).map(JsonText)
    }

    /// Checks that `text` is one JSON value and keeps it as compact JSON (whitespace
    /// outside strings is removed).
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        Self::from_serialize(&value)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        JsonText::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A change as capture made it: its idempotency id and capture time are fixed here and
/// never change afterwards. The store turns it into a [`Change`] by assigning a [`Seq`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Captured {
    /// The idempotency key (UUIDv7), sent as Flume's `id` header.
    pub id: ChangeId,
    /// When the change was captured.
    pub captured_at: DateTime<Utc>,
    /// What changed.
    pub data: ChangeData,
}

/// A change in an outbox: a [`Captured`] change with its place in the outbox's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The position in the outbox; delivery follows it.
    pub seq: Seq,
    /// The idempotency key (UUIDv7), sent as Flume's `id` header.
    pub id: ChangeId,
    /// When the change was captured.
    pub captured_at: DateTime<Utc>,
    /// What changed.
    pub data: ChangeData,
}

impl Change {
    /// Places a captured change at `seq`.
    pub fn new(seq: Seq, captured: Captured) -> Self {
        Change {
            seq,
            id: captured.id,
            captured_at: captured.captured_at,
            data: captured.data,
        }
    }
}
