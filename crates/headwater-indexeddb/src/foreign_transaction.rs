//! Capture inside a transaction the application opened itself: from JavaScript (the npm
//! package), or with web-sys on a connection of its own. The adds are made at once,
//! while the transaction is active; the seqs are read once it completes, however the
//! application ends it (an explicit `commit()`, or letting it finish).

use headwater_core::model::{Captured, Change};
use headwater_core::store::StoreError;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::append::{Appending, SeenSeq, add_all, guard_the_end};
use crate::layout::CHANGES;
use crate::request::js_error;
use crate::store::IdbStore;

/// Changes added to an application's own transaction, waiting for it to complete.
/// Await [`committed`](Self::committed) and hand the changes to `Outbox::appended`.
#[must_use = "the changes' seqs come with `committed`, and delivery learns of them there"]
pub struct AppendInFlight {
    tx: web_sys::IdbTransaction,
    appending: Appending,
    seen: SeenSeq,
    completed: js_sys::Promise,
}

impl std::fmt::Debug for AppendInFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendInFlight").finish_non_exhaustive()
    }
}

impl IdbStore {
    /// Adds `captured` (from `Outbox::prepare`) to headwater's outbox inside `tx`, a
    /// readwrite transaction the application opened on its own connection to this
    /// database, over its own stores and `headwater_changes`. Call it while `tx` is
    /// active (in the same task as the application's own writes); the records and
    /// the changes then commit together, or neither does.
    pub fn append_in_transaction(
        &self,
        tx: &web_sys::IdbTransaction,
        captured: Vec<Captured>,
    ) -> Result<AppendInFlight, StoreError> {
        self.open_check()?;
        let (database, ours) = (tx.db().name(), self.database().name());
        if database != ours {
            return Err(StoreError::Unstorable(
                format!(
                    "the transaction is on database {database:?}; headwater's outbox is in {ours:?}"
                )
                .into(),
            ));
        }
        if tx.mode().ok() == Some(web_sys::IdbTransactionMode::Readonly) {
            return Err(StoreError::Unstorable(
                "the transaction is readonly: open it readwrite over headwater's outbox and the application's stores"
                    .into(),
            ));
        }
        // Listened for before the adds, so a transaction that ends at once is seen.
        let completed = js_sys::Promise::new(&mut |resolve, reject| {
            let _ = tx.add_event_listener_with_callback("complete", &resolve);
            let _ = tx.add_event_listener_with_callback("abort", &reject);
        });
        let changes = tx.object_store(CHANGES).map_err(|error| {
            StoreError::Unstorable(
                format!(
                    "the transaction does not cover headwater's outbox: open it over {CHANGES:?} and the application's stores, readwrite ({})",
                    crate::error::describe_js(&error)
                )
                .into(),
            )
        })?;
        let appending = add_all(&changes, captured)?;
        Ok(AppendInFlight {
            tx: tx.clone(),
            appending,
            seen: self.seen().clone(),
            completed,
        })
    }
}

impl AppendInFlight {
    /// Waits until the transaction completes, and gives the changes with their seqs; an
    /// aborted transaction (by the application, a failed request, a quota) is an error
    /// and nothing was written.
    pub async fn committed(self) -> Result<Vec<Change>, StoreError> {
        guard_the_end(&self.tx, &self.seen, &self.appending).await?;
        if let Err(event) = JsFuture::from(self.completed).await {
            return Err(self
                .appending
                .failure()
                .unwrap_or_else(|| match self.tx.error() {
                    Some(error) => js_error(error.unchecked_into()),
                    None => StoreError::backend(format!(
                        "the transaction was aborted ({})",
                        crate::error::describe_js(&event)
                    )),
                }));
        }
        self.appending.finish(&self.seen)
    }
}
