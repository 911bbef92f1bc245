//! A claim: the changes after a seq, read together with the lease and the byte count,
//! the lease granted or renewed, and whether the marker log is due a merge.

use headwater_core::store::{Claim, ClaimRequest, StoreError};
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::Transaction;
use wasm_bindgen::JsValue;

use crate::append::SeenSeq;
use crate::codec::json;
use crate::error::store_error;
use crate::layout::{LEASE, MARKER_LOG, STATE};
use crate::lease::asked;
use crate::markers::{LogRows, LogWatch};
use crate::pending_bytes::CountRead;
use crate::read::{PendingRead, entry_seq, weighed};
use crate::request::{js_error, wait};

/// A claim within `tx` (over the changes, retries, marker log and state stores),
/// with `lease` already asked for (see [`crate::lease::ask`]), taking `removed` bytes
/// off the count (see [`crate::outcomes::write_outcome`]); notes the last seq read in
/// `seen` and the marker log's keys read in `log_watch`. Gives the claim, whether it
/// wrote anything, and the marker log rows due a merge (see `IdbStore::merge_markers`).
pub(crate) async fn claim_in(
    tx: &Transaction<'_>,
    seen: &SeenSeq,
    log_watch: &LogWatch,
    request: &ClaimRequest,
    lease: &web_sys::IdbRequest,
    removed: u64,
) -> Result<(Claim, bool, Option<Vec<JsValue>>), StoreError> {
    let state = tx.object_store(STATE).map_err(store_error)?;
    let log = tx.object_store(MARKER_LOG).map_err(store_error)?;
    // The lease (asked for by the caller), the byte count, the marker log's keys
    // (when due, see crate::markers::LogWatch) and the changes are read together
    // (one wait, not four); the changes are dropped if another syncer holds the
    // lease.
    let mut log_keys = if log_watch.due() {
        Some(log.as_sys().get_all_keys().map_err(js_error)?)
    } else {
        None
    };
    let count = CountRead::issue(state.as_sys())?;
    let read = PendingRead::issue(tx, request.after, request.limit)?;
    if read.is_empty() {
        // Only the lease is renewed: wait for the reads made so far.
        wait(count.last()).await?;
    }
    let entries = read.finish().await?;
    if let Some(last) = entries.last() {
        seen.saw(entry_seq(last).get());
    }
    let mut counted = count.counted()?;
    counted.take_off(removed);
    counted.weigh(entries.iter().map(weighed));
    let unfolded = counted.store(state.as_sys())?;
    let current = asked(lease)?;
    let granted = request.grant(current.as_ref());
    let renewed = match &granted {
        Ok(lease) if current.as_ref() != Some(lease) => {
            state
                .put(json(lease)?)
                .with_key(JsValue::from_str(LEASE))
                .primitive()
                .map_err(store_error)?;
            true
        }
        _ => false,
    };
    // The lease holder merges the marker log's rows: when there is nothing to send,
    // or when the log has grown past its bounds (see crate::markers).
    let mut merge = None;
    if granted.is_ok() {
        let idle = request.limit > 0 && entries.is_empty();
        if idle && log_keys.is_none() {
            // An idle outbox has time for the wait.
            let keys = log.as_sys().get_all_keys().map_err(js_error)?;
            wait(&keys).await?;
            log_keys = Some(keys);
        }
        if let Some(keys) = log_keys {
            log_watch.read();
            let rows = LogRows::of_keys(&keys.result().map_err(js_error)?)?;
            merge = rows.due_merge(idle);
        }
    }
    let claim = match granted {
        Ok(_) => Claim::Granted(entries),
        Err(held) => Claim::Held(held),
    };
    Ok((claim, renewed || unfolded, merge))
}
