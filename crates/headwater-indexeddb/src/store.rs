//! The [`ChangeStore`] on IndexedDB: every method is one transaction with no foreign
//! await inside, and its requests are issued together, then awaited together (one
//! event-loop turn for many requests, not one per request).

use std::cell::Cell;
use std::rc::Rc;

use chrono::{DateTime, Utc};
use headwater_core::model::{
    Captured, Change, DeadLetter, Delivery, MAX_SEQ, OutboxEntry, Seq, SyncMarker, UnreadableEntry,
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

use crate::error::{IdbError, store_error, unstorable};
use crate::layout::{
    CHANGES, DEAD, HEADWATER_STORES, LEASE, MARKERS, PENDING_BYTES, RETRIES, STATE, marker_key,
    seq_key,
};

/// An outbox in an application's IndexedDB database. Clones share one connection.
#[derive(Clone)]
pub struct IdbStore {
    db: Rc<Database>,
    /// Set once the connection is closed (by the app, or for another tab's upgrade).
    closed: Rc<Cell<bool>>,
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

fn key_f64(value: &JsValue) -> Result<u64, StoreError> {
    value
        .as_f64()
        .filter(|key| key.fract() == 0.0 && *key >= 0.0)
        .map(|key| key as u64)
        .ok_or_else(|| StoreError::backend(format!("an outbox key is not a seq: {value:?}")))
}

fn text_of(value: &JsValue) -> String {
    value
        .as_string()
        .unwrap_or_else(|| crate::error::describe_js(value))
}

fn decode_entry(seq: Seq, value: &JsValue, retry: Option<&JsValue>) -> StoredEntry {
    let raw = text_of(value);
    let captured: Captured = match serde_json::from_str(&raw) {
        Ok(captured) => captured,
        Err(error) => {
            return Err(UnreadableEntry {
                seq,
                raw,
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

/// Every value a `getAll` (or `getAllKeys`) request gave.
async fn all<I, E1, E2>(
    request: impl std::future::Future<Output = Result<I, E1>>,
) -> Result<Vec<JsValue>, StoreError>
where
    I: Iterator<Item = Result<JsValue, E2>>,
    E1: std::fmt::Display,
    E2: std::fmt::Display,
{
    request
        .await
        .map_err(store_error)?
        .collect::<Result<_, _>>()
        .map_err(store_error)
}

/// Reads `keys` from `store` with one wait for all of them: requests in a transaction
/// complete in order, so once the last one has, every result is there. (A future per
/// request costs a task turn each; with a hundred markers per acknowledgement that was
/// most of the time an acknowledgement took.)
async fn get_many(
    store: &web_sys::IdbObjectStore,
    keys: &[JsValue],
) -> Result<Vec<JsValue>, StoreError> {
    let requests = keys
        .iter()
        .map(|key| store.get(key))
        .collect::<Result<Vec<web_sys::IdbRequest>, JsValue>>()
        .map_err(|error| store_error(crate::error::describe_js(&error)))?;
    let Some(last) = requests.last() else {
        return Ok(Vec::new());
    };
    let done = js_sys::Promise::new(&mut |resolve, reject| {
        last.set_onsuccess(Some(&resolve));
        last.set_onerror(Some(&reject));
    });
    wasm_bindgen_futures::JsFuture::from(done)
        .await
        .map_err(|error| store_error(crate::error::describe_js(&error)))?;
    requests
        .iter()
        .map(|request| {
            request
                .result()
                .map_err(|error| store_error(crate::error::describe_js(&error)))
        })
        .collect()
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

/// Appends captured changes within `tx` (which covers the changes and state stores);
/// the key generator gives each its seq.
pub(crate) async fn append_in(
    tx: &Transaction<'_>,
    captured: Vec<Captured>,
) -> Result<Vec<Change>, StoreError> {
    if captured.is_empty() {
        return Ok(Vec::new());
    }
    let changes = tx.object_store(CHANGES).map_err(store_error)?;
    let state = tx.object_store(STATE).map_err(store_error)?;
    let mut adds = Vec::with_capacity(captured.len());
    let mut weight = 0u64;
    for item in &captured {
        weight += item.data.weight() as u64;
        adds.push(
            changes
                .add(json(item)?)
                .with_key_type::<JsValue>()
                .primitive()
                .map_err(store_error)?,
        );
    }
    let bytes = state
        .get::<JsValue, _, _>(JsValue::from_str(PENDING_BYTES))
        .primitive()
        .map_err(store_error)?;
    let mut stored = Vec::with_capacity(captured.len());
    for (add, item) in adds.into_iter().zip(captured) {
        let key = add.await.map_err(store_error)?;
        let seq = key_f64(&key)?;
        if seq > MAX_SEQ {
            let _ = tx.as_sys().abort();
            return Err(StoreError::SeqExhausted);
        }
        stored.push(Change::new(Seq(seq), item));
    }
    let old: u64 = bytes
        .await
        .map_err(store_error)?
        .and_then(|value| value.as_f64())
        .map_or(0, |value| value.max(0.0) as u64);
    state
        .put(JsValue::from_f64((old + weight) as f64))
        .with_key(JsValue::from_str(PENDING_BYTES))
        .primitive()
        .map_err(store_error)?;
    Ok(stored)
}

/// Reads up to `limit` changes after `after` with their retry state, within `tx`
/// (which covers the changes and retries stores).
async fn read_in(
    tx: &Transaction<'_>,
    after: Option<Seq>,
    limit: usize,
) -> Result<Vec<StoredEntry>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let changes = tx.object_store(CHANGES).map_err(store_error)?;
    let retries = tx.object_store(RETRIES).map_err(store_error)?;
    let limit = u32::try_from(limit).unwrap_or(u32::MAX);
    let range = || {
        KeyRange::LowerBound(
            JsValue::from_f64(after.map_or(0.0, |seq| seq.0 as f64)),
            true,
        )
    };
    let keys = changes
        .get_all_keys::<JsValue>()
        .with_query::<JsValue, _>(range())
        .with_limit(limit)
        .primitive()
        .map_err(store_error)?;
    let values = changes
        .get_all::<JsValue>()
        .with_query::<JsValue, _>(range())
        .with_limit(limit)
        .primitive()
        .map_err(store_error)?;
    let keys = all(keys).await?;
    let values = all(values).await?;
    let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
        return Ok(Vec::new());
    };
    let span = KeyRange::Bound(first.clone(), false, last.clone(), false);
    let retry_keys = retries
        .get_all_keys::<JsValue>()
        .with_query::<JsValue, _>(span.clone())
        .primitive()
        .map_err(store_error)?;
    let retry_values = retries
        .get_all::<JsValue>()
        .with_query::<JsValue, _>(span)
        .primitive()
        .map_err(store_error)?;
    let retry_keys = all(retry_keys).await?;
    let retry_values = all(retry_values).await?;
    let mut retry_of = std::collections::HashMap::new();
    for (key, value) in retry_keys.iter().zip(retry_values) {
        retry_of.insert(key_f64(key)?, value);
    }
    keys.iter()
        .zip(values.iter())
        .map(|(key, value)| {
            let seq = key_f64(key)?;
            Ok(decode_entry(Seq(seq), value, retry_of.get(&seq)))
        })
        .collect()
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
        Ok(IdbStore {
            db: Rc::new(db),
            closed,
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
        Ok(Seq(key_f64(&key)?))
    }
}

#[async_trait::async_trait(?Send)]
impl ChangeStore for IdbStore {
    async fn append(&self, changes: Vec<Captured>) -> Result<Vec<Change>, StoreError> {
        let tx = self.write_tx(&[CHANGES, STATE], Durability::Strict)?;
        let stored = append_in(&tx, changes).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(stored)
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        let tx = self.write_tx(&[CHANGES, RETRIES, STATE], Durability::Relaxed)?;
        let state = tx.object_store(STATE).map_err(store_error)?;
        let current = lease_in(&state).await?;
        let lease = match request.grant(current.as_ref()) {
            Ok(lease) => lease,
            Err(held) => {
                tx.commit().await.map_err(store_error)?;
                return Ok(Claim::Held(held));
            }
        };
        if current.as_ref() != Some(&lease) {
            state
                .put(json(&lease)?)
                .with_key(JsValue::from_str(LEASE))
                .primitive()
                .map_err(store_error)?;
        }
        let entries = read_in(&tx, request.after, request.limit).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(Claim::Granted(entries))
    }

    async fn record(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        outcome: &Outcome,
    ) -> Result<Recorded, StoreError> {
        let tx = self.write_tx(
            &[CHANGES, RETRIES, DEAD, MARKERS, STATE],
            Durability::Relaxed,
        )?;
        let changes = tx.object_store(CHANGES).map_err(store_error)?;
        let retries = tx.object_store(RETRIES).map_err(store_error)?;
        let dead = tx.object_store(DEAD).map_err(store_error)?;
        let markers = tx.object_store(MARKERS).map_err(store_error)?;
        let state = tx.object_store(STATE).map_err(store_error)?;
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
        let updates = outcome.markers();
        let keys: Vec<JsValue> = updates
            .iter()
            .map(|update| marker_key(&update.collection, &update.key))
            .collect();
        let existing = get_many(markers.as_sys(), &keys).await?;
        let lease = state
            .get::<JsValue, _, _>(JsValue::from_str(LEASE))
            .primitive()
            .map_err(store_error)?;
        let bytes = state
            .get::<JsValue, _, _>(JsValue::from_str(PENDING_BYTES))
            .primitive()
            .map_err(store_error)?;
        for ((update, key), read) in updates.iter().zip(keys).zip(existing) {
            let existing: Option<SyncMarker> =
                (!read.is_undefined()).then(|| parse(&read).ok()).flatten();
            if let Some(marker) = SyncMarker::advance(existing.as_ref(), update.seq, now) {
                // A plain request: its completion is the transaction's.
                markers
                    .as_sys()
                    .put_with_key(&json(&marker)?, &key)
                    .map_err(|error| store_error(crate::error::describe_js(&error)))?;
            }
        }
        let lease: Option<Lease> = lease
            .await
            .map_err(store_error)?
            .map(|value| parse(&value))
            .transpose()?;
        let holds = lease.is_some_and(|lease| lease.owner == owner);
        // The bytes of what leaves the outbox: acknowledged changes always, dead
        // letters only while the lease is held (an ack of a change already gone is
        // counted once more, and the count clamps at zero).
        let dead_weight: u64 = outcome
            .dead()
            .iter()
            .filter_map(DeadLetter::change)
            .map(|change| change.data().weight() as u64)
            .sum();
        let removed = if holds {
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
            outcome.removed_bytes()
        } else {
            outcome.removed_bytes().saturating_sub(dead_weight)
        };
        let old: u64 = bytes
            .await
            .map_err(store_error)?
            .and_then(|value| value.as_f64())
            .map_or(0, |value| value.max(0.0) as u64);
        state
            .put(JsValue::from_f64(old.saturating_sub(removed) as f64))
            .with_key(JsValue::from_str(PENDING_BYTES))
            .primitive()
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(if holds {
            Recorded::Applied
        } else {
            Recorded::LeaseLost
        })
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
                JsValue::from_f64(after.map_or(0.0, |seq| seq.0 as f64)),
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
        let bytes = state
            .get::<JsValue, _, _>(JsValue::from_str(PENDING_BYTES))
            .primitive()
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
        let old: u64 = bytes
            .await
            .map_err(store_error)?
            .and_then(|value| value.as_f64())
            .map_or(0, |value| value.max(0.0) as u64);
        state
            .put(JsValue::from_f64((old + added) as f64))
            .with_key(JsValue::from_str(PENDING_BYTES))
            .primitive()
            .map_err(store_error)?;
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
        let tx = self.read_tx(&[CHANGES, RETRIES, DEAD, STATE])?;
        let changes = tx.object_store(CHANGES).map_err(store_error)?;
        let dead = tx.object_store(DEAD).map_err(store_error)?;
        let state = tx.object_store(STATE).map_err(store_error)?;
        let pending = changes.count().primitive().map_err(store_error)?;
        let dead_count = dead.count().primitive().map_err(store_error)?;
        let bytes = state
            .get::<JsValue, _, _>(JsValue::from_str(PENDING_BYTES))
            .primitive()
            .map_err(store_error)?;
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
        let pending_bytes = bytes
            .await
            .map_err(store_error)?
            .and_then(|value| value.as_f64())
            .map_or(0, |value| value.max(0.0) as u64);
        let lease: Option<Lease> = lease
            .await
            .map_err(store_error)?
            .map(|value| parse(&value))
            .transpose()?;
        let newest_seq = match newest.await.map_err(store_error)? {
            Some(cursor) => cursor
                .primary_key::<JsValue>()
                .map_err(store_error)?
                .map(|key| key_f64(&key).map(Seq))
                .transpose()?,
            None => None,
        };
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
        let tx = self.read_tx(&[MARKERS])?;
        let markers = tx.object_store(MARKERS).map_err(store_error)?;
        markers
            .get::<JsValue, _, _>(marker_key(collection, key))
            .await
            .map_err(store_error)?
            .map(|value| parse(&value))
            .transpose()
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
