//! Sync markers as a log: each acknowledgement writes one row holding every marker it
//! moves; lookups read a multiEntry index over the older rows and scan the newest.
//!
//! Why not a row per record: in Chromium every IndexedDB request costs ~150 µs on these
//! machines (measured: 800 puts of small values in one relaxed transaction, 130–190 µs
//! each), while an index entry written inside one request costs ~15–35 µs. A row per
//! record made the marker writes four fifths of an acknowledgement's cost.
//!
//! Why the newest rows are not indexed: in the running browser benchmark the index
//! entries were still a fifth of the sync's time (the same page synced 22 % faster
//! without them). So an acknowledgement writes a *fresh* row, `["fresh", entries,
//! connection, n]` → its [`entry`](mod@entry) strings back to back in one string,
//! which the index does not see. A lookup reads the fresh rows (bounded:
//! [`MAX_FRESH_ROWS`](rows::MAX_FRESH_ROWS) rows,
//! [`MAX_FRESH_ENTRIES`](rows::MAX_FRESH_ENTRIES) entries) and takes out of JavaScript
//! only those that contain the record. When the outbox is idle (a claim that finds
//! nothing to send), or once the fresh rows pass their bounds, the lease holder merges
//! all of them into one *indexed* row, in a transaction of its own over the log alone,
//! so that captures, claims and status reads are not held up by it: indexing 10,000
//! entries took 110–170 ms here, after the sync instead of within it. A busy claim reads
//! the log's keys to check the bounds only every [`CHECK_EVERY_ROWS`](rows::CHECK_EVERY_ROWS)
//! rows this connection wrote (see [`LogWatch`]).
//!
//! An indexed row is `{"m": [entry, …]}` under the key `[entries, connection, n]`: its
//! number of entries (so that merging can choose rows from their keys alone, see
//! [`rows`]), a random number drawn when the connection opened, and that connection's
//! count of rows, so that a row is written without reading anything first. The
//! multiEntry index `by_record` holds every entry of the indexed rows; the last one
//! from the record's part up to the record's part followed by `g` (above every hex
//! digit) is the indexed marker. (Strings, not arrays `[collection, key, seq, time]`:
//! measured, an array key cost twice as much to write.)
//!
//! Older entries for a record stay until their row is merged away: indexed rows of
//! similar size are merged (keeping the highest entry per record) once
//! [`MERGE_FANOUT`](rows::MERGE_FANOUT) of them exist, so the log holds a few rows per
//! size class and each entry is rewritten about once per class it passes through. Since
//! a lookup takes the highest entry, which rows are merged never changes an answer.
//! Merging costs as much per entry as writing, so it waits until the outbox is idle,
//! unless the log passes [`MAX_ROWS_WHILE_BUSY`](rows::MAX_ROWS_WHILE_BUSY) indexed
//! rows: draining a backlog is not slowed by it. A row that does not read back is left
//! out of merges.

mod entry;
mod rows;

use chrono::{DateTime, Utc};
use headwater_core::model::SyncMarker;
use headwater_core::store::{MarkerUpdate, StoreError};
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};

use crate::layout::ConnectionKeys;
use crate::request::js_error;
use entry::{entries_in, entry, marker_of, record_part, split};
pub(crate) use rows::{LogRows, LogWatch};

fn row_key(keys: &ConnectionKeys, entries: usize) -> JsValue {
    let (connection, n) = keys.next();
    js_sys::Array::of3(
        &JsValue::from_f64(entries as f64),
        &JsValue::from_f64(connection),
        &JsValue::from_f64(n),
    )
    .into()
}

/// The first element of a fresh row's key. Strings sort after numbers, so every fresh
/// row sorts after every indexed one, and one key range holds them all.
const FRESH: &str = "fresh";

/// A fresh row's key: `["fresh", entries, connection, n]`.
fn fresh_key(keys: &ConnectionKeys, entries: usize) -> JsValue {
    let (connection, n) = keys.next();
    let key = js_sys::Array::of3(
        &JsValue::from_str(FRESH),
        &JsValue::from_f64(entries as f64),
        &JsValue::from_f64(connection),
    );
    key.push(&JsValue::from_f64(n));
    key.into()
}

/// The key range that holds every fresh row (`["fresh"]` up to `["fresh\0"]`).
fn fresh_range() -> Result<web_sys::IdbKeyRange, StoreError> {
    let first: JsValue = js_sys::Array::of1(&JsValue::from_str(FRESH)).into();
    let after: JsValue = js_sys::Array::of1(&JsValue::from_str(&format!("{FRESH}\0"))).into();
    web_sys::IdbKeyRange::bound_with_lower_open_and_upper_open(&first, &after, false, true)
        .map_err(js_error)
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Row {
    m: Vec<String>,
}

fn row_value(row: &Row) -> Result<JsValue, StoreError> {
    // One JSON.parse builds the array in one crossing into JS; building it with js_sys
    // took a crossing per string.
    let text = serde_json::to_string(row).map_err(crate::error::unstorable)?;
    js_sys::JSON::parse(&text).map_err(js_error)
}

fn row_of(value: &JsValue) -> Result<Row, StoreError> {
    let text: String = js_sys::JSON::stringify(value).map_err(js_error)?.into();
    serde_json::from_str(&text).map_err(|error| {
        StoreError::backend(format!("a sync marker log row does not decode: {error}"))
    })
}

/// Writes one fresh row with `updates` (one per record) into `log`: the entries back to
/// back in one string, which the index does not see.
pub(crate) fn append(
    log: &web_sys::IdbObjectStore,
    keys: &ConnectionKeys,
    updates: &[MarkerUpdate],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if updates.is_empty() {
        return Ok(());
    }
    let text: String = updates
        .iter()
        .map(|update| entry(&update.collection, &update.key, update.seq, now))
        .collect();
    log.put_with_key(&JsValue::from_str(&text), &fresh_key(keys, updates.len()))
        .map_err(js_error)?;
    Ok(())
}

/// A row's value as text: a fresh row's string, or an indexed row's entries.
enum RowText {
    Fresh(String),
    Indexed(Row),
}

impl RowText {
    fn of(value: &JsValue) -> Result<Self, StoreError> {
        match value.as_string() {
            Some(text) => Ok(Self::Fresh(text)),
            None => row_of(value).map(RowText::Indexed),
        }
    }

    fn entries(&self) -> Result<Vec<&str>, StoreError> {
        match self {
            Self::Fresh(text) => entries_in(text),
            Self::Indexed(row) => Ok(row.m.iter().map(String::as_str).collect()),
        }
    }
}

/// Merges the rows `merged` (read from `log` in one wait) into one indexed row, keeping
/// the highest entry per record. A row that does not read back (damaged, or written by
/// something else) is left where it is: merging, and so delivery, goes on without it.
pub(crate) async fn merge(
    log: &web_sys::IdbObjectStore,
    keys: &ConnectionKeys,
    merged: &[JsValue],
) -> Result<(), StoreError> {
    let values = crate::request::get_many(log, merged).await?;
    let rows: Vec<(&JsValue, RowText)> = merged
        .iter()
        .zip(&values)
        .filter(|(_, value)| !value.is_undefined())
        .filter_map(|(key, value)| Some((key, RowText::of(value).ok()?)))
        .collect();
    let mut latest: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for (key, row) in &rows {
        let Ok(split) = row.entries().and_then(|entries| {
            entries
                .into_iter()
                .map(split)
                .collect::<Result<Vec<_>, _>>()
        }) else {
            continue;
        };
        for (record, numbers) in split {
            let best = latest.entry(record).or_insert(numbers);
            if numbers > *best {
                *best = numbers;
            }
        }
        log.delete(key).map_err(js_error)?;
    }
    if latest.is_empty() {
        // Another connection merged these rows first (or none of them reads back).
        return Ok(());
    }
    let mut row = Row {
        m: latest
            .into_iter()
            .map(|(record, numbers)| format!("{record}{numbers}"))
            .collect(),
    };
    // A stable order keeps merged rows byte-for-byte reproducible.
    row.m.sort_unstable();
    log.put_with_key(&row_value(&row)?, &row_key(keys, row.m.len()))
        .map_err(js_error)?;
    Ok(())
}

/// Writes `raw` to the log as a fresh row, and as a row under a key of no known shape,
/// as a damaged disk (or a later version) might leave them: for tests.
pub(crate) fn put_damaged(
    log: &web_sys::IdbObjectStore,
    keys: &ConnectionKeys,
    raw: &str,
) -> Result<(), StoreError> {
    let raw = JsValue::from_str(raw);
    log.put_with_key(&raw, &fresh_key(keys, 1))
        .map_err(js_error)?;
    let foreign = js_sys::Array::of2(&JsValue::from_str("a later kind"), &JsValue::from_f64(1.0));
    log.put_with_key(&raw, &foreign).map_err(js_error)?;
    Ok(())
}

/// The marker of `collection`/`key` in `log`: the highest of its entries in the index
/// `by_record` and in the fresh rows, read with one wait.
pub(crate) async fn lookup(
    log: &web_sys::IdbObjectStore,
    collection: &str,
    key: &str,
) -> Result<Option<SyncMarker>, StoreError> {
    let record = record_part(collection, key);
    let index = log.index(crate::layout::MARKER_INDEX).map_err(js_error)?;
    let range = web_sys::IdbKeyRange::bound(
        &JsValue::from_str(&record),
        &JsValue::from_str(&format!("{record}g")),
    )
    .map_err(js_error)?;
    let indexed = index
        .open_key_cursor_with_range_and_direction(&range, web_sys::IdbCursorDirection::Prev)
        .map_err(js_error)?;
    let fresh = log
        .get_all_with_key(&fresh_range()?.into())
        .map_err(js_error)?;
    crate::request::wait(&fresh).await?;
    let mut best: Option<String> = None;
    let mut consider = |entry: &str| {
        if best.as_deref().is_none_or(|best| entry > best) {
            best = Some(entry.to_owned());
        }
    };
    if let Ok(cursor) = indexed
        .result()
        .map_err(js_error)?
        .dyn_into::<web_sys::IdbCursor>()
    {
        let entry = cursor
            .key()
            .map_err(js_error)?
            .as_string()
            .ok_or_else(|| StoreError::backend("a sync marker entry is not a string"))?;
        consider(&entry);
    }
    let rows: js_sys::Array = fresh
        .result()
        .map_err(js_error)?
        .dyn_into()
        .map_err(|value| StoreError::backend(format!("getAll gave {value:?}")))?;
    for value in rows.iter() {
        // Only rows that hold the record's part somewhere are taken out of JavaScript
        // and read entry by entry.
        let Some(text) = value.dyn_ref::<js_sys::JsString>() else {
            continue;
        };
        if !text.includes(&record, 0) {
            continue;
        }
        let text = String::from(text);
        for entry in entries_in(&text)? {
            if split(entry)?.0 == record {
                consider(entry);
            }
        }
    }
    best.as_deref().map(marker_of).transpose()
}
