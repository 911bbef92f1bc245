#[cfg(target_arch = "wasm32")]
use std::sync::atomic::{AtomicU32, Ordering};

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use headwater_core::flume::EncodedBatch;
use headwater_core::policy::{Endpoints, RetryAfter};
use headwater_core::transport::{BodyFormat, Response, SendOutcome, Transport};
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};

use crate::client::build_client;
use crate::config::{HttpConfig, HttpConfigError};
use crate::credentials::Provider;
use crate::endpoint_url::endpoint_url;
use crate::failure::{
    connect_hint, describe, never_reached_flume, read_bounded, refuses, text_of_error_page,
};
use crate::fixed_headers::fixed_headers;

/// How much of an OTLP success answer is read: an `ExportLogsServiceResponse` is a few
/// bytes, with a message at most a few kilobytes.
#[cfg(feature = "otlp")]
const OTLP_SUCCESS_BYTES: usize = 64 * 1024;

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
    /// Compress OTLP bodies.
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    gzip: bool,
    endpoints: Mutex<Endpoints>,
    provider: Option<Provider>,
    /// Wall time for endpoint rests: the application's clock, never read here.
    clock: WallClock,
    #[cfg(target_arch = "wasm32")]
    refused_after: u32,
    #[cfg(target_arch = "wasm32")]
    failures_while_online: AtomicU32,
}

impl HttpTransport {
    /// A transport for `config`, if it is valid, reading wall time (for how long a
    /// failed endpoint rests) from `clock`: the application's clock, the same one its
    /// delivery machine reads (the facade passes its own). The transport never reads
    /// the system clock itself; give `chrono::Utc::now` for wall time.
    pub fn new(
        config: HttpConfig,
        clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static,
    ) -> Result<Self, HttpConfigError> {
        if config.endpoints.is_empty() {
            return Err(HttpConfigError::NoEndpoints);
        }
        if config.timeout.is_zero() {
            return Err(HttpConfigError::ZeroTimeout);
        }
        let urls = config
            .endpoints
            .iter()
            .map(|url| endpoint_url(url))
            .collect::<Result<Vec<_>, _>>()?;
        let headers = fixed_headers(&config.headers)?;
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
            clock: WallClock(Arc::new(clock)),
            timeout: config.timeout,
            max_message_bytes: config.max_message_bytes,
            gzip: config.gzip,
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
        if batch.format != BodyFormat::FlumeJson {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static(batch.format.content_type()),
            );
        }
        let body = match self.compressed(batch) {
            Some(compressed) => {
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                compressed
            }
            None => batch.body.to_vec(),
        };
        self.client
            .post(url.clone())
            .headers(headers)
            .timeout(self.timeout)
            .body(body)
            .send()
            .await
    }

    /// The batch's body gzipped, if it is one to compress (OTLP, with `gzip` on).
    #[cfg(feature = "otlp")]
    fn compressed(&self, batch: &EncodedBatch<'_>) -> Option<Vec<u8>> {
        use std::io::Write;
        if !self.gzip || !batch.format.is_otlp() || batch.body.is_empty() {
            return None;
        }
        // The fast level: most of gzip's gain on repetitive records, at a fraction of
        // the CPU of the default.
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(batch.body.len() / 4),
            flate2::Compression::fast(),
        );
        encoder.write_all(batch.body).ok()?;
        encoder.finish().ok()
    }

    #[cfg(not(feature = "otlp"))]
    fn compressed(&self, _batch: &EncodedBatch<'_>) -> Option<Vec<u8>> {
        None
    }

    /// The answer as delivery sees it: its status, `Retry-After`, the server's message
    /// and, for OTLP, what its body says was dropped.
    async fn answer(&self, response: reqwest::Response, format: BodyFormat) -> Response {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(RetryAfter::parse);
        #[cfg(feature = "otlp")]
        if format.is_otlp() {
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            // A 2xx body is read whole up to a generous bound: a partial success cut
            // short would no longer decode, and its rejection would go unseen.
            let limit = if (200..300).contains(&status) {
                self.max_message_bytes.max(OTLP_SUCCESS_BYTES)
            } else {
                self.max_message_bytes
            };
            let mut bytes = read_bounded(response, limit).await;
            bytes.truncate(limit);
            let answer = headwater_core::otlp::read_answer(status, content_type.as_deref(), &bytes);
            return Response::with_message(status, answer.message)
                .with_retry_after(retry_after)
                .with_partial_rejection(answer.rejected);
        }
        let _ = format;
        let message = if response.status().is_success() {
            String::new()
        } else {
            self.read_message(response).await
        };
        Response::with_message(status, message).with_retry_after(retry_after)
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
                    let answer = self.answer(response, batch.format).await;
                    tracing::warn!(url = %crate::redact_userinfo(url.as_str()), status = answer.status, message = %answer.message, "endpoint refuses requests; trying the next");
                    last = SendOutcome::Response(answer.with_retry_after(None));
                }
                Ok(response) => {
                    self.health().succeeded(index);
                    #[cfg(target_arch = "wasm32")]
                    self.failures_while_online.store(0, Ordering::Relaxed);
                    return SendOutcome::Response(self.answer(response, batch.format).await);
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
    fn misconfigurations_are_named() {
        assert!(matches!(
            HttpTransport::new(HttpConfig::new(Vec::<String>::new()), Utc::now),
            Err(HttpConfigError::NoEndpoints)
        ));
        assert!(matches!(
            HttpTransport::new(HttpConfig::new(["flume:5140"]), Utc::now),
            Err(HttpConfigError::InvalidUrl { .. })
        ));
        assert!(matches!(
            HttpTransport::new(HttpConfig::new(["ftp://flume/"]), Utc::now),
            Err(HttpConfigError::InvalidUrl { .. })
        ));
        assert!(matches!(
            HttpTransport::new(HttpConfig::new(["/flume/"]), Utc::now),
            Err(HttpConfigError::InvalidUrl { reason, .. }) if reason.contains("only in a browser")
        ));
        let mut config = HttpConfig::new(["http://127.0.0.1:1/"]);
        config
            .headers
            .push(("content-type".into(), "text/plain".into()));
        assert!(matches!(
            HttpTransport::new(config, Utc::now),
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
                    HttpTransport::new(config, Utc::now),
                    Err(HttpConfigError::InvalidHeader { reason, .. }) if reason.contains("HTTP layer")
                ),
                "{name}"
            );
        }
        let mut config = HttpConfig::new(["http://127.0.0.1:1/"]);
        config.headers.push(("bad header".into(), "x".into()));
        assert!(matches!(
            HttpTransport::new(config, Utc::now),
            Err(HttpConfigError::InvalidHeader { .. })
        ));
        assert!(matches!(
            HttpTransport::new(HttpConfig::new(["http://[::1]:0/"]), Utc::now),
            Err(HttpConfigError::InvalidUrl { reason, .. }) if reason.contains("port 0")
        ));
        let mut config = HttpConfig::new(["http://127.0.0.1:1/"]);
        config.timeout = std::time::Duration::ZERO;
        assert!(matches!(
            HttpTransport::new(config, Utc::now),
            Err(HttpConfigError::ZeroTimeout)
        ));
    }
}
