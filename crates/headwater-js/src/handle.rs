//! The class JavaScript holds: the facade's handle, started on the app's database.

use std::time::Duration;

use headwater::indexeddb::IdbStore;
use headwater::indexeddb::indexed_db_futures::database::Database;
use headwater::{Seq, SyncConfig};
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::change::change_data;
use crate::error;
use crate::options::StartOptions;
use crate::views::{
    CountersView, DeadLetterView, MarkerView, PendingView, ReceiptView, Status, to_js,
};

/// Installs headwater's object stores; call it inside the app's own
/// `onupgradeneeded`, with the database being upgraded (`request.result`), in the
/// version that adds headwater. Idempotent.
#[wasm_bindgen(js_name = installHeadwater)]
pub fn install_headwater(database: &web_sys::IdbDatabase) -> Result<(), JsValue> {
    headwater::indexeddb::install_headwater(database)
        .map_err(|reason| error::coded("UPGRADE", reason))
}

/// headwater running in this page on the app's database.
#[wasm_bindgen]
pub struct Headwater {
    headwater: headwater::Headwater,
    store: IdbStore,
}

/// A seq as JavaScript gives it: a whole number from 1 to 2^53 - 1.
fn seq(number: f64) -> Result<Seq, JsValue> {
    (number.fract() == 0.0 && number >= 1.0)
        .then_some(number as u64)
        .and_then(Seq::new)
        .ok_or_else(|| error::argument(format!("{number} is not a seq")))
}

fn seqs(numbers: Vec<f64>) -> Result<Vec<Seq>, JsValue> {
    numbers.into_iter().map(seq).collect()
}

fn limit(limit: Option<u32>) -> usize {
    limit.map_or(100, |limit| limit as usize)
}

/// What `requeue` and `discard` do to the dead letters they name.
#[derive(Clone, Copy)]
enum DeadLetterAction {
    Requeue,
    Discard,
}

impl Headwater {
    fn on_dead_letters(
        &self,
        numbers: Vec<f64>,
        action: DeadLetterAction,
    ) -> Result<Promise, JsValue> {
        let seqs = seqs(numbers)?;
        let headwater = self.headwater.clone();
        Ok(future_to_promise(async move {
            let count = match action {
                DeadLetterAction::Requeue => headwater.requeue(&seqs).await,
                DeadLetterAction::Discard => headwater.discard(&seqs).await,
            }
            .map_err(error::store)?;
            Ok(JsValue::from(count as f64))
        }))
    }
}

#[wasm_bindgen]
impl Headwater {
    /// Starts delivery to `endpoints` (Flume HTTP sources; relative URLs are the page's
    /// origin) from the outbox in `database`, which must have headwater's stores.
    /// headwater keeps a connection of its own to the database; the app's connection
    /// stays the app's.
    pub async fn start(
        database: web_sys::IdbDatabase,
        endpoints: Vec<String>,
        options: JsValue,
    ) -> Result<Self, JsValue> {
        let options = StartOptions::read(options)?;
        let name = database.name();
        let db = Database::open(name.as_str())
            .with_version(database.version() as u32)
            .await
            .map_err(|reason| {
                error::coded("IDB_OPEN", format!("cannot open {name:?}: {reason}"))
            })?;
        let store = IdbStore::new(db).map_err(|reason| error::coded("NOT_INSTALLED", reason))?;
        let mut builder = headwater::Headwater::builder()
            .flume(endpoints)
            .store(store.clone());
        if let Some(source) = options.source {
            builder = builder.source(source);
        }
        if let Some(lock) = options.leader_lock {
            builder = builder.leader_lock(lock);
        }
        if let Some(events) = options.batch_size {
            builder = builder.batch_size(events);
        }
        if let Some(requests) = options.max_in_flight {
            builder = builder.max_in_flight(requests);
        }
        if let Some(millis) = options.timeout_ms {
            builder = builder.timeout(Duration::from_millis(millis.into()));
        }
        for (name, value) in options.headers.into_iter().flatten() {
            builder = builder.header(name, value);
        }
        if let Some(millis) = options.idle_poll_ms {
            builder = builder.configure(|config: &mut SyncConfig| {
                config.idle_poll_interval = Duration::from_millis(millis.into());
            });
        }
        let headwater = builder.start().map_err(error::start)?;
        Ok(Self { headwater, store })
    }

    /// Captures one change inside `tx`, the app's own readwrite transaction over its
    /// stores and `headwater_changes`: the change is added at once, and the promise
    /// resolves with `{seq, id}` once `tx` completes (or rejects if it aborts; then
    /// neither the app's writes nor the change were stored).
    pub fn capture(
        &self,
        tx: &web_sys::IdbTransaction,
        collection: String,
        key: String,
        op: &str,
        value_json: Option<String>,
        headers: JsValue,
    ) -> Result<Promise, JsValue> {
        let data = change_data(collection, key, op, value_json, headers)?;
        let outbox = self.headwater.outbox();
        let captured = outbox.prepare(self.headwater.clock_now(), vec![data]);
        let in_flight = self
            .store
            .append_in_transaction(tx, captured)
            .map_err(error::store)?;
        let headwater = self.headwater.clone();
        Ok(future_to_promise(async move {
            let changes = in_flight.committed().await.map_err(error::store)?;
            headwater.outbox().appended(&changes);
            let change = changes
                .first()
                .ok_or_else(|| error::coded("STORE", "the transaction stored no change"))?;
            Ok(to_js(&ReceiptView {
                seq: change.seq().get(),
                id: change.id().to_string(),
            }))
        }))
    }

    /// The outbox at a glance.
    pub fn status(&self) -> Promise {
        let headwater = self.headwater.clone();
        future_to_promise(async move {
            let status = headwater.status().await.map_err(error::store)?;
            Ok(to_js(&Status::new(&status, headwater.is_leader())))
        })
    }

    /// This tab's running totals, as delivery last published them: read from memory,
    /// cheap enough for every `changed()` (`status()` reads the database).
    pub fn counters(&self) -> JsValue {
        to_js(&CountersView::new(&self.headwater.outbox().counters()))
    }

    /// Resolves at the next change of the outbox (a capture, a delivery, a retry, a
    /// dead letter, a pause); read `status()` after it.
    pub fn changed(&self) -> Promise {
        let changed = self.headwater.changed();
        future_to_promise(async move {
            changed.await;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Whether this tab holds the leader lock (and so sends).
    #[wasm_bindgen(getter, js_name = isLeader)]
    pub fn is_leader(&self) -> bool {
        self.headwater.is_leader()
    }

    /// The last acknowledged change of `collection`/`key`, or null.
    #[wasm_bindgen(js_name = syncMarker)]
    pub fn sync_marker(&self, collection: String, key: String) -> Promise {
        let headwater = self.headwater.clone();
        future_to_promise(async move {
            let marker = headwater
                .sync_marker(&collection, &key)
                .await
                .map_err(error::store)?;
            Ok(marker.map_or(JsValue::NULL, |marker| to_js(&MarkerView::new(&marker))))
        })
    }

    /// Waits until every change captured so far is delivered or dead-lettered.
    pub fn flush(&self) -> Promise {
        let headwater = self.headwater.clone();
        future_to_promise(async move {
            headwater.flush().await.map_err(error::flush)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Up to `limit` (100 by default) pending changes with seqs after `after`.
    pub fn pending(&self, after: Option<f64>, limit_to: Option<u32>) -> Result<Promise, JsValue> {
        let after = after.map(seq).transpose()?;
        let headwater = self.headwater.clone();
        Ok(future_to_promise(async move {
            let entries = headwater
                .pending(after, limit(limit_to))
                .await
                .map_err(error::store)?;
            Ok(to_js(
                &entries.iter().map(PendingView::new).collect::<Vec<_>>(),
            ))
        }))
    }

    /// Up to `limit` (100 by default) dead letters with seqs after `after`.
    #[wasm_bindgen(js_name = deadLetters)]
    pub fn dead_letters(
        &self,
        after: Option<f64>,
        limit_to: Option<u32>,
    ) -> Result<Promise, JsValue> {
        let after = after.map(seq).transpose()?;
        let headwater = self.headwater.clone();
        Ok(future_to_promise(async move {
            let letters = headwater
                .dead_letters(after, limit(limit_to))
                .await
                .map_err(error::store)?;
            Ok(to_js(
                &letters.iter().map(DeadLetterView::new).collect::<Vec<_>>(),
            ))
        }))
    }

    /// Puts dead letters back in the outbox; resolves with how many were.
    pub fn requeue(&self, seqs_to: Vec<f64>) -> Result<Promise, JsValue> {
        self.on_dead_letters(seqs_to, DeadLetterAction::Requeue)
    }

    /// Deletes dead letters for good; resolves with how many were.
    pub fn discard(&self, seqs_to: Vec<f64>) -> Result<Promise, JsValue> {
        self.on_dead_letters(seqs_to, DeadLetterAction::Discard)
    }

    /// Stops sending (captures go on) until `resume`.
    pub fn pause(&self) {
        self.headwater.pause();
    }

    /// Sends again after `pause`.
    pub fn resume(&self) {
        self.headwater.resume();
    }

    /// Sends now: ends a backoff wait.
    #[wasm_bindgen(js_name = flushNow)]
    pub fn flush_now(&self) {
        self.headwater.flush_now();
    }

    /// Stops delivery (the outbox stays in the database for the next start) and
    /// releases the leader lock.
    pub fn shutdown(&self) -> Promise {
        let headwater = self.headwater.clone();
        future_to_promise(async move {
            headwater.shutdown().await;
            Ok(JsValue::UNDEFINED)
        })
    }
}
