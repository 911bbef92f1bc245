#[cfg(target_arch = "wasm32")]
use std::sync::atomic::{AtomicU32, Ordering};

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use headwater_core::flume::EncodedBatch;
use headwater_core::policy::{Endpoints, RetryAfter};
use headwater_core::transport::{Response, SendOutcome, Transport};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};

use crate::config::{HttpConfig, HttpConfigError};
use crate::credentials::Provider;

/// The content type Flume needs to read non-ASCII text right.
const JSON_UTF8: &str = "application/json; charset=UTF-8";

/// Where the transport reads wall time.
struct WallClock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl WallClock {
    fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl std::fmt::Debug for WallClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WallClock")
    }
}

/// A [`Transport`] that POSTs batches to Flume HTTP sources. See the crate docs.
#[derive(Debug)]
pub struct HttpTransport {
    client: reqwest::Client,
    urls: Vec<reqwest::Url>,
    headers: HeaderMap,
    timeout: std::time::Duration,
    max_message_bytes: usize,
    endpoints: Mutex<Endpoints>,
    provider: Option<Provider>,
    /// Wall time for endpoint rests: the application's clock, never read here.
    clock: WallClock,
    #[cfg(target_arch = "wasm32")]
    refused_after: u32,
    #[cfg(target_arch = "wasm32")]
    failures_while_online: AtomicU32,
}

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

impl HttpTransport {
    /// A transport for `config`, if it is valid.
    pub fn new(config: HttpConfig) -> Result<Self, HttpConfigError> {
        if config.endpoints.is_empty() {
            return Err(HttpConfigError::NoEndpoints);
        }
        if config.timeout.is_zero() {
            return Err(HttpConfigError::ZeroTimeout);
        }
        let urls = config
            .endpoints
            .iter()
            .map(|url| {
                let parsed = parse_endpoint(url).map_err(|reason| HttpConfigError::InvalidUrl {
                    url: crate::redact_userinfo(url),
                    reason: crate::redact_userinfo(&reason),
                })?;
                if parsed.port() == Some(0) {
                    return Err(HttpConfigError::InvalidUrl {
                        url: crate::redact_userinfo(url),
                        reason: "port 0 cannot be connected to; give the port Flume's HTTP source listens on".into(),
                    });
                }
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(HttpConfigError::InvalidUrl {
                        url: crate::redact_userinfo(url),
                        reason: format!("the scheme is {:?}", parsed.scheme()),
                    });
                }
                Ok(parsed)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
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
            let mut header_value =
                HeaderValue::from_str(value).map_err(|e| invalid(e.to_string()))?;
            // Kept out of reqwest's Debug output and of HTTP/2 header compression.
            header_value.set_sensitive(true);
            headers.append(header_name, header_value);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
        Ok(Self {
            client: build_client(&config.tls)?,
            endpoints: Mutex::new(
                Endpoints::new(
                    urls.len(),
                    config.selection,
                    config.endpoint_rest,
                    config.endpoint_rest_cap,
                )
                .with_primary(config.primary.unwrap_or(0)),
            ),
            urls,
            headers,
            provider: None,
            clock: WallClock(Arc::new(Utc::now)),
            timeout: config.timeout,
            max_message_bytes: config.max_message_bytes,
            #[cfg(target_arch = "wasm32")]
            refused_after: config.browser_refused_after.max(1),
            #[cfg(target_arch = "wasm32")]
            failures_while_online: AtomicU32::new(0),
        })
    }

    /// In a browser, a request that fails while the browser says it is online may meet
    /// a Flume that is down, or one that answers but sends no CORS headers for this
    /// page's origin: fetch says only "Failed to fetch" either way. A `no-cors` probe
    /// tells them apart. A server that does not answer is down, and the failure is an
    /// ordinary one (backoff). A server that answers the probe withholds CORS headers:
    /// after `refused_after` such failures in a row the outcome is
    /// [`SendOutcome::Refused`], which blocks the outbox with this reason and probes
    /// slowly, keeping every change, since retrying fast cannot help. A cross-origin
    /// isolated page cannot run the probe (see [`crate::browser`]); there repeated
    /// failures block with a reason that names both causes.
    #[cfg(target_arch = "wasm32")]
    async fn refused_in_browser(&self, url: &reqwest::Url) -> Option<String> {
        if !crate::browser::online() {
            return None;
        }
        // CORS does not apply on the page's own origin: a failure there is the
        // network's or the server's, whatever a probe answers (the page's own server
        // answers it).
        if crate::browser::location()
            .and_then(|page| reqwest::Url::parse(&page).ok())
            .is_some_and(|page| page.origin() == url.origin())
        {
            return None;
        }
        let isolated = crate::browser::cross_origin_isolated();
        let shown = crate::redact_userinfo(url.as_str());
        if !isolated && !crate::browser::answers_at_all(url.as_str(), self.timeout).await {
            self.failures_while_online.store(0, Ordering::Relaxed);
            return None;
        }
        let failures = self.failures_while_online.fetch_add(1, Ordering::Relaxed) + 1;
        (failures >= self.refused_after).then(|| {
            if isolated {
                // The probe cannot see past the page's isolation: say both causes.
                format!(
                    "the browser cannot reach {shown} although it is online ({failures} attempts): it sends no CORS headers for this origin (Flume itself never does), or it is down; serve it behind a same-origin path or a proxy that adds CORS headers, or check that it is up"
                )
            } else {
                format!(
                    "{shown} answers, but not to this page ({failures} attempts): it sends no CORS headers for this origin (Flume itself never does, and answers preflights with 403), so serve it behind a same-origin path or a proxy that adds CORS headers"
                )
            }
        })
    }

    /// Natively there is no CORS: a failed connection is only that.
    #[cfg(not(target_arch = "wasm32"))]
    async fn refused_in_browser(&self, _url: &reqwest::Url) -> Option<String> {
        None
    }

    /// Asks `provider` for headers before each request, and to refresh them once when
    /// an answer is 401 or 403 (see [`HeaderProvider`](crate::HeaderProvider)).
    #[must_use]
    pub fn with_header_provider(mut self, provider: Arc<dyn crate::HeaderProvider>) -> Self {
        self.provider = Some(Provider(provider));
        self
    }

    /// Reads wall time (for how long a failed endpoint rests) from `clock` instead of
    /// the system clock, so that the transport and the delivery machine agree on the
    /// time (a test's clock, an application's own). The facade passes its clock.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = WallClock(Arc::new(clock));
        self
    }

    /// One POST of `batch` to `url`, with the provider's headers when there is one.
    async fn post(
        &self,
        url: &reqwest::Url,
        batch: &EncodedBatch<'_>,
        provided: Option<&HeaderMap>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut headers = self.headers.clone();
        if let Some(provided) = provided {
            headers.extend(provided.clone());
        }
        self.client
            .post(url.clone())
            .headers(headers)
            .timeout(self.timeout)
            .body(batch.body.to_vec())
            .send()
            .await
    }

    /// [`post`](Self::post), and on 401 or 403 with a provider, one refresh and one
    /// more try.
    async fn post_refreshing(
        &self,
        url: &reqwest::Url,
        batch: &EncodedBatch<'_>,
        provided: &mut Option<HeaderMap>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let response = self.post(url, batch, provided.as_ref()).await?;
        let status = response.status().as_u16();
        let Some(provider) = self
            .provider
            .as_ref()
            .filter(|_| matches!(status, 401 | 403))
        else {
            return Ok(response);
        };
        let refreshed = match provider.0.refresh().await {
            Ok(()) => provider.headers().await,
            Err(error) => Err(error),
        };
        match refreshed {
            Ok(headers) => {
                tracing::info!(url = %crate::redact_userinfo(url.as_str()), status, "credentials refreshed; sending again");
                *provided = Some(headers);
                self.post(url, batch, provided.as_ref()).await
            }
            Err(error) => {
                tracing::warn!(url = %crate::redact_userinfo(url.as_str()), status, %error, "refreshing credentials failed");
                Ok(response)
            }
        }
    }

    /// The endpoint URLs, user information and all: show them through
    /// [`redact_userinfo`](crate::redact_userinfo).
    pub fn endpoints(&self) -> &[reqwest::Url] {
        &self.urls
    }

    /// The endpoints' order and health (every change to them completes before it could
    /// panic, so a poisoned lock still guards consistent data).
    fn health(&self) -> MutexGuard<'_, Endpoints> {
        self.endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn read_message(&self, response: reqwest::Response) -> String {
        let mut bytes = read_bounded(response, self.max_message_bytes).await;
        bytes.truncate(self.max_message_bytes);
        text_of_error_page(&String::from_utf8_lossy(&bytes))
    }
}

/// An endpoint URL, absolute, or in a browser relative to the page (`/flume/`), as
/// fetch would resolve it.
fn parse_endpoint(url: &str) -> Result<reqwest::Url, String> {
    match reqwest::Url::parse(url) {
        Ok(parsed) => Ok(parsed),
        Err(url::ParseError::RelativeUrlWithoutBase) => resolve_relative(url),
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(target_arch = "wasm32")]
fn resolve_relative(url: &str) -> Result<reqwest::Url, String> {
    let page = crate::browser::location()
        .ok_or_else(|| "a relative URL needs a page or worker to resolve against".to_owned())?;
    reqwest::Url::parse(&page)
        .and_then(|base| base.join(url))
        .map_err(|error| format!("cannot resolve it against the page at {page}: {error}"))
}

#[cfg(not(target_arch = "wasm32"))]
fn resolve_relative(_url: &str) -> Result<reqwest::Url, String> {
    Err(
        "a relative URL works only in a browser, where it is resolved against the page; \
         natively give the whole URL, such as http://flume.example:5140/"
            .to_owned(),
    )
}

/// Reads at most about `limit` bytes of an answer (a body cut short still tells what it
/// told so far).
#[cfg(not(target_arch = "wasm32"))]
async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
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
async fn read_bounded(response: reqwest::Response, _limit: usize) -> Vec<u8> {
    response
        .bytes()
        .await
        .map(|bytes| bytes.to_vec())
        .unwrap_or_default()
}

#[cfg(not(target_arch = "wasm32"))]
fn build_client(tls: &crate::TlsConfig) -> Result<reqwest::Client, HttpConfigError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never());
    if !tls.ca_certs_pem.is_empty() || tls.ca_certs_only {
        let certs = reqwest::Certificate::from_pem_bundle(&tls.ca_certs_pem).map_err(|error| {
            HttpConfigError::InvalidCaCert {
                reason: describe(&error),
            }
        })?;
        if certs.is_empty() {
            return Err(HttpConfigError::InvalidCaCert {
                reason: "no PEM CERTIFICATE block in them".into(),
            });
        }
        builder = if tls.ca_certs_only {
            builder.tls_certs_only(certs)
        } else {
            builder.tls_certs_merge(certs)
        };
    }
    if let Some(identity) = &tls.client_identity {
        let mut pem = identity.cert_chain_pem.clone();
        pem.push(b'\n');
        pem.extend_from_slice(&identity.key_pem);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|_| {
            // reqwest's message may quote the input; the key stays out of it.
            HttpConfigError::InvalidClientIdentity {
                reason: "expected a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1)".into(),
            }
        })?;
        builder = builder.identity(identity);
    }
    if tls.danger_accept_invalid_certs {
        tracing::warn!(
            "TLS certificate verification is OFF (danger_accept_invalid_certs): anyone on the network path can read and change what is sent; use it for development only"
        );
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder.build().map_err(HttpConfigError::Client)
}

#[cfg(target_arch = "wasm32")]
fn build_client(tls: &crate::TlsConfig) -> Result<reqwest::Client, HttpConfigError> {
    if !tls.is_default() {
        return Err(HttpConfigError::TlsInBrowser);
    }
    // fetch follows no retries of its own; redirects are the browser's business.
    reqwest::Client::builder()
        .build()
        .map_err(HttpConfigError::Client)
}

/// Flume's errors come in a Jetty HTML page; keep the message, not the markup.
fn text_of_error_page(body: &str) -> String {
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
fn refuses(status: u16) -> bool {
    matches!(status, 401 | 403 | 404 | 405 | 501)
}

/// Whether the request surely never reached Flume (the connection never opened), so
/// another endpoint can take it at once without risking a duplicate.
#[cfg(not(target_arch = "wasm32"))]
fn never_reached_flume(error: &reqwest::Error) -> bool {
    error.is_connect()
}

/// fetch does not say how it failed; the next request goes to the next endpoint.
#[cfg(target_arch = "wasm32")]
fn never_reached_flume(_error: &reqwest::Error) -> bool {
    false
}

/// What a failed connection means, in words, ahead of reqwest's chain of causes: a
/// host that does not resolve and a port where nothing listens are the two an operator
/// meets first (a typo, an agent not started). Empty for other failures.
#[cfg(not(target_arch = "wasm32"))]
fn connect_hint(error: &reqwest::Error, url: &reqwest::Url) -> String {
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
fn connect_hint(_error: &reqwest::Error, _url: &reqwest::Url) -> String {
    String::new()
}

/// The error and its causes, one line each (in the browser a cause is a JavaScript
/// error whose text carries its whole stack: the first line says it).
fn describe(error: &reqwest::Error) -> String {
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

#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
impl Transport for HttpTransport {
    async fn send(&self, batch: EncodedBatch<'_>) -> SendOutcome {
        let mut last = SendOutcome::ConnectionFailed {
            message: "no endpoint".into(),
        };
        let mut provided = match &self.provider {
            Some(provider) => match provider.headers().await {
                Ok(headers) => Some(headers),
                // Not the server's answer: retried with backoff like a failed connection.
                Err(error) => {
                    return SendOutcome::ConnectionFailed {
                        message: format!("the header provider failed: {error}"),
                    };
                }
            },
            None => None,
        };
        let order = self.health().order_for(self.clock.now(), batch.route);
        let final_index = order.last().copied();
        let last_endpoint = |index: usize| Some(index) == final_index;
        for index in order {
            let url = &self.urls[index];
            let sent = self.post_refreshing(url, &batch, &mut provided).await;
            match sent {
                Ok(response) if refuses(response.status().as_u16()) && !last_endpoint(index) => {
                    // This endpoint refuses (wrong path, credentials, no POST), and Flume
                    // committed nothing: let the others take the request.
                    self.health().refused(index, self.clock.now());
                    let status = response.status().as_u16();
                    let message = self.read_message(response).await;
                    tracing::warn!(url = %crate::redact_userinfo(url.as_str()), status, %message, "endpoint refuses requests; trying the next");
                    last = SendOutcome::Response(Response {
                        status,
                        retry_after: None,
                        message,
                    });
                }
                Ok(response) => {
                    self.health().succeeded(index);
                    #[cfg(target_arch = "wasm32")]
                    self.failures_while_online.store(0, Ordering::Relaxed);
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|value| value.to_str().ok())
                        .and_then(RetryAfter::parse);
                    let message = if response.status().is_success() {
                        String::new()
                    } else {
                        self.read_message(response).await
                    };
                    return SendOutcome::Response(Response {
                        status,
                        retry_after,
                        message,
                    });
                }
                Err(error) => {
                    self.health().failed(index, self.clock.now());
                    // reqwest's errors quote the URL, user information and all.
                    let message = crate::redact_userinfo(&format!(
                        "{url}: {}{}",
                        connect_hint(&error, url),
                        describe(&error)
                    ));
                    tracing::debug!(%message, "request failed");
                    if error.is_timeout() {
                        return SendOutcome::TimedOut { message };
                    }
                    if let Some(cause) = crate::tls::diagnose(&message) {
                        // A configuration problem, not a passing failure: no retry in a
                        // tight loop. Another endpoint may be set up right.
                        let message = format!("TLS: {cause} ({message})");
                        if !last_endpoint(index) {
                            tracing::warn!(url = %crate::redact_userinfo(url.as_str()), %message, "TLS failed; trying the next endpoint");
                            last = SendOutcome::Refused { message };
                            continue;
                        }
                        return SendOutcome::Refused { message };
                    }
                    if let Some(message) = self.refused_in_browser(url).await {
                        return SendOutcome::Refused { message };
                    }
                    last = SendOutcome::ConnectionFailed { message };
                    // Nothing reached Flume if the connection never opened: try the
                    // next endpoint at once. Otherwise the batch may have been
                    // committed; let the engine's backoff decide.
                    if !never_reached_flume(&error) {
                        return last;
                    }
                }
            }
        }
        last
    }
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

    #[test]
    fn misconfigurations_are_named() {
        assert!(matches!(
            HttpTransport::new(HttpConfig::new(Vec::<String>::new())),
            Err(HttpConfigError::NoEndpoints)
        ));
        assert!(matches!(
            HttpTransport::new(HttpConfig::new(["flume:5140"])),
            Err(HttpConfigError::InvalidUrl { .. })
        ));
        assert!(matches!(
            HttpTransport::new(HttpConfig::new(["ftp://flume/"])),
            Err(HttpConfigError::InvalidUrl { .. })
        ));
        assert!(matches!(
            HttpTransport::new(HttpConfig::new(["/flume/"])),
            Err(HttpConfigError::InvalidUrl { reason, .. }) if reason.contains("only in a browser")
        ));
        let mut config = HttpConfig::new(["http://127.0.0.1:1/"]);
        config
            .headers
            .push(("content-type".into(), "text/plain".into()));
        assert!(matches!(
            HttpTransport::new(config),
            Err(HttpConfigError::InvalidHeader { .. })
        ));
        for name in [
            "Content-Length",
            "transfer-encoding",
            "Host",
            "connection",
            "Expect",
        ] {
            let mut config = HttpConfig::new(["http://127.0.0.1:1/"]);
            config.headers.push((name.into(), "5".into()));
            assert!(
                matches!(
                    HttpTransport::new(config),
                    Err(HttpConfigError::InvalidHeader { reason, .. }) if reason.contains("HTTP layer")
                ),
                "{name}"
            );
        }
        let mut config = HttpConfig::new(["http://127.0.0.1:1/"]);
        config.headers.push(("bad header".into(), "x".into()));
        assert!(matches!(
            HttpTransport::new(config),
            Err(HttpConfigError::InvalidHeader { .. })
        ));
        assert!(matches!(
            HttpTransport::new(HttpConfig::new(["http://[::1]:0/"])),
            Err(HttpConfigError::InvalidUrl { reason, .. }) if reason.contains("port 0")
        ));
        let mut config = HttpConfig::new(["http://127.0.0.1:1/"]);
        config.timeout = std::time::Duration::ZERO;
        assert!(matches!(
            HttpTransport::new(config),
            Err(HttpConfigError::ZeroTimeout)
        ));
    }
}
