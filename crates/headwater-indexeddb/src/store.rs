//! The [`ChangeStore`] on IndexedDB: every method is one transaction with no foreign
//! await inside, and its requests are issued together, then awaited together (one
//! event-loop turn for many requests, not one per request).

use std::cell::Cell;
use std::rc::Rc;

use chrono::{DateTime, Utc};
use headwater_core::model::{
    Captured, Change, DeadLetter, Delivery, OutboxEntry, Seq, SyncMarker, UnreadableEntry,
};
use headwater_core::store::{
    ChangeStore, Claim, ClaimRequest, Lease, Location, OldestPending, OutboxStats, Outcome,
    Recorded, StoreError, StoredEntry,
};
use indexed_db_futures::KeyRange;
use indexed_db_futures::database::Database;
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::object_store::ObjectStore;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::{
    Transaction, TransactionDurability, TransactionMode, TransactionOptions,
};
use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;
use wasm_bindgen::closure::Closure;

use crate::append::{Appending, SeenSeq, append_in};
use crate::error::{IdbError, store_error, unstorable};
use crate::layout::{
    CHANGES, ConnectionKeys, DEAD, HEADWATER_STORES, LEASE, LEGACY_MARKERS, MARKER_LOG, RETRIES,
    STATE, legacy_marker_key, seq_key,
};
use crate::markers::{LogRows, LogWatch};
use crate::pending_bytes::CountRead;
use crate::request::{js_error, wait};

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

fn key_seq(value: &JsValue) -> Result<Seq, StoreError> {
    value
        .as_f64()
        .filter(|key| key.fract() == 0.0 && *key >= 0.0)
        .and_then(|key| Seq::new(key as u64))
        .ok_or_else(|| StoreError::backend(format!("an outbox key is not a seq: {value:?}")))
}

fn text_of(value: &JsValue) -> String {
    value
        .as_string()
        .unwrap_or_else(|| crate::error::describe_js(value))
}

fn decode_entry(seq: Seq, raw: &str, retry: Option<&JsValue>) -> StoredEntry {
    let captured: Captured = match serde_json::from_str(raw) {
        Ok(captured) => captured,
        Err(error) => {
            return Err(UnreadableEntry {
                seq,
                raw: raw.to_owned(),
                error: error.to_string(),
            });
        }
    };
    let delivery = match retry.map(text_of) {
        None => Delivery::new(),
        Some(text) => match serde_json::from_str(&text) {
            Ok(delivery) => delivery,
            Err(error) => {
                return Err(UnreadableEntry {
                    seq,
                    raw: format!("{raw} (retry state: {text})"),
                    error: error.to_string(),
                });
            }
        },
    };
    Ok(OutboxEntry {
        change: Change::new(seq, captured),
        delivery,
    })
}

fn json<T: serde::Serialize>(value: &T) -> Result<JsValue, StoreError> {
    serde_json::to_string(value)
        .map(|text| JsValue::from_str(&text))
        .map_err(unstorable)
}

fn parse<T: serde::de::DeserializeOwned>(value: &JsValue) -> Result<T, StoreError> {
    serde_json::from_str(&text_of(value))
        .map_err(|error| StoreError::backend(format!("a stored record does not decode: {error}")))
}

/// A read of up to `limit` changes after a seq with their retry state, issued as three
/// requests at once: the changes' keys and values, and the retries' keys (the first
/// `limit` retries after the seq include every one of the changes read, as retries are
/// kept only for changes in the outbox). The retries' values are asked for only if there
/// are any, which is seldom: every request costs the browser's database process a few
/// tasks, whatever it finds.
struct PendingRead {
    requests: Option<Requests>,
}

struct Requests {
    keys: web_sys::IdbRequest,
    values: web_sys::IdbRequest,
    retry_keys: web_sys::IdbRequest,
    retries: web_sys::IdbObjectStore,
    range: JsValue,
    limit: u32,
}

impl PendingRead {
    /// Issues the read within `tx` (which covers the changes and retries stores).
    fn issue(tx: &Transaction<'_>, after: Option<Seq>, limit: usize) -> Result<Self, StoreError> {
        if limit == 0 {
            return Ok(Self { requests: None });
        }
        let changes = tx.object_store(CHANGES).map_err(store_error)?;
        let retries = tx.object_store(RETRIES).map_err(store_error)?;
        let (changes, retries) = (changes.as_sys(), retries.as_sys().clone());
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let range: JsValue = web_sys::IdbKeyRange::lower_bound_with_open(
            &JsValue::from_f64(after.map_or(0.0, |seq| seq.get() as f64)),
            true,
        )
        .map_err(js_error)?
        .into();
        Ok(Self {
            requests: Some(Requests {
                keys: changes
                    .get_all_keys_with_key_and_limit(&range, limit)
                    .map_err(js_error)?,
                values: changes
                    .get_all_with_key_and_limit(&range, limit)
                    .map_err(js_error)?,
                retry_keys: retries
                    .get_all_keys_with_key_and_limit(&range, limit)
                    .map_err(js_error)?,
                retries,
                range,
                limit,
            }),
        })
    }

    /// Waits for the read (and so for every request issued before it) and decodes it.
    async fn finish(self) -> Result<Vec<StoredEntry>, StoreError> {
        let Some(requests) = self.requests else {
            return Ok(Vec::new());
        };
        let array = |value: JsValue| -> Result<js_sys::Array, StoreError> {
            value
                .dyn_into::<js_sys::Array>()
                .map_err(|value| StoreError::backend(format!("getAll gave {value:?}")))
        };
        let retry_keys = array(wait(&requests.retry_keys).await?)?;
        let keys = array(requests.keys.result().map_err(js_error)?)?;
        let values = array(requests.values.result().map_err(js_error)?)?;
        let mut retry_of = std::collections::HashMap::new();
        if retry_keys.length() > 0 {
            let retry_values = requests
                .retries
                .get_all_with_key_and_limit(&requests.range, requests.limit)
                .map_err(js_error)?;
            // The transaction holds the retries store since its keys were read: the
            // values come in the same order.
            let retry_values = array(wait(&retry_values).await?)?;
            for (key, value) in retry_keys.iter().zip(retry_values.iter()) {
                retry_of.insert(key_seq(&key)?.get(), value);
            }
        }
        let texts = texts_of(&values);
        keys.iter()
            .zip(texts.iter())
            .map(|(key, raw)| {
                let seq = key_seq(&key)?;
                Ok(decode_entry(seq, raw, retry_of.get(&seq.get())))
            })
            .collect()
    }
}

/// The stored texts of `values`, taken out of JavaScript in one piece: joined with
/// newlines (which JSON text never holds unescaped) and split again here, since a
/// crossing per value cost about a fifth of a claim. A row whose text holds a newline
/// (damaged, or not headwater's) makes the pieces miscount, and then each is taken
/// alone.
fn texts_of(values: &js_sys::Array) -> Vec<String> {
    let joined: String = values.join("\n").into();
    let pieces: Vec<&str> = joined.split('\n').collect();
    if pieces.len() == values.length() as usize {
        return pieces.into_iter().map(str::to_owned).collect();
    }
    values.iter().map(|value| text_of(&value)).collect()
}

/// A row's seq and the bytes it counts for (none if it does not decode: it leaves the
/// outbox as a quarantined row, which counts nothing).
fn weighed(entry: &StoredEntry) -> (Seq, u64) {
    match entry {
        Ok(entry) => (entry.change.seq(), entry.change.data().weight() as u64),
        Err(unreadable) => (unreadable.seq, 0),
    }
}

fn entry_seq(entry: &StoredEntry) -> Seq {
    match entry {
        Ok(entry) => entry.change.seq(),
        Err(unreadable) => unreadable.seq,
    }
}

/// Reads up to `limit` changes after `after` with their retry state, within `tx`.
async fn read_in(
    tx: &Transaction<'_>,
    after: Option<Seq>,
    limit: usize,
) -> Result<Vec<StoredEntry>, StoreError> {
    PendingRead::issue(tx, after, limit)?.finish().await
}

async fn lease_in(state: &ObjectStore<'_>) -> Result<Option<Lease>, StoreError> {
    state
        .get::<JsValue, _, _>(JsValue::from_str(LEASE))
        .await
        .map_err(store_error)?
        .map(|value| parse(&value))
        .transpose()
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

    fn open_check(&self) -> Result<(), StoreError> {
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

    fn read_tx(&self, stores: &[&str]) -> Result<Transaction<'_>, StoreError> {
        self.open_check()?;
        self.db.transaction(stores).build().map_err(store_error)
    }

    pub(crate) fn seen(&self) -> &SeenSeq {
        &self.seen
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

    /// Sets the last assigned seq, for tests of behaviour near the 2^53 limit.
    #[doc(hidden)]
    pub async fn force_last_seq(&self, last: u64) -> Result<(), StoreError> {
        let tx = self.write_tx(&[CHANGES], Durability::Strict)?;
        let changes = tx.object_store(CHANGES).map_err(store_error)?;
        let key = JsValue::from_f64(last as f64);
        changes
            .put(JsValue::from_str("placeholder"))
            .with_key(key.clone())
            .primitive()
            .map_err(store_error)?;
        changes.delete(key).primitive().map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    /// Writes sync marker log rows that do not read back (a fresh one, and one under a
    /// key of no known shape), as a damaged disk might leave them: for tests.
    #[doc(hidden)]
    pub async fn damage_marker_log(&self, raw: &str) -> Result<(), StoreError> {
        let tx = self.write_tx(&[MARKER_LOG], Durability::Strict)?;
        let log = tx.object_store(MARKER_LOG).map_err(store_error)?;
        crate::markers::put_damaged(log.as_sys(), &self.keys, raw)?;
        tx.commit().await.map_err(store_error)
    }

    /// Appends a row that does not decode, as a damaged disk or a newer version might
    /// leave: for tests of quarantine. Returns its seq.
    #[doc(hidden)]
    pub async fn append_damaged(&self, raw: &str) -> Result<Seq, StoreError> {
        let tx = self.write_tx(&[CHANGES], Durability::Strict)?;
        let changes = tx.object_store(CHANGES).map_err(store_error)?;
        let key = changes
            .add(JsValue::from_str(raw))
            .with_key_type::<JsValue>()
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        key_seq(&key)
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
        let lease = self.read_lease(&tx)?;
        let (claim, wrote, merge) = self.claim_in(&tx, request, &lease, 0).await?;
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
        let tx = self.write_tx(
            &[CHANGES, RETRIES, DEAD, MARKER_LOG, STATE],
            Durability::Relaxed,
        )?;
        let lease = self.read_lease(&tx)?;
        let (held, removed) = self.write_outcome(&tx, owner, now, outcome, &lease).await?;
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
        let tx = self.write_tx(
            &[CHANGES, RETRIES, DEAD, MARKER_LOG, STATE],
            Durability::Relaxed,
        )?;
        let lease = self.read_lease(&tx)?;
        let (held, removed) = self.write_outcome(&tx, owner, now, outcome, &lease).await?;
        // The claim takes the removed bytes off the count it reads and writes back (a
        // delta row for them would be one request more, and another to fold it).
        let (claim, _, merge) = self.claim_in(&tx, request, &lease, removed).await?;
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
            .is_some_and(|lease| lease.owner == owner)
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
        let dead = tx.object_store(DEAD).map_err(store_error)?;
        let values: Vec<JsValue> = dead
            .get_all::<JsValue>()
            .with_query::<JsValue, _>(KeyRange::LowerBound(
                JsValue::from_f64(after.map_or(0.0, |seq| seq.get() as f64)),
                true,
            ))
            .with_limit(u32::try_from(limit).unwrap_or(u32::MAX))
            .await
            .map_err(store_error)?
            .collect::<Result<_, _>>()
            .map_err(store_error)?;
        values.iter().map(parse).collect()
    }

    async fn requeue(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
        let tx = self.write_tx(&[CHANGES, DEAD, STATE], Durability::Strict)?;
        let changes = tx.object_store(CHANGES).map_err(store_error)?;
        let dead = tx.object_store(DEAD).map_err(store_error)?;
        let state = tx.object_store(STATE).map_err(store_error)?;
        let reads = seqs
            .iter()
            .map(|seq| dead.get::<JsValue, _, _>(seq_key(*seq)).primitive())
            .collect::<Result<Vec<_>, _>>()
            .map_err(store_error)?;
        let mut requeued = 0;
        let mut added = 0u64;
        for (seq, read) in seqs.iter().zip(reads) {
            let Some(value) = read.await.map_err(store_error)? else {
                continue;
            };
            let letter: DeadLetter = parse(&value)?;
            let Some(entry) = letter.requeue() else {
                continue;
            };
            let captured = Captured {
                id: entry.change.id(),
                captured_at: entry.change.captured_at(),
                data: entry.change.data().clone(),
            };
            added += captured.data.weight() as u64;
            dead.delete(seq_key(*seq))
                .primitive()
                .map_err(store_error)?;
            changes
                .put(json(&captured)?)
                .with_key(seq_key(*seq))
                .primitive()
                .map_err(store_error)?;
            requeued += 1;
        }
        crate::pending_bytes::add(state.as_sys(), &self.keys, added as f64)?;
        tx.commit().await.map_err(store_error)?;
        Ok(requeued)
    }

    async fn discard(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
        let tx = self.write_tx(&[DEAD], Durability::Strict)?;
        let dead = tx.object_store(DEAD).map_err(store_error)?;
        let counts = seqs
            .iter()
            .map(|seq| dead.count().with_query(seq_key(*seq)).primitive())
            .collect::<Result<Vec<_>, _>>()
            .map_err(store_error)?;
        let mut deleted = 0;
        for (seq, count) in seqs.iter().zip(counts) {
            if count.await.map_err(store_error)? > 0 {
                dead.delete(seq_key(*seq))
                    .primitive()
                    .map_err(store_error)?;
                deleted += 1;
            }
        }
        tx.commit().await.map_err(store_error)?;
        Ok(deleted)
    }

    async fn stats(&self) -> Result<OutboxStats, StoreError> {
        // Readwrite: changes captured since the byte count was last brought up to date
        // are weighed here and folded in (see crate::pending_bytes).
        let tx = self.write_tx(&[CHANGES, RETRIES, DEAD, STATE], Durability::Relaxed)?;
        let changes = tx.object_store(CHANGES).map_err(store_error)?;
        let dead = tx.object_store(DEAD).map_err(store_error)?;
        let state = tx.object_store(STATE).map_err(store_error)?;
        let pending = changes.count().primitive().map_err(store_error)?;
        let dead_count = dead.count().primitive().map_err(store_error)?;
        let count = CountRead::issue(state.as_sys())?;
        let lease = state
            .get::<JsValue, _, _>(JsValue::from_str(LEASE))
            .primitive()
            .map_err(store_error)?;
        let newest = changes
            .open_key_cursor()
            .with_direction(indexed_db_futures::cursor::CursorDirection::Prev)
            .primitive()
            .map_err(store_error)?;
        let head = read_in(&tx, None, 1).await?;
        let pending = pending.await.map_err(store_error)?;
        let dead_count = dead_count.await.map_err(store_error)?;
        let lease: Option<Lease> = lease
            .await
            .map_err(store_error)?
            .map(|value| parse(&value))
            .transpose()?;
        let newest_seq = match newest.await.map_err(store_error)? {
            Some(cursor) => cursor
                .primary_key::<JsValue>()
                .map_err(store_error)?
                .map(|key| key_seq(&key))
                .transpose()?,
            None => None,
        };
        if let Some(newest) = newest_seq {
            self.seen.saw(newest.get());
        }
        let mut counted = count.counted()?;
        if newest_seq.is_some_and(|newest| newest > counted.through) {
            let unweighed = read_in(&tx, Some(counted.through), usize::MAX).await?;
            counted.weigh(unweighed.iter().map(weighed));
        }
        let pending_bytes = counted.bytes();
        if counted.store(state.as_sys())? {
            tx.commit().await.map_err(store_error)?;
        } else {
            drop(tx);
        }
        let oldest = head
            .into_iter()
            .next()
            .and_then(Result::ok)
            .map(|entry| OldestPending {
                seq: entry.change.seq(),
                captured_at: entry.change.captured_at(),
                delivery: entry.delivery,
            });
        Ok(OutboxStats {
            pending: pending as usize,
            pending_bytes,
            dead_lettered: dead_count as usize,
            oldest,
            newest_seq,
            lease,
        })
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

/// Whether `owner` holds the lease `lease` (a finished read) gave.
fn holds(owner: &str, lease: &web_sys::IdbRequest) -> Result<bool, StoreError> {
    let lease = lease.result().map_err(js_error)?;
    let lease: Option<Lease> = (!lease.is_undefined()).then(|| parse(&lease)).transpose()?;
    Ok(lease.is_some_and(|lease| lease.owner == owner))
}

/// What an acknowledgement's transaction tells the machine, once it committed.
fn recorded(
    held: Option<bool>,
    owner: &str,
    lease: &web_sys::IdbRequest,
) -> Result<Recorded, StoreError> {
    let holds = match held {
        Some(holds) => holds,
        None => holds(owner, lease)?,
    };
    Ok(if holds {
        Recorded::Applied
    } else {
        Recorded::LeaseLost
    })
}

/// The syncer's side of the store, in parts that share a transaction.
impl IdbStore {
    /// Asks for the stored lease, first in `tx`.
    fn read_lease(&self, tx: &Transaction<'_>) -> Result<web_sys::IdbRequest, StoreError> {
        let state = tx.object_store(STATE).map_err(store_error)?;
        state
            .as_sys()
            .get(&JsValue::from_str(LEASE))
            .map_err(js_error)
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

    /// A claim within `tx` (over the changes, retries, marker log and state stores),
    /// with `lease` already asked for, taking `removed` bytes off the count (see
    /// [`Self::write_outcome`]); gives the claim, whether it wrote anything, and
    /// the marker log rows due a merge (see [`Self::merge_markers`]).
    async fn claim_in(
        &self,
        tx: &Transaction<'_>,
        request: &ClaimRequest,
        lease: &web_sys::IdbRequest,
        removed: u64,
    ) -> Result<(Claim, bool, Option<Vec<JsValue>>), StoreError> {
        let state = tx.object_store(STATE).map_err(store_error)?;
        let log = tx.object_store(MARKER_LOG).map_err(store_error)?;
        // The lease (asked for by the caller), the byte count, the marker log's keys
        // (when due, see crate::markers::LogWatch) and the changes are read together
        // (one wait, not four); the changes are dropped if another syncer holds the
        // lease.
        let mut log_keys = if self.log_watch.due() {
            Some(log.as_sys().get_all_keys().map_err(js_error)?)
        } else {
            None
        };
        let count = CountRead::issue(state.as_sys())?;
        let read = PendingRead::issue(tx, request.after, request.limit)?;
        if read.requests.is_none() {
            // Only the lease is renewed: wait for the reads made so far.
            wait(count.last()).await?;
        }
        let entries = read.finish().await?;
        if let Some(last) = entries.last() {
            self.seen.saw(entry_seq(last).get());
        }
        let mut counted = count.counted()?;
        counted.take_off(removed);
        counted.weigh(entries.iter().map(weighed));
        let unfolded = counted.store(state.as_sys())?;
        let current = lease.result().map_err(js_error)?;
        let current: Option<Lease> = (!current.is_undefined())
            .then(|| parse(&current))
            .transpose()?;
        let granted = request.grant(current.as_ref());
        let renewed = match &granted {
            Ok(lease) if current.as_ref() != Some(lease) => {
                state
                    .put(json(lease)?)
                    .with_key(JsValue::from_str(LEASE))
                    .primitive()
                    .map_err(store_error)?;
                true
            }
            _ => false,
        };
        // The lease holder merges the marker log's rows: when there is nothing to send,
        // or when the log has grown past its bounds (see crate::markers).
        let mut merge = None;
        if granted.is_ok() {
            let idle = request.limit > 0 && entries.is_empty();
            if idle && log_keys.is_none() {
                // An idle outbox has time for the wait.
                let keys = log.as_sys().get_all_keys().map_err(js_error)?;
                wait(&keys).await?;
                log_keys = Some(keys);
            }
            if let Some(keys) = log_keys {
                self.log_watch.read();
                let rows = LogRows::of_keys(&keys.result().map_err(js_error)?)?;
                merge = rows.due_merge(idle);
            }
        }
        let claim = match granted {
            Ok(_) => Claim::Granted(entries),
            Err(held) => Claim::Held(held),
        };
        Ok((claim, renewed || unfolded, merge))
    }

    /// Writes `outcome` within `tx` (over every headwater store), with `lease` already
    /// asked for. Returns whether the lease is held if it had to wait to know (for
    /// retries and dead letters; `None` means read it after the commit), and the bytes
    /// that left the outbox, for the caller to take off the byte count.
    async fn write_outcome(
        &self,
        tx: &Transaction<'_>,
        owner: &str,
        now: DateTime<Utc>,
        outcome: &Outcome,
        lease: &web_sys::IdbRequest,
    ) -> Result<(Option<bool>, u64), StoreError> {
        let changes = tx.object_store(CHANGES).map_err(store_error)?;
        let retries = tx.object_store(RETRIES).map_err(store_error)?;
        let dead = tx.object_store(DEAD).map_err(store_error)?;
        let log = tx.object_store(MARKER_LOG).map_err(store_error)?;
        // Retry bookkeeping and dead letters are written only while the lease is held,
        // so an outcome with any waits to read it first. Acknowledgements are written
        // whoever holds it (the changes were delivered), so the common outcome, all
        // acknowledgements, is written without a wait and the lease read after.
        let mut held = None;
        let mut removed = outcome.removed_bytes();
        if !outcome.retries().is_empty() || !outcome.dead().is_empty() {
            wait(lease).await?;
            let holds = holds(owner, lease)?;
            if holds {
                for (seq, delivery) in outcome.retries() {
                    retries
                        .put(json(delivery)?)
                        .with_key(seq_key(*seq))
                        .primitive()
                        .map_err(store_error)?;
                }
                for letter in outcome.dead() {
                    changes
                        .delete(seq_key(letter.seq))
                        .primitive()
                        .map_err(store_error)?;
                    retries
                        .delete(seq_key(letter.seq))
                        .primitive()
                        .map_err(store_error)?;
                    dead.put(json(letter)?)
                        .with_key(seq_key(letter.seq))
                        .primitive()
                        .map_err(store_error)?;
                }
            } else {
                // Dead letters not moved stay in the outbox, with their bytes.
                let dead_weight: u64 = outcome
                    .dead()
                    .iter()
                    .filter_map(DeadLetter::change)
                    .map(|change| change.data().weight() as u64)
                    .sum();
                removed = removed.saturating_sub(dead_weight);
            }
            held = Some(holds);
        }
        let markers = outcome.markers();
        crate::markers::append(log.as_sys(), &self.keys, &markers, now)?;
        if !markers.is_empty() {
            self.log_watch.wrote(markers.len());
        }
        // After the retries: a merged outcome may hold a change's retry and then its
        // acknowledgement, and no retry row may outlive its change.
        for run in outcome.acked_runs() {
            let range = KeyRange::Bound(seq_key(*run.start()), false, seq_key(*run.end()), false);
            changes
                .delete::<JsValue, _>(range.clone())
                .primitive()
                .map_err(store_error)?;
            retries
                .delete::<JsValue, _>(range)
                .primitive()
                .map_err(store_error)?;
        }
        Ok((held, removed))
    }
}
