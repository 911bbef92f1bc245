//! # headwater-http
//!
//! The Flume HTTP transport of headwater: a [`Transport`] on reqwest that POSTs encoded
//! batches to one or several Flume HTTP sources, on native (tokio) and in the browser
//! (fetch). It sends `Content-Type: application/json; charset=UTF-8` (without the
//! charset, Flume's Jetty may decode non-ASCII text wrongly), applies a per-request
//! timeout (in the browser too), adds configured headers (auth for a proxy in front of
//! Flume), never retries with backoff by itself (the engine owns retries; within one
//! send it may POST the batch again to the next endpoint after one that refused or
//! could not be reached, and once more after a credential refresh), and natively follows no
//! redirects (a 3xx blocks the outbox as a misconfiguration; in the browser, fetch
//! follows them). In the browser an endpoint may be relative (`/flume/`), resolved
//! against the page.
//! Every answer becomes a [`SendOutcome`] with the status, `Retry-After` and the
//! response text (bounded).
//!
//! With the `otlp` feature it also carries OTLP/HTTP logs bodies (the batch's
//! `BodyFormat` says which): their content type, gzip (`HttpConfig::gzip`, on by
//! default), and the answer read as OTLP defines it (a partial success, a
//! `google.rpc.Status` message) through `headwater_core::otlp::read_answer`.
//!
//! With several endpoints it fails over or balances round-robin like Flume's own
//! `default_failover` and `default_loadbalance` clients, and rests an endpoint that
//! could not be reached with a growing backoff.
//!
//! Applications configure it through the `headwater` facade:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use headwater::Headwater;
//!
//! let headwater = Headwater::builder()
//!     .flume(["http://flume-a:5140/", "http://flume-b:5140/"])
//!     .round_robin()
//!     .timeout(Duration::from_secs(5))
//!     .header("authorization", "Bearer s3cret")
//!     .start()?;
//! # Ok(()) }
//! ```
//!
//! or use [`HttpTransport`] directly with an [`HttpConfig`], as any
//! [`Transport`]:
//!
//! ```no_run
//! use headwater_http::{HttpConfig, HttpTransport, Selection};
//! let mut config = HttpConfig::new(["http://flume-a:5140/", "http://flume-b:5140/"]);
//! config.selection = Selection::RoundRobin;
//! let transport = HttpTransport::new(config, chrono::Utc::now).unwrap();
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(target_arch = "wasm32")]
mod browser;
mod client;
mod config;
mod credentials;
mod endpoint_url;
mod failure;
mod fixed_headers;
mod redact;
mod tls;
mod transport;

pub use config::{HttpConfig, HttpConfigError, Selection};
pub use credentials::HeaderProvider;
pub use redact::redact_userinfo;
pub use tls::{ClientIdentity, TlsConfig};
pub use transport::HttpTransport;

#[doc(no_inline)]
pub use headwater_core::transport::{SendOutcome, Transport};
