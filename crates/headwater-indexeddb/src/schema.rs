//! A declarative schema for applications that let headwater open their database: each
//! store and index with the version it appeared in, and the version headwater was
//! added in.

use crate::error::IdbError;
use crate::error::UpgradeError;
use crate::layout::is_reserved;
use crate::store::IdbStore;
use crate::upgrade::open_database;

#[derive(Debug, Clone, PartialEq, Eq)]
struct StoreDecl {
    name: String,
    key_path: Option<String>,
    since: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct IndexDecl {
    store: String,
    name: String,
    key_path: String,
    unique: bool,
    since: u32,
}

/// The application's object stores and indexes, headwater's stores, and the version
/// each arrived in. Opening runs the upgrades from whatever version the database has.
///
/// ```ignore
/// let store = Schema::new("todo-app")
///     .version(3)
///     .store("todos", Some("id"), 1)      // version 1: the app's own store
///     .headwater_since(2)                 // version 2: headwater added
///     .index("todos", "by_done", "done", 3) // version 3: an index
///     .open()
///     .await?;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    name: String,
    version: u32,
    stores: Vec<StoreDecl>,
    indexes: Vec<IndexDecl>,
    headwater_since: u32,
}

impl Schema {
    /// A schema for the database `name` at version 1, with headwater in version 1.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: 1,
            stores: Vec::new(),
            indexes: Vec::new(),
            headwater_since: 1,
        }
    }

    /// The database version to open at (at least every `since` declared).
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Declares one of the app's object stores, created in version 1, with keys given
    /// with each write.
    pub fn app_store(self, name: impl Into<String>) -> Self {
        self.store(name, None, 1)
    }

    /// Declares one of the app's object stores, created in version `since`; with a
    /// `key_path` its records carry their keys.
    pub fn store(mut self, name: impl Into<String>, key_path: Option<&str>, since: u32) -> Self {
        self.stores.push(StoreDecl {
            name: name.into(),
            key_path: key_path.map(str::to_owned),
            since,
        });
        self
    }

    /// Declares an index on one of the app's stores, created in version `since`.
    pub fn index(
        mut self,
        store: impl Into<String>,
        name: impl Into<String>,
        key_path: impl Into<String>,
        since: u32,
    ) -> Self {
        self.indexes.push(IndexDecl {
            store: store.into(),
            name: name.into(),
            key_path: key_path.into(),
            unique: false,
            since,
        });
        self
    }

    /// The version in which headwater's stores are installed.
    pub fn headwater_since(mut self, version: u32) -> Self {
        self.headwater_since = version;
        self
    }

    /// Opens (creating or upgrading) the database.
    pub async fn open(self) -> Result<IdbStore, IdbError> {
        for (index, store) in self.stores.iter().enumerate() {
            if is_reserved(&store.name)
                || self.stores[..index]
                    .iter()
                    .any(|other| other.name == store.name)
            {
                return Err(IdbError::BadStoreName(store.name.clone()));
            }
        }
        let latest = self
            .stores
            .iter()
            .map(|store| store.since)
            .chain(self.indexes.iter().map(|index| index.since))
            .chain([self.headwater_since])
            .max()
            .unwrap_or(1);
        let version = self.version.max(latest).max(1);
        let Self {
            name,
            stores,
            indexes,
            headwater_since,
            ..
        } = self;
        let db = open_database(&name, version, move |upgrade| {
            let arrives =
                |since: u32| since > upgrade.old_version() && since <= upgrade.new_version();
            for store in &stores {
                if arrives(store.since) && !upgrade.has_store(&store.name) {
                    upgrade.create_store(&store.name, store.key_path.as_deref())?;
                }
            }
            if arrives(headwater_since) {
                upgrade.install_headwater()?;
            }
            for index in &indexes {
                if arrives(index.since) {
                    upgrade.create_index(
                        &index.store,
                        &index.name,
                        &index.key_path,
                        index.unique,
                    )?;
                }
            }
            Ok::<(), UpgradeError>(())
        })
        .await?;
        IdbStore::new(db)
    }
}
