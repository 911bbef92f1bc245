//! The HTTP client: no redirects or retries of its own (the delivery machine decides),
//! and natively the TLS settings of [`TlsConfig`](crate::TlsConfig).

use crate::config::HttpConfigError;
#[cfg(all(not(target_arch = "wasm32"), feature = "rustls"))]
use crate::failure::describe;

/// Natively without the `rustls` feature there is no TLS: plain HTTP only, and TLS
/// settings (or an `https` endpoint, see `endpoint_url`) are refused with the feature
/// to turn on.
#[cfg(all(not(target_arch = "wasm32"), not(feature = "rustls")))]
pub(crate) fn build_client(tls: &crate::TlsConfig) -> Result<reqwest::Client, HttpConfigError> {
    if !tls.is_default() {
        return Err(HttpConfigError::NoTlsBackend);
    }
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .build()
        .map_err(HttpConfigError::Client)
}

#[cfg(all(not(target_arch = "wasm32"), feature = "rustls"))]
pub(crate) fn build_client(tls: &crate::TlsConfig) -> Result<reqwest::Client, HttpConfigError> {
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
pub(crate) fn build_client(tls: &crate::TlsConfig) -> Result<reqwest::Client, HttpConfigError> {
    if !tls.is_default() {
        return Err(HttpConfigError::TlsInBrowser);
    }
    // fetch follows no retries of its own; redirects are the browser's business.
    reqwest::Client::builder()
        .build()
        .map_err(HttpConfigError::Client)
}
