//! # headwater-indexeddb
//!
//! The IndexedDB `ChangeStore` of headwater, for
//! Rust apps compiled to `wasm32-unknown-unknown` and running in a browser. On other
//! targets this crate is empty.
//!
//! The application owns its database: its stores, key paths, indexes and versions.
//! headwater's stores join it through one call in the app's own upgrade
//! (`Upgrade::install_headwater`), at whatever version the app adds headwater.
//! IndexedDB has no change events, so capture is a **transactional outbox**: the app
//! writes its records and appends their changes in one readwrite transaction
//! (`IdbStore::transaction`), so both happen or neither does. Every store method does
//! its work in one transaction (`claim` and `record_then_claim` may then fold the marker
//! log in a second, log-only one) with no foreign await inside (a timer or a fetch inside a
//! transaction would let it auto-commit); claims read a range with `getAll`, and
//! leases, acknowledgements and retries use relaxed durability (a lost lease lapses, a
//! lost acknowledgement resends under the same id).
//!
//! (Not compiled as a doc test: this crate exists only on wasm32, where doc tests do not
//! run; the browser tests in `tests/` exercise the same calls.)
//!
//! ```ignore
//! use headwater_indexeddb::{IdbStore, open_database};
//!
//! let db = open_database("todo-app", 2, |upgrade| {
//!     if upgrade.old_version() < 1 {
//!         upgrade.create_store("todos", Some("id"))?;
//!     }
//!     if upgrade.old_version() < 2 {
//!         upgrade.install_headwater()?; // headwater joins in version 2
//!     }
//!     Ok(())
//! })
//! .await?;
//! let store = IdbStore::new(db)?;
//!
//! // The app's record and its change, in one transaction.
//! let tx = store.transaction(&["todos"])?;
//! tx.object_store("todos")?.put(headwater_indexeddb::to_js(&todo)?).primitive()?;
//! tx.append(outbox.prepare(now, vec![change])).await?;
//! let changes = tx.commit().await?; // the changes with their seqs
//! outbox.appended(&changes);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(target_arch = "wasm32")]
mod append;
#[cfg(target_arch = "wasm32")]
pub mod browser;
#[cfg(target_arch = "wasm32")]
mod claim;
#[cfg(target_arch = "wasm32")]
mod codec;
#[cfg(target_arch = "wasm32")]
mod dead_letters;
#[cfg(target_arch = "wasm32")]
mod error;
#[cfg(target_arch = "wasm32")]
mod foreign_transaction;
#[cfg(target_arch = "wasm32")]
mod layout;
#[cfg(target_arch = "wasm32")]
mod lease;
#[cfg(target_arch = "wasm32")]
mod markers;
#[cfg(target_arch = "wasm32")]
mod outcomes;
#[cfg(target_arch = "wasm32")]
mod pending_bytes;
#[cfg(target_arch = "wasm32")]
mod read;
#[cfg(target_arch = "wasm32")]
mod records;
#[cfg(target_arch = "wasm32")]
mod request;
#[cfg(target_arch = "wasm32")]
mod schema;
#[cfg(target_arch = "wasm32")]
mod stats;
#[cfg(target_arch = "wasm32")]
mod store;
#[cfg(target_arch = "wasm32")]
mod test_hooks;
#[cfg(target_arch = "wasm32")]
mod upgrade;

#[cfg(target_arch = "wasm32")]
pub use error::{IdbError, UpgradeError};
#[cfg(target_arch = "wasm32")]
pub use foreign_transaction::AppendInFlight;
/// The IndexedDB bindings this store is built on, for the application's own
/// transactions (`indexed_db_futures::prelude::*` brings `.primitive()` and the rest):
/// the same version the store uses, with nothing more to add to `Cargo.toml`.
#[cfg(target_arch = "wasm32")]
pub use indexed_db_futures;
#[cfg(target_arch = "wasm32")]
pub use layout::HEADWATER_STORES;
#[cfg(target_arch = "wasm32")]
pub use records::{AppTransaction, RecordWrite, to_js};
#[cfg(target_arch = "wasm32")]
pub use schema::Schema;
#[cfg(target_arch = "wasm32")]
pub use store::IdbStore;
#[cfg(target_arch = "wasm32")]
pub use upgrade::{Upgrade, install_headwater, open_database};
