//! Waiting for plain web-sys requests: one wait for many requests, since requests in a
//! transaction complete in the order they were made. (A future per request costs a task
//! turn each; with a hundred requests that was most of a transaction's time.)

use headwater_core::store::StoreError;
use wasm_bindgen::JsValue;

use crate::error::{describe_js, store_error};

/// The core's error for a browser exception.
pub(crate) fn js_error(error: JsValue) -> StoreError {
    store_error(describe_js(&error))
}

/// The error a finished request failed with, if it failed.
pub(crate) fn failure(request: &web_sys::IdbRequest) -> Option<StoreError> {
    let error = request.error().ok().flatten()?;
    Some(js_error(error.into()))
}

/// Waits for `request` (and so for every request made before it in its transaction)
/// and gives its result.
pub(crate) async fn wait(request: &web_sys::IdbRequest) -> Result<JsValue, StoreError> {
    let done = js_sys::Promise::new(&mut |resolve, reject| {
        request.set_onsuccess(Some(&resolve));
        request.set_onerror(Some(&reject));
    });
    if let Err(event) = wasm_bindgen_futures::JsFuture::from(done).await {
        // The rejection carries the error event; the request holds the exception.
        return Err(failure(request).unwrap_or_else(|| js_error(event)));
    }
    request.result().map_err(js_error)
}

/// Reads `keys` from `store` with one wait for all of them.
pub(crate) async fn get_many(
    store: &web_sys::IdbObjectStore,
    keys: &[JsValue],
) -> Result<Vec<JsValue>, StoreError> {
    let requests = keys
        .iter()
        .map(|key| store.get(key))
        .collect::<Result<Vec<web_sys::IdbRequest>, JsValue>>()
        .map_err(js_error)?;
    let Some(last) = requests.last() else {
        return Ok(Vec::new());
    };
    wait(last).await?;
    requests
        .iter()
        .map(|request| request.result().map_err(js_error))
        .collect()
}
