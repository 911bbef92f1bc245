//! One thread that owns the store's SQLite connection: every operation is sent to it,
//! so blocking SQLite calls never run on an async runtime's worker threads.

use std::sync::mpsc;
use std::thread;

use headwater_core::store::StoreError;
use rusqlite::{Connection, TransactionBehavior};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The connection's thread. It ends when the last handle is dropped.
#[derive(Debug)]
pub(crate) struct Worker {
    jobs: mpsc::Sender<Job>,
}

fn closed() -> StoreError {
    StoreError::Closed {
        reason: "the SQLite store's thread has stopped".into(),
    }
}

impl Worker {
    pub(crate) fn start(mut connection: Connection, name: String) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name(format!("headwater-sqlite {name}"))
            .spawn(move || {
                for job in queue {
                    job(&mut connection);
                }
            })?;
        Ok(Self { jobs })
    }

    /// Runs `operation` on the connection's thread.
    pub(crate) async fn run<R, F>(&self, operation: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (reply, answer) = futures::channel::oneshot::channel();
        self.jobs
            .send(Box::new(move |connection| {
                let _ = reply.send(operation(connection));
            }))
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Runs `operation` in one writing transaction on the connection's thread: it takes
    /// the write lock at once (`BEGIN IMMEDIATE`), so a write never fails half-way for
    /// another connection's lock.
    pub(crate) async fn write<R, F>(&self, operation: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        self.transaction(TransactionBehavior::Immediate, operation)
            .await
    }

    /// Runs `operation` in one reading transaction (`BEGIN DEFERRED`: a consistent
    /// snapshot, no write lock) on the connection's thread.
    pub(crate) async fn read<R, F>(&self, operation: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        self.transaction(TransactionBehavior::Deferred, operation)
            .await
    }

    async fn transaction<R, F>(
        &self,
        behavior: TransactionBehavior,
        operation: F,
    ) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        self.run(move |connection| {
            let transaction = connection
                .transaction_with_behavior(behavior)
                .map_err(crate::rows::sql_error)?;
            let result = operation(&transaction)?;
            transaction.commit().map_err(crate::rows::sql_error)?;
            Ok(result)
        })
        .await
    }
}
