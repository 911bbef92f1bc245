//! The [`Transport`] trait: how an encoded batch reaches Flume, and what came back.

use crate::flume::EncodedBatch;
use crate::policy::RetryAfter;

/// An HTTP answer, as far as delivery cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Retry-After` header, if any and parsable.
    pub retry_after: Option<RetryAfter>,
    /// The response text (Flume puts the exception message there), bounded by the
    /// transport.
    pub message: String,
}

impl Response {
    /// A response with only a status (and no message).
    pub fn status(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
            message: String::new(),
        }
    }

    /// A response with a status and a message.
    pub fn with_message(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            retry_after: None,
            message: message.into(),
        }
    }
}

/// What happened to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendOutcome {
    /// The server answered.
    Response(Response),
    /// No answer in time. Flume may or may not have committed the batch: a retry can
    /// produce duplicates, which the `id` header lets consumers drop.
    TimedOut {
        /// What the transport saw.
        message: String,
    },
    /// The request could not be completed (refused, reset, DNS, TLS, a browser network
    /// error). If the connection dropped after the request was sent, Flume may still have
    /// committed it.
    ConnectionFailed {
        /// What the transport saw.
        message: String,
    },
    /// The request cannot succeed as configured, whatever the server does: in a browser,
    /// the server answered but without CORS headers for the page's origin, so the page
    /// may not read the answer. Retrying cannot help until the configuration changes.
    Refused {
        /// What the transport saw, and what to change.
        message: String,
    },
}

/// Sends one encoded batch to Flume. Implementations never retry by themselves: the
/// engine owns retries, backoff and batch sizing.
///
/// On wasm32 the trait does not require `Send`, so browser `fetch` can implement it.
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
pub trait Transport: crate::MaybeSendSync {
    /// Sends `batch` and reports the outcome.
    async fn send(&self, batch: EncodedBatch<'_>) -> SendOutcome;
}

#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
impl<T: Transport + ?Sized> Transport for std::sync::Arc<T> {
    async fn send(&self, batch: EncodedBatch<'_>) -> SendOutcome {
        (**self).send(batch).await
    }
}

#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
impl<T: Transport + ?Sized> Transport for Box<T> {
    async fn send(&self, batch: EncodedBatch<'_>) -> SendOutcome {
        (**self).send(batch).await
    }
}
