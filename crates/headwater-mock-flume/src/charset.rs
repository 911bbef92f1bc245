//! How Flume's HTTP source turns request bytes into text: Jetty's `getReader()` with
//! the request's charset, then `JSONHandler`'s charset rule.

/// A request body as text, and what Flume stores for a lone surrogate in an event's
/// body: Java's encoder for the charset the body is stored in writes `?` in UTF-8 and
/// U+FFFD in UTF-16 and UTF-32.
pub(crate) struct RequestText {
    pub(crate) text: String,
    pub(crate) unpaired: char,
}

/// The text of a request body, or the 500 message Flume gives for its charset.
pub(crate) fn request_text(content_type: Option<&str>, body: &[u8]) -> Result<RequestText, String> {
    let (mime, charset) = parse_content_type(content_type.unwrap_or(""));
    let stored_as_utf8 = charset
        .as_deref()
        .is_none_or(|charset| matches!(charset.to_ascii_lowercase().as_str(), "utf-8" | "utf8"));
    let unpaired = if stored_as_utf8 {
        '?'
    } else {
        char::REPLACEMENT_CHARACTER
    };
    read_text(&mime, charset.as_deref(), body).map(|text| RequestText { text, unpaired })
}

fn read_text(mime: &str, charset: Option<&str>, body: &[u8]) -> Result<String, String> {
    let Some(charset) = charset else {
        // No charset: the handler assumes UTF-8, but Jetty's reader decodes as
        // ISO-8859-1 unless the type is one Jetty assumes UTF-8 for.
        return Ok(if mime == "application/json" || mime == "text/json" {
            utf8(body)
        } else {
            body.iter().map(|&byte| char::from(byte)).collect()
        });
    };
    // Jetty normalizes "utf8" and "utf16" before the handler sees them.
    match charset.to_ascii_lowercase().as_str() {
        "utf-8" | "utf8" => Ok(utf8(body)),
        "utf-16" | "utf16" => Ok(decode_utf16(body)),
        "utf-32" => Ok(decode_utf32(body)),
        // Charsets Java knows: Jetty reads them, then JSONHandler refuses them.
        "iso-8859-1" | "latin1" | "us-ascii" | "ascii" | "utf-16be" | "utf-16le" | "utf-32be"
        | "utf-32le" | "windows-1252" | "cp1252" => {
            Err("JSON handler supports UTF-8, UTF-16 and UTF-32 only.".to_owned())
        }
        // Charsets Java does not know: Jetty's reader throws UnsupportedEncodingException.
        _ => Err(charset.to_owned()),
    }
}

/// UTF-8 text; malformed sequences become U+FFFD, as Java's decoder does. Valid input
/// (the usual case) takes the fast validation path.
fn utf8(body: &[u8]) -> String {
    match std::str::from_utf8(body) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

/// The media type (lowercase) and the charset parameter, if any.
fn parse_content_type(value: &str) -> (String, Option<String>) {
    let mut parts = value.split(';');
    let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let charset = parts.find_map(|part| {
        let (name, value) = part.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"').to_owned())
    });
    (mime, charset)
}

fn decode_utf16(body: &[u8]) -> String {
    let (big_endian, data) = match body {
        [0xFF, 0xFE, rest @ ..] => (false, rest),
        [0xFE, 0xFF, rest @ ..] => (true, rest),
        _ => (true, body),
    };
    let units = data.chunks(2).map(|pair| match pair {
        [a, b] if big_endian => u16::from_be_bytes([*a, *b]),
        [a, b] => u16::from_le_bytes([*a, *b]),
        _ => 0xFFFD,
    });
    char::decode_utf16(units)
        .map(|unit| unit.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

fn decode_utf32(body: &[u8]) -> String {
    let (big_endian, data) = match body {
        [0xFF, 0xFE, 0, 0, rest @ ..] => (false, rest),
        [0, 0, 0xFE, 0xFF, rest @ ..] => (true, rest),
        _ => (true, body),
    };
    data.chunks(4)
        .map(|quad| match quad {
            [a, b, c, d] => {
                let code = if big_endian {
                    u32::from_be_bytes([*a, *b, *c, *d])
                } else {
                    u32::from_le_bytes([*a, *b, *c, *d])
                };
                char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)
            }
            _ => char::REPLACEMENT_CHARACTER,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_or_without_charset_for_json() {
        let body = "é".as_bytes();
        assert_eq!(
            request_text(Some("application/json; charset=UTF-8"), body)
                .unwrap()
                .text,
            "é"
        );
        assert_eq!(
            request_text(Some("application/json"), body).unwrap().text,
            "é"
        );
        assert_eq!(request_text(Some("text/json"), body).unwrap().text, "é");
    }

    #[test]
    fn no_charset_on_other_types_is_latin1() {
        let body = "é".as_bytes();
        assert_eq!(request_text(Some("text/plain"), body).unwrap().text, "Ã©");
        assert_eq!(request_text(None, body).unwrap().text, "Ã©");
    }

    #[test]
    fn a_lone_surrogate_is_stored_as_the_charsets_replacement() {
        let unpaired = |content_type| request_text(Some(content_type), b"[]").unwrap().unpaired;
        assert_eq!(unpaired("application/json; charset=UTF-8"), '?');
        assert_eq!(unpaired("application/json"), '?');
        assert_eq!(unpaired("application/json; charset=UTF-16"), '\u{fffd}');
    }

    #[test]
    fn utf16_and_utf32() {
        let utf16: Vec<u8> = "hé".encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(
            request_text(Some("application/json;charset=utf-16"), &utf16)
                .unwrap()
                .text,
            "hé"
        );
        let utf32: Vec<u8> = "h🎉"
            .chars()
            .flat_map(|c| (c as u32).to_be_bytes())
            .collect();
        assert_eq!(
            request_text(Some("application/json; charset=\"UTF-32\""), &utf32)
                .unwrap()
                .text,
            "h🎉"
        );
    }

    #[test]
    fn other_charsets_are_refused() {
        assert_eq!(
            request_text(Some("application/json; charset=utf8"), "é".as_bytes())
                .unwrap()
                .text,
            "é"
        );
        assert_eq!(
            request_text(Some("application/json; charset=latin1"), b"[]")
                .err()
                .unwrap(),
            "JSON handler supports UTF-8, UTF-16 and UTF-32 only."
        );
        assert_eq!(
            request_text(Some("application/json; charset=foo"), b"[]")
                .err()
                .unwrap(),
            "foo"
        );
    }
}
