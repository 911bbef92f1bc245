//! The application's side: its own records, written in its own transactions, with the
//! matching changes appended in the same transaction (a transactional outbox).

use chrono::{DateTime, Utc};
use headwater_core::engine::{CaptureError, Outbox};
use headwater_core::model::{Captured, Change, ChangeData, InvalidChange};
use headwater_core::store::{ChangeStore, StoreError};
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::object_store::ObjectStore;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::Transaction;
use serde::Serialize;
use wasm_bindgen::JsValue;

use crate::append::{Appending, append_in};
use crate::error::store_error;
use crate::layout::{CHANGES, is_reserved};
use crate::store::{Durability, IdbStore};

/// A readwrite transaction over some of the application's object stores and
/// headwater's outbox. The application writes its records (structured values, through
/// its own key paths and indexes) with [`object_store`](Self::object_store), appends
/// the matching changes with [`append`](Self::append), and commits: records and
/// changes are written together, or, if the transaction aborts, neither is.
///
/// Durability is `strict`: once `commit` returns, the capture survives a crash.
pub struct AppTransaction<'a> {
    tx: Transaction<'a>,
    store: &'a IdbStore,
    appending: std::cell::RefCell<Appending>,
}

impl std::fmt::Debug for AppTransaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppTransaction").finish_non_exhaustive()
    }
}

impl<'a> AppTransaction<'a> {
    /// One of the application's object stores in this transaction.
    pub fn object_store(&self, name: &str) -> Result<ObjectStore<'_>, StoreError> {
        if is_reserved(name) {
            return Err(StoreError::Unstorable(
                format!("{name:?} is headwater's own store").into(),
            ));
        }
        self.tx.object_store(name).map_err(store_error)
    }

    /// The raw transaction, for code that uses web-sys directly.
    pub fn raw(&self) -> &web_sys::IdbTransaction {
        self.tx.as_sys()
    }

    /// Appends captured changes to the outbox within this transaction (see
    /// [`Outbox::prepare`]). Their seqs come with [`commit`](Self::commit): the
    /// transaction does not wait for them before it commits (one round trip less).
    pub async fn append(&self, captured: Vec<Captured>) -> Result<(), StoreError> {
        let appended = append_in(&self.tx, self.store.seen(), captured).await?;
        self.appending.borrow_mut().extend(appended);
        Ok(())
    }

    /// Commits the records and the changes together, and returns the changes with
    /// their seqs; call [`Outbox::appended`] with them.
    pub async fn commit(self) -> Result<Vec<Change>, StoreError> {
        let appending = self.appending.into_inner();
        self.store.commit_appended(self.tx, appending).await
    }

    /// Aborts: neither the records nor the changes are written.
    pub fn abort(self) -> Result<(), StoreError> {
        self.tx.as_sys().abort().map_err(crate::request::js_error)
    }
}

impl IdbStore {
    /// A readwrite transaction over the application's `stores` and headwater's outbox.
    pub fn transaction(&self, stores: &[&str]) -> Result<AppTransaction<'_>, StoreError> {
        let mut names: Vec<&str> = vec![CHANGES];
        for name in stores {
            if is_reserved(name) {
                return Err(StoreError::Unstorable(
                    format!("{name:?} is headwater's own store").into(),
                ));
            }
            if !names.contains(name) {
                names.push(name);
            }
        }
        Ok(AppTransaction {
            tx: self.write_tx(&names, Durability::Strict)?,
            store: self,
            appending: Default::default(),
        })
    }

    /// Writes the application's records and appends their changes in one strict
    /// transaction, then tells the syncer: a one-line convenience over
    /// [`transaction`](Self::transaction). Values are stored as structured values
    /// (plain JavaScript objects); a store with a key path takes its key from the value.
    pub async fn write<S: ChangeStore>(
        &self,
        outbox: &Outbox<S>,
        now: DateTime<Utc>,
        writes: Vec<RecordWrite>,
    ) -> Result<Vec<Change>, CaptureError> {
        let stores: Vec<&str> = writes.iter().map(RecordWrite::store).collect();
        let tx = self.transaction(&stores)?;
        for write in &writes {
            let store = tx.object_store(write.store())?;
            let raw: &web_sys::IdbObjectStore = store.as_sys();
            let in_line = raw
                .key_path()
                .is_ok_and(|path| !path.is_null() && !path.is_undefined());
            let key = JsValue::from_str(write.data.key());
            match &write.record {
                Some(record) => {
                    if in_line {
                        store.put(record.clone()).primitive().map_err(store_error)?;
                    } else {
                        store
                            .put(record.clone())
                            .with_key(key)
                            .primitive()
                            .map_err(store_error)?;
                    }
                }
                None => {
                    store.delete(key).primitive().map_err(store_error)?;
                }
            }
        }
        let captured = outbox.prepare(now, writes.into_iter().map(|write| write.data).collect());
        tx.append(captured).await?;
        let changes = tx.commit().await?;
        outbox.appended(&changes);
        Ok(changes)
    }

    /// A record of the application's, as JSON, if it exists.
    pub async fn read_record(
        &self,
        store: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let tx = self
            .database()
            .transaction(store)
            .build()
            .map_err(store_error)?;
        let object_store = tx.object_store(store).map_err(store_error)?;
        let value: Option<JsValue> = object_store
            .get(JsValue::from_str(key))
            .await
            .map_err(store_error)?;
        value
            .map(|value| {
                serde_wasm_bindgen::from_value(value)
                    .map_err(|error| StoreError::backend(error.to_string()))
            })
            .transpose()
    }

    /// Writes an app record without capturing a change (data that is not synced, or a
    /// baseline for benchmarks).
    pub async fn write_record_only(
        &self,
        store: &str,
        key: &str,
        value: &impl Serialize,
    ) -> Result<(), StoreError> {
        let record =
            to_js(value).map_err(|error| StoreError::Unstorable(error.to_string().into()))?;
        let tx = self.write_tx(&[store], Durability::Strict)?;
        let object_store = tx.object_store(store).map_err(store_error)?;
        let raw: &web_sys::IdbObjectStore = object_store.as_sys();
        let in_line = raw
            .key_path()
            .is_ok_and(|path| !path.is_null() && !path.is_undefined());
        if in_line {
            object_store.put(record).primitive().map_err(store_error)?;
        } else {
            object_store
                .put(record)
                .with_key(JsValue::from_str(key))
                .primitive()
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    }
}

/// A value as a plain JavaScript object (maps as objects, so records stay queryable
/// through key paths and indexes).
pub fn to_js(value: &impl Serialize) -> Result<JsValue, serde_wasm_bindgen::Error> {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
}

/// A change to one of the application's records, for [`IdbStore::write`]: the record's
/// object store is the change's collection; the value is stored as a structured value
/// and sent to Flume as its JSON.
#[derive(Debug, Clone)]
pub struct RecordWrite {
    data: ChangeData,
    record: Option<JsValue>,
}

impl RecordWrite {
    /// Puts a record (an `update` change).
    pub fn put(
        store: impl Into<String>,
        key: impl Into<String>,
        value: &impl Serialize,
    ) -> Result<Self, InvalidChange> {
        let store = store.into();
        let key = key.into();
        let record = to_js(value).map_err(|error| InvalidChange::NotJson {
            collection: store.clone(),
            key: key.clone(),
            reason: error.to_string(),
        })?;
        Ok(Self {
            data: ChangeData::update(store, key, value)?,
            record: Some(record),
        })
    }

    /// Deletes a record.
    pub fn delete(store: impl Into<String>, key: impl Into<String>) -> Result<Self, InvalidChange> {
        Ok(Self {
            data: ChangeData::delete(store, key)?,
            record: None,
        })
    }

    /// Adds a Flume header of the caller's own to this change.
    pub fn with_header(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, InvalidChange> {
        self.data = self.data.with_header(name, value)?;
        Ok(self)
    }

    /// The app's object store written to.
    pub fn store(&self) -> &str {
        self.data.collection()
    }
}
