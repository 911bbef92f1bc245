//! The checks: each takes a fresh, empty store and panics with a message naming the
//! rule it broke.

use chrono::TimeDelta;

use super::support::{at, claim_request, granted, sample, seqs_of};
use crate::model::{
    Captured, Change, ChangeData, ChangeIdGenerator, DeadContent, Delivery, MAX_SEQ, OpKind, Seq,
};
use crate::store::{ChangeStore, Claim, Location, Outcome, Recorded, StoreError, StoredEntry};

/// Seqs grow strictly; content (ids, values, headers, deletes) survives the store.
pub async fn append_assigns_increasing_seqs_and_keeps_content<S: ChangeStore>(store: S) {
    let captured = sample(5, "c");
    let stored = store.append(captured.clone()).await.expect("append");
    assert_eq!(stored.len(), 5, "append returns every change");
    let more = store.append(sample(2, "d")).await.expect("append");
    let seqs: Vec<u64> = stored
        .iter()
        .chain(&more)
        .map(|change| change.seq().0)
        .collect();
    assert!(
        seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "seqs must grow strictly: {seqs:?}"
    );
    assert!(
        seqs.iter().all(|seq| *seq >= 1 && *seq <= MAX_SEQ),
        "seqs in 1..=2^53-1: {seqs:?}"
    );
    let claimed = granted(&store, &claim_request("a", 100, None, 100)).await;
    assert_eq!(claimed.len(), 7, "every appended change is read");
    for (entry, original) in claimed.iter().zip(&captured) {
        assert_eq!(entry.change.id(), original.id, "the id never changes");
        assert_eq!(entry.change.captured_at(), original.captured_at);
        assert_eq!(
            entry.change.data(),
            &original.data,
            "content survives the store"
        );
        assert_eq!(entry.delivery, Delivery::new());
    }
    assert_eq!(claimed[2].change.data().kind(), OpKind::Delete);
    assert_eq!(claimed[2].change.data().value_json(), None);
    assert!(
        store
            .append(Vec::new())
            .await
            .expect("empty append")
            .is_empty()
    );
}

/// A claim reads in seq order, after the given seq, at most the limit; limit 0 reads
/// nothing (it only renews the lease).
pub async fn claim_reads_in_order_after_a_seq<S: ChangeStore>(store: S) {
    let stored = store.append(sample(10, "c")).await.expect("append");
    let first = granted(&store, &claim_request("a", 0, None, 4)).await;
    assert_eq!(
        seqs_of(&first),
        stored[..4].iter().map(Change::seq).collect::<Vec<_>>()
    );
    let next = granted(&store, &claim_request("a", 1, Some(stored[3].seq()), 100)).await;
    assert_eq!(
        seqs_of(&next),
        stored[4..].iter().map(Change::seq).collect::<Vec<_>>(),
        "reading goes on after the seq given"
    );
    assert!(
        granted(&store, &claim_request("a", 2, None, 0))
            .await
            .is_empty()
    );
    let listed = store
        .pending(Some(stored[7].seq()), 10)
        .await
        .expect("pending");
    assert_eq!(listed.len(), 2, "pending lists without a lease");
}

/// One syncer holds the lease; others are refused until it lapses or is released; the
/// holder renews it; a lease beyond the horizon predates a clock jump.
pub async fn a_lease_keeps_others_out_until_it_lapses<S: ChangeStore>(store: S) {
    store.append(sample(3, "c")).await.expect("append");
    assert_eq!(
        granted(&store, &claim_request("a", 0, None, 10))
            .await
            .len(),
        3
    );
    match store
        .claim(&claim_request("b", 30, None, 10))
        .await
        .expect("claim")
    {
        Claim::Held(lease) => {
            assert_eq!(lease.owner, "a");
            assert_eq!(lease.until, at(60));
        }
        Claim::Granted(_) => panic!("b was granted a lease a holds until 60"),
    }
    granted(&store, &claim_request("a", 50, None, 0)).await;
    assert!(
        matches!(
            store
                .claim(&claim_request("b", 100, None, 1))
                .await
                .expect("claim"),
            Claim::Held(_)
        ),
        "a renewed its lease at 50, to 110"
    );
    assert_eq!(
        granted(&store, &claim_request("b", 110, None, 10))
            .await
            .len(),
        3,
        "lapsed"
    );
    store.release("a").await.expect("release by a non-holder");
    assert!(
        matches!(
            store
                .claim(&claim_request("a", 111, None, 1))
                .await
                .expect("claim"),
            Claim::Held(_)
        ),
        "a release by a non-holder changes nothing"
    );
    store.release("b").await.expect("release");
    assert_eq!(
        granted(&store, &claim_request("a", 112, None, 10))
            .await
            .len(),
        3,
        "released"
    );
    assert_eq!(
        granted(&store, &{
            let mut request = claim_request("c", 112, None, 10);
            request.now = at(112) - TimeDelta::days(2);
            request.horizon = request.now + TimeDelta::hours(1);
            request.lease_until = request.now + TimeDelta::seconds(60);
            request
        })
        .await
        .len(),
        3,
        "a lease further ahead than the horizon was set before the clock jumped back"
    );
}

/// Acknowledgements remove changes and move each record's marker to its highest acked
/// seq, never backwards.
pub async fn acks_remove_changes_and_move_markers_forward<S: ChangeStore>(store: S) {
    let mut captured = sample(2, "todos");
    let mut ids = ChangeIdGenerator::from_seed(77);
    let again = ChangeData::update("todos", "k0", &serde_json::json!({"v": 2})).expect("data");
    captured.push(Captured {
        id: ids.next_id(at(5)),
        captured_at: at(5),
        data: again,
    });
    let stored = store.append(captured).await.expect("append");
    let entries = granted(&store, &claim_request("a", 10, None, 10)).await;
    assert!(
        store
            .sync_marker("todos", "k0")
            .await
            .expect("marker")
            .is_none()
    );
    let mut outcome = Outcome::default();
    for entry in &entries {
        outcome.ack(&entry.change);
    }
    assert_eq!(
        store.record("a", at(20), &outcome).await.expect("record"),
        Recorded::Applied
    );
    let marker = store
        .sync_marker("todos", "k0")
        .await
        .expect("marker")
        .expect("synced");
    assert_eq!(
        marker.last_acked_seq,
        stored[2].seq(),
        "the latest change of k0"
    );
    assert_eq!(marker.acked_at, at(20));
    assert_eq!(store.stats().await.expect("stats").pending, 0);
    let mut late = Outcome::default();
    late.ack(&entries[0].change);
    store
        .record("a", at(30), &late)
        .await
        .expect("a late duplicate ack");
    let marker = store
        .sync_marker("todos", "k0")
        .await
        .expect("marker")
        .expect("synced");
    assert_eq!(
        marker.last_acked_seq,
        stored[2].seq(),
        "markers never move back"
    );
    assert!(
        store
            .sync_marker("todos", "nope")
            .await
            .expect("marker")
            .is_none()
    );
}

/// Retry bookkeeping is stored with its change and read back by the next claim.
pub async fn retries_are_stored_with_their_changes<S: ChangeStore>(store: S) {
    store.append(sample(3, "c")).await.expect("append");
    let entries = granted(&store, &claim_request("a", 0, None, 10)).await;
    let failed = entries[1].delivery.failed(at(90), "HTTP 503: full");
    let mut outcome = Outcome::default();
    outcome.retry(entries[1].change.seq(), failed.clone());
    store.record("a", at(1), &outcome).await.expect("record");
    let again = granted(&store, &claim_request("a", 2, None, 10)).await;
    assert_eq!(
        again[1].delivery, failed,
        "attempts, retry time and error survive"
    );
    assert_eq!(again[0].delivery, Delivery::new());
    let stats = store.stats().await.expect("stats");
    assert_eq!(stats.oldest.expect("a head").delivery, Delivery::new());
}

/// Dead letters leave the outbox with their reason, are listed in seq order, and can be
/// requeued (same seq and id, attempts reset) or discarded.
pub async fn dead_letters_leave_the_line_and_can_be_requeued_or_discarded<S: ChangeStore>(
    store: S,
) {
    store.append(sample(4, "c")).await.expect("append");
    let entries = granted(&store, &claim_request("a", 0, None, 10)).await;
    let mut outcome = Outcome::default();
    let mut tried = entries[1].clone();
    tried.delivery = tried.delivery.failed(at(1), "HTTP 500");
    outcome.dead_letter(tried.dead_letter("HTTP 400: Bad request", at(2)));
    outcome.dead_letter(entries[3].dead_letter("too large", at(3)));
    store.record("a", at(3), &outcome).await.expect("record");
    let stats = store.stats().await.expect("stats");
    assert_eq!((stats.pending, stats.dead_lettered), (2, 2));
    let dead = store.dead_letters(None, 10).await.expect("dead letters");
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].seq, entries[1].change.seq());
    assert_eq!(dead[0].reason, "HTTP 400: Bad request");
    assert_eq!(dead[0].at, at(2));
    assert_eq!(dead[0].attempts, 1);
    assert_eq!(dead[0].change(), Some(&entries[1].change));
    assert_eq!(
        store
            .dead_letters(Some(dead[0].seq), 10)
            .await
            .expect("page")
            .len(),
        1
    );
    assert_eq!(store.dead_letters(None, 1).await.expect("page").len(), 1);
    assert_eq!(
        store.locate(entries[0].change.seq()).await.expect("locate"),
        Location::Pending
    );
    assert_eq!(
        store.locate(dead[0].seq).await.expect("locate"),
        Location::DeadLettered(dead[0].clone())
    );
    assert_eq!(
        store.locate(Seq(999)).await.expect("locate"),
        Location::Gone
    );
    assert_eq!(
        store
            .requeue(&[dead[0].seq, Seq(999)])
            .await
            .expect("requeue"),
        1
    );
    let back = granted(&store, &claim_request("a", 4, None, 10)).await;
    assert_eq!(back.len(), 3);
    assert_eq!(back[1].change, entries[1].change, "same seq, same id");
    assert_eq!(back[1].delivery, Delivery::new(), "attempts reset");
    assert_eq!(
        store
            .discard(&[dead[1].seq, Seq(999)])
            .await
            .expect("discard"),
        1
    );
    let stats = store.stats().await.expect("stats");
    assert_eq!((stats.pending, stats.dead_lettered), (3, 0));
}

/// A syncer whose lease passed to another may still acknowledge (a delivered change is
/// delivered), but its retries and dead letters are not written.
pub async fn a_syncer_that_lost_the_lease_can_only_acknowledge<S: ChangeStore>(store: S) {
    store.append(sample(3, "c")).await.expect("append");
    let entries = granted(&store, &claim_request("a", 0, None, 10)).await;
    granted(&store, &claim_request("b", 100, None, 10)).await;
    let mut outcome = Outcome::default();
    outcome.ack(&entries[0].change);
    outcome.retry(
        entries[1].change.seq(),
        entries[1].delivery.failed(at(200), "x"),
    );
    outcome.dead_letter(entries[2].dead_letter("x", at(100)));
    assert_eq!(
        store.record("a", at(101), &outcome).await.expect("record"),
        Recorded::LeaseLost
    );
    let left = granted(&store, &claim_request("b", 102, None, 10)).await;
    assert_eq!(
        seqs_of(&left),
        seqs_of(&entries[1..]),
        "the ack was applied"
    );
    assert_eq!(left[0].delivery, Delivery::new(), "the retry was not");
    assert_eq!(
        store.stats().await.expect("stats").dead_lettered,
        0,
        "nor the dead letter"
    );
}

/// Stats count pending changes and their bytes, dead letters, and find the oldest and
/// newest pending change.
pub async fn stats_count_and_find_the_head<S: ChangeStore>(store: S) {
    let empty = store.stats().await.expect("stats");
    assert_eq!(
        (empty.pending, empty.pending_bytes, empty.dead_lettered),
        (0, 0, 0)
    );
    assert!(empty.oldest.is_none() && empty.newest_seq.is_none());
    let captured = sample(6, "c");
    let weight: u64 = captured.iter().map(|c| c.data.weight() as u64).sum();
    let stored = store.append(captured).await.expect("append");
    let stats = store.stats().await.expect("stats");
    assert_eq!(stats.pending, 6);
    assert_eq!(stats.pending_bytes, weight);
    let oldest = stats.oldest.expect("a head");
    assert_eq!(oldest.seq, stored[0].seq());
    assert_eq!(oldest.captured_at, stored[0].captured_at());
    assert_eq!(stats.newest_seq, Some(stored[5].seq()));
    let entries = granted(&store, &claim_request("a", 0, None, 2)).await;
    let mut outcome = Outcome::default();
    outcome.ack(&entries[0].change);
    outcome.dead_letter(entries[1].dead_letter("x", at(1)));
    store.record("a", at(1), &outcome).await.expect("record");
    let stats = store.stats().await.expect("stats");
    assert_eq!((stats.pending, stats.dead_lettered), (4, 1));
    let removed = (stored[0].data().weight() + stored[1].data().weight()) as u64;
    assert_eq!(stats.pending_bytes, weight - removed);
    assert_eq!(stats.oldest.expect("a head").seq, stored[2].seq());
    assert_eq!(stats.lease.expect("a lease").owner, "a");
}

/// The bytes pending stay right whatever order claims, acknowledgements, dead letters,
/// requeues and stats come in (a store may count lazily, as IndexedDB does).
pub async fn pending_bytes_hold_whichever_call_comes_first<S: ChangeStore>(store: S) {
    let weight = |changes: &[Change]| -> u64 {
        changes
            .iter()
            .map(|change| change.data().weight() as u64)
            .sum()
    };
    let first = store.append(sample(4, "c")).await.expect("append");
    // Claimed before any stats, part acknowledged, part dead-lettered.
    let entries = granted(&store, &claim_request("a", 0, None, 3)).await;
    let more = store.append(sample(3, "d")).await.expect("append");
    let mut outcome = Outcome::default();
    outcome.ack(&entries[0].change);
    outcome.dead_letter(entries[1].dead_letter("x", at(1)));
    store.record("a", at(1), &outcome).await.expect("record");
    let left = weight(&first[2..]) + weight(&more);
    assert_eq!(store.stats().await.expect("stats").pending_bytes, left);
    assert_eq!(
        store.stats().await.expect("stats").pending_bytes,
        left,
        "a second read counts nothing twice"
    );
    // Requeued: its bytes come back.
    assert_eq!(store.requeue(&[first[1].seq()]).await.expect("requeue"), 1);
    let left = left + weight(&first[1..2]);
    assert_eq!(store.stats().await.expect("stats").pending_bytes, left);
    // Everything claimed again from the head; one acknowledged alone, two with a claim
    // in the same step (a store may take those off the count the claim reads), the
    // rest alone again: nothing left.
    let entries = granted(&store, &claim_request("a", 2, None, 10)).await;
    assert_eq!(entries.len(), 6);
    let changes: Vec<Change> = entries.iter().map(|entry| entry.change.clone()).collect();
    let mut alone = Outcome::default();
    alone.ack(&changes[0]);
    store.record("a", at(2), &alone).await.expect("record");
    let mut with_claim = Outcome::default();
    with_claim.ack(&changes[1]);
    with_claim.ack(&changes[2]);
    let more = store.append(sample(1, "e")).await.expect("append");
    let request = claim_request("a", 2, Some(changes[5].seq()), 10);
    let (recorded, claim) = store
        .record_then_claim("a", at(2), &with_claim, &request)
        .await
        .expect("record then claim");
    assert_eq!(recorded, Recorded::Applied);
    let Ok(Claim::Granted(claimed)) = claim else {
        panic!("the claim after the outcome was not granted: {claim:?}");
    };
    assert_eq!(claimed.len(), 1, "the change appended since");
    let left = left - weight(&changes[..3]) + weight(&more);
    assert_eq!(store.stats().await.expect("stats").pending_bytes, left);
    let mut rest = Outcome::default();
    for change in changes[3..].iter().chain(&more) {
        rest.ack(change);
    }
    store.record("a", at(2), &rest).await.expect("record");
    let stats = store.stats().await.expect("stats");
    assert_eq!((stats.pending, stats.pending_bytes), (0, 0));
}

/// A seq is never given out twice, even after every change was acknowledged.
pub async fn seqs_are_never_reused<S: ChangeStore>(store: S) {
    let first = store.append(sample(2, "c")).await.expect("append");
    let entries = granted(&store, &claim_request("a", 0, None, 10)).await;
    let mut outcome = Outcome::default();
    for entry in &entries {
        outcome.ack(&entry.change);
    }
    store.record("a", at(1), &outcome).await.expect("record");
    let next = store.append(sample(1, "c")).await.expect("append");
    assert!(
        next[0].seq() > first[1].seq(),
        "{:?} after {:?}",
        next[0].seq(),
        first[1].seq()
    );
}

/// Given a store whose next seq is `MAX_SEQ`, one more append works and the next fails
/// with [`StoreError::SeqExhausted`] without writing anything.
pub async fn seq_stays_below_2_pow_53<S: ChangeStore>(store: S) {
    let last = store.append(sample(1, "c")).await.expect("append");
    assert_eq!(last[0].seq(), Seq(MAX_SEQ));
    assert!(matches!(
        store.append(sample(2, "c")).await,
        Err(StoreError::SeqExhausted)
    ));
    assert_eq!(
        store.stats().await.expect("stats").pending,
        1,
        "a failed append writes nothing"
    );
}

/// A row that does not decode comes back from a claim as unreadable (the claim does
/// not fail), can be quarantined into the dead letters with its raw text, is not
/// requeued, and can be discarded. `damage` writes such a row (its text is `raw`) and
/// returns its seq.
pub async fn quarantine<S, D, Fut>(store: S, damage: D)
where
    S: ChangeStore,
    D: Fn(&S, &str) -> Fut,
    Fut: Future<Output = Seq>,
{
    store.append(sample(1, "c")).await.expect("append");
    let raw = "{\"not\": \"a change\"";
    let bad = damage(&store, raw).await;
    store.append(sample(1, "d")).await.expect("append");
    let rows: Vec<StoredEntry> = match store.claim(&claim_request("a", 0, None, 10)).await {
        Ok(Claim::Granted(rows)) => rows,
        other => panic!("claim: {other:?}"),
    };
    assert_eq!(rows.len(), 3, "the damaged row does not fail the claim");
    let unreadable = rows[1].clone().expect_err("the damaged row is reported");
    assert_eq!(unreadable.seq, bad);
    assert!(unreadable.raw.contains("not"), "{:?}", unreadable.raw);
    let mut outcome = Outcome::default();
    outcome.dead_letter(unreadable.quarantine(at(1)));
    store.record("a", at(1), &outcome).await.expect("record");
    let dead = store.dead_letters(None, 10).await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert!(
        matches!(&dead[0].content, DeadContent::Unreadable { raw: kept } if kept.contains("not")),
        "the raw row is kept: {:?}",
        dead[0].content
    );
    assert!(
        dead[0].reason.starts_with("quarantined"),
        "{}",
        dead[0].reason
    );
    assert_eq!(
        store.requeue(&[bad]).await.expect("requeue"),
        0,
        "not requeued"
    );
    assert_eq!(store.stats().await.expect("stats").pending, 2);
    assert_eq!(store.discard(&[bad]).await.expect("discard"), 1);
}
