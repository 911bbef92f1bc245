use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which Flume header carries each field of a change. `None` leaves the field out.
///
/// The defaults (`id`, `timestamp`, `op`, `collection`, `key`, `seq`, `source`) follow
/// Flume's conventions: `id` is what Flume's UUID interceptor and its guide use for
/// deduplication, and `timestamp` in epoch milliseconds is what the HDFS sink's path
/// escapes (`%Y/%m/%d`) read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct HeaderNames {
    /// The idempotency key (UUIDv7).
    pub id: Option<String>,
    /// Capture time in epoch milliseconds.
    pub timestamp: Option<String>,
    /// `insert`, `update` or `delete`.
    pub op: Option<String>,
    /// The record's collection.
    pub collection: Option<String>,
    /// The record's key.
    pub key: Option<String>,
    /// The change's position in its outbox.
    pub seq: Option<String>,
    /// The outbox's client id.
    pub source: Option<String>,
}

impl Default for HeaderNames {
    fn default() -> Self {
        Self {
            id: Some("id".into()),
            timestamp: Some("timestamp".into()),
            op: Some("op".into()),
            collection: Some("collection".into()),
            key: Some("key".into()),
            seq: Some("seq".into()),
            source: Some("source".into()),
        }
    }
}

impl HeaderNames {
    /// The header names in use, in the order the encoder writes them.
    pub fn in_use(&self) -> impl Iterator<Item = &str> {
        [
            &self.id,
            &self.timestamp,
            &self.op,
            &self.collection,
            &self.key,
            &self.seq,
            &self.source,
        ]
        .into_iter()
        .filter_map(|name| name.as_deref())
    }

    /// Whether the mapping itself sets a header called `name`.
    pub fn sets(&self, name: &str) -> bool {
        self.in_use().any(|used| used == name)
    }
}

/// What goes into the body of each event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BodyShape {
    /// The record's value as compact JSON (empty for deletes). The default.
    #[default]
    Value,
    /// A JSON envelope with every field of the change:
    /// `{"id","seq","op","collection","key","captured_at","value"}`, for sinks that only
    /// keep the body.
    Envelope,
}

/// A mapping that would make Flume reject every request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MappingError {
    /// Two mapped fields use the same header name; Flume answers 400 to duplicate headers.
    #[error("the header name {0:?} is used for two fields of the change")]
    DuplicateHeaderName(String),
    /// A header name is empty.
    #[error("a header name is empty")]
    EmptyHeaderName,
    /// A static header has the name of a mapped field.
    #[error("the static header {0:?} has the name of a header the mapping sets itself")]
    StaticHeaderShadowsField(String),
}

/// How changes become Flume events: header names, static headers, the source id and the
/// body shape.
///
/// Precedence when names meet: the mapped fields win over a change's own headers, which
/// win over static headers, so no event ever repeats a header name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct EventMapping {
    /// Header names of the change's fields.
    pub headers: HeaderNames,
    /// The value of the `source` header: which outbox (client, device, tab) sent it.
    pub source: String,
    /// Headers added to every event.
    pub static_headers: BTreeMap<String, String>,
    /// What the body holds.
    pub body: BodyShape,
}

impl Default for EventMapping {
    fn default() -> Self {
        Self {
            headers: HeaderNames::default(),
            source: "headwater".into(),
            static_headers: BTreeMap::new(),
            body: BodyShape::Value,
        }
    }
}

impl EventMapping {
    /// The default mapping with `source` as the client id.
    pub fn with_source(source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            ..Self::default()
        }
    }

    /// Checks that the mapping can only produce events Flume accepts.
    pub fn validate(&self) -> Result<(), MappingError> {
        let names: Vec<&str> = self.headers.in_use().collect();
        for (index, name) in names.iter().enumerate() {
            if name.is_empty() {
                return Err(MappingError::EmptyHeaderName);
            }
            if names[..index].contains(name) {
                return Err(MappingError::DuplicateHeaderName((*name).to_owned()));
            }
        }
        for name in self.static_headers.keys() {
            if name.is_empty() {
                return Err(MappingError::EmptyHeaderName);
            }
            if self.headers.sets(name) {
                return Err(MappingError::StaticHeaderShadowsField(name.clone()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mapping_is_valid() {
        assert_eq!(EventMapping::default().validate(), Ok(()));
    }

    #[test]
    fn duplicate_field_names_are_rejected() {
        let mut mapping = EventMapping::default();
        mapping.headers.key = Some("id".into());
        assert_eq!(
            mapping.validate(),
            Err(MappingError::DuplicateHeaderName("id".into()))
        );
    }

    #[test]
    fn static_header_may_not_shadow_a_field() {
        let mut mapping = EventMapping::default();
        mapping.static_headers.insert("op".into(), "x".into());
        assert_eq!(
            mapping.validate(),
            Err(MappingError::StaticHeaderShadowsField("op".into()))
        );
        mapping.headers.op = None;
        assert_eq!(mapping.validate(), Ok(()));
    }

    /// A typo in a config file is an error naming the field, not a default.
    #[test]
    fn unknown_fields_are_refused_by_name() {
        let error = serde_json::from_str::<EventMapping>(r#"{"static_header": {}}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `static_header`"), "{error}");
        let error = serde_json::from_str::<EventMapping>(r#"{"headers": {"idd": "x"}}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `idd`"), "{error}");
        let mapping: EventMapping =
            serde_json::from_str(r#"{"headers": {"id": "event-id"}}"#).unwrap();
        assert_eq!(mapping.headers.id.as_deref(), Some("event-id"));
    }

    #[test]
    fn empty_names_are_rejected() {
        let mut mapping = EventMapping::default();
        mapping.headers.seq = Some(String::new());
        assert_eq!(mapping.validate(), Err(MappingError::EmptyHeaderName));
    }
}
