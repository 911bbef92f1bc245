//! Appending captured changes inside a transaction without waiting for their seqs.
//!
//! The key generator gives each change its seq, which the add requests return. Waiting
//! for them before the commit cost a round trip to the browser's database process on
//! every capture; instead the adds are issued, the transaction commits, and the seqs are
//! read from the finished requests. The wait is kept where it matters: a seq may not pass
//! [`MAX_SEQ`] (2^53 - 1), and IndexedDB's generator would give one more, 2^53, before it
//! fails, so a capture that could reach the end waits for its seqs and aborts if the end is
//! passed. "Could reach" means: this connection has not yet seen a seq (its first
//! capture), or the highest it saw is within [`SEQ_MARGIN`] of the end. Passing the end
//! unseen would take more than 2^40 changes appended by other tabs between two of this
//! connection's transactions: at IndexedDB's pace, years of nothing but writing.

use std::cell::Cell;
use std::rc::Rc;

use headwater_core::model::{Captured, Change, MAX_SEQ, Seq};
use headwater_core::store::StoreError;
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::transaction::Transaction;
use wasm_bindgen::JsValue;

use crate::error::store_error;
use crate::layout::CHANGES;
use crate::request::{failure, js_error, wait};

/// How far below [`MAX_SEQ`] the highest seq seen must be for a capture not to wait.
pub(crate) const SEQ_MARGIN: u64 = 1 << 40;

/// The highest seq one connection has seen (appended, claimed or counted), shared by
/// the clones of a store.
#[derive(Debug, Clone, Default)]
pub(crate) struct SeenSeq(Rc<Cell<Option<u64>>>);

impl SeenSeq {
    /// Notes that `seq` exists.
    pub(crate) fn saw(&self, seq: u64) {
        self.0
            .set(Some(self.0.get().map_or(seq, |seen| seen.max(seq))));
    }

    fn far_from_the_end(&self) -> bool {
        self.0.get().is_some_and(|seen| seen < MAX_SEQ - SEQ_MARGIN)
    }
}

/// Changes added in a transaction that has not finished; [`finish`](Self::finish) once
/// it has committed.
#[derive(Debug, Default)]
pub(crate) struct Appending {
    adds: Vec<(web_sys::IdbRequest, Captured)>,
}

impl Appending {
    /// The stored changes, with their seqs, once the transaction has committed.
    pub(crate) fn finish(self, seen: &SeenSeq) -> Result<Vec<Change>, StoreError> {
        let stored = self
            .adds
            .into_iter()
            .map(|(add, item)| {
                Ok(Change::new(
                    Seq::new(key_number(&add)?).ok_or(StoreError::SeqExhausted)?,
                    item,
                ))
            })
            .collect::<Result<Vec<Change>, StoreError>>()?;
        if let Some(last) = stored.last() {
            seen.saw(last.seq().get());
        }
        Ok(stored)
    }

    /// Why the transaction failed, if one of the adds says so (a commit that fails
    /// because a request did reports only that it was aborted).
    pub(crate) fn failure(&self) -> Option<StoreError> {
        self.adds.iter().find_map(|(add, _)| {
            failure(add).filter(|error| !error.describe().contains("AbortError"))
        })
    }

    /// Adds the changes of `other` (a second append in one transaction).
    pub(crate) fn extend(&mut self, other: Self) {
        self.adds.extend(other.adds);
    }
}

fn key_number(add: &web_sys::IdbRequest) -> Result<u64, StoreError> {
    let key = add.result().map_err(js_error)?;
    key.as_f64()
        .filter(|key| key.fract() == 0.0 && *key >= 1.0)
        .map(|key| key as u64)
        .ok_or_else(|| StoreError::backend(format!("an outbox key is not a seq: {key:?}")))
}

/// Adds `captured` within `tx` (which covers the changes store; the byte count weighs
/// them later, see crate::pending_bytes).
pub(crate) async fn append_in(
    tx: &Transaction<'_>,
    seen: &SeenSeq,
    captured: Vec<Captured>,
) -> Result<Appending, StoreError> {
    let changes = tx.object_store(CHANGES).map_err(store_error)?;
    let appending = add_all(changes.as_sys(), captured)?;
    guard_the_end(tx.as_sys(), seen, &appending).await?;
    Ok(appending)
}

/// Issues one add per change on `changes` at once, without waiting for any.
pub(crate) fn add_all(
    changes: &web_sys::IdbObjectStore,
    captured: Vec<Captured>,
) -> Result<Appending, StoreError> {
    let mut adds = Vec::with_capacity(captured.len());
    for item in captured {
        let text = serde_json::to_string(&item).map_err(crate::error::unstorable)?;
        let add = changes.add(&JsValue::from_str(&text)).map_err(js_error)?;
        adds.push((add, item));
    }
    Ok(Appending { adds })
}

/// Near the end of the seqs (or before this connection has seen one), waits for the
/// last add's seq and aborts `tx` if it passed [`MAX_SEQ`].
pub(crate) async fn guard_the_end(
    tx: &web_sys::IdbTransaction,
    seen: &SeenSeq,
    appending: &Appending,
) -> Result<(), StoreError> {
    if seen.far_from_the_end() {
        return Ok(());
    }
    if let Some((last, _)) = appending.adds.last() {
        if let Err(error) = wait(last).await {
            return Err(appending.failure().unwrap_or(error));
        }
        if key_number(last)? > MAX_SEQ {
            let _ = tx.abort();
            return Err(StoreError::SeqExhausted);
        }
    }
    Ok(())
}
