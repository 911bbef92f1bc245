//! Flume 1.11's answer texts and Jetty 9.4's error page around them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// 400: the handler could not parse the body.
pub const BAD_REQUEST: &str = "Bad request from client. Request has invalid JSON Syntax.";
/// Prefix of a 500 from the handler.
pub const DESERIALIZER_FAILED: &str = "Deserializer threw unexpected exception. ";
/// The NPE message (Java 17) for an empty body or a `null` document.
pub const NULL_LIST: &str =
    "Cannot invoke \"java.util.List.iterator()\" because \"eventList\" is null";
/// The NPE message (Java 17) for a `null` event.
pub const NULL_EVENT: &str =
    "Cannot invoke \"org.apache.flume.event.JSONEvent.setCharset(String)\" because \"e\" is null";
/// Gson's map (a `LinkedTreeMap`) refusing a null key: a header pair `[null, value]`.
pub const NULL_KEY: &str = "key == null";
/// Prefix of a 503: the channel refused the batch.
pub const CHANNEL_FULL: &str = "Error appending event to channel. Channel might be full.";

/// The memory channel's message for a batch over its transactionCapacity.
pub fn put_queue_full(transaction_capacity: usize) -> String {
    format!(
        "Put queue for MemoryTransaction of capacity {transaction_capacity} full, consider committing more frequently, increasing capacity or increasing thread count"
    )
}

/// The memory channel's message when no room frees up within keep-alive.
pub const NO_SPACE: &str = "Space for commit to queue couldn't be acquired. Sinks are likely not keeping up with sources, or the buffer size is too tight";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An error answer as Jetty's `sendError` renders it.
pub fn error_page(status: StatusCode, message: &str, path: &str) -> Response {
    let message = escape(message);
    let path = escape(path);
    let code = status.as_u16();
    let body = format!(
        "<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;charset=utf-8\"/>\n<title>Error {code} {message}</title>\n</head>\n<body><h2>HTTP ERROR {code} {message}</h2>\n<table>\n<tr><th>URI:</th><td>{path}</td></tr>\n<tr><th>STATUS:</th><td>{code}</td></tr>\n<tr><th>MESSAGE:</th><td>{message}</td></tr>\n<tr><th>SERVLET:</th><td>org.apache.flume.source.http.HTTPSource$FlumeHTTPServlet-1</td></tr>\n</table>\n<hr><a href=\"https://eclipse.org/jetty\">Powered by Jetty:// 9.4.41.v20210516</a><hr/>\n\n</body>\n</html>\n"
    );
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html;charset=iso-8859-1"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("must-revalidate,no-cache,no-store"),
    );
    response
}

/// An answer with a status and no body, as Jetty gives for methods it refuses.
pub fn bare(status: StatusCode) -> Response {
    status.into_response()
}
