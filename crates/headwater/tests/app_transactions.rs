//! Capturing inside the application's own SQLite transactions: the changes must land
//! where delivery reads, or the capture is refused with the fix.
#![cfg(feature = "sqlite")]

use headwater::sqlite::{SqliteStore, migrate, rusqlite};
use headwater::{CaptureError, ChangeData, Headwater};

#[derive(Debug)]
enum AppError {
    Sql(#[allow(dead_code)] rusqlite::Error),
    Capture(CaptureError),
}

impl From<rusqlite::Error> for AppError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Sql(error)
    }
}

impl From<CaptureError> for AppError {
    fn from(error: CaptureError) -> Self {
        Self::Capture(error)
    }
}

fn app_database(path: &std::path::Path) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection
        .execute_batch("CREATE TABLE IF NOT EXISTS todos (id TEXT PRIMARY KEY, title TEXT)")
        .unwrap();
    migrate(&connection).unwrap();
    connection
}

fn write_todo(
    headwater: &Headwater,
    connection: &mut rusqlite::Connection,
) -> Result<(), AppError> {
    headwater
        .transaction(connection, |tx, capture| {
            tx.execute("INSERT INTO todos VALUES ('1', 'milk')", [])?;
            capture.change(ChangeData::insert("todos", "1", &"milk").map_err(CaptureError::from)?);
            Ok::<_, AppError>(())
        })
        .map(|_| ())
}

fn rows(connection: &rusqlite::Connection, table: &str) -> i64 {
    connection
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
}

/// The trap of the docs issue: `migrate` run, no `.store(..)` given (the memory store
/// is the default), and `transaction` committed the changes into a table nobody
/// delivers from. Now it is refused, and neither the row nor the change is written.
#[tokio::test]
async fn a_transaction_on_a_database_delivery_does_not_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let mut connection = app_database(&path);

    let on_memory = Headwater::builder()
        .flume(["http://127.0.0.1:9/"])
        .start()
        .unwrap();
    let other = dir.path().join("other.db");
    let on_another_file = Headwater::builder()
        .flume(["http://127.0.0.1:9/"])
        .store(SqliteStore::open(&other).unwrap())
        .start()
        .unwrap();
    for headwater in [&on_memory, &on_another_file] {
        match write_todo(headwater, &mut connection) {
            Err(AppError::Capture(CaptureError::NotWhereDeliveryReads(message))) => {
                assert!(message.contains("SqliteStore::open"), "{message}");
                assert!(message.contains("app.db"), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(rows(&connection, "todos"), 0, "rolled back");
    assert_eq!(rows(&connection, "headwater_outbox"), 0, "rolled back");

    // The same file, through another path: captured.
    let on_this_file = Headwater::builder()
        .flume(["http://127.0.0.1:9/"])
        .store(SqliteStore::open(dir.path().join(".").join("app.db")).unwrap())
        .start()
        .unwrap();
    write_todo(&on_this_file, &mut connection).unwrap();
    assert_eq!(rows(&connection, "todos"), 1);
    assert_eq!(on_this_file.status().await.unwrap().pending, 1);
    for headwater in [on_memory, on_another_file, on_this_file] {
        headwater.shutdown().await;
    }
}
