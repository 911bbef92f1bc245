//! The outbox's status: counts, the oldest pending change, the newest seq and the
//! lease, read in one transaction that also folds the changes captured since the last
//! read into the byte count (see crate::pending_bytes).

use headwater_core::store::{Lease, OldestPending, OutboxStats, StoreError};
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::Transaction;
use wasm_bindgen::JsValue;

use crate::append::SeenSeq;
use crate::codec::parse;
use crate::error::store_error;
use crate::layout::{CHANGES, DEAD, LEASE, STATE};
use crate::pending_bytes::CountRead;
use crate::read::{key_seq, read_in, weighed};

/// Reads the status within `tx` (a readwrite transaction over the changes, retries,
/// dead letters and state stores), noting the newest seq in `seen`; gives it and
/// whether the byte count was written back (if not, `tx` need not commit).
pub(crate) async fn stats_in(
    tx: &Transaction<'_>,
    seen: &SeenSeq,
) -> Result<(OutboxStats, bool), StoreError> {
    let changes = tx.object_store(CHANGES).map_err(store_error)?;
    let dead = tx.object_store(DEAD).map_err(store_error)?;
    let state = tx.object_store(STATE).map_err(store_error)?;
    let pending = changes.count().primitive().map_err(store_error)?;
    let dead_count = dead.count().primitive().map_err(store_error)?;
    let count = CountRead::issue(state.as_sys())?;
    let lease = state
        .get::<JsValue, _, _>(JsValue::from_str(LEASE))
        .primitive()
        .map_err(store_error)?;
    let newest = changes
        .open_key_cursor()
        .with_direction(indexed_db_futures::cursor::CursorDirection::Prev)
        .primitive()
        .map_err(store_error)?;
    let head = read_in(tx, None, 1).await?;
    let pending = pending.await.map_err(store_error)?;
    let dead_count = dead_count.await.map_err(store_error)?;
    let lease: Option<Lease> = lease
        .await
        .map_err(store_error)?
        .map(|value| parse(&value))
        .transpose()?;
    let newest_seq = match newest.await.map_err(store_error)? {
        Some(cursor) => cursor
            .primary_key::<JsValue>()
            .map_err(store_error)?
            .map(|key| key_seq(&key))
            .transpose()?,
        None => None,
    };
    if let Some(newest) = newest_seq {
        seen.saw(newest.get());
    }
    let mut counted = count.counted()?;
    if newest_seq.is_some_and(|newest| newest > counted.through) {
        let unweighed = read_in(tx, Some(counted.through), usize::MAX).await?;
        counted.weigh(unweighed.iter().map(weighed));
    }
    let pending_bytes = counted.bytes();
    let wrote = counted.store(state.as_sys())?;
    let oldest = head
        .into_iter()
        .next()
        .and_then(Result::ok)
        .map(|entry| OldestPending {
            seq: entry.change.seq(),
            captured_at: entry.change.captured_at(),
            delivery: entry.delivery,
        });
    let stats = OutboxStats {
        pending: pending as usize,
        pending_bytes,
        dead_lettered: dead_count as usize,
        oldest,
        newest_seq,
        lease,
    };
    Ok((stats, wrote))
}
