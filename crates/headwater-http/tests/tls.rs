//! HTTPS to the mock Flume: a private CA, mutual TLS, TLS failures that block instead of
//! looping, bounded answers, and secrets kept out of `Debug` output. Certificates are
//! made at run time with rcgen.
#![cfg(not(target_arch = "wasm32"))]

use std::time::Duration;

use headwater::{ChangeData, ClientIdentity, Headwater, TlsConfig};
use headwater_core::flume::EncodedBatch;
use headwater_core::transport::{SendOutcome, Transport};
use headwater_http::{HttpConfig, HttpTransport};
use headwater_mock_flume::{MockConfig, MockFlume, MockTls};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> Vec<u8> {
        self.issuer.pem().into_bytes()
    }

    /// A certificate for `names` and its key, PEM.
    fn issue(&self, names: &[&str]) -> (Vec<u8>, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
    }
}

async fn https_mock(ca: &Ca, client_ca: Option<&Ca>) -> MockFlume {
    let (cert_chain_pem, key_pem) = ca.issue(&["127.0.0.1", "localhost"]);
    MockFlume::start(MockConfig {
        tls: Some(MockTls {
            cert_chain_pem,
            key_pem,
            client_ca_pem: client_ca.map(Ca::pem),
        }),
        ..MockConfig::default()
    })
    .await
    .unwrap()
}

fn transport(url: &str, tls: TlsConfig) -> HttpTransport {
    let mut config = HttpConfig::new([url]);
    config.timeout = Duration::from_secs(5);
    config.tls = tls;
    HttpTransport::new(config, chrono::Utc::now).unwrap()
}

const BATCH: EncodedBatch<'static> =
    EncodedBatch::new(br#"[{"headers":{"id":"tls-1"},"body":"over TLS"}]"#, 1);

fn trusting(ca: &Ca) -> TlsConfig {
    let mut tls = TlsConfig::default();
    tls.ca_certs_pem = ca.pem();
    tls
}

#[tokio::test]
async fn a_private_ca_given_with_the_config_is_trusted() {
    let ca = Ca::new();
    let flume = https_mock(&ca, None).await;
    assert!(flume.url().starts_with("https://"));
    let outcome = transport(flume.url(), trusting(&ca)).send(BATCH).await;
    assert!(
        matches!(&outcome, SendOutcome::Response(r) if r.status == 200),
        "{outcome:?}"
    );
    assert_eq!(flume.unique_ids(), 1);
}

#[tokio::test]
async fn an_unknown_issuer_blocks_with_the_cause_and_the_fix() {
    let flume = https_mock(&Ca::new(), None).await;
    let outcome = transport(flume.url(), TlsConfig::default())
        .send(BATCH)
        .await;
    let SendOutcome::Refused { message } = &outcome else {
        panic!("{outcome:?}");
    };
    assert!(
        message.contains("certificate authority") && message.contains("--ca-cert"),
        "{message}"
    );
    // Another CA is no better.
    let outcome = transport(flume.url(), trusting(&Ca::new()))
        .send(BATCH)
        .await;
    assert!(
        matches!(outcome, SendOutcome::Refused { .. }),
        "{outcome:?}"
    );
    assert_eq!(flume.requests(), 0);
}

#[tokio::test]
async fn a_certificate_for_another_host_is_named() {
    let ca = Ca::new();
    let (cert_chain_pem, key_pem) = ca.issue(&["flume.example"]);
    let flume = MockFlume::start(MockConfig {
        tls: Some(MockTls {
            cert_chain_pem,
            key_pem,
            client_ca_pem: None,
        }),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let outcome = transport(flume.url(), trusting(&ca)).send(BATCH).await;
    assert!(
        matches!(&outcome, SendOutcome::Refused { message } if message.contains("does not name this host")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn mutual_tls_with_the_right_certificate_passes_and_without_or_wrong_one_blocks() {
    let server_ca = Ca::new();
    let client_ca = Ca::new();
    let flume = https_mock(&server_ca, Some(&client_ca)).await;

    let (cert, key) = client_ca.issue(&["headwater-client"]);
    let mut right = trusting(&server_ca);
    right.client_identity = Some(ClientIdentity::from_pem(cert, key));
    let outcome = transport(flume.url(), right).send(BATCH).await;
    assert!(
        matches!(&outcome, SendOutcome::Response(r) if r.status == 200),
        "{outcome:?}"
    );

    let missing = transport(flume.url(), trusting(&server_ca))
        .send(BATCH)
        .await;
    assert!(
        matches!(&missing, SendOutcome::Refused { message } if message.contains("client certificate")),
        "{missing:?}"
    );

    let (cert, key) = Ca::new().issue(&["impostor"]);
    let mut wrong = trusting(&server_ca);
    wrong.client_identity = Some(ClientIdentity::from_pem(cert, key));
    let outcome = transport(flume.url(), wrong).send(BATCH).await;
    assert!(
        matches!(&outcome, SendOutcome::Refused { message } if message.starts_with("TLS:")),
        "{outcome:?}"
    );
    assert_eq!(flume.unique_ids(), 1, "only the right client got through");
}

#[tokio::test]
async fn through_the_facade_an_unknown_issuer_blocks_and_keeps_every_change() {
    let flume = https_mock(&Ca::new(), None).await;
    let headwater = Headwater::builder()
        .flume([flume.url()])
        .timeout(Duration::from_secs(5))
        .start()
        .unwrap();
    for n in 0..10 {
        headwater
            .capture(ChangeData::insert("todos", n.to_string(), &n).unwrap())
            .await
            .unwrap();
    }
    let flushed = tokio::time::timeout(Duration::from_secs(20), headwater.flush())
        .await
        .expect("flush ends: the outbox blocks instead of retrying");
    assert!(flushed.is_err());
    let status = headwater.status().await.unwrap();
    assert!(
        status
            .blocked
            .as_deref()
            .is_some_and(|r| r.contains("--ca-cert")),
        "{status:?}"
    );
    assert_eq!((status.pending, status.dead_lettered), (10, 0));
    assert!(status.counters.requests <= 2, "no tight loop: {status:?}");
    headwater.shutdown().await;
}

#[test]
fn bad_pem_is_a_named_misconfiguration() {
    let mut config = HttpConfig::new(["https://127.0.0.1:1/"]);
    config.tls.ca_certs_pem = b"not a certificate".to_vec();
    assert!(matches!(
        HttpTransport::new(config, chrono::Utc::now),
        Err(headwater_http::HttpConfigError::InvalidCaCert { .. })
    ));
    let mut config = HttpConfig::new(["https://127.0.0.1:1/"]);
    config.tls.client_identity = Some(ClientIdentity::from_pem("nope", "s3cret-key"));
    let error = HttpTransport::new(config, chrono::Utc::now).unwrap_err();
    assert!(
        matches!(
            error,
            headwater_http::HttpConfigError::InvalidClientIdentity { .. }
        ),
        "{error:?}"
    );
    assert!(!error.to_string().contains("s3cret"));
}

#[test]
fn header_values_and_keys_never_show_in_debug_output() {
    let mut config = HttpConfig::new(["https://127.0.0.1:1/"]);
    config
        .headers
        .push(("authorization".into(), "Bearer s3cret-token".into()));
    let (cert, key) = Ca::new().issue(&["client"]);
    config.tls.client_identity = Some(ClientIdentity::from_pem(cert, key.clone()));
    let shown = format!("{config:?}");
    assert!(shown.contains("authorization"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    let transport = HttpTransport::new(config, chrono::Utc::now).unwrap();
    let shown = format!("{transport:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(
        !shown.contains(std::str::from_utf8(&key[30..60]).unwrap()),
        "{shown}"
    );
}

/// A server that answers 500 with a body that never ends: the transport reads a few
/// kilobytes of it for the message and moves on, and the change is retried.
#[tokio::test]
async fn an_endless_answer_is_read_only_as_far_as_the_message_limit() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 4096];
        let _ = socket.read(&mut request).await;
        socket
            .write_all(b"HTTP/1.1 500 Server Error\r\ncontent-length: 104857600\r\n\r\n")
            .await
            .unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0usize;
        // 100 MB if the client kept reading; it stops after the message limit.
        while sent < 100 * 1024 * 1024 {
            if socket.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let mut config = HttpConfig::new([url.as_str()]);
    config.timeout = Duration::from_secs(5);
    let outcome = HttpTransport::new(config, chrono::Utc::now)
        .unwrap()
        .send(BATCH)
        .await;
    let SendOutcome::Response(response) = &outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(response.status, 500, "retried as any 500");
    assert!(response.message.len() <= 4096);
    let sent = server.await.unwrap();
    assert!(
        sent < 100 * 1024 * 1024,
        "the client stopped reading: the server wrote {sent} bytes"
    );
}

/// A server that trickles its answer meets the request timeout.
#[tokio::test]
async fn a_trickling_answer_meets_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 4096];
        let _ = socket.read(&mut request).await;
        let _ = socket
            .write_all(b"HTTP/1.1 500 Server Error\r\ncontent-length: 1000000\r\n\r\n")
            .await;
        loop {
            if socket.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut config = HttpConfig::new([url.as_str()]);
    config.timeout = Duration::from_secs(1);
    config.max_message_bytes = 1_000_000;
    let started = std::time::Instant::now();
    let outcome = HttpTransport::new(config, chrono::Utc::now)
        .unwrap()
        .send(BATCH)
        .await;
    assert!(started.elapsed() < Duration::from_secs(4), "{outcome:?}");
    assert!(
        matches!(
            outcome,
            SendOutcome::TimedOut { .. } | SendOutcome::Response(_)
        ),
        "{outcome:?}"
    );
}
