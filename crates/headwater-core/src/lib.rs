//! # headwater-core
//!
//! The pure core of headwater, which captures changes to local data and delivers them
//! to Apache Flume durably, in order and with idempotency keys. This crate does no I/O,
//! owns no runtime and never reads the clock or an OS random source: time and seeds
//! are inputs, so the whole delivery engine can be driven faster than real time in
//! tests, and the same code runs natively and in the browser (wasm32).
//!
//! - [`model`]: changes, their idempotency ids (UUIDv7) and delivery state;
//! - [`flume`]: the change → Flume event mapping and the JSON codec of Flume's HTTP source;
//! - [`policy`]: backoff, `Retry-After`, outcome classification, adaptive batch size;
//! - [`store`] and [`transport`]: the two traits adapters implement;
//! - [`engine`]: the [`Syncer`](engine::Syncer) that drives delivery and the
//!   [`Outbox`](engine::Outbox) an application captures through.
//!
//! ```
//! use headwater_core::engine::{SyncConfig, Syncer};
//! use headwater_core::flume::EncodedBatch;
//! use headwater_core::model::ChangeData;
//! use headwater_core::transport::{Response, SendOutcome, Transport};
//!
//! /// A transport that accepts everything (a real one is `headwater-http`).
//! struct AcceptAll;
//!
//! #[async_trait::async_trait]
//! impl Transport for AcceptAll {
//!     async fn send(&self, _batch: EncodedBatch<'_>) -> SendOutcome {
//!         SendOutcome::Response(Response::status(200))
//!     }
//! }
//!
//! futures::executor::block_on(async {
//!     // The core never reads the clock: the caller passes `now` (chrono::Utc::now() in an app).
//!     let now = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
//!     let store = headwater_memory::MemoryStore::new();
//!     let mut syncer = Syncer::new(store, AcceptAll, SyncConfig::new("laptop-1", 0x5eed)).unwrap();
//!     let outbox = syncer.outbox();
//!     let todo = ChangeData::insert("todos", "1", &serde_json::json!({"title": "milk"})).unwrap();
//!     let change = outbox.capture(now, todo).await.unwrap();
//!     syncer.sync_once(now).await.unwrap();
//!     let marker = outbox.sync_marker("todos", "1").await.unwrap().unwrap();
//!     assert_eq!(marker.last_acked_seq, change.seq);
//! });
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod engine;
pub mod flume;
pub mod model;
pub mod policy;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transport;

/// `Send + Sync` natively; nothing on wasm32, where IndexedDB handles and browser
/// futures are `!Send` and everything runs on one thread.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSendSync: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync + ?Sized> MaybeSendSync for T {}

/// `Send + Sync` natively; nothing on wasm32, where IndexedDB handles and browser
/// futures are `!Send` and everything runs on one thread.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSendSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSendSync for T {}
