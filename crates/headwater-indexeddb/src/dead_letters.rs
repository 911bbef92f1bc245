//! The dead-letter queue's operator side: listing dead letters, requeueing them into
//! the outbox under their own seqs, and discarding them.

use headwater_core::model::{Captured, DeadLetter, Seq};
use headwater_core::store::StoreError;
use indexed_db_futures::KeyRange;
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::Transaction;
use wasm_bindgen::JsValue;

use crate::codec::{json, parse};
use crate::error::store_error;
use crate::layout::{CHANGES, ConnectionKeys, DEAD, STATE, seq_key};

/// Reads up to `limit` dead letters after `after` within `tx` (which covers the dead
/// letters store).
pub(crate) async fn letters_in(
    tx: &Transaction<'_>,
    after: Option<Seq>,
    limit: usize,
) -> Result<Vec<DeadLetter>, StoreError> {
    let dead = tx.object_store(DEAD).map_err(store_error)?;
    let values: Vec<JsValue> = dead
        .get_all::<JsValue>()
        .with_query::<JsValue, _>(KeyRange::LowerBound(
            JsValue::from_f64(after.map_or(0.0, |seq| seq.get() as f64)),
            true,
        ))
        .with_limit(u32::try_from(limit).unwrap_or(u32::MAX))
        .await
        .map_err(store_error)?
        .collect::<Result<_, _>>()
        .map_err(store_error)?;
    values.iter().map(parse).collect()
}

/// Moves the dead letters of `seqs` that can be requeued back into the outbox within
/// `tx` (over the changes, dead letters and state stores), adding their bytes to the
/// count with a delta row keyed from `keys`; gives how many moved.
pub(crate) async fn requeue_in(
    tx: &Transaction<'_>,
    keys: &ConnectionKeys,
    seqs: &[Seq],
) -> Result<usize, StoreError> {
    let changes = tx.object_store(CHANGES).map_err(store_error)?;
    let dead = tx.object_store(DEAD).map_err(store_error)?;
    let state = tx.object_store(STATE).map_err(store_error)?;
    let reads = seqs
        .iter()
        .map(|seq| dead.get::<JsValue, _, _>(seq_key(*seq)).primitive())
        .collect::<Result<Vec<_>, _>>()
        .map_err(store_error)?;
    let mut requeued = 0;
    let mut added = 0u64;
    for (seq, read) in seqs.iter().zip(reads) {
        let Some(value) = read.await.map_err(store_error)? else {
            continue;
        };
        let letter: DeadLetter = parse(&value)?;
        let Some(entry) = letter.requeue() else {
            continue;
        };
        let captured = Captured {
            id: entry.change.id(),
            captured_at: entry.change.captured_at(),
            data: entry.change.data().clone(),
        };
        added += captured.data.weight() as u64;
        dead.delete(seq_key(*seq))
            .primitive()
            .map_err(store_error)?;
        changes
            .put(json(&captured)?)
            .with_key(seq_key(*seq))
            .primitive()
            .map_err(store_error)?;
        requeued += 1;
    }
    crate::pending_bytes::add(state.as_sys(), keys, added as f64)?;
    Ok(requeued)
}

/// Deletes the dead letters of `seqs` within `tx` (over the dead letters store); gives
/// how many it deleted.
pub(crate) async fn discard_in(tx: &Transaction<'_>, seqs: &[Seq]) -> Result<usize, StoreError> {
    let dead = tx.object_store(DEAD).map_err(store_error)?;
    let counts = seqs
        .iter()
        .map(|seq| dead.count().with_query(seq_key(*seq)).primitive())
        .collect::<Result<Vec<_>, _>>()
        .map_err(store_error)?;
    let mut deleted = 0;
    for (seq, count) in seqs.iter().zip(counts) {
        if count.await.map_err(store_error)? > 0 {
            dead.delete(seq_key(*seq))
                .primitive()
                .map_err(store_error)?;
            deleted += 1;
        }
    }
    Ok(deleted)
}
