//! Reading the outbox's entries: changes after a seq with their retry state, read in
//! one go and decoded (a row that does not decode is given back as unreadable, for
//! quarantine, not as an error).

use headwater_core::model::{Captured, Change, Delivery, OutboxEntry, Seq, UnreadableEntry};
use headwater_core::store::{StoreError, StoredEntry};
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::transaction::Transaction;
use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;

use crate::codec::text_of;
use crate::error::store_error;
use crate::layout::{CHANGES, RETRIES};
use crate::request::{js_error, wait};

/// The seq an outbox key stands for.
pub(crate) fn key_seq(value: &JsValue) -> Result<Seq, StoreError> {
    value
        .as_f64()
        .filter(|key| key.fract() == 0.0 && *key >= 0.0)
        .and_then(|key| Seq::new(key as u64))
        .ok_or_else(|| StoreError::backend(format!("an outbox key is not a seq: {value:?}")))
}

/// The entry a changes row `raw` holds, with its retry state `retry` if it has one.
fn decode_entry(seq: Seq, raw: &str, retry: Option<&JsValue>) -> StoredEntry {
    let captured: Captured = match serde_json::from_str(raw) {
        Ok(captured) => captured,
        Err(error) => {
            return Err(UnreadableEntry {
                seq,
                raw: raw.to_owned(),
                error: error.to_string(),
            });
        }
    };
    let delivery = match retry.map(text_of) {
        None => Delivery::new(),
        Some(text) => match serde_json::from_str(&text) {
            Ok(delivery) => delivery,
            Err(error) => {
                return Err(UnreadableEntry {
                    seq,
                    raw: format!("{raw} (retry state: {text})"),
                    error: error.to_string(),
                });
            }
        },
    };
    Ok(OutboxEntry {
        change: Change::new(seq, captured),
        delivery,
    })
}

/// A read of up to `limit` changes after a seq with their retry state, issued as three
/// requests at once: the changes' keys and values, and the retries' keys (the first
/// `limit` retries after the seq include every one of the changes read, as retries are
/// kept only for changes in the outbox). The retries' values are asked for only if there
/// are any, which is seldom: every request costs the browser's database process a few
/// tasks, whatever it finds.
pub(crate) struct PendingRead {
    requests: Option<Requests>,
}

/// The requests of a [`PendingRead`] that asks for anything.
struct Requests {
    keys: web_sys::IdbRequest,
    values: web_sys::IdbRequest,
    retry_keys: web_sys::IdbRequest,
    retries: web_sys::IdbObjectStore,
    range: JsValue,
    limit: u32,
}

impl PendingRead {
    /// Issues the read within `tx` (which covers the changes and retries stores).
    pub(crate) fn issue(
        tx: &Transaction<'_>,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Self, StoreError> {
        if limit == 0 {
            return Ok(Self { requests: None });
        }
        let changes = tx.object_store(CHANGES).map_err(store_error)?;
        let retries = tx.object_store(RETRIES).map_err(store_error)?;
        let (changes, retries) = (changes.as_sys(), retries.as_sys().clone());
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let range: JsValue = web_sys::IdbKeyRange::lower_bound_with_open(
            &JsValue::from_f64(after.map_or(0.0, |seq| seq.get() as f64)),
            true,
        )
        .map_err(js_error)?
        .into();
        Ok(Self {
            requests: Some(Requests {
                keys: changes
                    .get_all_keys_with_key_and_limit(&range, limit)
                    .map_err(js_error)?,
                values: changes
                    .get_all_with_key_and_limit(&range, limit)
                    .map_err(js_error)?,
                retry_keys: retries
                    .get_all_keys_with_key_and_limit(&range, limit)
                    .map_err(js_error)?,
                retries,
                range,
                limit,
            }),
        })
    }

    /// Whether the read asks for nothing (its limit is 0), so that waiting for it
    /// waits for none of the requests issued before it.
    pub(crate) fn is_empty(&self) -> bool {
        self.requests.is_none()
    }

    /// Waits for the read (and so for every request issued before it) and decodes it.
    pub(crate) async fn finish(self) -> Result<Vec<StoredEntry>, StoreError> {
        let Some(requests) = self.requests else {
            return Ok(Vec::new());
        };
        let array = |value: JsValue| -> Result<js_sys::Array, StoreError> {
            value
                .dyn_into::<js_sys::Array>()
                .map_err(|value| StoreError::backend(format!("getAll gave {value:?}")))
        };
        let retry_keys = array(wait(&requests.retry_keys).await?)?;
        let keys = array(requests.keys.result().map_err(js_error)?)?;
        let values = array(requests.values.result().map_err(js_error)?)?;
        let mut retry_of = std::collections::HashMap::new();
        if retry_keys.length() > 0 {
            let retry_values = requests
                .retries
                .get_all_with_key_and_limit(&requests.range, requests.limit)
                .map_err(js_error)?;
            // The transaction holds the retries store since its keys were read: the
            // values come in the same order.
            let retry_values = array(wait(&retry_values).await?)?;
            for (key, value) in retry_keys.iter().zip(retry_values.iter()) {
                retry_of.insert(key_seq(&key)?.get(), value);
            }
        }
        let texts = texts_of(&values);
        keys.iter()
            .zip(texts.iter())
            .map(|(key, raw)| {
                let seq = key_seq(&key)?;
                Ok(decode_entry(seq, raw, retry_of.get(&seq.get())))
            })
            .collect()
    }
}

/// The stored texts of `values`, taken out of JavaScript in one piece: joined with
/// newlines (which JSON text never holds unescaped) and split again here, since a
/// crossing per value cost about a fifth of a claim. A row whose text holds a newline
/// (damaged, or not headwater's) makes the pieces miscount, and then each is taken
/// alone.
fn texts_of(values: &js_sys::Array) -> Vec<String> {
    let joined: String = values.join("\n").into();
    let pieces: Vec<&str> = joined.split('\n').collect();
    if pieces.len() == values.length() as usize {
        return pieces.into_iter().map(str::to_owned).collect();
    }
    values.iter().map(|value| text_of(&value)).collect()
}

/// A row's seq and the bytes it counts for (none if it does not decode: it leaves the
/// outbox as a quarantined row, which counts nothing).
pub(crate) fn weighed(entry: &StoredEntry) -> (Seq, u64) {
    match entry {
        Ok(entry) => (entry.change.seq(), entry.change.data().weight() as u64),
        Err(unreadable) => (unreadable.seq, 0),
    }
}

/// A row's seq, whether or not it decodes.
pub(crate) fn entry_seq(entry: &StoredEntry) -> Seq {
    match entry {
        Ok(entry) => entry.change.seq(),
        Err(unreadable) => unreadable.seq,
    }
}

/// Reads up to `limit` changes after `after` with their retry state, within `tx`.
pub(crate) async fn read_in(
    tx: &Transaction<'_>,
    after: Option<Seq>,
    limit: usize,
) -> Result<Vec<StoredEntry>, StoreError> {
    PendingRead::issue(tx, after, limit)?.finish().await
}
