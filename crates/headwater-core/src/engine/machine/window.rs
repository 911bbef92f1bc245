//! The changes a syncer has read from its outbox, and how batches are cut from them so
//! that no record ever has two batches in flight.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hash, Hasher};
use std::ops::Bound;

use rustc_hash::{FxBuildHasher, FxHashMap};

use chrono::{DateTime, Utc};

use crate::model::{Change, Delivery, OutboxEntry, Seq};

/// Where a loaded change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SlotState {
    /// Waiting to be batched (at its retry time, if it has one).
    Ready,
    /// In a request in flight.
    Sending,
    /// Held by an isolation that is taking a refused batch apart.
    Isolating,
}

/// One loaded change.
#[derive(Debug, Clone)]
pub(super) struct Slot {
    pub(super) entry: OutboxEntry,
    /// A hash of (collection, key): equal records have equal hashes. A collision only
    /// makes two records wait for each other, never reorders one.
    pub(super) record: u64,
    pub(super) state: SlotState,
    /// Batches holding this change refused with 500 in a row.
    pub(super) server_errors: u32,
}

/// The record hash of a change.
pub(super) fn record_hash(change: &Change) -> u64 {
    let mut hasher = FxBuildHasher.build_hasher();
    let record = change.record();
    record.collection.hash(&mut hasher);
    record.key.hash(&mut hasher);
    hasher.finish()
}

/// How a record stands while one batch is being cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// It has a change in the batch being cut (the latest such seq).
    Taken(Seq),
    /// It has an earlier change that is not in this batch: its later changes wait.
    Held,
}

/// What the window offers for one batch, before encoding.
#[derive(Debug, Default)]
pub(super) struct Candidates {
    /// The changes to send, in seq order.
    pub(super) send: Vec<Seq>,
    /// Changes superseded by a later one of the same record in `send` (coalescing).
    pub(super) superseded: Vec<Seq>,
    /// The route of every change in `send`, when batches are cut by route.
    pub(super) route: Option<usize>,
}

/// How one batch is cut.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cut {
    /// At most this many changes.
    pub(super) max_events: usize,
    /// One request in flight: the batch is the run of changes from the head.
    pub(super) total_order: bool,
    /// Only the latest change of each record goes.
    pub(super) coalesce: bool,
    /// Changes of one route only, out of this many.
    pub(super) routes: Option<usize>,
}

/// The route of a record hash, out of `routes`.
pub(super) fn route_of(record: u64, routes: usize) -> usize {
    (record % routes.max(1) as u64) as usize
}

/// The loaded changes, in seq order.
#[derive(Debug, Default)]
pub(super) struct Window {
    /// Boxed: the map shifts entries within its nodes, and a pointer moves cheaper than
    /// a change.
    slots: BTreeMap<Seq, Box<Slot>>,
    seen: FxHashMap<u64, Seen>,
    /// Slots not `Ready`, counted as they change (status reads it on every turn).
    busy: usize,
    /// The retry times of the ready slots that have one, kept as slots change, so that
    /// the next wake-up is found without a scan of the window (which a backlog of
    /// hundreds of changes made the machine's hottest path).
    retries: BTreeSet<(DateTime<Utc>, Seq)>,
}

impl Window {
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub(super) fn contains(&self, seq: Seq) -> bool {
        self.slots.contains_key(&seq)
    }

    pub(super) fn insert(&mut self, entry: OutboxEntry) {
        let seq = entry.change.seq();
        if self.slots.contains_key(&seq) {
            return;
        }
        if let Some(at) = entry.delivery.next_attempt_at {
            self.retries.insert((at, seq));
        }
        self.slots.insert(
            seq,
            Box::new(Slot {
                record: record_hash(&entry.change),
                entry,
                state: SlotState::Ready,
                server_errors: 0,
            }),
        );
    }

    pub(super) fn get(&self, seq: Seq) -> Option<&Slot> {
        self.slots.get(&seq).map(|slot| &**slot)
    }

    /// The slot of `seq`, to change its counts (its state and delivery change through
    /// [`set_state`](Self::set_state) and [`set_delivery`](Self::set_delivery), which
    /// keep the window's indexes).
    pub(super) fn get_mut(&mut self, seq: Seq) -> Option<&mut Slot> {
        self.slots.get_mut(&seq).map(|slot| &mut **slot)
    }

    pub(super) fn remove(&mut self, seq: Seq) -> Option<Box<Slot>> {
        let slot = self.slots.remove(&seq)?;
        if slot.state != SlotState::Ready {
            self.busy -= 1;
        } else if let Some(at) = slot.entry.delivery.next_attempt_at {
            self.retries.remove(&(at, seq));
        }
        Some(slot)
    }

    /// Drops every change not in a request or an isolation (the lease was lost).
    pub(super) fn drop_ready(&mut self) {
        self.slots.retain(|_, slot| slot.state != SlotState::Ready);
        self.retries.clear();
    }

    pub(super) fn set_state(&mut self, seqs: &[Seq], state: SlotState) {
        for seq in seqs {
            if let Some(slot) = self.slots.get_mut(seq) {
                let retry = slot.entry.delivery.next_attempt_at.map(|at| (at, *seq));
                match (slot.state == SlotState::Ready, state == SlotState::Ready) {
                    (true, false) => {
                        self.busy += 1;
                        if let Some(retry) = retry {
                            self.retries.remove(&retry);
                        }
                    }
                    (false, true) => {
                        self.busy -= 1;
                        if let Some(retry) = retry {
                            self.retries.insert(retry);
                        }
                    }
                    _ => {}
                }
                slot.state = state;
            }
        }
    }

    /// Sets the retry bookkeeping of `seq`.
    pub(super) fn set_delivery(&mut self, seq: Seq, delivery: Delivery) {
        let Some(slot) = self.slots.get_mut(&seq) else {
            return;
        };
        if slot.state == SlotState::Ready {
            if let Some(at) = slot.entry.delivery.next_attempt_at {
                self.retries.remove(&(at, seq));
            }
            if let Some(at) = delivery.next_attempt_at {
                self.retries.insert((at, seq));
            }
        }
        slot.entry.delivery = delivery;
    }

    /// Makes every ready change due now.
    pub(super) fn clear_retry_times(&mut self) {
        for (_, seq) in std::mem::take(&mut self.retries) {
            if let Some(slot) = self.slots.get_mut(&seq) {
                slot.entry.delivery.next_attempt_at = None;
            }
        }
    }

    /// The earliest retry time of a ready change after `now` (and not past `horizon`,
    /// beyond which a time counts as due).
    pub(super) fn earliest_retry(
        &self,
        now: DateTime<Utc>,
        horizon: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.retries
            .range((Bound::Excluded((now, Seq(u64::MAX))), Bound::Unbounded))
            .next()
            .map(|(at, _)| *at)
            .filter(|at| *at <= horizon)
    }

    /// Whether any ready change could be batched at `now`.
    pub(super) fn any_due(&self, now: DateTime<Utc>, horizon: DateTime<Utc>) -> bool {
        let ready = self.slots.len() - self.busy;
        ready > self.retries.len()
            || self.retries.first().is_some_and(|(at, _)| *at <= now)
            || self.retries.last().is_some_and(|(at, _)| *at > horizon)
    }

    /// When the oldest ready change was captured.
    pub(super) fn oldest_ready_capture(&self) -> Option<DateTime<Utc>> {
        self.slots
            .values()
            .find(|slot| slot.state == SlotState::Ready)
            .map(|slot| slot.entry.change.captured_at())
    }

    /// Changes in requests or isolations.
    pub(super) fn busy(&self) -> usize {
        self.busy
    }

    /// Picks up to `max_events` changes for the next batch.
    ///
    /// With `total_order`, the batch is the longest run of ready, due changes from the
    /// head, stopping at the first that is not. Otherwise a change joins unless an
    /// earlier change of its record is elsewhere (in flight, isolating, or waiting for
    /// a retry): each record's changes go in capture order, and records do not wait for
    /// each other.
    pub(super) fn candidates(
        &mut self,
        now: DateTime<Utc>,
        horizon: DateTime<Utc>,
        cut: Cut,
    ) -> Candidates {
        let mut picked = Candidates::default();
        self.seen.clear();
        for (seq, slot) in &self.slots {
            if picked.send.len() >= cut.max_events {
                break;
            }
            let joinable =
                slot.state == SlotState::Ready && slot.entry.delivery.is_due(now, horizon);
            // A batch cut by route takes the route of its first change; the changes of
            // other routes wait for batches of their own (a record has one route, so
            // its order is not touched).
            let other_route = match (cut.routes, picked.route) {
                (Some(routes), Some(route)) => route_of(slot.record, routes) != route,
                _ => false,
            };
            if cut.total_order {
                if !joinable || other_route {
                    break;
                }
                Self::take(&mut self.seen, &mut picked, slot.record, *seq, cut.coalesce);
            } else {
                if other_route {
                    continue;
                }
                match (self.seen.get(&slot.record).copied(), joinable) {
                    (Some(Seen::Held), _) => continue,
                    (_, false) => {
                        self.seen.insert(slot.record, Seen::Held);
                        continue;
                    }
                    (_, true) => {
                        Self::take(&mut self.seen, &mut picked, slot.record, *seq, cut.coalesce);
                    }
                }
            }
            if let Some(routes) = cut.routes {
                picked.route = Some(route_of(slot.record, routes));
            }
        }
        picked
    }

    fn take(
        seen: &mut FxHashMap<u64, Seen>,
        picked: &mut Candidates,
        record: u64,
        seq: Seq,
        coalesce: bool,
    ) {
        if coalesce
            && let Some(Seen::Taken(previous)) = seen.get(&record).copied()
            && let Some(position) = picked.send.iter().rposition(|s| *s == previous)
        {
            picked.send.remove(position);
            picked.superseded.push(previous);
        }
        seen.insert(record, Seen::Taken(seq));
        picked.send.push(seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Captured, ChangeData, ChangeIdGenerator, Delivery};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn window(keys: &[&str]) -> Window {
        let mut ids = ChangeIdGenerator::from_seed(1);
        let mut window = Window::default();
        for (index, key) in keys.iter().enumerate() {
            let data = ChangeData::update("c", *key, &index).unwrap();
            let change = Change::new(
                Seq(index as u64 + 1),
                Captured {
                    id: ids.next_id(at(0)),
                    captured_at: at(0),
                    data,
                },
            );
            window.insert(OutboxEntry::new(change));
        }
        window
    }

    fn seqs(values: &[u64]) -> Vec<Seq> {
        values.iter().copied().map(Seq).collect()
    }

    fn cut(max_events: usize, total_order: bool, coalesce: bool, routes: Option<usize>) -> Cut {
        Cut {
            max_events,
            total_order,
            coalesce,
            routes,
        }
    }

    fn pick(window: &mut Window, max: usize, total_order: bool) -> Vec<Seq> {
        window
            .candidates(at(0), at(3600), cut(max, total_order, false, None))
            .send
    }

    #[test]
    fn a_record_in_flight_holds_back_only_its_own_later_changes() {
        let mut window = window(&["a", "b", "a", "c", "b", "d"]);
        let first = pick(&mut window, 2, false);
        assert_eq!(first, seqs(&[1, 2]));
        window.set_state(&first, SlotState::Sending);
        assert_eq!(
            pick(&mut window, 10, false),
            seqs(&[4, 6]),
            "a and b wait for the batch holding their earlier changes"
        );
    }

    #[test]
    fn a_record_waiting_for_a_retry_holds_back_its_later_changes() {
        let mut window = window(&["a", "b", "a"]);
        window.set_delivery(Seq(1), Delivery::new().failed(at(30), "503"));
        assert_eq!(pick(&mut window, 10, false), seqs(&[2]));
        assert_eq!(pick(&mut window, 10, true), seqs(&[]), "total order waits");
        assert_eq!(window.earliest_retry(at(0), at(3600)), Some(at(30)));
        assert_eq!(
            window
                .candidates(at(30), at(3600), cut(10, true, false, None))
                .send,
            seqs(&[1, 2, 3])
        );
    }

    /// What the retry index answers, worked out by a scan of every slot.
    fn scanned(
        window: &Window,
        now: DateTime<Utc>,
        horizon: DateTime<Utc>,
    ) -> (Option<DateTime<Utc>>, bool) {
        let ready = || {
            window
                .slots
                .values()
                .filter(|slot| slot.state == SlotState::Ready)
        };
        let earliest = ready()
            .filter_map(|slot| slot.entry.delivery.next_attempt_at)
            .filter(|at| *at > now && *at <= horizon)
            .min();
        let any_due = ready().any(|slot| slot.entry.delivery.is_due(now, horizon));
        (earliest, any_due)
    }

    #[test]
    fn the_retry_index_agrees_with_a_scan_through_every_change() {
        let mut window = window(&["a", "b", "c", "d", "e", "f"]);
        let check = |window: &Window| {
            for now in [at(0), at(15), at(30), at(45), at(100)] {
                let horizon = now + chrono::TimeDelta::seconds(40);
                assert_eq!(
                    (
                        window.earliest_retry(now, horizon),
                        window.any_due(now, horizon)
                    ),
                    scanned(window, now, horizon),
                    "at {now}"
                );
            }
        };
        check(&window);
        for (seq, seconds) in [(1, 30), (2, 10), (3, 50), (4, 90)] {
            window.set_delivery(Seq(seq), Delivery::new().failed(at(seconds), "503"));
            check(&window);
        }
        window.set_state(&seqs(&[2, 5, 6]), SlotState::Sending);
        check(&window);
        window.set_state(&seqs(&[2]), SlotState::Ready);
        check(&window);
        window.set_delivery(Seq(2), Delivery::new().failed(at(20), "503"));
        window.remove(Seq(1));
        check(&window);
        window.set_state(&seqs(&[5, 6]), SlotState::Ready);
        window.set_state(&seqs(&[3]), SlotState::Isolating);
        window.set_delivery(Seq(3), Delivery::new().failed(at(35), "500"));
        check(&window);
        window.set_state(&seqs(&[3]), SlotState::Ready);
        check(&window);
        window.clear_retry_times();
        check(&window);
        window.set_delivery(Seq(4), Delivery::new().failed(at(60), "503"));
        window.drop_ready();
        check(&window);
        assert!(window.is_empty());
    }

    #[test]
    fn total_order_stops_at_the_first_change_not_ready() {
        let mut window = window(&["a", "b", "c", "d"]);
        window.set_state(&seqs(&[2]), SlotState::Sending);
        assert_eq!(pick(&mut window, 10, true), seqs(&[1]));
        assert_eq!(pick(&mut window, 10, false), seqs(&[1, 3, 4]));
    }

    #[test]
    fn a_batch_cut_by_route_holds_one_route_and_keeps_each_records_order() {
        let keys = ["a", "b", "c", "a", "d", "b", "e", "c"];
        let mut window = window(&keys);
        let routes = 2;
        let mut sent = Vec::new();
        while !window.is_empty() {
            let picked = window.candidates(at(0), at(3600), cut(3, false, false, Some(routes)));
            assert!(!picked.send.is_empty());
            let route = |seq: Seq| route_of(window_record(&window, seq), routes);
            let first = route(picked.send[0]);
            assert_eq!(picked.route, Some(first));
            assert!(
                picked.send.iter().all(|seq| route(*seq) == first),
                "{picked:?}"
            );
            for seq in &picked.send {
                window.remove(*seq);
            }
            sent.extend(picked.send);
        }
        for record in ["a", "b", "c"] {
            let seqs: Vec<Seq> = keys
                .iter()
                .enumerate()
                .filter(|(_, key)| **key == record)
                .map(|(index, _)| Seq(index as u64 + 1))
                .collect();
            let order: Vec<Seq> = sent
                .iter()
                .copied()
                .filter(|seq| seqs.contains(seq))
                .collect();
            assert_eq!(order, seqs, "record {record}");
        }
    }

    fn window_record(window: &Window, seq: Seq) -> u64 {
        window.get(seq).map(|slot| slot.record).unwrap_or_default()
    }

    #[test]
    fn coalescing_keeps_the_latest_change_of_each_record() {
        let mut window = window(&["a", "b", "a", "a"]);
        let picked = window.candidates(at(0), at(3600), cut(10, false, true, None));
        assert_eq!(picked.send, seqs(&[2, 4]));
        assert_eq!(picked.superseded, seqs(&[1, 3]));
    }
}
