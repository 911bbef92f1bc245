//! A tier of Flume agents as Flume 1.11 answers: each an HTTP source in front of a
//! memory channel drained by a sink at a fixed rate.
//!
//! - A request waits for one of the HTTP source's `agent_threads` (Jetty's thread pool,
//!   200 by default), which it holds until it is answered, commit wait included; then
//!   it costs the agent's CPU `request_cost + events × event_cost` (Flume parses the
//!   whole batch before it knows whether the channel takes it), on one of `agent_cores`
//!   cores, first come first served: answers slow down as load grows, and a flood of
//!   requests waiting on a full channel holds every thread.
//! - A batch larger than the `transactionCapacity` gets `503` with the "Put queue …
//!   of capacity N" text, every time.
//! - A batch that does not fit the channel waits up to `keep_alive` for the sink to make
//!   room (commits wait in arrival order), then commits, or gets `503` "Space for
//!   commit to queue couldn't be acquired".
//! - An agent that is down refuses connections; `[]` is answered `200` without touching
//!   the channel.
//!
//! The channel is kept as the time its sink will have drained everything committed, so a
//! request costs O(1) whatever the load.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use headwater_core::policy::RetryAfter;
use headwater_core::transport::Response;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

use crate::scenario::{Disruption, Scenario};
use crate::time::{Micros, from_seconds, seconds};

/// The 503 text of a batch over the channel's `transactionCapacity`.
fn over_transaction_capacity(capacity: usize) -> String {
    format!(
        "Error appending event to channel. Channel might be full.Put queue for MemoryTransaction of capacity {capacity} full, consider committing more frequently, increasing capacity or increasing thread count"
    )
}

/// The 503 text of a channel that stayed full for the whole keep-alive.
const CHANNEL_FULL: &str = "Error appending event to channel. Channel might be full.Space for commit to queue couldn't be acquired. Sinks are likely not keeping up with sources, or the buffer size is too tight";

/// What an agent (or the proxy in front of it) did with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The agent is down: the connection is refused and nothing reached Flume.
    Refused,
    /// An answer.
    Answer {
        /// When the answer leaves the agent.
        at: Micros,
        /// The answer.
        response: Response,
        /// Whether the events were committed to the channel.
        committed: bool,
    },
}

#[derive(Debug, Clone)]
struct Agent {
    /// When the sink will have drained everything committed so far, in seconds.
    drained_at: f64,
    /// When each request thread is free again.
    threads: BinaryHeap<Reverse<Micros>>,
    /// When each core is free again.
    cores: BinaryHeap<Reverse<Micros>>,
}

/// The simulated tier.
#[derive(Debug, Clone)]
pub struct Tier {
    agents: Vec<Agent>,
    drain_rate: f64,
    channel_events: f64,
    transaction_capacity: usize,
    keep_alive: f64,
    request_cost: Micros,
    event_cost: f64,
    disruption: Option<Disruption>,
    rng: ChaCha8Rng,
}

impl Tier {
    /// The tier of `scenario`; `rng` draws which requests a brownout refuses.
    pub fn new(scenario: &Scenario, rng: ChaCha8Rng) -> Self {
        let drain_rate = scenario.capacity() / scenario.agents as f64;
        Self {
            agents: vec![
                Agent {
                    drained_at: 0.0,
                    threads: std::iter::repeat_n(Reverse(0), scenario.agent_threads).collect(),
                    cores: std::iter::repeat_n(Reverse(0), scenario.agent_cores).collect(),
                };
                scenario.agents
            ],
            drain_rate,
            channel_events: scenario.channel_s * drain_rate,
            transaction_capacity: scenario.transaction_capacity,
            keep_alive: scenario.keep_alive_s,
            request_cost: scenario.request_cost_us.round() as Micros,
            event_cost: scenario.event_cost_us,
            disruption: scenario.disruption.clone(),
            rng,
        }
    }

    /// Whether agent `agent` is down at `now` seconds.
    pub fn is_down(&self, agent: usize, now: f64) -> bool {
        match &self.disruption {
            Some(Disruption::Outage {
                from_s,
                to_s,
                agents,
            }) => {
                (*from_s..*to_s).contains(&now)
                    && agents.as_ref().is_none_or(|down| down.contains(&agent))
            }
            _ => false,
        }
    }

    /// The events/s the tier's sinks drain while agents are up at `now`.
    pub fn capacity_at(&self, now: f64) -> f64 {
        let up = (0..self.agents.len())
            .filter(|agent| !self.is_down(*agent, now))
            .count();
        up as f64 * self.drain_rate
    }

    /// Events waiting in the channels at `now`.
    pub fn queued(&self, now: f64) -> f64 {
        self.agents
            .iter()
            .map(|agent| (agent.drained_at - now).max(0.0) * self.drain_rate)
            .sum()
    }

    /// A request of `events` events reaches agent `agent` at `now`.
    pub fn offer(&mut self, agent: usize, now: Micros, events: usize) -> Reply {
        let now_s = seconds(now);
        if self.is_down(agent, now_s) {
            return Reply::Refused;
        }
        let disruption = self.disruption.as_ref().filter(|disruption| {
            let (from, to) = disruption.window();
            (from..to).contains(&now_s)
        });
        if let Some(Disruption::RetryAfter { retry_after_s, .. }) = disruption {
            // The proxy answers without asking Flume.
            let mut response = Response::with_message(503, "Service Unavailable");
            response.retry_after = Some(RetryAfter::Delay(std::time::Duration::from_secs(
                *retry_after_s,
            )));
            return Reply::Answer {
                at: now,
                response,
                committed: false,
            };
        }
        let brownout = match disruption {
            Some(Disruption::Brownout { share, .. }) => {
                (self.rng.next_u64() as f64 / u64::MAX as f64) < *share
            }
            _ => false,
        };
        let Some(state) = self.agents.get_mut(agent) else {
            return Reply::Refused;
        };
        // A thread takes the request, then a core parses it whole.
        let Reverse(thread_free) = state.threads.pop().unwrap_or(Reverse(0));
        let started = now.max(thread_free);
        let Reverse(core_free) = state.cores.pop().unwrap_or(Reverse(0));
        let cost = self.request_cost + (events as f64 * self.event_cost).round() as Micros;
        let parsed = started.max(core_free) + cost;
        state.cores.push(Reverse(parsed));
        let (at, status, message, committed) = if events == 0 {
            (parsed, 200, String::new(), false)
        } else if events > self.transaction_capacity {
            (
                parsed,
                503,
                over_transaction_capacity(self.transaction_capacity),
                false,
            )
        } else if brownout {
            (parsed, 503, CHANNEL_FULL.into(), false)
        } else {
            let parsed_s = seconds(parsed);
            let need = events as f64 / self.drain_rate;
            let start = state.drained_at.max(parsed_s);
            let wait = start + need - parsed_s - self.channel_events / self.drain_rate;
            if wait > self.keep_alive {
                (
                    parsed + from_seconds(self.keep_alive),
                    503,
                    CHANNEL_FULL.into(),
                    false,
                )
            } else {
                state.drained_at = start + need;
                (
                    parsed + from_seconds(wait.max(0.0)),
                    200,
                    String::new(),
                    true,
                )
            }
        };
        // The thread is busy until the answer leaves, commit wait included.
        state.threads.push(Reverse(at));
        Reply::Answer {
            at,
            response: Response::with_message(status, message),
            committed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    fn tier(scenario: &Scenario) -> Tier {
        Tier::new(scenario, ChaCha8Rng::seed_from_u64(1))
    }

    fn status(reply: &Reply) -> u16 {
        match reply {
            Reply::Answer { response, .. } => response.status,
            Reply::Refused => 0,
        }
    }

    /// 1,000 clients: C = 200 events/s, 3 agents of 66.7 events/s, channels of 133.
    fn scenario() -> Scenario {
        Scenario {
            clients: 1_000,
            ..Scenario::default()
        }
    }

    const S: Micros = 1_000_000;

    #[test]
    fn a_channel_takes_its_capacity_then_makes_commits_wait_then_refuses() {
        let mut tier = tier(&scenario());
        assert_eq!(status(&tier.offer(0, 0, 100)), 200);
        // The channel holds 133 events: the second batch waits for the sink.
        let Reply::Answer { at, committed, .. } = tier.offer(0, 0, 100) else {
            panic!()
        };
        assert!(committed);
        assert!(
            at > 9 * S / 10 && at < 11 * S / 10,
            "waited {at} µs for room"
        );
        let Reply::Answer { at, .. } = tier.offer(0, 0, 100) else {
            panic!()
        };
        assert!(
            at > 24 * S / 10 && at < 26 * S / 10,
            "waited {at} µs, within the keep-alive"
        );
        // The next would wait 4 s: past the keep-alive.
        let reply = tier.offer(0, 0, 100);
        assert_eq!(status(&reply), 503);
        let Reply::Answer { at, response, .. } = reply else {
            panic!()
        };
        assert!(response.message.contains("Space for commit"));
        assert!(at >= 3 * S, "refused after the keep-alive, at {at}");
        assert_eq!(
            status(&tier.offer(1, 0, 100)),
            200,
            "another agent has room"
        );
        assert_eq!(
            status(&tier.offer(0, 10 * S, 100)),
            200,
            "drained meanwhile"
        );
    }

    #[test]
    fn a_batch_over_the_transaction_capacity_is_refused_with_the_number() {
        let mut tier = tier(&scenario());
        let Reply::Answer { response, .. } = tier.offer(0, 0, 101) else {
            panic!()
        };
        assert_eq!(response.status, 503);
        assert_eq!(
            headwater_core::policy::parse_capacity_hint(&response.message),
            Some(100)
        );
        assert_eq!(status(&tier.offer(0, 0, 0)), 200, "an empty batch");
    }

    #[test]
    fn requests_beyond_the_thread_pool_wait_for_a_thread() {
        let scenario = Scenario {
            agent_threads: 2,
            ..scenario()
        };
        let mut tier = tier(&scenario);
        // Two batches fill the channel and the third waits 1 s for room, holding a
        // thread; with the fourth waiting too, the fifth waits for a thread.
        for _ in 0..2 {
            tier.offer(0, 0, 100);
        }
        let Reply::Answer { at: third, .. } = tier.offer(0, 0, 1) else {
            panic!()
        };
        let Reply::Answer { at: fourth, .. } = tier.offer(0, 0, 1) else {
            panic!()
        };
        let Reply::Answer { at: fifth, .. } = tier.offer(0, 0, 1) else {
            panic!()
        };
        assert!(fifth > third.min(fourth), "{third} {fourth} {fifth}");
    }

    #[test]
    fn disruptions_apply_in_their_window_only() {
        let outage = Scenario {
            disruption: Some(Disruption::Outage {
                from_s: 10.0,
                to_s: 20.0,
                agents: Some(vec![1]),
            }),
            ..scenario()
        };
        let mut tier = tier(&outage);
        assert_eq!(tier.offer(1, 15 * S, 1), Reply::Refused);
        assert_eq!(status(&tier.offer(0, 15 * S, 1)), 200);
        assert_eq!(status(&tier.offer(1, 20 * S, 1)), 200);
        assert!((tier.capacity_at(15.0) - 2.0 * 200.0 / 3.0).abs() < 1e-9);

        let proxy = Scenario {
            disruption: Some(Disruption::RetryAfter {
                from_s: 0.0,
                to_s: 5.0,
                retry_after_s: 30,
            }),
            ..scenario()
        };
        let mut tier = Tier::new(&proxy, ChaCha8Rng::seed_from_u64(1));
        let Reply::Answer { response, .. } = tier.offer(2, S, 5) else {
            panic!()
        };
        assert_eq!(response.status, 503);
        assert!(response.retry_after.is_some());

        let brownout = Scenario {
            disruption: Some(Disruption::Brownout {
                from_s: 0.0,
                to_s: 1_000.0,
                share: 0.5,
            }),
            ..scenario()
        };
        let mut tier = Tier::new(&brownout, ChaCha8Rng::seed_from_u64(1));
        let refused = (0..1_000u64)
            .filter(|i| status(&tier.offer((i % 3) as usize, i * S, 1)) == 503)
            .count();
        assert!((400..600).contains(&refused), "{refused} of 1000 refused");
    }
}
