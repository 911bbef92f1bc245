//! A strict decoder for the body of a request to Flume's HTTP source.
//!
//! It mirrors what Flume 1.11's `JSONHandler` (Gson) accepts, with two deliberate
//! differences: it is strict JSON (Gson is lenient and takes single quotes or unquoted
//! names), and it enforces limits on size, event count and nesting. It never panics.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;

use super::FlumeEvent;

/// Bounds on what the decoder accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest request body, in bytes.
    pub max_bytes: usize,
    /// Most events in one request.
    pub max_events: usize,
    /// Deepest nesting of arrays and objects (the outer array is depth 1).
    pub max_depth: usize,
}

impl Default for DecodeLimits {
    /// 16 MiB, 100 000 events, depth 64.
    fn default() -> Self {
        DecodeLimits {
            max_bytes: 16 * 1024 * 1024,
            max_events: 100_000,
            max_depth: 64,
        }
    }
}

/// What was wrong with a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The body is empty or only whitespace (Flume: NPE, 500; FLUME-2719).
    Empty,
    /// The document is `null` (Flume: NPE, 500).
    NullDocument,
    /// An element of the array is `null`, or missing between commas as in `[{},]`,
    /// which Gson's lenient reader takes for `null` (Flume: NPE, 500).
    NullEvent,
    /// The document is valid JSON but not an array.
    NotAnArray,
    /// An element of the array is not an object.
    EventNotAnObject,
    /// A header value or the body is an object or array.
    NotAString {
        /// `"body"` or the header's name.
        field: String,
    },
    /// `headers` is neither an object nor an array of `[name, value]` pairs.
    HeadersNotAnObject,
    /// A header name appears twice in one event.
    DuplicateHeader {
        /// The repeated name.
        name: String,
    },
    /// Something follows the array.
    TrailingContent,
    /// Malformed JSON.
    Syntax {
        /// What the decoder expected at that point.
        expected: &'static str,
    },
    /// A string holds an invalid escape or a raw control character.
    InvalidString,
    /// The body is larger than [`DecodeLimits::max_bytes`].
    TooLarge {
        /// The body's size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// More events than [`DecodeLimits::max_events`].
    TooManyEvents {
        /// The limit.
        limit: usize,
    },
    /// Nesting deeper than [`DecodeLimits::max_depth`].
    TooDeep {
        /// The limit.
        limit: usize,
    },
}

/// A body the decoder rejected, with the byte offset where it noticed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset}")]
pub struct DecodeError {
    /// What was wrong.
    pub kind: DecodeErrorKind,
    /// Where, in bytes from the start of the body.
    pub offset: usize,
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty body"),
            Self::NullDocument => f.write_str("the document is null"),
            Self::NullEvent => f.write_str("an event is null"),
            Self::NotAnArray => f.write_str("expected a JSON array of events"),
            Self::EventNotAnObject => f.write_str("an event is not a JSON object"),
            Self::NotAString { field } => {
                write!(f, "{field:?} must be a string, number or boolean")
            }
            Self::HeadersNotAnObject => f.write_str("\"headers\" must be an object"),
            Self::DuplicateHeader { name } => write!(f, "duplicate header {name:?}"),
            Self::TrailingContent => f.write_str("content after the array"),
            Self::Syntax { expected } => write!(f, "invalid JSON: expected {expected}"),
            Self::InvalidString => f.write_str("invalid string escape or control character"),
            Self::TooLarge { bytes, limit } => {
                write!(f, "body of {bytes} bytes is over the limit of {limit}")
            }
            Self::TooManyEvents { limit } => write!(f, "more than {limit} events"),
            Self::TooDeep { limit } => write!(f, "nesting deeper than {limit}"),
        }
    }
}

impl DecodeError {
    /// The status Flume 1.11's HTTP source answers for such a body (verified against a
    /// real agent): 400 where Gson raises a syntax error (content after the array too),
    /// 500 where the handler then fails on a null list or event, and 413 for the size
    /// limit, which Flume lacks and a proxy in front would enforce.
    pub fn flume_status(&self) -> u16 {
        match self.kind {
            DecodeErrorKind::Empty | DecodeErrorKind::NullDocument | DecodeErrorKind::NullEvent => {
                500
            }
            DecodeErrorKind::TooLarge { .. } => 413,
            _ => 400,
        }
    }
}

/// Decodes a request body (already converted from its charset) into Flume events.
///
/// ```
/// use headwater_core::flume::{decode_batch, DecodeLimits, DecodeErrorKind};
/// let events = decode_batch(
///     r#"[{"headers":{"n":42,"ok":true},"body":"hi"},{"extra":[1]}]"#,
///     &DecodeLimits::default(),
/// ).unwrap();
/// assert_eq!(events[0].headers["n"], "42");
/// assert_eq!(events[1].body, "");
/// let error = decode_batch(r#"{"body":"x"}"#, &DecodeLimits::default()).unwrap_err();
/// assert_eq!(error.kind, DecodeErrorKind::NotAnArray);
/// assert_eq!(error.flume_status(), 400);
/// ```
pub fn decode_batch(body: &str, limits: &DecodeLimits) -> Result<Vec<FlumeEvent>, DecodeError> {
    if body.len() > limits.max_bytes {
        return Err(DecodeError {
            kind: DecodeErrorKind::TooLarge {
                bytes: body.len(),
                limit: limits.max_bytes,
            },
            offset: 0,
        });
    }
    let mut parser = Parser {
        text: body,
        bytes: body.as_bytes(),
        pos: 0,
        limits,
    };
    let events = parser.document()?;
    Ok(events)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    limits: &'a DecodeLimits,
}

/// A scalar where Flume wants a string: numbers and booleans become their literal text.
enum Scalar {
    Text(String),
    Null,
    Composite,
}

impl<'a> Parser<'a> {
    fn fail<T>(&self, kind: DecodeErrorKind) -> Result<T, DecodeError> {
        Err(DecodeError {
            kind,
            offset: self.pos,
        })
    }

    fn syntax<T>(&self, expected: &'static str) -> Result<T, DecodeError> {
        self.fail(DecodeErrorKind::Syntax { expected })
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn document(&mut self) -> Result<Vec<FlumeEvent>, DecodeError> {
        self.skip_ws();
        let events = match self.peek() {
            None => return self.fail(DecodeErrorKind::Empty),
            Some(b'[') => self.events()?,
            Some(b'n') => {
                self.literal("null")?;
                self.skip_ws();
                if self.peek().is_some() {
                    return self.fail(DecodeErrorKind::TrailingContent);
                }
                return self.fail(DecodeErrorKind::NullDocument);
            }
            Some(_) => {
                // Gson fails on the first token when it is not `[`; so does this.
                return self.fail(DecodeErrorKind::NotAnArray);
            }
        };
        self.skip_ws();
        if self.peek().is_some() {
            return self.fail(DecodeErrorKind::TrailingContent);
        }
        Ok(events)
    }

    fn events(&mut self) -> Result<Vec<FlumeEvent>, DecodeError> {
        self.pos += 1; // '['
        self.check_depth(1)?;
        let mut events = Vec::new();
        self.skip_ws();
        if self.eat(b']') {
            return Ok(events);
        }
        loop {
            self.skip_ws();
            if let Some(b',' | b']') = self.peek() {
                // Gson's lenient reader reads a missing element as null.
                return self.fail(DecodeErrorKind::NullEvent);
            }
            if events.len() == self.limits.max_events {
                return self.fail(DecodeErrorKind::TooManyEvents {
                    limit: self.limits.max_events,
                });
            }
            events.push(self.event()?);
            self.skip_ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b']') {
                return Ok(events);
            }
            return self.syntax("',' or ']' after an event");
        }
    }

    fn event(&mut self) -> Result<FlumeEvent, DecodeError> {
        match self.peek() {
            Some(b'{') => {}
            Some(b'n') => {
                self.literal("null")?;
                return self.fail(DecodeErrorKind::NullEvent);
            }
            Some(b'[' | b'"' | b't' | b'f' | b'-' | b'0'..=b'9') => {
                return self.fail(DecodeErrorKind::EventNotAnObject);
            }
            _ => return self.syntax("an event"),
        }
        self.pos += 1;
        self.check_depth(2)?;
        let mut event = FlumeEvent::default();
        self.skip_ws();
        if self.eat(b'}') {
            return Ok(event);
        }
        loop {
            self.skip_ws();
            let name = self.string_ref()?;
            self.skip_ws();
            if !self.eat(b':') {
                return self.syntax("':' after a member name");
            }
            self.skip_ws();
            match name.as_ref() {
                "headers" => event.headers = self.headers()?,
                "body" => {
                    event.body = match self.scalar(3)? {
                        Scalar::Text(text) => text,
                        Scalar::Null => String::new(),
                        Scalar::Composite => {
                            return self.fail(DecodeErrorKind::NotAString {
                                field: name.into_owned(),
                            });
                        }
                    }
                }
                // Gson's reflective adapter skips members the Event class lacks.
                _ => self.skip_value(3)?,
            }
            self.skip_ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                return Ok(event);
            }
            return self.syntax("',' or '}' in an event");
        }
    }

    fn headers(&mut self) -> Result<BTreeMap<String, String>, DecodeError> {
        let mut headers = BTreeMap::new();
        let pairs = match self.peek() {
            Some(b'{') => false,
            // Gson also reads a map from an array of [key, value] pairs.
            Some(b'[') => true,
            Some(b'n') => {
                self.literal("null")?;
                return Ok(headers);
            }
            _ => return self.fail(DecodeErrorKind::HeadersNotAnObject),
        };
        self.pos += 1;
        self.check_depth(3)?;
        self.skip_ws();
        if self.eat(if pairs { b']' } else { b'}' }) {
            return Ok(headers);
        }
        loop {
            self.skip_ws();
            let start = self.pos;
            let name = if pairs {
                if !self.eat(b'[') {
                    return self.fail(DecodeErrorKind::HeadersNotAnObject);
                }
                self.check_depth(4)?;
                self.skip_ws();
                match self.scalar(5)? {
                    Scalar::Text(name) => name,
                    Scalar::Null | Scalar::Composite => {
                        return self.fail(DecodeErrorKind::HeadersNotAnObject);
                    }
                }
            } else {
                self.string()?
            };
            self.skip_ws();
            if !self.eat(if pairs { b',' } else { b':' }) {
                return self.syntax(if pairs {
                    "',' in a header pair"
                } else {
                    "':' after a header name"
                });
            }
            self.skip_ws();
            match self.scalar(if pairs { 5 } else { 4 })? {
                Scalar::Text(value) => match headers.entry(name) {
                    Entry::Vacant(slot) => {
                        slot.insert(value);
                    }
                    Entry::Occupied(slot) => {
                        self.pos = start;
                        let name = slot.key().clone();
                        return self.fail(DecodeErrorKind::DuplicateHeader { name });
                    }
                },
                // A null header value carries nothing Flume could store or send on.
                Scalar::Null => {}
                Scalar::Composite => {
                    return self.fail(DecodeErrorKind::NotAString { field: name });
                }
            }
            self.skip_ws();
            if pairs {
                if !self.eat(b']') {
                    return self.syntax("']' closing a header pair");
                }
                self.skip_ws();
            }
            if self.eat(b',') {
                continue;
            }
            if self.eat(if pairs { b']' } else { b'}' }) {
                return Ok(headers);
            }
            return self.syntax("',' or the end of the headers");
        }
    }

    fn scalar(&mut self, depth: usize) -> Result<Scalar, DecodeError> {
        match self.peek() {
            Some(b'"') => Ok(Scalar::Text(self.string()?)),
            Some(b'n') => self.literal("null").map(|()| Scalar::Null),
            Some(b't') => self.literal("true").map(|()| Scalar::Text("true".into())),
            Some(b'f') => self.literal("false").map(|()| Scalar::Text("false".into())),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                self.number()?;
                Ok(Scalar::Text(self.text[start..self.pos].to_owned()))
            }
            Some(b'{' | b'[') => {
                // Validate it fully first: a syntax error inside wins, as in Gson.
                self.skip_value(depth)?;
                Ok(Scalar::Composite)
            }
            _ => self.syntax("a value"),
        }
    }

    fn check_depth(&self, depth: usize) -> Result<(), DecodeError> {
        if depth > self.limits.max_depth {
            return self.fail(DecodeErrorKind::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        Ok(())
    }

    /// Skips one value of any kind, iteratively so that nesting cannot blow the stack.
    fn skip_value(&mut self, depth: usize) -> Result<(), DecodeError> {
        // Each entry: is this container an object (true) or an array (false)?
        let mut stack: Vec<bool> = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                Some(open @ (b'{' | b'[')) => {
                    self.check_depth(depth + stack.len())?;
                    self.pos += 1;
                    let object = open == b'{';
                    stack.push(object);
                    self.skip_ws();
                    if self.eat(if object { b'}' } else { b']' }) {
                        stack.pop();
                    } else {
                        if object {
                            self.member_name()?;
                        }
                        continue;
                    }
                }
                Some(b'"') => {
                    self.skip_string()?;
                }
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.literal("true")?,
                Some(b'f') => self.literal("false")?,
                Some(b'n') => self.literal("null")?,
                _ => return self.syntax("a value"),
            }
            // After a complete value: close containers or move to the next element.
            loop {
                let Some(&object) = stack.last() else {
                    return Ok(());
                };
                self.skip_ws();
                if self.eat(b',') {
                    if object {
                        self.skip_ws();
                        self.member_name()?;
                    }
                    break;
                }
                if self.eat(if object { b'}' } else { b']' }) {
                    stack.pop();
                    continue;
                }
                return self.syntax(if object { "',' or '}'" } else { "',' or ']'" });
            }
        }
    }

    fn member_name(&mut self) -> Result<(), DecodeError> {
        self.skip_string()?;
        self.skip_ws();
        if !self.eat(b':') {
            return self.syntax("':' after a member name");
        }
        Ok(())
    }

    fn literal(&mut self, word: &'static str) -> Result<(), DecodeError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            self.syntax(word)
        }
    }

    fn number(&mut self) -> Result<(), DecodeError> {
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return self.syntax("a digit"),
        }
        if self.eat(b'.') {
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.syntax("a digit after '.'");
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.syntax("a digit in the exponent");
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn skip_string(&mut self) -> Result<(), DecodeError> {
        if !self.eat(b'"') {
            return self.syntax("a string");
        }
        loop {
            self.pos = skip_plain(self.bytes, self.pos);
            match self.peek() {
                None => return self.syntax("'\"' closing a string"),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(&mut Sink::Skip)?;
                }
                Some(_) => return self.fail(DecodeErrorKind::InvalidString),
            }
        }
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        self.string_ref().map(Cow::into_owned)
    }

    /// A string, borrowed from the input when it has no escapes (the common case).
    fn string_ref(&mut self) -> Result<Cow<'a, str>, DecodeError> {
        if !self.eat(b'"') {
            return self.syntax("a string");
        }
        let start = self.pos;
        self.pos = skip_plain(self.bytes, self.pos);
        if self.peek() == Some(b'"') {
            let text = &self.text[start..self.pos];
            self.pos += 1;
            return Ok(Cow::Borrowed(text));
        }
        let mut out = String::with_capacity(self.pos - start + 16);
        let mut run = start;
        loop {
            match self.peek() {
                None => return self.syntax("'\"' closing a string"),
                Some(b'"') => {
                    out.push_str(&self.text[run..self.pos]);
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    out.push_str(&self.text[run..self.pos]);
                    self.pos += 1;
                    if let Some(b'"' | b'\\' | b'/') = self.peek() {
                        // The escaped character stands for itself: start the next run
                        // with it instead of pushing it alone.
                        run = self.pos;
                        self.pos += 1;
                    } else {
                        self.escape(&mut Sink::Into(&mut out))?;
                        run = self.pos;
                    }
                }
                Some(_) => return self.fail(DecodeErrorKind::InvalidString),
            }
            // Multi-byte UTF-8 sequences never contain ASCII bytes, so the plain runs
            // always end on character boundaries.
            self.pos = skip_plain(self.bytes, self.pos);
        }
    }

    /// Reads one escape (the backslash is already consumed).
    fn escape(&mut self, sink: &mut Sink<'_>) -> Result<(), DecodeError> {
        let Some(kind) = self.peek() else {
            return self.fail(DecodeErrorKind::InvalidString);
        };
        self.pos += 1;
        let ch = match kind {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                if (0xD800..0xDC00).contains(&unit) {
                    // A high surrogate; a low one should follow as another \u escape.
                    if self.bytes[self.pos..].starts_with(b"\\u") {
                        let save = self.pos;
                        self.pos += 2;
                        let low = self.hex4()?;
                        if (0xDC00..0xE000).contains(&low) {
                            let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                            char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)
                        } else {
                            self.pos = save;
                            char::REPLACEMENT_CHARACTER
                        }
                    } else {
                        char::REPLACEMENT_CHARACTER
                    }
                } else {
                    // Lone low surrogates have no UTF-8 form; Java would keep them and
                    // Flume would write '?' for them. U+FFFD says the same here.
                    char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER)
                }
            }
            _ => {
                self.pos -= 1;
                return self.fail(DecodeErrorKind::InvalidString);
            }
        };
        if let Sink::Into(out) = sink {
            out.push(ch);
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for _ in 0..4 {
            let digit = match self.peek() {
                Some(byte @ b'0'..=b'9') => byte - b'0',
                Some(byte @ b'a'..=b'f') => byte - b'a' + 10,
                Some(byte @ b'A'..=b'F') => byte - b'A' + 10,
                _ => return self.fail(DecodeErrorKind::InvalidString),
            };
            value = value * 16 + u32::from(digit);
            self.pos += 1;
        }
        Ok(value)
    }
}

/// Whether a byte ends a plain run inside a string: a quote, a backslash, or a control
/// character (which JSON forbids raw).
fn is_special(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

/// The index of the first special byte at or after `from` (or the length), eight bytes
/// at a time: the bulk of a body is plain text.
fn skip_plain(bytes: &[u8], mut index: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    while let Some(chunk) = bytes.get(index..index + 8) {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_le_bytes(chunk);
        let found = has_zero(word ^ (ONES * u64::from(b'"')))
            | has_zero(word ^ (ONES * u64::from(b'\\')))
            | (word.wrapping_sub(ONES * 0x20) & !word & HIGHS);
        if found != 0 {
            // The lowest flagged byte is always a true match.
            return index + (found.trailing_zeros() / 8) as usize;
        }
        index += 8;
    }
    while bytes.get(index).is_some_and(|&byte| !is_special(byte)) {
        index += 1;
    }
    index
}

enum Sink<'o> {
    Skip,
    Into(&'o mut String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &str) -> Result<Vec<FlumeEvent>, DecodeErrorKind> {
        decode_batch(body, &DecodeLimits::default()).map_err(|error| error.kind)
    }

    fn status(body: &str) -> u16 {
        decode_batch(body, &DecodeLimits::default())
            .map(|_| 200)
            .unwrap_or_else(|error| error.flume_status())
    }

    #[test]
    fn empty_array_is_valid() {
        assert_eq!(decode("[]"), Ok(vec![]));
        assert_eq!(decode(" \n[ ]\t"), Ok(vec![]));
    }

    #[test]
    fn empty_and_null_documents_are_flume_500s() {
        assert_eq!(decode(""), Err(DecodeErrorKind::Empty));
        assert_eq!(decode("  \n"), Err(DecodeErrorKind::Empty));
        assert_eq!(decode("null"), Err(DecodeErrorKind::NullDocument));
        assert_eq!(decode("[null]"), Err(DecodeErrorKind::NullEvent));
        assert_eq!(decode("[{},]"), Err(DecodeErrorKind::NullEvent));
        assert_eq!(decode("[,]"), Err(DecodeErrorKind::NullEvent));
        for body in ["", " ", "null", "[null]", "[{}, null]", "[{},]"] {
            assert_eq!(status(body), 500, "{body:?}");
        }
    }

    #[test]
    fn non_arrays_are_400s() {
        for body in [r#"{"headers":{}}"#, "\"x\"", "42", "true", "x"] {
            assert_eq!(decode(body), Err(DecodeErrorKind::NotAnArray), "{body}");
            assert_eq!(status(body), 400);
        }
        assert_eq!(decode("[1]"), Err(DecodeErrorKind::EventNotAnObject));
        assert_eq!(decode("[[]]"), Err(DecodeErrorKind::EventNotAnObject));
    }

    #[test]
    fn numbers_and_booleans_are_coerced_to_their_text() {
        let events =
            decode(r#"[{"headers":{"a":42,"b":-1.5e3,"c":true,"d":false},"body":7}]"#).unwrap();
        let headers = &events[0].headers;
        assert_eq!(headers["a"], "42");
        assert_eq!(headers["b"], "-1.5e3");
        assert_eq!(headers["c"], "true");
        assert_eq!(headers["d"], "false");
        assert_eq!(events[0].body, "7");
    }

    #[test]
    fn objects_or_arrays_as_values_are_400s() {
        assert_eq!(
            decode(r#"[{"headers":{"a":{}}}]"#),
            Err(DecodeErrorKind::NotAString { field: "a".into() })
        );
        assert_eq!(
            decode(r#"[{"body":[1,2]}]"#),
            Err(DecodeErrorKind::NotAString {
                field: "body".into()
            })
        );
        assert_eq!(
            decode(r#"[{"headers":"a=b"}]"#),
            Err(DecodeErrorKind::HeadersNotAnObject)
        );
        assert_eq!(status(r#"[{"headers":{"a":[]}}]"#), 400);
    }

    #[test]
    fn headers_may_be_an_array_of_pairs_as_gson_reads_maps() {
        let events = decode(r#"[{"headers":[["a","1"],["n",2]]},{"headers":[]}]"#).unwrap();
        assert_eq!(events[0].headers["a"], "1");
        assert_eq!(events[0].headers["n"], "2");
        assert!(events[1].headers.is_empty());
        assert_eq!(
            decode(r#"[{"headers":[["a","1"],["a","2"]]}]"#),
            Err(DecodeErrorKind::DuplicateHeader { name: "a".into() })
        );
        assert_eq!(
            decode(r#"[{"headers":["a"]}]"#),
            Err(DecodeErrorKind::HeadersNotAnObject)
        );
        assert!(matches!(
            decode(r#"[{"headers":[["a"]]}]"#),
            Err(DecodeErrorKind::Syntax { .. })
        ));
    }

    #[test]
    fn duplicate_header_is_a_400() {
        let error = decode_batch(
            r#"[{"headers":{"a":"1","a":"2"}}]"#,
            &DecodeLimits::default(),
        )
        .unwrap_err();
        assert_eq!(
            error.kind,
            DecodeErrorKind::DuplicateHeader { name: "a".into() }
        );
        assert_eq!(error.offset, 21);
        assert_eq!(error.flume_status(), 400);
    }

    #[test]
    fn null_and_missing_fields_give_empty_values() {
        let events = decode(r#"[{"headers":null,"body":null},{},{"headers":{"x":null}}]"#).unwrap();
        assert_eq!(events, vec![FlumeEvent::default(); 3]);
    }

    #[test]
    fn unknown_members_are_skipped_however_nested() {
        let events =
            decode(r#"[{"meta":{"a":[1,{"b":null}],"c":"\""},"body":"x","more":[]}]"#).unwrap();
        assert_eq!(events, vec![FlumeEvent::with_body("x")]);
    }

    #[test]
    fn trailing_content_is_rejected() {
        assert_eq!(decode("[] x"), Err(DecodeErrorKind::TrailingContent));
        assert_eq!(decode("[][]"), Err(DecodeErrorKind::TrailingContent));
        assert_eq!(status("[]x"), 400);
    }

    #[test]
    fn malformed_json_is_a_syntax_error() {
        for body in [
            "[",
            "[{",
            r#"[{"body":}]"#,
            r#"[{"body":"x"]"#,
            r#"[{"body":"x",}]"#,
            r#"[{'body':'x'}]"#,
            r#"[{"body":01}]"#,
            r#"[{"body":1.}]"#,
            r#"[{"body":tru}]"#,
            r#"[{"x":[1,]}]"#,
            r#"[{"x":{"a" 1}}]"#,
        ] {
            let error = decode(body).unwrap_err();
            assert!(
                matches!(error, DecodeErrorKind::Syntax { .. }),
                "{body}: {error:?}"
            );
            assert_eq!(status(body), 400);
        }
    }

    #[test]
    fn escapes_and_unicode() {
        let events = decode(
            r#"[{"body":"a\"\\\/\b\f\n\r\t\u00e9\ud83c\udf89 é","headers":{"\u0041":"1"}}]"#,
        )
        .unwrap();
        assert_eq!(events[0].body, "a\"\\/\u{8}\u{c}\n\r\té🎉 é");
        assert_eq!(events[0].headers["A"], "1");
        assert_eq!(
            decode(r#"[{"body":"\ud800"}]"#).unwrap()[0].body,
            "\u{fffd}"
        );
        assert_eq!(
            decode(r#"[{"body":"\udc00x"}]"#).unwrap()[0].body,
            "\u{fffd}x"
        );
        assert_eq!(
            decode(r#"[{"body":"\ud800\u0041"}]"#).unwrap()[0].body,
            "\u{fffd}A"
        );
        assert_eq!(
            decode(r#"[{"body":"\x"}]"#),
            Err(DecodeErrorKind::InvalidString)
        );
        assert_eq!(
            decode(r#"[{"body":"\u12G4"}]"#),
            Err(DecodeErrorKind::InvalidString)
        );
        assert_eq!(
            decode("[{\"body\":\"a\nb\"}]"),
            Err(DecodeErrorKind::InvalidString)
        );
    }

    #[test]
    fn the_plain_run_scanner_finds_every_special_byte() {
        for length in 0..40 {
            for special in [b'"', b'\\', 0x00, 0x1f] {
                for at in 0..=length {
                    let mut bytes = vec![b'a'; length];
                    bytes.extend_from_slice("é".as_bytes());
                    if at < length {
                        bytes[at] = special;
                    }
                    let expected = if at < length { at } else { bytes.len() };
                    assert_eq!(skip_plain(&bytes, 0), expected, "{length} {special} {at}");
                    assert!(skip_plain(&bytes, at.min(bytes.len())) >= at.min(expected));
                }
            }
        }
        assert_eq!(skip_plain(b"\x7f\x80\xff ~", 0), 5);
    }

    #[test]
    fn limits_are_enforced() {
        let limits = DecodeLimits {
            max_bytes: 20,
            max_events: 2,
            max_depth: 4,
        };
        assert!(matches!(
            decode_batch(&" ".repeat(21), &limits).unwrap_err().kind,
            DecodeErrorKind::TooLarge { bytes: 21, .. }
        ));
        assert_eq!(
            decode_batch("[{},{},{}]", &limits).unwrap_err().kind,
            DecodeErrorKind::TooManyEvents { limit: 2 }
        );
        assert_eq!(decode_batch("[{},{}]", &limits).unwrap().len(), 2);
        assert_eq!(
            decode_batch(r#"[{"x":[[[]]]}]"#, &limits).unwrap_err().kind,
            DecodeErrorKind::TooDeep { limit: 4 }
        );
        assert!(decode_batch(r#"[{"x":[[]]}]"#, &limits).is_ok());
        let deep = format!("[{{\"x\":{}{}}}]", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            decode(&deep),
            Err(DecodeErrorKind::TooDeep { .. })
        ));
    }
}
