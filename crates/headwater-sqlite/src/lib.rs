//! # headwater-sqlite
//!
//! The durable native [`ChangeStore`] of headwater, on SQLite (bundled: nothing to
//! install). Its tables (`headwater_outbox`, `headwater_dead`, `headwater_markers`,
//! `headwater_meta`) are created by a versioned [`migrate`] that can run inside an
//! application's own database and migrations, and changes can be captured inside the
//! application's own transaction with [`append_in`], so a record and its change commit
//! or roll back together: a transactional outbox.
//!
//! Every store operation is one SQLite transaction, run on a thread of the store's
//! own: blocking SQLite calls never run on an async runtime's worker threads.
//!
//! Applications reach it through the `headwater` facade (feature `sqlite`), which also
//! offers capture inside the app's own transaction (`Headwater::transaction`):
//!
//! ```
//! use headwater::{ChangeData, Headwater};
//! use headwater_sqlite::SqliteStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("app.db");
//! # let flume = headwater_mock_flume::MockFlume::start(Default::default()).await?;
//! # let url = flume.url();
//! let headwater = Headwater::builder()
//!     .flume([url])
//!     .store(SqliteStore::open(&path)?)
//!     .start()?;
//! headwater.capture(ChangeData::delete("todos", "1")?).await?;
//! headwater.flush().await?;
//! headwater.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Durability: `synchronous`
//!
//! The store runs SQLite in WAL mode. [`Synchronous::Full`] (the default) syncs the WAL
//! on every commit: a capture that returned survives a power cut. [`Synchronous::Normal`]
//! syncs only at checkpoints: about twice as fast for small transactions, and a crash
//! of the process still loses nothing, but a power cut or OS crash may lose the last
//! commits before the checkpoint (the database stays consistent; those captures are
//! gone). Choose `Normal` only where that is acceptable.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod rows;
mod schema;
mod worker;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use headwater_core::model::{Captured, Change, DeadLetter, Seq, SyncMarker};
use headwater_core::store::{
    ChangeStore, Claim, ClaimRequest, Location, OutboxStats, Outcome, Recorded, StoreError,
    StoredEntry,
};
use rusqlite::Connection;

pub use rows::append_in;
pub use rusqlite;
pub use schema::{MigrateError, SCHEMA_VERSION, migrate};

use worker::Worker;

/// How SQLite syncs commits to disk (see the crate docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Synchronous {
    /// Sync on every commit: nothing that was committed is lost, even at a power cut.
    #[default]
    Full,
    /// Sync at checkpoints only: a power cut may lose the last commits.
    Normal,
}

/// Options for opening a [`SqliteStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// How commits reach the disk.
    pub synchronous: Synchronous,
    /// How long a statement waits for another connection's lock before failing.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Opening a store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// SQLite could not open or set up the database.
    #[error("cannot open the SQLite database {path}")]
    Sqlite {
        /// The database file.
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The tables could not be installed or upgraded.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// The store's thread could not start.
    #[error("cannot start the SQLite store's thread")]
    Thread(#[source] std::io::Error),
}

/// Sets the pragmas the store relies on (WAL, `synchronous`, a busy timeout) on a
/// connection. The store does this on its own connection; an application that writes
/// to the same database through its own connection should do it there too, so the two
/// wait for each other's locks instead of failing.
pub fn configure_connection(
    connection: &Connection,
    options: &SqliteOptions,
) -> Result<(), rusqlite::Error> {
    // WAL lets the syncer read while the application writes. In-memory databases stay
    // in their own journal mode, which is fine for them.
    let _: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    let synchronous = match options.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    connection.execute_batch(&format!("PRAGMA synchronous = {synchronous};"))?;
    connection.busy_timeout(options.busy_timeout)?;
    Ok(())
}

/// An outbox in a SQLite database. Clones share one connection and its thread.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    worker: Arc<Worker>,
    /// The database file, if the connection has one (not an in-memory database).
    database: Option<std::path::PathBuf>,
}

impl SqliteStore {
    /// Opens (creating it if needed) the database at `path` with default options, and
    /// installs or upgrades headwater's tables.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(path, &SqliteOptions::default())
    }

    /// Opens the database at `path` with `options`.
    pub fn open_with(path: impl AsRef<Path>, options: &SqliteOptions) -> Result<Self, OpenError> {
        let path = path.as_ref();
        let sqlite = |source| OpenError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let connection = Connection::open(path).map_err(sqlite)?;
        configure_connection(&connection, options).map_err(sqlite)?;
        Self::from_connection(connection, path.display().to_string())
    }

    /// A store in a private in-memory database (tests; nothing survives).
    pub fn open_in_memory() -> Result<Self, OpenError> {
        let connection = Connection::open_in_memory().map_err(|source| OpenError::Sqlite {
            path: ":memory:".into(),
            source,
        })?;
        Self::from_connection(connection, ":memory:".into())
    }

    /// A store on a connection the caller opened and configured. Its tables are
    /// installed or upgraded.
    pub fn from_connection(connection: Connection, name: String) -> Result<Self, OpenError> {
        migrate(&connection)?;
        let database = connection
            .path()
            .filter(|path| !path.is_empty())
            .map(std::path::PathBuf::from);
        let worker = Worker::start(connection, name).map_err(OpenError::Thread)?;
        Ok(Self {
            worker: Arc::new(worker),
            database,
        })
    }

    /// The database file this store reads and writes (`None` for an in-memory
    /// database): where an application's own transactions must capture for their
    /// changes to be delivered.
    pub fn database_path(&self) -> Option<&Path> {
        self.database.as_deref()
    }

    /// Appends a row that does not decode, as a damaged disk or a newer version might
    /// leave: for tests of quarantine. Returns its seq.
    #[doc(hidden)]
    pub async fn append_damaged(&self, raw: &str) -> Result<Seq, StoreError> {
        let raw = raw.to_owned();
        self.worker
            .write(move |connection| {
                connection
                    .execute(
                        "INSERT INTO headwater_outbox (id, captured_at, collection, key, op, weight)
                         VALUES ('not-a-uuid', 'not-a-time', 'c', 'k', ?1, 0)",
                        rusqlite::params![raw],
                    )
                    .map_err(rows::sql_error)?;
                connection
                    .execute(
                        "UPDATE headwater_meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'pending_count'",
                        [],
                    )
                    .map_err(rows::sql_error)?;
                rows::seq_column(0, connection.last_insert_rowid()).map_err(rows::sql_error)
            })
            .await
    }

    /// Sets the last assigned seq, for tests of behaviour near the 2^53 limit.
    #[doc(hidden)]
    pub async fn force_last_seq(&self, last: u64) -> Result<(), StoreError> {
        self.worker
            .write(move |connection| {
                connection
                    .execute(
                        "INSERT OR REPLACE INTO sqlite_sequence (name, seq) VALUES ('headwater_outbox', ?1)",
                        rusqlite::params![last as i64],
                    )
                    .map(drop)
                    .map_err(rows::sql_error)
            })
            .await
    }
}

#[async_trait::async_trait]
impl ChangeStore for SqliteStore {
    async fn append(&self, changes: Vec<Captured>) -> Result<Vec<Change>, StoreError> {
        self.worker
            .write(move |connection| append_in(connection, changes))
            .await
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        let request = request.clone();
        let claimed = self
            .worker
            .write(move |connection| rows::claim(connection, &request))
            .await?;
        Ok(match claimed {
            Ok(entries) => Claim::Granted(entries),
            Err(held) => Claim::Held(held),
        })
    }

    async fn record(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        outcome: &Outcome,
    ) -> Result<Recorded, StoreError> {
        let owner = owner.to_owned();
        let outcome = outcome.clone();
        let holds = self
            .worker
            .write(move |connection| rows::record(connection, &owner, now, &outcome))
            .await?;
        Ok(if holds {
            Recorded::Applied
        } else {
            Recorded::LeaseLost
        })
    }

    async fn release(&self, owner: &str) -> Result<(), StoreError> {
        let owner = owner.to_owned();
        self.worker
            .write(move |connection| rows::release(connection, &owner))
            .await
    }

    async fn pending(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        self.worker
            .read(move |connection| rows::read(connection, after, limit))
            .await
    }

    async fn dead_letters(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.worker
            .read(move |connection| rows::dead_letters(connection, after, limit))
            .await
    }

    async fn requeue(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
        let seqs = seqs.to_vec();
        self.worker
            .write(move |connection| rows::requeue(connection, &seqs))
            .await
    }

    async fn discard(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
        let seqs = seqs.to_vec();
        self.worker
            .write(move |connection| rows::discard(connection, &seqs))
            .await
    }

    async fn stats(&self) -> Result<OutboxStats, StoreError> {
        self.worker.read(rows::stats).await
    }

    async fn sync_marker(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<SyncMarker>, StoreError> {
        let (collection, key) = (collection.to_owned(), key.to_owned());
        self.worker
            .read(move |connection| rows::sync_marker(connection, &collection, &key))
            .await
    }

    async fn locate(&self, seq: Seq) -> Result<Location, StoreError> {
        self.worker
            .read(move |connection| rows::locate(connection, seq))
            .await
    }
}
