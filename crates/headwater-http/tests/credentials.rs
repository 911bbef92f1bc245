//! A token that rotates: the header provider is asked before each request, and a 401
//! makes the transport refresh once and send again before the outbox blocks.
#![cfg(not(target_arch = "wasm32"))]

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use headwater_core::flume::EncodedBatch;
use headwater_core::transport::{SendOutcome, Transport};
use headwater_http::{HeaderProvider, HttpConfig, HttpTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server that answers 200 to `authorization: Bearer <accepted>` and 401 to anything
/// else, counting requests.
async fn guarded_server(accepted: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&requests);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let Ok(read) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..read]);
                    let text = String::from_utf8_lossy(&buffer).to_lowercase();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length: usize = text[..end]
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length:"))
                        .and_then(|value| value.trim().parse().ok())
                        .unwrap_or(0);
                    if buffer.len() < end + 4 + length {
                        continue;
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let authorized = text[..end]
                        .lines()
                        .any(|line| line == format!("authorization: bearer {accepted}"));
                    let answer: &[u8] = if authorized {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
                    } else {
                        b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n"
                    };
                    let _ = socket.write_all(answer).await;
                    buffer.drain(..end + 4 + length);
                }
            });
        }
    });
    (url, requests)
}

struct Rotating {
    token: Mutex<String>,
    next: &'static str,
    refreshes: AtomicUsize,
}

#[async_trait::async_trait]
impl HeaderProvider for Rotating {
    async fn headers(&self) -> Result<Vec<(String, String)>, String> {
        let token = self.token.lock().unwrap().clone();
        Ok(vec![("authorization".into(), format!("Bearer {token}"))])
    }

    async fn refresh(&self) -> Result<(), String> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        *self.token.lock().unwrap() = self.next.to_owned();
        Ok(())
    }
}

fn transport(url: &str, provider: Arc<Rotating>) -> HttpTransport {
    let mut config = HttpConfig::new([url]);
    config.timeout = Duration::from_secs(5);
    HttpTransport::new(config, chrono::Utc::now)
        .unwrap()
        .with_header_provider(provider)
}

const BATCH: EncodedBatch<'static> = EncodedBatch::new(b"[]", 0);

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_request_sent_again() {
    let (url, requests) = guarded_server("fresh").await;
    let provider = Arc::new(Rotating {
        token: Mutex::new("expired".into()),
        next: "fresh",
        refreshes: AtomicUsize::new(0),
    });
    let http = transport(&url, Arc::clone(&provider));
    let outcome = http.send(BATCH).await;
    assert!(
        matches!(&outcome, SendOutcome::Response(r) if r.status == 200),
        "{outcome:?}"
    );
    assert_eq!(provider.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    // The fresh token is asked for again before the next request, and works.
    assert!(matches!(http.send(BATCH).await, SendOutcome::Response(r) if r.status == 200));
    assert_eq!(provider.refreshes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refresh_that_does_not_help_leaves_the_401_to_block_the_outbox() {
    let (url, requests) = guarded_server("never").await;
    let provider = Arc::new(Rotating {
        token: Mutex::new("expired".into()),
        next: "still-wrong",
        refreshes: AtomicUsize::new(0),
    });
    let outcome = transport(&url, Arc::clone(&provider)).send(BATCH).await;
    assert!(
        matches!(&outcome, SendOutcome::Response(r) if r.status == 401),
        "{outcome:?}"
    );
    assert_eq!(
        provider.refreshes.load(Ordering::SeqCst),
        1,
        "once, not in a loop"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    let shown = format!("{:?}", transport(&url, provider));
    assert!(!shown.contains("still-wrong"), "{shown}");
}
