//! Why headwater did not start.

use std::time::Duration;

use headwater_core::engine::ConfigError;

/// Why headwater did not start. Nothing was spawned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The delivery settings cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP settings cannot work (no Flume URL, a malformed URL, a bad header).
    #[cfg(feature = "http")]
    #[error(transparent)]
    Http(#[from] headwater_http::HttpConfigError),
    /// Neither Flume URLs nor a transport were given.
    #[error("no Flume to send to: give the builder `flume(urls)` (or a `transport`)")]
    NoTransport,
    /// The lease would lapse while a request is still allowed to run, so another syncer
    /// could send the same changes at the same time.
    #[error(
        "the lease ({lease:?}) must be longer than the request timeout ({timeout:?}): raise `lease` or lower the timeout"
    )]
    LeaseTooShort {
        /// The configured lease.
        lease: Duration,
        /// The configured request timeout.
        timeout: Duration,
    },
    /// `start` was called outside a tokio runtime (natively, headwater runs its
    /// delivery task on the runtime it is started in).
    #[error(
        "headwater must be started inside a tokio runtime (in async code under #[tokio::main] or Runtime::block_on)"
    )]
    NoRuntime,
    /// The operating system gave no random seed for the change ids.
    #[error("no random source for the change ids: {0}")]
    Seed(String),
}
