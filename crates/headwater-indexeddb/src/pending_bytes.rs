//! The outbox's byte count, kept so that a capture writes nothing but its changes.
//!
//! The count is a sum (`pending_bytes`) over the changes up to a seq (`counted_through`),
//! plus rows of deltas (key `["pending_bytes", connection, n]`, see [`ConnectionKeys`]):
//! an acknowledgement takes off what it removed and a requeue adds what it put back,
//! each with a write that needs no read (an acknowledgement written with a claim takes
//! it off the count that the claim reads and writes back anyway). A change's own weight
//! joins the sum when a claim first reads it, or when a status read finds changes past
//! `counted_through`: the reader folds them in, so each change is weighed once, and a
//! status read costs what was captured since the last one, not the outbox. (Reading the
//! count and writing it back made every capture wait a round trip to the browser's
//! database process; adding a delta row per capture cost as much as the change's own
//! row.) Transactions over the state store never overlap, so nothing is counted twice or
//! lost.

use headwater_core::model::Seq;
use headwater_core::store::StoreError;
use wasm_bindgen::{JsCast, JsValue};

use crate::layout::{ConnectionKeys, PENDING_BYTES};
use crate::request::js_error;

const DELTA: &str = "pending_bytes";
const COUNTED_THROUGH: &str = "counted_through";

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
    sum: web_sys::IdbRequest,
    through: web_sys::IdbRequest,
    deltas: web_sys::IdbRequest,
}

impl CountRead {
    /// Issues the read in `state`. Its results are there once a request issued after
    /// it has completed (or after [`crate::request::wait`] on [`Self::last`]).
    pub(crate) fn issue(state: &web_sys::IdbObjectStore) -> Result<Self, StoreError> {
        Ok(Self {
            sum: state
                .get(&JsValue::from_str(PENDING_BYTES))
                .map_err(js_error)?,
            through: state
                .get(&JsValue::from_str(COUNTED_THROUGH))
                .map_err(js_error)?,
            deltas: state.get_all_with_key(&deltas()?).map_err(js_error)?,
        })
    }

    /// The request that completes last.
    pub(crate) fn last(&self) -> &web_sys::IdbRequest {
        &self.deltas
    }

    /// What the read found.
    pub(crate) fn counted(&self) -> Result<Counted, StoreError> {
        let number = |request: &web_sys::IdbRequest| -> Result<Option<f64>, StoreError> {
            Ok(request.result().map_err(js_error)?.as_f64())
        };
        let deltas: js_sys::Array = self
            .deltas
            .result()
            .map_err(js_error)?
            .dyn_into()
            .map_err(|value| StoreError::backend(format!("getAll gave {value:?}")))?;
        let added: f64 = deltas.iter().filter_map(|value| value.as_f64()).sum();
        Ok(Counted {
            bytes: number(&self.sum)?.unwrap_or(0.0).max(0.0) + added,
            through: match number(&self.through)? {
                None => Seq::ZERO,
                Some(seq) => Seq::new(seq.max(0.0) as u64).ok_or_else(|| {
                    StoreError::backend(format!("the byte count's seq is out of range: {seq}"))
                })?,
            },
            folded: deltas.length() > 0,
            deltas: deltas.length() > 0,
        })
    }
}

/// The count as read, with what a reader adds to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Counted {
    bytes: f64,
    /// Every change up to this seq is in `bytes`.
    pub(crate) through: Seq,
    /// Whether anything changed since the read (delta rows folded, changes weighed).
    folded: bool,
    /// Whether delta rows were read (and so are deleted when the count is stored).
    deltas: bool,
}

impl Counted {
    /// Adds the weight of each change (seq and weight) past `through`.
    pub(crate) fn weigh(&mut self, changes: impl IntoIterator<Item = (Seq, u64)>) {
        let through = self.through;
        for (seq, weight) in changes {
            if seq > through {
                self.bytes += weight as f64;
                self.through = self.through.max(seq);
                self.folded = true;
            }
        }
    }

    /// Takes off `bytes` that left the outbox in the transaction of the read (instead
    /// of a delta row for them).
    pub(crate) fn take_off(&mut self, bytes: u64) {
        if bytes > 0 {
            self.bytes -= bytes as f64;
            self.folded = true;
        }
    }

    /// The bytes pending. An acknowledgement of a change already gone takes its weight
    /// off twice; the count stops at zero.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.max(0.0) as u64
    }

    /// Writes the count back, with the delta rows folded in, if anything changed (in a
    /// readwrite transaction that made the [`CountRead`]); returns whether it wrote.
    pub(crate) fn store(&self, state: &web_sys::IdbObjectStore) -> Result<bool, StoreError> {
        if !self.folded {
            return Ok(false);
        }
        if self.deltas {
            state.delete(&deltas()?).map_err(js_error)?;
        }
        state
            .put_with_key(
                &JsValue::from_f64(self.bytes() as f64),
                &JsValue::from_str(PENDING_BYTES),
            )
            .map_err(js_error)?;
        state
            .put_with_key(
                &JsValue::from_f64(self.through.get() as f64),
                &JsValue::from_str(COUNTED_THROUGH),
            )
            .map_err(js_error)?;
        Ok(true)
    }
}
