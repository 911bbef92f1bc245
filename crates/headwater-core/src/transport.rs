//! The [`Transport`] trait: how an encoded batch reaches Flume, and what came back.

use crate::flume::EncodedBatch;
use crate::policy::RetryAfter;

/// What a request body is, so that a transport labels it (`Content-Type`) and reads the
/// answer as its protocol defines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BodyFormat {
    /// A JSON array of Flume events (Flume's HTTP source, `JSONHandler`).
    #[default]
    FlumeJson,
    /// An OTLP `ExportLogsServiceRequest` in protobuf (`POST /v1/logs`).
    OtlpProtobuf,
    /// The same in OTLP's JSON encoding.
    OtlpJson,
}

impl BodyFormat {
    /// The `Content-Type` of such a body.
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::FlumeJson => "application/json; charset=UTF-8",
            Self::OtlpProtobuf => "application/x-protobuf",
            Self::OtlpJson => "application/json",
        }
    }

    /// Whether it is an OTLP body (compressed with gzip if the transport is set to, and
    /// answered as OTLP answers).
    pub const fn is_otlp(self) -> bool {
        matches!(self, Self::OtlpProtobuf | Self::OtlpJson)
    }
}

/// An HTTP answer, as far as delivery cares.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Retry-After` header, if any and parsable.
    pub retry_after: Option<RetryAfter>,
    /// The response text (Flume puts the exception message there), bounded by the
    /// transport.
    pub message: String,
    /// Records the server says it dropped although it answered 2xx (an OTLP partial
    /// success). The batch is not sent again, as the protocol requires; the machine
    /// counts and reports the rejection.
    pub partially_rejected: Option<PartialRejection>,
}

/// Part of an accepted batch that the server dropped, by its own account: OTLP's
/// `partial_success`, which gives a count and a message but not which records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialRejection {
    /// How many records were dropped.
    pub count: u64,
    /// The server's reason.
    pub message: String,
}

impl Response {
    /// A response with only a status (and no message).
    pub fn status(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
            message: String::new(),
            partially_rejected: None,
        }
    }

    /// A response with a status and a message.
    pub fn with_message(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            retry_after: None,
            message: message.into(),
            partially_rejected: None,
        }
    }

    /// The same response, with `Retry-After` set.
    pub fn with_retry_after(mut self, retry_after: Option<RetryAfter>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// The same response, with records the server says it dropped.
    pub fn with_partial_rejection(mut self, rejection: Option<PartialRejection>) -> Self {
        self.partially_rejected = rejection;
        self
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
