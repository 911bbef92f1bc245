//! Quoted strings and escapes of Gson's `JsonReader`: the one hot loop of the decoder
//! (a scan for the closing quote) and the UTF-16 pairing Java strings hold.

use std::borrow::Cow;

use super::{Reader, Stop};

impl<'a> Reader<'a> {
    /// Reads a quoted string whose opening quote is consumed. Raw control characters
    /// are kept, as Gson keeps them.
    pub(super) fn quoted(&mut self, quote: u8, unpaired: char) -> Result<Cow<'a, str>, Stop> {
        let start = self.pos;
        let end = find_quote_or_backslash(self.bytes, start, quote);
        match self.byte(end) {
            Some(byte) if byte == quote => {
                self.pos = end + 1;
                return Ok(Cow::Borrowed(&self.text[start..end]));
            }
            None => {
                self.pos = end;
                return Err(Stop::Syntax("the end of a string"));
            }
            Some(_) => {}
        }
        // The string goes on past its first escape: room for a typical event body
        // (JSON text full of escaped quotes) at once rather than growing several times.
        let mut out = String::with_capacity((self.bytes.len() - start).min(end - start + 512));
        let mut high: Option<u16> = None;
        let mut run = start;
        self.pos = end;
        loop {
            match self.byte(self.pos) {
                None => return Err(Stop::Syntax("the end of a string")),
                Some(byte) if byte == quote => {
                    if run < self.pos {
                        flush_high(&mut out, &mut high, unpaired);
                        out.push_str(&self.text[run..self.pos]);
                    }
                    flush_high(&mut out, &mut high, unpaired);
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(_) => {
                    // A backslash.
                    if run < self.pos {
                        flush_high(&mut out, &mut high, unpaired);
                        out.push_str(&self.text[run..self.pos]);
                    }
                    self.pos += 1;
                    if let Some(b'"' | b'\\' | b'/' | b'\'') = self.byte(self.pos) {
                        // The escaped character stands for itself (the common case in a
                        // body of JSON text): the next run starts with it.
                        flush_high(&mut out, &mut high, unpaired);
                        run = self.pos;
                        self.pos += 1;
                    } else {
                        let unit = self.escape()?;
                        push_unit(&mut out, &mut high, unit, unpaired);
                        run = self.pos;
                    }
                }
            }
            self.pos = find_quote_or_backslash(self.bytes, self.pos, quote);
        }
    }

    pub(super) fn skip_quoted(&mut self, quote: u8) -> Result<(), Stop> {
        loop {
            self.pos = find_quote_or_backslash(self.bytes, self.pos, quote);
            match self.byte(self.pos) {
                None => return Err(Stop::Syntax("the end of a string")),
                Some(byte) if byte == quote => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(_) => {
                    self.pos += 1;
                    self.escape()?;
                }
            }
        }
    }

    /// One escape, the backslash consumed (Gson's `readEscapeCharacter`): a UTF-16
    /// code unit.
    fn escape(&mut self) -> Result<u16, Stop> {
        let Some(byte) = self.byte(self.pos) else {
            return Err(Stop::Syntax("an escape sequence"));
        };
        self.pos += 1;
        Ok(match byte {
            b'u' => {
                let digits: Vec<char> = self.text[self.pos..].chars().take(4).collect();
                if digits.len() < 4 {
                    self.pos = self.bytes.len();
                    return Err(Stop::Syntax("an escape sequence"));
                }
                let mut unit = 0u16;
                for digit in &digits {
                    let Some(value) = digit.to_digit(16) else {
                        let escape: String = digits.iter().collect();
                        return Err(Stop::BadUnicodeEscape(format!("\\u{escape}")));
                    };
                    unit = unit * 16 + value as u16;
                }
                self.pos += 4;
                unit
            }
            b't' => u16::from(b'\t'),
            b'b' => 0x08,
            b'n' => u16::from(b'\n'),
            b'r' => u16::from(b'\r'),
            b'f' => 0x0c,
            b'\n' | b'\'' | b'"' | b'\\' | b'/' => u16::from(byte),
            _ => return Err(Stop::Syntax("a valid escape sequence")),
        })
    }
}

/// Appends a UTF-16 code unit, pairing surrogates as Java's string would hold them.
fn push_unit(out: &mut String, high: &mut Option<u16>, unit: u16, unpaired: char) {
    match unit {
        0xD800..=0xDBFF => {
            flush_high(out, high, unpaired);
            *high = Some(unit);
        }
        0xDC00..=0xDFFF => match high.take() {
            Some(first) => {
                let code =
                    0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(unit) - 0xDC00);
                out.push(char::from_u32(code).unwrap_or(unpaired));
            }
            None => out.push(unpaired),
        },
        _ => {
            flush_high(out, high, unpaired);
            out.push(char::from_u32(u32::from(unit)).unwrap_or(unpaired));
        }
    }
}

/// A high surrogate that no low one followed is unpaired.
fn flush_high(out: &mut String, high: &mut Option<u16>, unpaired: char) {
    if high.take().is_some() {
        out.push(unpaired);
    }
}

/// The index of the first `quote` or backslash at or after `from` (or the length),
/// eight bytes at a time: the bulk of a body is plain text.
pub(super) fn find_quote_or_backslash(bytes: &[u8], mut index: usize, quote: u8) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    while let Some(chunk) = bytes.get(index..index + 8) {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_le_bytes(chunk);
        let found =
            has_zero(word ^ (ONES * u64::from(quote))) | has_zero(word ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            // The lowest flagged byte is always a true match.
            return index + (found.trailing_zeros() / 8) as usize;
        }
        index += 8;
    }
    while bytes
        .get(index)
        .is_some_and(|&byte| byte != quote && byte != b'\\')
    {
        index += 1;
    }
    index
}
