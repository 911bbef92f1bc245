//! Sync markers as a log: each acknowledgement writes one row holding every marker it
//! moves, and a multiEntry index over the rows answers "the highest acknowledged seq of
//! this record".
//!
//! Why not a row per record: in Chromium every IndexedDB request costs ~150 µs on these
//! machines (measured: 800 puts of small values in one relaxed transaction, 130–190 µs
//! each), while an index entry written inside one request costs ~15–35 µs. A row per
//! record made the marker writes four fifths of an acknowledgement's cost.
//!
//! A row is `{"m": [entry, …]}` under the key `[entries, connection, n]`: its number of
//! entries (so that merging can choose rows from their keys alone), a random number
//! drawn when the connection opened, and that connection's count of rows, so that an
//! acknowledgement writes its row without reading anything first. An entry is a
//! string: the record (`<bytes>:<collection><bytes>:<key>`, lengths in UTF-8 bytes, so
//! no record's part is the start of another's) then the seq and the acknowledgement
//! time in microseconds, 14 lowercase hex digits each, so that entries of one record
//! sort by seq. The multiEntry index `by_record` holds every entry; the last one from
//! the record's part up to the record's part followed by `g` (above every hex digit) is
//! the marker, so a lookup never reads a row. (Strings, not arrays `[collection, key,
//! seq, time]`: measured, an array key cost twice as much to write.)
//! Older entries for a record stay until their row is merged away: rows of similar size
//! are merged (keeping the highest entry per record) once [`MERGE_FANOUT`] of them
//! exist, so the log holds a few rows per size class and each entry is rewritten about
//! once per class it passes through. Since a lookup takes the highest entry, which rows
//! are merged never changes an answer. Merging costs as much per entry as writing, so
//! it waits until the outbox is idle (a claim that finds nothing to send), unless the
//! log passes [`MAX_ROWS_WHILE_BUSY`] rows: draining a backlog is not slowed by it.

use chrono::{DateTime, Utc};
use headwater_core::model::{Seq, SyncMarker};
use headwater_core::store::{MarkerUpdate, StoreError};
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};

use crate::layout::ConnectionKeys;
use crate::request::js_error;

/// This many rows in one size class are merged into one.
pub(crate) const MERGE_FANOUT: usize = 4;

/// While changes are being delivered, rows are merged only past this many.
pub(crate) const MAX_ROWS_WHILE_BUSY: usize = 64;

fn row_key(keys: &ConnectionKeys, entries: usize) -> JsValue {
    let (connection, n) = keys.next();
    js_sys::Array::of3(
        &JsValue::from_f64(entries as f64),
        &JsValue::from_f64(connection),
        &JsValue::from_f64(n),
    )
    .into()
}

/// The log's rows by key and number of entries, as `getAllKeys` gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogRows<K> {
    rows: Vec<(K, usize)>,
}

impl LogRows<JsValue> {
    /// The rows of a `getAllKeys` result on the log.
    pub(crate) fn of_keys(keys: &JsValue) -> Result<Self, StoreError> {
        let keys: js_sys::Array = keys
            .clone()
            .dyn_into()
            .map_err(|value| StoreError::backend(format!("getAllKeys gave {value:?}")))?;
        let rows = keys
            .iter()
            .map(|key| {
                let entries = key
                    .dyn_ref::<js_sys::Array>()
                    .and_then(|key| key.get(0).as_f64())
                    .ok_or_else(|| {
                        StoreError::backend(format!("a sync marker log key is malformed: {key:?}"))
                    })?;
                Ok((key, entries.max(0.0) as usize))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(LogRows { rows })
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Row {
    m: Vec<String>,
}

/// Hex digits of the seq and of the time in an entry (2^53 and the year 4000 fit).
const NUMBER_DIGITS: usize = 14;

/// The part of an entry that names the record.
fn record_part(collection: &str, key: &str) -> String {
    format!("{}:{collection}{}:{key}", collection.len(), key.len())
}

fn entry(collection: &str, key: &str, seq: Seq, at: DateTime<Utc>) -> String {
    let micros = at.timestamp_micros().max(0) as u64;
    format!(
        "{}{:0width$x}{micros:0width$x}",
        record_part(collection, key),
        seq.0,
        width = NUMBER_DIGITS
    )
}

/// An entry's record part and its numbers (which sort as the entry does).
fn split(entry: &str) -> Result<(&str, &str), StoreError> {
    entry
        .len()
        .checked_sub(2 * NUMBER_DIGITS)
        .filter(|at| entry.is_char_boundary(*at))
        .map(|at| entry.split_at(at))
        .ok_or_else(|| StoreError::backend(format!("a sync marker entry is malformed: {entry:?}")))
}

fn marker_of(entry: &str) -> Result<SyncMarker, StoreError> {
    let (_, numbers) = split(entry)?;
    let malformed = || StoreError::backend(format!("a sync marker entry is malformed: {entry:?}"));
    let (seq, micros) = numbers.split_at(NUMBER_DIGITS);
    let seq = u64::from_str_radix(seq, 16).map_err(|_| malformed())?;
    let micros = i64::from_str_radix(micros, 16).map_err(|_| malformed())?;
    Ok(SyncMarker {
        last_acked_seq: Seq(seq),
        acked_at: DateTime::from_timestamp_micros(micros).ok_or_else(malformed)?,
    })
}

/// A row's size class: rows of one class hold within a factor of [`MERGE_FANOUT`] as
/// many entries.
fn class(entries: usize) -> u32 {
    entries.max(1).ilog(MERGE_FANOUT)
}

impl<K: Clone> LogRows<K> {
    /// The rows to merge next: the first size class that has [`MERGE_FANOUT`] rows;
    /// unless `idle`, only once the log has more than [`MAX_ROWS_WHILE_BUSY`] rows.
    pub(crate) fn due_merge(&self, idle: bool) -> Option<Vec<K>> {
        if !idle && self.rows.len() <= MAX_ROWS_WHILE_BUSY {
            return None;
        }
        let mut classes: Vec<u32> = self.rows.iter().map(|(_, n)| class(*n)).collect();
        classes.sort_unstable();
        classes.dedup();
        classes.into_iter().find_map(|wanted| {
            let rows: Vec<K> = self
                .rows
                .iter()
                .filter(|(_, n)| class(*n) == wanted)
                .map(|(key, _)| key.clone())
                .collect();
            (rows.len() >= MERGE_FANOUT).then_some(rows)
        })
    }
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

/// Writes one row with `updates` (one per record) into `log`.
pub(crate) fn append(
    log: &web_sys::IdbObjectStore,
    keys: &ConnectionKeys,
    updates: &[MarkerUpdate],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if updates.is_empty() {
        return Ok(());
    }
    let row = Row {
        m: updates
            .iter()
            .map(|update| entry(&update.collection, &update.key, update.seq, now))
            .collect(),
    };
    log.put_with_key(&row_value(&row)?, &row_key(keys, row.m.len()))
        .map_err(js_error)?;
    Ok(())
}

/// Merges the rows `merged` (read from `log` in one wait) into one, keeping the highest
/// entry per record.
pub(crate) async fn merge(
    log: &web_sys::IdbObjectStore,
    keys: &ConnectionKeys,
    merged: &[JsValue],
) -> Result<(), StoreError> {
    let values = crate::request::get_many(log, merged).await?;
    let rows = values
        .iter()
        .filter(|value| !value.is_undefined())
        .map(row_of)
        .collect::<Result<Vec<Row>, StoreError>>()?;
    let mut latest: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for entry in rows.iter().flat_map(|row| &row.m) {
        let (record, numbers) = split(entry)?;
        let best = latest.entry(record).or_insert(numbers);
        if numbers > *best {
            *best = numbers;
        }
    }
    for key in merged {
        log.delete(key).map_err(js_error)?;
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

/// The marker of `collection`/`key` in `index` (the log's `by_record`), if any.
pub(crate) async fn lookup(
    index: &web_sys::IdbIndex,
    collection: &str,
    key: &str,
) -> Result<Option<SyncMarker>, StoreError> {
    let record = record_part(collection, key);
    let range = web_sys::IdbKeyRange::bound(
        &JsValue::from_str(&record),
        &JsValue::from_str(&format!("{record}g")),
    )
    .map_err(js_error)?;
    let request = index
        .open_key_cursor_with_range_and_direction(&range, web_sys::IdbCursorDirection::Prev)
        .map_err(js_error)?;
    let result = crate::request::wait(&request).await?;
    let Ok(cursor) = result.dyn_into::<web_sys::IdbCursor>() else {
        return Ok(None);
    };
    let entry = cursor
        .key()
        .map_err(js_error)?
        .as_string()
        .ok_or_else(|| StoreError::backend("a sync marker entry is not a string"))?;
    marker_of(&entry).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

    wasm_bindgen_test_configure!(run_in_browser);

    fn rows(sizes: &[usize]) -> LogRows<u64> {
        LogRows {
            rows: sizes
                .iter()
                .copied()
                .enumerate()
                .map(|(i, n)| (i as u64, n))
                .collect(),
        }
    }

    #[wasm_bindgen_test]
    fn rows_merge_by_size_class() {
        assert_eq!(
            rows(&[100, 100, 100, 3]).due_merge(true),
            None,
            "three of a class, one of another"
        );
        let log = rows(&[100, 100, 100, 3, 200]);
        assert_eq!(log.due_merge(true), Some(vec![0, 1, 2, 4]));
        assert_eq!(log.due_merge(false), None, "not while busy");
        assert_eq!(rows(&[3, 500]).due_merge(true), None);
    }

    #[wasm_bindgen_test]
    fn entries_name_one_record_each_and_sort_by_seq() {
        let at = DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap();
        let one = entry("todos", "1", Seq(9), at);
        let marker = marker_of(&one).unwrap();
        assert_eq!((marker.last_acked_seq, marker.acked_at), (Seq(9), at));
        assert!(
            entry("todos", "1", Seq(10), at) > one,
            "a later seq sorts after"
        );
        assert!(entry("todos", "1", Seq(9), at + chrono::TimeDelta::seconds(1)) > one);
        // No record's part starts another's, whatever the names hold.
        let records = [
            ("todos", "1"),
            ("todos", "12"),
            ("todos1", "2"),
            ("t", "odos:1"),
            ("", "é"),
        ];
        for a in records {
            for b in records {
                let (pa, pb) = (record_part(a.0, a.1), record_part(b.0, b.1));
                assert_eq!(a == b, pb.starts_with(&pa), "{a:?} {b:?}");
            }
        }
        let accented = entry("", "é", Seq(1), at);
        let (record, _) = split(&accented).unwrap();
        assert_eq!(record, record_part("", "é"));
        assert!(split("short").is_err());
        assert!(marker_of(&format!("1:a1:b{}", "z".repeat(28))).is_err());
    }

    #[wasm_bindgen_test]
    fn a_busy_log_merges_past_its_bound() {
        let full = vec![300; MAX_ROWS_WHILE_BUSY];
        assert_eq!(rows(&full).due_merge(false), None);
        let over = vec![300; MAX_ROWS_WHILE_BUSY + 1];
        assert_eq!(
            rows(&over).due_merge(false).map(|merged| merged.len()),
            Some(MAX_ROWS_WHILE_BUSY + 1)
        );
    }
}
