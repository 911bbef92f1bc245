//! A sync marker entry: one string per record, `<bytes>:<collection><bytes>:<key>`
//! (lengths in UTF-8 bytes, so no record's part is the start of another's, and entries
//! are self-delimiting) then the seq and the acknowledgement time in microseconds, 14
//! lowercase hex digits each, so that entries of one record sort by seq.

use chrono::{DateTime, Utc};
use headwater_core::model::{Seq, SyncMarker};
use headwater_core::store::StoreError;

/// Hex digits of the seq and of the time in an entry (2^53 and the year 4000 fit).
pub(super) const NUMBER_DIGITS: usize = 14;

/// The part of an entry that names the record.
pub(super) fn record_part(collection: &str, key: &str) -> String {
    format!("{}:{collection}{}:{key}", collection.len(), key.len())
}

pub(super) fn entry(collection: &str, key: &str, seq: Seq, at: DateTime<Utc>) -> String {
    let micros = at.timestamp_micros().max(0) as u64;
    format!(
        "{}{:0width$x}{micros:0width$x}",
        record_part(collection, key),
        seq.get(),
        width = NUMBER_DIGITS
    )
}

/// An entry's record part and its numbers (which sort as the entry does).
pub(super) fn split(entry: &str) -> Result<(&str, &str), StoreError> {
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
pub(super) fn entries_in(text: &str) -> Result<Vec<&str>, StoreError> {
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

pub(super) fn marker_of(entry: &str) -> Result<SyncMarker, StoreError> {
    let (_, numbers) = split(entry)?;
    let malformed = || StoreError::backend(format!("a sync marker entry is malformed: {entry:?}"));
    let (seq, micros) = numbers.split_at(NUMBER_DIGITS);
    let seq = u64::from_str_radix(seq, 16).map_err(|_| malformed())?;
    let micros = i64::from_str_radix(micros, 16).map_err(|_| malformed())?;
    Ok(SyncMarker {
        last_acked_seq: Seq::new(seq).ok_or_else(malformed)?,
        acked_at: DateTime::from_timestamp_micros(micros).ok_or_else(malformed)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

    wasm_bindgen_test_configure!(run_in_browser);

    #[wasm_bindgen_test]
    fn a_fresh_row_reads_back_entry_by_entry() {
        let at = DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap();
        let entries = [
            entry("todos", "1", Seq::new(3).unwrap(), at),
            entry("t", "a:1é\n", Seq::new(4).unwrap(), at),
            entry("", "", Seq::new(5).unwrap(), at),
            entry("todos", "12", Seq::new(6).unwrap(), at),
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
    fn entries_name_one_record_each_and_sort_by_seq() {
        let at = DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap();
        let one = entry("todos", "1", Seq::new(9).unwrap(), at);
        let marker = marker_of(&one).unwrap();
        assert_eq!(
            (marker.last_acked_seq, marker.acked_at),
            (Seq::new(9).unwrap(), at)
        );
        assert!(
            entry("todos", "1", Seq::new(10).unwrap(), at) > one,
            "a later seq sorts after"
        );
        assert!(
            entry(
                "todos",
                "1",
                Seq::new(9).unwrap(),
                at + chrono::TimeDelta::seconds(1)
            ) > one
        );
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
        let accented = entry("", "é", Seq::new(1).unwrap(), at);
        let (record, _) = split(&accented).unwrap();
        assert_eq!(record, record_part("", "é"));
        assert!(split("short").is_err());
        assert!(marker_of(&format!("1:a1:b{}", "z".repeat(28))).is_err());
    }
}
