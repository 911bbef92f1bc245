//! When the marker log's rows are merged, decided from their keys alone.

use std::cell::Cell;
use std::rc::Rc;

use headwater_core::store::StoreError;
use wasm_bindgen::{JsCast, JsValue};

use super::FRESH;

/// This many rows in one size class are merged into one.
pub(crate) const MERGE_FANOUT: usize = 4;

/// While changes are being delivered, indexed rows are merged only past this many.
pub(crate) const MAX_ROWS_WHILE_BUSY: usize = 64;

/// While changes are being delivered, fresh rows are indexed only past this many rows
/// or [`MAX_FRESH_ENTRIES`] entries: the bound on what a lookup scans.
pub(crate) const MAX_FRESH_ROWS: usize = 256;

/// See [`MAX_FRESH_ROWS`].
pub(crate) const MAX_FRESH_ENTRIES: usize = 16_384;

/// This connection wrote this many fresh rows, or [`CHECK_EVERY_ENTRIES`] entries,
/// since it last read the log's keys: read them again with the next claim. (Reading them
/// with every claim was one request more for each; the bounds above are passed by at
/// most this much of this connection's writing, and other connections' rows are
/// counted at the next read.)
pub(crate) const CHECK_EVERY_ROWS: usize = 32;

/// See [`CHECK_EVERY_ROWS`].
pub(crate) const CHECK_EVERY_ENTRIES: usize = 4096;

/// What one connection (all clones of its store) wrote to the log since it last read
/// the log's keys, to tell when a claim should read them.
#[derive(Debug, Clone)]
pub(crate) struct LogWatch(Rc<Cell<(usize, usize)>>);

impl LogWatch {
    /// A watch that knows nothing yet: the first claim reads the keys.
    pub(crate) fn new() -> Self {
        Self(Rc::new(Cell::new((CHECK_EVERY_ROWS, 0))))
    }

    /// Notes a fresh row of `entries` entries (written, or about to be).
    pub(crate) fn wrote(&self, entries: usize) {
        let (rows, written) = self.0.get();
        self.0
            .set((rows.saturating_add(1), written.saturating_add(entries)));
    }

    /// Whether the next claim should read the log's keys.
    pub(crate) fn due(&self) -> bool {
        let (rows, entries) = self.0.get();
        rows >= CHECK_EVERY_ROWS || entries >= CHECK_EVERY_ENTRIES
    }

    /// Notes that the keys were read.
    pub(crate) fn read(&self) {
        self.0.set((0, 0));
    }
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
        let mut log = Self::default();
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
    fn the_log_is_read_first_and_then_after_enough_was_written() {
        let watch = LogWatch::new();
        assert!(watch.due(), "nothing known yet");
        watch.read();
        assert!(!watch.due());
        for _ in 1..CHECK_EVERY_ROWS {
            watch.wrote(1);
        }
        assert!(!watch.due());
        watch.wrote(1);
        assert!(watch.due(), "rows");
        watch.read();
        watch.wrote(CHECK_EVERY_ENTRIES);
        assert!(watch.due(), "entries");
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
