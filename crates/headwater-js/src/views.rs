//! What JavaScript reads back: plain objects with camelCase fields, seqs as numbers
//! (they stay below 2^53), times as ISO 8601 strings, values as their JSON text.

use headwater::store::StoredEntry;
use headwater::{Change, DeadContent, DeadLetter, SyncMarker, SyncStatus};
use serde::Serialize;
use wasm_bindgen::JsValue;

/// Plain objects (not `Map`s) for maps, as `JSON.parse` would give.
pub(crate) fn to_js(value: &impl Serialize) -> JsValue {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .unwrap_or(JsValue::UNDEFINED)
}

/// The outbox at a glance.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Status {
    pending: usize,
    pending_bytes: u64,
    in_flight: usize,
    dead_lettered: usize,
    delivered: u64,
    requests: u64,
    retries: u64,
    oldest_pending_at: Option<String>,
    blocked: Option<String>,
    last_error: Option<String>,
    next_attempt_at: Option<String>,
    stalled_since: Option<String>,
    synced: bool,
    leader: bool,
}

impl Status {
    pub(crate) fn new(status: &SyncStatus, leader: bool) -> Self {
        Self {
            pending: status.pending,
            pending_bytes: status.pending_bytes,
            in_flight: status.in_flight,
            dead_lettered: status.dead_lettered,
            delivered: status.counters.delivered,
            requests: status.counters.requests,
            retries: status.counters.retries,
            oldest_pending_at: status.oldest_pending_at.map(|at| at.to_rfc3339()),
            blocked: status.blocked.clone(),
            last_error: status.last_error.clone(),
            next_attempt_at: status.next_attempt_at.map(|at| at.to_rfc3339()),
            stalled_since: status.stalled_since.map(|at| at.to_rfc3339()),
            synced: status.is_synced(),
            leader,
        }
    }
}

/// This tab's running totals since start, as delivery last published them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CountersView {
    requests: u64,
    retries: u64,
    delivered: u64,
    dead_lettered: u64,
    rejected_by_server: u64,
}

impl CountersView {
    pub(crate) fn new(counters: &headwater::SyncCounters) -> Self {
        Self {
            requests: counters.requests,
            retries: counters.retries,
            delivered: counters.delivered,
            dead_lettered: counters.dead_lettered,
            rejected_by_server: counters.rejected_by_server,
        }
    }
}

/// One captured change.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChangeView {
    seq: u64,
    id: String,
    captured_at: String,
    collection: String,
    key: String,
    op: &'static str,
    /// The value's JSON text, parsed by the package's module (so the app's key order
    /// stays, and no tree is built in wasm).
    value_json: Option<String>,
    headers: std::collections::BTreeMap<String, String>,
}

impl ChangeView {
    pub(crate) fn new(change: &Change) -> Self {
        let data = change.data();
        Self {
            seq: change.seq().get(),
            id: change.id().to_string(),
            captured_at: change.captured_at().to_rfc3339(),
            collection: data.collection().to_owned(),
            key: data.key().to_owned(),
            op: data.kind().as_str(),
            value_json: data.value_json().map(str::to_owned),
            headers: data.headers().clone(),
        }
    }
}

/// A change waiting in the outbox (or one that cannot be read, with why).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PendingView {
    seq: u64,
    change: Option<ChangeView>,
    attempts: Option<u32>,
    unreadable: Option<String>,
}

impl PendingView {
    pub(crate) fn new(entry: &StoredEntry) -> Self {
        match entry {
            Ok(entry) => Self {
                seq: entry.change.seq().get(),
                change: Some(ChangeView::new(&entry.change)),
                attempts: Some(entry.delivery.attempts),
                unreadable: None,
            },
            Err(unreadable) => Self {
                seq: unreadable.seq.get(),
                change: None,
                attempts: None,
                unreadable: Some(unreadable.error.clone()),
            },
        }
    }
}

/// A change parked in the dead letters, with the reason.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeadLetterView {
    seq: u64,
    reason: String,
    at: String,
    attempts: u32,
    change: Option<ChangeView>,
    unreadable: Option<String>,
}

impl DeadLetterView {
    pub(crate) fn new(letter: &DeadLetter) -> Self {
        let (change, unreadable) = match &letter.content {
            DeadContent::Change(change) => (Some(ChangeView::new(change)), None),
            DeadContent::Unreadable { raw, .. } => (None, Some(raw.clone())),
            _ => (None, None),
        };
        Self {
            seq: letter.seq.get(),
            reason: letter.reason.clone(),
            at: letter.at.to_rfc3339(),
            attempts: letter.attempts,
            change,
            unreadable,
        }
    }
}

/// The last acknowledged change of one record.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MarkerView {
    last_acked_seq: u64,
    acked_at: String,
}

impl MarkerView {
    pub(crate) fn new(marker: &SyncMarker) -> Self {
        Self {
            last_acked_seq: marker.last_acked_seq.get(),
            acked_at: marker.acked_at.to_rfc3339(),
        }
    }
}

/// What a capture gives back.
#[derive(Serialize)]
pub(crate) struct ReceiptView {
    pub(crate) seq: u64,
    pub(crate) id: String,
}
