//! Reading changes from JSON lines, all or nothing, in bounded memory.
//!
//! The input is read twice: [`check`] reads it whole, a block of lines at a time whose
//! lines are checked on every core ([`check`'s module](check)), naming every bad line,
//! and gives its identity (a fingerprint of its bytes and its line count),
//! how many changes it holds and the [`Span`]s it cuts into; only if every line is good
//! does `send` open its state. Then delivery reads it again: a span at a time through
//! [`Input::read_span`] (a state in the lines layout), or, for a state that copies the
//! input (the outbox layout), through [`Changes`] from the first change not yet
//! captured, a chunk at a time. Neither pass holds more than a span, so a file of any
//! size is sent in the same memory. Standard input, which cannot be read twice, is
//! first copied to a temporary file.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[cfg(test)]
use headwater_core::flume::BodyShape;
use headwater_core::flume::{BatchEncoder, EventMapping};
use headwater_core::model::{
    Captured, Change, ChangeData, ChangeIdGenerator, InvalidChange, JsonText, Op, OpKind, Seq,
};
use serde::Deserialize;
use serde_json::value::RawValue;

mod check;

pub(crate) use check::check;

/// How many bad lines are shown; all are counted.
const SHOWN: usize = 20;

/// Why an input cannot be sent; each problem names its line.
#[derive(Debug, thiserror::Error)]
#[error(
    "{invalid} invalid line(s), nothing was sent{}:\n{}",
    if *invalid > problems.len() { format!(" (the first {} shown)", problems.len()) } else { String::new() },
    problems.join("\n")
)]
pub(crate) struct InvalidInput {
    /// "line N: what is wrong", for at most the first 20 problems.
    pub problems: Vec<String>,
    /// How many lines are invalid in all.
    pub invalid: usize,
}

/// Why the input cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InputError {
    /// It could not be read.
    #[error("{0}")]
    Read(String),
    /// Some lines are not changes.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
}

/// Limits a line must keep to.
pub(crate) struct LineRules<'a> {
    /// The mapping events are sent with (the event size depends on it).
    pub mapping: &'a EventMapping,
    /// The largest event, encoded, in bytes.
    pub max_event_bytes: usize,
}

/// The input as a file that can be read twice.
pub(crate) struct Input {
    path: PathBuf,
    /// What the input is called in messages.
    name: String,
    /// Standard input's copy, removed when the input is dropped.
    _spool: Option<tempfile::TempPath>,
}

impl Input {
    /// The file at `path`, or standard input (`-`) copied to a temporary file.
    pub(crate) fn open(path: &Path) -> Result<Self, InputError> {
        if path.as_os_str() != "-" {
            File::open(path).map_err(|error| {
                InputError::Read(format!("cannot read {}: {error}", path.display()))
            })?;
            return Ok(Self {
                path: path.to_path_buf(),
                name: path.display().to_string(),
                _spool: None,
            });
        }
        let read = |error: std::io::Error| {
            InputError::Read(format!("cannot read standard input: {error}"))
        };
        let mut spool = tempfile::NamedTempFile::new().map_err(|error| {
            InputError::Read(format!(
                "cannot make a temporary copy of standard input: {error}"
            ))
        })?;
        std::io::copy(&mut std::io::stdin().lock(), spool.as_file_mut()).map_err(read)?;
        let spool = spool.into_temp_path();
        Ok(Self {
            path: spool.to_path_buf(),
            name: "standard input".into(),
            _spool: Some(spool),
        })
    }

    /// What the input is called in messages.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Reads `span` again from `file` (this input, opened by [`Input::reopen`]): its
    /// bytes must be what the check read, every line that was a change still one.
    pub(crate) fn read_span(mut file: &File, span: &Span) -> Result<SpanLines, String> {
        use std::io::{Read, Seek, SeekFrom};
        let len = usize::try_from(span.len).map_err(|_| "a span too long to read".to_owned())?;
        let mut bytes = vec![0; len];
        file.seek(SeekFrom::Start(span.offset))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|error| format!("cannot read it again: {error}"))?;
        if xxhash_rust::xxh3::xxh3_64(&bytes) != span.hash {
            return Err(format!(
                "its changes {} to {} are not what was checked",
                span.first,
                span.first + u64::from(span.changes) - 1
            ));
        }
        // The bytes are the checked ones, whose every line was UTF-8: one validation
        // of the whole span stands for the check's per line.
        let text = String::from_utf8(bytes).map_err(|error| {
            format!(
                "not UTF-8 (invalid byte {} bytes into the span)",
                error.utf8_error().valid_up_to()
            )
        })?;
        let mut lines = Vec::with_capacity(span.changes as usize);
        let mut start = 0usize;
        for end in line_ends(text.as_bytes()) {
            let line = &text[start..end];
            let line = line.strip_suffix('\n').unwrap_or(line);
            let line = line.strip_suffix('\r').unwrap_or(line);
            if !line.trim().is_empty() {
                lines.push((start, start + line.len()));
            }
            start = end;
        }
        if lines.len() != span.changes as usize {
            return Err("its lines are not what was checked".into());
        }
        Ok(SpanLines { text, lines })
    }

    /// The input opened again, for [`Input::read_span`].
    pub(crate) fn reopen(&self) -> Result<File, InputError> {
        File::open(&self.path)
            .map_err(|error| InputError::Read(format!("cannot read {}: {error}", self.name)))
    }

    fn lines(&self) -> Result<RawLines, InputError> {
        let file = File::open(&self.path)
            .map_err(|error| InputError::Read(format!("cannot read {}: {error}", self.name)))?;
        Ok(RawLines {
            reader: BufReader::with_capacity(1 << 16, file),
            line: Vec::new(),
            number: 0,
        })
    }
}

/// Where each line of `bytes` ends (after its newline; the last may have none).
fn line_ends(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at >= bytes.len() {
            return None;
        }
        at = memchr::memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |newline| at + newline + 1);
        Some(at)
    })
}

/// A [`Span`] read again by [`Input::read_span`].
pub(crate) struct SpanLines {
    text: String,
    /// Each change's text (no line end), as a range of `bytes`.
    lines: Vec<(usize, usize)>,
}

impl SpanLines {
    /// The span's `index`th change (from 0), parsed.
    pub(crate) fn change(&self, index: usize) -> Result<ChangeData, String> {
        let &(start, end) = self
            .lines
            .get(index)
            .ok_or_else(|| format!("the span has no change {index}"))?;
        parse_line(&self.text[start..end])
    }
}

/// The input's lines, one buffer reused: (line number, the bytes with the newline).
struct RawLines {
    reader: BufReader<File>,
    line: Vec<u8>,
    number: usize,
}

impl RawLines {
    fn next_line(&mut self) -> std::io::Result<Option<(usize, &[u8])>> {
        self.line.clear();
        if self.reader.read_until(b'\n', &mut self.line)? == 0 {
            return Ok(None);
        }
        self.number += 1;
        Ok(Some((self.number, &self.line)))
    }
}

/// The text of a line without its line end, or why it is not text.
fn text_of(raw: &[u8]) -> Result<&str, String> {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    std::str::from_utf8(raw).map_err(|error| {
        format!(
            "not UTF-8 (invalid byte at column {})",
            error.valid_up_to() + 1
        )
    })
}

/// What [`check`] found in a valid input.
pub(crate) struct Checked {
    /// How many changes it holds (blank lines are not changes).
    pub changes: usize,
    /// Its fingerprint and line count, as the state remembers them.
    pub identity: String,
    /// The fingerprint of the input up to its `CHUNK`th change, its `2 × CHUNK`th, …,
    /// and its last: the second reading compares against them, so that a chunk edited
    /// since the check is refused before it is captured.
    pub boundaries: Vec<u64>,
    /// The input cut into spans of whole lines, each with its own fingerprint, so that
    /// a [`Span`] can be read again alone (out of order, for a retry) and still be
    /// known to hold what was checked.
    pub spans: Vec<Span>,
    /// The changes' total [`weight`](ChangeData::weight).
    pub weight: u64,
}

/// A stretch of the input holding consecutive changes: up to [`CHUNK`] of them, or
/// fewer when [`SPAN_BYTES`] is reached first; blank lines before its first change
/// belong to the span of the change before them (the first span starts at the input's
/// first byte, and the last ends at its last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    /// The number of its first change (the first in the input is 1).
    pub first: u64,
    /// How many changes it holds.
    pub changes: u32,
    /// Where its bytes start in the input.
    pub offset: u64,
    /// How many bytes it has (its last change's line end included).
    pub len: u64,
    /// XXH3 of those bytes.
    pub hash: u64,
}

/// A span closes at this many bytes even before [`CHUNK`] changes, so that reading one
/// again holds little memory whatever the lines' size (a line longer than this is a
/// span of its own).
pub(crate) const SPAN_BYTES: u64 = 1 << 20;

/// The changes between two [`Checked::boundaries`]: `send`'s capture chunk.
pub(crate) const CHUNK: usize = 1000;

/// What starts an identity written since the fingerprint is XXH3; identities without
/// it are FNV-1a's (see [`legacy_identities`]).
pub(crate) const IDENTITY_PREFIX: &str = "xxh3 ";

/// The identities earlier versions wrote for `input`, read once more: its FNV-1a
/// fingerprint with its line count, and with the count versions before 0.1's fix gave
/// (the pieces between newlines: one more than the lines of a file that ends with one).
/// Only a state written by such a version needs them, once: its identity is then
/// brought up to date.
pub(crate) fn legacy_identities(input: &Input) -> Result<[String; 2], InputError> {
    let mut lines = input.lines()?;
    let mut fnv = Fnv1a::new();
    let (mut line_count, mut newlines) = (0usize, 0usize);
    while let Some((number, raw)) = lines
        .next_line()
        .map_err(|error| InputError::Read(format!("cannot read {}: {error}", input.name)))?
    {
        fnv.update(raw);
        newlines += usize::from(raw.ends_with(b"\n"));
        line_count = number;
    }
    Ok([
        format!("{:016x} ({line_count} lines)", fnv.value()),
        format!("{:016x} ({} lines)", fnv.value(), newlines + 1),
    ])
}

/// The changes of a checked input, read again from its start, skipping the first
/// `skip` (captured by an earlier run). The input must read as it did when it was
/// checked: at every [`CHUNK`]th change, and at the last, the fingerprint of what was
/// read so far must be the check's, and a line must still parse; otherwise the input
/// changed since [`check`], which is an error (the chunk holding the change is not
/// given out).
pub(crate) struct Changes {
    lines: RawLines,
    skip: usize,
    name: String,
    boundaries: Vec<u64>,
    total: usize,
    fingerprint: Fingerprint,
    /// Changes read so far, skipped ones included.
    read: usize,
}

impl Changes {
    /// The changes of `input`, as `checked` found them, after the first `skip`.
    pub(crate) fn new(input: &Input, checked: &Checked, skip: usize) -> Result<Self, InputError> {
        Ok(Self {
            lines: input.lines()?,
            skip,
            name: input.name.clone(),
            boundaries: checked.boundaries.clone(),
            total: checked.changes,
            fingerprint: Fingerprint::new(),
            read: 0,
        })
    }

    /// Whether what was read up to the `read`th change is what the check read.
    fn as_checked(&self) -> bool {
        let boundary = if self.read.is_multiple_of(CHUNK) {
            self.boundaries.get(self.read / CHUNK - 1)
        } else if self.read == self.total {
            self.boundaries.last()
        } else {
            return true;
        };
        boundary == Some(&self.fingerprint.value())
    }

    /// Up to `count` more changes (fewer at the end of the input).
    pub(crate) fn next_chunk(&mut self, count: usize) -> Result<Vec<ChangeData>, String> {
        let mut chunk = Vec::with_capacity(count.min(1 << 16));
        while chunk.len() < count {
            let Some((number, raw)) = self
                .lines
                .next_line()
                .map_err(|error| format!("cannot read {}: {error}", self.name))?
            else {
                break;
            };
            self.fingerprint.update(raw);
            let changed = |problem: String| {
                format!("the input changed while it was being sent: line {number}: {problem}")
            };
            let text = text_of(raw).map_err(changed)?;
            if text.trim().is_empty() {
                continue;
            }
            let change = if self.skip > 0 {
                self.skip -= 1;
                None
            } else {
                Some(parse_line(text).map_err(changed)?)
            };
            self.read += 1;
            if self.read > self.total || !self.as_checked() {
                return Err(changed(
                    "its changes up to this line are not what was checked".to_owned(),
                ));
            }
            chunk.extend(change);
        }
        Ok(chunk)
    }
}

/// A stable 64-bit fingerprint (XXH3), fed a piece at a time: the same bytes give the
/// same value on every platform and version, unlike `std`'s hashers.
#[derive(Default)]
pub(crate) struct Fingerprint(Box<xxhash_rust::xxh3::Xxh3Default>);

impl Fingerprint {
    /// Nothing fed yet.
    pub(crate) fn new() -> Self {
        Self(Box::default())
    }

    /// Feeds `bytes`.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The fingerprint of everything fed.
    pub(crate) fn value(&self) -> u64 {
        self.0.digest()
    }
}

/// FNV-1a, a byte at a time: the input's fingerprint in earlier versions, and the name
/// of a default state.
pub(crate) struct Fnv1a(u64);

impl Fnv1a {
    /// Nothing fed yet.
    pub(crate) fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    /// Feeds `bytes`.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The fingerprint of everything fed.
    pub(crate) fn value(&self) -> u64 {
        self.0
    }
}

/// serde_json's message without its own "at line 1 column N" (a line is parsed alone).
fn describe(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let message = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(message, _)| message);
    if error.column() > 0 {
        format!("column {}: {message}", error.column())
    } else {
        message.to_owned()
    }
}

/// The shape a line must have, for messages.
const SHAPE: &str = r#"{"collection": ..., "key": ..., "op": ..., "value": ...}"#;

fn parse_line(raw: &str) -> Result<ChangeData, String> {
    read_line(raw)?.into_change()
}

/// A line read and checked as a change, its text borrowed from the line where it
/// needs no unescaping: the check reads every line this way and builds no change.
struct LineRef<'a> {
    collection: Cow<'a, str>,
    key: Cow<'a, str>,
    op: OpKind,
    value: Option<&'a RawValue>,
    headers: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
}

/// One line of the input, as serde reads it. The value is kept as the JSON text it is,
/// checked but not rebuilt: it becomes the event body as it was written; the names are
/// borrowed from the line unless they hold escapes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    #[serde(borrow)]
    collection: Cow<'a, str>,
    #[serde(borrow)]
    key: Cow<'a, str>,
    op: OpKind,
    #[serde(default, borrow)]
    value: Option<&'a RawValue>,
    #[serde(default, borrow)]
    headers: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
}

/// Reads `raw` as a change, with every rule [`ChangeData`] and [`Op`] hold it to.
fn read_line(raw: &str) -> Result<LineRef<'_>, String> {
    // serde would take an array positionally and a BOM as "expected value": both are
    // refused by name, so that the operator knows what to fix.
    if raw.starts_with('\u{feff}') {
        return Err(
            "the line starts with a UTF-8 byte order mark (BOM); save the input without it".into(),
        );
    }
    match raw.trim_start().chars().next() {
        Some('{') => {}
        Some('[') => {
            return Err(format!(
                "a JSON array; each line must be one object {SHAPE}"
            ));
        }
        _ => {
            return Err(format!(
                "not a JSON object; each line must be one object {SHAPE}"
            ));
        }
    }
    let line: Line<'_> = serde_json::from_str(raw).map_err(|error| describe(&error))?;
    // A JSON null is no value: serde gives `None` for it, whatever the op.
    let value = line.value;
    let invalid = match (line.op, value.is_some()) {
        (OpKind::Delete, true) => Some(InvalidChange::DeleteWithValue),
        (kind, false) if kind != OpKind::Delete => Some(InvalidChange::MissingValue(kind)),
        _ if line.collection.is_empty() => Some(InvalidChange::EmptyCollection),
        _ if line.key.is_empty() => Some(InvalidChange::EmptyKey),
        _ if line.headers.keys().any(|name| name.is_empty()) => {
            Some(InvalidChange::EmptyHeaderName)
        }
        _ => None,
    };
    if let Some(invalid) = invalid {
        return Err(invalid.to_string());
    }
    Ok(LineRef {
        collection: line.collection,
        key: line.key,
        op: line.op,
        value,
        headers: line.headers,
    })
}

impl LineRef<'_> {
    /// [`ChangeData::weight`] of the change it makes, without making it.
    fn weight(&self) -> usize {
        self.collection.len()
            + self.key.len()
            + self.value.map_or(0, |value| value.get().len())
            + self
                .headers
                .iter()
                .map(|(name, value)| name.len() + value.len())
                .sum::<usize>()
    }

    /// Refuses a header the mapping sets itself (the change's id, seq, capture
    /// time...): the mapping's value would replace it in the event, silently.
    fn check_headers(&self, mapping: &EventMapping) -> Result<(), String> {
        match self.headers.keys().find(|name| mapping.headers.sets(name)) {
            Some(name) => Err(format!(
                "the header {name:?} is one headwater sets itself on every event; rename it"
            )),
            None => Ok(()),
        }
    }

    /// The change.
    fn into_change(self) -> Result<ChangeData, String> {
        let op = Op::from_parts(self.op, self.value.map(JsonText::from_raw))
            .map_err(|error| error.to_string())?;
        let mut change =
            ChangeData::from_shared(Arc::from(&*self.collection), Arc::from(&*self.key), op)
                .map_err(|error| error.to_string())?;
        for (name, value) in self.headers {
            change = change
                .with_header(name, value)
                .map_err(|error| error.to_string())?;
        }
        Ok(change)
    }
}

/// How many bytes of an event one byte of its line can become, at most. Every part of
/// an event that comes from the line (collection, key, value, header names and values,
/// and the punctuation around each header) is at most as long as it is in the line,
/// and is written at most twice: once in the headers, escaped (a byte becomes at most
/// six: `\u001f`), and once in the body, escaped once as the value or twice inside an
/// envelope (at most seven: `\\u001f`). Sixteen leaves room.
const EXPANSION: usize = 16;

/// The event of the smallest change (a delete of a one-letter record), with the
/// longest seq: what every event has whatever its line. With [`EXPANSION`], it bounds
/// an event's size without encoding it, so that only lines near the limit are encoded
/// by the check.
fn smallest_event_len(encoder: &mut BatchEncoder, ids: &mut ChangeIdGenerator) -> usize {
    // A one-letter record is valid; were it not, every line would be encoded, which
    // is only slower.
    ChangeData::delete("c", "k").map_or(usize::MAX, |change| probe_len(encoder, ids, &change))
}

/// The size of `change`'s event with the longest seq and a far capture time.
fn probe_len(
    encoder: &mut BatchEncoder,
    ids: &mut ChangeIdGenerator,
    change: &ChangeData,
) -> usize {
    let now = chrono::DateTime::from_timestamp_millis(4_102_444_800_000).unwrap_or_default();
    let probe = Change::new(
        Seq::MAX,
        Captured {
            id: ids.next_id(now),
            captured_at: now,
            data: change.clone(),
        },
    );
    encoder.encoded_len(&probe)
}

/// Refuses a change whose event (with the longest seq and its headers) would pass the
/// per-event limit: it could never be sent.
fn check_size(
    encoder: &mut BatchEncoder,
    ids: &mut ChangeIdGenerator,
    change: &ChangeData,
    max_event_bytes: usize,
) -> Result<(), String> {
    let size = probe_len(encoder, ids, change);
    if size > max_event_bytes {
        return Err(format!(
            "the event is {size} bytes, over --max-event-bytes ({max_event_bytes})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An input edited between the check and the capture is refused at the chunk that
    /// holds the edit, before that chunk is given out; one left alone reads through.
    #[test]
    fn an_input_edited_after_its_check_is_refused_before_the_edited_chunk() {
        let line = |i: usize, title: &str| {
            format!(
                "{{\"collection\":\"c\",\"key\":\"{i}\",\"op\":\"insert\",\"value\":{{\"t\":\"{title}\"}}}}\n"
            )
        };
        let text = |edited: Option<usize>| -> String {
            (0..2500)
                .map(|i| {
                    line(
                        i,
                        if Some(i) == edited {
                            "EDITED"
                        } else {
                            "as-is!"
                        },
                    )
                })
                .collect()
        };
        let rules = LineRules {
            mapping: &EventMapping::default(),
            max_event_bytes: 1 << 20,
        };
        for (edited, chunks_before_refusal) in [(Some(1500), 1), (Some(2400), 2), (None, 3)] {
            let mut file = tempfile::NamedTempFile::new().unwrap();
            std::io::Write::write_all(&mut file, text(None).as_bytes()).unwrap();
            let input = Input::open(file.path()).unwrap();
            let checked = check(&input, &rules).unwrap();
            assert_eq!(
                checked.boundaries.len(),
                3,
                "at 1000, 2000 and the last (2500)"
            );
            std::fs::write(file.path(), text(edited)).unwrap();
            let mut changes = Changes::new(&input, &checked, 0).unwrap();
            let mut given = 0;
            loop {
                match changes.next_chunk(CHUNK) {
                    Ok(chunk) if chunk.is_empty() => break,
                    Ok(_) => given += 1,
                    Err(error) => {
                        assert!(error.contains("the input changed"), "{error}");
                        break;
                    }
                }
            }
            assert_eq!(given, chunks_before_refusal, "edited at {edited:?}");
        }
    }

    /// Checks `text` as a file and, if it is valid, reads its changes back.
    fn parse_changes(text: &[u8], rules: &LineRules<'_>) -> Result<Vec<ChangeData>, InvalidInput> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, text).unwrap();
        let input = Input::open(file.path()).unwrap();
        match check(&input, rules) {
            Ok(checked) => {
                let changes = Changes::new(&input, &checked, 0)
                    .unwrap()
                    .next_chunk(usize::MAX)
                    .unwrap();
                assert_eq!(changes.len(), checked.changes);
                Ok(changes)
            }
            Err(InputError::Invalid(invalid)) => Err(invalid),
            Err(other) => panic!("{other}"),
        }
    }

    fn rules(mapping: &EventMapping) -> LineRules<'_> {
        LineRules {
            mapping,
            max_event_bytes: 1 << 20,
        }
    }

    #[test]
    fn the_identity_counts_the_lines_there_are() {
        let line = r#"{"collection":"c","key":"k","op":"delete"}"#;
        let mapping = EventMapping::default();
        for (text, lines) in [
            (format!("{line}\n{line}\n"), 2),
            (format!("{line}\n{line}"), 2),
            (format!("{line}\n\n{line}\n"), 3),
        ] {
            let mut file = tempfile::NamedTempFile::new().unwrap();
            std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
            let input = Input::open(file.path()).unwrap();
            let checked = check(&input, &rules(&mapping)).unwrap_or_else(|_| panic!("{text}"));
            assert!(
                checked.identity.ends_with(&format!("({lines} lines)")),
                "{text:?}: {}",
                checked.identity
            );
        }
    }

    /// Blank lines before, between and after changes, few or many: the identity is the
    /// fingerprint of every byte, the last boundary that of the bytes up to the last
    /// change, and the second reading agrees with the first.
    #[test]
    fn blank_lines_leave_the_fingerprints_as_the_bytes_give_them() {
        let line = "{\"collection\":\"c\",\"key\":\"k\",\"op\":\"delete\"}\n";
        let many = "\n".repeat(100_000);
        let mapping = EventMapping::default();
        for (before, between, after) in [
            ("", "", ""),
            ("\n", "\n\n", "\n \n"),
            (many.as_str(), many.as_str(), many.as_str()),
            ("", "", many.as_str()),
        ] {
            let text = format!("{before}{line}{between}{line}{after}");
            let through_last = text.len() - after.len();
            let mut file = tempfile::NamedTempFile::new().unwrap();
            std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
            let input = Input::open(file.path()).unwrap();
            let checked = check(&input, &rules(&mapping)).unwrap();
            let whole = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
            assert!(
                checked
                    .identity
                    .starts_with(&format!("{IDENTITY_PREFIX}{whole:016x} (")),
                "{}",
                checked.identity
            );
            assert_eq!(
                checked.boundaries,
                [xxhash_rust::xxh3::xxh3_64(&text.as_bytes()[..through_last])],
                "{} blank bytes after",
                after.len()
            );
            let mut changes = Changes::new(&input, &checked, 0).unwrap();
            assert_eq!(changes.next_chunk(10).unwrap().len(), 2);
        }
    }

    #[test]
    fn valid_lines_become_changes() {
        let text = br#"{"collection":"todos","key":"1","op":"insert","value":{"t": "milk"}}

{"collection":"todos","key":"1","op":"delete","headers":{"tenant":"acme"}}
"#;
        let mapping = EventMapping::default();
        let changes = parse_changes(text, &rules(&mapping)).unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(
            changes[0].value_json(),
            Some(r#"{"t": "milk"}"#),
            "the value is sent as written"
        );
        assert_eq!(changes[1].kind(), OpKind::Delete);
        assert_eq!(changes[1].headers()["tenant"], "acme");
    }

    /// What the core's own constructors make of a line (serde_json's value tree,
    /// `Op::from_parts`, `ChangeData::new`, `with_header`): the rules `read_line`
    /// applies without building a change.
    fn by_the_core(text: &str) -> Result<ChangeData, String> {
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|error| error.to_string())?;
        let kind: OpKind = serde_json::from_value(object["op"].clone()).unwrap();
        let value = object
            .get("value")
            // A JSON null is no value, whatever the op (as `send` has always read it).
            .filter(|value| !value.is_null())
            .map(|value| JsonText::from_serialize(value).unwrap());
        let op = Op::from_parts(kind, value).map_err(|error| error.to_string())?;
        let mut change = ChangeData::new(
            object["collection"].as_str().unwrap(),
            object["key"].as_str().unwrap(),
            op,
        )
        .map_err(|error| error.to_string())?;
        for (name, value) in object
            .get("headers")
            .and_then(|h| h.as_object())
            .into_iter()
            .flatten()
        {
            change = change
                .with_header(name.clone(), value.as_str().unwrap())
                .map_err(|error| error.to_string())?;
        }
        Ok(change)
    }

    #[test]
    fn a_line_is_refused_exactly_when_the_cores_constructors_refuse_it() {
        let lines = [
            r#"{"collection":"c","key":"k","op":"insert","value":1}"#,
            r#"{"collection":"c","key":"k","op":"update","value":{"a":[1,2]}}"#,
            r#"{"collection":"c","key":"k","op":"delete"}"#,
            r#"{"collection":"c","key":"k","op":"delete","value":null}"#,
            r#"{"collection":"c","key":"k","op":"insert","value":null}"#,
            r#"{"collection":"c","key":"k","op":"insert"}"#,
            r#"{"collection":"c","key":"k","op":"update"}"#,
            r#"{"collection":"c","key":"k","op":"delete","value":5}"#,
            r#"{"collection":"","key":"k","op":"delete"}"#,
            r#"{"collection":"c","key":"","op":"delete"}"#,
            r#"{"collection":"","key":"","op":"insert"}"#,
            r#"{"collection":"c","key":"k","op":"delete","headers":{"":"x"}}"#,
            r#"{"collection":"c","key":"k","op":"delete","headers":{"t":"x","u":""}}"#,
            r#"{"collection":"c\u00e9\n","key":"k\"q","op":"delete","headers":{"t\t":"x\u0001"}}"#,
        ];
        for line in lines {
            let ours = read_line(line).and_then(LineRef::into_change);
            let core = by_the_core(line);
            match (&ours, &core) {
                (Ok(ours), Ok(core)) => {
                    assert_eq!(ours.collection(), core.collection(), "{line}");
                    assert_eq!(ours.key(), core.key(), "{line}");
                    assert_eq!(ours.kind(), core.kind(), "{line}");
                    assert_eq!(ours.headers(), core.headers(), "{line}");
                    let weight = read_line(line).unwrap().weight();
                    assert_eq!(weight, ours.weight(), "{line}");
                }
                (Err(ours), Err(core)) => assert_eq!(ours, core, "{line}"),
                _ => panic!("{line}: {ours:?} against {core:?}"),
            }
        }
    }

    #[test]
    fn every_bad_line_is_named_and_nothing_is_returned() {
        let mut text = br#"{"collection":"todos","key":"1","op":"insert","value":1}
not json
{"collection":"todos","key":"2","op":"insert"}
{"collection":"todos","key":"3","op":"delete","value":5}
{"collection":"","key":"4","op":"update","value":1}
{"collection":"todos","key":"5","op":"upsert","value":1}
{"collection":"todos","key":"6","op":"insert","value":1,"extra":true}
"#
        .to_vec();
        text.extend_from_slice(b"{\"collection\":\"c\",\"key\":\"\xff\",\"op\":\"delete\"}\n");
        let mapping = EventMapping::default();
        let error = parse_changes(&text, &rules(&mapping)).unwrap_err();
        let lines: Vec<&str> = error
            .problems
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                "line 2", "line 3", "line 4", "line 5", "line 6", "line 7", "line 8"
            ]
        );
        assert!(
            error.problems[0].starts_with("line 2: not a JSON object"),
            "{}",
            error.problems[0]
        );
        assert!(error.problems[1].contains("needs a value"));
        assert!(error.problems[2].contains("carries no value"));
        assert!(
            error.problems[6].contains("not UTF-8"),
            "{}",
            error.problems[6]
        );
    }

    #[test]
    fn arrays_a_bom_and_headers_headwater_sets_are_refused_by_name() {
        let text = "\u{feff}{\"collection\":\"c\",\"key\":\"k\",\"op\":\"delete\"}
[\"c\",\"k\",\"insert\",{\"v\":1}]
[1,2,3]
{\"collection\":\"c\",\"key\":\"k\",\"op\":\"delete\",\"headers\":{\"seq\":\"1\"}}
{\"collection\":\"c\",\"key\":\"k\",\"op\":\"delete\",\"headers\":{\"timestamp\":\"1\"}}
{\"collection\":\"c\",\"key\":\"k\",\"op\":\"delete\",\"headers\":{\"tenant\":\"1\"}}
  \"a string\"
";
        let mapping = EventMapping::default();
        let error = parse_changes(text.as_bytes(), &rules(&mapping)).unwrap_err();
        assert_eq!(error.invalid, 6, "{:?}", error.problems);
        let expected = [
            "line 1: the line starts with a UTF-8 byte order mark",
            "line 2: a JSON array",
            "line 3: a JSON array",
            "line 4: the header \"seq\" is one headwater sets itself",
            "line 5: the header \"timestamp\" is one headwater sets itself",
            "line 7: not a JSON object",
        ];
        for (problem, expected) in error.problems.iter().zip(expected) {
            assert!(problem.starts_with(expected), "{problem}");
        }
    }

    #[test]
    fn a_header_is_refused_only_while_the_mapping_sets_it() {
        let text = br#"{"collection":"c","key":"k","op":"delete","headers":{"id":"mine"}}
"#;
        let mut mapping = EventMapping::default();
        assert!(parse_changes(text, &rules(&mapping)).is_err());
        mapping.headers.id = Some("change-id".into());
        let changes = parse_changes(text, &rules(&mapping)).unwrap();
        assert_eq!(changes[0].headers()["id"], "mine");
    }

    #[test]
    fn a_line_over_the_event_limit_is_refused_before_anything_is_sent() {
        let big = format!(
            "{{\"collection\":\"c\",\"key\":\"k\",\"op\":\"insert\",\"value\":\"{}\"}}\n",
            "x".repeat(2000)
        );
        let mapping = EventMapping::default();
        let rules = LineRules {
            mapping: &mapping,
            max_event_bytes: 1024,
        };
        let error = parse_changes(big.as_bytes(), &rules).unwrap_err();
        assert!(
            error.problems[0].starts_with("line 1: the event is")
                && error.problems[0].contains("--max-event-bytes (1024)"),
            "{}",
            error.problems[0]
        );
    }

    /// The bound that spares the check an encoding per line is a bound: no line's event
    /// is larger, whatever it escapes and however events are shaped.
    #[test]
    fn no_event_is_larger_than_its_lines_bound() {
        let lines = [
            r#"{"collection":"c","key":"k","op":"delete"}"#.to_owned(),
            r#"{"collection":"\"\"\"","key":"\\\\","op":"insert","value":"\"\\\"\\"}"#.to_owned(),
            format!(
                r#"{{"collection":"{0}","key":"{0}","op":"update","value":["{0}","{0}"],"headers":{{"{0}":"{0}","b":"{0}"}}}}"#,
                r#"\u0001\u001f\n\t\""#
            ),
            r#"{"collection":"é","key":"☃","op":"insert","value":{"a":"\ud83d\ude00","b":[1,2,{"c":null}]}}"#.to_owned(),
            format!(
                r#"{{"collection":"c","key":"k","op":"insert","value":1,"headers":{{{}}}}}"#,
                (0..40).map(|n| format!(r#""h{n}":"\u0002""#)).collect::<Vec<_>>().join(",")
            ),
            // Long enough that the event's fixed part is small beside what escaping adds.
            format!(
                r#"{{"collection":"{0}","key":"{0}","op":"insert","value":"{0}"}}"#,
                r#"\"\u0001"#.repeat(200)
            ),
        ];
        for body in [BodyShape::Value, BodyShape::Envelope] {
            let mut mapping = EventMapping::with_source("a-source-name");
            mapping.body = body;
            let mut encoder = BatchEncoder::new(mapping.clone());
            let mut ids = ChangeIdGenerator::from_seed(0);
            let smallest = smallest_event_len(&mut encoder, &mut ids);
            let mut largest_growth = 0.0f64;
            for line in &lines {
                let change = parse_line(line).unwrap_or_else(|error| panic!("{line}: {error}"));
                let size = probe_len(&mut encoder, &mut ids, &change);
                let bound = smallest + EXPANSION * line.len();
                let shown: String = line.chars().take(60).collect();
                assert!(size <= bound, "{body:?} {shown}…: {size} > {bound}");
                largest_growth = largest_growth.max((size - smallest) as f64 / line.len() as f64);
            }
            // Some line grows (more bytes of event than of line), so the bound is tried.
            assert!(largest_growth > 1.0, "{body:?}: {largest_growth}");
        }
    }
}
