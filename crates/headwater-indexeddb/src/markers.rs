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
//! connection, n]` → the entries back to back in one string, which the index does not
//! see. A lookup reads the fresh rows (bounded: [`MAX_FRESH_ROWS`] rows,
//! [`MAX_FRESH_ENTRIES`] entries) and takes out of JavaScript only those that contain
//! the record. When the outbox is idle (a claim that finds nothing to send), or once the
//! fresh rows pass their bounds, the lease holder merges all of them into one *indexed*
//! row, in a transaction of its own over the log alone, so that captures, claims and
//! status reads are not held up by it: indexing 10,000 entries took 110–170 ms here,
//! after the sync instead of within it.
//!
//! An indexed row is `{"m": [entry, …]}` under the key `[entries, connection, n]`: its
//! number of entries (so that merging can choose rows from their keys alone), a random
//! number drawn when the connection opened, and that connection's count of rows, so that
//! a row is written without reading anything first. An entry is a string: the record
//! (`<bytes>:<collection><bytes>:<key>`, lengths in UTF-8 bytes, so no record's part is
//! the start of another's, and entries are self-delimiting) then the seq and the
//! acknowledgement time in microseconds, 14 lowercase hex digits each, so that entries
//! of one record sort by seq. The multiEntry index `by_record` holds every entry of the
//! indexed rows; the last one from the record's part up to the record's part followed by
//! `g` (above every hex digit) is the indexed marker. (Strings, not arrays `[collection,
//! key, seq, time]`: measured, an array key cost twice as much to write.)
//! Older entries for a record stay until their row is merged away: indexed rows of
//! similar size are merged (keeping the highest entry per record) once
//! [`MERGE_FANOUT`] of them exist, so the log holds a few rows per size class and each
//! entry is rewritten about once per class it passes through. Since a lookup takes the
//! highest entry, which rows are merged never changes an answer. Merging costs as much
//! per entry as writing, so it waits until the outbox is idle, unless the log passes
//! [`MAX_ROWS_WHILE_BUSY`] indexed rows: draining a backlog is not slowed by it.

use chrono::{DateTime, Utc};
use headwater_core::model::{Seq, SyncMarker};
use headwater_core::store::{MarkerUpdate, StoreError};
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};

use crate::layout::ConnectionKeys;
use crate::request::js_error;

/// This many rows in one size class are merged into one.
pub(crate) const MERGE_FANOUT: usize = 4;

/// While changes are being delivered, indexed rows are merged only past this many.
pub(crate) const MAX_ROWS_WHILE_BUSY: usize = 64;

/// While changes are being delivered, fresh rows are indexed only past this many rows
/// or [`MAX_FRESH_ENTRIES`] entries: the bound on what a lookup scans.
pub(crate) const MAX_FRESH_ROWS: usize = 256;

/// See [`MAX_FRESH_ROWS`].
pub(crate) const MAX_FRESH_ENTRIES: usize = 16_384;

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

/// The log's rows by key and number of entries, as `getAllKeys` gives them: indexed
/// rows and fresh ones apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogRows<K> {
    rows: Vec<(K, usize)>,
    fresh: Vec<(K, usize)>,
}

impl LogRows<JsValue> {
    /// The rows of a `getAllKeys` result on the log.
    pub(crate) fn of_keys(keys: &JsValue) -> Result<Self, StoreError> {
        let keys: js_sys::Array = keys
            .clone()
            .dyn_into()
            .map_err(|value| StoreError::backend(format!("getAllKeys gave {value:?}")))?;
        let mut log = LogRows::default();
        for key in keys.iter() {
            // A key of another shape (damage, or a later version's kind of row) is left
            // alone: neither merged nor counted, and no reason to fail a claim.
            let Some(parts) = key.dyn_ref::<js_sys::Array>() else {
                continue;
            };
            let first = parts.get(0);
            let (rows, entries) = if first.as_string().as_deref() == Some(FRESH) {
                (&mut log.fresh, parts.get(1).as_f64())
            } else {
                (&mut log.rows, first.as_f64())
            };
            if let Some(entries) = entries {
                rows.push((key, entries.max(0.0) as usize));
            }
        }
        Ok(log)
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

/// The length of the entry that `text` starts with, read from its record part's
/// lengths: entries are self-delimiting, so a fresh row holds them back to back.
fn entry_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at = 0;
    for _ in 0..2 {
        let digits = bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || digits > 10 || bytes.get(at + digits) != Some(&b':') {
            return None;
        }
        let len: usize = text[at..at + digits].parse().ok()?;
        at = (at + digits + 1).checked_add(len)?;
        if !text.is_char_boundary(at) {
            return None;
        }
    }
    let end = at.checked_add(2 * NUMBER_DIGITS)?;
    text.is_char_boundary(end).then_some(end)
}

/// The entries of a fresh row's text.
fn entries_in(text: &str) -> Result<Vec<&str>, StoreError> {
    let mut entries = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let len = entry_len(rest).ok_or_else(|| {
            StoreError::backend(format!("a fresh sync marker row is malformed at {rest:?}"))
        })?;
        let (entry, tail) = rest.split_at(len);
        entries.push(entry);
        rest = tail;
    }
    Ok(entries)
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
    /// The rows to merge next. First the fresh rows, all of them into one indexed row:
    /// when `idle`, or once they pass [`MAX_FRESH_ROWS`] or [`MAX_FRESH_ENTRIES`]. Then
    /// the first size class of indexed rows that has [`MERGE_FANOUT`] rows; unless
    /// `idle`, only once there are more than [`MAX_ROWS_WHILE_BUSY`] of them.
    pub(crate) fn due_merge(&self, idle: bool) -> Option<Vec<K>> {
        let fresh_entries: usize = self.fresh.iter().map(|(_, n)| n).sum();
        if !self.fresh.is_empty()
            && (idle || self.fresh.len() > MAX_FRESH_ROWS || fresh_entries > MAX_FRESH_ENTRIES)
        {
            return Some(self.fresh.iter().map(|(key, _)| key.clone()).collect());
        }
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
            Some(text) => Ok(RowText::Fresh(text)),
            None => row_of(value).map(RowText::Indexed),
        }
    }

    fn entries(&self) -> Result<Vec<&str>, StoreError> {
        match self {
            RowText::Fresh(text) => entries_in(text),
            RowText::Indexed(row) => Ok(row.m.iter().map(String::as_str).collect()),
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
            fresh: Vec::new(),
        }
    }

    fn with_fresh(mut log: LogRows<u64>, sizes: &[usize]) -> LogRows<u64> {
        log.fresh = sizes
            .iter()
            .enumerate()
            .map(|(i, n)| (1000 + i as u64, *n))
            .collect();
        log
    }

    #[wasm_bindgen_test]
    fn fresh_rows_are_indexed_when_idle_or_past_their_bound() {
        let log = with_fresh(rows(&[100, 100, 100, 100]), &[100, 200]);
        assert_eq!(log.due_merge(false), None, "busy, under the bound");
        assert_eq!(
            log.due_merge(true),
            Some(vec![1000, 1001]),
            "fresh rows first"
        );
        let many = with_fresh(rows(&[]), &vec![1; MAX_FRESH_ROWS + 1]);
        assert_eq!(
            many.due_merge(false).map(|rows| rows.len()),
            Some(MAX_FRESH_ROWS + 1)
        );
        let large = with_fresh(rows(&[]), &[MAX_FRESH_ENTRIES, 1]);
        assert_eq!(large.due_merge(false), Some(vec![1000, 1001]));
        let at_bound = with_fresh(rows(&[]), &[MAX_FRESH_ENTRIES]);
        assert_eq!(at_bound.due_merge(false), None);
    }

    #[wasm_bindgen_test]
    fn a_fresh_row_reads_back_entry_by_entry() {
        let at = DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap();
        let entries = [
            entry("todos", "1", Seq(3), at),
            entry("t", "a:1é\n", Seq(4), at),
            entry("", "", Seq(5), at),
            entry("todos", "12", Seq(6), at),
        ];
        let text: String = entries.concat();
        assert_eq!(entries_in(&text).unwrap(), entries.to_vec());
        assert_eq!(entries_in("").unwrap(), Vec::<&str>::new());
        for damaged in [
            &text[..text.len() - 1],
            "x",
            "5:todos",
            "99999999999:a",
            "1:é",
        ] {
            assert!(entries_in(damaged).is_err(), "{damaged:?}");
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
