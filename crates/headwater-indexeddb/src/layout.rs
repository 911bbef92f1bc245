//! headwater's object stores in an application's database, and what each holds.
//!
//! - `headwater_changes`: key the seq (a number, from the store's key generator, so a
//!   seq is never given out twice), value the captured change as JSON text.
//! - `headwater_retries`: key the seq, value its retry bookkeeping as JSON text; only
//!   changes that failed have one, so a claim reads a few, not one per change.
//! - `headwater_dead_letters`: key the seq, value the dead letter as JSON text.
//! - `headwater_sync_markers`: key `[collection, key]` as JSON text, value the marker.
//! - `headwater_state`: the sending lease and the outbox's byte count.

use wasm_bindgen::JsValue;
use web_sys::{IdbDatabase, IdbObjectStoreParameters};

use crate::upgrade::UpgradeError;

pub(crate) const CHANGES: &str = "headwater_changes";
pub(crate) const RETRIES: &str = "headwater_retries";
pub(crate) const DEAD: &str = "headwater_dead_letters";
pub(crate) const MARKERS: &str = "headwater_sync_markers";
pub(crate) const STATE: &str = "headwater_state";

/// Every store headwater owns.
pub const HEADWATER_STORES: [&str; 5] = [CHANGES, RETRIES, DEAD, MARKERS, STATE];

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
        db.create_object_store_with_optional_parameters(name, &parameters)
            .map_err(UpgradeError::from)?;
    }
    Ok(())
}

/// A seq as an IndexedDB key.
pub(crate) fn seq_key(seq: headwater_core::model::Seq) -> JsValue {
    JsValue::from_f64(seq.0 as f64)
}

/// A record's sync marker key.
pub(crate) fn marker_key(collection: &str, key: &str) -> JsValue {
    JsValue::from_str(&serde_json::to_string(&(collection, key)).unwrap_or_default())
}
