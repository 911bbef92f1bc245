//! `Headwater.start`'s options, read from a plain JavaScript object.

use serde::Deserialize;
use wasm_bindgen::{JsCast, JsValue};

use crate::error;

/// What the package's `start` passes besides the database and the endpoints. Unknown
/// fields are refused by name (see [`StartOptions::read`]), so a typo is an error and
/// not a silent default.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StartOptions {
    /// The `source` header on every event.
    pub(crate) source: Option<String>,
    /// The Web Lock whose holder sends: one tab of the origin delivers, the others
    /// capture.
    pub(crate) leader_lock: Option<String>,
    /// Events per request.
    pub(crate) batch_size: Option<usize>,
    /// Requests in flight at once.
    pub(crate) max_in_flight: Option<usize>,
    /// How often an idle outbox looks for changes made by other tabs, in milliseconds.
    pub(crate) idle_poll_ms: Option<u32>,
    /// A request's timeout, in milliseconds.
    pub(crate) timeout_ms: Option<u32>,
    /// Headers sent with every request (e.g. `authorization`).
    pub(crate) headers: Option<std::collections::BTreeMap<String, String>>,
}

/// The option names, as JavaScript spells them.
const KNOWN: [&str; 7] = [
    "source",
    "leaderLock",
    "batchSize",
    "maxInFlight",
    "idlePollMs",
    "timeoutMs",
    "headers",
];

impl StartOptions {
    /// Reads `options` (undefined or null for none). serde-wasm-bindgen looks up only
    /// the fields it knows, so unknown names are found here.
    pub(crate) fn read(options: JsValue) -> Result<Self, JsValue> {
        if options.is_undefined() || options.is_null() {
            return Ok(Self::default());
        }
        let object: &js_sys::Object = options
            .dyn_ref()
            .ok_or_else(|| error::argument("start's options must be an object"))?;
        for name in js_sys::Object::keys(object).iter() {
            let name = name.as_string().unwrap_or_default();
            if !KNOWN.contains(&name.as_str()) {
                return Err(error::argument(format!(
                    "start has no option {name:?} (its options: database, flume, {})",
                    KNOWN.join(", ")
                )));
            }
        }
        serde_wasm_bindgen::from_value(options)
            .map_err(|reason| error::argument(format!("start's options: {reason}")))
    }
}
