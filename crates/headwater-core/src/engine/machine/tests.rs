//! The machine driven by hand: every command answered by the test, time passed by the
//! test, no executor.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::flume::{DecodeLimits, decode_batch};
use crate::model::{Captured, Change, ChangeData, ChangeIdGenerator, DeadLetter, OutboxEntry};
use crate::store::{Claim, ClaimRequest, Lease, Outcome, Recorded};
use crate::transport::Response;
use crate::transport::SendOutcome;

fn at(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000 + millis).unwrap()
}

/// A store kept by the test, and the requests in flight.
struct Harness {
    machine: DeliveryMachine,
    store: BTreeMap<Seq, OutboxEntry>,
    dead: Vec<DeadLetter>,
    lease: Option<Lease>,
    in_flight: Vec<(SendRequest, Vec<Seq>)>,
    ids: ChangeIdGenerator,
    next_seq: u64,
}

impl Harness {
    fn new(configure: impl FnOnce(&mut SyncConfig)) -> Self {
        let mut config = SyncConfig::new("test", 1);
        config.adaptive_concurrency = false;
        configure(&mut config);
        Self {
            machine: DeliveryMachine::new(config).unwrap(),
            store: BTreeMap::new(),
            dead: Vec::new(),
            lease: None,
            in_flight: Vec::new(),
            ids: ChangeIdGenerator::from_seed(3),
            next_seq: 0,
        }
    }

    fn capture(&mut self, keys: &[&str]) -> Vec<Seq> {
        keys.iter()
            .map(|key| {
                self.next_seq += 1;
                let data = ChangeData::update("items", *key, &self.next_seq).unwrap();
                let change = Change::new(
                    Seq(self.next_seq),
                    Captured {
                        id: self.ids.next_id(at(0)),
                        captured_at: at(0),
                        data,
                    },
                );
                self.store.insert(change.seq(), OutboxEntry::new(change));
                Seq(self.next_seq)
            })
            .collect()
    }

    fn claim(&mut self, request: &ClaimRequest) -> Claim {
        match request.grant(self.lease.as_ref()) {
            Err(held) => Claim::Held(held),
            Ok(lease) => {
                self.lease = Some(lease);
                let start = request.after.map_or(Seq(0), |s| Seq(s.0 + 1));
                Claim::Granted(
                    self.store
                        .range(start..)
                        .take(request.limit)
                        .map(|(_, entry)| Ok(entry.clone()))
                        .collect(),
                )
            }
        }
    }

    fn apply(&mut self, outcome: &Outcome) {
        for seq in outcome.acked() {
            self.store.remove(seq);
        }
        for (seq, delivery) in outcome.retries() {
            if let Some(entry) = self.store.get_mut(seq) {
                entry.delivery = delivery.clone();
            }
        }
        for letter in outcome.dead() {
            self.store.remove(&letter.seq);
            self.dead.push(letter.clone());
        }
    }

    /// Performs every command the machine gives at `now`; returns the seqs of each new
    /// request (empty for a probe).
    fn step(&mut self, now: DateTime<Utc>) -> Vec<Vec<Seq>> {
        self.machine.handle_captured(now);
        let mut sent = Vec::new();
        while let Some(command) = self.machine.poll_command(now) {
            match command {
                Command::Claim(request) => {
                    let claim = self.claim(&request);
                    self.machine.handle_claimed(now, &request, claim);
                }
                Command::RecordThenClaim(outcome, request) => {
                    self.apply(&outcome);
                    let claim = self.claim(&request);
                    self.machine.handle_recorded_then_claimed(
                        now,
                        Recorded::Applied,
                        &request,
                        Ok(claim),
                    );
                }
                Command::Record(outcome) => {
                    self.apply(&outcome);
                    self.machine.handle_recorded(now, Recorded::Applied);
                }
                Command::Release => {
                    self.lease = None;
                    self.machine.handle_released(now);
                }
                Command::Send(request) => {
                    let seqs = seqs_in(&request.body);
                    sent.push(seqs.clone());
                    self.in_flight.push((request, seqs));
                }
            }
        }
        sent
    }

    /// Answers the oldest request in flight at `now` with `outcome`.
    fn answer(&mut self, now: DateTime<Utc>, outcome: SendOutcome) -> Vec<Seq> {
        let (request, seqs) = self.in_flight.remove(0);
        self.machine
            .handle_answer(now, request.id, outcome, request.body);
        seqs
    }

    /// Answers every request in flight the way `flume` would, then steps, until nothing
    /// is in flight at `now`. Returns every request's seqs.
    fn run(
        &mut self,
        now: DateTime<Utc>,
        mut flume: impl FnMut(&[Seq]) -> SendOutcome,
    ) -> Vec<Vec<Seq>> {
        let mut all = self.step(now);
        while !self.in_flight.is_empty() {
            let seqs = self.in_flight[0].1.clone();
            let outcome = flume(&seqs);
            self.answer(now, outcome);
            all.extend(self.step(now));
        }
        all
    }

    fn dead_seqs(&self) -> Vec<Seq> {
        self.dead.iter().map(|letter| letter.seq).collect()
    }
}

fn seqs_in(body: &[u8]) -> Vec<Seq> {
    let events =
        decode_batch(std::str::from_utf8(body).unwrap(), &DecodeLimits::default()).unwrap();
    events
        .iter()
        .map(|event| Seq(event.headers["seq"].parse().unwrap()))
        .collect()
}

fn ok() -> SendOutcome {
    SendOutcome::Response(Response::status(200))
}

fn status(code: u16, message: &str) -> SendOutcome {
    SendOutcome::Response(Response::with_message(code, message))
}

fn seqs(values: impl IntoIterator<Item = u64>) -> Vec<Seq> {
    values.into_iter().map(Seq).collect()
}

/// A machine whose window runs low while an outcome waits: 800 read, 400 sent, one
/// answer written while a fifth request went out, and a second answer in.
fn window_running_low() -> (Harness, Option<Command>) {
    let mut h = Harness::new(|config| {
        config.max_in_flight = 4;
        config.batch.max_events = 100;
    });
    let keys: Vec<String> = (0..2000).map(|i| format!("k{i}")).collect();
    h.capture(&keys.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(h.step(at(0)).len(), 4, "800 read, 400 in requests");
    h.answer(at(1), ok());
    let Some(Command::Record(_)) = h.machine.poll_command(at(1)) else {
        panic!("400 ready of 700: the outcome is written at once");
    };
    // While the store writes it, a request goes out.
    let Some(Command::Send(request)) = h.machine.poll_command(at(1)) else {
        panic!("a send while the store works");
    };
    let sent = seqs_in(&request.body);
    h.in_flight.push((request, sent));
    assert!(
        h.machine.poll_command(at(1)).is_none(),
        "one store command at a time"
    );
    h.answer(at(2), ok());
    h.machine.handle_recorded(at(2), Recorded::Applied);
    let command = h.machine.poll_command(at(2));
    (h, command)
}

#[test]
fn an_outcome_is_written_alone_once_nothing_is_in_flight() {
    let mut h = Harness::new(|_| {});
    h.capture(&["a", "b", "c"]);
    let Some(Command::Claim(request)) = h.machine.poll_command(at(0)) else {
        panic!("a claim first");
    };
    let claim = h.claim(&request);
    h.machine.handle_claimed(at(0), &request, claim);
    let Some(Command::Send(request)) = h.machine.poll_command(at(0)) else {
        panic!("then the batch");
    };
    let sent = seqs_in(&request.body);
    h.in_flight.push((request, sent));
    h.answer(at(1), ok());
    match h.machine.poll_command(at(1)) {
        Some(Command::Record(outcome)) => assert_eq!(outcome.acked().len(), 3),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_idle_wire_gets_the_next_batch_before_the_outcome_is_written() {
    let mut h = Harness::new(|config| {
        config.max_in_flight = 1;
        config.batch.max_events = 100;
    });
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    h.capture(&keys.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(h.step(at(0)).len(), 1);
    h.answer(at(1), ok());
    match h.machine.poll_command(at(1)) {
        Some(Command::Send(request)) => assert_eq!(seqs_in(&request.body).len(), 100),
        other => panic!("the wire first: {other:?}"),
    }
    match h.machine.poll_command(at(1)) {
        Some(Command::RecordThenClaim(outcome, _)) => assert_eq!(outcome.acked().len(), 100),
        other => panic!("then the outcome, with a claim for the low window: {other:?}"),
    }
}

#[test]
fn an_outcome_comes_with_a_claim_once_the_window_runs_low() {
    match window_running_low().1 {
        Some(Command::RecordThenClaim(outcome, request)) => {
            assert_eq!(outcome.acked().len(), 100);
            assert_eq!(request.limit, 500, "800 less the 300 ready");
        }
        other => panic!("300 ready: the outcome comes with a claim: {other:?}"),
    }
}

#[test]
fn after_a_lost_lease_the_claim_that_came_with_the_outcome_is_not_taken() {
    let (mut h, command) = window_running_low();
    let Some(Command::RecordThenClaim(_, request)) = command else {
        panic!("{command:?}");
    };
    let claim = h.claim(&request);
    h.machine
        .handle_recorded_then_claimed(at(2), Recorded::LeaseLost, &request, Ok(claim));
    match h.machine.poll_command(at(2)) {
        Some(Command::Claim(again)) => assert_eq!(again.after, None, "from the head"),
        other => panic!("the machine starts over from the store: {other:?}"),
    }
}

#[test]
fn a_retry_after_a_timeout_is_scheduled_from_when_the_answer_came() {
    let mut h = Harness::new(|config| {
        config.backoff.base = Duration::from_millis(100);
        config.backoff.cap = Duration::from_millis(100);
        config.max_in_flight = 1;
    });
    h.capture(&["a", "b"]);
    assert_eq!(h.step(at(0)), vec![seqs([1, 2])]);
    // The request timed out ten seconds after it was sent.
    h.answer(
        at(10_000),
        SendOutcome::TimedOut {
            message: "10s".into(),
        },
    );
    assert!(
        h.step(at(10_000)).is_empty(),
        "no resend before the backoff"
    );
    let retry = h.store[&Seq(1)]
        .delivery
        .next_attempt_at
        .expect("a retry time");
    assert!(
        retry >= at(10_000) && retry <= at(10_100),
        "the backoff runs from the answer at 10 s, not from the send: {retry}"
    );
    assert_eq!(h.store[&Seq(1)].delivery.attempts, 1);
    let wake = h.machine.poll_timeout(at(10_000)).expect("a wake-up");
    assert!(wake <= at(10_100), "{wake}");
    assert_eq!(h.run(at(10_100), |_| ok()), vec![seqs([1, 2])]);
    assert!(h.store.is_empty());
}

#[test]
fn several_batches_fly_at_once_and_no_record_is_in_two() {
    let mut h = Harness::new(|config| {
        config.batch.max_events = 2;
        config.max_in_flight = 3;
    });
    h.capture(&["a", "b", "a", "c", "d", "e", "b", "f"]);
    let sent = h.step(at(0));
    assert_eq!(
        sent,
        vec![seqs([1, 2]), seqs([4, 5]), seqs([6, 8])],
        "a and b wait for the batch holding their first changes"
    );
    h.answer(at(5), ok());
    assert_eq!(
        h.step(at(5)),
        vec![seqs([3, 7])],
        "the first ack frees a and b"
    );
}

#[test]
fn one_request_in_flight_keeps_total_order() {
    let mut h = Harness::new(|config| {
        config.batch.max_events = 2;
        config.max_in_flight = 1;
    });
    h.capture(&["a", "b", "c", "d", "e"]);
    assert_eq!(h.step(at(0)), vec![seqs([1, 2])]);
    h.answer(at(1), status(503, "Channel might be full."));
    assert!(h.step(at(1)).is_empty());
    let sent = h.run(at(60_000), |_| ok());
    assert_eq!(
        sent,
        vec![seqs([1]), seqs([2, 3]), seqs([4, 5])],
        "halved, then grown back"
    );
}

#[test]
fn a_retry_of_one_batch_holds_back_only_its_own_records() {
    let mut h = Harness::new(|config| {
        config.batch.max_events = 2;
        config.max_in_flight = 2;
    });
    h.capture(&["a", "b", "c", "d", "a", "e"]);
    assert_eq!(h.step(at(0)), vec![seqs([1, 2]), seqs([3, 4])]);
    h.answer(at(1), status(502, "Bad Gateway"));
    h.answer(at(1), ok());
    assert!(
        h.step(at(1)).is_empty(),
        "the backoff holds every new request"
    );
    let retry = h.store[&Seq(1)].delivery.next_attempt_at.unwrap();
    let sent = h.run(retry, |_| ok());
    assert_eq!(sent[0], seqs([1, 2]), "the retried batch first");
    assert!(sent.iter().any(|batch| batch.contains(&Seq(6))));
    assert!(h.store.is_empty());
}

#[test]
fn a_batch_over_the_transaction_capacity_is_cut_at_once() {
    let mut h = Harness::new(|config| {
        config.batch.max_events = 10;
        config.max_in_flight = 1;
    });
    h.capture(&["a", "b", "c", "d", "e", "f"]);
    let sent = h.run(at(0), |seqs| {
        if seqs.len() > 4 {
            status(503, "Put queue for MemoryTransaction of capacity 4 full")
        } else {
            ok()
        }
    });
    assert_eq!(sent, vec![seqs(1..=6), seqs(1..=4), seqs(5..=6)]);
    assert_eq!(h.machine.batch_size(), 4);
}

#[test]
fn a_poisoned_change_is_condemned_between_two_acceptances() {
    let mut h = Harness::new(|config| config.max_in_flight = 1);
    let keys: Vec<String> = (0..16).map(|i| format!("k{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    h.capture(&keys);
    let poison = Seq(6);
    let sent = h.run(at(0), |seqs| {
        if seqs.contains(&poison) {
            status(400, "Bad request from client.")
        } else {
            ok()
        }
    });
    assert_eq!(h.dead_seqs(), vec![poison]);
    assert!(
        h.dead[0].reason.contains("Bad request"),
        "{}",
        h.dead[0].reason
    );
    assert!(h.store.is_empty(), "every other change is delivered");
    assert!(sent.len() < 16, "{} requests", sent.len());
}

#[test]
fn a_flume_that_answers_500_to_everything_condemns_nothing() {
    let mut h = Harness::new(|_| {});
    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    h.capture(&keys);
    let mut now = at(0);
    let mut requests = 0;
    for _ in 0..40 {
        requests += h.run(now, |_| status(500, "Unexpected error")).len();
        now += TimeDelta::seconds(61);
    }
    assert!(h.dead.is_empty(), "dead-lettered {:?}", h.dead_seqs());
    assert!(
        requests < 40 * 12,
        "{requests} requests: a bounded number per backoff"
    );
    h.run(now, |_| ok());
    assert!(
        h.store.is_empty(),
        "everything is delivered once Flume recovers"
    );
}

#[test]
fn a_flume_that_answers_400_to_everything_blocks_and_condemns_nothing() {
    let mut h = Harness::new(|_| {});
    h.capture(&["a", "b", "c", "d", "e", "f", "g", "h"]);
    h.run(at(0), |_| status(400, "Bad request from client."));
    let view = h.machine.status(at(0));
    let reason = view.blocked.expect("blocked");
    assert!(reason.contains("even an empty batch"), "{reason}");
    assert!(h.dead.is_empty());
    assert!(
        h.step(at(1_000)).is_empty(),
        "a blocked outbox waits for its probe"
    );
    h.run(at(61_000), |_| ok());
    assert!(h.store.is_empty());
    assert!(h.machine.status(at(61_000)).blocked.is_none());
}

#[test]
fn a_change_that_throws_alone_is_condemned_on_the_second_strike() {
    let mut h = Harness::new(|config| config.max_in_flight = 2);
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    h.capture(&keys);
    let poison = Seq(12);
    let flume = |seqs: &[Seq]| {
        if seqs.contains(&poison) {
            status(500, "interceptor threw")
        } else {
            ok()
        }
    };
    let mut now = at(0);
    for _ in 0..10 {
        h.run(now, flume);
        now += TimeDelta::seconds(61);
    }
    assert_eq!(h.dead_seqs(), vec![poison]);
    assert!(h.store.is_empty());
}

#[test]
fn a_configuration_problem_blocks_and_keeps_everything() {
    let mut h = Harness::new(|_| {});
    h.capture(&["a", "b"]);
    h.run(at(0), |_| status(404, "Not Found"));
    assert!(
        h.machine
            .status(at(0))
            .blocked
            .unwrap()
            .contains("endpoint URL")
    );
    assert_eq!(h.store.len(), 2);
    assert!(h.step(at(30_000)).is_empty());
    let probe = h.step(at(60_000));
    assert_eq!(probe.len(), 1, "one probe after the interval");
}

#[test]
fn a_too_large_batch_is_split_and_the_limit_heals() {
    let mut h = Harness::new(|config| {
        config.max_in_flight = 1;
        config.batch.max_bytes = 100_000;
    });
    h.capture(&["a", "b", "c", "d"]);
    let sent = h.run(at(0), |seqs| {
        if seqs.len() > 2 {
            status(413, "")
        } else {
            ok()
        }
    });
    assert_eq!(sent[0].len(), 4);
    assert!(h.store.is_empty());
    assert!(h.machine.max_bytes() < 100_000);
    h.capture(&["e"; 1]);
    for _ in 0..30 {
        h.capture(&["x"]);
        h.run(at(1), |_| ok());
    }
    assert_eq!(
        h.machine.max_bytes(),
        100_000,
        "successes grow the byte limit back"
    );
}

#[test]
fn another_syncers_lease_keeps_this_one_idle() {
    let mut h = Harness::new(|_| {});
    h.capture(&["a"]);
    h.lease = Some(Lease {
        owner: "other".into(),
        until: at(30_000),
    });
    assert!(h.step(at(0)).is_empty());
    assert_eq!(h.machine.poll_timeout(at(0)), Some(at(30_000)));
    assert_eq!(
        h.step(at(30_000)),
        vec![seqs([1])],
        "the lapsed lease is taken over"
    );
}

#[test]
fn shutdown_finishes_the_requests_in_flight_then_releases() {
    let mut h = Harness::new(|_| {});
    h.capture(&["a", "b"]);
    h.step(at(0));
    h.machine.shutdown();
    assert!(h.step(at(1)).is_empty());
    assert!(!h.machine.is_stopped());
    h.answer(at(2), ok());
    h.step(at(2));
    assert!(h.machine.is_stopped());
    assert!(
        h.store.is_empty(),
        "the answer was recorded before the release"
    );
    assert!(h.lease.is_none());
}

#[test]
fn an_unreadable_row_is_quarantined_and_delivery_goes_on() {
    let mut h = Harness::new(|_| {});
    h.capture(&["a"]);
    let request = match h.machine.poll_command(at(0)) {
        Some(Command::Claim(request)) => request,
        other => panic!("{other:?}"),
    };
    let good = h.store[&Seq(1)].clone();
    let bad = crate::model::UnreadableEntry {
        seq: Seq(2),
        raw: "garbage".into(),
        error: "expected value".into(),
    };
    h.lease = request.grant(None).ok();
    h.machine
        .handle_claimed(at(0), &request, Claim::Granted(vec![Ok(good), Err(bad)]));
    h.store
        .insert(Seq(2), OutboxEntry::new(h.store[&Seq(1)].change.clone()));
    h.run(at(0), |_| ok());
    assert_eq!(h.dead_seqs(), vec![Seq(2)]);
    assert!(h.dead[0].reason.starts_with("quarantined"));
    assert_eq!(h.machine.status(at(0)).counters.delivered, 1);
}

#[test]
fn a_request_that_is_never_answered_shows_as_stalled_after_stall_after() {
    let mut h = Harness::new(|config| {
        config.stall_after = Some(Duration::from_secs(10));
    });
    h.capture(&["a", "b"]);
    assert_eq!(h.step(at(0)).len(), 1, "sent, and never answered");
    assert_eq!(h.machine.stalled_since(at(9_000)), None);
    assert!(
        h.machine
            .poll_timeout(at(1_000))
            .is_some_and(|wake| wake <= at(10_000)),
        "the driver wakes to notice the stall"
    );
    h.step(at(10_000));
    assert_eq!(h.machine.status(at(10_000)).stalled_since, Some(at(0)));
    // An answer is progress: the watchdog's clock restarts, and stops once drained.
    h.answer(at(11_000), ok());
    h.step(at(11_000));
    assert_eq!(h.machine.stalled_since(at(30_000)), None);
}

#[test]
fn a_blocked_or_paused_outbox_is_not_stalled() {
    let mut h = Harness::new(|config| {
        config.stall_after = Some(Duration::from_secs(10));
    });
    h.capture(&["a"]);
    h.step(at(0));
    h.answer(at(0), status(404, "Not Found"));
    h.step(at(0));
    h.step(at(20_000));
    assert!(h.machine.status(at(20_000)).blocked.is_some());
    assert_eq!(h.machine.stalled_since(at(20_000)), None);

    let mut h = Harness::new(|config| {
        config.stall_after = Some(Duration::from_secs(10));
    });
    h.capture(&["a"]);
    h.step(at(0));
    h.machine.handle_paused(at(0), true);
    h.step(at(20_000));
    assert_eq!(h.machine.stalled_since(at(20_000)), None);
}

/// Issue 31: an isolation sent a later part before an earlier one that held a change of
/// the same record. Here seq 1 throws in an interceptor (500), so the isolation holds it
/// as a suspect for a while; the part [3:x, 4:a] waits behind it (3 is x's), and the
/// part holding 7:a must wait for 4:a instead of going first.
#[test]
fn an_isolation_sends_no_part_before_an_earlier_part_of_its_records() {
    let mut h = Harness::new(|config| config.max_in_flight = 2);
    let keys = ["x", "y", "x", "a", "b", "c", "a", "d"];
    let record = |seq: Seq| keys[seq.0 as usize - 1];
    h.capture(&keys);
    let poison = Seq(1);
    let mut answers: Vec<(Vec<Seq>, u16)> = Vec::new();
    let mut now = at(0);
    for _ in 0..12 {
        h.run(now, |seqs| {
            let status = if seqs.contains(&poison) { 500 } else { 200 };
            answers.push((seqs.to_vec(), status));
            match status {
                200 => ok(),
                _ => self::status(500, "interceptor threw"),
            }
        });
        now += TimeDelta::seconds(61);
    }
    let log = format!("{answers:?}");
    // The sequence of requests and answers, as the machine made them:
    let expected: &[(&[u64], u16)] = &[
        (&[1, 2, 3, 4, 5, 6, 7, 8], 500), // the whole batch, retried once
        (&[1, 2, 3, 4, 5, 6, 7, 8], 500), // then taken apart
        (&[1, 2, 3, 4], 500),
        (&[1, 2], 500),
        (&[1], 500),          // alone: a suspect, and [3, 4] waits behind it (3 is x's)
        (&[], 200),           // an acceptance right before the suspect's lone try
        (&[1], 500),          // sandwiched: a refusal that counts if the next answer is 200
        (&[2], 200),          // the first strike
        (&[4], 200),          // 4:a is free; 3:x stays behind the suspect
        (&[5, 6, 7, 8], 200), // 7:a only now, after 4:a
        (&[1], 500),          // after a backoff, the second strike...
        (&[], 200),           // ...condemns it
        (&[3], 200),
    ];
    for (index, (seqs, status)) in expected.iter().enumerate() {
        assert_eq!(
            answers.get(index),
            Some(&(self::seqs(seqs.iter().copied()), *status)),
            "request {index} of {log}"
        );
    }
    assert_eq!(h.dead_seqs(), vec![poison], "{log}");
    assert!(h.store.is_empty(), "{log}");
    let mut last: BTreeMap<&str, Seq> = BTreeMap::new();
    for (seqs, _) in answers.iter().filter(|(_, status)| *status == 200) {
        for seq in seqs {
            if let Some(previous) = last.insert(record(*seq), *seq) {
                assert!(previous < *seq, "{seq} after {previous}: {log}");
            }
        }
    }
}

/// A store that does not finish writing outcomes (an application holding SQLite's write
/// lock) stops new requests once as many acknowledgements wait as can be in flight: a
/// crash then sends again at most twice the in-flight limit's worth, however long the
/// store is stuck. Before, the window went on sending everything it had read.
#[test]
fn a_stuck_store_holds_back_new_requests_so_a_crash_resends_at_most_twice_the_in_flight() {
    let mut h = Harness::new(|config| {
        config.max_in_flight = 2;
        config.batch.max_events = 5;
    });
    let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
    h.capture(&keys.iter().map(String::as_str).collect::<Vec<_>>());
    // In flight and acknowledged-but-unwritten: twice the in-flight limit's worth, and
    // the batch that went while the store was still free.
    let bound = (2 * 2 + 1) * 5;
    let mut sent = 0;
    let mut stuck = Vec::new();
    h.machine.handle_captured(at(0));
    for round in 0..100 {
        while let Some(command) = h.machine.poll_command(at(round)) {
            match command {
                Command::Claim(request) => {
                    let claim = h.claim(&request);
                    h.machine.handle_claimed(at(round), &request, claim);
                }
                Command::Send(request) => {
                    let seqs = seqs_in(&request.body);
                    sent += seqs.len();
                    h.in_flight.push((request, seqs));
                }
                // The store never finishes a write.
                other => stuck.push(other),
            }
        }
        let in_flight: usize = h.in_flight.iter().map(|(_, seqs)| seqs.len()).sum();
        let unwritten = h.machine.unwritten_acks();
        assert!(
            in_flight + unwritten <= bound,
            "round {round}: {in_flight} in flight and {unwritten} acknowledged, unwritten"
        );
        if h.in_flight.is_empty() {
            break;
        }
        h.answer(at(round), ok());
    }
    assert!(!stuck.is_empty(), "an outcome was handed to the store");
    assert!(
        sent <= bound,
        "{sent} changes sent while no acknowledgement could be written"
    );
    assert!(
        h.machine.unwritten_acks() >= 2 * 5,
        "it stopped at the limit"
    );
}
