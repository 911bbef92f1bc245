//! HTTPS to Flume natively: which certificate authorities to trust, the client
//! certificate for mutual TLS, and the development-only switch that trusts anything.
//! In the browser the page's own TLS applies and these settings are refused.

use std::fmt;

/// How the transport speaks TLS to `https://` endpoints (native only).
///
/// ```
/// use headwater_http::{ClientIdentity, HttpConfig, TlsConfig};
/// # let (ca_pem, cert_pem, key_pem) = (Vec::new(), Vec::new(), Vec::new());
/// let mut config = HttpConfig::new(["https://flume.internal:5140/"]);
/// let mut tls = TlsConfig::default();
/// tls.ca_certs_pem = ca_pem; // the private CA that signed Flume's keystore
/// tls.client_identity = Some(ClientIdentity::from_pem(cert_pem, key_pem));
/// config.tls = tls;
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsConfig {
    /// Extra certificate authorities to trust, PEM (one or more `CERTIFICATE` blocks):
    /// most often the private CA that signed the certificate in Flume's keystore.
    pub ca_certs_pem: Vec<u8>,
    /// Trust only `ca_certs_pem`, not the system's roots as well.
    pub ca_certs_only: bool,
    /// A client certificate and key, for a Flume (or a proxy) that requires mutual TLS.
    pub client_identity: Option<ClientIdentity>,
    /// **For development only**: accept any server certificate, whoever signed it and
    /// whatever host it names. Anyone on the network path can then read and change the
    /// traffic. The transport logs a warning when it is on.
    pub danger_accept_invalid_certs: bool,
}

impl TlsConfig {
    /// Whether anything differs from the defaults (system roots, no client
    /// certificate).
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field(
                "ca_certs_pem",
                &format_args!("{} bytes", self.ca_certs_pem.len()),
            )
            .field("ca_certs_only", &self.ca_certs_only)
            .field("client_identity", &self.client_identity)
            .field(
                "danger_accept_invalid_certs",
                &self.danger_accept_invalid_certs,
            )
            .finish()
    }
}

/// A client certificate chain and its private key, PEM. The key never appears in
/// `Debug` output, logs or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub(crate) cert_chain_pem: Vec<u8>,
    pub(crate) key_pem: Vec<u8>,
}

impl ClientIdentity {
    /// The certificate chain (the client's certificate first) and its key (PKCS#8,
    /// PKCS#1 or SEC1), each PEM.
    pub fn from_pem(cert_chain_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        Self {
            cert_chain_pem: cert_chain_pem.into(),
            key_pem: key_pem.into(),
        }
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field(
                "cert_chain_pem",
                &format_args!("{} bytes", self.cert_chain_pem.len()),
            )
            .field("key_pem", &format_args!("<redacted>"))
            .finish()
    }
}

/// What a TLS failure means, read from the error's chain (rustls's messages), with the
/// setting that fixes it; `None` if the failure is not about TLS.
pub(crate) fn diagnose(chain: &str) -> Option<&'static str> {
    let has = |needle: &str| chain.contains(needle);
    if has("UnknownIssuer") || has("unknown issuer") {
        Some(
            "the server's certificate is signed by a certificate authority this client does not trust: give its CA with --ca-cert (TlsConfig::ca_certs_pem)",
        )
    } else if has("Expired") || has("expired") || has("NotValidYet") || has("not valid yet") {
        Some(
            "the server's certificate has expired or is not valid yet: renew the certificate in Flume's keystore (or check this machine's clock)",
        )
    } else if has("NotValidForName") || has("not valid for name") {
        Some(
            "the server's certificate does not name this host: use the host name the certificate was issued for, or reissue it with this name",
        )
    } else if has("CertificateRequired") || has("certificate required") {
        Some(
            "the server requires a client certificate: give one with --client-cert and --client-key (TlsConfig::client_identity)",
        )
    } else if has("UnknownCA") || has("BadCertificate") || has("DecryptError") {
        Some(
            "the server refused this client's certificate: check that --client-cert is signed by a CA the server trusts",
        )
    } else if has("invalid peer certificate")
        || has("received fatal alert")
        || has("HandshakeFailure")
        || has("peer is incompatible")
        || has("InvalidContentType")
        || has("corrupt message")
    {
        Some("the TLS handshake with the server failed")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_keeps_the_key_out() {
        let identity = ClientIdentity::from_pem("CERT", "-----BEGIN PRIVATE KEY-----s3cret");
        let config = TlsConfig {
            client_identity: Some(identity),
            ..TlsConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn rustls_failures_are_named() {
        assert!(
            diagnose("client error (Connect): invalid peer certificate: UnknownIssuer")
                .unwrap()
                .contains("--ca-cert")
        );
        assert!(
            diagnose("invalid peer certificate: NotValidForName")
                .unwrap()
                .contains("host")
        );
        assert!(
            diagnose("received fatal alert: CertificateRequired")
                .unwrap()
                .contains("--client-cert")
        );
        assert_eq!(diagnose("tcp connect error: Connection refused"), None);
    }
}
