//! The headers every request carries: the configuration's own, checked, and the content
//! type Flume needs.

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::config::HttpConfigError;

/// The content type Flume needs to read non-ASCII text right.
const JSON_UTF8: &str = "application/json; charset=UTF-8";

/// Headers the HTTP layer writes for each request (framing, connection, routing): a
/// fixed value from the configuration would break every request, which would then be
/// retried without end.
const HTTP_OWNED: [HeaderName; 8] = [
    reqwest::header::CONTENT_LENGTH,
    reqwest::header::TRANSFER_ENCODING,
    reqwest::header::HOST,
    reqwest::header::CONNECTION,
    reqwest::header::UPGRADE,
    reqwest::header::TE,
    reqwest::header::TRAILER,
    reqwest::header::EXPECT,
];

/// The configured headers as sent with every request (values kept out of debug output),
/// and the JSON content type; a header the transport or the HTTP layer sets itself is
/// refused by name.
pub(crate) fn fixed_headers(configured: &[(String, String)]) -> Result<HeaderMap, HttpConfigError> {
    let mut headers = HeaderMap::new();
    for (name, value) in configured {
        let invalid = |reason: String| HttpConfigError::InvalidHeader {
            name: name.clone(),
            reason,
        };
        let header_name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        if header_name == CONTENT_TYPE {
            return Err(invalid(
                "the transport sets the content type Flume needs".into(),
            ));
        }
        if HTTP_OWNED.contains(&header_name) {
            return Err(invalid(format!(
                "the HTTP layer sets {header_name} for each request; a fixed value would make every request malformed"
            )));
        }
        let mut header_value = HeaderValue::from_str(value).map_err(|e| invalid(e.to_string()))?;
        // Kept out of reqwest's Debug output and of HTTP/2 header compression.
        header_value.set_sensitive(true);
        headers.append(header_name, header_value);
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    Ok(headers)
}
