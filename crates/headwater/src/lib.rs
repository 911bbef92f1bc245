//! # headwater
//!
//! Capture changes to local data and deliver them to Apache Flume's HTTP source:
//! durably, in capture order per record, with an idempotency key on every event,
//! through crashes, flaky networks and a Flume that pushes back. This is the crate an
//! application adds; it owns the runtime, the clock and the random seed, and hands
//! back a small handle.
//!
//! ```
//! use headwater::{ChangeData, Headwater};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let flume = headwater_mock_flume::MockFlume::start(Default::default()).await?;
//! # let url = flume.url();
//! let headwater = Headwater::builder().flume([url]).source("laptop-7").start()?;
//!
//! // The application captures changes as it makes them...
//! for n in 0..10 {
//!     let todo = serde_json::json!({"title": format!("todo {n}"), "done": false});
//!     headwater.capture(ChangeData::insert("todos", n.to_string(), &todo)?).await?;
//! }
//!
//! // ...and headwater delivers them in the background.
//! headwater.flush().await?;
//! assert_eq!(headwater.status().await?.counters.delivered, 10);
//! headwater.shutdown().await;
//! # assert_eq!(flume.unique_ids(), 10);
//! # Ok(()) }
//! ```
//!
//! ## What it promises
//!
//! No captured change is silently dropped: it is delivered, retried, or parked in the
//! dead letters with the reason, where [`Headwater::requeue`] puts it back. Each event
//! carries the change's UUIDv7 in its `id` header, fixed at capture: a batch sent again
//! after a lost acknowledgement arrives under the same ids, so consumers drop the
//! duplicates. Changes to one record arrive in capture order; with
//! [`max_in_flight(1)`](Builder::max_in_flight), all changes do.
//!
//! ## Features
//!
//! - `native` (default): the Flume HTTP transport with HTTPS (rustls). Delivery runs
//!   on the tokio runtime `start` is called in.
//! - `http`: the HTTP transport without choosing a TLS backend (in the browser, fetch
//!   does TLS).
//! - `sqlite`: the durable native store on SQLite, and capture inside the
//!   application's own SQLite transactions (the `sqlite` module).
//! - `browser`: the IndexedDB store for apps compiled to wasm32; delivery runs on the
//!   page's event loop.
//! - `metrics`: gauges, counters and a delivery-latency histogram through the
//!   `metrics` facade, for any exporter (docs/operations.md lists them).
//!
//! The in-memory store is always there (and the default); it loses the outbox with the
//! process.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod handle;
#[cfg(target_arch = "wasm32")]
mod leader;
#[cfg(feature = "metrics")]
mod metrics;
#[cfg(target_arch = "wasm32")]
mod online;
mod parts;
mod runtime;
#[cfg(all(feature = "sqlite", not(target_arch = "wasm32")))]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;
mod start_error;

pub use builder::Builder;
pub use handle::{Delivered, FlushError, Headwater, Receipt};
pub use parts::DynStore;
pub use runtime::{Clock, SystemClock};
pub use start_error::StartError;

pub use headwater_core::engine::{
    CaptureError, ConfigError, IsolationRules, Outbox, OutboxLimits, PartialRejectionReport,
    SyncConfig, SyncCounters, SyncStatus,
};
pub use headwater_core::flume::{BodyShape, EventMapping, HeaderNames};
pub use headwater_core::model::{
    Change, ChangeData, ChangeId, DeadContent, DeadLetter, InvalidChange, JsonText, Op, OpKind,
    Seq, SyncMarker,
};
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub use headwater_core::otlp::{OtlpEncoding, OtlpMapping};
pub use headwater_core::policy::{Backoff, BatchLimits, RetryLimits};
pub use headwater_core::protocol::Protocol;
pub use headwater_core::store::{ChangeStore, StoreError};
pub use headwater_core::transport::Transport;
pub use headwater_memory::MemoryStore;

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use headwater_http::{
    ClientIdentity, HeaderProvider, HttpConfig, HttpConfigError, HttpTransport, Selection,
    TlsConfig,
};

/// The IndexedDB store for web apps (feature `browser`, on wasm32), so that a web app
/// depends on `headwater` alone: [`IdbStore`](indexeddb::IdbStore), opening the app's
/// database with headwater's stores installed in its own upgrade
/// ([`open_database`](indexeddb::open_database)), capture inside the app's own
/// transactions, and the IndexedDB bindings those transactions use
/// ([`indexed_db_futures`](indexeddb::indexed_db_futures)).
#[cfg(all(feature = "browser", target_arch = "wasm32"))]
#[cfg_attr(docsrs, doc(cfg(feature = "browser")))]
pub mod indexeddb {
    pub use headwater_indexeddb::*;
}

/// Everything an implementation of [`ChangeStore`] names, so that a store is written
/// against `headwater` alone: the trait's requests, answers and errors, and the change
/// model it keeps. Implement it with [`async_trait`](crate::async_trait) (`?Send` on
/// wasm32).
pub mod store {
    /// The time type of the trait's `now`.
    pub use chrono::{DateTime, Utc};
    pub use headwater_core::model::{
        Captured, Change, ChangeData, ChangeId, DeadContent, DeadLetter, Delivery, MAX_SEQ,
        OutboxEntry, Seq, SyncMarker, UnreadableEntry,
    };
    pub use headwater_core::store::{
        BackendError, ChangeStore, Claim, ClaimRequest, Lease, Location, MarkerUpdate,
        OldestPending, OutboxStats, Outcome, Recorded, StoreError, StoredEntry,
    };
}

/// Everything an implementation of [`Transport`] names (another protocol, a test
/// double), against `headwater` alone.
pub mod transport {
    pub use headwater_core::flume::EncodedBatch;
    pub use headwater_core::policy::RetryAfter;
    pub use headwater_core::transport::{
        BodyFormat, PartialRejection, Response, SendOutcome, Transport,
    };
}

/// The attribute that implements [`ChangeStore`] and [`Transport`] (their methods are
/// async): `#[headwater::async_trait]` natively, `#[headwater::async_trait(?Send)]` on
/// wasm32.
pub use async_trait::async_trait;

/// The README's Rust examples, compiled and run as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeExamples;

/// docs/native.md's Rust examples, compiled as doc tests.
#[cfg(all(doctest, feature = "sqlite"))]
#[doc = include_str!("../../../docs/native.md")]
struct NativeExamples;

/// docs/configuration.md's Rust examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/configuration.md")]
struct ConfigurationExamples;

/// docs/otlp.md's Rust examples, compiled as doc tests.
#[cfg(all(doctest, feature = "otlp"))]
#[doc = include_str!("../../../docs/otlp.md")]
struct OtlpExamples;
