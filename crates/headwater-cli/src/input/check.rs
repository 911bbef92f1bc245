//! The first reading of the input: every line checked as a change, the input's
//! identity taken, and the spans it cuts into.
//!
//! Checking a line (parsing its JSON, its rules, its size) is most of the work, and no
//! line's verdict depends on another's, while the identity (one fingerprint of every
//! byte, in order) is cheap. So the input is read a block of whole lines at a time, the
//! block's lines are checked by up to as many threads as the machine has cores, and
//! meanwhile this thread fingerprints them and cuts the spans. Nothing is sent before
//! the check ends, so on a machine shared with a Flume agent the cores are free for it:
//! the check of 500,000 lines took 0.41 s on one thread and takes about half on two.

use std::fs::File;
use std::io::Read;
use std::num::NonZeroUsize;

use headwater_core::flume::BatchEncoder;
use headwater_core::model::ChangeIdGenerator;

use super::{
    CHUNK, Checked, EXPANSION, Fingerprint, IDENTITY_PREFIX, Input, InputError, InvalidInput,
    LineRules, SHOWN, SPAN_BYTES, Span, check_size, line_ends, read_line, smallest_event_len,
    text_of,
};

/// How many bytes of whole lines are read and checked at a time (a longer line is a
/// block of its own).
const BLOCK: usize = 4 << 20;

/// The most threads that check lines.
const MAX_THREADS: usize = 8;

/// The share of a block's lines (in percent of an even share) that this thread checks
/// besides taking the identity, so that it finishes with the others.
const OWN_SHARE: usize = 70;

/// A thread is given at least this many lines: fewer are not worth starting it for.
const LINES_PER_THREAD: usize = 256;

/// Reads the whole input once: every line must be a change that fits the rules. Gives
/// the input's identity (the XXH3 fingerprint of its bytes and its line count) and
/// how many changes it holds; or every problem (the first 20 named, all counted).
pub(crate) fn check(input: &Input, rules: &LineRules<'_>) -> Result<Checked, InputError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .clamp(1, MAX_THREADS);
    let smallest = smallest_event_len(
        &mut BatchEncoder::new(rules.mapping.clone()),
        &mut ChangeIdGenerator::from_seed(0),
    );
    let read =
        |error: std::io::Error| InputError::Read(format!("cannot read {}: {error}", input.name));
    let file = File::open(&input.path).map_err(read)?;
    let mut blocks = Blocks::new(file);
    let mut identity = Identity::default();
    let mut verdict = Verdict::default();
    while let Some(block) = blocks.next_block().map_err(read)? {
        let lines: Vec<(usize, usize)> = line_ranges(&block);
        let first_number = identity.line_count + 1;
        let parts = threads.min(lines.len() / LINES_PER_THREAD).max(1);
        // This thread also takes the identity: it checks a smaller piece than the others.
        let own = if parts == 1 {
            lines.len()
        } else {
            lines.len() * OWN_SHARE / (100 * parts)
        };
        let (own, others) = lines.split_at(own);
        let share = others.len().div_ceil((parts - 1).max(1)).max(1);
        let verdicts = std::thread::scope(|scope| {
            let helpers: Vec<_> = others
                .chunks(share)
                .enumerate()
                .map(|(index, piece)| {
                    let block = &block;
                    let first = first_number + own.len() + index * share;
                    scope.spawn(move || check_lines(block, piece, first, rules, smallest))
                })
                .collect();
            let mut verdicts = vec![check_lines(&block, own, first_number, rules, smallest)];
            for &(start, end) in &lines {
                identity.line(&block[start..end]);
            }
            for helper in helpers {
                // A thread that panicked is a bug; its panic goes on here.
                verdicts.push(
                    helper
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                );
            }
            verdicts
        });
        for piece in verdicts {
            verdict.merge(piece);
        }
    }
    if verdict.invalid > 0 {
        return Err(InvalidInput {
            problems: verdict.problems,
            invalid: verdict.invalid,
        }
        .into());
    }
    Ok(identity.finish(verdict.weight))
}

/// Where each line of `block` starts and ends (its line end included).
fn line_ranges(block: &[u8]) -> Vec<(usize, usize)> {
    let mut start = 0;
    line_ends(block)
        .map(|end| (std::mem::replace(&mut start, end), end))
        .collect()
}

/// The input, a block of whole lines at a time.
struct Blocks {
    file: File,
    /// What was read past the last block's last line end.
    rest: Vec<u8>,
    at_end: bool,
}

impl Blocks {
    fn new(file: File) -> Self {
        Self {
            file,
            rest: Vec::new(),
            at_end: false,
        }
    }

    /// The next block: at least [`BLOCK`] bytes (unless the input ends first) up to the
    /// last line end read; at the end of the input, what is left.
    fn next_block(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut buffer = std::mem::take(&mut self.rest);
        loop {
            if self.at_end {
                return Ok((!buffer.is_empty()).then_some(buffer));
            }
            let filled = buffer.len();
            let want = filled.max(BLOCK) + BLOCK / 4;
            buffer.resize(want, 0);
            let mut read = filled;
            while read < want {
                match self.file.read(&mut buffer[read..]) {
                    Ok(0) => {
                        self.at_end = true;
                        break;
                    }
                    Ok(count) => read += count,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(error) => return Err(error),
                }
            }
            buffer.truncate(read);
            if self.at_end {
                continue;
            }
            if let Some(last) = memchr::memrchr(b'\n', &buffer[filled..]) {
                self.rest = buffer.split_off(filled + last + 1);
                return Ok(Some(buffer));
            }
        }
    }
}

/// What the check found wrong, or the weight of what it found right.
#[derive(Default)]
struct Verdict {
    weight: u64,
    invalid: usize,
    /// "line N: what is wrong", the first [`SHOWN`].
    problems: Vec<String>,
}

impl Verdict {
    /// Adds the verdict on the lines that follow.
    fn merge(&mut self, next: Self) {
        self.weight += next.weight;
        self.invalid += next.invalid;
        let room = SHOWN.saturating_sub(self.problems.len());
        self.problems.extend(next.problems.into_iter().take(room));
    }
}

/// Checks `lines` of `block`, the first of them line `first_number` of the input.
fn check_lines(
    block: &[u8],
    lines: &[(usize, usize)],
    first_number: usize,
    rules: &LineRules<'_>,
    smallest: usize,
) -> Verdict {
    let mut verdict = Verdict::default();
    let mut sizer = None;
    for (index, &(start, end)) in lines.iter().enumerate() {
        match check_line(&block[start..end], rules, smallest, &mut sizer) {
            Ok(weight) => verdict.weight += weight,
            Err(problem) => {
                verdict.invalid += 1;
                if verdict.problems.len() < SHOWN {
                    verdict
                        .problems
                        .push(format!("line {}: {problem}", first_number + index));
                }
            }
        }
    }
    verdict
}

/// Checks one line (with its line end); gives its change's weight (0 for a blank
/// line). `sizer` is made the first time a line is long enough that its event must be
/// encoded to know its size.
fn check_line(
    raw: &[u8],
    rules: &LineRules<'_>,
    smallest: usize,
    sizer: &mut Option<(BatchEncoder, ChangeIdGenerator)>,
) -> Result<u64, String> {
    let text = text_of(raw)?;
    if text.trim().is_empty() {
        return Ok(0);
    }
    let line = read_line(text)?;
    line.check_headers(rules.mapping)?;
    let weight = line.weight() as u64;
    if smallest.saturating_add(EXPANSION.saturating_mul(text.len())) > rules.max_event_bytes {
        let (encoder, ids) = sizer.get_or_insert_with(|| {
            (
                BatchEncoder::new(rules.mapping.clone()),
                ChangeIdGenerator::from_seed(0),
            )
        });
        check_size(encoder, ids, &line.into_change()?, rules.max_event_bytes)?;
    }
    Ok(weight)
}

/// Whether a line (with its line end) is a change rather than blank, as the check
/// counts it: not only whitespace as `str::trim` sees it (a line that is not UTF-8 is a
/// change, a bad one). Most lines start with `{`, which settles it without validating
/// the line's UTF-8 again: the checking threads do that.
fn is_change(raw: &[u8]) -> bool {
    match raw
        .iter()
        .find(|byte| !(byte.is_ascii() && char::from(**byte).is_whitespace()))
    {
        None => false,
        Some(byte) if byte.is_ascii() => true,
        Some(_) => text_of(raw).map_or(true, |text| !text.trim().is_empty()),
    }
}

/// The input's identity, taken a line at a time: its fingerprint, the boundaries of
/// its chunks and its spans. A line that is not blank counts as a change (if it is not
/// one, the check fails and none of this is used).
#[derive(Default)]
struct Identity {
    fingerprint: Fingerprint,
    /// The fingerprint up to the last change, taken at the first blank line after a
    /// change (the last boundary needs it), so that no line pays for a digest.
    at_last_change: Option<u64>,
    line_count: usize,
    changes: usize,
    boundaries: Vec<u64>,
    spans: SpanCutter,
}

impl Identity {
    fn line(&mut self, raw: &[u8]) {
        self.line_count += 1;
        let change = is_change(raw);
        if change {
            self.at_last_change = None;
        } else {
            let fingerprint = &self.fingerprint;
            self.at_last_change
                .get_or_insert_with(|| fingerprint.value());
        }
        self.fingerprint.update(raw);
        self.spans.line(raw, change);
        if change {
            self.changes += 1;
            if self.changes.is_multiple_of(CHUNK) {
                self.boundaries.push(self.fingerprint.value());
            }
        }
    }

    fn finish(mut self, weight: u64) -> Checked {
        if !self.changes.is_multiple_of(CHUNK) {
            let last = self
                .at_last_change
                .unwrap_or_else(|| self.fingerprint.value());
            self.boundaries.push(last);
        }
        Checked {
            boundaries: self.boundaries,
            spans: self.spans.finish(),
            weight,
            changes: self.changes,
            identity: format!(
                "{IDENTITY_PREFIX}{:016x} ({} lines)",
                self.fingerprint.value(),
                self.line_count
            ),
        }
    }
}

/// Cuts the checked input into [`Span`]s, a line at a time.
#[derive(Default)]
struct SpanCutter {
    spans: Vec<Span>,
    hash: xxhash_rust::xxh3::Xxh3Default,
    /// Bytes read so far, and the offset where the open span starts.
    offset: u64,
    start: u64,
    /// Changes so far, and in the open span.
    changes: u64,
    open: u32,
}

impl SpanCutter {
    /// Takes the next line; `change` says whether it is one (else it is blank). A span
    /// closes just before the change that would overfill it, so blank lines go with
    /// the change before them, and the last span runs to the end of the input.
    fn line(&mut self, raw: &[u8], change: bool) {
        if change {
            if self.open as usize == CHUNK
                || (self.open > 0 && self.offset - self.start >= SPAN_BYTES)
            {
                self.close();
            }
            self.changes += 1;
            self.open += 1;
        }
        self.hash.update(raw);
        self.offset += raw.len() as u64;
    }

    fn close(&mut self) {
        self.spans.push(Span {
            first: self.changes + 1 - u64::from(self.open),
            changes: self.open,
            offset: self.start,
            len: self.offset - self.start,
            hash: self.hash.digest(),
        });
        self.hash.reset();
        self.start = self.offset;
        self.open = 0;
    }

    /// The spans: every byte of the input from the start to its end is in one, unless
    /// it holds no change at all.
    fn finish(mut self) -> Vec<Span> {
        if self.open > 0 {
            self.close();
        }
        self.spans
    }
}

#[cfg(test)]
mod tests {
    use headwater_core::flume::EventMapping;

    use super::*;

    /// The input's identity as one thread takes it, a line at a time.
    fn identity_in_one_pass(bytes: &[u8]) -> Checked {
        let mut identity = Identity::default();
        let mut start = 0;
        for end in line_ends(bytes) {
            identity.line(&bytes[start..end]);
            start = end;
        }
        identity.finish(0)
    }

    fn checked(text: &str) -> Result<Checked, InputError> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        let input = Input::open(file.path()).unwrap();
        let mapping = EventMapping::default();
        check(
            &input,
            &LineRules {
                mapping: &mapping,
                max_event_bytes: 1 << 20,
            },
        )
    }

    /// An input of several blocks, with blank lines, CRLF line ends and no line end at
    /// the last line: read in blocks by several threads, it gives what one pass gives.
    fn several_blocks(bad: &[usize]) -> String {
        let mut text = String::new();
        let mut number = 0;
        while text.len() < 2 * BLOCK + BLOCK / 3 {
            number += 1;
            let line = if bad.contains(&number) {
                "[\"not an object\"]".to_owned()
            } else if number % 17 == 0 {
                "  ".to_owned()
            } else {
                format!(
                    "{{\"collection\":\"c\",\"key\":\"{}\",\"op\":\"insert\",\"value\":{{\"t\":\"{}\"}}}}",
                    number % 97,
                    "x".repeat(number % 300)
                )
            };
            text.push_str(&line);
            text.push_str(if number % 5 == 0 { "\r\n" } else { "\n" });
        }
        text.push_str(r#"{"collection":"c","key":"last","op":"delete"}"#);
        text
    }

    #[test]
    fn a_line_is_blank_exactly_when_trim_leaves_nothing() {
        for (line, change) in [
            ("", false),
            ("\n", false),
            ("  \t\r\n", false),
            ("\u{b}\u{c}\n", false),
            ("\u{3000}\u{a0}\n", false),
            ("{}\n", true),
            ("  x", true),
            ("\u{3000}\u{e9}\n", true),
        ] {
            assert_eq!(is_change(line.as_bytes()), change, "{line:?}");
            assert_eq!(change, !line.trim().is_empty(), "{line:?}");
        }
        assert!(is_change(b"\xff\n"), "not UTF-8: a change, a bad one");
        assert!(is_change(b" \xc3\n"), "cut UTF-8: a change, a bad one");
    }

    #[test]
    fn blocks_checked_in_parallel_give_the_identity_of_one_pass() {
        let text = several_blocks(&[]);
        let checked = checked(&text).unwrap();
        let expected = identity_in_one_pass(text.as_bytes());
        assert_eq!(checked.identity, expected.identity);
        assert_eq!(checked.boundaries, expected.boundaries);
        assert_eq!(checked.spans, expected.spans);
        assert_eq!(checked.changes, expected.changes);
        assert!(checked.spans.len() > 2);
        assert_eq!(
            checked.spans.iter().map(|span| span.len).sum::<u64>(),
            text.len() as u64
        );
    }

    #[test]
    fn bad_lines_are_named_in_input_order_whichever_thread_and_block_read_them() {
        let lines = several_blocks(&[]).lines().count();
        let bad: Vec<usize> = (1..=30).map(|i| 2 + i * (lines - 10) / 30).collect();
        let Err(InputError::Invalid(invalid)) = checked(&several_blocks(&bad)) else {
            panic!("the bad lines were not found");
        };
        assert_eq!(invalid.invalid, bad.len());
        let named: Vec<String> = invalid
            .problems
            .iter()
            .map(|problem| problem.split(':').next().unwrap().to_owned())
            .collect();
        let expected: Vec<String> = bad[..SHOWN]
            .iter()
            .map(|number| format!("line {number}"))
            .collect();
        assert_eq!(named, expected);
    }
}
