//! `Headwater.start`'s options, read from a plain JavaScript object.

use serde::Deserialize;

/// What the package's `start` passes besides the database and the endpoints. Unknown
/// fields are refused by name, so a typo is an error and not a silent default.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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
