//! A share of the fleet's clients with their own events: captures, timers and answers.
//! A shard runs on its own thread between two points in time no further apart than the
//! network's shortest one-way trip, so nothing it does can reach the tier, or another
//! shard, before the next window starts.

use std::sync::Arc;

use headwater_core::model::{ChangeData, Seq};
use headwater_core::store::StoreError;
use headwater_core::transport::SendOutcome;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

use crate::calendar::{Calendar, Key};
use crate::client::{Effects, FleetClient, RequestKey};
use crate::error::SimError;
use crate::ledger::{Commit, Ledger, RECORDS};
use crate::metrics::{Latencies, Series};
use crate::scenario::Scenario;
use crate::tier::Reply as TierReply;
use crate::time::{Micros, from_seconds, seconds, wall};

/// What happens to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// It captures a change.
    Capture,
    /// A timer it asked for rings (if `generation` is still its latest).
    Wake { generation: u32 },
    /// The answer to flight `flight` of this shard arrives.
    Answer { flight: u32 },
}

/// A request on its way to the tier, with what the tier needs of it: the tier reads no
/// shard's state, so that the shards can take its answers on their own threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arrival {
    /// The shard that sent it.
    pub(crate) shard: u32,
    /// Its flight in that shard.
    pub(crate) flight: u32,
    /// The agent it goes to.
    pub(crate) agent: u32,
    /// How many events it carries.
    pub(crate) events: u32,
}

/// What the tier did with a request, for the shard that sent it to turn into the
/// client's answer.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The request's flight in its shard.
    pub(crate) flight: u32,
    /// The agent it reached.
    pub(crate) agent: u32,
    /// When it reached the tier.
    pub(crate) arrived: Micros,
    pub(crate) reply: TierReply,
}

/// One client and what the simulation keeps beside it.
pub(crate) struct Slot<C> {
    pub(crate) client: C,
    pub(crate) ledger: Ledger,
    captures: ChaCha8Rng,
    /// Draws the network's latency and losses for this client's requests.
    network: ChaCha8Rng,
    /// Captures per second (before bursts).
    pub(crate) rate: f64,
    wake: Option<Micros>,
    generation: u32,
    /// Events of this client so far: the last part of every key.
    counter: u64,
    /// Delivering (`false` while offline, before a mass start).
    online: bool,
}

impl<C> Slot<C> {
    /// A client capturing `rate` changes a second, its draws seeded apart.
    pub(crate) fn new(client: C, capture_seed: u64, network_seed: u64, rate: f64) -> Self {
        use rand_core::SeedableRng;
        Self {
            client,
            ledger: Ledger::new(),
            captures: ChaCha8Rng::seed_from_u64(capture_seed),
            network: ChaCha8Rng::seed_from_u64(network_seed),
            rate,
            wake: None,
            generation: 0,
            counter: 0,
            online: true,
        }
    }

    fn key(&mut self, index: u32, at: Micros) -> Key {
        self.counter += 1;
        Key {
            at,
            client: index,
            counter: self.counter,
        }
    }
}

/// A request in flight.
pub(crate) struct Flight {
    /// The client, by its index in the fleet.
    pub(crate) client: u32,
    pub(crate) key: RequestKey,
    pub(crate) seqs: Vec<Seq>,
    /// When the current try left the client.
    pub(crate) sent_at: Micros,
    /// The endpoints to try, in order, and which one this try goes to.
    pub(crate) order: Vec<usize>,
    pub(crate) attempt: usize,
    pub(crate) outcome: Option<SendOutcome>,
    /// Whether the connection was refused (nothing reached Flume).
    pub(crate) refused: bool,
}

/// What a shard counts, summed over shards at the end.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Offered load by second.
    pub(crate) series: Series,
    /// Latencies of changes captured after recovery.
    pub(crate) fresh: Latencies,
    /// Captured and not acknowledged.
    pub(crate) pending: u64,
    pub(crate) captured: u64,
    pub(crate) dead: u64,
    /// Changes the tier committed more than once.
    pub(crate) duplicates: u64,
    /// Changes of one record the tier committed out of capture order.
    pub(crate) reordered: u64,
    /// Commits of changes no client captured (a bug of the simulator, if ever).
    pub(crate) unknown_commits: u64,
}

/// A share of the fleet.
pub(crate) struct Shard<C> {
    /// The fleet index of `slots[0]`.
    first: u32,
    index: u32,
    pub(crate) slots: Vec<Slot<C>>,
    queue: Calendar<Event>,
    pub(crate) flights: Vec<Option<Flight>>,
    free_flights: Vec<u32>,
    /// Requests sent in this window, for the tier.
    pub(crate) outgoing: Vec<(Key, Arrival)>,
    /// What the tier did with this shard's requests that reached it, in the order they
    /// did: taken at the start of the next window run.
    pub(crate) replies: Vec<Reply>,
    effects: Effects,
    pub(crate) tally: Tally,
    templates: Arc<[ChangeData]>,
    scenario: Arc<Scenario>,
    /// When the fleet recovered, once it has.
    pub(crate) recovery: Option<Micros>,
}

/// A uniform draw from (0, 1].
pub(crate) fn unit(rng: &mut ChaCha8Rng) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

fn store_failed(client: u32) -> impl FnOnce(StoreError) -> SimError {
    move |source| SimError::Store {
        client: client as usize,
        source,
    }
}

impl<C: FleetClient> Shard<C> {
    pub(crate) fn new(
        index: u32,
        first: u32,
        slots: Vec<Slot<C>>,
        templates: Arc<[ChangeData]>,
        scenario: Arc<Scenario>,
    ) -> Self {
        Self {
            first,
            index,
            slots,
            queue: Calendar::default(),
            flights: Vec::new(),
            free_flights: Vec::new(),
            outgoing: Vec::new(),
            replies: Vec::new(),
            effects: Effects::default(),
            tally: Tally::default(),
            templates,
            scenario,
            recovery: None,
        }
    }

    /// The slot of fleet client `client`.
    pub(crate) fn slot_mut(&mut self, client: u32) -> &mut Slot<C> {
        &mut self.slots[(client - self.first) as usize]
    }

    fn push(&mut self, client: u32, at: Micros, event: Event) {
        let key = self.slot_mut(client).key(client, at);
        self.queue.push(key, event);
    }

    /// One way across the network for `client`'s request (never zero: a window is no
    /// longer than the shortest).
    pub(crate) fn one_way(&mut self, client: u32) -> Micros {
        let scenario = Arc::clone(&self.scenario);
        let slot = self.slot_mut(client);
        let jitter = (unit(&mut slot.network) * 2.0 - 1.0) * scenario.rtt_jitter_ms;
        let rtt_ms = (scenario.rtt_ms + jitter) * scenario.latency_factor;
        from_seconds(rtt_ms / 2_000.0).max(1)
    }

    /// Whether `client`'s answer is lost on the way back.
    pub(crate) fn answer_lost(&mut self, client: u32) -> bool {
        let loss = self.scenario.answer_loss;
        loss > 0.0 && unit(&mut self.slot_mut(client).network) <= loss
    }

    /// Schedules the answer to flight `flight` at `at`.
    pub(crate) fn answer_at(&mut self, flight: u32, at: Micros) {
        if let Some(client) = self.flights[flight as usize].as_ref().map(|f| f.client) {
            self.push(client, at, Event::Answer { flight });
        }
    }

    fn burst_factor(&self, now: Micros) -> f64 {
        match &self.scenario.burst {
            Some(burst) if (burst.from_s..burst.to_s).contains(&seconds(now)) => burst.factor,
            _ => 1.0,
        }
    }

    fn schedule_capture(&mut self, client: u32, now: Micros) {
        let factor = self.burst_factor(now);
        let slot = self.slot_mut(client);
        let gap = -unit(&mut slot.captures).ln() / (slot.rate * factor);
        let at = now + from_seconds(gap).max(1);
        self.push(client, at, Event::Capture);
    }

    /// Starts every client capturing at 0; with `offline`, they deliver nothing until
    /// [`go_online`](Self::go_online) (a mass start).
    pub(crate) fn start(&mut self, offline: bool) -> Result<(), SimError> {
        for index in 0..self.slots.len() {
            let client = self.first + index as u32;
            if offline {
                self.slot_mut(client).online = false;
                let mut effects = std::mem::take(&mut self.effects);
                let result = self
                    .slot_mut(client)
                    .client
                    .set_online(0, false, &mut effects);
                self.effects = effects;
                result.map_err(store_failed(client))?;
            }
            self.schedule_capture(client, 0);
        }
        Ok(())
    }

    /// Brings every offline client online at `now`, all at once.
    pub(crate) fn go_online(&mut self, now: Micros) -> Result<(), SimError> {
        for index in 0..self.slots.len() {
            let client = self.first + index as u32;
            if self.slot_mut(client).online {
                continue;
            }
            self.slot_mut(client).online = true;
            let mut effects = std::mem::take(&mut self.effects);
            let result = self
                .slot_mut(client)
                .client
                .set_online(now, true, &mut effects);
            self.effects = effects;
            result.map_err(store_failed(client))?;
            self.settle(client, now);
        }
        Ok(())
    }

    /// Takes what a client asked for: requests go out, acknowledgements are counted,
    /// and its timer is set.
    fn settle(&mut self, client: u32, now: Micros) {
        let mut effects = std::mem::take(&mut self.effects);
        for send in effects.sends.drain(..) {
            self.tally.series.offered(now, send.seqs.len());
            let order = self
                .slot_mut(client)
                .client
                .endpoints()
                .order_for(wall(now), send.route);
            let flight = Flight {
                client,
                key: send.key,
                seqs: send.seqs,
                sent_at: now,
                order,
                attempt: 0,
                outcome: None,
                refused: false,
            };
            let index = match self.free_flights.pop() {
                Some(index) => {
                    self.flights[index as usize] = Some(flight);
                    index
                }
                None => {
                    self.flights.push(Some(flight));
                    (self.flights.len() - 1) as u32
                }
            };
            self.dispatch(client, index, now);
        }
        let fresh_from = self.recovery;
        for seq in effects.acked.drain(..) {
            let slot = self.slot_mut(client);
            if let Some(captured_at) = slot.ledger.acked(seq.get(), now) {
                self.tally.pending -= 1;
                if let Some(from) = fresh_from
                    && captured_at >= from
                {
                    self.tally.fresh.add(now - captured_at);
                }
            }
        }
        for seq in effects.dead.drain(..) {
            let slot = self.slot_mut(client);
            let before = slot.ledger.pending();
            slot.ledger.set_aside(seq.get());
            let after = slot.ledger.pending();
            self.tally.pending -= before - after;
            self.tally.dead += 1;
        }
        self.effects = effects;
        // As the syncer does, the timer is set again whenever the time to wake moves,
        // later as well as earlier: a time it moved away from never wakes it.
        let slot = self.slot_mut(client);
        let next = slot.client.next_wake(now).map(|at| at.max(now + 1));
        if next != slot.wake {
            slot.generation = slot.generation.wrapping_add(1);
            slot.wake = next;
            if let Some(at) = next {
                let generation = slot.generation;
                self.push(client, at, Event::Wake { generation });
            }
        }
    }

    /// Sends flight `flight`'s current try towards its endpoint.
    fn dispatch(&mut self, client: u32, flight: u32, now: Micros) {
        let arrive = now + self.one_way(client);
        let key = self.slot_mut(client).key(client, arrive);
        let (agent, events) = self.flights[flight as usize].as_ref().map_or((0, 0), |f| {
            let agent = f.order.get(f.attempt).copied().unwrap_or(0);
            (agent as u32, f.seqs.len() as u32)
        });
        self.outgoing.push((
            key,
            Arrival {
                shard: self.index,
                flight,
                agent,
                events,
            },
        ));
    }

    /// Turns what the tier did with a request into the answer its client gets: counts
    /// what it committed, and draws the way back (and whether the answer is lost).
    fn take_reply(&mut self, reply: Reply) {
        let Reply {
            flight,
            agent,
            arrived: now,
            reply,
        } = reply;
        let Some((client, sent_at)) = self.flights[flight as usize]
            .as_ref()
            .map(|f| (f.client, f.sent_at))
        else {
            return;
        };
        let timeout = from_seconds(self.scenario.request_timeout_s);
        let mut refused = false;
        let (answer_at, outcome) = match reply {
            TierReply::Refused => {
                refused = true;
                let message = format!("agent {agent}: connection refused");
                (
                    now + self.one_way(client),
                    SendOutcome::ConnectionFailed { message },
                )
            }
            TierReply::Answer {
                at,
                response,
                committed,
            } => {
                let answered = at.max(now);
                if committed && let Some(f) = self.flights[flight as usize].as_ref() {
                    let ledger = &mut self.slots[(client - self.first) as usize].ledger;
                    let tally = &mut self.tally;
                    for seq in &f.seqs {
                        match ledger.committed(seq.get()) {
                            Commit::First => {}
                            Commit::Reordered => tally.reordered += 1,
                            Commit::Duplicate => tally.duplicates += 1,
                            Commit::Unknown => tally.unknown_commits += 1,
                        }
                    }
                }
                let lost = committed && self.answer_lost(client);
                let back = answered + self.one_way(client);
                if lost || back > sent_at + timeout {
                    let message = "no answer within the request timeout".into();
                    (sent_at + timeout, SendOutcome::TimedOut { message })
                } else {
                    (back, SendOutcome::Response(response))
                }
            }
        };
        if let Some(f) = self.flights[flight as usize].as_mut() {
            f.outcome = Some(outcome);
            f.refused = refused;
        }
        self.answer_at(flight, answer_at.max(now + 1));
    }

    fn capture(&mut self, client: u32, now: Micros, count: usize) -> Result<(), SimError> {
        let templates = Arc::clone(&self.templates);
        let slot = self.slot_mut(client);
        let records: Vec<u8> = (0..count)
            .map(|_| (slot.captures.next_u32() % RECORDS as u32) as u8)
            .collect();
        let changes = records
            .iter()
            .map(|record| templates[usize::from(*record)].clone())
            .collect();
        let mut effects = std::mem::take(&mut self.effects);
        let result = self
            .slot_mut(client)
            .client
            .capture(now, changes, &mut effects);
        self.effects = effects;
        let seqs = result.map_err(store_failed(client))?;
        let slot = self.slot_mut(client);
        for (seq, record) in seqs.iter().zip(records) {
            slot.ledger.captured(seq.get(), now, record);
        }
        self.tally.pending += seqs.len() as u64;
        self.tally.captured += seqs.len() as u64;
        self.settle(client, now);
        Ok(())
    }

    fn answer(&mut self, flight: u32, now: Micros) -> Result<(), SimError> {
        let Some(mut taken) = self.flights[flight as usize].take() else {
            return Ok(());
        };
        let client = taken.client;
        let agent = taken.order.get(taken.attempt).copied().unwrap_or(0);
        let outcome = taken.outcome.take().unwrap_or(SendOutcome::TimedOut {
            message: "no answer".into(),
        });
        let endpoints = self.slot_mut(client).client.endpoints();
        match &outcome {
            SendOutcome::Response(_) => endpoints.succeeded(agent),
            _ => endpoints.failed(agent, wall(now)),
        }
        if taken.refused && taken.attempt + 1 < taken.order.len() {
            // As the HTTP transport does: nothing reached Flume, so the same request
            // goes to the next endpoint at once.
            taken.attempt += 1;
            taken.refused = false;
            taken.sent_at = now;
            self.flights[flight as usize] = Some(taken);
            self.dispatch(client, flight, now);
            return Ok(());
        }
        self.free_flights.push(flight);
        let mut effects = std::mem::take(&mut self.effects);
        let result = self
            .slot_mut(client)
            .client
            .answer(now, taken.key, outcome, &mut effects);
        self.effects = effects;
        result.map_err(store_failed(client))?;
        self.settle(client, now);
        Ok(())
    }

    fn wake(&mut self, client: u32, generation: u32, now: Micros) -> Result<(), SimError> {
        let slot = self.slot_mut(client);
        if slot.generation != generation {
            return Ok(());
        }
        slot.wake = None;
        let mut effects = std::mem::take(&mut self.effects);
        let result = self.slot_mut(client).client.wake(now, &mut effects);
        self.effects = effects;
        result.map_err(store_failed(client))?;
        self.settle(client, now);
        Ok(())
    }

    /// Everything that happens to this shard's clients before `end`, once the tier's
    /// replies that came in are taken.
    pub(crate) fn run_until(&mut self, end: Micros) -> Result<(), SimError> {
        let mut replies = std::mem::take(&mut self.replies);
        for reply in replies.drain(..) {
            self.take_reply(reply);
        }
        self.replies = replies;
        while let Some((key, event)) = self.queue.pop_before(end) {
            let now = key.at;
            let client = key.client;
            match event {
                Event::Capture => {
                    self.capture(client, now, 1)?;
                    self.schedule_capture(client, now);
                }
                Event::Wake { generation } => self.wake(client, generation, now)?,
                Event::Answer { flight } => self.answer(flight, now)?,
            }
        }
        Ok(())
    }
}
