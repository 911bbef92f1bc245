//! The conformance suite every [`ChangeStore`] backend runs on its own platform (the
//! memory store natively, IndexedDB in a headless browser).
//!
//! Each check takes a fresh, empty store and panics with a message naming the broken
//! rule. [`run_all`] runs every check with stores from a factory:
//!
//! ```text
//! #[test]
//! fn my_store_conforms() {
//!     futures::executor::block_on(conformance::run_all(|| async { MyStore::open_empty() }));
//! }
//! ```

use std::future::Future;

use chrono::{DateTime, TimeDelta, Utc};

use crate::model::{Captured, ChangeData, ChangeIdGenerator, DeliveryState, MAX_SEQ, Op, Seq};
use crate::store::{ChangeStore, OutboxStats, StoreError};

/// A fixed instant the checks measure time from.
pub fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000).unwrap_or_default()
}

fn at(seconds: i64) -> DateTime<Utc> {
    epoch() + TimeDelta::seconds(seconds)
}

/// A horizon a day after `seconds`: nothing in these checks is scheduled that far.
fn horizon(seconds: i64) -> DateTime<Utc> {
    at(seconds) + TimeDelta::days(1)
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
                1 => ChangeData::upsert(collection, key, &serde_json::json!([index, null, true])),
                _ => ChangeData::delete(collection, key),
            }
            .map(|data| data.with_header("tenant", "acme"));
            Captured {
                id: ids.next_id(at(index as i64)),
                captured_at: at(index as i64),
                data: data.unwrap_or_else(|error| panic!("sample change: {error}")),
            }
        })
        .collect()
}

fn seqs_of(entries: &[crate::model::OutboxEntry]) -> Vec<Seq> {
    entries.iter().map(|entry| entry.change.seq).collect()
}

/// Runs every check, each on a fresh store from `make`.
pub async fn run_all<S, F, Fut>(make: F)
where
    S: ChangeStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    append_assigns_increasing_seqs_and_keeps_content(make().await).await;
    claim_serves_the_head_in_order(make().await).await;
    a_lease_keeps_others_out_until_it_lapses(make().await).await;
    ack_removes_and_marks_records_synced(make().await).await;
    release_returns_without_an_attempt(make().await).await;
    a_scheduled_retry_holds_the_line(make().await).await;
    dead_letters_leave_the_line_and_can_be_requeued(make().await).await;
    only_the_holder_can_move_a_claimed_change(make().await).await;
    release_expired_frees_lapsed_leases(make().await).await;
    stats_count_every_state(make().await).await;
    schedules_past_the_horizon_predate_a_clock_jump(make().await).await;
}

/// Seqs grow strictly; content (ids, values, headers, deletes) survives the store.
pub async fn append_assigns_increasing_seqs_and_keeps_content<S: ChangeStore>(store: S) {
    let captured = sample(5, "c");
    let stored = store.append(captured.clone()).await.expect("append");
    assert_eq!(stored.len(), 5, "append returns every change");
    let more = store.append(sample(2, "d")).await.expect("append");
    let seqs: Vec<u64> = stored
        .iter()
        .chain(&more)
        .map(|change| change.seq.0)
        .collect();
    assert!(
        seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "seqs must grow strictly: {seqs:?}"
    );
    assert!(
        seqs.iter().all(|seq| *seq >= 1 && *seq <= MAX_SEQ),
        "seqs in 1..=2^53-1: {seqs:?}"
    );
    let claimed = store
        .claim("a", at(100), at(200), horizon(100), 100)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 7, "every appended change is claimable");
    for (entry, original) in claimed.iter().zip(&captured) {
        assert_eq!(entry.change.id, original.id, "the id never changes");
        assert_eq!(entry.change.captured_at, original.captured_at);
        assert_eq!(
            entry.change.data, original.data,
            "content survives the store"
        );
        assert_eq!(entry.delivery.attempts, 0);
    }
    assert_eq!(claimed[2].change.data.op, Op::Delete);
    assert_eq!(claimed[2].change.data.value, None);
}

/// Claim returns the lowest seqs first, up to the limit, and marks them in flight.
pub async fn claim_serves_the_head_in_order<S: ChangeStore>(store: S) {
    let stored = store.append(sample(10, "c")).await.expect("append");
    let first = store
        .claim("a", at(0), at(60), horizon(0), 4)
        .await
        .expect("claim");
    assert_eq!(
        seqs_of(&first),
        stored[..4].iter().map(|c| c.seq).collect::<Vec<_>>()
    );
    for entry in &first {
        assert!(
            matches!(&entry.delivery.state, DeliveryState::InFlight { owner, lease_until } if owner == "a" && *lease_until == at(60)),
            "claimed changes are in flight under the claimer: {:?}",
            entry.delivery.state
        );
    }
    let empty = store
        .claim("a", at(0), at(60), horizon(0), 0)
        .await
        .expect("claim");
    assert!(empty.is_empty(), "a zero limit claims nothing");
}

/// While a lease is live nobody else gets the head; once it lapses, anyone may.
pub async fn a_lease_keeps_others_out_until_it_lapses<S: ChangeStore>(store: S) {
    store.append(sample(3, "c")).await.expect("append");
    let first = store
        .claim("a", at(0), at(60), horizon(0), 2)
        .await
        .expect("claim");
    assert_eq!(first.len(), 2);
    let blocked = store
        .claim("b", at(59), at(120), horizon(59), 10)
        .await
        .expect("claim");
    assert!(
        blocked.is_empty(),
        "the head is held: one batch in flight per outbox, got {:?}",
        seqs_of(&blocked)
    );
    let after = store
        .claim("b", at(60), at(120), horizon(60), 10)
        .await
        .expect("claim");
    assert_eq!(
        seqs_of(&after),
        [
            first[0].change.seq,
            first[1].change.seq,
            Seq(first[1].change.seq.0 + 1)
        ],
        "a lapsed lease frees the changes in order"
    );
}

/// Ack removes changes, and each record's marker holds its highest acked seq.
pub async fn ack_removes_and_marks_records_synced<S: ChangeStore>(store: S) {
    let mut twice = sample(2, "c");
    twice[1].data.key = twice[0].data.key.clone();
    let stored = store.append(twice).await.expect("append");
    assert_eq!(
        store.sync_marker("c", "k0").await.expect("marker"),
        None,
        "no marker before an ack"
    );
    let claimed = store
        .claim("a", at(0), at(60), horizon(0), 10)
        .await
        .expect("claim");
    store
        .ack(&[stored[1].seq, stored[0].seq], at(5))
        .await
        .expect("ack");
    let marker = store
        .sync_marker("c", "k0")
        .await
        .expect("marker")
        .expect("a marker after ack");
    assert_eq!(
        marker.last_acked_seq, stored[1].seq,
        "the marker keeps the highest seq"
    );
    assert_eq!(marker.acked_at, at(5));
    assert_eq!(claimed.len(), 2);
    assert!(
        store
            .claim("a", at(100), at(160), horizon(100), 10)
            .await
            .expect("claim")
            .is_empty(),
        "acked changes are gone"
    );
    let stats = store.stats(at(100)).await.expect("stats");
    assert_eq!((stats.pending, stats.in_flight), (0, 0));
    store
        .ack(&[Seq(999_999)], at(6))
        .await
        .expect("acking an unknown seq is harmless");
}

/// Release returns claimed changes to pending with no attempt counted.
pub async fn release_returns_without_an_attempt<S: ChangeStore>(store: S) {
    store.append(sample(3, "c")).await.expect("append");
    let claimed = store
        .claim("a", at(0), at(60), horizon(0), 3)
        .await
        .expect("claim");
    store
        .release("a", &seqs_of(&claimed)[1..])
        .await
        .expect("release");
    store
        .ack(&[claimed[0].change.seq], at(1))
        .await
        .expect("ack");
    let again = store
        .claim("b", at(1), at(60), horizon(1), 3)
        .await
        .expect("claim");
    assert_eq!(
        seqs_of(&again),
        seqs_of(&claimed)[1..],
        "released changes are claimable at once"
    );
    assert!(
        again.iter().all(|entry| entry.delivery.attempts == 0),
        "release does not count an attempt"
    );
}

/// A scheduled retry counts an attempt, records the error, and holds the whole line
/// (later changes wait) until it is due.
pub async fn a_scheduled_retry_holds_the_line<S: ChangeStore>(store: S) {
    store.append(sample(4, "c")).await.expect("append");
    let claimed = store
        .claim("a", at(0), at(60), horizon(0), 2)
        .await
        .expect("claim");
    store
        .schedule_retry("a", &seqs_of(&claimed), at(30), "HTTP 503")
        .await
        .expect("retry");
    assert!(
        store
            .claim("a", at(29), at(90), horizon(29), 10)
            .await
            .expect("claim")
            .is_empty(),
        "nothing is sent past a head that waits for its retry"
    );
    let stats = store.stats(at(10)).await.expect("stats");
    assert_eq!(stats.next_attempt_at, Some(at(30)));
    assert_eq!(stats.last_error.as_deref(), Some("HTTP 503"));
    let due = store
        .claim("a", at(30), at(90), horizon(30), 10)
        .await
        .expect("claim");
    assert_eq!(due.len(), 4, "the retried head and the changes behind it");
    assert_eq!(due[0].delivery.attempts, 1);
    assert_eq!(due[0].delivery.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(due[2].delivery.attempts, 0);
}

/// Dead letters leave the line with their reason, are listed, and can be requeued.
pub async fn dead_letters_leave_the_line_and_can_be_requeued<S: ChangeStore>(store: S) {
    let stored = store.append(sample(3, "c")).await.expect("append");
    let claimed = store
        .claim("a", at(0), at(60), horizon(0), 3)
        .await
        .expect("claim");
    store
        .dead_letter("a", &[stored[1].seq], "HTTP 400: bad", at(2))
        .await
        .expect("dead-letter");
    store
        .release("a", &[stored[0].seq, stored[2].seq])
        .await
        .expect("release");
    assert_eq!(claimed.len(), 3);
    let line = store
        .claim("a", at(3), at(60), horizon(3), 10)
        .await
        .expect("claim");
    assert_eq!(
        seqs_of(&line),
        [stored[0].seq, stored[2].seq],
        "a dead letter does not block the rest"
    );
    let dead = store.dead_letters(10).await.expect("dead letters");
    assert_eq!(seqs_of(&dead), [stored[1].seq]);
    assert!(
        matches!(&dead[0].delivery.state, DeliveryState::DeadLettered { reason, at: when } if reason == "HTTP 400: bad" && *when == at(2)),
        "the reason is kept: {:?}",
        dead[0].delivery.state
    );
    assert_eq!(
        dead[0].change.data, stored[1].data,
        "a dead letter keeps its content"
    );
    store.ack(&seqs_of(&line), at(4)).await.expect("ack");
    assert_eq!(
        store
            .requeue(&[stored[1].seq, Seq(424_242)])
            .await
            .expect("requeue"),
        1
    );
    assert!(
        store
            .dead_letters(10)
            .await
            .expect("dead letters")
            .is_empty()
    );
    let back = store
        .claim("a", at(5), at(60), horizon(5), 10)
        .await
        .expect("claim");
    assert_eq!(
        seqs_of(&back),
        [stored[1].seq],
        "a requeued change is sent again"
    );
    assert_eq!(back[0].delivery.attempts, 0, "requeue resets attempts");
}

/// A syncer whose lease lapsed and was taken over cannot move the changes any more.
pub async fn only_the_holder_can_move_a_claimed_change<S: ChangeStore>(store: S) {
    store.append(sample(2, "c")).await.expect("append");
    let first = store
        .claim("a", at(0), at(10), horizon(0), 2)
        .await
        .expect("claim");
    let second = store
        .claim("b", at(10), at(70), horizon(10), 2)
        .await
        .expect("claim");
    assert_eq!(seqs_of(&first), seqs_of(&second));
    let seqs = seqs_of(&first);
    store.release("a", &seqs).await.expect("release");
    store
        .schedule_retry("a", &seqs, at(500), "late")
        .await
        .expect("retry");
    store
        .dead_letter("a", &seqs, "late", at(11))
        .await
        .expect("dead-letter");
    assert!(
        store
            .dead_letters(10)
            .await
            .expect("dead letters")
            .is_empty(),
        "a former holder cannot dead-letter"
    );
    let stats = store.stats(at(11)).await.expect("stats");
    assert_eq!(stats.in_flight, 2, "the new holder keeps its claim");
    assert_eq!(
        stats.next_attempt_at, None,
        "a former holder cannot schedule a retry"
    );
    assert!(
        store
            .claim("c", at(11), at(70), horizon(11), 2)
            .await
            .expect("claim")
            .is_empty()
    );
}

/// release_expired makes lapsed leases pending and counts them.
pub async fn release_expired_frees_lapsed_leases<S: ChangeStore>(store: S) {
    store.append(sample(3, "c")).await.expect("append");
    store
        .claim("a", at(0), at(10), horizon(0), 2)
        .await
        .expect("claim");
    assert_eq!(store.release_expired(at(9)).await.expect("release"), 0);
    assert_eq!(store.release_expired(at(10)).await.expect("release"), 2);
    let stats = store.stats(at(10)).await.expect("stats");
    assert_eq!((stats.pending, stats.in_flight), (3, 0));
}

/// Stats count pending, in flight and dead-lettered changes.
pub async fn stats_count_every_state<S: ChangeStore>(store: S) {
    assert_eq!(
        store.stats(at(0)).await.expect("stats"),
        OutboxStats::default()
    );
    store.append(sample(6, "c")).await.expect("append");
    let claimed = store
        .claim("a", at(0), at(60), horizon(0), 3)
        .await
        .expect("claim");
    store
        .dead_letter("a", &[claimed[0].change.seq], "bad", at(1))
        .await
        .expect("dead-letter");
    let stats = store.stats(at(1)).await.expect("stats");
    assert_eq!(
        (stats.pending, stats.in_flight, stats.dead_lettered),
        (3, 2, 1)
    );
    let later = store.stats(at(61)).await.expect("stats");
    assert_eq!(
        (later.pending, later.in_flight),
        (5, 0),
        "a lapsed lease counts as pending"
    );
}

/// After the wall clock jumps back, a retry time or lease beyond the horizon counts as
/// passed instead of holding the line until the clock catches up.
pub async fn schedules_past_the_horizon_predate_a_clock_jump<S: ChangeStore>(store: S) {
    store.append(sample(2, "c")).await.expect("append");
    let claimed = store
        .claim("a", at(100_000), at(100_060), horizon(100_000), 1)
        .await
        .expect("claim");
    store
        .schedule_retry("a", &seqs_of(&claimed), at(100_030), "HTTP 503")
        .await
        .expect("retry");
    // The clock is set back by a day: the retry time is now 86 430 s away.
    let back = at(100_000 - 86_400);
    assert!(
        store
            .claim(
                "a",
                back,
                back + TimeDelta::seconds(60),
                back + TimeDelta::seconds(3600),
                10
            )
            .await
            .expect("claim")
            .len()
            == 2,
        "a retry time past the horizon is due"
    );
    let lapsed = store
        .claim(
            "b",
            back,
            back + TimeDelta::seconds(60),
            back + TimeDelta::seconds(3600),
            10,
        )
        .await
        .expect("claim");
    assert!(lapsed.is_empty(), "a lease within the horizon holds");
    let far = back - TimeDelta::days(1);
    assert_eq!(
        store
            .claim(
                "b",
                far,
                far + TimeDelta::seconds(60),
                far + TimeDelta::seconds(3600),
                10
            )
            .await
            .expect("claim")
            .len(),
        2,
        "a lease past the horizon has lapsed"
    );
}

/// Given a store whose next seq is `MAX_SEQ`, one more append works and the next fails
/// with [`StoreError::SeqExhausted`] without writing anything.
pub async fn seq_stays_below_2_pow_53<S: ChangeStore>(store: S) {
    let last = store.append(sample(1, "c")).await.expect("append");
    assert_eq!(last[0].seq, Seq(MAX_SEQ));
    assert_eq!(
        store.append(sample(2, "c")).await,
        Err(StoreError::SeqExhausted)
    );
    assert_eq!(
        store.stats(at(0)).await.expect("stats").pending,
        1,
        "a failed append writes nothing"
    );
}
