//! The mock's HTTPS: a rustls server config from PEM, with client certificates
//! required when a client CA is given.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};

use crate::config::{MockError, MockTls};

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, MockError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| MockError::Tls(format!("{what}: {error}")))?;
    if certs.is_empty() {
        return Err(MockError::Tls(format!("{what}: no PEM CERTIFICATE block")));
    }
    Ok(certs)
}

/// The acceptor for `tls`.
pub(crate) fn acceptor(tls: &MockTls) -> Result<TlsAcceptor, MockError> {
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let chain = certificates(&tls.cert_chain_pem, "the server certificate")?;
    let key = PrivateKeyDer::from_pem_slice(&tls.key_pem)
        .map_err(|_| MockError::Tls("the server key is not a PEM private key".into()))?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| MockError::Tls(error.to_string()))?;
    let builder = match &tls.client_ca_pem {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(pem, "the client CA")? {
                roots
                    .add(cert)
                    .map_err(|error| MockError::Tls(format!("the client CA: {error}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| MockError::Tls(format!("the client CA: {error}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|error| MockError::Tls(format!("the server certificate and key: {error}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
