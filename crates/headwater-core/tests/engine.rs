//! The engine against the in-memory store and a simulated Flume: one test per rule.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::FutureExt;
use futures::executor::block_on;
use headwater_core::engine::{Outbox, SyncConfig, Syncer};
use headwater_core::model::{Change, ChangeData, DeadLetter};
use headwater_core::testing::{BAD_REQUEST, Fault, INTERCEPTOR_FAILED, SimFlume, id_counts};
use headwater_memory::MemoryStore;

fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000).unwrap() + TimeDelta::seconds(seconds)
}

struct Harness {
    syncer: Syncer<MemoryStore, SimFlume>,
    outbox: Outbox<MemoryStore>,
    flume: SimFlume,
}

fn harness(flume: SimFlume, configure: impl FnOnce(&mut SyncConfig)) -> Harness {
    let mut config = SyncConfig::new("test-client", 7);
    configure(&mut config);
    let syncer = Syncer::new(MemoryStore::new(), flume.clone(), config).unwrap();
    let outbox = syncer.outbox();
    Harness {
        syncer,
        outbox,
        flume,
    }
}

/// Captures one change per key, in order.
fn capture(outbox: &Outbox<MemoryStore>, keys: &[String], now: DateTime<Utc>) -> Vec<Change> {
    let changes = keys
        .iter()
        .map(|key| {
            ChangeData::update("items", key.clone(), &serde_json::json!({"key": key})).unwrap()
        })
        .collect();
    block_on(outbox.capture_all(now, changes)).unwrap()
}

fn keys(count: usize) -> Vec<String> {
    (0..count).map(|index| format!("k{index}")).collect()
}

fn ids(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|change| change.id().to_string())
        .collect()
}

/// Steps the syncer until nothing is left, jumping the clock past each wait.
/// Returns the number of steps.
fn drain(harness: &mut Harness, mut now: DateTime<Utc>) -> usize {
    for step in 0..10_000 {
        block_on(harness.syncer.sync_once(now)).unwrap();
        let status = block_on(harness.outbox.status(now)).unwrap();
        if status.is_drained() {
            return step;
        }
        now = status.next_attempt_at.unwrap_or(now).max(now) + TimeDelta::seconds(61);
    }
    panic!("the outbox did not drain in 10 000 steps");
}

fn dead_letters(outbox: &Outbox<MemoryStore>) -> Vec<DeadLetter> {
    block_on(outbox.dead_letters(None, 100)).unwrap()
}

fn dead_key(letter: &DeadLetter) -> String {
    letter.change().unwrap().data().key().to_owned()
}

#[test]
fn delivers_everything_in_capture_order_with_stable_ids() {
    let mut h = harness(SimFlume::new(), |config| config.max_in_flight = 1);
    let captured = capture(&h.outbox, &keys(250), t(0));
    let report = block_on(h.syncer.sync_once(t(0))).unwrap();
    assert_eq!((report.requests, report.delivered), (3, 250));
    assert_eq!(h.flume.delivered_ids(), ids(&captured));
    let seqs: Vec<u64> = h
        .flume
        .delivered()
        .iter()
        .map(|event| event.headers["seq"].parse().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]));
    let status = block_on(h.outbox.status(t(1))).unwrap();
    assert!(status.is_synced());
    assert_eq!(status.counters.delivered, 250);
    let marker = block_on(h.outbox.sync_marker("items", "k249"))
        .unwrap()
        .unwrap();
    assert_eq!(marker.last_acked_seq, captured[249].seq());
}

#[test]
fn pipelined_delivery_keeps_each_records_changes_in_order() {
    let mut h = harness(SimFlume::new(), |config| {
        config.batch.max_events = 7;
        config.max_in_flight = 4;
        config.adaptive_concurrency = false;
    });
    let names: Vec<String> = (0..200).map(|i| format!("r{}", i % 9)).collect();
    let captured = capture(&h.outbox, &names, t(0));
    h.flume
        .push_fault(Fault::Status(503, "Channel might be full.".into()));
    h.flume.push_fault(Fault::TimeoutAfterCommit);
    drain(&mut h, t(0));
    let delivered = h.flume.delivered();
    let mut seen = std::collections::HashSet::new();
    let mut last: std::collections::HashMap<String, u64> = Default::default();
    for event in &delivered {
        if !seen.insert(event.headers["id"].clone()) {
            continue;
        }
        let seq: u64 = event.headers["seq"].parse().unwrap();
        if let Some(previous) = last.insert(event.headers["key"].clone(), seq) {
            assert!(
                previous < seq,
                "{}: {seq} after {previous}",
                event.headers["key"]
            );
        }
    }
    assert_eq!(seen.len(), captured.len(), "every change arrived");
}

#[test]
fn a_batch_over_transaction_capacity_settles_at_the_capacity() {
    let mut h = harness(SimFlume::new().with_transaction_capacity(100), |config| {
        config.batch.max_events = 150;
        config.max_in_flight = 1;
    });
    let captured = capture(&h.outbox, &keys(150), t(0));
    let report = block_on(h.syncer.sync_once(t(0))).unwrap();
    assert_eq!(
        report.delivered, 150,
        "the detour happens within one step, without a backoff"
    );
    assert_eq!(
        h.flume.requests(),
        3,
        "150 refused, then 100 and 50: one extra request"
    );
    assert_eq!(h.flume.delivered_ids(), ids(&captured));
    assert_eq!(h.syncer.batch_size(), 100);
    capture(&h.outbox, &keys(300), t(1));
    drain(&mut h, t(1));
    assert_eq!(
        h.flume.requests(),
        6,
        "no more 503s once the capacity is known"
    );
}

#[test]
fn two_poisoned_events_are_isolated_and_the_rest_delivered_in_order() {
    let mut h = harness(SimFlume::new(), |config| config.max_in_flight = 1);
    let mut names = keys(100);
    names[17] = "poison-17".into();
    names[60] = "poison-60".into();
    let captured = capture(&h.outbox, &names, t(0));
    let report = block_on(h.syncer.sync_once(t(0))).unwrap();
    assert_eq!((report.delivered, report.dead_lettered), (98, 2));
    let expected: Vec<String> = captured
        .iter()
        .filter(|change| !change.data().key().starts_with("poison"))
        .map(|change| change.id().to_string())
        .collect();
    assert_eq!(
        h.flume.delivered_ids(),
        expected,
        "every good event, once, in order"
    );
    let dead = dead_letters(&h.outbox);
    let dead_keys: Vec<String> = dead.iter().map(dead_key).collect();
    assert_eq!(dead_keys, ["poison-17", "poison-60"]);
    for letter in &dead {
        assert!(
            letter.reason.contains(BAD_REQUEST),
            "Flume's message is kept: {}",
            letter.reason
        );
    }
    assert!(
        h.flume.requests() <= 40,
        "bisection stays logarithmic: {} requests",
        h.flume.requests()
    );
}

#[test]
fn a_503_without_hint_backs_off_and_halves_the_batch() {
    let mut h = harness(SimFlume::new(), |config| config.max_in_flight = 1);
    h.flume.push_fault(Fault::Status(
        503,
        "Error appending event to channel. Channel might be full.Space for commit to queue couldn't be acquired.".into(),
    ));
    let captured = capture(&h.outbox, &keys(100), t(0));
    let report = block_on(h.syncer.sync_once(t(0))).unwrap();
    assert_eq!((report.requests, report.retries), (1, 1));
    assert_eq!(h.syncer.batch_size(), 50);
    let status = block_on(h.outbox.status(t(0))).unwrap();
    let next = status.next_attempt_at.expect("a retry is scheduled");
    assert!(
        next <= t(0) + TimeDelta::milliseconds(250),
        "first retry within the base backoff"
    );
    assert!(status.last_error.unwrap().contains("503"));
    assert_eq!(status.pending, 100, "nothing is lost");
    if next > t(0) {
        let idle = block_on(h.syncer.sync_once(t(0))).unwrap();
        assert_eq!(idle.requests, 0, "no request before the retry is due");
    }
    drain(&mut h, next);
    assert_eq!(h.flume.delivered_ids(), ids(&captured));
    assert_eq!(
        block_on(h.outbox.status(next)).unwrap().last_error,
        None,
        "the error clears once a batch goes through"
    );
}

#[test]
fn retry_after_overrides_the_backoff() {
    let mut h = harness(SimFlume::new(), |_| {});
    h.flume.push_fault(Fault::TooManyRequests(30));
    capture(&h.outbox, &keys(3), t(0));
    block_on(h.syncer.sync_once(t(0))).unwrap();
    let status = block_on(h.outbox.status(t(0))).unwrap();
    let retry = status.next_attempt_at.expect("a retry time");
    assert!(
        (t(30)..=t(45)).contains(&retry),
        "Retry-After 30 s, and up to half of it more so that a fleet is spread: {retry}"
    );
    assert_eq!(block_on(h.syncer.sync_once(t(29))).unwrap().requests, 0);
    assert_eq!(block_on(h.syncer.sync_once(retry)).unwrap().delivered, 3);
    assert!(h.outbox.store().snapshot().is_empty());
}

#[test]
fn a_fleet_told_the_same_retry_after_comes_back_spread() {
    let retries: Vec<DateTime<Utc>> = (0..40)
        .map(|seed| {
            let mut h = harness(SimFlume::new(), |config| config.seed = seed);
            h.flume.push_fault(Fault::TooManyRequests(30));
            capture(&h.outbox, &keys(1), t(0));
            block_on(h.syncer.sync_once(t(0))).unwrap();
            let status = block_on(h.outbox.status(t(0))).unwrap();
            status.next_attempt_at.expect("a retry time")
        })
        .collect();
    assert!(retries.iter().all(|at| (t(30)..=t(45)).contains(at)));
    let first_half = retries
        .iter()
        .filter(|at| **at < t(37) + TimeDelta::milliseconds(500))
        .count();
    assert!(
        (10..=30).contains(&first_half),
        "{first_half} of 40 in the first half: {retries:?}"
    );
}

#[test]
fn a_huge_retry_after_is_cut_to_the_configured_maximum() {
    let mut h = harness(SimFlume::new(), |config| {
        config.max_retry_after = Duration::from_secs(600);
    });
    h.flume.push_fault(Fault::TooManyRequests(86_400));
    capture(&h.outbox, &keys(1), t(0));
    block_on(h.syncer.sync_once(t(0))).unwrap();
    let status = block_on(h.outbox.status(t(0))).unwrap();
    let retry = status.next_attempt_at.expect("a retry time");
    assert!((t(600)..=t(900)).contains(&retry), "{retry}");
}

/// The spread added to a `Retry-After` (up to half of it more) reaches past the
/// longest wait itself: the schedule horizon must cover it, or a retry set that far
/// ahead counts as one that predates a clock set back, and a syncer that starts after a
/// crash sends it at once.
#[test]
fn a_retry_after_with_its_spread_is_honoured_after_a_restart() {
    let configure = |config: &mut SyncConfig| config.max_retry_after = Duration::from_secs(600);
    let mut checked = 0;
    for seed in 0..30 {
        let mut h = harness(SimFlume::new(), |config| {
            configure(config);
            config.seed = seed;
        });
        h.flume.push_fault(Fault::TooManyRequests(600));
        capture(&h.outbox, &keys(1), t(0));
        block_on(h.syncer.sync_once(t(0))).unwrap();
        let retry = block_on(h.outbox.status(t(0)))
            .unwrap()
            .next_attempt_at
            .expect("a retry time");
        // Past the longest wait plus the 60 s margin, seen from t(61): the case the
        // horizon missed.
        if retry <= t(730) {
            continue;
        }
        checked += 1;
        // The process dies; another starts once its lease (60 s) has lapsed.
        let mut config = SyncConfig::new("test-client", 1_000 + seed);
        configure(&mut config);
        let mut restarted = Syncer::new(h.outbox.store().clone(), h.flume.clone(), config).unwrap();
        for at in [t(61), t(400), t(700)] {
            assert_eq!(
                block_on(restarted.sync_once(at)).unwrap().requests,
                0,
                "seed {seed}: told to wait until {retry}, sent at {at}"
            );
        }
        assert_eq!(block_on(restarted.sync_once(retry)).unwrap().delivered, 1);
    }
    assert!(
        checked >= 3,
        "only {checked} seeds drew a spread past 130 s"
    );
}

#[test]
fn attempts_are_persisted_in_the_store() {
    let mut h = harness(SimFlume::new(), |_| {});
    h.flume.push_fault(Fault::ConnectionRefused);
    h.flume.push_fault(Fault::Status(502, "bad gateway".into()));
    capture(&h.outbox, &keys(2), t(0));
    block_on(h.syncer.sync_once(t(0))).unwrap();
    block_on(h.syncer.sync_once(t(100))).unwrap();
    let entries = h.outbox.store().snapshot();
    assert!(entries.iter().all(|entry| entry.delivery.attempts == 2));
    assert!(
        entries[0]
            .delivery
            .last_error
            .as_deref()
            .unwrap()
            .contains("502")
    );
    assert_eq!(block_on(h.syncer.sync_once(t(200))).unwrap().delivered, 2);
}

#[test]
fn a_413_splits_the_batch_and_a_single_change_413_is_dead_lettered() {
    let mut h = harness(SimFlume::new(), |config| config.max_in_flight = 1);
    h.flume
        .push_fault(Fault::Status(413, "Request Entity Too Large".into()));
    let captured = capture(&h.outbox, &keys(10), t(0));
    let report = block_on(h.syncer.sync_once(t(0))).unwrap();
    assert_eq!(report.delivered, 10);
    assert_eq!(
        h.flume.requests(),
        3,
        "413, then two batches of at most half the bytes"
    );
    assert_eq!(h.flume.delivered_ids(), ids(&captured));

    for _ in 0..4 {
        h.flume
            .push_fault(Fault::Status(413, "Request Entity Too Large".into()));
    }
    capture(&h.outbox, &keys(1), t(1));
    let report = block_on(h.syncer.sync_once(t(1))).unwrap();
    assert_eq!(report.dead_lettered, 1, "sent alone once, then condemned");
    let dead = dead_letters(&h.outbox);
    assert!(dead[0].reason.contains("413"), "{}", dead[0].reason);
}

#[test]
fn a_change_larger_than_max_bytes_is_dead_lettered_with_its_size() {
    let mut h = harness(SimFlume::new(), |config| config.batch.max_bytes = 1024);
    let big = ChangeData::insert("items", "big", &"x".repeat(2000)).unwrap();
    let small = ChangeData::insert("items", "small", &1).unwrap();
    block_on(h.outbox.capture_all(t(0), vec![small.clone(), big, small])).unwrap();
    let report = block_on(h.syncer.sync_once(t(0))).unwrap();
    assert_eq!((report.delivered, report.dead_lettered), (2, 1));
    let dead = dead_letters(&h.outbox);
    assert!(
        dead[0]
            .reason
            .contains("over the batch limit of 1024 bytes"),
        "{}",
        dead[0].reason
    );
}

#[test]
fn a_single_500_is_retried_and_an_interceptor_that_throws_is_isolated() {
    let mut h = harness(SimFlume::new(), |_| {});
    h.flume
        .push_fault(Fault::Status(500, "Unexpected error".into()));
    capture(&h.outbox, &keys(4), t(0));
    drain(&mut h, t(0));
    assert_eq!(h.flume.delivered().len(), 4);
    assert!(dead_letters(&h.outbox).is_empty());

    // An interceptor that throws on one event: 500 for any batch that holds it.
    for max_in_flight in [1, 4] {
        let mut h = harness(SimFlume::new(), |config| {
            config.max_in_flight = max_in_flight;
        });
        let mut names = keys(8);
        names[5] = "throws-5".into();
        let captured = capture(&h.outbox, &names, t(0));
        drain(&mut h, t(0));
        let dead = dead_letters(&h.outbox);
        assert_eq!(
            dead.len(),
            1,
            "only the event that fails alone, on evidence"
        );
        assert_eq!(dead[0].seq, captured[5].seq());
        assert!(
            dead[0].reason.contains(INTERCEPTOR_FAILED),
            "{}",
            dead[0].reason
        );
        let mut expected = ids(&captured);
        expected.remove(5);
        let mut delivered = h.flume.delivered_ids();
        if max_in_flight > 1 {
            delivered.sort();
            expected.sort();
        }
        assert_eq!(delivered, expected);
    }
}

/// The probe of the issue: a server that answers 500 to every request must not make
/// headwater dead-letter good data.
#[test]
fn a_flume_that_answers_500_to_everything_for_a_while_loses_nothing() {
    for max_in_flight in [1, 4] {
        let mut h = harness(SimFlume::new(), |config| {
            config.max_in_flight = max_in_flight;
        });
        let captured = capture(&h.outbox, &keys(300), t(0));
        for _ in 0..400 {
            h.flume
                .push_fault(Fault::Status(500, "Server Error".into()));
        }
        let mut now = t(0);
        while h.flume.faults_left() > 0 {
            block_on(h.syncer.sync_once(now)).unwrap();
            now += TimeDelta::seconds(61);
        }
        assert!(
            dead_letters(&h.outbox).is_empty(),
            "{max_in_flight}: nothing condemned"
        );
        drain(&mut h, now);
        let mut delivered = h.flume.delivered_ids();
        let mut expected = ids(&captured);
        if max_in_flight > 1 {
            delivered.sort();
            expected.sort();
        }
        assert_eq!(delivered, expected, "everything, once, after the recovery");
    }
}

#[test]
fn a_flume_that_answers_400_to_everything_blocks_and_loses_nothing() {
    let mut h = harness(SimFlume::new(), |_| {});
    let captured = capture(&h.outbox, &keys(50), t(0));
    for _ in 0..200 {
        h.flume.push_fault(Fault::Status(400, BAD_REQUEST.into()));
    }
    let report = block_on(h.syncer.sync_once(t(0))).unwrap();
    assert!(report.blocked);
    let status = block_on(h.outbox.status(t(0))).unwrap();
    assert!(status.blocked.unwrap().contains("even an empty batch"));
    assert_eq!((status.pending, status.dead_lettered), (50, 0));
    h.flume.clear_faults();
    drain(&mut h, t(60));
    assert_eq!(h.flume.delivered_ids().len(), captured.len());
    assert!(dead_letters(&h.outbox).is_empty());
}

#[test]
fn a_passing_500_while_isolating_does_not_condemn_a_good_change() {
    let mut h = harness(SimFlume::new(), |config| config.max_in_flight = 1);
    let mut names = keys(4);
    names[3] = "poison-3".into();
    let captured = capture(&h.outbox, &names, t(0));
    // 400 for the whole batch, then 500s for a while when parts are sent.
    h.flume.push_fault(Fault::Status(400, BAD_REQUEST.into()));
    h.flume
        .push_fault(Fault::Status(500, "passing trouble".into()));
    h.flume
        .push_fault(Fault::Status(500, "passing trouble".into()));
    drain(&mut h, t(0));
    let dead = dead_letters(&h.outbox);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead_key(&dead[0]), "poison-3");
    assert_eq!(h.flume.delivered_ids(), ids(&captured[..3]));
}

#[test]
fn configuration_errors_block_the_outbox_and_keep_every_change() {
    for status in [401, 403, 404, 405, 501] {
        let mut h = harness(SimFlume::new(), |config| {
            config.blocked_probe_interval = Duration::from_secs(60);
        });
        h.flume.push_fault(Fault::Status(status, "nope".into()));
        h.flume.push_fault(Fault::Status(status, "nope".into()));
        let captured = capture(&h.outbox, &keys(20), t(0));
        let report = block_on(h.syncer.sync_once(t(0))).unwrap();
        assert!(report.blocked, "{status}");
        let status_view = block_on(h.outbox.status(t(0))).unwrap();
        assert!(
            status_view
                .blocked
                .as_deref()
                .unwrap()
                .contains(&status.to_string())
        );
        assert_eq!(status_view.pending, 20, "{status}: every change kept");
        assert_eq!(
            status_view.dead_lettered, 0,
            "{status}: never dead-lettered"
        );
        assert_eq!(
            block_on(h.syncer.sync_once(t(59))).unwrap().requests,
            0,
            "probes slowly"
        );
        assert!(
            block_on(h.syncer.sync_once(t(60))).unwrap().blocked,
            "still blocked"
        );
        let report = block_on(h.syncer.sync_once(t(120))).unwrap();
        assert_eq!(report.delivered, 20, "{status}: delivered once fixed");
        assert_eq!(block_on(h.outbox.status(t(120))).unwrap().blocked, None);
        assert_eq!(h.flume.delivered_ids(), ids(&captured));
    }
}

#[test]
fn a_lost_ack_duplicates_only_the_ambiguous_batch() {
    let mut h = harness(SimFlume::new(), |config| config.max_in_flight = 1);
    h.flume.push_fault(Fault::TimeoutAfterCommit);
    let captured = capture(&h.outbox, &keys(150), t(0));
    drain(&mut h, t(0));
    let delivered = h.flume.delivered_ids();
    let counts = id_counts(&delivered);
    assert_eq!(counts.len(), 150, "every change arrived");
    let ambiguous = h.flume.ambiguous_ids();
    assert_eq!(ambiguous.len(), 100);
    for (id, count) in counts {
        assert_eq!(count, if ambiguous.contains(id) { 2 } else { 1 }, "{id}");
    }
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<&String> = delivered.iter().filter(|id| seen.insert(*id)).collect();
    let expected = ids(&captured);
    assert_eq!(
        firsts,
        expected.iter().collect::<Vec<_>>(),
        "first deliveries follow capture order"
    );
}

#[test]
fn a_connection_refused_before_commit_duplicates_nothing() {
    let mut h = harness(SimFlume::new(), |config| config.max_in_flight = 1);
    h.flume.push_fault(Fault::ConnectionRefused);
    let captured = capture(&h.outbox, &keys(30), t(0));
    drain(&mut h, t(0));
    assert_eq!(h.flume.delivered_ids(), ids(&captured));
}

#[test]
fn a_crash_mid_request_is_recovered_after_the_lease() {
    let flume = SimFlume::new();
    let store = MemoryStore::new();
    let mut config = SyncConfig::new("tab", 1);
    config.lease = Duration::from_secs(30);
    let mut first = Syncer::new(store.clone(), flume.clone(), config.clone()).unwrap();
    let captured = block_on(
        first.outbox().capture_all(
            t(0),
            keys(5)
                .into_iter()
                .map(|k| ChangeData::update("items", k, &0).unwrap())
                .collect(),
        ),
    )
    .unwrap();
    flume.push_fault(Fault::HangAfterCommit);
    assert!(
        first.sync_once(t(0)).now_or_never().is_none(),
        "the request hangs"
    );
    drop(first); // the process dies with the batch in flight

    config.seed = 2;
    let mut second = Syncer::new(store.clone(), flume.clone(), config.clone()).unwrap();
    assert_eq!(
        block_on(second.sync_once(t(10))).unwrap().requests,
        0,
        "the dead syncer's lease still holds"
    );
    assert_eq!(block_on(second.sync_once(t(30))).unwrap().delivered, 5);
    let delivered = flume.delivered_ids();
    assert_eq!(delivered[..5], ids(&captured)[..]);
    assert_eq!(
        delivered[5..],
        ids(&captured)[..],
        "redelivered with the same ids"
    );

    // A syncer restarting under the name it held the lease by takes it back at once.
    config.owner = Some("tab-owner".into());
    let mut third = Syncer::new(store.clone(), flume.clone(), config.clone()).unwrap();
    capture(&third.outbox(), &keys(2), t(100));
    flume.push_fault(Fault::HangAfterCommit);
    assert!(third.sync_once(t(100)).now_or_never().is_none());
    drop(third);
    config.seed = 3;
    let mut fourth = Syncer::new(store, flume.clone(), config).unwrap();
    assert_eq!(block_on(fourth.sync_once(t(101))).unwrap().delivered, 2);
}

#[test]
fn retry_limits_dead_letter_with_the_last_error() {
    let mut h = harness(SimFlume::new(), |config| {
        config.retry_limits.max_attempts = Some(2);
    });
    h.flume.push_fault(Fault::ConnectionRefused);
    h.flume.push_fault(Fault::ConnectionRefused);
    capture(&h.outbox, &keys(3), t(0));
    drain(&mut h, t(0));
    let dead = dead_letters(&h.outbox);
    assert_eq!(dead.len(), 3);
    let reason = &dead[0].reason;
    assert!(
        reason.contains("attempt limit after 2 attempts") && reason.contains("connection refused"),
        "{reason}"
    );
    assert_eq!(block_on(h.outbox.requeue(&[dead[0].seq])).unwrap(), 1);
    drain(&mut h, t(1000));
    assert_eq!(
        h.flume.delivered().len(),
        1,
        "a requeued change is delivered"
    );
}

#[test]
fn coalescing_sends_only_the_latest_change_per_record() {
    let mut h = harness(SimFlume::new(), |config| config.coalesce = true);
    let changes = vec![
        ChangeData::insert("items", "a", &1).unwrap(),
        ChangeData::update("items", "a", &2).unwrap(),
        ChangeData::insert("items", "b", &1).unwrap(),
        ChangeData::delete("items", "a").unwrap(),
    ];
    let captured = block_on(h.outbox.capture_all(t(0), changes)).unwrap();
    let report = block_on(h.syncer.sync_once(t(0))).unwrap();
    assert_eq!((report.delivered, report.coalesced), (2, 2));
    let events = h.flume.delivered();
    assert_eq!(events[0].headers["key"], "b");
    assert_eq!(events[1].headers["op"], "delete");
    let marker = block_on(h.outbox.sync_marker("items", "a"))
        .unwrap()
        .unwrap();
    assert_eq!(marker.last_acked_seq, captured[3].seq());
}

#[test]
fn a_damaged_row_is_quarantined_and_delivery_goes_on() {
    let mut h = harness(SimFlume::new(), |_| {});
    capture(&h.outbox, &keys(2), t(0));
    let damaged = h
        .outbox
        .store()
        .append_damaged("\u{0}\u{1}not json")
        .unwrap();
    capture(&h.outbox, &keys(2), t(0));
    drain(&mut h, t(0));
    assert_eq!(h.flume.delivered().len(), 4);
    let dead = dead_letters(&h.outbox);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].seq, damaged);
    assert!(dead[0].change().is_none(), "the raw row is kept instead");
    assert_eq!(
        block_on(h.outbox.status(t(1)))
            .unwrap()
            .counters
            .quarantined,
        1
    );
}

/// A sleep that never ends: the run loop can only move when woken.
fn never(_: Duration) -> futures::future::Pending<()> {
    futures::future::pending()
}

#[test]
fn the_run_loop_wakes_on_capture_and_shuts_down_cleanly() {
    let h = harness(SimFlume::new(), |_| {});
    let Harness {
        mut syncer,
        outbox,
        flume,
    } = h;
    let driver = async {
        for round in 0..3 {
            let changes = (0..10)
                .map(|i| ChangeData::update("items", format!("r{round}-{i}"), &i).unwrap())
                .collect();
            outbox.capture_all(t(round), changes).await.unwrap();
            while flume.delivered().len() < 10 * (round as usize + 1) {
                yield_now().await;
            }
        }
        outbox.shutdown();
    };
    let (result, ()) = block_on(futures::future::join(syncer.run(|| t(0), never), driver));
    assert_eq!(result, Ok(()));
    assert_eq!(flume.delivered().len(), 30);
    assert_eq!(flume.requests(), 3, "one request per capture burst");
    assert!(outbox.is_stopped());
}

#[test]
fn the_run_loop_sleeps_until_the_retry_is_due() {
    let h = harness(SimFlume::new(), |_| {});
    let Harness {
        mut syncer,
        outbox,
        flume,
    } = h;
    flume.push_fault(Fault::TooManyRequests(120));
    capture(&outbox, &keys(5), t(0));
    let clock = std::sync::Mutex::new(t(0));
    let slept = std::sync::Mutex::new(Vec::new());
    let sleep = |wait: Duration| {
        assert!(
            slept.lock().unwrap().len() < 50,
            "a busy loop: {:?} {}",
            slept.lock().unwrap(),
            flume.requests()
        );
        let mut now = clock.lock().unwrap();
        *now += TimeDelta::from_std(wait).unwrap();
        slept.lock().unwrap().push(wait);
        if flume.delivered().len() == 5 {
            outbox.shutdown();
        }
        yield_now()
    };
    block_on(syncer.run(|| *clock.lock().unwrap(), sleep)).unwrap();
    assert_eq!(flume.delivered().len(), 5);
    let slept = slept.lock().unwrap();
    assert!(
        slept
            .iter()
            .take_while(|wait| **wait < Duration::from_secs(120))
            .count()
            <= 4,
        "sleeps towards the retry without a busy loop: {slept:?}"
    );
    assert!(slept.len() <= 8, "no busy loop: {slept:?}");
    assert_eq!(flume.requests(), 2);
}

/// Returns Pending once, so other futures in the same task get polled.
fn yield_now() -> impl Future<Output = ()> {
    let mut yielded = false;
    futures::future::poll_fn(move |cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
}
