use std::cell::Cell;
use std::rc::Rc;

use chrono::{DateTime, Utc};
use headwater_core::engine::{CaptureError, Outbox};
use headwater_core::model::{
    Captured, Change, ChangeData, Delivery, DeliveryState, InvalidChange, MAX_SEQ, OutboxEntry,
    Seq, SyncMarker,
};
use headwater_core::store::{ChangeStore, OutboxStats, StoreError};
use indexed_db_futures::database::Database;
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::{Transaction, TransactionMode};
use serde::Serialize;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;

const OUTBOX: &str = "headwater_outbox";
const DEAD: &str = "headwater_dead";
const MARKERS: &str = "headwater_markers";
const META: &str = "headwater_meta";
const LAST_SEQ: &str = "last_seq";
const OWN_STORES: [&str; 4] = [OUTBOX, DEAD, MARKERS, META];

/// Opening the database failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdbError {
    /// IndexedDB refused to open the database (private mode, disabled storage, ...).
    #[error("cannot open IndexedDB database {name:?}: {reason}")]
    Open {
        /// The database name.
        name: String,
        /// The browser's reason.
        reason: String,
    },
    /// The database exists without stores this schema declares. Every store is created
    /// in schema version 1 (indexed_db_futures 0.6 cannot add to an existing database
    /// during an upgrade): use a new database name for a new set of stores.
    #[error(
        "database {name:?} lacks the object stores {missing:?}; stores can only be declared when a database is first created"
    )]
    MissingStores {
        /// The database name.
        name: String,
        /// The stores it lacks.
        missing: Vec<String>,
    },
    /// A store name is reserved for headwater or declared twice.
    #[error("object store name {0:?} is reserved for headwater or declared twice")]
    BadStoreName(String),
}

/// The app's object stores and headwater's own, all created in version 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    name: String,
    app_stores: Vec<String>,
}

impl Schema {
    /// A schema for the database `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Schema {
            name: name.into(),
            app_stores: Vec::new(),
        }
    }

    /// Declares one of the app's object stores (records keyed by string).
    pub fn app_store(mut self, name: impl Into<String>) -> Self {
        self.app_stores.push(name.into());
        self
    }

    /// Opens (creating it if needed) the database.
    pub async fn open(self) -> Result<IdbStore, IdbError> {
        for (index, name) in self.app_stores.iter().enumerate() {
            if OWN_STORES.contains(&name.as_str()) || self.app_stores[..index].contains(name) {
                return Err(IdbError::BadStoreName(name.clone()));
            }
        }
        let stores: Vec<String> = OWN_STORES
            .iter()
            .map(|name| (*name).to_owned())
            .chain(self.app_stores.iter().cloned())
            .collect();
        let to_create = stores.clone();
        let db = Database::open(self.name.as_str())
            .with_version(1u8)
            .with_on_upgrade_needed(move |_event, db| {
                for name in &to_create {
                    db.create_object_store(name.as_str()).build()?;
                }
                Ok(())
            })
            .await
            .map_err(|error| IdbError::Open {
                name: self.name.clone(),
                reason: error.to_string(),
            })?;
        let existing: Vec<String> = db.object_store_names().collect();
        let missing: Vec<String> = stores
            .into_iter()
            .filter(|name| !existing.contains(name))
            .collect();
        if !missing.is_empty() {
            db.close();
            return Err(IdbError::MissingStores {
                name: self.name,
                missing,
            });
        }
        // Another tab that opens a newer version (or deletes the database) waits until
        // every connection closes: close at once, and say so on every later call.
        let closed = Rc::new(Cell::new(false));
        let on_version_change = {
            let closed = Rc::clone(&closed);
            let connection: web_sys::IdbDatabase = db.as_sys().clone().into();
            Closure::<dyn FnMut()>::new(move || {
                closed.set(true);
                connection.close();
            })
        };
        let connection: &web_sys::IdbDatabase = db.as_sys();
        connection.set_onversionchange(Some(on_version_change.as_ref().unchecked_ref()));
        Ok(IdbStore {
            db: Rc::new(db),
            app_stores: Rc::new(self.app_stores),
            closed,
            _on_version_change: Rc::new(on_version_change),
        })
    }
}

/// A change to one of the app's records, written with its outbox entry in one
/// transaction by [`IdbStore::write`]. The record's object store is the change's
/// collection; the value is serialized once, here, and both the record and the outbox
/// entry store that same JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordWrite {
    data: ChangeData,
}

impl RecordWrite {
    /// Puts a record (an `update` change).
    pub fn put(
        store: impl Into<String>,
        key: impl Into<String>,
        value: &impl Serialize,
    ) -> Result<Self, InvalidChange> {
        Ok(RecordWrite {
            data: ChangeData::upsert(store, key, value)?,
        })
    }

    /// Deletes a record.
    pub fn delete(store: impl Into<String>, key: impl Into<String>) -> Self {
        // An empty store name is refused by `IdbStore::write`, which only takes the
        // app's declared stores.
        RecordWrite {
            data: ChangeData {
                collection: store.into(),
                key: key.into(),
                op: headwater_core::model::Op::Delete,
                value: None,
                headers: Default::default(),
            },
        }
    }

    /// Adds a Flume header of the caller's own to this change.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.data = self.data.with_header(name, value);
        self
    }

    /// The app's object store written to.
    pub fn store(&self) -> &str {
        &self.data.collection
    }
}

/// An outbox (and the app's records) in IndexedDB. Clones share one connection.
#[derive(Clone)]
pub struct IdbStore {
    db: Rc<Database>,
    app_stores: Rc<Vec<String>>,
    /// Set once the connection is closed (by the app, or for another tab's upgrade).
    closed: Rc<Cell<bool>>,
    _on_version_change: Rc<Closure<dyn FnMut()>>,
}

impl std::fmt::Debug for IdbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdbStore")
            .field("database", &self.db.name())
            .field("app_stores", &self.app_stores)
            .field("closed", &self.closed.get())
            .finish()
    }
}

/// Seqs are keys as 16-digit strings, so key order is seq order.
fn seq_key(seq: Seq) -> String {
    format!("{:016}", seq.0)
}

fn marker_key(collection: &str, key: &str) -> String {
    serde_json::to_string(&(collection, key)).unwrap_or_default()
}

fn store_error(error: impl std::fmt::Display) -> StoreError {
    let text = error.to_string();
    if text.contains("QuotaExceeded") {
        StoreError::QuotaExceeded(text)
    } else if text.contains("InvalidStateError")
        || text.contains("closing")
        || text.contains("closed")
    {
        StoreError::Closed(text)
    } else if text.contains("DataCloneError") || text.contains("DataError") {
        StoreError::Unstorable(text)
    } else {
        StoreError::Backend(text)
    }
}

fn parse(json: &str) -> Result<OutboxEntry, StoreError> {
    serde_json::from_str(json)
        .map_err(|error| StoreError::Backend(format!("a stored change is not readable: {error}")))
}

fn json(entry: &OutboxEntry) -> Result<String, StoreError> {
    serde_json::to_string(entry).map_err(|error| StoreError::Unstorable(error.to_string()))
}

fn holds(entry: &OutboxEntry, owner: &str) -> bool {
    matches!(&entry.delivery.state, DeliveryState::InFlight { owner: holder, .. } if holder == owner)
}

impl IdbStore {
    fn open_check(&self) -> Result<(), StoreError> {
        if self.closed.get() {
            return Err(StoreError::Closed(format!(
                "the connection to {:?} is closed (by this app, or because another tab is upgrading or deleting the database): reopen it",
                self.db.name()
            )));
        }
        Ok(())
    }

    fn write_tx(&self, stores: &[&str]) -> Result<Transaction<'_>, StoreError> {
        self.open_check()?;
        let mut options = indexed_db_futures::transaction::TransactionOptions::new();
        options.set_durability(indexed_db_futures::transaction::TransactionDurability::Strict);
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

    /// Writes the app's records and appends their outbox entries in one strict
    /// transaction, then wakes the syncer. Both happen or neither does.
    pub async fn write(
        &self,
        outbox: &Outbox<IdbStore>,
        now: DateTime<Utc>,
        writes: Vec<RecordWrite>,
    ) -> Result<Vec<Change>, CaptureError> {
        for write in &writes {
            if !self.app_stores.iter().any(|name| name == write.store()) {
                return Err(CaptureError::Store(StoreError::Unstorable(format!(
                    "{:?} is not one of the app's object stores",
                    write.store()
                ))));
            }
        }
        let captured = outbox.prepare(now, writes.into_iter().map(|write| write.data).collect())?;
        let mut names: Vec<&str> = vec![OUTBOX, META];
        for item in &captured {
            if !names.contains(&item.data.collection.as_str()) {
                names.push(item.data.collection.as_str());
            }
        }
        let tx = self.write_tx(&names)?;
        for item in &captured {
            let data = &item.data;
            let store = tx.object_store(&data.collection).map_err(store_error)?;
            match data.value_json() {
                Some(value) => {
                    store
                        .put(value.to_owned())
                        .with_key(data.key.clone())
                        .primitive()
                        .map_err(store_error)?;
                }
                None => {
                    store
                        .delete(data.key.clone())
                        .primitive()
                        .map_err(store_error)?;
                }
            }
        }
        let changes = append_in(&tx, captured).await?;
        tx.commit().await.map_err(store_error)?;
        outbox.wake();
        Ok(changes)
    }

    /// Sets the last assigned seq, for tests of behaviour near the 2^53 limit.
    #[doc(hidden)]
    pub async fn force_last_seq(&self, last: u64) -> Result<(), StoreError> {
        let tx = self.write_tx(&[META])?;
        let meta = tx.object_store(META).map_err(store_error)?;
        meta.put(last.to_string())
            .with_key(LAST_SEQ.to_owned())
            .primitive()
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    /// Writes an app record without capturing a change (for comparison in benchmarks, or
    /// for data that must not be synced).
    pub async fn write_record_only(
        &self,
        store: &str,
        key: &str,
        value: &impl Serialize,
    ) -> Result<(), StoreError> {
        let text =
            serde_json::to_string(value).map_err(|e| StoreError::Unstorable(e.to_string()))?;
        let tx = self.write_tx(&[store])?;
        let object_store = tx.object_store(store).map_err(store_error)?;
        object_store
            .put(text)
            .with_key(key.to_owned())
            .primitive()
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    /// An app record's value, if it exists.
    pub async fn read_record(
        &self,
        store: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let tx = self.read_tx(&[store])?;
        let object_store = tx.object_store(store).map_err(store_error)?;
        let value: Option<String> = object_store
            .get(key.to_owned())
            .await
            .map_err(store_error)?;
        value
            .map(|text| serde_json::from_str(&text).map_err(|e| StoreError::Backend(e.to_string())))
            .transpose()
    }
}

/// The entries of an outbox or dead-letter store in seq order, the first `limit` of them.
async fn read_entries(
    store: &indexed_db_futures::object_store::ObjectStore<'_>,
    limit: Option<usize>,
) -> Result<Vec<OutboxEntry>, StoreError> {
    let texts = match limit {
        Some(limit) => store
            .get_all()
            .with_limit(u32::try_from(limit).unwrap_or(u32::MAX))
            .await
            .map_err(store_error)?
            .collect::<Result<Vec<String>, _>>(),
        None => store
            .get_all()
            .await
            .map_err(store_error)?
            .collect::<Result<Vec<String>, _>>(),
    }
    .map_err(store_error)?;
    texts.iter().map(|text| parse(text)).collect()
}

// Writes inside a transaction are issued without awaiting each one (`primitive()` sends
// the request): IndexedDB runs a transaction's requests in order, and any failure aborts
// the transaction, which `commit()` then reports. Awaiting each put would cost one
// event-loop turn per request.

/// Appends captured changes within `tx` (which covers the outbox and meta stores).
async fn append_in(
    tx: &Transaction<'_>,
    captured: Vec<Captured>,
) -> Result<Vec<Change>, StoreError> {
    let meta = tx.object_store(META).map_err(store_error)?;
    let outbox = tx.object_store(OUTBOX).map_err(store_error)?;
    let last: Option<String> = meta.get(LAST_SEQ.to_owned()).await.map_err(store_error)?;
    let mut last: u64 = last.and_then(|text| text.parse().ok()).unwrap_or(0);
    if last.saturating_add(captured.len() as u64) > MAX_SEQ {
        return Err(StoreError::SeqExhausted);
    }
    let mut changes = Vec::with_capacity(captured.len());
    for item in captured {
        last += 1;
        let change = Change::new(Seq(last), item);
        let entry = OutboxEntry {
            change: change.clone(),
            delivery: Delivery::new(),
        };
        outbox
            .put(json(&entry)?)
            .with_key(seq_key(change.seq))
            .primitive()
            .map_err(store_error)?;
        changes.push(change);
    }
    meta.put(last.to_string())
        .with_key(LAST_SEQ.to_owned())
        .primitive()
        .map_err(store_error)?;
    Ok(changes)
}

impl IdbStore {
    /// Moves claimed entries through `update`, keeping only those `owner` holds.
    async fn update_held(
        &self,
        owner: &str,
        seqs: &[Seq],
        mut update: impl FnMut(&mut OutboxEntry),
    ) -> Result<(), StoreError> {
        let tx = self.write_tx(&[OUTBOX])?;
        let store = tx.object_store(OUTBOX).map_err(store_error)?;
        for seq in seqs {
            let key = seq_key(*seq);
            let stored: Option<String> = store.get(key.clone()).await.map_err(store_error)?;
            let Some(stored) = stored else { continue };
            let mut entry = parse(&stored)?;
            if holds(&entry, owner) {
                update(&mut entry);
                store
                    .put(json(&entry)?)
                    .with_key(key)
                    .primitive()
                    .map_err(store_error)?;
            }
        }
        tx.commit().await.map_err(store_error)
    }
}

#[async_trait::async_trait(?Send)]
impl ChangeStore for IdbStore {
    async fn append(&self, changes: Vec<Captured>) -> Result<Vec<Change>, StoreError> {
        let tx = self.write_tx(&[OUTBOX, META])?;
        let stored = append_in(&tx, changes).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(stored)
    }

    async fn claim(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        horizon: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let tx = self.write_tx(&[OUTBOX])?;
        let store = tx.object_store(OUTBOX).map_err(store_error)?;
        // The outbox holds only pending and in-flight changes, in seq order: its first
        // `limit` entries are the head of line.
        let head = read_entries(&store, Some(limit)).await?;
        let mut claimed = Vec::new();
        for mut entry in head {
            if !entry.delivery.is_claimable(now, horizon) {
                break;
            }
            entry.delivery.state = DeliveryState::InFlight {
                owner: owner.to_owned(),
                lease_until,
            };
            store
                .put(json(&entry)?)
                .with_key(seq_key(entry.change.seq))
                .primitive()
                .map_err(store_error)?;
            claimed.push(entry);
        }
        tx.commit().await.map_err(store_error)?;
        Ok(claimed)
    }

    async fn ack(&self, seqs: &[Seq], now: DateTime<Utc>) -> Result<(), StoreError> {
        let tx = self.write_tx(&[OUTBOX, MARKERS])?;
        let outbox = tx.object_store(OUTBOX).map_err(store_error)?;
        let markers = tx.object_store(MARKERS).map_err(store_error)?;
        // Every read is issued before the first is awaited: one event-loop turn for all.
        let reads = seqs
            .iter()
            .map(|seq| {
                outbox
                    .get::<String, String, String>(seq_key(*seq))
                    .primitive()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(store_error)?;
        // The highest acknowledged seq of each record in this batch.
        let mut latest: std::collections::BTreeMap<String, Seq> = std::collections::BTreeMap::new();
        for (seq, read) in seqs.iter().zip(reads) {
            let Some(stored) = read.await.map_err(store_error)? else {
                continue;
            };
            let entry = parse(&stored)?;
            outbox
                .delete(seq_key(*seq))
                .primitive()
                .map_err(store_error)?;
            let record = marker_key(&entry.change.data.collection, &entry.change.data.key);
            let slot = latest.entry(record).or_insert(*seq);
            *slot = (*slot).max(*seq);
        }
        let existing = latest
            .keys()
            .map(|record| {
                markers
                    .get::<String, String, String>(record.clone())
                    .primitive()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(store_error)?;
        for ((record, seq), read) in latest.into_iter().zip(existing) {
            let existing: Option<SyncMarker> = read
                .await
                .map_err(store_error)?
                .and_then(|text| serde_json::from_str(&text).ok());
            if existing.is_none_or(|marker| marker.last_acked_seq <= seq) {
                let marker = SyncMarker {
                    last_acked_seq: seq,
                    acked_at: now,
                };
                let text = serde_json::to_string(&marker)
                    .map_err(|e| StoreError::Unstorable(e.to_string()))?;
                markers
                    .put(text)
                    .with_key(record)
                    .primitive()
                    .map_err(store_error)?;
            }
        }
        tx.commit().await.map_err(store_error)
    }

    async fn release(&self, owner: &str, seqs: &[Seq]) -> Result<(), StoreError> {
        self.update_held(owner, seqs, |entry| {
            entry.delivery.state = DeliveryState::Pending;
        })
        .await
    }

    async fn schedule_retry(
        &self,
        owner: &str,
        seqs: &[Seq],
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        self.update_held(owner, seqs, |entry| {
            let delivery = &mut entry.delivery;
            delivery.state = DeliveryState::Pending;
            delivery.attempts = delivery.attempts.saturating_add(1);
            delivery.next_attempt_at = Some(next_attempt_at);
            delivery.last_error = Some(error.to_owned());
        })
        .await
    }

    async fn dead_letter(
        &self,
        owner: &str,
        seqs: &[Seq],
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let tx = self.write_tx(&[OUTBOX, DEAD])?;
        let outbox = tx.object_store(OUTBOX).map_err(store_error)?;
        let dead = tx.object_store(DEAD).map_err(store_error)?;
        for seq in seqs {
            let key = seq_key(*seq);
            let stored: Option<String> = outbox.get(key.clone()).await.map_err(store_error)?;
            let Some(stored) = stored else { continue };
            let mut entry = parse(&stored)?;
            if !holds(&entry, owner) {
                continue;
            }
            entry.delivery.state = DeliveryState::DeadLettered {
                reason: reason.to_owned(),
                at: now,
            };
            entry.delivery.last_error = Some(reason.to_owned());
            outbox
                .delete(key.clone())
                .primitive()
                .map_err(store_error)?;
            dead.put(json(&entry)?)
                .with_key(key)
                .primitive()
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    }

    async fn release_expired(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let tx = self.write_tx(&[OUTBOX])?;
        let store = tx.object_store(OUTBOX).map_err(store_error)?;
        let mut released = 0;
        for mut entry in read_entries(&store, None).await? {
            if let DeliveryState::InFlight { lease_until, .. } = entry.delivery.state {
                if lease_until <= now {
                    entry.delivery.state = DeliveryState::Pending;
                    store
                        .put(json(&entry)?)
                        .with_key(seq_key(entry.change.seq))
                        .primitive()
                        .map_err(store_error)?;
                    released += 1;
                }
            }
        }
        tx.commit().await.map_err(store_error)?;
        Ok(released)
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let tx = self.read_tx(&[DEAD])?;
        let store = tx.object_store(DEAD).map_err(store_error)?;
        read_entries(&store, Some(limit)).await
    }

    async fn requeue(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
        let tx = self.write_tx(&[OUTBOX, DEAD])?;
        let outbox = tx.object_store(OUTBOX).map_err(store_error)?;
        let dead = tx.object_store(DEAD).map_err(store_error)?;
        let mut requeued = 0;
        for seq in seqs {
            let key = seq_key(*seq);
            let stored: Option<String> = dead.get(key.clone()).await.map_err(store_error)?;
            let Some(stored) = stored else { continue };
            let mut entry = parse(&stored)?;
            entry.delivery = Delivery::new();
            dead.delete(key.clone()).primitive().map_err(store_error)?;
            outbox
                .put(json(&entry)?)
                .with_key(key)
                .primitive()
                .map_err(store_error)?;
            requeued += 1;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(requeued)
    }

    async fn stats(&self, now: DateTime<Utc>) -> Result<OutboxStats, StoreError> {
        let tx = self.read_tx(&[OUTBOX, DEAD])?;
        let outbox = tx.object_store(OUTBOX).map_err(store_error)?;
        let dead = tx.object_store(DEAD).map_err(store_error)?;
        let entries = read_entries(&outbox, None).await?;
        let dead_count = dead.count().await.map_err(store_error)?;
        let deliveries = entries.iter().map(|entry| &entry.delivery);
        Ok(OutboxStats::tally(deliveries, dead_count as usize, now))
    }

    async fn sync_marker(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<SyncMarker>, StoreError> {
        let tx = self.read_tx(&[MARKERS])?;
        let store = tx.object_store(MARKERS).map_err(store_error)?;
        let stored: Option<String> = store
            .get(marker_key(collection, key))
            .await
            .map_err(store_error)?;
        stored
            .map(|text| serde_json::from_str(&text).map_err(|e| StoreError::Backend(e.to_string())))
            .transpose()
    }
}
