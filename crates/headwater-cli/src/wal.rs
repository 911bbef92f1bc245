//! Damage inside a state's write-ahead log, found before SQLite opens the state.
//!
//! SQLite replays the log's frames up to the first one whose checksum fails and
//! ignores the rest: after a crash, that drops a transaction torn while it was being
//! written, which is what a log is for. But when bytes change inside a frame that
//! later transactions were committed after (a bad disk, a bad copy), the same rule drops
//! those committed transactions in silence, and `send` would resend changes Flume
//! already acknowledged. So the log is read first, as SQLite reads it
//! (<https://www.sqlite.org/fileformat.html#the_write_ahead_log>), and a break followed
//! by more than the one transaction a crash can tear is called damage.

use std::path::Path;

/// The log's magic number, whose lowest bit says the checksums' byte order.
const MAGIC: u32 = 0x377f_0682;
const HEADER: usize = 32;
const FRAME_HEADER: usize = 24;
/// The smallest page SQLite writes: a log longer than a header and such a frame, with
/// a header that does not check out, held frames that will be ignored.
const MIN_PAGE: usize = 512;

/// Checks the log at `wal` (absent or empty: nothing to check). `Err` says what is
/// damaged.
pub(crate) fn check(wal: &Path) -> Result<(), String> {
    let bytes = match std::fs::read(wal) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(format!("its write-ahead log cannot be read: {error}")),
    };
    check_bytes(&bytes)
}

fn word(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// SQLite's log checksum: over 32-bit words, two at a time, continuing from `sums`.
fn checksum(sums: (u32, u32), data: &[u8], big_endian: bool) -> (u32, u32) {
    let (mut s1, mut s2) = sums;
    for pair in data.chunks_exact(8) {
        let read = |at: usize| {
            let four = [pair[at], pair[at + 1], pair[at + 2], pair[at + 3]];
            if big_endian {
                u32::from_be_bytes(four)
            } else {
                u32::from_le_bytes(four)
            }
        };
        s1 = s1.wrapping_add(read(0)).wrapping_add(s2);
        s2 = s2.wrapping_add(read(4)).wrapping_add(s1);
    }
    (s1, s2)
}

/// The page numbers held by the log's committed frames (its current generation, up to
/// the last commit before any break): the pages SQLite reads from the log rather than
/// from the database file. Empty when there is no log or it does not check out.
pub(crate) fn committed_pages(wal: &Path) -> std::collections::BTreeSet<u32> {
    let Ok(bytes) = std::fs::read(wal) else {
        return std::collections::BTreeSet::new();
    };
    pages_of(&bytes)
}

fn pages_of(bytes: &[u8]) -> std::collections::BTreeSet<u32> {
    let mut committed = std::collections::BTreeSet::new();
    if bytes.len() < HEADER {
        return committed;
    }
    let magic = word(bytes, 0);
    let big_endian = magic & 1 == 1;
    let page_size = word(bytes, 8) as usize;
    let mut sums = checksum((0, 0), &bytes[..24], big_endian);
    if magic & !1 != MAGIC
        || !page_size.is_power_of_two()
        || !(MIN_PAGE..=65_536).contains(&page_size)
        || sums != (word(bytes, 24), word(bytes, 28))
    {
        return committed;
    }
    let salts = (word(bytes, 16), word(bytes, 20));
    let frame_size = FRAME_HEADER + page_size;
    let mut transaction = Vec::new();
    for frame in bytes[HEADER..].chunks_exact(frame_size) {
        if (word(frame, 8), word(frame, 12)) != salts {
            break;
        }
        sums = checksum(sums, &frame[..8], big_endian);
        sums = checksum(sums, &frame[FRAME_HEADER..], big_endian);
        if sums != (word(frame, 16), word(frame, 20)) {
            break;
        }
        transaction.push(word(frame, 0));
        if word(frame, 4) != 0 {
            committed.extend(transaction.drain(..));
        }
    }
    committed
}

fn check_bytes(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < HEADER {
        return Ok(());
    }
    let magic = word(bytes, 0);
    let big_endian = magic & 1 == 1;
    let page_size = word(bytes, 8) as usize;
    let header_sums = checksum((0, 0), &bytes[..24], big_endian);
    let header_ok = magic & !1 == MAGIC
        && page_size.is_power_of_two()
        && (MIN_PAGE..=65_536).contains(&page_size)
        && header_sums == (word(bytes, 24), word(bytes, 28));
    if !header_ok {
        return if bytes.len() >= HEADER + FRAME_HEADER + MIN_PAGE {
            Err(format!(
                "its write-ahead log ({} bytes) has a damaged header, so SQLite would ignore every transaction in it",
                bytes.len()
            ))
        } else {
            Ok(())
        };
    }
    let salts = (word(bytes, 16), word(bytes, 20));
    let frame_size = FRAME_HEADER + page_size;
    let frames = (bytes.len() - HEADER) / frame_size;
    let mut sums = header_sums;
    for index in 0..frames {
        let frame = &bytes[HEADER + index * frame_size..HEADER + (index + 1) * frame_size];
        if (word(frame, 8), word(frame, 12)) != salts {
            // A frame of an earlier generation of the log: the log ends here.
            return Ok(());
        }
        sums = checksum(sums, &frame[..8], big_endian);
        sums = checksum(sums, &frame[FRAME_HEADER..], big_endian);
        if sums == (word(frame, 16), word(frame, 20)) {
            continue;
        }
        // SQLite stops here. Count the commits it would drop: frames of this
        // generation (their salts match) that end a transaction.
        let commits_dropped = (index..frames)
            .map(|later| &bytes[HEADER + later * frame_size..HEADER + (later + 1) * frame_size])
            .filter(|later| (word(later, 8), word(later, 12)) == salts && word(later, 4) != 0)
            .count();
        return if commits_dropped > 1 {
            Err(format!(
                "frame {} of its write-ahead log is damaged, and SQLite would drop the {commits_dropped} transactions committed from there on",
                index + 1
            ))
        } else {
            // At most the last transaction, torn by a crash: SQLite's normal recovery.
            Ok(())
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use headwater::sqlite::rusqlite;

    use super::*;

    /// A database in WAL mode with `transactions` commits still in its log, copied
    /// while open (as a crash leaves it): the log's bytes.
    fn live_log(transactions: usize) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; PRAGMA synchronous = FULL;
                 CREATE TABLE t (n INTEGER PRIMARY KEY, v TEXT);",
            )
            .unwrap();
        for n in 0..transactions {
            connection
                .execute("INSERT INTO t (n, v) VALUES (?1, 'x')", [n as i64])
                .unwrap();
        }
        let log = std::fs::read(dir.path().join("state.db-wal")).unwrap();
        drop(connection);
        log
    }

    fn frame_size(log: &[u8]) -> usize {
        FRAME_HEADER + word(log, 8) as usize
    }

    #[test]
    fn a_whole_log_and_no_log_are_fine() {
        let log = live_log(10);
        assert!(log.len() > HEADER + 10 * frame_size(&log));
        assert_eq!(check_bytes(&log), Ok(()));
        assert_eq!(check_bytes(&[]), Ok(()));
        assert_eq!(check(Path::new("/nonexistent/state.db-wal")), Ok(()));
    }

    #[test]
    fn a_torn_last_transaction_is_recovery_not_damage() {
        let log = live_log(10);
        let size = frame_size(&log);
        let mut torn = log.clone();
        let last = torn.len() - size;
        torn[last + FRAME_HEADER + 100] ^= 0xff;
        assert_eq!(check_bytes(&torn), Ok(()), "the last frame's page changed");
        assert_eq!(
            check_bytes(&log[..log.len() - size / 2]),
            Ok(()),
            "the last frame half written"
        );
    }

    #[test]
    fn a_changed_byte_before_later_commits_is_damage() {
        let log = live_log(10);
        let size = frame_size(&log);
        let mut damaged = log.clone();
        damaged[HEADER + 3 * size + FRAME_HEADER + 100] ^= 0xff;
        let error = check_bytes(&damaged).unwrap_err();
        assert!(
            error.starts_with("frame 4 of its write-ahead log is damaged"),
            "{error}"
        );

        let mut header = log.clone();
        header[20] ^= 0xff;
        assert!(check_bytes(&header).unwrap_err().contains("damaged header"));
    }
}
