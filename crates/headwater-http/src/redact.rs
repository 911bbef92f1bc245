//! URLs as headwater shows them: a user name and password written into an endpoint URL
//! (`http://user:secret@proxy/`) are credentials, kept out of every log line, error and
//! status, as header values are.

/// `text` with the user information of every URL in it (what comes between `://` and
/// the last `@` before the URL's query, fragment or end) replaced by `<redacted>`. Works on text that is not a valid
/// URL too (an error that quotes what was given), and on messages that quote URLs.
///
/// ```
/// use headwater_http::redact_userinfo;
/// assert_eq!(
///     redact_userinfo("error sending request for url (http://u:s3cret@flume:5140/)"),
///     "error sending request for url (http://<redacted>@flume:5140/)"
/// );
/// assert_eq!(redact_userinfo("http://flume:5140/"), "http://flume:5140/");
/// ```
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let authority_from = start + 3;
        out.push_str(&rest[..authority_from]);
        let after = &rest[authority_from..];
        // What may hold user information runs to the end of the URL inside a message,
        // or to its query or fragment. A `/` does not end it: in text that is not a
        // valid URL a password may hold one, so a path with an `@` in it is redacted
        // up to that `@` too (more hidden, never less).
        let end = after
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '?' | '#' | ')' | '"' | '\'' | '<' | '>' | ',')
            })
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("<redacted>");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::redact_userinfo;

    #[test]
    fn user_information_is_redacted_wherever_a_url_appears() {
        for (given, shown) in [
            (
                "http://user:pw@host:1/path",
                "http://<redacted>@host:1/path",
            ),
            ("https://user@host/", "https://<redacted>@host/"),
            ("http://a:b@c@host", "http://<redacted>@host"),
            ("http://host/a@b", "http://<redacted>@b"),
            ("http://u:p/w@host/", "http://<redacted>@host/"),
            ("http://host/path", "http://host/path"),
            ("http://host?x=a@b", "http://host?x=a@b"),
            (
                "http://u:p@h1/: refused, then http://v:q@h2/",
                "http://<redacted>@h1/: refused, then http://<redacted>@h2/",
            ),
            ("(http://u:p@h:5140)", "(http://<redacted>@h:5140)"),
            ("no url at all @ here", "no url at all @ here"),
            ("http://u:p@[::1]:5140/", "http://<redacted>@[::1]:5140/"),
            ("http://u:p@bad:port:x", "http://<redacted>@bad:port:x"),
            ("://", "://"),
            ("é://ü:p@ß", "é://<redacted>@ß"),
        ] {
            assert_eq!(redact_userinfo(given), shown, "{given}");
        }
    }
}
