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

/// Appends `text` as a JSON string literal (quoted and escaped).
pub(crate) fn string(buf: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    // Room for the common case (nothing to escape) in one reservation.
    buf.reserve(bytes.len() + 2);
    buf.push(b'"');
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escape = ESCAPE[usize::from(byte)];
        if escape == 0 {
            continue;
        }
        buf.extend_from_slice(&bytes[start..index]);
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
        start = index + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
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
            let mut buf = Vec::new();
            string(&mut buf, text);
            assert_eq!(
                String::from_utf8(buf).unwrap(),
                serde_json::to_string(text).unwrap()
            );
        }
    }
}
