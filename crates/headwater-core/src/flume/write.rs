//! Low-level JSON writing into a byte buffer, shared by the encoders.

/// Escape class of every byte: 0 for none, else the character after the backslash
/// (`u` for a `\u00XX` escape).
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each zero byte of `word`. Only the lowest set bit is exact (a borrow
/// can flag a byte above a zero byte), which is the only one read.
const fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGHS
}

/// The high bit of each byte of `word` (read little-endian) that needs escaping: a
/// control character, `"` or `\`; exact for the lowest set bit, as [`zero_bytes`].
/// Bytes of 0x80 and over (UTF-8's) have their high bit set and never match.
const fn escape_bytes(word: u64) -> u64 {
    (word.wrapping_sub(ONES * 0x20) & !word & HIGHS)
        | zero_bytes(word ^ (ONES * b'"' as u64))
        | zero_bytes(word ^ (ONES * b'\\' as u64))
}

/// Appends `text` as a JSON string literal (quoted and escaped).
///
/// Eight bytes are tested at a time: a run with nothing to escape is skipped a word at
/// a time and copied in one piece, and the next byte to escape is found from the
/// word's bits rather than by looking at each byte.
pub(crate) fn string(buf: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    // Room for the common case (nothing to escape) in one reservation.
    buf.reserve(bytes.len() + 2);
    buf.push(b'"');
    let mut start = 0;
    let mut index = 0;
    while let Some(word) = bytes.get(index..index + 8) {
        let word = u64::from_le_bytes([
            word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
        ]);
        let found = escape_bytes(word);
        if found == 0 {
            index += 8;
            continue;
        }
        let at = index + (found.trailing_zeros() / 8) as usize;
        escape_at(buf, bytes, &mut start, at);
        index = at + 1;
    }
    for at in index..bytes.len() {
        escape_at(buf, bytes, &mut start, at);
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

/// Escapes `bytes[at]` if it needs it: what is pending since `start` is copied first.
#[inline]
fn escape_at(buf: &mut Vec<u8>, bytes: &[u8], start: &mut usize, at: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let byte = bytes[at];
    let escape = ESCAPE[usize::from(byte)];
    if escape == 0 {
        return;
    }
    buf.extend_from_slice(&bytes[*start..at]);
    if escape == b'u' {
        buf.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ]);
    } else {
        buf.extend_from_slice(&[b'\\', escape]);
    }
    *start = at + 1;
}

/// Appends an unsigned integer as a JSON string literal (Flume header values are strings).
pub(crate) fn quoted_u64(buf: &mut Vec<u8>, value: u64) {
    let mut digits = itoa::Buffer::new();
    buf.push(b'"');
    buf.extend_from_slice(digits.format(value).as_bytes());
    buf.push(b'"');
}

/// Appends a signed integer as a JSON string literal.
pub(crate) fn quoted_i64(buf: &mut Vec<u8>, value: i64) {
    let mut digits = itoa::Buffer::new();
    buf.push(b'"');
    buf.extend_from_slice(digits.format(value).as_bytes());
    buf.push(b'"');
}

/// Appends `"name":` (the key of an object member).
pub(crate) fn key(buf: &mut Vec<u8>, name: &str) {
    string(buf, name);
    buf.push(b':');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_serde_json() {
        for text in [
            "",
            "plain",
            "quote\" back\\slash",
            "\u{0}\u{1f}\u{7f}\n\r\t\u{8}\u{c}",
            "non-ascii é 日本 🎉",
            "\u{2028}\u{2029}",
        ] {
            assert_escapes_like_serde_json(text);
        }
    }

    /// Every byte that needs escaping, at every offset in an eight-byte word, among
    /// runs that do not and multi-byte characters: the word test misses none.
    #[test]
    fn every_escape_at_every_offset_is_found() {
        let mut specials: Vec<char> = (0u8..0x20).map(char::from).collect();
        specials.extend([
            '"', '\\', '\u{7f}', 'é', '日', '🎉', ' ', '!', '#', '[', ']',
        ]);
        for special in specials {
            for before in 0..17 {
                for after in [0, 1, 7, 8, 9] {
                    let text = format!("{}{special}{}", "a".repeat(before), "b".repeat(after));
                    assert_escapes_like_serde_json(&text);
                }
            }
        }
    }

    /// The lowest byte the word test flags is the first that needs escaping, for every
    /// pair of bytes in every pair of lanes.
    #[test]
    fn the_word_test_finds_the_first_byte_to_escape() {
        for first in 0..=255u8 {
            for second in [0u8, 0x1f, 0x20, b'"', b'\\', b'a', 0x7f, 0x80, 0xa0, 0xff] {
                for lane in 0..8 {
                    for other in lane + 1..8 {
                        let mut word = [b'a'; 8];
                        word[lane] = first;
                        word[other] = second;
                        let expected = word
                            .iter()
                            .position(|byte| ESCAPE[usize::from(*byte)] != 0)
                            .map_or(64, |at| at as u32 * 8 + 7);
                        let found = escape_bytes(u64::from_le_bytes(word));
                        assert_eq!(found.trailing_zeros(), expected, "{word:?}");
                    }
                }
            }
        }
    }

    /// Strings drawn from escapes, ASCII and multi-byte characters escape as serde_json
    /// escapes them.
    #[test]
    fn drawn_strings_escape_like_serde_json() {
        let alphabet = [
            '"', '\\', '\n', '\u{1}', '\u{1f}', ' ', 'a', '~', '\u{7f}', 'é', '日', '🎉',
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let length = (state % 40) as usize;
            let text: String = (0..length)
                .map(|n| alphabet[((state >> (n % 50)) as usize + n) % alphabet.len()])
                .collect();
            assert_escapes_like_serde_json(&text);
        }
    }

    fn assert_escapes_like_serde_json(text: &str) {
        let mut buf = Vec::new();
        string(&mut buf, text);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            serde_json::to_string(text).unwrap(),
            "{text:?}"
        );
    }
}
