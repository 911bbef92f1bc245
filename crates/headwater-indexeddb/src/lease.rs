//! The sending lease in the state store: asked for at the start of a syncer's
//! transaction, and whether its owner still holds it.

use headwater_core::store::{Lease, StoreError};
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::object_store::ObjectStore;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::Transaction;
use wasm_bindgen::JsValue;

use crate::codec::parse;
use crate::error::store_error;
use crate::layout::{LEASE, STATE};
use crate::request::js_error;

/// Asks for the stored lease, first in `tx`.
pub(crate) fn ask(tx: &Transaction<'_>) -> Result<web_sys::IdbRequest, StoreError> {
    let state = tx.object_store(STATE).map_err(store_error)?;
    state
        .as_sys()
        .get(&JsValue::from_str(LEASE))
        .map_err(js_error)
}

/// The lease `lease` (a finished [`ask`]) gave, if one is stored.
pub(crate) fn asked(lease: &web_sys::IdbRequest) -> Result<Option<Lease>, StoreError> {
    let lease = lease.result().map_err(js_error)?;
    (!lease.is_undefined()).then(|| parse(&lease)).transpose()
}

/// Whether `owner` holds the lease `lease` (a finished read) gave.
pub(crate) fn holds(owner: &str, lease: &web_sys::IdbRequest) -> Result<bool, StoreError> {
    let lease = asked(lease)?;
    Ok(lease.is_some_and(|lease| lease.is_held_by(owner)))
}

/// Reads the stored lease from `state`, waiting for it.
pub(crate) async fn lease_in(state: &ObjectStore<'_>) -> Result<Option<Lease>, StoreError> {
    state
        .get::<JsValue, _, _>(JsValue::from_str(LEASE))
        .await
        .map_err(store_error)?
        .map(|value| parse(&value))
        .transpose()
}
