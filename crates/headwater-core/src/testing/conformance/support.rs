//! What the checks share: a fixed clock, sample changes, claim requests, and a way to
//! run a check to completion.

use std::future::Future;

use chrono::{DateTime, TimeDelta, Utc};

use crate::model::{Captured, ChangeData, ChangeIdGenerator, OutboxEntry, Seq};
use crate::store::{ChangeStore, Claim, ClaimRequest};

/// A fixed instant the checks measure time from.
pub fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000).unwrap_or_default()
}

pub(super) fn at(seconds: i64) -> DateTime<Utc> {
    epoch() + TimeDelta::seconds(seconds)
}

/// `count` captured changes to `collection` with keys `k0..`, some with awkward content.
pub fn sample(count: usize, collection: &str) -> Vec<Captured> {
    let mut ids = ChangeIdGenerator::from_seed(count as u64);
    (0..count)
        .map(|index| {
            let key = format!("k{index}");
            let data = match index % 3 {
                0 => ChangeData::insert(
                    collection,
                    key,
                    &serde_json::json!({"n": index, "text": "é \"q\" 🎉"}),
                ),
                1 => ChangeData::update(collection, key, &serde_json::json!([index, null, true])),
                _ => ChangeData::delete(collection, key),
            }
            .and_then(|data| data.with_header("tenant", "acme"));
            Captured {
                id: ids.next_id(at(index as i64)),
                captured_at: at(index as i64),
                data: data.unwrap_or_else(|error| panic!("sample change: {error}")),
            }
        })
        .collect()
}

/// A claim by `owner` at `now` (seconds from [`epoch`]) with a 60-second lease.
pub fn claim_request(owner: &str, now: i64, after: Option<Seq>, limit: usize) -> ClaimRequest {
    ClaimRequest {
        owner: owner.into(),
        now: at(now),
        lease_until: at(now + 60),
        horizon: at(now) + TimeDelta::days(1),
        after,
        limit,
    }
}

pub(super) async fn granted<S: ChangeStore>(store: &S, request: &ClaimRequest) -> Vec<OutboxEntry> {
    match store.claim(request).await.expect("claim") {
        Claim::Granted(entries) => entries
            .into_iter()
            .map(|entry| entry.unwrap_or_else(|bad| panic!("unreadable row {bad:?}")))
            .collect(),
        Claim::Held(lease) => panic!("{} was refused the lease held by {lease:?}", request.owner),
    }
}

pub(super) fn seqs_of(entries: &[OutboxEntry]) -> Vec<Seq> {
    entries.iter().map(|entry| entry.change.seq()).collect()
}

/// Runs a check to completion on this thread (for [`conformance_tests!`](crate::conformance_tests)).
#[doc(hidden)]
pub fn block_on<F: Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}
