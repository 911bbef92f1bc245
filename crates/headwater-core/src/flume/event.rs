use std::collections::{BTreeMap, BTreeSet};

/// One Flume event as the HTTP source's JSON handler sees it: string headers and a body.
///
/// Flume keeps the body as bytes; over JSON it travels as a string, so it is a `String`
/// here (the bytes Flume stores are this string in the request's charset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlumeEvent {
    /// The event's headers. Flume rejects a request that repeats a header name.
    pub headers: BTreeMap<String, String>,
    /// Header names that came with a `null` value. Flume keeps them (the event's
    /// header map holds the name with a null value, which a sink writes as `null`);
    /// headwater never sends one.
    pub null_headers: BTreeSet<String>,
    /// The event's body.
    pub body: String,
}

impl FlumeEvent {
    /// An event with a body and no headers.
    pub fn with_body(body: impl Into<String>) -> Self {
        Self {
            headers: BTreeMap::new(),
            null_headers: BTreeSet::new(),
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
}
