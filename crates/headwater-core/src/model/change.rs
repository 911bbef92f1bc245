use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ChangeId;

/// The largest sequence number a store may assign: 2^53 - 1, so that JavaScript (and
/// IndexedDB keys read through JavaScript numbers) can hold every seq exactly.
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// A store-assigned position in one outbox. Sequence numbers only grow, so they give the
/// total order in which changes were captured.
///
/// A seq is never above [`MAX_SEQ`]: [`Seq::new`] refuses a larger number, and so does
/// deserializing one.
///
/// ```
/// use headwater_core::model::{MAX_SEQ, Seq};
/// let seq = Seq::new(42).unwrap();
/// assert_eq!(seq.get(), 42);
/// assert!(Seq::new(MAX_SEQ + 1).is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Seq(pub(crate) u64);

impl Seq {
    /// Below every seq a store assigns (they start at 1): "nothing yet".
    pub const ZERO: Self = Self(0);

    /// The largest seq, [`MAX_SEQ`].
    pub const MAX: Self = Self(MAX_SEQ);

    /// `value` as a seq, if it is at most [`MAX_SEQ`].
    pub const fn new(value: u64) -> Option<Self> {
        if value <= MAX_SEQ {
            Some(Self(value))
        } else {
            None
        }
    }

    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// A number above [`MAX_SEQ`] given as a seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is over the largest seq, 2^53 - 1")]
pub struct SeqOutOfRange(pub u64);

impl TryFrom<u64> for Seq {
    type Error = SeqOutOfRange;

    fn try_from(value: u64) -> Result<Self, Self::Error> {
        Self::new(value).ok_or(SeqOutOfRange(value))
    }
}

impl From<Seq> for u64 {
    fn from(seq: Seq) -> Self {
        seq.0
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which kind of change happened to a record: the `op` Flume header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum OpKind {
    /// A new record.
    Insert,
    /// A new version of an existing record.
    Update,
    /// The record was removed.
    Delete,
}

impl OpKind {
    /// The lowercase name used in the `op` Flume header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to a record, with the record's new value where there is one: a delete
/// cannot carry a value, and an insert or update always does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// A new record with its value.
    Insert(JsonText),
    /// A new version of a record with its value.
    Update(JsonText),
    /// The record was removed.
    Delete,
}

impl Op {
    /// The kind of change, without the value.
    pub fn kind(&self) -> OpKind {
        match self {
            Self::Insert(_) => OpKind::Insert,
            Self::Update(_) => OpKind::Update,
            Self::Delete => OpKind::Delete,
        }
    }

    /// The new value, unless this is a delete.
    pub fn value(&self) -> Option<&JsonText> {
        match self {
            Self::Insert(value) | Self::Update(value) => Some(value),
            Self::Delete => None,
        }
    }

    /// Builds an op of `kind`, checking that a value comes with inserts and updates and
    /// not with deletes.
    pub fn from_parts(kind: OpKind, value: Option<JsonText>) -> Result<Self, InvalidChange> {
        match (kind, value) {
            (OpKind::Insert, Some(value)) => Ok(Self::Insert(value)),
            (OpKind::Update, Some(value)) => Ok(Self::Update(value)),
            (OpKind::Delete, None) => Ok(Self::Delete),
            (OpKind::Delete, Some(_)) => Err(InvalidChange::DeleteWithValue),
            (kind, None) => Err(InvalidChange::MissingValue(kind)),
        }
    }
}

/// A change that cannot be captured as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
    /// The record key is empty.
    #[error("a change needs a non-empty record key")]
    EmptyKey,
    /// A delete was given a value.
    #[error("a delete carries no value")]
    DeleteWithValue,
    /// An insert or update came without a value.
    #[error("an {0} needs a value")]
    MissingValue(OpKind),
    /// A header name is empty.
    #[error("a header name must not be empty")]
    EmptyHeaderName,
}

/// The content of a change: which record, what happened (with the new value) and any
/// headers of the caller's own. This is what an application hands to capture. Every
/// constructor checks its input, so a `ChangeData` is always well-formed.
///
/// ```
/// use headwater_core::model::{ChangeData, OpKind};
/// let change = ChangeData::update("todos", "42", &serde_json::json!({"title": "milk"}))
///     .unwrap()
///     .with_header("tenant", "acme")
///     .unwrap();
/// assert_eq!(change.kind(), OpKind::Update);
/// assert_eq!(change.value_json(), Some(r#"{"title":"milk"}"#));
/// assert!(ChangeData::delete("todos", "").is_err());
/// ```
///
/// Its text is shared, not copied, when a change is cloned (a store handing out a
/// change, a batch holding it): the names and the value are reference-counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ChangeDataRepr", into = "ChangeDataRepr")]
pub struct ChangeData {
    collection: Arc<str>,
    key: Arc<str>,
    op: Op,
    /// `None` when there are none (most changes): no allocation for an empty map.
    headers: Option<Arc<BTreeMap<String, String>>>,
}

/// What [`ChangeData::headers`] gives for a change without headers.
static NO_HEADERS: BTreeMap<String, String> = BTreeMap::new();

impl ChangeData {
    /// A change to `collection`/`key`.
    pub fn new(
        collection: impl Into<String>,
        key: impl Into<String>,
        op: Op,
    ) -> Result<Self, InvalidChange> {
        let collection: String = collection.into();
        let key: String = key.into();
        Self::from_shared(collection.into(), key.into(), op)
    }

    /// A change to `collection`/`key` whose names are already shared text: they are
    /// kept as they are, where [`new`](Self::new) copies them once more. For readers
    /// that build many changes (a store decoding its rows, `headwater send` reading its
    /// input).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use headwater_core::model::{ChangeData, Op};
    /// let collection: Arc<str> = Arc::from("todos");
    /// let change = ChangeData::from_shared(Arc::clone(&collection), Arc::from("1"), Op::Delete)?;
    /// assert_eq!(change.collection(), "todos");
    /// assert!(ChangeData::from_shared(collection, Arc::from(""), Op::Delete).is_err());
    /// # Ok::<(), headwater_core::model::InvalidChange>(())
    /// ```
    pub fn from_shared(collection: Arc<str>, key: Arc<str>, op: Op) -> Result<Self, InvalidChange> {
        if collection.is_empty() {
            return Err(InvalidChange::EmptyCollection);
        }
        if key.is_empty() {
            return Err(InvalidChange::EmptyKey);
        }
        Ok(Self {
            collection,
            key,
            op,
            headers: None,
        })
    }

    fn with_value(
        kind: OpKind,
        collection: impl Into<String>,
        key: impl Into<String>,
        value: &(impl Serialize + ?Sized),
    ) -> Result<Self, InvalidChange> {
        let collection = collection.into();
        let key = key.into();
        let value = JsonText::from_serialize(value).map_err(|error| InvalidChange::NotJson {
            collection: collection.clone(),
            key: key.clone(),
            reason: error.to_string(),
        })?;
        let op = match kind {
            OpKind::Insert => Op::Insert(value),
            _ => Op::Update(value),
        };
        Self::new(collection, key, op)
    }

    /// A new record with its value.
    pub fn insert(
        collection: impl Into<String>,
        key: impl Into<String>,
        value: &(impl Serialize + ?Sized),
    ) -> Result<Self, InvalidChange> {
        Self::with_value(OpKind::Insert, collection, key, value)
    }

    /// A new version of a record (insert-or-update).
    pub fn update(
        collection: impl Into<String>,
        key: impl Into<String>,
        value: &(impl Serialize + ?Sized),
    ) -> Result<Self, InvalidChange> {
        Self::with_value(OpKind::Update, collection, key, value)
    }

    /// The record was deleted.
    pub fn delete(
        collection: impl Into<String>,
        key: impl Into<String>,
    ) -> Result<Self, InvalidChange> {
        Self::new(collection, key, Op::Delete)
    }

    /// Adds a Flume header of the caller's own to this change. Names that the event
    /// mapping sets itself (`id`, `timestamp`, ...) are overridden by the mapping.
    pub fn with_header(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, InvalidChange> {
        let name = name.into();
        if name.is_empty() {
            return Err(InvalidChange::EmptyHeaderName);
        }
        Arc::make_mut(self.headers.get_or_insert_with(Arc::default)).insert(name, value.into());
        Ok(self)
    }

    /// The collection (table, object store) the record belongs to.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// The record's key within its collection.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The collection, shared (no copy).
    pub fn collection_shared(&self) -> &Arc<str> {
        &self.collection
    }

    /// The key, shared (no copy).
    pub fn key_shared(&self) -> &Arc<str> {
        &self.key
    }

    /// What happened, with the new value.
    pub fn op(&self) -> &Op {
        &self.op
    }

    /// What happened, without the value.
    pub fn kind(&self) -> OpKind {
        self.op.kind()
    }

    /// The new value as JSON text, unless this is a delete.
    pub fn value_json(&self) -> Option<&str> {
        self.op.value().map(JsonText::as_str)
    }

    /// The caller's own headers.
    pub fn headers(&self) -> &BTreeMap<String, String> {
        self.headers.as_deref().unwrap_or(&NO_HEADERS)
    }

    /// About how many bytes this change occupies: its value, names and headers. Used
    /// for the outbox's byte counts and limits.
    pub fn weight(&self) -> usize {
        self.collection.len()
            + self.key.len()
            + self.value_json().map_or(0, str::len)
            + self
                .headers()
                .iter()
                .map(|(name, value)| name.len() + value.len())
                .sum::<usize>()
    }
}

/// The stored and serialized shape of a [`ChangeData`], checked on the way in.
#[derive(Serialize, Deserialize)]
struct ChangeDataRepr {
    collection: String,
    key: String,
    op: OpKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<JsonText>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
}

impl TryFrom<ChangeDataRepr> for ChangeData {
    type Error = InvalidChange;

    fn try_from(repr: ChangeDataRepr) -> Result<Self, Self::Error> {
        let op = Op::from_parts(repr.op, repr.value)?;
        let mut data = Self::new(repr.collection, repr.key, op)?;
        if repr.headers.keys().any(String::is_empty) {
            return Err(InvalidChange::EmptyHeaderName);
        }
        data.headers = (!repr.headers.is_empty()).then(|| Arc::new(repr.headers));
        Ok(data)
    }
}

impl From<ChangeData> for ChangeDataRepr {
    fn from(data: ChangeData) -> Self {
        let op = data.op.kind();
        let value = match data.op {
            Op::Insert(value) | Op::Update(value) => Some(value),
            Op::Delete => None,
        };
        Self {
            collection: data.collection.to_string(),
            key: data.key.to_string(),
            op,
            value,
            headers: data.headers.map(Arc::unwrap_or_clone).unwrap_or_default(),
        }
    }
}

/// JSON text that is known to be one valid JSON value.
///
/// Values are serialized once, at capture. The Flume encoding sends the text as it is,
/// never re-serializing it; OTLP turns it into a structured `AnyValue`, so there number
/// formatting is normalised and integers beyond `i64` become doubles. Stores keep it as
/// a plain string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct JsonText(Arc<str>);

impl JsonText {
    /// Serializes `value` to compact JSON.
    pub fn from_serialize(value: &(impl Serialize + ?Sized)) -> Result<Self, serde_json::Error> {
        serde_json::to_string(value).map(|text| Self(text.into()))
    }

    /// Checks that `text` is one JSON value and keeps it as it is (whitespace included):
    /// validation without building a value tree.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        let raw: &serde_json::value::RawValue = serde_json::from_str(text)?;
        Ok(Self(raw.get().into()))
    }

    /// Keeps JSON text that serde_json already checked (a `RawValue`).
    pub fn from_raw(raw: &serde_json::value::RawValue) -> Self {
        Self(raw.get().into())
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A change as capture made it: its idempotency id and capture time are fixed here and
/// never change afterwards. The store turns it into a [`Change`] by assigning a [`Seq`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Captured {
    /// The idempotency key (UUIDv7), sent as Flume's `id` header.
    pub id: ChangeId,
    /// When the change was captured.
    pub captured_at: DateTime<Utc>,
    /// What changed.
    pub data: ChangeData,
}

/// A change in an outbox: a [`Captured`] change with its place in the outbox's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    seq: Seq,
    id: ChangeId,
    captured_at: DateTime<Utc>,
    data: ChangeData,
}

impl Change {
    /// Places a captured change at `seq`.
    pub fn new(seq: Seq, captured: Captured) -> Self {
        Self {
            seq,
            id: captured.id,
            captured_at: captured.captured_at,
            data: captured.data,
        }
    }

    /// The position in the outbox; delivery follows it.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// The idempotency key (UUIDv7), sent as Flume's `id` header.
    pub fn id(&self) -> ChangeId {
        self.id
    }

    /// When the change was captured.
    pub fn captured_at(&self) -> DateTime<Utc> {
        self.captured_at
    }

    /// What changed.
    pub fn data(&self) -> &ChangeData {
        &self.data
    }

    /// The record this change belongs to.
    pub fn record(&self) -> RecordRef<'_> {
        RecordRef {
            collection: &self.data.collection,
            key: &self.data.key,
        }
    }
}

/// A record named by its collection and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordRef<'a> {
    /// The collection.
    pub collection: &'a str,
    /// The key within the collection.
    pub key: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seq_over_the_largest_is_refused_when_made_and_when_read() {
        assert_eq!(Seq::new(MAX_SEQ), Some(Seq::MAX));
        assert_eq!(Seq::new(MAX_SEQ + 1), None);
        assert_eq!(Seq::try_from(u64::MAX), Err(SeqOutOfRange(u64::MAX)));
        let read: Seq = serde_json::from_str("9007199254740991").unwrap();
        assert_eq!(read, Seq::MAX);
        assert!(serde_json::from_str::<Seq>("9007199254740992").is_err());
        assert_eq!(
            serde_json::to_string(&Seq::MAX).unwrap(),
            "9007199254740991"
        );
    }

    #[test]
    fn constructors_refuse_malformed_changes() {
        assert_eq!(
            ChangeData::delete("", "1"),
            Err(InvalidChange::EmptyCollection)
        );
        assert_eq!(ChangeData::delete("c", ""), Err(InvalidChange::EmptyKey));
        assert_eq!(
            ChangeData::delete("c", "1").unwrap().with_header("", "x"),
            Err(InvalidChange::EmptyHeaderName)
        );
        let not_json = std::collections::HashMap::from([((1, 2), 3)]);
        assert!(matches!(
            ChangeData::insert("c", "1", &not_json),
            Err(InvalidChange::NotJson { .. })
        ));
    }

    #[test]
    fn ops_carry_exactly_the_values_they_need() {
        let value = JsonText::parse("{\"a\":1}").unwrap();
        assert_eq!(
            Op::from_parts(OpKind::Delete, Some(value.clone())),
            Err(InvalidChange::DeleteWithValue)
        );
        assert_eq!(
            Op::from_parts(OpKind::Insert, None),
            Err(InvalidChange::MissingValue(OpKind::Insert))
        );
        assert_eq!(
            Op::from_parts(OpKind::Update, Some(value.clone())),
            Ok(Op::Update(value))
        );
    }

    #[test]
    fn serialized_changes_are_checked_when_read_back() {
        let change = ChangeData::insert("todos", "1", &serde_json::json!({"t": "milk"}))
            .unwrap()
            .with_header("tenant", "acme")
            .unwrap();
        let text = serde_json::to_string(&change).unwrap();
        assert_eq!(
            text,
            r#"{"collection":"todos","key":"1","op":"insert","value":"{\"t\":\"milk\"}","headers":{"tenant":"acme"}}"#
        );
        assert_eq!(serde_json::from_str::<ChangeData>(&text).unwrap(), change);
        for bad in [
            r#"{"collection":"todos","key":"1","op":"delete","value":"1"}"#,
            r#"{"collection":"todos","key":"1","op":"insert"}"#,
            r#"{"collection":"","key":"1","op":"delete"}"#,
            r#"{"collection":"todos","key":"1","op":"insert","value":"{not json"}"#,
        ] {
            assert!(serde_json::from_str::<ChangeData>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_text_keeps_checked_text_as_given() {
        assert_eq!(JsonText::parse(" [1, 2] ").unwrap().as_str(), "[1, 2]");
        assert!(JsonText::parse("[1,").is_err());
        assert!(JsonText::parse("1 2").is_err());
    }
}
