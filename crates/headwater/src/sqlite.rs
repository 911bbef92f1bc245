//! SQLite: the durable native store, and capture inside the application's own
//! transactions (feature `sqlite`).
//!
//! The application keeps its data in its own SQLite database and connection. headwater's
//! tables join that database ([`migrate`], idempotent, runs in the app's migrations), the
//! syncer reads them through a [`SqliteStore`] on a connection of its own, and
//! [`Headwater::transaction`] writes the app's rows and their changes in one
//! transaction: both commit or neither does.
//!
//! ```
//! use headwater::sqlite::{SqliteStore, migrate, rusqlite};
//! use headwater::{ChangeData, Headwater};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("app.db");
//! # let flume = headwater_mock_flume::MockFlume::start(Default::default()).await?;
//! # let url = flume.url();
//! // The app's own database, with its own schema and headwater's tables.
//! let mut connection = rusqlite::Connection::open(&path)?;
//! connection.execute_batch("CREATE TABLE IF NOT EXISTS todos (id TEXT PRIMARY KEY, title TEXT)")?;
//! migrate(&connection)?;
//!
//! let headwater = Headwater::builder()
//!     .flume([url])
//!     .store(SqliteStore::open(&path)?)
//!     .start()?;
//!
//! // The row and its change commit together.
//! headwater.transaction(&mut connection, |tx, capture| {
//!     tx.execute("INSERT INTO todos VALUES ('1', 'milk')", [])?;
//!     capture.change(ChangeData::insert("todos", "1", &serde_json::json!({"title": "milk"}))?);
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//!
//! headwater.flush().await?;
//! headwater.shutdown().await;
//! # assert_eq!(flume.unique_ids(), 1);
//! # Ok(()) }
//! ```

use headwater_core::engine::CaptureError;
use headwater_core::model::{Change, ChangeData};
use std::path::Path;

pub use headwater_sqlite::{
    MigrateError, OpenError, SCHEMA_VERSION, SqliteOptions, SqliteStore, Synchronous,
    configure_connection, migrate, rusqlite,
};

use crate::handle::{Headwater, Receipt};

/// The lease owner of a process that holds [`sole_process_lock`].
pub(crate) const SOLE_PROCESS_OWNER: &str = "sole-process";

/// An exclusive lock on the delivery database file itself, if no other process (or
/// other headwater in this one) holds it: the holder is the only one delivering from
/// it, so it can hold the outbox's lease under a name that does not change from one run
/// to the next, and a process that restarts after a crash takes its predecessor's lease
/// back at once instead of waiting for it to lapse. The operating system releases the
/// lock when the process dies. (SQLite's own locks are `fcntl` locks, which this
/// `flock` does not touch; `headwater send` locks its state the same way.) Unix only:
/// elsewhere such a lock is mandatory and would shut SQLite's own handles out.
#[cfg(unix)]
pub(crate) fn sole_process_lock(database: &Path) -> Option<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(database)
        .ok()?;
    file.try_lock().ok()?;
    Some(file)
}

/// See the Unix version: elsewhere every process holds the lease under a name of its
/// own, and a restart waits for its predecessor's lease to lapse.
#[cfg(not(unix))]
pub(crate) fn sole_process_lock(_database: &Path) -> Option<std::fs::File> {
    None
}

/// The changes a [`Headwater::transaction`] appends when it commits.
#[derive(Debug, Default)]
pub struct Capture {
    changes: Vec<ChangeData>,
}

impl Capture {
    /// Captures `change` with the transaction.
    pub fn change(&mut self, change: ChangeData) {
        self.changes.push(change);
    }

    /// Captures several changes with the transaction, in order.
    pub fn changes(&mut self, changes: impl IntoIterator<Item = ChangeData>) {
        self.changes.extend(changes);
    }
}

impl Headwater {
    fn check_delivery_reads(&self, tx: &rusqlite::Transaction<'_>) -> Result<(), CaptureError> {
        let here = tx.path().filter(|path| !path.is_empty());
        // The delivery database's path was made canonical when headwater started.
        let same_file = |here: &Path, read: &Path| {
            here == read || std::fs::canonicalize(here).is_ok_and(|here| here == read)
        };
        match (here, self.delivery_database()) {
            (Some(here), Some(read)) if same_file(Path::new(here), read) => Ok(()),
            (here, read) => Err(CaptureError::NotWhereDeliveryReads(format!(
                "this transaction writes to {}, but delivery reads {}: its changes would never be sent. \
                 Start headwater with .store(SqliteStore::open(<the app's database file>)) so that both use one database",
                here.map_or_else(
                    || "an in-memory database".to_owned(),
                    |path| format!("the database {path}")
                ),
                read.map_or_else(
                    || "another store (the memory store unless .store(...) was given)".to_owned(),
                    |path| format!("the database {}", path.display())
                ),
            ))),
        }
    }

    /// Runs `write` in a transaction on the application's `connection`, appends the
    /// changes it captured in that same transaction, commits, and wakes delivery. If
    /// `write` fails (or the append does), the transaction rolls back: neither the app's
    /// rows nor the changes are written.
    ///
    /// This is blocking SQLite work on the caller's thread, as the app's own writes are;
    /// in async code, run it where the app runs its other database writes (for
    /// instance in `tokio::task::spawn_blocking`).
    pub fn transaction<T, E>(
        &self,
        connection: &mut rusqlite::Connection,
        write: impl FnOnce(&rusqlite::Transaction<'_>, &mut Capture) -> Result<T, E>,
    ) -> Result<(T, Vec<Receipt>), E>
    where
        E: From<rusqlite::Error> + From<CaptureError>,
    {
        let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut capture = Capture::default();
        let value = write(&tx, &mut capture)?;
        let changes = self.capture_in(&tx, capture.changes)?;
        tx.commit()?;
        self.outbox().appended(&changes);
        let receipts = changes.iter().map(|change| self.receipt(change)).collect();
        Ok((value, receipts))
    }

    /// Appends `changes` inside the application's open transaction `tx`, without
    /// committing: call [`Headwater::wake`] after the application commits, so delivery
    /// starts at once (otherwise it notices at its next idle poll).
    ///
    /// Refused with [`CaptureError::NotWhereDeliveryReads`] unless headwater was started
    /// with a [`SqliteStore`] on the same database file as `tx`: otherwise the changes
    /// would be committed where delivery never looks, and never sent.
    pub fn capture_in(
        &self,
        tx: &rusqlite::Transaction<'_>,
        changes: Vec<ChangeData>,
    ) -> Result<Vec<Change>, CaptureError> {
        self.check_delivery_reads(tx)?;
        let captured = self.outbox().prepare(self.clock_now(), changes);
        Ok(headwater_sqlite::append_in(tx, captured)?)
    }
}
