//! Writing an outcome: acknowledged changes removed, retry bookkeeping kept, dead
//! letters moved out of the outbox (these two only while the lease is held), and the
//! sync markers the acknowledgements move appended to the marker log.

use chrono::{DateTime, Utc};
use headwater_core::model::DeadLetter;
use headwater_core::store::{Outcome, Recorded, StoreError};
use indexed_db_futures::KeyRange;
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::Transaction;
use wasm_bindgen::JsValue;

use crate::codec::json;
use crate::error::store_error;
use crate::layout::{CHANGES, ConnectionKeys, DEAD, MARKER_LOG, RETRIES, seq_key};
use crate::lease::holds;
use crate::markers::LogWatch;
use crate::request::wait;

/// Writes `outcome` within `tx` (over every headwater store), with `lease` already
/// asked for (see [`crate::lease::ask`]); the marker log rows take their keys from
/// `keys`, and `log_watch` counts them. Returns whether the lease is held if it had to
/// wait to know (for retries and dead letters; `None` means read it after the commit),
/// and the bytes that left the outbox, for the caller to take off the byte count.
pub(crate) async fn write_outcome(
    tx: &Transaction<'_>,
    keys: &ConnectionKeys,
    log_watch: &LogWatch,
    owner: &str,
    now: DateTime<Utc>,
    outcome: &Outcome,
    lease: &web_sys::IdbRequest,
) -> Result<(Option<bool>, u64), StoreError> {
    let changes = tx.object_store(CHANGES).map_err(store_error)?;
    let retries = tx.object_store(RETRIES).map_err(store_error)?;
    let dead = tx.object_store(DEAD).map_err(store_error)?;
    let log = tx.object_store(MARKER_LOG).map_err(store_error)?;
    // Retry bookkeeping and dead letters are written only while the lease is held,
    // so an outcome with any waits to read it first. Acknowledgements are written
    // whoever holds it (the changes were delivered), so the common outcome, all
    // acknowledgements, is written without a wait and the lease read after.
    let mut held = None;
    let mut removed = outcome.removed_bytes();
    if !outcome.retries().is_empty() || !outcome.dead().is_empty() {
        wait(lease).await?;
        let holds = holds(owner, lease)?;
        if holds {
            for (seq, delivery) in outcome.retries() {
                retries
                    .put(json(delivery)?)
                    .with_key(seq_key(*seq))
                    .primitive()
                    .map_err(store_error)?;
            }
            for letter in outcome.dead() {
                changes
                    .delete(seq_key(letter.seq))
                    .primitive()
                    .map_err(store_error)?;
                retries
                    .delete(seq_key(letter.seq))
                    .primitive()
                    .map_err(store_error)?;
                dead.put(json(letter)?)
                    .with_key(seq_key(letter.seq))
                    .primitive()
                    .map_err(store_error)?;
            }
        } else {
            // Dead letters not moved stay in the outbox, with their bytes.
            let dead_weight: u64 = outcome
                .dead()
                .iter()
                .filter_map(DeadLetter::change)
                .map(|change| change.data().weight() as u64)
                .sum();
            removed = removed.saturating_sub(dead_weight);
        }
        held = Some(holds);
    }
    let markers = outcome.markers();
    crate::markers::append(log.as_sys(), keys, &markers, now)?;
    if !markers.is_empty() {
        log_watch.wrote(markers.len());
    }
    // After the retries: a merged outcome may hold a change's retry and then its
    // acknowledgement, and no retry row may outlive its change.
    for run in outcome.acked_runs() {
        let range = KeyRange::Bound(seq_key(*run.start()), false, seq_key(*run.end()), false);
        changes
            .delete::<JsValue, _>(range.clone())
            .primitive()
            .map_err(store_error)?;
        retries
            .delete::<JsValue, _>(range)
            .primitive()
            .map_err(store_error)?;
    }
    Ok((held, removed))
}

/// What an acknowledgement's transaction tells the machine, once it committed.
pub(crate) fn recorded(
    held: Option<bool>,
    owner: &str,
    lease: &web_sys::IdbRequest,
) -> Result<Recorded, StoreError> {
    let holds = match held {
        Some(holds) => holds,
        None => holds(owner, lease)?,
    };
    Ok(if holds {
        Recorded::Applied
    } else {
        Recorded::LeaseLost
    })
}
