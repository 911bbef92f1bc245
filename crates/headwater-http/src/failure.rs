//! What a failed request says: Flume's error pages reduced to their message, answers
//! that refuse an endpoint, and connection failures put in words.

/// Reads at most about `limit` bytes of an answer (a body cut short still tells what it
/// told so far).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    bytes
}

/// fetch offers no chunked reads through reqwest: the whole (small) error page is read.
#[cfg(target_arch = "wasm32")]
pub(crate) async fn read_bounded(response: reqwest::Response, _limit: usize) -> Vec<u8> {
    response
        .bytes()
        .await
        .map(|bytes| bytes.to_vec())
        .unwrap_or_default()
}

/// Flume's errors come in a Jetty HTML page; keep the message, not the markup.
pub(crate) fn text_of_error_page(body: &str) -> String {
    let Some(start) = body.find("<h2>") else {
        return body.trim().to_owned();
    };
    let rest = &body[start + 4..];
    let end = rest.find("</h2>").unwrap_or(rest.len());
    let heading = rest[..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    // "HTTP ERROR 503 Error appending ..." → "Error appending ..."
    let heading = heading.trim();
    match heading.strip_prefix("HTTP ERROR ") {
        Some(after) => after
            .split_once(' ')
            .map_or(after, |(_code, message)| message)
            .to_owned(),
        None => heading.to_owned(),
    }
}

/// Answers that say this endpoint, as configured, refuses requests: another endpoint may
/// take the same request, since nothing was committed.
pub(crate) fn refuses(status: u16) -> bool {
    matches!(status, 401 | 403 | 404 | 405 | 501)
}

/// Whether the request surely never reached Flume (the connection never opened), so
/// another endpoint can take it at once without risking a duplicate.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn never_reached_flume(error: &reqwest::Error) -> bool {
    error.is_connect()
}

/// fetch does not say how it failed; the next request goes to the next endpoint.
#[cfg(target_arch = "wasm32")]
pub(crate) fn never_reached_flume(_error: &reqwest::Error) -> bool {
    false
}

/// What a failed connection means, in words, ahead of reqwest's chain of causes: a
/// host that does not resolve and a port where nothing listens are the two an operator
/// meets first (a typo, an agent not started). Empty for other failures.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn connect_hint(error: &reqwest::Error, url: &reqwest::Url) -> String {
    if !error.is_connect() {
        return String::new();
    }
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or_default();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return format!("nothing listens at {host}:{port} (connection refused); ");
        }
        if cause.to_string().starts_with("dns error") {
            return format!("the host {host} cannot be resolved; ");
        }
        source = cause.source();
    }
    String::new()
}

/// In a browser, fetch does not say why a connection failed.
#[cfg(target_arch = "wasm32")]
pub(crate) fn connect_hint(_error: &reqwest::Error, _url: &reqwest::Url) -> String {
    String::new()
}

/// The error and its causes, one line each (in the browser a cause is a JavaScript
/// error whose text carries its whole stack: the first line says it).
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let first_line = |text: String| text.lines().next().unwrap_or_default().to_owned();
    let mut message = first_line(error.to_string());
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&first_line(cause.to_string()));
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_pages_are_reduced_to_their_message() {
        let page = "<html>\n<head>\n<title>Error 503 x</title>\n</head>\n<body><h2>HTTP ERROR 503 Error appending event to channel. Channel might be full.Put queue for MemoryTransaction of capacity 100 full</h2>\n</body></html>";
        assert_eq!(
            text_of_error_page(page),
            "Error appending event to channel. Channel might be full.Put queue for MemoryTransaction of capacity 100 full"
        );
        assert_eq!(
            text_of_error_page("<h2>HTTP ERROR 400 a &lt;b&gt; &amp; &quot;c&quot;</h2>"),
            "a <b> & \"c\""
        );
        assert_eq!(text_of_error_page("  plain text \n"), "plain text");
    }
}
