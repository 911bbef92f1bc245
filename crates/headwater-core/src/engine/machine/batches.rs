//! What goes into the next request: a batch cut from the window (each record's
//! changes in capture order, no record in two requests), an isolation's part or probe,
//! or a blocked outbox's probe; encoded once, into a recycled buffer.

use chrono::{DateTime, Utc};

use crate::flume::Push;
use crate::model::Seq;

use super::isolation::IsoRequest;
use super::timers::Timer;
use super::window::{Cut, SlotState, route_of};
use super::{DeliveryMachine, InFlight, Purpose, RequestId, SendRequest, delta};

impl DeliveryMachine {
    fn allocate_body(&mut self) -> Vec<u8> {
        self.recycled.pop().unwrap_or_default()
    }

    /// The next request to start at `now`, if one may start.
    pub(super) fn next_send(&mut self, now: DateTime<Utc>) -> Option<SendRequest> {
        let limit = if self.blocked.is_some() {
            // A blocked outbox sends one probe at a time, when its interval is up.
            if self.timers.is_pending(Timer::BlockedProbe, now) || !self.requests.is_empty() {
                return None;
            }
            1
        } else {
            if self.timers.is_pending(Timer::Backoff, now) {
                return None;
            }
            self.concurrency.limit()
        };
        if self.requests.len() >= limit {
            return None;
        }
        // While a write of outcomes is under way and as many acknowledgements wait to
        // be written as can be in flight (the store is slow: an application holding its
        // write lock), nothing new starts, so that a crash sends again at most about
        // twice what can be in flight. (A store that is free writes them at once, after
        // the next batch has gone: the wire is not kept idle for it.)
        if self.store.busy
            && self.unwritten_acks() >= self.config.max_in_flight * self.config.batch.max_events
        {
            return None;
        }
        // An isolation gathering evidence against a change has the wire to itself: it
        // waits for the requests in flight to be answered, and nothing else goes with
        // its requests.
        if let Some(index) = self.isolations.iter().position(|isolation| {
            isolation
                .as_ref()
                .is_some_and(|i| i.wants_the_wire(now, &self.health))
        }) {
            if !self.requests.is_empty() {
                return None;
            }
            if let Some(request) = self.isolation_request(now, index) {
                return Some(request);
            }
        }
        let isolating = self
            .requests
            .values()
            .filter(|request| matches!(request.purpose, Purpose::Isolation { .. }))
            .count();
        // Isolations never take every slot while other changes could go: the answers
        // to other changes are what tells a poisoned change from a failing server.
        if isolating > 0
            && !self.total_order()
            && let Some(request) = self.next_batch(now)
        {
            return Some(request);
        }
        if let Some(request) = self.next_isolation_request(now) {
            return Some(request);
        }
        if self.total_order() && self.isolations.iter().flatten().next().is_some() {
            return None;
        }
        self.next_batch(now)
    }

    fn next_isolation_request(&mut self, now: DateTime<Utc>) -> Option<SendRequest> {
        (0..self.isolations.len()).find_map(|index| self.isolation_request(now, index))
    }

    /// The next request of isolation `index`, if it has one now.
    fn isolation_request(&mut self, now: DateTime<Utc>, index: usize) -> Option<SendRequest> {
        let rules = self.iso_rules();
        let isolation = self.isolations.get_mut(index)?.as_mut()?;
        let request = isolation.next_request(now, &self.health, &self.window, &rules)?;
        let mut body = self.allocate_body();
        self.encoder.start(&mut body, now);
        let mut events = 0;
        for seq in &request.seqs() {
            if let Some(slot) = self.window.get(*seq) {
                // Parts come from a batch that fit; the configured limit bounds them.
                if self
                    .encoder
                    .push(&mut body, events, &slot.entry.change, usize::MAX)
                    == Push::Added
                {
                    events += 1;
                }
            }
        }
        self.encoder.finish(&mut body);
        if matches!(request, IsoRequest::Probe(_)) {
            self.counters.probes += 1;
        }
        Some(self.launch(now, Purpose::Isolation { index, request }, body, events))
    }

    fn launch(
        &mut self,
        now: DateTime<Utc>,
        purpose: Purpose,
        body: Vec<u8>,
        events: usize,
    ) -> SendRequest {
        // The changes of a request share a route (batches are cut so, and an
        // isolation's parts come from one batch): the first one's is the request's.
        let first = match &purpose {
            Purpose::Batch { seqs, .. } => seqs.first().copied(),
            Purpose::Isolation { request, .. } => request.seqs().first().copied(),
        };
        let route = self
            .config
            .routes
            .zip(first.and_then(|seq| self.window.get(seq)))
            .map(|(routes, slot)| route_of(slot.record, routes));
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.requests.insert(
            id,
            InFlight {
                purpose,
                sent_at: now,
                body_len: body.len(),
            },
        );
        self.concurrency.on_start(self.requests.len());
        self.counters.requests += 1;
        SendRequest {
            id,
            body,
            events,
            route,
            format: self.encoder.format(),
        }
    }

    /// How many events the next batch may hold: the batch size in force, or less while
    /// pacing after failures holds the backlog back (`0`: not yet; the pace timer says
    /// when).
    fn batch_limit(&mut self, now: DateTime<Utc>) -> usize {
        let ready = self.window.len() - self.window.busy();
        if ready == 0 && self.requests.is_empty() && self.store.exhausted {
            // The backlog is gone.
            self.pacer.release();
        }
        let max_events = self.sizer.max_events();
        if !self.pacer.is_engaged() {
            return max_events;
        }
        let oldest = self.window.oldest_ready_capture();
        match self.pacer.quota(now, ready, max_events, oldest) {
            Some(0) => {
                match self.pacer.ready_at(now, ready, max_events) {
                    Some(at) => self.timers.set(Timer::Pace, at),
                    None => self.timers.stop(Timer::Pace),
                }
                0
            }
            Some(quota) => quota.min(max_events),
            None => max_events,
        }
    }

    fn next_batch(&mut self, now: DateTime<Utc>) -> Option<SendRequest> {
        let horizon = self.horizon(now);
        loop {
            let limit = self.batch_limit(now);
            if limit == 0 {
                return None;
            }
            self.timers.stop(Timer::Pace);
            let picked = self.window.candidates(
                now,
                horizon,
                Cut {
                    max_events: limit,
                    total_order: self.total_order(),
                    coalesce: self.config.coalesce,
                    routes: self.config.routes,
                },
            );
            if picked.send.is_empty() {
                self.starved = self.window.len() > self.window.busy();
                return None;
            }
            self.starved = false;
            // Changes past their retry limits are dead-lettered instead of sent.
            let expired = self.expire(now, &picked.send);
            if !expired.is_empty() {
                continue;
            }
            let mut body = self.allocate_body();
            self.encoder.start(&mut body, now);
            let mut sent = Vec::with_capacity(picked.send.len());
            let max_bytes = self.sizer.max_bytes();
            for seq in &picked.send {
                let Some(slot) = self.window.get(*seq) else {
                    continue;
                };
                match self
                    .encoder
                    .push(&mut body, sent.len(), &slot.entry.change, max_bytes)
                {
                    Push::Added => sent.push(*seq),
                    Push::Full => break,
                }
            }
            if sent.is_empty() {
                // The first change alone passes the byte limit in force. If it fits the
                // configured limit, the lowered one may be a passing proxy's: send it
                // alone once. Beyond the configured limit it can never be sent.
                let first = picked.send[0];
                let change = self
                    .window
                    .get(first)
                    .map(|slot| slot.entry.change.clone())?;
                let alone = self.encoder.encoded_len(&change);
                let configured = self.sizer.configured().max_bytes;
                if alone <= configured {
                    self.encoder.start(&mut body, now);
                    let _ = self.encoder.push(&mut body, 0, &change, usize::MAX);
                    sent.push(first);
                } else {
                    let reason = format!(
                        "the change encodes to {alone} bytes, over the batch limit of {configured} bytes"
                    );
                    self.recycled.push(body);
                    self.condemn(now, first, &reason);
                    continue;
                }
            }
            self.encoder.finish(&mut body);
            // Superseded changes ride with the batch holding their record's latest change.
            let superseded: Vec<Seq> = picked
                .superseded
                .into_iter()
                .filter(|seq| {
                    let record = self.window.get(*seq).map(|slot| slot.record);
                    sent.iter()
                        .any(|s| self.window.get(*s).map(|slot| slot.record) == record)
                })
                .collect();
            self.window.set_state(&sent, SlotState::Sending);
            self.window.set_state(&superseded, SlotState::Sending);
            let events = sent.len();
            self.pacer.on_sent(events);
            return Some(self.launch(
                now,
                Purpose::Batch {
                    seqs: sent,
                    superseded,
                },
                body,
                events,
            ));
        }
    }

    /// Dead-letters the changes among `seqs` that passed a retry limit; returns them.
    fn expire(&mut self, now: DateTime<Utc>, seqs: &[Seq]) -> Vec<Seq> {
        let limits = self.config.retry_limits;
        if limits.max_attempts.is_none() && limits.max_age.is_none() {
            return Vec::new();
        }
        let mut expired = Vec::new();
        for seq in seqs {
            let Some(slot) = self.window.get(*seq) else {
                continue;
            };
            let attempts = slot.entry.delivery.attempts;
            let too_many = limits.max_attempts.is_some_and(|max| attempts >= max);
            let too_old = limits
                .max_age
                .is_some_and(|age| now - slot.entry.change.captured_at() > delta(age));
            if too_many || too_old {
                let last = slot.entry.delivery.last_error.as_deref().unwrap_or("none");
                let why = if too_many {
                    "attempt limit"
                } else {
                    "age limit"
                };
                let reason =
                    format!("gave up at the {why} after {attempts} attempts; last error: {last}");
                expired.push((*seq, reason));
            }
        }
        let seqs: Vec<Seq> = expired.iter().map(|(seq, _)| *seq).collect();
        for (seq, reason) in expired {
            self.condemn(now, seq, &reason);
        }
        seqs
    }
}
