//! Errors as JavaScript sees them: an `Error` whose `code` is stable (the package's
//! `HeadwaterError` subclasses it by that code) and whose message is the Rust error's.

use headwater::{FlushError, HttpConfigError, StartError, StoreError};
use wasm_bindgen::JsValue;

/// An `Error` with `name = "HeadwaterError"` and `code`.
pub(crate) fn coded(code: &str, message: impl std::fmt::Display) -> JsValue {
    let error = js_sys::Error::new(&message.to_string());
    error.set_name("HeadwaterError");
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.into());
    error.into()
}

/// The code of a store's error.
fn store_code(error: &StoreError) -> &'static str {
    match error {
        StoreError::QuotaExceeded(_) => "QUOTA_EXCEEDED",
        StoreError::Closed { .. } => "STORE_CLOSED",
        StoreError::SeqExhausted => "SEQ_EXHAUSTED",
        StoreError::Unstorable(_) => "UNSTORABLE",
        StoreError::OutboxFull { .. } => "OUTBOX_FULL",
        StoreError::Unusable(_) => "STORE_UNUSABLE",
        _ => "STORE",
    }
}

pub(crate) fn store(error: StoreError) -> JsValue {
    coded(store_code(&error), &error)
}

pub(crate) fn flush(error: FlushError) -> JsValue {
    let code = match &error {
        FlushError::Blocked(_) => "BLOCKED",
        FlushError::Paused => "PAUSED",
        FlushError::Stopped => "STOPPED",
        FlushError::Store(store) => store_code(store),
        _ => "FLUSH",
    };
    coded(code, &error)
}

pub(crate) fn start(error: StartError) -> JsValue {
    let code = match &error {
        StartError::Config(_) | StartError::LeaseTooShort { .. } => "CONFIG",
        // The request settings are options like the others; only the URLs are endpoints.
        StartError::Http(HttpConfigError::ZeroTimeout | HttpConfigError::InvalidHeader { .. }) => {
            "CONFIG"
        }
        StartError::Http(_) | StartError::NoTransport => "ENDPOINTS",
        _ => "START",
    };
    coded(code, &error)
}

/// A JavaScript argument of the wrong shape.
pub(crate) fn argument(message: impl std::fmt::Display) -> JsValue {
    coded("INVALID_ARGUMENT", message)
}
