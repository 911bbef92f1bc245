//! Errors of the IndexedDB store, and how browser errors map to the core's.

use headwater_core::store::StoreError;
use wasm_bindgen::{JsCast, JsValue};

/// Opening or upgrading a database failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdbError {
    /// IndexedDB refused to open the database (private mode, disabled storage, a newer
    /// version open elsewhere, ...).
    #[error("cannot open IndexedDB database {name:?}: {reason}")]
    Open {
        /// The database name.
        name: String,
        /// The browser's reason.
        reason: String,
    },
    /// The application's upgrade failed; the database kept its old version and data.
    #[error("upgrading IndexedDB database {name:?} failed, nothing was changed: {reason}")]
    Upgrade {
        /// The database name.
        name: String,
        /// What failed.
        reason: String,
    },
    /// The database has no headwater stores: call `Upgrade::install_headwater` in the
    /// upgrade of the version that adds headwater.
    #[error(
        "database {name:?} lacks headwater's stores {missing:?}: install them with Upgrade::install_headwater in the app's upgrade (one version bump)"
    )]
    NotInstalled {
        /// The database name.
        name: String,
        /// The stores it lacks.
        missing: Vec<String>,
    },
    /// A store name is reserved for headwater or declared twice.
    #[error("object store name {0:?} is reserved for headwater or declared twice")]
    BadStoreName(String),
}

/// A browser error's name and message.
pub(crate) fn describe_js(value: &JsValue) -> String {
    if let Some(exception) = value.dyn_ref::<web_sys::DomException>() {
        return format!("{}: {}", exception.name(), exception.message());
    }
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        return String::from(error.to_string());
    }
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}

/// The core's error for a browser (or indexed_db_futures) error.
pub(crate) fn store_error(error: impl std::fmt::Display) -> StoreError {
    let text = error.to_string();
    if text.contains("QuotaExceeded") {
        StoreError::QuotaExceeded(text.into())
    } else if text.contains("InvalidStateError")
        || text.contains("closing")
        || text.contains("closed")
    {
        StoreError::Closed { reason: text }
    } else if text.contains("DataCloneError") || text.contains("DataError") {
        StoreError::Unstorable(text.into())
    } else if text.contains("ConstraintError") && text.contains("generat") {
        StoreError::SeqExhausted
    } else {
        StoreError::Backend(text.into())
    }
}

/// A JSON encoding failure.
pub(crate) fn unstorable(error: serde_json::Error) -> StoreError {
    StoreError::Unstorable(error.to_string().into())
}

/// An upgrade step that failed; the whole upgrade is rolled back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UpgradeError(pub String);

impl From<JsValue> for UpgradeError {
    fn from(value: JsValue) -> Self {
        Self(describe_js(&value))
    }
}
