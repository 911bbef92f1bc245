//! headwater's tables, created and upgraded by versioned migrations that run inside an
//! application's own database, next to its own tables.

use rusqlite::{Connection, OptionalExtension, params};

/// The schema version this crate writes. Each migration below raises it by one.
pub const SCHEMA_VERSION: i64 = 1;

/// Statements of each migration, in order: migration `n` brings the schema from version
/// `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: the outbox, dead letters, sync markers and bookkeeping.
    "CREATE TABLE headwater_outbox (
         seq INTEGER PRIMARY KEY AUTOINCREMENT,
         id TEXT NOT NULL,
         captured_at TEXT NOT NULL,
         collection TEXT NOT NULL,
         key TEXT NOT NULL,
         op TEXT NOT NULL,
         value TEXT,
         headers TEXT,
         weight INTEGER NOT NULL,
         attempts INTEGER NOT NULL DEFAULT 0,
         next_attempt_at TEXT,
         last_error TEXT
     );
     CREATE TABLE headwater_dead (
         seq INTEGER PRIMARY KEY,
         content TEXT NOT NULL,
         reason TEXT NOT NULL,
         at TEXT NOT NULL,
         attempts INTEGER NOT NULL
     );
     CREATE TABLE headwater_markers (
         collection TEXT NOT NULL,
         key TEXT NOT NULL,
         last_acked_seq INTEGER NOT NULL,
         acked_at TEXT NOT NULL,
         PRIMARY KEY (collection, key)
     ) WITHOUT ROWID;
     INSERT INTO headwater_meta (name, value) VALUES ('pending_count', '0'), ('pending_bytes', '0');",
];

/// Creates headwater's tables in `connection`'s database, or upgrades them to this
/// version. Idempotent: run it on every start, or from the application's own
/// migrations (it only touches tables named `headwater_*`). It runs in a transaction of
/// its own unless one is open already.
///
/// A database written by a newer headwater (a higher schema version) is refused rather
/// than guessed at.
pub fn migrate(connection: &Connection) -> Result<(), MigrateError> {
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS headwater_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;",
    )?;
    let version: i64 = connection
        .query_row(
            "SELECT value FROM headwater_meta WHERE name = 'schema_version'",
            [],
            |row| row.get::<_, String>(0),
        )
        .optional()?
        .and_then(|text| text.parse().ok())
        .unwrap_or(0);
    if version > SCHEMA_VERSION {
        return Err(MigrateError::Newer {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    let own_transaction = connection.is_autocommit();
    if own_transaction {
        connection.execute_batch("BEGIN IMMEDIATE")?;
    }
    let result = (|| {
        for (step, statements) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            connection.execute_batch(statements)?;
            connection.execute(
                "INSERT INTO headwater_meta (name, value) VALUES ('schema_version', ?1)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![(step as i64 + 1).to_string()],
            )?;
        }
        Ok::<(), rusqlite::Error>(())
    })();
    if own_transaction {
        match &result {
            Ok(()) => connection.execute_batch("COMMIT")?,
            Err(_) => {
                let _ = connection.execute_batch("ROLLBACK");
            }
        }
    }
    result.map_err(MigrateError::from)
}

/// Installing or upgrading headwater's tables failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// SQLite refused a statement.
    #[error("cannot install headwater's tables")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer headwater.
    #[error(
        "the database holds headwater schema version {found}, newer than this build supports ({supported}): upgrade headwater"
    )]
    Newer {
        /// The version found.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_harmless_and_leaves_app_tables_alone() {
        let connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch("CREATE TABLE todos (id TEXT PRIMARY KEY, title TEXT); INSERT INTO todos VALUES ('1', 'milk');")
            .unwrap();
        migrate(&connection).unwrap();
        migrate(&connection).unwrap();
        let todos: i64 = connection
            .query_row("SELECT COUNT(*) FROM todos", [], |row| row.get(0))
            .unwrap();
        assert_eq!(todos, 1);
        let version: String = connection
            .query_row(
                "SELECT value FROM headwater_meta WHERE name = 'schema_version'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION.to_string());
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let connection = Connection::open_in_memory().unwrap();
        migrate(&connection).unwrap();
        connection
            .execute(
                "UPDATE headwater_meta SET value = '99' WHERE name = 'schema_version'",
                [],
            )
            .unwrap();
        assert!(matches!(
            migrate(&connection),
            Err(MigrateError::Newer { found: 99, .. })
        ));
    }

    #[test]
    fn a_migration_inside_the_apps_transaction_commits_with_it() {
        let mut connection = Connection::open_in_memory().unwrap();
        let tx = connection.transaction().unwrap();
        tx.execute_batch("CREATE TABLE todos (id TEXT PRIMARY KEY);")
            .unwrap();
        migrate(&tx).unwrap();
        tx.rollback().unwrap();
        let tables: i64 = connection
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'headwater_%' OR name = 'todos'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0, "rolled back with the app's own schema change");
    }
}
