//! Pacing after failures: how many events a client may send while it works off a
//! backlog that failures left, so that a fleet coming back from an outage offers a
//! recovering tier about what it can take instead of every backlog at once.
//!
//! Nothing is paced while requests succeed, nor after a passing failure. Once requests
//! have failed for `engage_after` in a row (a refused connection, 503, 429, a timeout:
//! an outage, not a blip), the pacer engages at the next send: it starts at twice the rate
//! the backlog built up at (`2 × backlog ÷ its age`: repaying the debt as fast as it was
//! run up, on top of what is still being captured), which across a fleet is about
//! twice the load it had, without knowing the size of the fleet or of the tier. Then,
//! as TCP does: while answers show no sign of congestion the rate grows by `increase`
//! every `gather` (with time, so a client that sends often does not outgrow one that
//! sends rarely), and a sign cuts it by `decrease` (once per `gather`: the answers of one
//! crowded moment are one sign). A sign is an answer that pushes back (503, 429, 408, 504, a timeout) or an
//! acceptance whose round trip grew well past the fastest one seen (a Flume channel
//! that is full makes commits wait before it refuses them). A wait shorter than the one
//! that made the last cut is no new sign: once a fleet is below the tier's rate, the
//! queue of commits drains slowly and every answer still waits, and cutting again for
//! each took fleets far below the capacity, all at once. The pacer lets go once the
//! backlog is gone.
//!
//! A paced client gathers its allowance into batches of up to `gather` seconds of its
//! rate, so that a slow rate makes few requests rather than many tiny ones.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// How a client paces itself after failures. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Pacing {
    /// Whether to pace at all. Off, a client sends its whole backlog as fast as its
    /// in-flight limit allows the moment requests succeed again.
    pub enabled: bool,
    /// While answers show no sign of congestion, the rate is multiplied by this every
    /// `gather`.
    pub increase: f64,
    /// The rate is multiplied by this at each sign of congestion.
    pub decrease: f64,
    /// A paced client gathers up to this long of its allowance into one request.
    #[serde(with = "humantime_serde")]
    pub gather: Duration,
    /// An acceptance whose round trip exceeds the fastest seen by this much (and by four
    /// times) is a sign of congestion.
    #[serde(with = "humantime_serde")]
    pub congested_delay: Duration,
    /// Pacing engages once requests have failed for this long in a row.
    #[serde(with = "humantime_serde")]
    pub engage_after: Duration,
    /// A paced client may always send this many events at once: a small backlog goes in
    /// one request, however slowly it built up.
    pub min_batch: usize,
    /// Whether a syncer that starts with a backlog older than `engage_after` paces it,
    /// as a fleet's clients do when a release reaches them after they were offline. A
    /// batch tool whose backlog was loaded at once, not run up over time (the CLI's
    /// `send` resuming a state), turns it off: its backlog's age says nothing about
    /// the rate it may send at. Failures still engage pacing either way.
    pub old_backlog: bool,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            enabled: true,
            increase: 1.03,
            decrease: 0.9,
            gather: Duration::from_secs(10),
            congested_delay: Duration::from_millis(500),
            engage_after: Duration::from_secs(30),
            min_batch: 5,
            old_backlog: true,
        }
    }
}

/// Whether `tokens` pay for `wanted` events (with room for the rounding of many small
/// refills, the same in [`Pacer::quota`] and [`Pacer::ready_at`]).
fn enough(tokens: f64, wanted: f64) -> bool {
    tokens + 1e-6 >= wanted
}

/// The lowest rate: one event a minute.
const MIN_RATE: f64 = 1.0 / 60.0;
/// Above this rate (events/s) a pacer no longer holds anything back and lets go.
const UNBOUNDED_RATE: f64 = 1e6;

#[derive(Debug, Clone, PartialEq)]
struct Paced {
    /// Events per second.
    rate: f64,
    tokens: f64,
    refilled_at: DateTime<Utc>,
    /// Signs of congestion are not heeded again before this: one cut per gather, as
    /// TCP cuts once per round trip, however many answers of the same crowded moment
    /// say so.
    calm_until: Option<DateTime<Utc>>,
    /// When the rate was last raised or cut: it grows with time, not with the number of
    /// answers, so that a client sending often does not outgrow one sending rarely.
    adjusted_at: DateTime<Utc>,
    /// When the last sign of a full tier came (or pacing started): the longer the calm,
    /// the faster the rate grows, so that the clients still paced take up what those
    /// that finished left.
    calm_since: DateTime<Utc>,
    /// The rate the backlog built up at: signs of congestion never cut below it, since
    /// across a fleet that is the load it captures anyway (and a brownout's 503s, which
    /// say nothing of load, would otherwise leave it crawling).
    floor: f64,
    /// The commit wait that made the last cut, while waits stay long: a wait shorter
    /// than it says the tier's queue is draining, so the cut is already working.
    cut_at_delay: Option<Duration>,
}

/// The pacer of one client.
#[derive(Debug, Clone, PartialEq)]
pub struct Pacer {
    config: Pacing,
    /// A failure asked for pacing; it starts at the next send.
    armed: bool,
    paced: Option<Paced>,
    fastest: Option<Duration>,
    /// When the current run of failures began.
    failing_since: Option<DateTime<Utc>>,
    /// The first backlog was looked at.
    started: bool,
    /// Where in `[0, 1)` this client's first paced batch falls within `engage_after`, so
    /// that a fleet starting at one moment (a release) does not send at one moment.
    spread: f64,
}

impl Pacer {
    /// A pacer that holds nothing back until a failure.
    pub fn new(config: Pacing) -> Self {
        Self {
            config,
            armed: false,
            paced: None,
            fastest: None,
            failing_since: None,
            started: false,
            spread: 0.0,
        }
    }

    /// Places this client's first paced batch at `spread` (from 0 to 1) of
    /// `engage_after`: drawn at random, it spreads a fleet that engages at one moment.
    pub fn with_spread(mut self, spread: f64) -> Self {
        self.spread = if spread.is_finite() {
            spread.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Whether it is holding sends back (or will, at the next send).
    pub fn is_engaged(&self) -> bool {
        self.armed || self.paced.is_some()
    }

    /// The rate in force, events/s, if pacing.
    pub fn rate(&self) -> Option<f64> {
        self.paced.as_ref().map(|paced| paced.rate)
    }

    /// A request failed at `now` in a way that a retry may cure; `back_pressure` says
    /// whether the answer asked to slow down (503, 429, 408, 504, a timeout).
    pub fn on_failure(&mut self, now: DateTime<Utc>, back_pressure: bool) {
        let since = *self.failing_since.get_or_insert(now);
        if self.paced.is_some() {
            if back_pressure {
                self.slow_down(now);
            }
            return;
        }
        let failing = (now - since).to_std().unwrap_or_default();
        if self.config.enabled && failing >= self.config.engage_after {
            self.armed = true;
        }
    }

    /// Cuts the rate at a sign of congestion, once per `gather`; returns whether the
    /// rate went down.
    fn slow_down(&mut self, now: DateTime<Utc>) -> bool {
        let (decrease, gather) = (self.config.decrease, self.config.gather);
        let Some(paced) = self.paced.as_mut() else {
            return false;
        };
        if paced.calm_until.is_some_and(|until| now < until) {
            return false;
        }
        let before = paced.rate;
        paced.rate = (paced.rate * decrease).max(paced.floor).max(MIN_RATE);
        paced.adjusted_at = now;
        paced.calm_since = now;
        paced.calm_until =
            Some(now + TimeDelta::from_std(gather).unwrap_or(TimeDelta::seconds(10)));
        paced.rate < before
    }

    /// The syncer's first look at its store, at `now`, found changes, the oldest captured
    /// at `oldest`. A backlog older than `engage_after` was left by an outage or by the
    /// app being closed, as every client's is when a release reaches a fleet that was
    /// offline: it goes out paced.
    pub fn on_first_backlog(&mut self, now: DateTime<Utc>, oldest: DateTime<Utc>) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        let age = (now - oldest).to_std().unwrap_or_default();
        if self.config.enabled && self.config.old_backlog && age >= self.config.engage_after {
            self.armed = true;
        }
    }

    /// Moves every time the pacer keeps back by `back` (the wall clock was set back), so
    /// that a clock set back does not stop the allowance from gathering until it
    /// catches up.
    pub fn shift_back(&mut self, back: TimeDelta) {
        let shift = |at: &mut DateTime<Utc>| {
            *at = at
                .checked_sub_signed(back)
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
        };
        if let Some(since) = self.failing_since.as_mut() {
            shift(since);
        }
        if let Some(paced) = self.paced.as_mut() {
            shift(&mut paced.refilled_at);
            shift(&mut paced.adjusted_at);
            shift(&mut paced.calm_since);
            if let Some(until) = paced.calm_until.as_mut() {
                shift(until);
            }
        }
    }

    /// The backlog is gone: stop pacing.
    pub fn release(&mut self) {
        self.armed = false;
        self.paced = None;
    }

    fn refill(paced: &mut Paced, now: DateTime<Utc>, cap: f64) {
        let elapsed = (now - paced.refilled_at).to_std().unwrap_or_default();
        paced.tokens = (paced.tokens + paced.rate * elapsed.as_secs_f64()).min(cap);
        paced.refilled_at = now;
    }

    fn cap(&self, rate: f64, max_events: usize) -> f64 {
        let max = max_events.max(1) as f64;
        let floor = (self.config.min_batch.max(1) as f64).min(max);
        (rate * self.config.gather.as_secs_f64())
            .max(floor)
            .min(max)
    }

    /// How many events may go in a request at `now`, of `ready` waiting and at most
    /// `max_events` a batch: `None` when nothing is held back, `Some(0)` while the
    /// allowance gathers. `oldest` is when the oldest waiting change was captured.
    pub fn quota(
        &mut self,
        now: DateTime<Utc>,
        ready: usize,
        max_events: usize,
        oldest: Option<DateTime<Utc>>,
    ) -> Option<usize> {
        // While requests still fail, the rate follows the backlog; the first success
        // fixes it and answers move it from there.
        let estimating = self.armed || (self.failing_since.is_some() && self.paced.is_some());
        if estimating && ready > 0 {
            let age = oldest
                .and_then(|oldest| (now - oldest).to_std().ok())
                .unwrap_or_default()
                .as_secs_f64()
                .max(1.0);
            let rate = (2.0 * ready as f64 / age).max(MIN_RATE);
            match self.paced.as_mut() {
                Some(paced) => {
                    paced.rate = rate;
                    paced.floor = rate / 2.0;
                    paced.adjusted_at = now;
                    paced.calm_since = now;
                }
                None => {
                    // The first batch carries a full gather, no more, at a random
                    // moment within `engage_after` (at once if it is all there is).
                    let cap = self.cap(rate, max_events);
                    let delay = if ready <= self.config.min_batch {
                        0.0
                    } else {
                        self.spread * self.config.engage_after.as_secs_f64()
                    };
                    self.paced = Some(Paced {
                        rate,
                        tokens: (cap - rate * delay).max(0.0),
                        refilled_at: now,
                        calm_until: None,
                        adjusted_at: now,
                        calm_since: now,
                        floor: rate / 2.0,
                        cut_at_delay: None,
                    });
                }
            }
            self.armed = false;
        }
        let cap = self
            .paced
            .as_ref()
            .map(|paced| self.cap(paced.rate, max_events))?;
        let calm_for = self
            .paced
            .as_ref()
            .and_then(|paced| (now - paced.calm_since).to_std().ok())
            .unwrap_or_default();
        if self.failing_since.is_none()
            && calm_for >= self.config.gather
            && ready <= self.config.min_batch
        {
            // What is left fits one batch, and the tier has shown no sign of being
            // full for a while: the backlog is as good as gone.
            self.paced = None;
            return None;
        }
        let paced = self.paced.as_mut()?;
        Self::refill(paced, now, cap);
        let wanted = cap.min(ready.max(1) as f64);
        if !enough(paced.tokens, wanted) {
            return Some(0);
        }
        Some(((paced.tokens + 1e-6).floor() as usize).clamp(1, max_events.max(1)))
    }

    /// When a request of up to `max_events` of `ready` may go, if pacing holds it back.
    pub fn ready_at(
        &self,
        now: DateTime<Utc>,
        ready: usize,
        max_events: usize,
    ) -> Option<DateTime<Utc>> {
        let paced = self.paced.as_ref()?;
        let wanted = self.cap(paced.rate, max_events).min(ready.max(1) as f64);
        let elapsed = (now - paced.refilled_at).to_std().unwrap_or_default();
        let tokens = paced.tokens + paced.rate * elapsed.as_secs_f64();
        if enough(tokens, wanted) {
            return None;
        }
        // At least a microsecond ahead: a wake-up at `now` would never come.
        let wait = ((wanted - tokens) / paced.rate).max(1e-6);
        let gathered = now
            + TimeDelta::from_std(Duration::from_secs_f64(wait.min(86_400.0)))
                .unwrap_or(TimeDelta::days(1));
        // A small backlog is let go once the tier has been calm for a gather.
        let let_go = (self.failing_since.is_none() && ready <= self.config.min_batch).then(|| {
            paced.calm_since
                + TimeDelta::from_std(self.config.gather).unwrap_or(TimeDelta::seconds(10))
        });
        Some(let_go.map_or(gathered, |at| at.max(now).min(gathered)))
    }

    /// A request of `events` events went out.
    pub fn on_sent(&mut self, events: usize) {
        if let Some(paced) = self.paced.as_mut() {
            paced.tokens = (paced.tokens - events as f64).max(0.0);
        }
    }

    /// Flume accepted a request at `now` after `rtt`.
    pub fn on_accepted(&mut self, now: DateTime<Utc>, rtt: Duration) {
        self.failing_since = None;
        let fastest = *self.fastest.get_or_insert(rtt);
        self.fastest = Some(fastest.min(rtt));
        // The commits of a full Flume channel wait for room: a round trip past the
        // fastest by the congested delay says the tier is past its capacity; by a
        // tenth of it, that it is at its capacity, and the rate holds.
        let delay = rtt.saturating_sub(fastest);
        let over = rtt > fastest * 4;
        if over && delay > self.config.congested_delay {
            // A queue of commits drains slowly once a fleet has cut its rate below the
            // tier's, and every answer meanwhile still waits long: cutting again for
            // each of them took a fleet far below the capacity. A wait shorter than the
            // one that made the last cut says the queue is draining, and the rate holds.
            let draining = self
                .paced
                .as_ref()
                .and_then(|paced| paced.cut_at_delay)
                .is_some_and(|cut| delay < cut);
            if draining {
                if let Some(paced) = self.paced.as_mut() {
                    paced.adjusted_at = now;
                }
            } else if self.slow_down(now)
                && let Some(paced) = self.paced.as_mut()
            {
                paced.cut_at_delay = Some(delay);
            }
            return;
        }
        if let Some(paced) = self.paced.as_mut() {
            paced.cut_at_delay = None;
        }
        if over && delay > self.config.congested_delay / 10 {
            if let Some(paced) = self.paced.as_mut() {
                paced.adjusted_at = now;
                paced.calm_since = now;
            }
            return;
        }
        let (increase, gather) = (self.config.increase, self.config.gather.as_secs_f64());
        let Some(paced) = self.paced.as_mut() else {
            return;
        };
        let periods_since =
            |at: DateTime<Utc>| (now - at).to_std().unwrap_or_default().as_secs_f64() / gather;
        let periods = periods_since(paced.adjusted_at).min(2.0);
        let calm = periods_since(paced.calm_since).min(10.0);
        paced.rate *= increase.powf(periods * (1.0 + calm / 2.0));
        paced.adjusted_at = now;
        if paced.rate >= UNBOUNDED_RATE {
            self.paced = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn failing(pacer: &mut Pacer, from: i64, to: i64) {
        for second in (from..=to).step_by(5) {
            pacer.on_failure(at(second), false);
        }
    }

    /// A pacer engaged at 700 s by failures from 10 s on, 100 changes waiting since 100 s.
    fn paced_after_an_outage() -> Pacer {
        let mut pacer = Pacer::new(Pacing::default());
        pacer.on_accepted(at(0), Duration::from_millis(20));
        failing(&mut pacer, 10, 700);
        pacer.quota(at(700), 100, 100, Some(at(100)));
        pacer
    }

    #[test]
    fn a_passing_failure_paces_nothing() {
        let mut pacer = Pacer::new(Pacing::default());
        failing(&mut pacer, 0, 20);
        pacer.on_accepted(at(21), Duration::from_millis(20));
        assert!(!pacer.is_engaged());
        assert_eq!(pacer.quota(at(22), 500, 100, Some(at(0))), None);
    }

    #[test]
    fn after_an_outage_the_backlog_goes_at_twice_the_rate_it_built_up() {
        let mut pacer = Pacer::new(Pacing::default());
        failing(&mut pacer, 0, 600);
        assert!(pacer.is_engaged());
        // 60 changes over 600 s: 0.2 events/s, gathered 10 s at a time (at least 5).
        assert_eq!(pacer.quota(at(600), 60, 100, Some(at(0))), Some(5));
        assert!((pacer.rate().unwrap() - 0.2).abs() < 1e-9);
        pacer.on_sent(5);
        assert_eq!(
            pacer.ready_at(at(600), 55, 100),
            Some(at(625)),
            "5 more at 0.2/s"
        );
        // Flume takes them: the rate stays where the backlog put it.
        pacer.on_accepted(at(601), Duration::from_millis(20));
        assert_eq!(
            pacer.quota(at(610), 55, 100, Some(at(0))),
            Some(0),
            "gathering"
        );
        assert_eq!(pacer.quota(at(626), 55, 100, Some(at(0))), Some(5));
    }

    #[test]
    fn answers_move_the_rate_and_an_empty_backlog_lets_go() {
        let mut pacer = paced_after_an_outage();
        let start = pacer.rate().unwrap();
        // Calm answers raise it, with time.
        pacer.on_accepted(at(710), Duration::from_millis(20));
        pacer.on_accepted(at(720), Duration::from_millis(20));
        let raised = pacer.rate().unwrap();
        assert!(raised > start, "{raised} > {start}");
        // A commit that waited a second and a half for room cuts it, once per gather.
        pacer.on_accepted(at(721), Duration::from_millis(1_520));
        let cut = pacer.rate().unwrap();
        assert!((cut - raised * 0.9).abs() < 1e-9, "{cut}");
        pacer.on_failure(at(722), true);
        assert_eq!(pacer.rate(), Some(cut), "the same crowded moment");
        pacer.on_failure(at(735), true);
        assert!(pacer.rate().unwrap() < cut);
        // A wait past a tenth of the congested delay holds the rate.
        let held = pacer.rate().unwrap();
        pacer.on_accepted(at(760), Duration::from_millis(200));
        assert_eq!(pacer.rate(), Some(held));
        pacer.release();
        assert!(!pacer.is_engaged());
    }

    #[test]
    fn a_queue_that_drains_after_a_cut_cuts_no_more() {
        let mut pacer = paced_after_an_outage();
        let start = pacer.rate().unwrap();
        // A commit that waited 3 s cuts the rate.
        pacer.on_accepted(at(701), Duration::from_millis(3_020));
        let cut = pacer.rate().unwrap();
        assert!((cut - start * 0.9).abs() < 1e-9, "{cut}");
        // A gather later commits still wait, but less: the queue drains, the rate holds.
        pacer.on_accepted(at(715), Duration::from_millis(2_020));
        pacer.on_accepted(at(730), Duration::from_millis(1_020));
        assert_eq!(pacer.rate(), Some(cut));
        // A wait as long as the one that cut, or longer, says the cut was not enough.
        pacer.on_accepted(at(745), Duration::from_millis(3_520));
        let again = pacer.rate().unwrap();
        assert!((again - cut * 0.9).abs() < 1e-9, "{again}");
        // Once commits stop waiting, a long wait cuts again, whatever the last one was.
        pacer.on_accepted(at(760), Duration::from_millis(20));
        pacer.on_accepted(at(775), Duration::from_millis(1_020));
        assert!(pacer.rate().unwrap() < again);
    }

    #[test]
    fn an_old_backlog_at_start_is_paced_and_a_fresh_one_is_not() {
        let mut old = Pacer::new(Pacing::default());
        old.on_first_backlog(at(600), at(0));
        assert!(old.is_engaged());
        let mut fresh = Pacer::new(Pacing::default());
        fresh.on_first_backlog(at(10), at(0));
        assert!(!fresh.is_engaged());
        let mut off = Pacer::new(Pacing {
            enabled: false,
            ..Pacing::default()
        });
        off.on_first_backlog(at(600), at(0));
        failing(&mut off, 0, 600);
        assert!(!off.is_engaged());
        let mut loaded_at_once = Pacer::new(Pacing {
            old_backlog: false,
            ..Pacing::default()
        });
        loaded_at_once.on_first_backlog(at(600), at(0));
        assert!(!loaded_at_once.is_engaged(), "an old backlog alone");
        failing(&mut loaded_at_once, 600, 1200);
        assert!(loaded_at_once.is_engaged(), "failures still engage it");
    }

    #[test]
    fn a_wake_up_always_lies_ahead_and_comes_with_a_batch() {
        let mut pacer = Pacer::new(Pacing::default());
        failing(&mut pacer, 0, 600);
        let mut now = at(600);
        let mut sent = 0;
        for _ in 0..10_000 {
            match pacer.quota(now, 1_000, 4, Some(at(0))) {
                Some(0) => {
                    let next = pacer.ready_at(now, 1_000, 4).expect("a wake-up");
                    assert!(next > now, "{next} is not after {now}");
                    now = next;
                    assert_ne!(pacer.quota(now, 1_000, 4, Some(at(0))), Some(0), "at {now}");
                }
                Some(events) => {
                    pacer.on_sent(events);
                    sent += events;
                    pacer.on_accepted(now, Duration::ZERO);
                }
                None => break,
            }
        }
        assert!(sent > 1_000, "{sent}");
    }

    #[test]
    fn the_batch_never_passes_the_limit_in_force() {
        let mut pacer = Pacer::new(Pacing {
            min_batch: 50,
            ..Pacing::default()
        });
        failing(&mut pacer, 0, 600);
        assert_eq!(pacer.quota(at(600), 1_000, 3, Some(at(0))), Some(3));
    }
}
