//! Taking a refused batch apart to find the changes Flume refuses, condemning a change
//! only on evidence that the fault is its own.
//!
//! A batch refused with 400 (or with 500, repeatedly) is bisected; its parts are sent one
//! at a time, in seq order. A change refused *alone* becomes a suspect. A refusal counts
//! against a suspect (a *strike*) only when it is sandwiched: the answer just before its
//! lone request and the answer just after it (to the next request, an empty probe `[]`
//! included) were both acceptances. Sent between two acceptances and refused, the
//! change is what Flume refuses, not a server that refuses everything. So that "just
//! before" and "just after" mean what they say with several requests in flight, an
//! isolation gathering evidence has the wire to itself.
//!
//! For a 500 a strike also needs a *token*: Flume accepted real events (of other changes)
//! since the suspect's previous lone try. An interceptor that throws on every event
//! still accepts `[]`; with tokens, that shows as no acceptance of real events, and
//! nothing is condemned. (While a change is the only one refused alone since Flume last
//! took events, an accepted `[]` stands in for the token: with nothing else to send,
//! total order would otherwise hold forever behind one poisoned change.) A 400 is about
//! the body, and `[]` is the one body Flume must read, so an accepted probe is enough.
//! A 400 condemns on one strike; a 500 on
//! [`server_error_strikes`](crate::engine::IsolationRules::server_error_strikes), each
//! after a backoff.
//!
//! Two refusals in a row can never give a strike (each spoils the other's sandwich),
//! so an outage, however it starts or ends, condemns nothing. When the requests of an
//! isolation keep failing, it checks with `[]`: refused with 400, Flume refuses
//! everything and the outbox blocks with the reason; otherwise the isolation backs off
//! and resumes later.

mod evidence;
mod messages;

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use crate::model::Seq;
use crate::policy::Rejection;

use super::window::Window;

pub(super) use evidence::Health;
pub(super) use messages::{IsoAnswer, IsoEffect, IsoRequest, ProbePurpose};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Suspect {
    seq: Seq,
    record: u64,
    rejection: Rejection,
    reason: String,
    strikes: u32,
    /// `Health::real_successes` at its last lone try.
    mark: u64,
    /// The next lone try waits until then.
    retry_at: Option<DateTime<Utc>>,
    /// Lone tries refused without evidence either way: each waits twice as long as the
    /// one before, so a change that fails alone, with nothing else to send beside it,
    /// is not retried every second while it waits for evidence.
    unproven: u32,
}

/// The rules an isolation runs under.
#[derive(Debug, Clone, Copy)]
pub(super) struct IsoRules {
    /// One request in flight: total order, so nothing after a suspect is sent before it
    /// is resolved.
    pub(super) total_order: bool,
    /// Strikes that condemn a change for 500.
    pub(super) server_error_strikes: u32,
    /// The batch size in force: a part is never larger.
    pub(super) max_events: usize,
    /// No request is in flight: a request sent now is the only one, so the answer just
    /// before it and the answer just after it are well defined, and a refusal can count
    /// as evidence.
    pub(super) quiet: bool,
}

/// An isolation in progress.
#[derive(Debug, Clone)]
pub(super) struct Isolation {
    parts: VecDeque<Vec<Seq>>,
    suspects: Vec<Suspect>,
    /// A sandwiched lone refusal waiting for the answer after it.
    after_check: Option<Seq>,
    in_flight: Option<IsoRequest>,
    /// Refusals and failures of this isolation's requests that no acceptance followed
    /// and no evidence explains.
    failures: u32,
    /// How many of those prompt a look at the server.
    trouble_after: u32,
    trouble_probe: bool,
    /// The kind of the latest refusal.
    last_rejection: Rejection,
    /// Back-offs so far (the exponent of the next).
    back_offs: u32,
    not_before: Option<DateTime<Utc>>,
    /// `Health::real_successes` when the isolation began.
    started_mark: u64,
}

impl Isolation {
    /// An isolation of a batch of `seqs` refused with `rejection`.
    pub(super) fn new(seqs: Vec<Seq>, rejection: Rejection, health: &Health) -> Self {
        let size = seqs.len().max(2);
        let mut isolation = Self {
            parts: VecDeque::new(),
            suspects: Vec::new(),
            after_check: None,
            in_flight: None,
            failures: 0,
            trouble_after: (usize::BITS - (size - 1).leading_zeros()) + 2,
            trouble_probe: false,
            last_rejection: rejection,
            back_offs: 0,
            not_before: None,
            started_mark: health.real_successes,
        };
        isolation.split(seqs);
        isolation
    }

    fn split(&mut self, seqs: Vec<Seq>) {
        if seqs.len() <= 1 {
            self.parts.push_front(seqs);
            return;
        }
        let mut left = seqs;
        let right = left.split_off(left.len() / 2);
        self.parts.push_front(right);
        self.parts.push_front(left);
    }

    /// Every change the isolation holds, the one in flight included.
    pub(super) fn seqs(&self) -> Vec<Seq> {
        let mut seqs: Vec<Seq> = self.parts.iter().flatten().copied().collect();
        seqs.extend(self.suspects.iter().map(|suspect| suspect.seq));
        if let Some(request) = &self.in_flight {
            seqs.extend(request.seqs());
        }
        seqs.sort_unstable();
        seqs.dedup();
        seqs
    }

    /// Another request was refused while a lone refusal of this isolation waited for
    /// the answer after it: that refusal proves nothing.
    pub(super) fn spoil_evidence(&mut self) {
        self.after_check = None;
    }

    pub(super) fn is_done(&self) -> bool {
        self.parts.is_empty() && self.suspects.is_empty() && self.in_flight.is_none()
    }

    /// When the isolation wants to be asked again, if it waits.
    pub(super) fn wake_at(&self) -> Option<DateTime<Utc>> {
        if self.in_flight.is_some() {
            return None;
        }
        self.not_before
            .or_else(|| self.suspects.iter().filter_map(|s| s.retry_at).min())
    }

    /// Moves the isolation's waits back by `back` (the wall clock was set back).
    pub(super) fn shift_times(&mut self, back: chrono::TimeDelta) {
        if let Some(at) = self.not_before.as_mut() {
            *at -= back;
        }
        for suspect in &mut self.suspects {
            if let Some(at) = suspect.retry_at.as_mut() {
                *at -= back;
            }
        }
    }

    /// Forgets a change (acknowledged or condemned outside the isolation, or dropped).
    pub(super) fn forget(&mut self, seq: Seq) {
        for part in &mut self.parts {
            part.retain(|s| *s != seq);
        }
        self.parts.retain(|part| !part.is_empty());
        self.suspects.retain(|suspect| suspect.seq != seq);
        if self.after_check == Some(seq) {
            self.after_check = None;
        }
    }

    fn needed_strikes(rules: &IsoRules, rejection: Rejection) -> u32 {
        match rejection {
            Rejection::BadRequest => 1,
            Rejection::ServerError => rules.server_error_strikes,
        }
    }

    /// The changes of the first waiting part that may go now: those with no earlier
    /// change of their record held anywhere else in the isolation (in another part or
    /// as a suspect); in total order, with no earlier change held at all. They are cut
    /// to the batch size in force; the rest of the part keeps its place.
    ///
    /// Parts wait for earlier parts, not only for suspects: a part held back behind a
    /// suspect of one record may hold an earlier change of another record that a later
    /// part holds too. The earliest change held is always free, so this never stalls.
    fn take_sendable_part(&mut self, window: &Window, rules: &IsoRules) -> Option<Vec<Seq>> {
        let record = |seq: Seq| window.get(seq).map(|slot| slot.record);
        let held: Vec<(usize, Seq, Option<u64>)> = self
            .parts
            .iter()
            .enumerate()
            .flat_map(|(index, part)| part.iter().map(move |seq| (index, *seq)))
            .map(|(index, seq)| (index, seq, record(seq)))
            .chain(
                self.suspects
                    .iter()
                    .map(|suspect| (usize::MAX, suspect.seq, Some(suspect.record))),
            )
            .collect();
        let free = |index: usize, seq: Seq| {
            let own = record(seq);
            !held.iter().any(|(other, earlier, earlier_record)| {
                *other != index && *earlier < seq && (rules.total_order || *earlier_record == own)
            })
        };
        let (index, mut taken) = self.parts.iter().enumerate().find_map(|(index, part)| {
            let taken: Vec<Seq> = part
                .iter()
                .copied()
                .filter(|seq| free(index, *seq))
                .collect();
            (!taken.is_empty()).then_some((index, taken))
        })?;
        taken.truncate(rules.max_events.max(1));
        let part = &mut self.parts[index];
        part.retain(|seq| !taken.contains(seq));
        if part.is_empty() {
            self.parts.remove(index);
        }
        Some(taken)
    }

    /// Whether a refusal of a one-change part sent now would be a strike.
    fn part_sandwiched(&self, health: &Health, seqs: &[Seq], rules: &IsoRules) -> bool {
        match seqs {
            [seq] => {
                rules.quiet
                    && health.last_accepted()
                    && health.has_token(self.last_rejection, *seq, self.started_mark)
            }
            _ => false,
        }
    }

    /// Whether the isolation is gathering evidence against a change, which needs the
    /// wire to itself: a lone refusal waits for the answer right after it, a request
    /// that would count is in flight, or a suspect can be verified now. (With several
    /// requests in flight, another request's answer could come between a change's lone
    /// refusal and the answer taken as the one after it.)
    pub(super) fn wants_the_wire(&self, now: DateTime<Utc>, health: &Health) -> bool {
        if self.after_check.is_some() {
            return true;
        }
        match &self.in_flight {
            Some(IsoRequest::Lone { sandwiched, .. } | IsoRequest::Part { sandwiched, .. }) => {
                return *sandwiched;
            }
            Some(IsoRequest::Probe(ProbePurpose::Before)) => return true,
            Some(IsoRequest::Probe(_)) => return false,
            None => {}
        }
        if self.not_before.is_some_and(|at| now < at) {
            return false;
        }
        let mut records_seen = Vec::new();
        self.suspects.iter().any(|suspect| {
            if records_seen.contains(&suspect.record) {
                return false;
            }
            records_seen.push(suspect.record);
            suspect.retry_at.is_none_or(|at| at <= now)
                && health.has_token(suspect.rejection, suspect.seq, suspect.mark)
        })
    }

    /// The next request to send, if the isolation has one now. Call only when it has
    /// none in flight.
    pub(super) fn next_request(
        &mut self,
        now: DateTime<Utc>,
        health: &Health,
        window: &Window,
        rules: &IsoRules,
    ) -> Option<IsoRequest> {
        if self.in_flight.is_some() || self.not_before.is_some_and(|at| now < at) {
            return None;
        }
        self.not_before = None;
        let request = self.choose(now, health, window, rules)?;
        if let IsoRequest::Lone { seq, .. } = &request
            && let Some(suspect) = self.suspects.iter_mut().find(|s| s.seq == *seq)
        {
            // This try uses up the acceptances seen so far.
            suspect.mark = health.real_successes;
        }
        self.in_flight = Some(request.clone());
        Some(request)
    }

    fn choose(
        &mut self,
        now: DateTime<Utc>,
        health: &Health,
        window: &Window,
        rules: &IsoRules,
    ) -> Option<IsoRequest> {
        if self.trouble_probe {
            return Some(IsoRequest::Probe(ProbePurpose::Trouble));
        }
        if self.after_check.is_some() {
            return Some(match self.take_sendable_part(window, rules) {
                Some(seqs) => IsoRequest::Part {
                    sandwiched: self.part_sandwiched(health, &seqs, rules),
                    seqs,
                },
                None => IsoRequest::Probe(ProbePurpose::After),
            });
        }
        // Verify the earliest suspect of each record that holds a token.
        let mut records_seen = Vec::new();
        let mut unverifiable: Option<Seq> = None;
        for suspect in &self.suspects {
            if records_seen.contains(&suspect.record) {
                continue;
            }
            records_seen.push(suspect.record);
            let waiting = suspect.retry_at.is_some_and(|at| at > now);
            if !waiting {
                if health.has_token(suspect.rejection, suspect.seq, suspect.mark) {
                    if !health.last_accepted() {
                        return Some(IsoRequest::Probe(ProbePurpose::Before));
                    }
                    if rules.quiet {
                        return Some(IsoRequest::Lone {
                            seq: suspect.seq,
                            sandwiched: true,
                        });
                    }
                    // Not with other requests in flight: wait for the wire to empty.
                    if rules.total_order {
                        break;
                    }
                    continue;
                }
                unverifiable.get_or_insert(suspect.seq);
            }
            if rules.total_order {
                break;
            }
        }
        if let Some(seqs) = self.take_sendable_part(window, rules) {
            return Some(IsoRequest::Part {
                sandwiched: self.part_sandwiched(health, &seqs, rules),
                seqs,
            });
        }
        // Nothing but suspects without evidence to be had now: retry one alone (it may
        // be accepted; a refusal cannot count against it).
        unverifiable.map(|seq| IsoRequest::Lone {
            seq,
            sandwiched: false,
        })
    }

    /// Takes the answer to the request in flight. `backoff_until` gives the time to
    /// back off to for a given back-off count.
    pub(super) fn handle(
        &mut self,
        answer: IsoAnswer,
        health: &mut Health,
        window: &Window,
        rules: &IsoRules,
        backoff_until: &mut dyn FnMut(u32) -> DateTime<Utc>,
    ) -> Vec<IsoEffect> {
        let mut effects = Vec::new();
        let Some(request) = self.in_flight.take() else {
            return effects;
        };
        let accepted = answer == IsoAnswer::Accepted;
        // The answer right after a sandwiched lone refusal.
        if !matches!(request, IsoRequest::Lone { .. })
            && answer != IsoAnswer::Failed
            && let Some(seq) = self.after_check.take()
            && accepted
        {
            self.strike(seq, rules, &mut effects, backoff_until);
        }
        match (request, answer) {
            (request, IsoAnswer::Failed) => self.put_back(request),
            (IsoRequest::Probe(purpose), IsoAnswer::Accepted) => {
                if purpose == ProbePurpose::Trouble {
                    self.trouble_probe = false;
                    if self.last_rejection == Rejection::BadRequest {
                        // Flume reads an empty batch: it is the content. Go on.
                        self.failures = 0;
                    } else {
                        effects.push(self.back_off(backoff_until));
                    }
                }
            }
            (IsoRequest::Probe(purpose), IsoAnswer::Rejected { rejection, reason }) => {
                if purpose == ProbePurpose::Trouble {
                    self.trouble_probe = false;
                }
                if rejection == Rejection::BadRequest {
                    effects.push(IsoEffect::Block {
                        reason: format!(
                            "Flume refuses every request with 400, even an empty batch: {reason}"
                        ),
                    });
                } else {
                    effects.push(self.back_off(backoff_until));
                }
            }
            (IsoRequest::Probe(_), IsoAnswer::TooLarge { .. }) => {
                effects.push(self.back_off(backoff_until));
            }
            (request, IsoAnswer::Accepted) => {
                self.failures = 0;
                let seqs = request.seqs();
                self.suspects.retain(|suspect| !seqs.contains(&suspect.seq));
                effects.push(IsoEffect::Ack(seqs));
            }
            (IsoRequest::Part { seqs, sandwiched }, IsoAnswer::Rejected { rejection, reason }) => {
                self.last_rejection = rejection;
                match seqs.as_slice() {
                    [seq] => self.refused_alone(
                        *seq,
                        rejection,
                        reason,
                        sandwiched,
                        health,
                        window,
                        backoff_until,
                    ),
                    _ => {
                        self.failures += 1;
                        self.split(seqs);
                    }
                }
                self.check_trouble();
            }
            (IsoRequest::Lone { seq, sandwiched }, IsoAnswer::Rejected { rejection, reason }) => {
                self.last_rejection = rejection;
                self.refused_alone(
                    seq,
                    rejection,
                    reason,
                    sandwiched,
                    health,
                    window,
                    backoff_until,
                );
                self.check_trouble();
            }
            (IsoRequest::Part { seqs, .. }, IsoAnswer::TooLarge { reason }) => {
                match seqs.as_slice() {
                    [seq] => effects.push(IsoEffect::Condemn { seq: *seq, reason }),
                    _ => self.split(seqs),
                }
            }
            (IsoRequest::Lone { seq, .. }, IsoAnswer::TooLarge { reason }) => {
                self.suspects.retain(|suspect| suspect.seq != seq);
                effects.push(IsoEffect::Condemn { seq, reason });
            }
        }
        effects
    }

    fn check_trouble(&mut self) {
        if self.failures >= self.trouble_after {
            self.failures = 0;
            self.trouble_probe = true;
        }
    }

    fn back_off(&mut self, backoff_until: &mut dyn FnMut(u32) -> DateTime<Utc>) -> IsoEffect {
        let until = backoff_until(self.back_offs);
        self.back_offs = self.back_offs.saturating_add(1);
        self.not_before = Some(until);
        self.failures = 0;
        self.after_check = None;
        IsoEffect::BackOff {
            reason: "every request of the isolation failed: the server, not the data".into(),
        }
    }

    /// A change was refused alone.
    #[allow(clippy::too_many_arguments)]
    fn refused_alone(
        &mut self,
        seq: Seq,
        rejection: Rejection,
        reason: String,
        sandwiched: bool,
        health: &mut Health,
        window: &Window,
        backoff_until: &mut dyn FnMut(u32) -> DateTime<Utc>,
    ) {
        // Only refusals with 500 tell of a server that fails every event; a 400 alone is
        // judged with empty probes and does not count here.
        if rejection == Rejection::ServerError {
            health.refused_alone.insert(seq);
        }
        let mark = health.real_successes;
        if !sandwiched {
            self.failures += 1;
        }
        // Without a token, the next lone try waits for a backoff: only time (and other
        // changes accepted meanwhile) can bring evidence.
        let waits = !sandwiched && !health.has_token(rejection, seq, mark);
        let back_offs = self.back_offs;
        match self.suspects.iter_mut().find(|suspect| suspect.seq == seq) {
            Some(suspect) => {
                suspect.rejection = rejection;
                suspect.reason = reason;
                suspect.mark = mark;
                suspect.retry_at =
                    waits.then(|| backoff_until(back_offs.saturating_add(suspect.unproven)));
                if waits {
                    suspect.unproven = suspect.unproven.saturating_add(1);
                }
            }
            None => {
                let record = window.get(seq).map_or(0, |slot| slot.record);
                let position = self
                    .suspects
                    .iter()
                    .position(|suspect| suspect.seq > seq)
                    .unwrap_or(self.suspects.len());
                self.suspects.insert(
                    position,
                    Suspect {
                        seq,
                        record,
                        rejection,
                        reason,
                        strikes: 0,
                        mark,
                        retry_at: waits.then(|| backoff_until(back_offs)),
                        unproven: u32::from(waits),
                    },
                );
            }
        }
        if sandwiched {
            self.after_check = Some(seq);
        }
    }

    fn strike(
        &mut self,
        seq: Seq,
        rules: &IsoRules,
        effects: &mut Vec<IsoEffect>,
        backoff_until: &mut dyn FnMut(u32) -> DateTime<Utc>,
    ) {
        let Some(index) = self.suspects.iter().position(|suspect| suspect.seq == seq) else {
            return;
        };
        let needed = Self::needed_strikes(rules, self.suspects[index].rejection);
        let suspect = &mut self.suspects[index];
        suspect.strikes += 1;
        if suspect.strikes >= needed {
            let suspect = self.suspects.remove(index);
            effects.push(IsoEffect::Condemn {
                seq: suspect.seq,
                reason: suspect.reason,
            });
        } else {
            // The next lone try waits for a backoff, as any retry does.
            suspect.retry_at = Some(backoff_until(suspect.strikes));
        }
    }

    fn put_back(&mut self, request: IsoRequest) {
        match request {
            IsoRequest::Part { seqs, .. } => self.parts.push_front(seqs),
            IsoRequest::Lone { .. } => {}
            IsoRequest::Probe(ProbePurpose::Trouble) => self.trouble_probe = true,
            IsoRequest::Probe(_) => {}
        }
    }
}
