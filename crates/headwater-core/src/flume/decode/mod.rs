//! The decoder of a request body to Flume's HTTP source: what Flume 1.11's
//! `JSONHandler` does with it, through Gson 2.9.1 in the lenient mode `Gson.fromJson`
//! reads in (the `reader` module is a port of Gson's `JsonReader`), plus limits on size,
//! event count and nesting, which Flume lacks. It never panics.
//!
//! Gson reads `List<JSONEvent>`: a `null` document or element reaches Flume as `null`
//! (and fails there with 500); an event's `headers` is a `Map<String, String>` (an object,
//! or an array of `[name, value]` pairs; a null value is kept; a repeated name is an
//! error unless the earlier value was null); `body` is a string (numbers and booleans
//! become their text, `null` an empty body); other members are skipped. After the list,
//! only whitespace may follow: that check runs in Gson's strict mode.

mod reader;

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use self::reader::{Reader, Stop, Token};
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
        Self {
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
    /// `\u` followed by four characters that are not all hex digits. Gson throws a
    /// `NumberFormatException` that Flume answers with 500 and this text.
    BadUnicodeEscape {
        /// The escape as Gson reports it, such as `\u12G4`.
        escape: String,
    },
    /// A `[name, value]` header pair whose name is `null`: Gson's map refuses a null
    /// key with a `NullPointerException` (Flume: 500, `key == null`).
    NullHeaderName,
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
            Self::BadUnicodeEscape { escape } => write!(f, "invalid unicode escape {escape}"),
            Self::NullHeaderName => f.write_str("a header pair's name is null"),
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
    /// 500 where an exception Gson does not wrap reaches Flume (a null list or event, a
    /// bad `\u` escape, a null header name), and 413 for the size limit, which Flume
    /// lacks and a proxy in front would enforce.
    pub fn flume_status(&self) -> u16 {
        match self.kind {
            DecodeErrorKind::Empty
            | DecodeErrorKind::NullDocument
            | DecodeErrorKind::NullEvent
            | DecodeErrorKind::BadUnicodeEscape { .. }
            | DecodeErrorKind::NullHeaderName => 500,
            DecodeErrorKind::TooLarge { .. } => 413,
            _ => 400,
        }
    }
}

/// Decodes a request body (already converted from its charset) into Flume events, as
/// Flume 1.11 does. A lone UTF-16 surrogate (an unpaired `\u` escape) becomes `?`, as
/// Java's UTF-8 encoder writes it when Flume stores the event; see
/// [`decode_batch_with_replacement`] for other charsets.
///
/// ```
/// use headwater_core::flume::{decode_batch, DecodeLimits, DecodeErrorKind};
/// let events = decode_batch(
///     r#"[{"headers":{"n":42,"ok":true,"gone":null},"body":"hi"},{extra:[1], body:'x'}]"#,
///     &DecodeLimits::default(),
/// ).unwrap();
/// assert_eq!(events[0].headers["n"], "42");
/// assert!(events[0].null_headers.contains("gone"));
/// assert_eq!(events[1].body, "x");
/// let error = decode_batch(r#"{"body":"x"}"#, &DecodeLimits::default()).unwrap_err();
/// assert_eq!(error.kind, DecodeErrorKind::NotAnArray);
/// assert_eq!(error.flume_status(), 400);
/// ```
pub fn decode_batch(body: &str, limits: &DecodeLimits) -> Result<Vec<FlumeEvent>, DecodeError> {
    decode_batch_with_replacement(body, limits, '?')
}

/// [`decode_batch`], with lone surrogates in event bodies replaced by `unpaired`: Java
/// writes `?` for one in UTF-8 and U+FFFD in UTF-16 or UTF-32, the charset Flume stores
/// a body in being the request's. Header names and values always get `?` (Flume's sinks
/// write headers in the platform's charset).
pub fn decode_batch_with_replacement(
    body: &str,
    limits: &DecodeLimits,
    unpaired: char,
) -> Result<Vec<FlumeEvent>, DecodeError> {
    if body.len() > limits.max_bytes {
        return Err(DecodeError {
            kind: DecodeErrorKind::TooLarge {
                bytes: body.len(),
                limit: limits.max_bytes,
            },
            offset: 0,
        });
    }
    // Gson's JsonReader skips one byte order mark at the very start of the document
    // (`fillBuffer`), so Flume takes `EF BB BF [...]` sent as UTF-8 as the array after it.
    let body = body.strip_prefix('\u{feff}').unwrap_or(body);
    let mut handler = Handler {
        reader: Reader::new(body, limits),
        limits,
        unpaired,
    };
    handler.document()
}

/// Gson's type adapters for `List<JSONEvent>`, then the checks `JSONHandler` makes.
struct Handler<'a> {
    reader: Reader<'a>,
    limits: &'a DecodeLimits,
    unpaired: char,
}

/// A header map as Gson builds it: names with string values, and names whose value
/// is null (kept, as Gson's map keeps them).
#[derive(Default)]
struct GsonHeaders {
    values: BTreeMap<String, String>,
    nulls: BTreeSet<String>,
}

impl<'a> Handler<'a> {
    fn fail<T>(&self, kind: DecodeErrorKind) -> Result<T, DecodeError> {
        Err(DecodeError {
            kind,
            offset: self.reader.pos,
        })
    }

    /// Runs `step`; a stop of the reader becomes its error, and a type mismatch
    /// (Gson's `IllegalStateException`) becomes `mismatch` when given.
    fn read<T>(
        &mut self,
        mismatch: Option<DecodeErrorKind>,
        step: impl FnOnce(&mut Reader<'a>) -> Result<T, Stop>,
    ) -> Result<T, DecodeError> {
        let at = self.reader.pos;
        match step(&mut self.reader) {
            Ok(value) => Ok(value),
            Err(Stop::Mismatch(expected)) => Err(DecodeError {
                kind: mismatch.unwrap_or(DecodeErrorKind::Syntax { expected }),
                offset: at,
            }),
            Err(stop) => Err(self.reader.error(stop)),
        }
    }

    fn peek(&mut self) -> Result<Token, DecodeError> {
        self.read(None, Reader::peek)
    }

    fn document(&mut self) -> Result<Vec<FlumeEvent>, DecodeError> {
        // Gson returns null for a document with nothing in it but whitespace and
        // comments, and Flume then fails on the null list.
        match self.reader.peek() {
            Err(Stop::Eof) => return self.fail(DecodeErrorKind::Empty),
            Err(stop) => return Err(self.reader.error(stop)),
            Ok(_) => {}
        }
        let Some(events) = self.list()? else {
            // Gson does not check what follows a null document.
            return self.fail(DecodeErrorKind::NullDocument);
        };
        // Gson's assertFullConsumption peeks in strict mode: only whitespace may follow.
        let rest = self.reader.remaining();
        if let Some(at) = rest
            .bytes()
            .position(|byte| !matches!(byte, b' ' | b'\n' | b'\r' | b'\t'))
        {
            return Err(DecodeError {
                kind: DecodeErrorKind::TrailingContent,
                offset: self.reader.pos + at,
            });
        }
        // JSONHandler then sets each event's charset: a null event fails there.
        events
            .into_iter()
            .map(|event| {
                event.ok_or(DecodeError {
                    kind: DecodeErrorKind::NullEvent,
                    offset: self.reader.pos,
                })
            })
            .collect()
    }

    fn list(&mut self) -> Result<Option<Vec<Option<FlumeEvent>>>, DecodeError> {
        if self.peek()? == Token::Null {
            self.read(None, Reader::next_null)?;
            return Ok(None);
        }
        self.read(Some(DecodeErrorKind::NotAnArray), Reader::begin_array)?;
        let mut events = Vec::new();
        while self.read(None, Reader::has_next)? {
            if events.len() == self.limits.max_events {
                return self.fail(DecodeErrorKind::TooManyEvents {
                    limit: self.limits.max_events,
                });
            }
            events.push(self.event()?);
        }
        self.read(None, Reader::end_array)?;
        Ok(Some(events))
    }

    fn event(&mut self) -> Result<Option<FlumeEvent>, DecodeError> {
        if self.peek()? == Token::Null {
            self.read(None, Reader::next_null)?;
            return Ok(None);
        }
        self.read(
            Some(DecodeErrorKind::EventNotAnObject),
            Reader::begin_object,
        )?;
        let mut headers: Option<GsonHeaders> = None;
        let mut body: Option<String> = None;
        while self.read(None, Reader::has_next)? {
            let unpaired = self.unpaired;
            let name = self.read(None, |reader| reader.next_name('?'))?;
            // Gson's reflective adapter: a repeated member overwrites the earlier one.
            match name.as_ref() {
                "headers" => headers = self.headers()?,
                "body" => body = self.string("body", unpaired)?,
                _ => self.read(None, Reader::skip_value)?,
            }
        }
        self.read(None, Reader::end_object)?;
        let mut event = FlumeEvent::with_body(body.unwrap_or_default());
        if let Some(headers) = headers {
            event.headers = headers.values;
            event.null_headers = headers.nulls;
        }
        Ok(Some(event))
    }

    /// Gson's `String` adapter: null, a boolean's text, or `nextString` (a string or a
    /// number's text); an object or array is a mismatch.
    fn string(&mut self, field: &str, unpaired: char) -> Result<Option<String>, DecodeError> {
        match self.peek()? {
            Token::Null => {
                self.read(None, Reader::next_null)?;
                Ok(None)
            }
            Token::Boolean => {
                let value = self.read(None, Reader::next_boolean)?;
                Ok(Some(value.to_string()))
            }
            _ => {
                let at = self.reader.pos;
                match self.reader.next_string(unpaired) {
                    Ok(text) => Ok(Some(text.into_owned())),
                    Err(Stop::Mismatch(_)) => Err(DecodeError {
                        kind: DecodeErrorKind::NotAString {
                            field: field.to_owned(),
                        },
                        offset: at,
                    }),
                    Err(stop) => Err(self.reader.error(stop)),
                }
            }
        }
    }

    /// Gson's map adapter for `Map<String, String>`: an object, or an array of
    /// `[name, value]` pairs.
    fn headers(&mut self) -> Result<Option<GsonHeaders>, DecodeError> {
        let mut headers = GsonHeaders::default();
        match self.peek()? {
            Token::Null => {
                self.read(None, Reader::next_null)?;
                return Ok(None);
            }
            Token::BeginArray => {
                self.read(None, Reader::begin_array)?;
                while self.read(None, Reader::has_next)? {
                    self.read(
                        Some(DecodeErrorKind::HeadersNotAnObject),
                        Reader::begin_array,
                    )?;
                    let start = self.reader.pos;
                    let name = self.string("header name", '?')?;
                    let value = self.string(name.as_deref().unwrap_or("null"), '?')?;
                    let Some(name) = name else {
                        return self.fail(DecodeErrorKind::NullHeaderName);
                    };
                    self.put(&mut headers, name, value, start)?;
                    self.read(None, Reader::end_array)?;
                }
                self.read(None, Reader::end_array)?;
            }
            _ => {
                self.read(
                    Some(DecodeErrorKind::HeadersNotAnObject),
                    Reader::begin_object,
                )?;
                while self.read(None, Reader::has_next)? {
                    let start = self.reader.pos;
                    self.read(None, Reader::promote_name_to_value)?;
                    let name = self
                        .read(None, |reader| reader.next_string('?'))?
                        .into_owned();
                    let value = self.string(&name, '?')?;
                    self.put(&mut headers, name, value, start)?;
                }
                self.read(None, Reader::end_object)?;
            }
        }
        Ok(Some(headers))
    }

    /// `map.put`; Gson fails only when it replaced a value that was not null.
    fn put(
        &self,
        headers: &mut GsonHeaders,
        name: String,
        value: Option<String>,
        at: usize,
    ) -> Result<(), DecodeError> {
        match headers.values.entry(name) {
            Entry::Occupied(slot) => Err(DecodeError {
                kind: DecodeErrorKind::DuplicateHeader {
                    name: slot.key().clone(),
                },
                offset: at,
            }),
            Entry::Vacant(slot) => {
                match value {
                    Some(value) => {
                        if !headers.nulls.is_empty() {
                            headers.nulls.remove(slot.key());
                        }
                        slot.insert(value);
                    }
                    None => {
                        headers.nulls.insert(slot.into_key());
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
