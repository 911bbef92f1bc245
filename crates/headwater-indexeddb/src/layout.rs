//! headwater's object stores in an application's database, and what each holds.
//!
//! - `headwater_changes`: key the seq (a number, from the store's key generator, so a
//!   seq is never given out twice), value the captured change as JSON text.
//! - `headwater_retries`: key the seq, value its retry bookkeeping as JSON text; only
//!   changes that failed have one, so a claim reads a few, not one per change.
//! - `headwater_dead_letters`: key the seq, value the dead letter as JSON text.
//! - `headwater_marker_log`: the sync markers, a fresh row per acknowledgement, merged
//!   into rows that a multiEntry index `by_record` covers (see [`crate::markers`]).
//! - `headwater_state`: the sending lease, the outbox's byte count and the marker log's
//!   bookkeeping.
//!
//! Databases that headwater 0.1 installed have `headwater_sync_markers` instead (key
//! `[collection, key]` as JSON text, value the marker): it is still read, never written,
//! and the next `install_headwater` adds the log.

use wasm_bindgen::JsValue;
use web_sys::{IdbDatabase, IdbIndexParameters, IdbObjectStoreParameters};

use crate::error::UpgradeError;

pub(crate) const CHANGES: &str = "headwater_changes";
pub(crate) const RETRIES: &str = "headwater_retries";
pub(crate) const DEAD: &str = "headwater_dead_letters";
pub(crate) const MARKER_LOG: &str = "headwater_marker_log";
pub(crate) const MARKER_INDEX: &str = "by_record";
pub(crate) const STATE: &str = "headwater_state";
/// headwater 0.1's sync markers, read (never written) where a database still has them.
pub(crate) const LEGACY_MARKERS: &str = "headwater_sync_markers";

/// Every store headwater owns.
pub const HEADWATER_STORES: [&str; 5] = [CHANGES, RETRIES, DEAD, MARKER_LOG, STATE];

/// Whether `name` is headwater's (its stores, and the one headwater 0.1 had).
pub(crate) fn is_reserved(name: &str) -> bool {
    HEADWATER_STORES.contains(&name) || name == LEGACY_MARKERS
}

pub(crate) const LEASE: &str = "lease";
pub(crate) const PENDING_BYTES: &str = "pending_bytes";

/// Creates the stores that are missing (idempotent).
pub(crate) fn install(db: &IdbDatabase) -> Result<(), UpgradeError> {
    let names = db.object_store_names();
    for name in HEADWATER_STORES {
        if names.contains(name) {
            continue;
        }
        let parameters = IdbObjectStoreParameters::new();
        if name == CHANGES {
            parameters.set_auto_increment(true);
        }
        let store = db
            .create_object_store_with_optional_parameters(name, &parameters)
            .map_err(UpgradeError::from)?;
        if name == MARKER_LOG {
            let index = IdbIndexParameters::new();
            index.set_multi_entry(true);
            store
                .create_index_with_str_and_optional_parameters(MARKER_INDEX, "m", &index)
                .map_err(UpgradeError::from)?;
        }
    }
    Ok(())
}

/// Keys that one connection makes without reading anything: a random number drawn when
/// it opened and its own count (unique but for a chance of 2^-52 per pair of
/// connections), for rows written blindly (marker log rows, byte count deltas).
#[derive(Debug, Clone)]
pub(crate) struct ConnectionKeys {
    connection: f64,
    made: std::rc::Rc<std::cell::Cell<u64>>,
}

impl ConnectionKeys {
    pub(crate) fn new() -> Self {
        Self {
            connection: js_sys::Math::random(),
            made: Default::default(),
        }
    }

    /// The connection's number and the next count.
    pub(crate) fn next(&self) -> (f64, f64) {
        let n = self.made.get();
        self.made.set(n + 1);
        (self.connection, n as f64)
    }
}

/// A seq as an IndexedDB key.
pub(crate) fn seq_key(seq: headwater_core::model::Seq) -> JsValue {
    JsValue::from_f64(seq.get() as f64)
}

/// A record's key in headwater 0.1's sync marker store.
pub(crate) fn legacy_marker_key(collection: &str, key: &str) -> JsValue {
    JsValue::from_str(&serde_json::to_string(&(collection, key)).unwrap_or_default())
}
