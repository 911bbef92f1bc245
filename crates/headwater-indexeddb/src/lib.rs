//! # headwater-indexeddb
//!
//! The IndexedDB [`ChangeStore`](headwater_core::store::ChangeStore) of headwater, for
//! Rust apps compiled to `wasm32-unknown-unknown` and running in a browser. On other
//! targets this crate is empty.
//!
//! IndexedDB has no change events, so capture is a **transactional outbox**: the app
//! writes its records through [`IdbStore::write`], which puts or deletes the records and
//! appends the matching outbox entries in one readwrite transaction with strict
//! durability: both happen or neither does. Every `ChangeStore` method is exactly one
//! transaction with no foreign awaits inside (a timer or a fetch inside a transaction
//! would let it auto-commit).
//!
//! (Not compiled as a doc test: this crate exists only on wasm32, where doc tests do not
//! run; the browser tests in `tests/` exercise the same calls.)
//!
//! ```ignore
//! use headwater_indexeddb::{Schema, RecordWrite};
//! let store = Schema::new("my-app").app_store("todos").open().await?;
//! let outbox = syncer.outbox(); // a Syncer over `store.clone()` and an HttpTransport
//! store.write(&outbox, chrono::Utc::now(), vec![
//!     RecordWrite::put("todos", "42", &serde_json::json!({"title": "milk"}))?,
//! ]).await?;
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(target_arch = "wasm32")]
pub mod browser;
#[cfg(target_arch = "wasm32")]
mod store;

#[cfg(target_arch = "wasm32")]
pub use store::{IdbError, IdbStore, RecordWrite, Schema};
