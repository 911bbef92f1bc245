//! The [`ChangeStore`] on IndexedDB: every method is one transaction with no foreign
//! await inside, and its requests are issued together, then awaited together (one
//! event-loop turn for many requests, not one per request).
//!
//! Here: the store's connection (taken from the app's database, closed by the app or
//! for another tab's upgrade), its transactions, and the trait's methods, each of which
//! opens its transaction and hands the work to the module of that part: `read.rs`
//! (entries, decoded), `claim.rs` and `lease.rs` (a claim under the lease),
//! `outcomes.rs` (acknowledgements, retries, dead letters), `dead_letters.rs` (the
//! operator's requeue and discard), `stats.rs` (the status read), `append.rs` and
//! `markers/`. The hooks for tests are in `test_hooks.rs`.

use std::cell::Cell;
use std::rc::Rc;

use chrono::{DateTime, Utc};
use headwater_core::model::{Captured, Change, DeadLetter, Seq, SyncMarker};
use headwater_core::store::{
    ChangeStore, Claim, ClaimRequest, Location, OutboxStats, Outcome, Recorded, StoreError,
    StoredEntry,
};
use indexed_db_futures::database::Database;
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::{
    Transaction, TransactionDurability, TransactionMode, TransactionOptions,
};
use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;
use wasm_bindgen::closure::Closure;

use crate::append::{Appending, SeenSeq, append_in};
use crate::claim::claim_in;
use crate::codec::parse;
use crate::error::{IdbError, store_error};
use crate::layout::{
    CHANGES, ConnectionKeys, DEAD, HEADWATER_STORES, LEASE, LEGACY_MARKERS, MARKER_LOG, RETRIES,
    STATE, legacy_marker_key, seq_key,
};
use crate::lease::lease_in;
use crate::markers::LogWatch;
use crate::outcomes::{recorded, write_outcome};
use crate::read::read_in;

/// An outbox in an application's IndexedDB database. Clones share one connection.
#[derive(Clone)]
pub struct IdbStore {
    db: Rc<Database>,
    /// Set once the connection is closed (by the app, or for another tab's upgrade).
    closed: Rc<Cell<bool>>,
    seen: SeenSeq,
    keys: ConnectionKeys,
    log_watch: LogWatch,
    _on_version_change: Rc<Closure<dyn FnMut()>>,
}

impl std::fmt::Debug for IdbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdbStore")
            .field("database", &self.db.name())
            .field("closed", &self.closed.get())
            .finish()
    }
}

/// How a transaction of the store reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Flushed before the transaction completes: captures.
    Strict,
    /// Completes once written to the OS: leases, acknowledgements and retries. If the
    /// browser dies right after one, a lost lease just lapses and a lost
    /// acknowledgement sends the change again under the same id.
    Relaxed,
}

impl IdbStore {
    /// The store on `db`, which must have headwater's stores (installed by
    /// [`Upgrade::install_headwater`](crate::Upgrade::install_headwater)).
    pub fn new(db: Database) -> Result<Self, IdbError> {
        let existing: Vec<String> = db.object_store_names().collect();
        let missing: Vec<String> = HEADWATER_STORES
            .iter()
            .filter(|name| !existing.iter().any(|have| have == *name))
            .map(|name| (*name).to_owned())
            .collect();
        if !missing.is_empty() {
            let name = db.name();
            db.close();
            return Err(IdbError::NotInstalled { name, missing });
        }
        // Another tab that opens a newer version (or deletes the database) waits until
        // every connection closes: close at once, and say so on every later call.
        let closed = Rc::new(Cell::new(false));
        let on_version_change = {
            let closed = Rc::clone(&closed);
            let connection: web_sys::IdbDatabase = db.as_sys().clone().unchecked_into();
            Closure::<dyn FnMut()>::new(move || {
                closed.set(true);
                connection.close();
            })
        };
        let connection: &web_sys::IdbDatabase = db.as_sys();
        connection.set_onversionchange(Some(on_version_change.as_ref().unchecked_ref()));
        Ok(Self {
            db: Rc::new(db),
            closed,
            seen: SeenSeq::default(),
            keys: ConnectionKeys::new(),
            log_watch: LogWatch::new(),
            _on_version_change: Rc::new(on_version_change),
        })
    }

    /// The database, for the application's own reads and writes (cursors, indexes).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Fails with [`StoreError::Closed`] once the connection is closed.
    pub(crate) fn open_check(&self) -> Result<(), StoreError> {
        if self.closed.get() {
            return Err(StoreError::Closed {
                reason: format!(
                    "the connection to {:?} is closed (by this app, or because another tab is upgrading or deleting the database): reopen it",
                    self.db.name()
                ),
            });
        }
        Ok(())
    }

    /// A readwrite transaction over `stores`, flushed as `durability` says.
    pub(crate) fn write_tx(
        &self,
        stores: &[&str],
        durability: Durability,
    ) -> Result<Transaction<'_>, StoreError> {
        self.open_check()?;
        let mut options = TransactionOptions::new();
        options.set_durability(match durability {
            Durability::Strict => TransactionDurability::Strict,
            Durability::Relaxed => TransactionDurability::Relaxed,
        });
        self.db
            .transaction(stores)
            .with_mode(TransactionMode::Readwrite)
            .with_options(options)
            .build()
            .map_err(store_error)
    }

    /// A readonly transaction over `stores`.
    fn read_tx(&self, stores: &[&str]) -> Result<Transaction<'_>, StoreError> {
        self.open_check()?;
        self.db.transaction(stores).build().map_err(store_error)
    }

    /// The highest seq this connection has seen.
    pub(crate) fn seen(&self) -> &SeenSeq {
        &self.seen
    }

    /// The keys this connection gives the rows it adds to the state store and the
    /// marker log.
    pub(crate) fn keys(&self) -> &ConnectionKeys {
        &self.keys
    }

    /// Commits `tx`, then reads the seqs `appending` was given.
    pub(crate) async fn commit_appended(
        &self,
        tx: Transaction<'_>,
        appending: Appending,
    ) -> Result<Vec<Change>, StoreError> {
        if let Err(error) = tx.commit().await {
            return Err(appending.failure().unwrap_or_else(|| store_error(error)));
        }
        appending.finish(&self.seen)
    }

    /// Closes the connection (all clones); further operations fail with
    /// [`StoreError::Closed`].
    pub fn close(&self) {
        self.closed.set(true);
        self.db.as_sys().close();
    }

    /// Merges the marker log's rows `rows` in a transaction of their own: it holds up
    /// nothing but acknowledgements and lookups (captures, claims' reads of changes and
    /// status reads do not touch the log), and the claim before it has committed.
    async fn merge_markers(&self, rows: Option<Vec<JsValue>>) -> Result<(), StoreError> {
        let Some(rows) = rows else {
            return Ok(());
        };
        let tx = self.write_tx(&[MARKER_LOG], Durability::Relaxed)?;
        let log = tx.object_store(MARKER_LOG).map_err(store_error)?;
        crate::markers::merge(log.as_sys(), &self.keys, &rows).await?;
        tx.commit().await.map_err(store_error)
    }

    /// The first half of `record` and `record_then_claim`: a transaction over the
    /// stores an outcome touches, the lease read in it, and the outcome's writes.
    /// Returns the open transaction, the lease request, whether `owner` held the lease,
    /// and the bytes the outcome removed.
    async fn outcome_tx(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        outcome: &Outcome,
    ) -> Result<(Transaction<'_>, web_sys::IdbRequest, Option<bool>, u64), StoreError> {
        let tx = self.write_tx(
            &[CHANGES, RETRIES, DEAD, MARKER_LOG, STATE],
            Durability::Relaxed,
        )?;
        let lease = crate::lease::ask(&tx)?;
        let (held, removed) = write_outcome(
            &tx,
            &self.keys,
            &self.log_watch,
            owner,
            now,
            outcome,
            &lease,
        )
        .await?;
        Ok((tx, lease, held, removed))
    }
}

#[async_trait::async_trait(?Send)]
impl ChangeStore for IdbStore {
    async fn append(&self, changes: Vec<Captured>) -> Result<Vec<Change>, StoreError> {
        let tx = self.write_tx(&[CHANGES], Durability::Strict)?;
        let appending = append_in(&tx, self.seen(), changes).await?;
        self.commit_appended(tx, appending).await
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        let tx = self.write_tx(&[CHANGES, RETRIES, MARKER_LOG, STATE], Durability::Relaxed)?;
        let lease = crate::lease::ask(&tx)?;
        let (claim, wrote, merge) =
            claim_in(&tx, &self.seen, &self.log_watch, request, &lease, 0).await?;
        if wrote {
            tx.commit().await.map_err(store_error)?;
        } else {
            // Nothing was written, so the transaction is let go (dropping it aborts,
            // which undoes nothing) without waiting for it to end: that wait cost as
            // much as reading a hundred changes.
            drop(tx);
        }
        self.merge_markers(merge).await?;
        Ok(claim)
    }

    async fn record(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        outcome: &Outcome,
    ) -> Result<Recorded, StoreError> {
        let (tx, lease, held, removed) = self.outcome_tx(owner, now, outcome).await?;
        let state = tx.object_store(STATE).map_err(store_error)?;
        crate::pending_bytes::add(state.as_sys(), &self.keys, -(removed as f64))?;
        tx.commit().await.map_err(store_error)?;
        recorded(held, owner, &lease)
    }

    /// One transaction: the outcome's writes, then the claim's reads (which the
    /// outcome does not change: it touches only changes the syncer has read), one
    /// commit.
    async fn record_then_claim(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        outcome: &Outcome,
        request: &ClaimRequest,
    ) -> Result<(Recorded, Result<Claim, StoreError>), StoreError> {
        let (tx, lease, held, removed) = self.outcome_tx(owner, now, outcome).await?;
        // The claim takes the removed bytes off the count it reads and writes back (a
        // delta row for them would be one request more, and another to fold it).
        let (claim, _, merge) =
            claim_in(&tx, &self.seen, &self.log_watch, request, &lease, removed).await?;
        tx.commit().await.map_err(store_error)?;
        // The outcome is written now: a failed merge fails only the claim (the outer
        // error would say the outcome was not written, and it would be written twice).
        let claim = self.merge_markers(merge).await.map(|()| claim);
        Ok((recorded(held, owner, &lease)?, claim))
    }

    async fn release(&self, owner: &str) -> Result<(), StoreError> {
        let tx = self.write_tx(&[STATE], Durability::Relaxed)?;
        let state = tx.object_store(STATE).map_err(store_error)?;
        if lease_in(&state)
            .await?
            .is_some_and(|lease| lease.is_held_by(owner))
        {
            state
                .delete(JsValue::from_str(LEASE))
                .primitive()
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    }

    async fn pending(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let tx = self.read_tx(&[CHANGES, RETRIES])?;
        read_in(&tx, after, limit).await
    }

    async fn dead_letters(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let tx = self.read_tx(&[DEAD])?;
        crate::dead_letters::letters_in(&tx, after, limit).await
    }

    async fn requeue(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
        let tx = self.write_tx(&[CHANGES, DEAD, STATE], Durability::Strict)?;
        let requeued = crate::dead_letters::requeue_in(&tx, &self.keys, seqs).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(requeued)
    }

    async fn discard(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
        let tx = self.write_tx(&[DEAD], Durability::Strict)?;
        let deleted = crate::dead_letters::discard_in(&tx, seqs).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(deleted)
    }

    async fn stats(&self) -> Result<OutboxStats, StoreError> {
        // Readwrite: changes captured since the byte count was last brought up to date
        // are weighed here and folded in (see crate::pending_bytes).
        let tx = self.write_tx(&[CHANGES, RETRIES, DEAD, STATE], Durability::Relaxed)?;
        let (stats, wrote) = crate::stats::stats_in(&tx, &self.seen).await?;
        if wrote {
            tx.commit().await.map_err(store_error)?;
        } else {
            drop(tx);
        }
        Ok(stats)
    }

    async fn sync_marker(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<SyncMarker>, StoreError> {
        let legacy = self
            .db
            .object_store_names()
            .any(|name| name == LEGACY_MARKERS);
        let stores: &[&str] = if legacy {
            &[MARKER_LOG, LEGACY_MARKERS]
        } else {
            &[MARKER_LOG]
        };
        let tx = self.read_tx(stores)?;
        let log = tx.object_store(MARKER_LOG).map_err(store_error)?;
        let logged = crate::markers::lookup(log.as_sys(), collection, key).await?;
        if !legacy {
            return Ok(logged);
        }
        let old: Option<SyncMarker> = tx
            .object_store(LEGACY_MARKERS)
            .map_err(store_error)?
            .get::<JsValue, _, _>(legacy_marker_key(collection, key))
            .await
            .map_err(store_error)?
            .map(|value| parse(&value))
            .transpose()?;
        Ok(match (old, logged) {
            (Some(old), Some(logged)) if old.last_acked_seq > logged.last_acked_seq => Some(old),
            (old, logged) => logged.or(old),
        })
    }

    async fn locate(&self, seq: Seq) -> Result<Location, StoreError> {
        let tx = self.read_tx(&[CHANGES, DEAD])?;
        let changes = tx.object_store(CHANGES).map_err(store_error)?;
        let dead = tx.object_store(DEAD).map_err(store_error)?;
        let pending = changes
            .count()
            .with_query(seq_key(seq))
            .primitive()
            .map_err(store_error)?;
        let letter = dead
            .get::<JsValue, _, _>(seq_key(seq))
            .primitive()
            .map_err(store_error)?;
        if pending.await.map_err(store_error)? > 0 {
            return Ok(Location::Pending);
        }
        Ok(match letter.await.map_err(store_error)? {
            Some(value) => Location::DeadLettered(parse(&value)?),
            None => Location::Gone,
        })
    }
}
