//! The outbox's byte count, kept so that a capture never waits to read it.
//!
//! A capture adds its weight, and an acknowledgement takes off what it removed, as a row
//! of its own in the state store (key `["pending_bytes", connection, n]`, see
//! [`ConnectionKeys`]): a write that needs no read. Reading the count and writing it back
//! made every capture wait one more round trip to the browser's database process, which
//! was most of what a captured write cost over a plain one. Claims fold those rows into
//! the count (`pending_bytes`), and a reader adds the rows not folded yet. Transactions
//! over the state store never overlap, so nothing is counted twice or lost.

use headwater_core::store::StoreError;
use wasm_bindgen::{JsCast, JsValue};

use crate::error::{describe_js, store_error};
use crate::layout::{ConnectionKeys, PENDING_BYTES};

const DELTA: &str = "pending_bytes";

fn js_error(error: JsValue) -> StoreError {
    store_error(describe_js(&error))
}

fn deltas() -> Result<JsValue, StoreError> {
    let from = js_sys::Array::of1(&JsValue::from_str(DELTA));
    let to = js_sys::Array::of2(&JsValue::from_str(DELTA), &js_sys::Array::new());
    web_sys::IdbKeyRange::bound(&from, &to)
        .map(JsValue::from)
        .map_err(js_error)
}

/// Adds `bytes` (taken off if negative) to the count.
pub(crate) fn add(
    state: &web_sys::IdbObjectStore,
    keys: &ConnectionKeys,
    bytes: f64,
) -> Result<(), StoreError> {
    if bytes == 0.0 {
        return Ok(());
    }
    let (connection, n) = keys.next();
    let key = js_sys::Array::of3(
        &JsValue::from_str(DELTA),
        &JsValue::from_f64(connection),
        &JsValue::from_f64(n),
    );
    state
        .put_with_key(&JsValue::from_f64(bytes), &key)
        .map_err(js_error)?;
    Ok(())
}

/// A read of the count, issued with a transaction's other requests and taken once they
/// are done.
pub(crate) struct CountRead {
    count: web_sys::IdbRequest,
    deltas: web_sys::IdbRequest,
}

impl CountRead {
    /// Issues the read in `state`. Its results are there once a request issued after
    /// it has completed (or after [`crate::store::wait`] on [`Self::last`]).
    pub(crate) fn issue(state: &web_sys::IdbObjectStore) -> Result<Self, StoreError> {
        Ok(CountRead {
            count: state
                .get(&JsValue::from_str(PENDING_BYTES))
                .map_err(js_error)?,
            deltas: state.get_all_with_key(&deltas()?).map_err(js_error)?,
        })
    }

    /// The request that completes last.
    pub(crate) fn last(&self) -> &web_sys::IdbRequest {
        &self.deltas
    }

    /// The bytes pending, and whether rows wait to be folded.
    pub(crate) fn total(&self) -> Result<(u64, bool), StoreError> {
        let count = self.count.result().map_err(js_error)?;
        let base = count.as_f64().map_or(0.0, |value| value.max(0.0));
        let deltas: js_sys::Array = self
            .deltas
            .result()
            .map_err(js_error)?
            .dyn_into()
            .map_err(|value| StoreError::backend(format!("getAll gave {value:?}")))?;
        let added: f64 = deltas.iter().filter_map(|value| value.as_f64()).sum();
        // An acknowledgement of a change already gone takes its weight off twice; the
        // count stops at zero.
        Ok(((base + added).max(0.0) as u64, deltas.length() > 0))
    }
}

/// Sets the count to `total` and removes the rows folded into it (in a readwrite
/// transaction that made the [`CountRead`]).
pub(crate) fn store(
    state: &web_sys::IdbObjectStore,
    total: u64,
    folded: bool,
) -> Result<(), StoreError> {
    if folded {
        state.delete(&deltas()?).map_err(js_error)?;
    }
    state
        .put_with_key(
            &JsValue::from_f64(total as f64),
            &JsValue::from_str(PENDING_BYTES),
        )
        .map_err(js_error)?;
    Ok(())
}
