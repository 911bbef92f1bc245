//! A port of Gson 2.9.1's `JsonReader` (the version Flume 1.11 ships), in the lenient
//! mode that `Gson.fromJson` reads requests in: the same tokens, the same leniencies
//! (single-quoted and unquoted strings and names, `//`, `/* */` and `#` comments, `=` and
//! `=>` after names, `;` between members and elements, missing array elements read as
//! null, the `)]}'` prefix) and the same errors, over text already decoded from its
//! charset. It never panics and keeps its own stack, so nesting cannot overflow ours.

use std::borrow::Cow;

use super::{DecodeError, DecodeErrorKind, DecodeLimits};

mod strings;

/// What the next token is (Gson's `JsonToken`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token {
    BeginArray,
    EndArray,
    BeginObject,
    EndObject,
    Name,
    /// A string, or an unquoted literal such as a number.
    String,
    Boolean,
    Null,
    EndDocument,
}

/// Gson's `PEEKED_*` states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peeked {
    BeginObject,
    EndObject,
    BeginArray,
    EndArray,
    True,
    False,
    Null,
    SingleQuoted,
    DoubleQuoted,
    /// An unquoted literal of this many bytes. Numbers are among them: Gson's
    /// `nextString` gives a number's literal text, so nothing here needs to tell them
    /// apart.
    Unquoted(usize),
    SingleQuotedName,
    DoubleQuotedName,
    UnquotedName(usize),
    Eof,
}

/// Gson's `JsonScope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    EmptyArray,
    NonemptyArray,
    EmptyObject,
    DanglingName,
    NonemptyObject,
    EmptyDocument,
    NonemptyDocument,
}

/// Where the reader stops: Gson's exceptions, as the request handler sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stop {
    /// Input ended (`EOFException`).
    Eof,
    /// Malformed JSON (`MalformedJsonException`): a `JsonSyntaxException`.
    Syntax(&'static str),
    /// The wrong token for the type (`IllegalStateException`): also a
    /// `JsonSyntaxException`.
    Mismatch(&'static str),
    /// `\u` followed by four characters that are not hex digits: Gson throws a
    /// `NumberFormatException` with this text, which nothing catches before Flume.
    BadUnicodeEscape(String),
    /// A limit of [`DecodeLimits`].
    Limit(DecodeErrorKind),
}

pub(super) struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pub(super) pos: usize,
    stack: Vec<Scope>,
    peeked: Option<Peeked>,
    max_depth: usize,
}

/// Whether `byte` can be part of an unquoted literal (Gson's `isLiteral`, lenient).
fn is_literal(byte: u8) -> bool {
    !matches!(
        byte,
        b'/' | b'\\'
            | b';'
            | b'#'
            | b'='
            | b'{'
            | b'}'
            | b'['
            | b']'
            | b':'
            | b','
            | b' '
            | b'\t'
            | 0x0c
            | b'\r'
            | b'\n'
    )
}

impl<'a> Reader<'a> {
    pub(super) fn new(text: &'a str, limits: &DecodeLimits) -> Self {
        Reader {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            stack: vec![Scope::EmptyDocument],
            peeked: None,
            max_depth: limits.max_depth,
        }
    }

    pub(super) fn error(&self, stop: Stop) -> DecodeError {
        let kind = match stop {
            Stop::Eof => DecodeErrorKind::Syntax {
                expected: "more input",
            },
            Stop::Syntax(expected) | Stop::Mismatch(expected) => {
                DecodeErrorKind::Syntax { expected }
            }
            Stop::BadUnicodeEscape(escape) => DecodeErrorKind::BadUnicodeEscape { escape },
            Stop::Limit(kind) => kind,
        };
        DecodeError {
            kind,
            offset: self.pos.min(self.text.len()),
        }
    }

    fn top(&self) -> Scope {
        self.stack
            .last()
            .copied()
            .unwrap_or(Scope::NonemptyDocument)
    }

    fn set_top(&mut self, scope: Scope) {
        if let Some(top) = self.stack.last_mut() {
            *top = scope;
        }
    }

    fn push(&mut self, scope: Scope) -> Result<(), Stop> {
        // The document's own scope does not count: the outer array is depth 1.
        if self.stack.len() > self.max_depth {
            return Err(Stop::Limit(DecodeErrorKind::TooDeep {
                limit: self.max_depth,
            }));
        }
        self.stack.push(scope);
        Ok(())
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.bytes.get(at).copied()
    }

    /// The next byte that is not whitespace or inside a comment, consumed (Gson's
    /// `nextNonWhitespace`); `None` at the end of input.
    fn next_non_whitespace(&mut self) -> Result<Option<u8>, Stop> {
        loop {
            let Some(byte) = self.byte(self.pos) else {
                return Ok(None);
            };
            self.pos += 1;
            match byte {
                b' ' | b'\n' | b'\r' | b'\t' => {}
                b'/' => match self.byte(self.pos) {
                    Some(b'*') => {
                        self.pos += 1;
                        match self.text[self.pos..].find("*/") {
                            Some(at) => self.pos += at + 2,
                            None => {
                                self.pos = self.bytes.len();
                                return Err(Stop::Syntax("the end of a comment"));
                            }
                        }
                    }
                    Some(b'/') => {
                        self.pos += 1;
                        self.skip_to_end_of_line();
                    }
                    _ => return Ok(Some(byte)),
                },
                b'#' => self.skip_to_end_of_line(),
                _ => return Ok(Some(byte)),
            }
        }
    }

    fn skip_to_end_of_line(&mut self) {
        while let Some(byte) = self.byte(self.pos) {
            self.pos += 1;
            if byte == b'\n' || byte == b'\r' {
                break;
            }
        }
    }

    fn next_non_whitespace_or_eof(&mut self) -> Result<u8, Stop> {
        self.next_non_whitespace()?.ok_or(Stop::Eof)
    }

    fn peeked(&mut self) -> Result<Peeked, Stop> {
        match self.peeked {
            Some(peeked) => Ok(peeked),
            None => {
                let peeked = self.do_peek()?;
                self.peeked = Some(peeked);
                Ok(peeked)
            }
        }
    }

    fn do_peek(&mut self) -> Result<Peeked, Stop> {
        let scope = self.top();
        match scope {
            Scope::EmptyArray => self.set_top(Scope::NonemptyArray),
            Scope::NonemptyArray => match self.next_non_whitespace_or_eof()? {
                b']' => return Ok(Peeked::EndArray),
                b';' | b',' => {}
                _ => return Err(Stop::Syntax("',' or ']' in an array")),
            },
            Scope::EmptyObject | Scope::NonemptyObject => {
                self.set_top(Scope::DanglingName);
                if scope == Scope::NonemptyObject {
                    match self.next_non_whitespace_or_eof()? {
                        b'}' => return Ok(Peeked::EndObject),
                        b';' | b',' => {}
                        _ => return Err(Stop::Syntax("',' or '}' in an object")),
                    }
                }
                return match self.next_non_whitespace_or_eof()? {
                    b'"' => Ok(Peeked::DoubleQuotedName),
                    b'\'' => Ok(Peeked::SingleQuotedName),
                    b'}' if scope != Scope::NonemptyObject => Ok(Peeked::EndObject),
                    b'}' => Err(Stop::Syntax("a name")),
                    byte => {
                        self.pos -= 1;
                        if is_literal(byte) {
                            Ok(Peeked::UnquotedName(self.literal_len()))
                        } else {
                            Err(Stop::Syntax("a name"))
                        }
                    }
                };
            }
            Scope::DanglingName => {
                self.set_top(Scope::NonemptyObject);
                match self.next_non_whitespace_or_eof()? {
                    b':' => {}
                    b'=' => {
                        if self.byte(self.pos) == Some(b'>') {
                            self.pos += 1;
                        }
                    }
                    _ => return Err(Stop::Syntax("':' after a name")),
                }
            }
            Scope::EmptyDocument => {
                self.consume_non_execute_prefix()?;
                self.set_top(Scope::NonemptyDocument);
            }
            Scope::NonemptyDocument => match self.next_non_whitespace()? {
                None => return Ok(Peeked::Eof),
                Some(_) => self.pos -= 1,
            },
        }

        match self.next_non_whitespace_or_eof()? {
            b']' if scope == Scope::EmptyArray => Ok(Peeked::EndArray),
            b']' | b';' | b',' if matches!(scope, Scope::EmptyArray | Scope::NonemptyArray) => {
                // A missing element reads as null; the separator is read again.
                self.pos -= 1;
                Ok(Peeked::Null)
            }
            b']' | b';' | b',' => Err(Stop::Syntax("a value")),
            b'\'' => Ok(Peeked::SingleQuoted),
            b'"' => Ok(Peeked::DoubleQuoted),
            b'[' => Ok(Peeked::BeginArray),
            b'{' => Ok(Peeked::BeginObject),
            byte => {
                self.pos -= 1;
                if !is_literal(byte) {
                    return Err(Stop::Syntax("a value"));
                }
                let len = self.literal_len();
                let word = &self.bytes[self.pos..self.pos + len];
                let keyword = |name: &[u8]| word.eq_ignore_ascii_case(name);
                if keyword(b"true") {
                    self.pos += len;
                    Ok(Peeked::True)
                } else if keyword(b"false") {
                    self.pos += len;
                    Ok(Peeked::False)
                } else if keyword(b"null") {
                    self.pos += len;
                    Ok(Peeked::Null)
                } else {
                    Ok(Peeked::Unquoted(len))
                }
            }
        }
    }

    /// Gson skips `)]}'` and a newline at the very start, after whitespace and
    /// comments.
    fn consume_non_execute_prefix(&mut self) -> Result<(), Stop> {
        self.next_non_whitespace_or_eof()?;
        self.pos -= 1;
        if self.bytes[self.pos..].starts_with(b")]}'\n") {
            self.pos += 5;
        }
        Ok(())
    }

    /// The length of the unquoted literal at `pos`.
    fn literal_len(&self) -> usize {
        self.bytes[self.pos..]
            .iter()
            .position(|&byte| !is_literal(byte))
            .unwrap_or(self.bytes.len() - self.pos)
    }

    /// The next token, without consuming it.
    pub(super) fn peek(&mut self) -> Result<Token, Stop> {
        Ok(match self.peeked()? {
            Peeked::BeginObject => Token::BeginObject,
            Peeked::EndObject => Token::EndObject,
            Peeked::BeginArray => Token::BeginArray,
            Peeked::EndArray => Token::EndArray,
            Peeked::True | Peeked::False => Token::Boolean,
            Peeked::Null => Token::Null,
            Peeked::SingleQuoted | Peeked::DoubleQuoted | Peeked::Unquoted(_) => Token::String,
            Peeked::SingleQuotedName | Peeked::DoubleQuotedName | Peeked::UnquotedName(_) => {
                Token::Name
            }
            Peeked::Eof => Token::EndDocument,
        })
    }

    fn expect(&mut self, wanted: Peeked, expected: &'static str) -> Result<(), Stop> {
        if self.peeked()? != wanted {
            return Err(Stop::Mismatch(expected));
        }
        self.peeked = None;
        Ok(())
    }

    pub(super) fn begin_array(&mut self) -> Result<(), Stop> {
        self.expect(Peeked::BeginArray, "'['")?;
        self.push(Scope::EmptyArray)
    }

    pub(super) fn end_array(&mut self) -> Result<(), Stop> {
        self.expect(Peeked::EndArray, "']'")?;
        self.stack.pop();
        Ok(())
    }

    pub(super) fn begin_object(&mut self) -> Result<(), Stop> {
        self.expect(Peeked::BeginObject, "'{'")?;
        self.push(Scope::EmptyObject)
    }

    pub(super) fn end_object(&mut self) -> Result<(), Stop> {
        self.expect(Peeked::EndObject, "'}'")?;
        self.stack.pop();
        Ok(())
    }

    pub(super) fn has_next(&mut self) -> Result<bool, Stop> {
        Ok(!matches!(
            self.peeked()?,
            Peeked::EndObject | Peeked::EndArray | Peeked::Eof
        ))
    }

    pub(super) fn next_null(&mut self) -> Result<(), Stop> {
        self.expect(Peeked::Null, "null")
    }

    pub(super) fn next_boolean(&mut self) -> Result<bool, Stop> {
        let value = match self.peeked()? {
            Peeked::True => true,
            Peeked::False => false,
            _ => return Err(Stop::Mismatch("a boolean")),
        };
        self.peeked = None;
        Ok(value)
    }

    /// A member name. Lone surrogates in it become `unpaired`.
    pub(super) fn next_name(&mut self, unpaired: char) -> Result<Cow<'a, str>, Stop> {
        let name = match self.peeked()? {
            Peeked::UnquotedName(len) => self.take_literal(len),
            Peeked::DoubleQuotedName => self.quoted(b'"', unpaired)?,
            Peeked::SingleQuotedName => self.quoted(b'\'', unpaired)?,
            _ => return Err(Stop::Mismatch("a name")),
        };
        self.peeked = None;
        Ok(name)
    }

    /// Makes the name that comes next read as a string value (Gson's
    /// `promoteNameToValue`, how its map adapter reads keys).
    pub(super) fn promote_name_to_value(&mut self) -> Result<(), Stop> {
        let promoted = match self.peeked()? {
            Peeked::DoubleQuotedName => Peeked::DoubleQuoted,
            Peeked::SingleQuotedName => Peeked::SingleQuoted,
            Peeked::UnquotedName(len) => Peeked::Unquoted(len),
            _ => return Err(Stop::Mismatch("a name")),
        };
        self.peeked = Some(promoted);
        Ok(())
    }

    /// A string, or a number's text (Gson's `nextString`). Lone surrogates become
    /// `unpaired`.
    pub(super) fn next_string(&mut self, unpaired: char) -> Result<Cow<'a, str>, Stop> {
        let text = match self.peeked()? {
            Peeked::Unquoted(len) => self.take_literal(len),
            Peeked::DoubleQuoted => self.quoted(b'"', unpaired)?,
            Peeked::SingleQuoted => self.quoted(b'\'', unpaired)?,
            _ => return Err(Stop::Mismatch("a string")),
        };
        self.peeked = None;
        Ok(text)
    }

    /// The input not read yet.
    pub(super) fn remaining(&self) -> &'a str {
        &self.text[self.pos.min(self.text.len())..]
    }

    fn take_literal(&mut self, len: usize) -> Cow<'a, str> {
        let text = &self.text[self.pos..self.pos + len];
        self.pos += len;
        Cow::Borrowed(text)
    }

    /// Skips one value, however nested (Gson's `skipValue`).
    pub(super) fn skip_value(&mut self) -> Result<(), Stop> {
        let mut depth = 0usize;
        loop {
            match self.peeked()? {
                Peeked::BeginArray => {
                    self.push(Scope::EmptyArray)?;
                    depth += 1;
                }
                Peeked::BeginObject => {
                    self.push(Scope::EmptyObject)?;
                    depth += 1;
                }
                Peeked::EndArray | Peeked::EndObject => {
                    self.stack.pop();
                    depth = depth.saturating_sub(1);
                }
                Peeked::Unquoted(len) | Peeked::UnquotedName(len) => self.pos += len,
                Peeked::SingleQuoted | Peeked::SingleQuotedName => {
                    self.skip_quoted(b'\'')?;
                }
                Peeked::DoubleQuoted | Peeked::DoubleQuotedName => {
                    self.skip_quoted(b'"')?;
                }
                Peeked::True | Peeked::False | Peeked::Null | Peeked::Eof => {}
            }
            self.peeked = None;
            if depth == 0 {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strings::find_quote_or_backslash;

    #[test]
    fn the_scanner_finds_every_quote_and_backslash() {
        for length in 0..40 {
            for (quote, special) in [(b'"', b'"'), (b'"', b'\\'), (b'\'', b'\''), (b'\'', b'\\')] {
                for at in 0..=length {
                    let mut bytes = vec![b'a'; length];
                    bytes.extend_from_slice("é\n".as_bytes());
                    if at < length {
                        bytes[at] = special;
                    }
                    let expected = if at < length { at } else { bytes.len() };
                    assert_eq!(find_quote_or_backslash(&bytes, 0, quote), expected);
                }
            }
        }
        assert_eq!(find_quote_or_backslash(b"\"\"\"\"\"\"\"\"a'", 0, b'\''), 9);
    }
}
