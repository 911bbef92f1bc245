//! Opening an application's database at its own version, with the application's
//! upgrade code: its own stores and indexes, and headwater's stores installed by one
//! call, at whatever version the application adds headwater.
//!
//! indexed_db_futures 0.6 does not hand out the versionchange transaction (which adding
//! an index to an existing store needs), so the upgrade runs on a short web-sys open;
//! the connection then used is indexed_db_futures' own, at the same version.

use std::cell::RefCell;
use std::rc::Rc;

use indexed_db_futures::database::Database;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;
use web_sys::{IdbDatabase, IdbObjectStoreParameters, IdbOpenDbRequest, IdbTransaction};

use crate::error::{IdbError, UpgradeError};
use crate::layout::is_reserved;

/// What an upgrade handler gets: the database being upgraded, its versionchange
/// transaction, and the versions from and to.
pub struct Upgrade {
    db: IdbDatabase,
    tx: IdbTransaction,
    old_version: u32,
    new_version: u32,
}

impl Upgrade {
    /// The version the database had (0 if it is new).
    pub fn old_version(&self) -> u32 {
        self.old_version
    }

    /// The version being opened.
    pub fn new_version(&self) -> u32 {
        self.new_version
    }

    /// Whether the database has this object store.
    pub fn has_store(&self, name: &str) -> bool {
        self.db.object_store_names().contains(name)
    }

    /// Creates an object store of the application's: with `key_path` its records carry
    /// their key (a structured value's field); without, keys are given with each write.
    pub fn create_store(&self, name: &str, key_path: Option<&str>) -> Result<(), UpgradeError> {
        if is_reserved(name) {
            return Err(UpgradeError(format!(
                "{name:?} is reserved for headwater's own stores"
            )));
        }
        let parameters = IdbObjectStoreParameters::new();
        if let Some(path) = key_path {
            parameters.set_key_path(&JsValue::from_str(path));
        }
        self.db
            .create_object_store_with_optional_parameters(name, &parameters)?;
        Ok(())
    }

    /// Adds an index to an existing object store (of this or an earlier version).
    pub fn create_index(
        &self,
        store: &str,
        index: &str,
        key_path: &str,
        unique: bool,
    ) -> Result<(), UpgradeError> {
        let object_store = self.tx.object_store(store)?;
        let parameters = web_sys::IdbIndexParameters::new();
        parameters.set_unique(unique);
        object_store.create_index_with_str_and_optional_parameters(index, key_path, &parameters)?;
        Ok(())
    }

    /// Deletes one of the application's object stores.
    pub fn delete_store(&self, name: &str) -> Result<(), UpgradeError> {
        if is_reserved(name) {
            return Err(UpgradeError(format!(
                "{name:?} is headwater's; it is not deleted by an app's upgrade"
            )));
        }
        self.db.delete_object_store(name)?;
        Ok(())
    }

    /// Installs headwater's stores (the outbox, its retries, dead letters, sync markers
    /// and state). Idempotent: call it in the upgrade that adds headwater, and it does
    /// nothing on a database that has them.
    pub fn install_headwater(&self) -> Result<(), UpgradeError> {
        crate::layout::install(&self.db)
    }

    /// The raw versionchange transaction, for anything else an upgrade needs.
    pub fn transaction(&self) -> &IdbTransaction {
        &self.tx
    }

    /// The raw database being upgraded.
    pub fn database(&self) -> &IdbDatabase {
        &self.db
    }
}

/// Installs headwater's stores on `db` inside an upgrade the application runs itself
/// (its own `onupgradeneeded`, from JavaScript or web-sys): what
/// [`Upgrade::install_headwater`] does for [`open_database`]. Idempotent.
pub fn install_headwater(db: &IdbDatabase) -> Result<(), UpgradeError> {
    crate::layout::install(db)
}

type Handler = Box<dyn FnMut(&Upgrade) -> Result<(), UpgradeError>>;

/// Opens `name` at `version`, running `upgrade` if the database is older (or new), and
/// returns indexed_db_futures' connection to it. An error in `upgrade` aborts the whole
/// upgrade: the database stays at its old version, with its old schema and data.
pub async fn open_database(
    name: &str,
    version: u32,
    upgrade: impl FnMut(&Upgrade) -> Result<(), UpgradeError> + 'static,
) -> Result<Database, IdbError> {
    let open_error = |reason: String| IdbError::Open {
        name: name.to_owned(),
        reason,
    };
    let factory = web_sys::window()
        .and_then(|window| window.indexed_db().ok().flatten())
        .ok_or_else(|| open_error("IndexedDB is not available in this context".into()))?;
    let request: IdbOpenDbRequest = factory
        .open_with_u32(name, version)
        .map_err(|error| open_error(crate::error::describe_js(&error)))?;
    let failure: Rc<RefCell<Option<String>>> = Rc::new(RefCell::new(None));
    let handler: Rc<RefCell<Handler>> = Rc::new(RefCell::new(Box::new(upgrade)));
    let on_upgrade = {
        let request = request.clone();
        let failure = Rc::clone(&failure);
        Closure::<dyn FnMut(web_sys::IdbVersionChangeEvent)>::new(
            move |event: web_sys::IdbVersionChangeEvent| {
                let result = (|| -> Result<(), UpgradeError> {
                    let db: IdbDatabase = request.result()?.dyn_into()?;
                    let tx = request
                        .transaction()
                        .ok_or_else(|| UpgradeError("no versionchange transaction".into()))?;
                    let upgrade = Upgrade {
                        db,
                        tx,
                        old_version: event.old_version() as u32,
                        new_version: event.new_version().unwrap_or_default() as u32,
                    };
                    let outcome = (handler.borrow_mut())(&upgrade);
                    if outcome.is_err() {
                        let _ = upgrade.tx.abort();
                    }
                    outcome
                })();
                if let Err(error) = result {
                    *failure.borrow_mut() = Some(error.0);
                }
            },
        )
    };
    request.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
    let done = js_sys::Promise::new(&mut |resolve, reject| {
        let request_ok = request.clone();
        let on_success = Closure::once_into_js(move |_: web_sys::Event| {
            let _ = resolve.call1(
                &JsValue::NULL,
                &request_ok.result().unwrap_or(JsValue::NULL),
            );
        });
        let request_err = request.clone();
        let on_error = Closure::once_into_js(move |_: web_sys::Event| {
            let error = request_err
                .error()
                .ok()
                .flatten()
                .map(JsValue::from)
                .unwrap_or_else(|| JsValue::from_str("the open request failed"));
            let _ = reject.call1(&JsValue::NULL, &error);
        });
        request.set_onsuccess(Some(on_success.unchecked_ref()));
        request.set_onerror(Some(on_error.unchecked_ref()));
    });
    let opened = wasm_bindgen_futures::JsFuture::from(done).await;
    request.set_onupgradeneeded(None);
    drop(on_upgrade);
    if let Some(reason) = failure.borrow_mut().take() {
        if let Ok(db) = opened
            .as_ref()
            .map(|db| db.clone().dyn_into::<IdbDatabase>())
            && let Ok(db) = db
        {
            db.close();
        }
        return Err(IdbError::Upgrade {
            name: name.to_owned(),
            reason,
        });
    }
    let db: IdbDatabase = opened
        .map_err(|error| open_error(crate::error::describe_js(&error)))?
        .dyn_into()
        .map_err(|error| open_error(crate::error::describe_js(&error)))?;
    // The upgrade is done: this short connection closes, and indexed_db_futures opens
    // the database at the same version (no upgrade runs again).
    db.close();
    Database::open(name)
        .with_version(version)
        .await
        .map_err(|error| open_error(error.to_string()))
}
