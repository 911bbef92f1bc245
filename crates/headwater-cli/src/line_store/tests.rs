use std::path::PathBuf;

use headwater::sqlite::SqliteOptions;
use headwater_core::flume::EventMapping;
use headwater_core::store::{ChangeStore, Claim, ClaimRequest, Location, Outcome, Recorded};

use super::*;
use crate::input::{LineRules, check};
use crate::state::{self, Layout};

/// An input of `changes` lines (a blank line after every seventh, and long values
/// every so often, so that spans close on both rules), and its state's folder.
struct Fixture {
    _dir: tempfile::TempDir,
    input: PathBuf,
    state: PathBuf,
}

fn fixture(changes: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let mut text = String::from("\n");
    for i in 1..=changes {
        let pad = if i % 97 == 0 { 30_000 } else { 8 };
        text.push_str(&format!(
            "{{\"collection\":\"c\",\"key\":\"k{}\",\"op\":\"update\",\"value\":{{\"n\":{i},\"pad\":\"{}\"}}}}\n",
            i % 50,
            "x".repeat(pad)
        ));
        if i % 7 == 0 {
            text.push_str("  \n");
        }
    }
    std::fs::write(&input, text).unwrap();
    let state = dir.path().join("state.db");
    Fixture {
        _dir: dir,
        input,
        state,
    }
}

/// The store over the fixture's state (made on first open), and what tells of a
/// changed input.
fn open(
    fixture: &Fixture,
    visible: u64,
) -> (
    state::State,
    LineStore,
    tokio::sync::watch::Receiver<Option<String>>,
) {
    let input = Input::open(&fixture.input).unwrap();
    let mapping = EventMapping::with_source("test".to_owned());
    let checked = check(
        &input,
        &LineRules {
            mapping: &mapping,
            max_event_bytes: 1 << 20,
        },
    )
    .unwrap();
    let (state, connection) = state::open(
        &fixture.state,
        &checked.identity,
        || Ok(Vec::new()),
        &SqliteOptions::default(),
        false,
        Layout::Lines(Identity::new()),
    )
    .unwrap();
    let Layout::Lines(identity) = state.layout else {
        panic!("a new state is in the lines layout");
    };
    let (failure, failed) = tokio::sync::watch::channel(None);
    let store = LineStore::open(
        connection,
        identity,
        Some(CheckedInput {
            input: &input,
            spans: checked.spans,
            changes: checked.changes as u64,
            weight: checked.weight,
        }),
        Arc::new(AtomicU64::new(visible)),
        failure,
    )
    .unwrap();
    (state, store, failed)
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
}

fn request(after: Option<u64>, limit: usize) -> ClaimRequest {
    ClaimRequest {
        owner: "me".into(),
        now: at(0),
        lease_until: at(30),
        horizon: at(60),
        after: after.and_then(Seq::new),
        limit,
    }
}

async fn claim(store: &LineStore, after: Option<u64>, limit: usize) -> Vec<OutboxEntry> {
    match store.claim(&request(after, limit)).await.unwrap() {
        Claim::Granted(entries) => entries.into_iter().map(Result::unwrap).collect(),
        other => panic!("{other:?}"),
    }
}

fn seqs(entries: &[OutboxEntry]) -> Vec<u64> {
    entries
        .iter()
        .map(|entry| entry.change.seq().get())
        .collect()
}

fn value_n(entry: &OutboxEntry) -> u64 {
    let value: serde_json::Value =
        serde_json::from_str(entry.change.data().value_json().unwrap()).unwrap();
    value["n"].as_u64().unwrap()
}

#[tokio::test]
async fn every_line_is_claimed_under_its_seq_and_an_id_that_survives_a_restart() {
    let fixture = fixture(2_500);
    let (state, store, _) = open(&fixture, u64::MAX);
    let first = claim(&store, None, 10_000).await;
    assert_eq!(seqs(&first), (1..=2_500).collect::<Vec<_>>());
    assert!(
        first
            .iter()
            .all(|entry| value_n(entry) == entry.change.seq().get())
    );
    let ids: std::collections::HashSet<_> = first.iter().map(|entry| entry.change.id()).collect();
    assert_eq!(ids.len(), 2_500, "one id per line");
    assert!(
        first
            .iter()
            .all(|entry| entry.change.id().as_uuid().get_version_num() == 7)
    );
    // Acknowledged out of order, in three answers.
    for (from, to) in [(300, 400), (1, 100), (150, 160)] {
        let mut outcome = Outcome::default();
        for entry in &first[from - 1..to] {
            outcome.ack(&entry.change);
        }
        assert_eq!(
            store.record("me", at(1), &outcome).await.unwrap(),
            Recorded::Applied
        );
    }
    assert_eq!(store.acked_runs(), vec![(1, 100), (150, 160), (300, 400)]);
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.pending, 2_500 - 212);
    assert_eq!(stats.oldest.unwrap().seq.get(), 101);
    drop((state, store));

    let (_state, store, _) = open(&fixture, u64::MAX);
    let again = claim(&store, None, 10_000).await;
    let expected: Vec<u64> = (101..150).chain(161..300).chain(401..=2_500).collect();
    assert_eq!(
        seqs(&again),
        expected,
        "what was acknowledged is not sent again"
    );
    for entry in &again {
        assert_eq!(
            entry.change,
            first[entry.change.seq().get() as usize - 1].change,
            "the same change under the same id and time"
        );
    }
    assert_eq!(
        seqs(&claim(&store, Some(155), 3).await),
        vec![161, 162, 163],
        "a claim after a seq skips the acknowledged run"
    );
    assert!(matches!(
        store.locate(Seq::new(50).unwrap()).await.unwrap(),
        Location::Gone
    ));
    assert!(matches!(
        store.locate(Seq::new(101).unwrap()).await.unwrap(),
        Location::Pending
    ));
    let marker = store.sync_marker("c", "k10").await.unwrap().unwrap();
    assert_eq!(
        marker.last_acked_seq.get(),
        360,
        "k10's last acknowledged line"
    );
}

#[tokio::test]
async fn dead_letters_and_retries_are_kept_and_an_operator_settles_them() {
    let fixture = fixture(300);
    let (state, store, _) = open(&fixture, u64::MAX);
    let entries = claim(&store, None, 10).await;
    let mut outcome = Outcome::default();
    outcome.dead_letter(entries[4].dead_letter("HTTP 400", at(2)));
    outcome.dead_letter(entries[5].dead_letter("HTTP 400", at(2)));
    outcome.retry(
        entries[2].change.seq(),
        entries[2].delivery.failed(at(9), "HTTP 503"),
    );
    store.record("me", at(2), &outcome).await.unwrap();
    drop((state, store));

    let (state, store, _) = open(&fixture, u64::MAX);
    let letters = store.dead_letters(None, 10).await.unwrap();
    assert_eq!(
        letters
            .iter()
            .map(|letter| letter.seq.get())
            .collect::<Vec<_>>(),
        vec![5, 6]
    );
    assert_eq!(letters[0].change().unwrap(), &entries[4].change);
    assert_eq!(letters[0].reason, "HTTP 400");
    let pending = claim(&store, None, 10).await;
    assert_eq!(seqs(&pending), vec![1, 2, 3, 4, 7, 8, 9, 10, 11, 12]);
    assert_eq!(pending[2].delivery.attempts, 1, "the retry state was kept");
    assert_eq!(store.stats().await.unwrap().dead_lettered, 2);
    assert_eq!(store.requeue(&[Seq::new(5).unwrap()]).await.unwrap(), 1);
    assert_eq!(store.discard(&[Seq::new(6).unwrap()]).await.unwrap(), 1);
    drop((state, store));

    let (_state, store, _) = open(&fixture, u64::MAX);
    assert!(store.dead_letters(None, 10).await.unwrap().is_empty());
    assert_eq!(seqs(&claim(&store, None, 6).await), vec![1, 2, 3, 4, 5, 7]);
    assert!(matches!(
        store.locate(Seq::new(6).unwrap()).await.unwrap(),
        Location::Gone
    ));
    assert_eq!(store.stats().await.unwrap().pending, 299);
}

#[tokio::test]
async fn an_input_changed_while_it_is_sent_stops_delivery_and_says_why() {
    let fixture = fixture(3_000);
    let (_state, store, failed) = open(&fixture, u64::MAX);
    assert_eq!(claim(&store, None, 10).await.len(), 10);
    // One byte of a later line, the length unchanged.
    let mut bytes = std::fs::read(&fixture.input).unwrap();
    let at = bytes.len() - 20;
    bytes[at] = if bytes[at] == b'x' { b'y' } else { b'x' };
    std::fs::write(&fixture.input, bytes).unwrap();
    let error = store.claim(&request(Some(2_990), 10)).await.unwrap_err();
    assert!(matches!(error, StoreError::Unusable(_)), "{error:?}");
    let told = failed.borrow().clone().unwrap();
    assert!(
        told.contains("the input changed while it was being sent"),
        "{told}"
    );
    assert!(told.contains("not what was checked"), "{told}");
}

#[tokio::test]
async fn a_paced_run_claims_only_the_lines_released_so_far() {
    let fixture = fixture(100);
    let (_state, store, _) = open(&fixture, 10);
    assert_eq!(
        seqs(&claim(&store, None, 100).await),
        (1..=10).collect::<Vec<_>>()
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.pending, 10);
    assert_eq!(stats.newest_seq.unwrap().get(), 10);
    store.visible.store(25, Ordering::Release);
    assert_eq!(
        seqs(&claim(&store, Some(10), 100).await),
        (11..=25).collect::<Vec<_>>()
    );
    assert_eq!(store.settled_head(), 0);
}

#[test]
fn ids_are_the_states_own() {
    let one = Identity::new();
    let two = Identity::new();
    assert_eq!(one.id_of(7), one.id_of(7));
    assert_ne!(one.id_of(7), one.id_of(8));
    assert_ne!(one.id_of(7), two.id_of(7));
}
