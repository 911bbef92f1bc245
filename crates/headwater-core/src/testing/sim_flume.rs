use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::flume::{DecodeLimits, EncodedBatch, FlumeEvent, decode_batch};
use crate::policy::RetryAfter;
use crate::transport::{Response, SendOutcome, Transport};

/// The 400 text of Flume 1.11's HTTP source.
pub const BAD_REQUEST: &str = "Bad request from client. Request has invalid JSON Syntax.";

/// The 500 text the simulated Flume gives for an event an interceptor throws on.
pub const INTERCEPTOR_FAILED: &str =
    "Unexpected error while appending event to channel. interceptor threw";

/// The header that poisons an event whatever its record: `400` makes Flume refuse any
/// batch holding it as unreadable, `500` makes an interceptor throw on it. (A `key`
/// that starts with `poison` or `throws` does the same.)
pub const POISON_HEADER: &str = "poison";

/// A fault the simulated Flume applies to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and message, committing nothing.
    Status(u16, String),
    /// Answer 429 with a `Retry-After` of this many seconds.
    TooManyRequests(u64),
    /// Commit the batch (if Flume would), then time out: a lost acknowledgement.
    TimeoutAfterCommit,
    /// Fail to connect: nothing reaches Flume.
    ConnectionRefused,
    /// Commit the batch (if Flume would), then never answer: the sender hangs, as when
    /// the process dies mid-request.
    HangAfterCommit,
}

/// A simulated Flume HTTP source + memory channel + sink, as a [`Transport`].
///
/// It decodes every request with the real decoder, enforces the channel's
/// `transactionCapacity` with Flume's 503 text, answers 400 to any batch holding an
/// event whose `key` header starts with `poison` (or whose [`POISON_HEADER`] is `400`)
/// and 500 to one holding a key that starts with `throws` (or that header at `500`):
/// one bad event fails the whole request, as in Flume. It
/// applies scripted [`Fault`]s first. Clones share state.
#[derive(Debug, Clone, Default)]
pub struct SimFlume {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    transaction_capacity: Option<usize>,
    faults: VecDeque<Fault>,
    sink: Vec<FlumeEvent>,
    requests: u64,
    ambiguous: HashSet<String>,
}

impl SimFlume {
    /// A Flume with no capacity limit and no faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the channel's `transactionCapacity`.
    pub fn with_transaction_capacity(self, capacity: usize) -> Self {
        self.lock().transaction_capacity = Some(capacity);
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a fault for a coming request (in order).
    pub fn push_fault(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// Drops the faults not applied yet.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Keeps the first `count` faults not applied yet and drops the rest.
    pub fn keep_faults(&self, count: usize) {
        self.lock().faults.truncate(count);
    }

    /// Faults not applied yet.
    pub fn faults_left(&self) -> usize {
        self.lock().faults.len()
    }

    /// Every event the sink received, in order, duplicates included.
    pub fn delivered(&self) -> Vec<FlumeEvent> {
        self.lock().sink.clone()
    }

    /// The `id` header of every event the sink received, in order.
    pub fn delivered_ids(&self) -> Vec<String> {
        self.lock()
            .sink
            .iter()
            .map(|event| event.headers.get("id").cloned().unwrap_or_default())
            .collect()
    }

    /// Ids committed by a request whose answer was lost (the only legitimate source of
    /// duplicates).
    pub fn ambiguous_ids(&self) -> HashSet<String> {
        self.lock().ambiguous.clone()
    }

    /// Requests received.
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// What Flume would answer to `events`, committing them on success.
    fn offer(state: &mut State, events: Vec<FlumeEvent>) -> Response {
        if let Some(capacity) = state.transaction_capacity
            && events.len() > capacity
        {
            return Response::with_message(
                503,
                format!(
                    "Error appending event to channel. Channel might be full.Put queue for MemoryTransaction of capacity {capacity} full, consider committing more frequently, increasing capacity or increasing thread count"
                ),
            );
        }
        let poisoned = |prefix: &str, status: &str| {
            events.iter().any(|event| {
                let header = |name: &str| event.headers.get(name).map(String::as_str);
                header("key").is_some_and(|key| key.starts_with(prefix))
                    || header(POISON_HEADER) == Some(status)
            })
        };
        if poisoned("poison", "400") {
            return Response::with_message(400, BAD_REQUEST);
        }
        if poisoned("throws", "500") {
            return Response::with_message(500, INTERCEPTOR_FAILED);
        }
        state.sink.extend(events);
        Response::status(200)
    }
}

fn ids(events: &[FlumeEvent]) -> impl Iterator<Item = String> + '_ {
    events
        .iter()
        .filter_map(|event| event.headers.get("id").cloned())
}

#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
impl Transport for SimFlume {
    async fn send(&self, batch: EncodedBatch<'_>) -> SendOutcome {
        let hang = {
            let mut state = self.lock();
            state.requests += 1;
            let events = std::str::from_utf8(batch.body)
                .map_err(|error| error.to_string())
                .and_then(|body| {
                    decode_batch(body, &DecodeLimits::default()).map_err(|e| e.to_string())
                });
            let events = match events {
                Ok(events) => events,
                Err(error) => {
                    // The engine must never send what Flume cannot parse.
                    return SendOutcome::Response(Response::with_message(
                        400,
                        format!("{BAD_REQUEST} ({error})"),
                    ));
                }
            };
            match state.faults.pop_front() {
                None => return SendOutcome::Response(Self::offer(&mut state, events)),
                Some(Fault::Status(status, message)) => {
                    return SendOutcome::Response(Response::with_message(status, message));
                }
                Some(Fault::TooManyRequests(seconds)) => {
                    let mut response = Response::with_message(429, "slow down");
                    response.retry_after =
                        Some(RetryAfter::Delay(std::time::Duration::from_secs(seconds)));
                    return SendOutcome::Response(response);
                }
                Some(Fault::ConnectionRefused) => {
                    return SendOutcome::ConnectionFailed {
                        message: "connection refused".into(),
                    };
                }
                Some(fault @ (Fault::TimeoutAfterCommit | Fault::HangAfterCommit)) => {
                    let committed: Vec<String> = ids(&events).collect();
                    if Self::offer(&mut state, events).status == 200 {
                        state.ambiguous.extend(committed);
                    }
                    fault == Fault::HangAfterCommit
                }
            }
        };
        if hang {
            futures::future::pending::<()>().await;
        }
        SendOutcome::TimedOut {
            message: "no answer within the request timeout".into(),
        }
    }
}

/// Counts of each id at a sink: how often each arrived.
pub fn id_counts(ids: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for id in ids {
        *counts.entry(id.as_str()).or_insert(0) += 1;
    }
    counts
}
