//! Hooks for tests that put the store into states a running app seldom reaches (a seq
//! near the 2^53 limit, rows a damaged disk might leave). Hidden from the docs; the
//! browser tests in `tests/` call them.

use headwater_core::model::Seq;
use headwater_core::store::StoreError;
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::prelude::*;
use wasm_bindgen::JsValue;

use crate::error::store_error;
use crate::layout::{CHANGES, MARKER_LOG};
use crate::read::key_seq;
use crate::store::{Durability, IdbStore};

/// The test hooks of the store.
impl IdbStore {
    /// Sets the last assigned seq, for tests of behaviour near the 2^53 limit.
    #[doc(hidden)]
    pub async fn force_last_seq(&self, last: u64) -> Result<(), StoreError> {
        let tx = self.write_tx(&[CHANGES], Durability::Strict)?;
        let changes = tx.object_store(CHANGES).map_err(store_error)?;
        let key = JsValue::from_f64(last as f64);
        changes
            .put(JsValue::from_str("placeholder"))
            .with_key(key.clone())
            .primitive()
            .map_err(store_error)?;
        changes.delete(key).primitive().map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    /// Writes sync marker log rows that do not read back (a fresh one, and one under a
    /// key of no known shape), as a damaged disk might leave them: for tests.
    #[doc(hidden)]
    pub async fn damage_marker_log(&self, raw: &str) -> Result<(), StoreError> {
        let tx = self.write_tx(&[MARKER_LOG], Durability::Strict)?;
        let log = tx.object_store(MARKER_LOG).map_err(store_error)?;
        crate::markers::put_damaged(log.as_sys(), self.keys(), raw)?;
        tx.commit().await.map_err(store_error)
    }

    /// Appends a row that does not decode, as a damaged disk or a newer version might
    /// leave: for tests of quarantine. Returns its seq.
    #[doc(hidden)]
    pub async fn append_damaged(&self, raw: &str) -> Result<Seq, StoreError> {
        let tx = self.write_tx(&[CHANGES], Durability::Strict)?;
        let changes = tx.object_store(CHANGES).map_err(store_error)?;
        let key = changes
            .add(JsValue::from_str(raw))
            .with_key_type::<JsValue>()
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        key_seq(&key)
    }
}
