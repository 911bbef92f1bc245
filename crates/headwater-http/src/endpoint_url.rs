//! Endpoint URLs: what the configuration may name, and how a relative one resolves in
//! a browser.

use crate::config::HttpConfigError;

/// `url` as an endpoint: absolute (or relative to the page, in a browser), `http` or
/// `https`, with a port that can be connected to. Errors show the URL without its
/// password.
pub(crate) fn endpoint_url(url: &str) -> Result<reqwest::Url, HttpConfigError> {
    let parsed = parse_endpoint(url).map_err(|reason| HttpConfigError::InvalidUrl {
        url: crate::redact_userinfo(url),
        reason: crate::redact_userinfo(&reason),
    })?;
    if parsed.port() == Some(0) {
        return Err(HttpConfigError::InvalidUrl {
            url: crate::redact_userinfo(url),
            reason: "port 0 cannot be connected to; give the port Flume's HTTP source listens on"
                .into(),
        });
    }
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(HttpConfigError::InvalidUrl {
            url: crate::redact_userinfo(url),
            reason: format!("the scheme is {:?}", parsed.scheme()),
        });
    }
    if cfg!(all(not(target_arch = "wasm32"), not(feature = "rustls"))) && parsed.scheme() == "https"
    {
        return Err(HttpConfigError::NoTlsBackend);
    }
    Ok(parsed)
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

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    /// Natively, HTTPS needs the `rustls` feature: without it an `https` endpoint is
    /// refused at start with the feature to turn on, not at the first request.
    #[test]
    fn https_is_refused_by_name_without_a_tls_backend() {
        let https = endpoint_url("https://flume.internal:5140/");
        if cfg!(feature = "rustls") {
            assert!(https.is_ok());
        } else {
            assert!(matches!(https, Err(HttpConfigError::NoTlsBackend)));
        }
        assert!(endpoint_url("http://flume.internal:5140/").is_ok());
    }
}
