//! Where `send` keeps its outbox between runs, so that a run after a crash sends only
//! what was not acknowledged, under the ids of the first run.
//!
//! The state is a SQLite database: headwater's outbox tables, and a table of `send`'s
//! own that records which input it belongs to and how many of its lines are captured.
//! Lines are captured in chunks, each in one transaction with that count, so a crash
//! between chunks leaves no line captured twice and none half-captured.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use headwater::sqlite::{SqliteOptions, configure_connection, migrate, rusqlite};

use crate::input::{Fnv1a, IDENTITY_PREFIX};
use crate::line_store::Identity;

/// A state database, locked for this process as long as this lives.
pub(crate) struct State {
    pub path: PathBuf,
    /// Lines of this input captured by earlier runs (the outbox layout).
    pub lines_captured: usize,
    /// How this state keeps its changes.
    pub layout: Layout,
    /// Whether it was there before this run (a resume).
    pub existed: bool,
    _lock: File,
}

/// How a state keeps the changes it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Every line copied into headwater's SQLite outbox, in chunks (states made before
    /// the lines layout, and paced ones).
    Outbox,
    /// The input itself, read again as it is sent, and a ledger of what was
    /// acknowledged ([`crate::line_store`]).
    Lines(Identity),
}

/// One of `send`'s own values in the state (`send_input`), if it is there.
fn input_value(
    connection: &rusqlite::Connection,
    name: &str,
) -> Result<Option<String>, rusqlite::Error> {
    connection
        .query_row(
            "SELECT value FROM send_input WHERE name = ?1",
            [name],
            |row| row.get(0),
        )
        .map(Some)
        .or_else(|error| match error {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            error => Err(error),
        })
}

/// The layout the state at `connection` was made with.
fn layout_of(connection: &rusqlite::Connection) -> Result<Layout, String> {
    let has_table: bool = connection
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'send_input')",
            [],
            |row| row.get(0),
        )
        .map_err(|error| error.to_string())?;
    if !has_table {
        return Ok(Layout::Outbox);
    }
    let read = |name: &str| input_value(connection, name).map_err(|error| error.to_string());
    if read("layout")?.as_deref() != Some("lines") {
        return Ok(Layout::Outbox);
    }
    let created_at = read("created_at")?
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(&text).ok())
        .ok_or("its creation time is missing or unreadable")?
        .with_timezone(&chrono::Utc);
    let seed = read("id_seed")?
        .and_then(|text| text.parse().ok())
        .ok_or("its id seed is missing or unreadable")?;
    Ok(Layout::Lines(Identity { created_at, seed }))
}

/// Why the state cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StateError {
    #[error("cannot use the state at {path}: {reason}")]
    Unusable { path: String, reason: String },
    #[error(
        "the state at {path} belongs to another input ({found}); run with --fresh to start over, or --state PATH for a separate state"
    )]
    OtherInput { path: String, found: String },
    #[error(
        "another `headwater send` is using the state at {path}; wait for it, or give this run its own --state"
    )]
    Locked { path: String },
    #[error(
        "the file at {path} is not a headwater state ({found}); it was left as it is: give --state a new path"
    )]
    NotAState { path: String, found: String },
    #[error(
        "the state at {path} is damaged: {reason}. Nothing was sent. Move it aside and run with --fresh to send every line again under new ids (Flume's consumers see a line twice if an earlier run delivered it)"
    )]
    Damaged { path: String, reason: String },
}

/// The default state location for `input` (`-` is standard input): in
/// `$XDG_STATE_HOME/headwater`, else `~/.local/state/headwater`, else the temp folder.
pub(crate) fn default_path(input: &Path) -> PathBuf {
    let dir = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("headwater");
    let name = if input == Path::new("-") {
        "send-stdin.db".to_owned()
    } else {
        let absolute = std::fs::canonicalize(input).unwrap_or_else(|_| input.to_path_buf());
        let stem = input
            .file_stem()
            .map(|stem| {
                stem.to_string_lossy()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            })
            .unwrap_or_default();
        format!(
            "send-{stem}-{:016x}.db",
            fingerprint(absolute.to_string_lossy().as_bytes())
        )
    };
    dir.join(name)
}

/// A stable 64-bit fingerprint (FNV-1a): the same bytes give the same value on every
/// platform and Rust version, unlike `std`'s hashers. (It names default states, so it
/// stays FNV-1a: another hash would move every state a user has.)
pub(crate) fn fingerprint(bytes: &[u8]) -> u64 {
    let mut fnv = Fnv1a::new();
    fnv.update(bytes);
    fnv.value()
}

fn unusable(path: &Path, reason: impl std::fmt::Display) -> StateError {
    StateError::Unusable {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Locks the state's database file itself, creating it if needed: a lock held on the
/// file, not on a name, so that no second path to it (a symlink, a hard link, a bind
/// mount) lets a second sender in. (SQLite's own locks are `fcntl` locks, which this
/// `flock` does not touch.)
fn lock(path: &Path) -> Result<File, StateError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|error| unusable(path, error))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StateError::Locked {
            path: path.display().to_string(),
        }),
        Err(TryLockError::Error(error)) => Err(unusable(path, error)),
    }
}

/// Empties a locked state (for `--fresh`) while keeping its file, and so its lock: the
/// write-ahead log first (replayed onto an empty file it would bring the old outbox
/// back), then the database.
fn clear(path: &Path, locked: &File) -> Result<(), StateError> {
    for suffix in ["-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(unusable(&file, error)),
        }
    }
    locked.set_len(0).map_err(|error| unusable(path, error))
}

/// Opens (creating it if needed) the state at `path` for an input with `identity`
/// (its fingerprint and line count), and locks it for this process; `fresh` empties it
/// first (under the lock: a running sender's state is never emptied).
///
/// A state that holds an identity in an earlier version's form (without
/// [`IDENTITY_PREFIX`]) is compared with what `legacy_identities` gives (the input's
/// identities in those forms, which cost a reading of the input, so they are asked
/// for only then); if one matches, the state is the same input's and is brought up to
/// date.
pub(crate) fn open(
    path: &Path,
    identity: &str,
    legacy_identities: impl FnOnce() -> Result<Vec<String>, String>,
    options: &SqliteOptions,
    fresh: bool,
    new_layout: Layout,
) -> Result<(State, rusqlite::Connection), StateError> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|error| unusable(path, error))?;
    }
    let lock = lock(path)?;
    check_not_truncated(path, &lock)?;
    if !fresh {
        check_log(path)?;
    }
    let connection = rusqlite::Connection::open(path).map_err(|error| unusable(path, error))?;
    // Before anything is written, and before --fresh empties it: a file that is not a
    // state (another application's database, or not a database at all) is left alone.
    let foreign = foreign_tables(&connection).map_err(|error| StateError::NotAState {
        path: path.display().to_string(),
        found: error.to_string(),
    })?;
    if !foreign.is_empty() {
        return Err(StateError::NotAState {
            path: path.display().to_string(),
            found: format!(
                "a SQLite database with other tables: {}",
                foreign.join(", ")
            ),
        });
    }
    let connection = if fresh {
        drop(connection);
        clear(path, &lock)?;
        rusqlite::Connection::open(path).map_err(|error| unusable(path, error))?
    } else {
        connection
    };
    configure_connection(&connection, options).map_err(|error| unusable(path, error))?;
    // A state that cannot be written (a read-only file or disk) fails here, with the
    // cause, rather than retrying without end once delivery needs to record an answer.
    connection
        .execute_batch("BEGIN IMMEDIATE; COMMIT;")
        .map_err(|error| unusable(path, format!("it cannot be written: {error}")))?;
    migrate(&connection).map_err(|error| unusable(path, error))?;
    connection
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS send_input (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;",
        )
        .map_err(|error| unusable(path, error))?;
    let read = |name: &str| input_value(&connection, name).map_err(|error| unusable(path, error));
    let earlier_form = |found: &str| -> Result<bool, StateError> {
        if found.starts_with(IDENTITY_PREFIX) {
            return Ok(false);
        }
        let legacy = legacy_identities().map_err(|reason| {
            unusable(
                path,
                format!("the input cannot be read again to compare it with the state's: {reason}"),
            )
        })?;
        Ok(legacy.iter().any(|legacy| legacy == found))
    };
    let existed = read("input")?.is_some();
    match read("input")? {
        Some(found) if found == identity => {}
        Some(found) if earlier_form(&found)? => {
            connection
                .execute(
                    "UPDATE send_input SET value = ?1 WHERE name = 'input'",
                    [identity],
                )
                .map_err(|error| unusable(path, error))?;
        }
        Some(found) => {
            return Err(StateError::OtherInput {
                path: path.display().to_string(),
                found,
            });
        }
        None => {
            connection
                .execute(
                    "INSERT INTO send_input (name, value) VALUES ('input', ?1), ('lines_captured', '0')",
                    [identity],
                )
                .map_err(|error| unusable(path, error))?;
            if let Layout::Lines(lines) = new_layout {
                connection
                    .execute(
                        "INSERT INTO send_input (name, value) VALUES ('layout', 'lines'), ('created_at', ?1), ('id_seed', ?2)",
                        [
                            lines
                                .created_at
                                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                            lines.seed.to_string(),
                        ],
                    )
                    .map_err(|error| unusable(path, error))?;
            }
        }
    }
    let layout = layout_of(&connection).map_err(|reason| StateError::Damaged {
        path: path.display().to_string(),
        reason,
    })?;
    let lines_captured = read("lines_captured")?
        .and_then(|text| text.parse().ok())
        .unwrap_or(0);
    let state = State {
        path: path.to_path_buf(),
        lines_captured,
        layout,
        existed,
        _lock: lock,
    };
    Ok((state, connection))
}

/// SQLite reads a database file shorter than its header says as if the missing pages
/// were never written, so a state cut short (a copy that stopped, a full disk, a bad
/// restore) reads as one with fewer changes, and a run would report them delivered. The
/// header's page count and page size are checked against the file's length: O(1)
/// whatever the state holds. (The count is valid only where SQLite marks it so: the
/// change counter at offset 24 equal to the version at offset 92.)
fn check_not_truncated(path: &Path, file: &File) -> Result<(), StateError> {
    use std::io::{Read, Seek, SeekFrom};
    let damaged = |reason: String| StateError::Damaged {
        path: path.display().to_string(),
        reason,
    };
    let length = file
        .metadata()
        .map_err(|error| unusable(path, error))?
        .len();
    if length == 0 {
        return Ok(());
    }
    let mut header = [0u8; 100];
    let mut reader = file;
    reader
        .seek(SeekFrom::Start(0))
        .and_then(|_| reader.read_exact(&mut header))
        .map_err(|_| {
            damaged(format!(
                "the file is {length} bytes, shorter than a SQLite header"
            ))
        })?;
    if &header[..16] != b"SQLite format 3\0" {
        // Not SQLite at all: the schema check names it.
        return Ok(());
    }
    let word = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        size => u64::from(size),
    };
    let pages = u64::from(word(28));
    // A process that died during a checkpoint leaves the header's new page count with
    // the pages still to be copied in the write-ahead log: SQLite reads them from there.
    // Only pages in neither are missing.
    let in_log = || {
        let held = crate::wal::committed_pages(&PathBuf::from(format!("{}-wal", path.display())));
        (length / page_size + 1..=pages)
            .all(|page| u32::try_from(page).is_ok_and(|page| held.contains(&page)))
    };
    if pages > 0 && word(24) == word(92) && length < pages * page_size && !in_log() {
        return Err(damaged(format!(
            "the file is {length} bytes, but its header says {pages} pages of {page_size} bytes ({} bytes): it was cut short",
            pages * page_size
        )));
    }
    Ok(())
}

/// Damage in the state's write-ahead log that SQLite would read past in silence.
fn check_log(path: &Path) -> Result<(), StateError> {
    crate::wal::check(&PathBuf::from(format!("{}-wal", path.display()))).map_err(|reason| {
        StateError::Damaged {
            path: path.display().to_string(),
            reason,
        }
    })
}

/// The tables of the database that are neither headwater's outbox (`headwater_*`) nor
/// `send`'s own: an empty list for a new or an existing state.
fn foreign_tables(connection: &rusqlite::Connection) -> Result<Vec<String>, rusqlite::Error> {
    let mut statement = connection.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         AND name NOT LIKE 'headwater\\_%' ESCAPE '\\' AND name NOT LIKE 'send\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let names = statement.query_map([], |row| row.get(0))?;
    names.collect()
}

/// Locks an existing state for an operator's command (`dead-letters`): it must be there
/// (nothing is created), whole, and a headwater state; the lock keeps a running `send`
/// and the command apart. The state is released when the returned file is dropped.
pub(crate) fn lock_existing(path: &Path) -> Result<(File, Layout), StateError> {
    if !path.is_file() {
        return Err(unusable(path, "there is no state file there"));
    }
    let lock = lock(path)?;
    check_not_truncated(path, &lock)?;
    check_log(path)?;
    let not_a_state = |found: String| StateError::NotAState {
        path: path.display().to_string(),
        found,
    };
    let connection =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|error| unusable(path, error))?;
    let foreign = foreign_tables(&connection).map_err(|error| not_a_state(error.to_string()))?;
    if !foreign.is_empty() {
        return Err(not_a_state(format!(
            "a SQLite database with other tables: {}",
            foreign.join(", ")
        )));
    }
    let has_outbox: bool = connection
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'headwater_outbox')",
            [],
            |row| row.get(0),
        )
        .map_err(|error| not_a_state(error.to_string()))?;
    if !has_outbox {
        return Err(not_a_state("no headwater outbox in it".into()));
    }
    let layout = layout_of(&connection).map_err(|reason| StateError::Damaged {
        path: path.display().to_string(),
        reason,
    })?;
    Ok((lock, layout))
}

/// Records, inside the capture's own transaction, that `count` lines are captured.
pub(crate) fn set_lines_captured(
    tx: &rusqlite::Transaction<'_>,
    count: usize,
) -> Result<(), rusqlite::Error> {
    tx.execute(
        "UPDATE send_input SET value = ?1 WHERE name = 'lines_captured'",
        [count.to_string()],
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable() {
        assert_eq!(fingerprint(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fingerprint(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn another_applications_file_is_refused_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteOptions::default();
        let app = dir.path().join("app.db");
        rusqlite::Connection::open(&app)
            .unwrap()
            .execute_batch(
                "CREATE TABLE todos (id TEXT PRIMARY KEY); INSERT INTO todos VALUES ('1');",
            )
            .unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(
            &text,
            "not a database, and long enough to have a header: ".repeat(4),
        )
        .unwrap();
        for fresh in [false, true] {
            let error = open(&app, "input", no_legacy, &options, fresh, Layout::Outbox)
                .err()
                .unwrap();
            assert!(error.to_string().contains("other tables: todos"), "{error}");
            let error = open(&text, "input", no_legacy, &options, fresh, Layout::Outbox)
                .err()
                .unwrap();
            assert!(matches!(error, StateError::NotAState { .. }), "{error}");
        }
        let rows: i64 = rusqlite::Connection::open(&app)
            .unwrap()
            .query_row("SELECT count(*) FROM todos", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 1);
        assert!(
            std::fs::read_to_string(&text)
                .unwrap()
                .starts_with("not a database")
        );
        let tables: Vec<String> = rusqlite::Connection::open(&app)
            .unwrap()
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tables, ["todos"], "no headwater table added");
    }

    #[test]
    fn a_state_remembers_its_input_and_refuses_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let options = SqliteOptions::default();
        let (state, connection) =
            open(&path, "input-a", no_legacy, &options, false, Layout::Outbox).unwrap();
        assert_eq!(state.lines_captured, 0);
        assert!(matches!(
            open(&path, "input-a", no_legacy, &options, false, Layout::Outbox),
            Err(StateError::Locked { .. })
        ));
        assert!(
            matches!(
                open(&path, "input-b", no_legacy, &options, true, Layout::Outbox),
                Err(StateError::Locked { .. })
            ),
            "a state in use is not emptied"
        );
        drop((state, connection));
        assert!(matches!(
            open(&path, "input-b", no_legacy, &options, false, Layout::Outbox),
            Err(StateError::OtherInput { .. })
        ));
        assert_eq!(
            open(&path, "input-b", no_legacy, &options, true, Layout::Outbox)
                .unwrap()
                .0
                .lines_captured,
            0
        );
    }

    #[test]
    fn a_state_an_earlier_version_made_resumes_and_is_brought_up_to_date() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let options = SqliteOptions::default();
        drop(
            open(
                &path,
                "fp (501 lines)",
                no_legacy,
                &options,
                false,
                Layout::Outbox,
            )
            .unwrap(),
        );
        let legacy = || {
            Ok(vec![
                "fp (500 lines)".to_owned(),
                "fp (501 lines)".to_owned(),
            ])
        };
        let (_, connection) = open(
            &path,
            "xxh3 new (500 lines)",
            legacy,
            &options,
            false,
            Layout::Outbox,
        )
        .unwrap();
        let stored: String = connection
            .query_row(
                "SELECT value FROM send_input WHERE name = 'input'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(stored, "xxh3 new (500 lines)");
        drop(connection);
        // Now in today's form, another input's identity is refused without a reading
        // of the input for earlier forms.
        let unread = || -> Result<Vec<String>, String> {
            panic!("the input was read again for a state in today's form")
        };
        assert!(matches!(
            open(
                &path,
                "xxh3 other (500 lines)",
                unread,
                &options,
                false,
                Layout::Outbox
            ),
            Err(StateError::OtherInput { .. })
        ));
    }

    #[test]
    fn a_state_of_another_input_in_an_earlier_form_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let options = SqliteOptions::default();
        drop(
            open(
                &path,
                "fp (501 lines)",
                no_legacy,
                &options,
                false,
                Layout::Outbox,
            )
            .unwrap(),
        );
        let legacy = || Ok(vec!["other (500 lines)".to_owned()]);
        assert!(matches!(
            open(
                &path,
                "xxh3 new (500 lines)",
                legacy,
                &options,
                false,
                Layout::Outbox
            ),
            Err(StateError::OtherInput { .. })
        ));
        let unreadable = || Err("gone".to_owned());
        let error = open(
            &path,
            "xxh3 new (500 lines)",
            unreadable,
            &options,
            false,
            Layout::Outbox,
        )
        .err()
        .unwrap();
        assert!(
            error.to_string().contains("cannot be read again"),
            "{error}"
        );
    }

    /// The input's identities in earlier forms, for a test whose states hold none.
    fn no_legacy() -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod checkpoint_tests {
    use std::path::Path;

    use super::*;

    /// A database whose rows are all still in its write-ahead log, copied as a crash
    /// leaves it: the folder holds `state.db` and `state.db-wal`.
    fn crashed_copy(rows: usize, into: &Path) {
        let source = tempfile::tempdir().unwrap();
        let path = source.path().join("state.db");
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE t (n INTEGER PRIMARY KEY, v TEXT);",
            )
            .unwrap();
        for n in 0..rows {
            connection
                .execute(
                    "INSERT INTO t (n, v) VALUES (?1, ?2)",
                    (n as i64, "x".repeat(200)),
                )
                .unwrap();
        }
        std::fs::copy(&path, into.join("state.db")).unwrap();
        std::fs::copy(
            source.path().join("state.db-wal"),
            into.join("state.db-wal"),
        )
        .unwrap();
        drop(connection);
    }

    /// Copies the log's last copy of page 1 over the file's: a checkpoint that wrote
    /// the header (and its new page count) and died before the other pages.
    fn checkpoint_page_one_only(dir: &Path) {
        let log = std::fs::read(dir.join("state.db-wal")).unwrap();
        let page = u32::from_be_bytes([log[8], log[9], log[10], log[11]]) as usize;
        let frame = 24 + page;
        let last = (0..(log.len() - 32) / frame)
            .rev()
            .find(|index| {
                let at = 32 + index * frame;
                u32::from_be_bytes([log[at], log[at + 1], log[at + 2], log[at + 3]]) == 1
            })
            .expect("page 1 is in the log");
        let mut file = std::fs::read(dir.join("state.db")).unwrap();
        let data = &log[32 + last * frame + 24..32 + (last + 1) * frame];
        file[..page].copy_from_slice(data);
        std::fs::write(dir.join("state.db"), file).unwrap();
    }

    #[test]
    fn a_checkpoint_cut_short_is_recovery_and_a_file_cut_short_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        crashed_copy(300, dir.path());
        checkpoint_page_one_only(dir.path());
        let path = dir.path().join("state.db");
        let file = File::open(&path).unwrap();
        assert!(
            check_not_truncated(&path, &file).is_ok(),
            "the pages past the file's end are in the log"
        );
        let rows: i64 = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 300, "SQLite reads every row back");

        let dir = tempfile::tempdir().unwrap();
        crashed_copy(300, dir.path());
        checkpoint_page_one_only(dir.path());
        std::fs::remove_file(dir.path().join("state.db-wal")).unwrap();
        let path = dir.path().join("state.db");
        let file = File::open(&path).unwrap();
        assert!(matches!(
            check_not_truncated(&path, &file),
            Err(StateError::Damaged { .. })
        ));
    }
}
