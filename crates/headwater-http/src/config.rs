use std::fmt;
use std::time::Duration;

use headwater_core::policy::Endpoints;
pub use headwater_core::policy::Selection;

use crate::tls::TlsConfig;

/// Configuration of an [`HttpTransport`](crate::HttpTransport). Its `Debug` output shows
/// header names, never their values, and endpoints without the user information of
/// their URLs.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Flume HTTP source URLs (`http://host:port/`; any path works with Flume).
    pub endpoints: Vec<String>,
    /// Failover or round-robin.
    pub selection: Selection,
    /// The endpoint failover prefers, and round-robin starts at (by index, modulo their
    /// number). `None` is the first, for a transport built alone; the `headwater`
    /// facade sets it from its seed, so that a fleet of clients listing the same agents
    /// spreads over them instead of all sending to the first (docs/fleet.md).
    pub primary: Option<usize>,
    /// The whole request, from connecting to the last byte of the answer. Keep it below
    /// the syncer's lease.
    pub timeout: Duration,
    /// Extra request headers, such as `authorization` for a proxy in front of Flume.
    /// Their values are sent marked sensitive and never appear in logs, `Debug` output
    /// or errors.
    pub headers: Vec<(String, String)>,
    /// HTTPS: extra CAs to trust, a client certificate, ... (native only).
    pub tls: TlsConfig,
    /// How much of an error answer's text is kept (Flume's exception message is there).
    pub max_message_bytes: usize,
    /// How long an unreachable endpoint rests at first; each further failure doubles
    /// it, up to `endpoint_rest_cap`.
    pub endpoint_rest: Duration,
    /// The longest rest.
    pub endpoint_rest_cap: Duration,
    /// In a browser: after this many failed requests in a row while the browser is
    /// online, report the endpoint as refusing (most often missing CORS headers), which
    /// blocks the outbox with the reason instead of retrying fast.
    pub browser_refused_after: u32,
    /// Compress OTLP bodies with gzip (`Content-Encoding: gzip`), as every OTLP receiver
    /// reads them. Flume bodies are never compressed: Flume's HTTP source cannot read
    /// them.
    pub gzip: bool,
}

impl HttpConfig {
    /// Defaults for these endpoints: failover, 10 s timeout, no extra headers.
    pub fn new<I, S>(endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            selection: Selection::Failover,
            primary: None,
            timeout: Duration::from_secs(10),
            headers: Vec::new(),
            tls: TlsConfig::default(),
            max_message_bytes: 4096,
            endpoint_rest: Endpoints::DEFAULT_REST,
            endpoint_rest_cap: Endpoints::DEFAULT_REST_CAP,
            browser_refused_after: 3,
            gzip: true,
        }
    }
}

impl HttpConfig {
    /// The endpoints as headwater prints them: a user name and password written into a
    /// URL replaced by `<redacted>` (see [`redact_userinfo`](crate::redact_userinfo)).
    pub fn shown_endpoints(&self) -> Vec<String> {
        self.endpoints
            .iter()
            .map(|url| crate::redact_userinfo(url))
            .collect()
    }
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<String> = self
            .headers
            .iter()
            .map(|(name, _)| format!("{name}: <redacted>"))
            .collect();
        f.debug_struct("HttpConfig")
            .field("endpoints", &self.shown_endpoints())
            .field("selection", &self.selection)
            .field("primary", &self.primary)
            .field("timeout", &self.timeout)
            .field("headers", &header_names)
            .field("tls", &self.tls)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("endpoint_rest", &self.endpoint_rest)
            .field("endpoint_rest_cap", &self.endpoint_rest_cap)
            .field("browser_refused_after", &self.browser_refused_after)
            .field("gzip", &self.gzip)
            .finish()
    }
}

/// A transport configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpConfigError {
    /// No endpoint was given.
    #[error("at least one Flume endpoint URL is needed")]
    NoEndpoints,
    /// An endpoint is not a valid http(s) URL.
    #[error("endpoint {url:?} is not a valid http or https URL: {reason}")]
    InvalidUrl {
        /// The URL as given, with any user information redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An extra header has an invalid name or value, or one the transport sets itself.
    #[error("header {name:?} cannot be sent: {reason}")]
    InvalidHeader {
        /// The header name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `TlsConfig::ca_certs_pem` holds no certificate that can be read.
    #[error("the CA certificates cannot be read: {reason}")]
    InvalidCaCert {
        /// What is wrong with them.
        reason: String,
    },
    /// The client certificate or its key cannot be read (the key itself is never shown).
    #[error("the client certificate or key cannot be read: {reason}")]
    InvalidClientIdentity {
        /// What is wrong with them.
        reason: String,
    },
    /// TLS settings in a browser, where the page's own TLS applies.
    #[error(
        "TLS settings do not apply in the browser: fetch uses the page's TLS and the browser's trust store"
    )]
    TlsInBrowser,
    /// HTTPS (an `https` endpoint or TLS settings) natively without the `rustls`
    /// feature, which brings the TLS backend.
    #[error(
        "HTTPS needs the `rustls` feature of headwater-http (or the `native` or `rustls` feature of headwater)"
    )]
    NoTlsBackend,
    /// The timeout is zero.
    #[error("the request timeout must be longer than zero")]
    ZeroTimeout,
    /// reqwest could not build a client (TLS backend setup).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}
