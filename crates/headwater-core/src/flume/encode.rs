use crate::model::Change;
use crate::transport::BodyFormat;

use super::mapping::{BodyShape, EventMapping};
use super::{FlumeEvent, write};

/// How many of the offered changes fit in one request under the byte limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fit {
    /// The first `n` changes were encoded (all of them, or as many as fit).
    Events(usize),
    /// The first change alone encodes to `encoded_len` bytes, over the limit; nothing
    /// was encoded. It can never be sent under this limit.
    FirstTooLarge {
        /// The size of the request holding only this change.
        encoded_len: usize,
    },
}

/// A request body ready to send: a JSON array of Flume events, or another protocol's
/// batch (its [`format`](Self::format) says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EncodedBatch<'a> {
    /// The encoded JSON array.
    pub body: &'a [u8],
    /// How many events it holds.
    pub events: usize,
    /// The route every change in it belongs to, when batches are cut by route
    /// ([`SyncConfig::routes`](crate::engine::SyncConfig::routes)): a transport that
    /// routes by key sends it to that route's endpoint.
    pub route: Option<usize>,
    /// What the body is.
    pub format: BodyFormat,
}

impl<'a> EncodedBatch<'a> {
    /// A batch of `events` Flume events encoded in `body`, on no particular route.
    pub const fn new(body: &'a [u8], events: usize) -> Self {
        EncodedBatch {
            body,
            events,
            route: None,
            format: BodyFormat::FlumeJson,
        }
    }

    /// The same batch, in `format`.
    pub const fn in_format(mut self, format: BodyFormat) -> Self {
        self.format = format;
        self
    }

    /// The same batch on route `route`.
    pub const fn on_route(mut self, route: Option<usize>) -> Self {
        self.route = route;
        self
    }
}

/// Encodes changes into Flume's JSON array in one pass into one buffer.
///
/// [`encode`](Self::encode) fills the encoder's own buffer from a slice of changes; the
/// engine builds each batch in a buffer of its own with [`start`](Self::start),
/// [`push`](Self::push) and [`finish`](Self::finish), since several batches may be in
/// flight at once.
///
/// ```
/// use headwater_core::flume::{BatchEncoder, EventMapping, Fit, decode_batch, DecodeLimits};
/// use headwater_core::model::{Captured, Change, ChangeData, ChangeIdGenerator, Seq};
///
/// let now = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
/// let data = ChangeData::insert("todos", "1", &serde_json::json!({"done": false})).unwrap();
/// let id = ChangeIdGenerator::from_seed(1).next_id(now);
/// let change = Change::new(Seq::new(1).unwrap(), Captured { id, captured_at: now, data });
///
/// let mut encoder = BatchEncoder::new(EventMapping::with_source("phone-7"));
/// assert_eq!(encoder.encode(&[change], 1 << 20), Fit::Events(1));
/// let body = std::str::from_utf8(encoder.batch().body).unwrap();
/// let events = decode_batch(body, &DecodeLimits::default()).unwrap();
/// assert_eq!(events[0].headers["timestamp"], "1700000000000");
/// assert_eq!(events[0].headers["source"], "phone-7");
/// assert_eq!(events[0].body, r#"{"done":false}"#);
/// ```
#[derive(Debug, Clone)]
pub struct BatchEncoder {
    mapping: EventMapping,
    prepared: Prepared,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    events: usize,
}

/// Whether [`BatchEncoder::push`] added the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Push {
    /// The change is in the batch.
    Added,
    /// The batch would pass the byte limit with it; the body is as it was.
    Full,
}

/// The bytes of `[` and `]` around the events.
const ARRAY_OVERHEAD: usize = 2;

impl BatchEncoder {
    /// An encoder for `mapping`.
    pub fn new(mapping: EventMapping) -> Self {
        Self {
            prepared: Prepared::new(&mapping),
            mapping,
            // Grown by the first `encode`: a machine encodes into its own buffers, and
            // holds an encoder for each of possibly many outboxes.
            buf: Vec::new(),
            scratch: Vec::new(),
            events: 0,
        }
    }

    /// The mapping in use.
    pub fn mapping(&self) -> &EventMapping {
        &self.mapping
    }

    /// Starts an empty batch in `body`, replacing what it held.
    pub fn start(&self, body: &mut Vec<u8>) {
        body.clear();
        body.push(b'[');
    }

    /// Appends `change` to the batch in `body` (started with [`start`](Self::start) and
    /// holding `events` events) if the finished batch stays within `max_bytes`.
    pub fn push(
        &mut self,
        body: &mut Vec<u8>,
        events: usize,
        change: &Change,
        max_bytes: usize,
    ) -> Push {
        let mark = body.len();
        if events > 0 {
            body.push(b',');
        }
        write_event(
            &self.prepared,
            &self.mapping,
            &mut self.scratch,
            body,
            change,
        );
        if body.len() + 1 > max_bytes {
            body.truncate(mark);
            return Push::Full;
        }
        Push::Added
    }

    /// Closes the batch in `body`.
    pub fn finish(&self, body: &mut Vec<u8>) {
        body.push(b']');
    }

    /// Encodes as many of `changes`, from the front, as fit in `max_bytes`, into the
    /// encoder's own buffer (see [`batch`](Self::batch)).
    pub fn encode(&mut self, changes: &[Change], max_bytes: usize) -> Fit {
        let mut body = std::mem::take(&mut self.buf);
        self.start(&mut body);
        let mut events = 0;
        for change in changes {
            match self.push(&mut body, events, change, max_bytes) {
                Push::Added => events += 1,
                Push::Full => break,
            }
        }
        self.finish(&mut body);
        self.buf = body;
        self.events = events;
        match changes.first() {
            Some(first) if events == 0 => Fit::FirstTooLarge {
                encoded_len: self.encoded_len(first),
            },
            _ => Fit::Events(events),
        }
    }

    /// The batch the last [`encode`](Self::encode) produced.
    pub fn batch(&self) -> EncodedBatch<'_> {
        EncodedBatch::new(&self.buf, self.events)
    }

    /// The size of a request that holds `change` alone.
    pub fn encoded_len(&mut self, change: &Change) -> usize {
        let mut body = std::mem::take(&mut self.scratch);
        body.clear();
        let mut scratch = Vec::new();
        write_event(
            &self.prepared,
            &self.mapping,
            &mut scratch,
            &mut body,
            change,
        );
        let len = body.len() + ARRAY_OVERHEAD;
        self.scratch = body;
        len
    }
}

fn write_event(
    prepared: &Prepared,
    mapping: &EventMapping,
    scratch: &mut Vec<u8>,
    buf: &mut Vec<u8>,
    change: &Change,
) {
    let names = &mapping.headers;
    let data = change.data();
    buf.extend_from_slice(b"{\"headers\":{");
    let mut first = true;
    let mut field = |buf: &mut Vec<u8>, key: &[u8]| {
        if !first {
            buf.push(b',');
        }
        first = false;
        buf.extend_from_slice(key);
    };
    if let Some(key) = &prepared.id {
        field(buf, key);
        // Hex digits and hyphens never need escaping.
        let mut id = [0u8; 36];
        buf.push(b'"');
        buf.extend_from_slice(change.id().encode(&mut id).as_bytes());
        buf.push(b'"');
    }
    if let Some(key) = &prepared.timestamp {
        field(buf, key);
        write::quoted_i64(buf, change.captured_at().timestamp_millis());
    }
    if let Some(key) = &prepared.op {
        field(buf, key);
        buf.push(b'"');
        buf.extend_from_slice(data.kind().as_str().as_bytes());
        buf.push(b'"');
    }
    if let Some(key) = &prepared.collection {
        field(buf, key);
        write::string(buf, data.collection());
    }
    if let Some(key) = &prepared.key {
        field(buf, key);
        write::string(buf, data.key());
    }
    if let Some(key) = &prepared.seq {
        field(buf, key);
        write::quoted_u64(buf, change.seq().0);
    }
    if let Some(pair) = &prepared.source {
        field(buf, pair);
    }
    for (name, value) in data.headers() {
        if !names.sets(name) {
            field(buf, b"");
            write::key(buf, name);
            write::string(buf, value);
        }
    }
    for (name, pair) in &prepared.statics {
        if !data.headers().contains_key(name) {
            field(buf, pair);
        }
    }
    buf.extend_from_slice(b"},\"body\":");
    match mapping.body {
        BodyShape::Value => write::string(buf, data.value_json().unwrap_or("")),
        BodyShape::Envelope => {
            scratch.clear();
            write_envelope(scratch, change);
            // The envelope is built from JSON text we wrote ourselves: valid UTF-8.
            let text = std::str::from_utf8(scratch).unwrap_or_default();
            write::string(buf, text);
        }
    }
    buf.push(b'}');
}

/// The parts of every event that depend only on the mapping, escaped once.
#[derive(Debug, Clone, Default)]
struct Prepared {
    id: Option<Vec<u8>>,
    timestamp: Option<Vec<u8>>,
    op: Option<Vec<u8>>,
    collection: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
    seq: Option<Vec<u8>>,
    /// The whole `"source":"..."` pair.
    source: Option<Vec<u8>>,
    /// Each static header's name and whole `"name":"value"` pair.
    statics: Vec<(String, Vec<u8>)>,
}

impl Prepared {
    fn new(mapping: &EventMapping) -> Self {
        let key = |name: &Option<String>| {
            name.as_deref().map(|name| {
                let mut bytes = Vec::new();
                write::key(&mut bytes, name);
                bytes
            })
        };
        let pair = |name: &str, value: &str| {
            let mut bytes = Vec::new();
            write::key(&mut bytes, name);
            write::string(&mut bytes, value);
            bytes
        };
        let names = &mapping.headers;
        Self {
            id: key(&names.id),
            timestamp: key(&names.timestamp),
            op: key(&names.op),
            collection: key(&names.collection),
            key: key(&names.key),
            seq: key(&names.seq),
            source: names
                .source
                .as_deref()
                .map(|name| pair(name, &mapping.source)),
            statics: mapping
                .static_headers
                .iter()
                .map(|(name, value)| (name.clone(), pair(name, value)))
                .collect(),
        }
    }
}

fn write_envelope(buf: &mut Vec<u8>, change: &Change) {
    let data = change.data();
    let mut id = [0u8; 36];
    buf.push(b'{');
    write::key(buf, "id");
    write::string(buf, change.id().encode(&mut id));
    buf.push(b',');
    write::key(buf, "seq");
    let mut digits = itoa::Buffer::new();
    buf.extend_from_slice(digits.format(change.seq().0).as_bytes());
    buf.push(b',');
    write::key(buf, "op");
    write::string(buf, data.kind().as_str());
    buf.push(b',');
    write::key(buf, "collection");
    write::string(buf, data.collection());
    buf.push(b',');
    write::key(buf, "key");
    write::string(buf, data.key());
    buf.push(b',');
    write::key(buf, "captured_at");
    buf.extend_from_slice(
        digits
            .format(change.captured_at().timestamp_millis())
            .as_bytes(),
    );
    buf.push(b',');
    write::key(buf, "value");
    buf.extend_from_slice(data.value_json().unwrap_or("null").as_bytes());
    buf.push(b'}');
}

/// Encodes arbitrary Flume events (as a client other than headwater would send them)
/// into `buf`, replacing its contents.
pub fn encode_events(events: &[FlumeEvent], buf: &mut Vec<u8>) {
    buf.clear();
    buf.push(b'[');
    for (index, event) in events.iter().enumerate() {
        if index > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"headers\":{");
        for (position, (name, value)) in event.headers.iter().enumerate() {
            if position > 0 {
                buf.push(b',');
            }
            write::key(buf, name);
            write::string(buf, value);
        }
        for (position, name) in event.null_headers.iter().enumerate() {
            if position > 0 || !event.headers.is_empty() {
                buf.push(b',');
            }
            write::key(buf, name);
            buf.extend_from_slice(b"null");
        }
        buf.extend_from_slice(b"},\"body\":");
        write::string(buf, &event.body);
        buf.push(b'}');
    }
    buf.push(b']');
}

#[cfg(all(test, feature = "decode"))]
mod tests {
    use super::*;
    use crate::flume::{DecodeLimits, decode_batch};
    use crate::model::{Captured, ChangeData, ChangeIdGenerator, Seq};
    use chrono::DateTime;

    fn change(seq: u64, data: ChangeData) -> Change {
        let now = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let id = ChangeIdGenerator::from_seed(seq).next_id(now);
        Change::new(
            Seq(seq),
            Captured {
                id,
                captured_at: now,
                data,
            },
        )
    }

    fn decode(encoder: &BatchEncoder) -> Vec<FlumeEvent> {
        let body = std::str::from_utf8(encoder.batch().body).unwrap();
        decode_batch(body, &DecodeLimits::default()).unwrap()
    }

    #[test]
    fn default_headers_and_value_body() {
        let data = ChangeData::insert("todos", "k\"1", &serde_json::json!({"t": "é\n"}))
            .unwrap()
            .with_header("tenant", "acme")
            .unwrap();
        let change = change(9, data);
        let mut encoder = BatchEncoder::new(EventMapping::with_source("tab-1"));
        assert_eq!(
            encoder.encode(std::slice::from_ref(&change), 4096),
            Fit::Events(1)
        );
        let events = decode(&encoder);
        let headers = &events[0].headers;
        assert_eq!(headers["id"], change.id().to_string());
        assert_eq!(headers["timestamp"], "1700000000123");
        assert_eq!(headers["op"], "insert");
        assert_eq!(headers["collection"], "todos");
        assert_eq!(headers["key"], "k\"1");
        assert_eq!(headers["seq"], "9");
        assert_eq!(headers["source"], "tab-1");
        assert_eq!(headers["tenant"], "acme");
        assert_eq!(headers.len(), 8);
        assert_eq!(events[0].body, r#"{"t":"é\n"}"#);
    }

    #[test]
    fn delete_has_empty_body() {
        let mut encoder = BatchEncoder::new(EventMapping::default());
        encoder.encode(
            &[change(1, ChangeData::delete("todos", "1").unwrap())],
            4096,
        );
        assert_eq!(decode(&encoder)[0].body, "");
    }

    #[test]
    fn mapped_fields_win_over_own_and_static_headers() {
        let mut mapping = EventMapping::default();
        mapping.static_headers.insert("region".into(), "eu".into());
        mapping
            .static_headers
            .insert("tenant".into(), "default".into());
        let data = ChangeData::delete("c", "k")
            .unwrap()
            .with_header("op", "spoofed")
            .unwrap()
            .with_header("tenant", "acme")
            .unwrap();
        let mut encoder = BatchEncoder::new(mapping);
        encoder.encode(&[change(1, data)], 4096);
        let headers = &decode(&encoder)[0].headers;
        assert_eq!(headers["op"], "delete");
        assert_eq!(headers["tenant"], "acme");
        assert_eq!(headers["region"], "eu");
    }

    #[test]
    fn renamed_and_omitted_headers() {
        let mut mapping = EventMapping::default();
        mapping.headers.id = Some("eventId".into());
        mapping.headers.seq = None;
        let mut encoder = BatchEncoder::new(mapping);
        encoder.encode(&[change(1, ChangeData::delete("c", "k").unwrap())], 4096);
        let headers = &decode(&encoder)[0].headers;
        assert!(headers.contains_key("eventId"));
        assert!(!headers.contains_key("id"));
        assert!(!headers.contains_key("seq"));
    }

    #[test]
    fn envelope_body_holds_every_field() {
        let mapping = EventMapping {
            body: BodyShape::Envelope,
            ..EventMapping::default()
        };
        let data = ChangeData::insert("c", "k", &serde_json::json!([1, "two"])).unwrap();
        let change = change(3, data);
        let mut encoder = BatchEncoder::new(mapping);
        encoder.encode(std::slice::from_ref(&change), 4096);
        let body: serde_json::Value = serde_json::from_str(&decode(&encoder)[0].body).unwrap();
        assert_eq!(body["id"], change.id().to_string());
        assert_eq!(body["seq"], 3);
        assert_eq!(body["op"], "insert");
        assert_eq!(body["captured_at"], 1_700_000_000_123_i64);
        assert_eq!(body["value"], serde_json::json!([1, "two"]));
    }

    #[test]
    fn stops_at_the_byte_limit_and_reports_an_oversized_first_change() {
        let changes: Vec<Change> = (1..=10)
            .map(|seq| change(seq, ChangeData::insert("c", "k", &"x".repeat(100)).unwrap()))
            .collect();
        let mut encoder = BatchEncoder::new(EventMapping::default());
        let one = encoder.encoded_len(&changes[0]);
        let Fit::Events(n) = encoder.encode(&changes, one * 3) else {
            panic!("three events should fit")
        };
        assert!((2..=3).contains(&n), "{n} events in three events' room");
        assert!(encoder.batch().body.len() <= one * 3);
        assert_eq!(decode(&encoder).len(), n);
        assert_eq!(
            encoder.encode(&changes, one - 1),
            Fit::FirstTooLarge { encoded_len: one }
        );
        assert_eq!(encoder.batch().body, b"[]");
    }

    #[test]
    fn encode_events_round_trips() {
        let events = vec![
            FlumeEvent::with_body("a\u{0}b")
                .header("h", "v\"")
                .header("", ""),
            FlumeEvent::default(),
        ];
        let mut buf = Vec::new();
        encode_events(&events, &mut buf);
        let decoded =
            decode_batch(std::str::from_utf8(&buf).unwrap(), &DecodeLimits::default()).unwrap();
        assert_eq!(decoded, events);
    }
}
