use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use crate::flume::{BatchEncoder, Fit};
use crate::model::{Change, OutboxEntry, Seq};
use crate::policy::{Action, BatchSizer, Overload, classify};
use crate::store::{ChangeStore, StoreError};
use crate::transport::{SendOutcome, Transport};

use super::outbox::{Outbox, Shared};
use super::{ConfigError, SyncConfig};

/// What one [`Syncer::sync_once`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Requests sent.
    pub requests: usize,
    /// Changes acknowledged by Flume.
    pub delivered: usize,
    /// Changes dead-lettered.
    pub dead_lettered: usize,
    /// Changes acknowledged unsent because a later change superseded them.
    pub coalesced: usize,
    /// Changes scheduled for another attempt.
    pub retrying: usize,
    /// Nothing was claimable (empty, not yet due, or held by another syncer).
    pub idle: bool,
    /// The outbox is blocked by a configuration problem.
    pub blocked: bool,
}

impl SyncReport {
    /// Whether another step right away may do more work (the last batch went through).
    pub fn more_ready(&self) -> bool {
        !self.idle && !self.blocked && self.retrying == 0
    }
}

/// Drives delivery: claims changes from the store, encodes and sends them, and records
/// what happened. It holds no clock: every step takes `now`.
///
/// ```
/// # use headwater_core::engine::{Syncer, SyncConfig};
/// # use headwater_core::model::ChangeData;
/// # use headwater_core::transport::{SendOutcome, Response, Transport};
/// # use headwater_core::flume::EncodedBatch;
/// # struct Flume;
/// # #[async_trait::async_trait]
/// # impl Transport for Flume {
/// #     async fn send(&self, _: EncodedBatch<'_>) -> SendOutcome { SendOutcome::Response(Response::status(200)) }
/// # }
/// futures::executor::block_on(async {
///     let now = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
///     let store = headwater_memory::MemoryStore::new();
///     let mut syncer = Syncer::new(store, Flume, SyncConfig::new("docs", 42)).unwrap();
///     let outbox = syncer.outbox();
///     outbox.capture(now, ChangeData::delete("todos", "1").unwrap()).await.unwrap();
///     let report = syncer.sync_once(now).await.unwrap();
///     assert_eq!(report.delivered, 1);
/// });
/// ```
pub struct Syncer<S, T> {
    store: S,
    transport: T,
    config: SyncConfig,
    owner: String,
    encoder: BatchEncoder,
    sizer: BatchSizer,
    rng: ChaCha8Rng,
    server_errors_in_row: u32,
    blocked_until: Option<DateTime<Utc>>,
    shared: Arc<Shared>,
}

/// A seed for the change ids distinct from the jitter's, from the same configured seed.
const ID_STREAM: u64 = 0x9e37_79b9_7f4a_7c15;

impl<S: ChangeStore + Clone, T: Transport> Syncer<S, T> {
    /// A syncer over `store` and `transport`, if `config` is valid.
    pub fn new(store: S, transport: T, config: SyncConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let owner = format!("{}#{:016x}", config.mapping.source, config.seed);
        let sizer = BatchSizer::new(config.batch);
        let shared = Arc::new(Shared::new(config.seed ^ ID_STREAM, sizer.max_events()));
        Ok(Syncer {
            store,
            transport,
            owner,
            encoder: BatchEncoder::new(config.mapping.clone()),
            sizer,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            server_errors_in_row: 0,
            blocked_until: None,
            shared,
            config,
        })
    }

    /// The application's handle: capture, status, dead letters, shutdown.
    pub fn outbox(&self) -> Outbox<S> {
        Outbox::new(self.store.clone(), Arc::clone(&self.shared))
    }

    /// The configuration in force.
    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The batch size in force right now.
    pub fn batch_size(&self) -> usize {
        self.sizer.max_events()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn blocked_until(&self) -> Option<DateTime<Utc>> {
        self.blocked_until
    }

    /// One step: claim the head of line, send it (bisecting or splitting as Flume's
    /// answers require) and record the outcome. Only store failures are errors; every
    /// transport outcome is handled.
    pub async fn sync_once(&mut self, now: DateTime<Utc>) -> Result<SyncReport, StoreError> {
        let mut report = SyncReport::default();
        if let Some(until) = self.blocked_until {
            // A probe time further ahead than one interval was set before the clock
            // jumped back: probe now rather than wait for the clock to catch up.
            if now < until && until <= now + delta(self.config.blocked_probe_interval) {
                report.blocked = true;
                return Ok(report);
            }
        }
        let lease_until = now + delta(self.config.lease);
        let horizon = now + delta(self.config.schedule_horizon());
        let entries = self
            .store
            .claim(
                &self.owner,
                now,
                lease_until,
                horizon,
                self.sizer.max_events(),
            )
            .await?;
        if entries.is_empty() {
            report.idle = true;
            return Ok(report);
        }
        let entries = self.expire(entries, now, &mut report).await?;
        let entries = self.coalesce(entries, now, &mut report).await?;
        let (changes, attempts): (Vec<Change>, Vec<u32>) = entries
            .into_iter()
            .map(|entry| (entry.change, entry.delivery.attempts))
            .unzip();
        self.deliver(&changes, &attempts, now, &mut report).await?;
        self.publish(&report);
        Ok(report)
    }

    /// Dead-letters changes past the configured retry limits.
    async fn expire(
        &mut self,
        entries: Vec<OutboxEntry>,
        now: DateTime<Utc>,
        report: &mut SyncReport,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let limits = self.config.retry_limits;
        if limits.max_attempts.is_none() && limits.max_age.is_none() {
            return Ok(entries);
        }
        let mut keep = Vec::with_capacity(entries.len());
        for entry in entries {
            let attempts = entry.delivery.attempts;
            let too_many = limits.max_attempts.is_some_and(|max| attempts >= max);
            let too_old = limits
                .max_age
                .is_some_and(|age| now - entry.change.captured_at > delta(age));
            if too_many || too_old {
                let last = entry.delivery.last_error.as_deref().unwrap_or("none");
                let why = if too_many {
                    "attempt limit"
                } else {
                    "age limit"
                };
                let reason =
                    format!("gave up at the {why} after {attempts} attempts; last error: {last}");
                tracing::warn!(seq = %entry.change.seq, id = %entry.change.id, %reason, "dead-lettering change");
                self.store
                    .dead_letter(&self.owner, &[entry.change.seq], &reason, now)
                    .await?;
                report.dead_lettered += 1;
            } else {
                keep.push(entry);
            }
        }
        Ok(keep)
    }

    /// Acknowledges, unsent, changes superseded by a later one to the same record.
    async fn coalesce(
        &mut self,
        entries: Vec<OutboxEntry>,
        now: DateTime<Utc>,
        report: &mut SyncReport,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        if !self.config.coalesce {
            return Ok(entries);
        }
        let mut latest: HashMap<(&str, &str), Seq> = HashMap::new();
        for entry in &entries {
            let data = &entry.change.data;
            latest.insert((&data.collection, &data.key), entry.change.seq);
        }
        let superseded: Vec<Seq> = entries
            .iter()
            .filter(|entry| {
                let data = &entry.change.data;
                latest[&(data.collection.as_str(), data.key.as_str())] != entry.change.seq
            })
            .map(|entry| entry.change.seq)
            .collect();
        if superseded.is_empty() {
            return Ok(entries);
        }
        self.store.ack(&superseded, now).await?;
        report.coalesced += superseded.len();
        Ok(entries
            .into_iter()
            .filter(|entry| !superseded.contains(&entry.change.seq))
            .collect())
    }

    /// Sends the claimed changes in order, splitting and bisecting as answers require.
    /// Every claimed change leaves here acknowledged, dead-lettered, scheduled for retry
    /// or released.
    async fn deliver(
        &mut self,
        changes: &[Change],
        attempts: &[u32],
        now: DateTime<Utc>,
        report: &mut SyncReport,
    ) -> Result<(), StoreError> {
        let mut queue: VecDeque<Range<usize>> = VecDeque::new();
        queue.push_back(0..changes.len());
        let mut isolating = false;
        // 500s in a row for one change sent alone while isolating: a 400 condemns a
        // change at once, a 500 (which may be passing) only when it repeats.
        let mut lone_server_errors = 0;
        while let Some(range) = queue.pop_front() {
            if range.is_empty() {
                continue;
            }
            let take = range.len().min(self.sizer.max_events());
            let sent = match self.encoder.encode(
                &changes[range.start..range.start + take],
                self.sizer.max_bytes(),
            ) {
                Fit::FirstTooLarge { encoded_len } => {
                    let change = &changes[range.start];
                    let reason = format!(
                        "the change encodes to {encoded_len} bytes, over the batch limit of {} bytes",
                        self.sizer.max_bytes()
                    );
                    self.dead_letter(change, &reason, now, report).await?;
                    queue.push_front(range.start + 1..range.end);
                    continue;
                }
                Fit::Events(count) => range.start..range.start + count,
            };
            queue.push_front(sent.end..range.end);
            let body_len = self.encoder.batch().body.len();
            let outcome = self.transport.send(self.encoder.batch()).await;
            report.requests += 1;
            self.log_outcome(&sent, changes, &outcome);
            // While isolating, a 500 is a rejection of that part of the batch, as a 400 is.
            let previous = if isolating {
                self.config.classify.isolate_after_server_errors
            } else {
                self.server_errors_in_row
            };
            let action = classify(&outcome, previous, &self.config.classify);
            self.server_errors_in_row = match &outcome {
                SendOutcome::Response(response) if response.status == 500 => {
                    self.server_errors_in_row + 1
                }
                _ => 0,
            };
            let seqs: Vec<Seq> = changes[sent.clone()]
                .iter()
                .map(|change| change.seq)
                .collect();
            match action {
                Action::Ack => {
                    lone_server_errors = 0;
                    self.unblock();
                    self.store.ack(&seqs, now).await?;
                    self.sizer.on_success();
                    report.delivered += seqs.len();
                }
                Action::Retry {
                    overload: Overload::Capacity(capacity),
                    ..
                } if sent.len() > capacity => {
                    // A batch over the channel's transactionCapacity fails every time:
                    // resend at once at the size Flume named.
                    self.sizer
                        .on_overload(sent.len(), Overload::Capacity(capacity));
                    queue.push_front(sent);
                }
                Action::Retry {
                    overload,
                    retry_after,
                    reason,
                } => {
                    self.sizer.on_overload(sent.len(), overload);
                    let wait = match retry_after {
                        Some(retry_after) => {
                            retry_after.delay_from(now).min(self.config.max_retry_after)
                        }
                        None => self
                            .config
                            .backoff
                            .delay(attempts[sent.start], &mut self.rng),
                    };
                    let next = now + delta(wait);
                    self.store
                        .schedule_retry(&self.owner, &seqs, next, &reason)
                        .await?;
                    report.retrying += seqs.len();
                    {
                        let mut view = self.shared.view();
                        view.last_error = Some(reason);
                        view.next_attempt_at = Some(next);
                        view.counters.retries += 1;
                    }
                    self.release_rest(changes, &mut queue).await?;
                    return Ok(());
                }
                Action::TooLarge { reason } => {
                    if sent.len() == 1 {
                        self.dead_letter(&changes[sent.start], &reason, now, report)
                            .await?;
                    } else {
                        let first_alone = self.encoder.encoded_len(&changes[sent.start]);
                        self.sizer.on_too_large((body_len / 2).max(first_alone));
                        queue.push_front(sent);
                    }
                }
                Action::Isolate { reason } => {
                    isolating = true;
                    let server_error =
                        matches!(&outcome, SendOutcome::Response(r) if r.status == 500);
                    if sent.len() == 1 && server_error {
                        lone_server_errors += 1;
                        if lone_server_errors < self.config.classify.isolate_after_server_errors {
                            queue.push_front(sent);
                            continue;
                        }
                    }
                    lone_server_errors = 0;
                    self.bisect(sent, changes, &reason, now, &mut queue, report)
                        .await?;
                    continue;
                }
                Action::Block { reason } => {
                    let until = now + delta(self.config.blocked_probe_interval);
                    tracing::warn!(%reason, %until, "outbox blocked by a configuration problem; every change is kept");
                    self.blocked_until = Some(until);
                    {
                        let mut view = self.shared.view();
                        view.blocked = Some(reason.clone());
                        view.last_error = Some(reason);
                        view.next_attempt_at = Some(until);
                    }
                    queue.push_front(sent);
                    self.release_rest(changes, &mut queue).await?;
                    report.blocked = true;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Splits a rejected range in halves, or dead-letters it if it is one change.
    async fn bisect(
        &mut self,
        sent: Range<usize>,
        changes: &[Change],
        reason: &str,
        now: DateTime<Utc>,
        queue: &mut VecDeque<Range<usize>>,
        report: &mut SyncReport,
    ) -> Result<(), StoreError> {
        if sent.len() == 1 {
            // The 500s that led here were this change's; the next batch starts afresh.
            self.server_errors_in_row = 0;
            return self
                .dead_letter(&changes[sent.start], reason, now, report)
                .await;
        }
        let middle = sent.start + sent.len() / 2;
        queue.push_front(middle..sent.end);
        queue.push_front(sent.start..middle);
        Ok(())
    }

    async fn dead_letter(
        &mut self,
        change: &Change,
        reason: &str,
        now: DateTime<Utc>,
        report: &mut SyncReport,
    ) -> Result<(), StoreError> {
        tracing::warn!(seq = %change.seq, id = %change.id, %reason, "dead-lettering change");
        self.store
            .dead_letter(&self.owner, &[change.seq], reason, now)
            .await?;
        report.dead_lettered += 1;
        Ok(())
    }

    async fn release_rest(
        &mut self,
        changes: &[Change],
        queue: &mut VecDeque<Range<usize>>,
    ) -> Result<(), StoreError> {
        let rest: Vec<Seq> = queue
            .drain(..)
            .flat_map(|range| changes[range].iter().map(|change| change.seq))
            .collect();
        if !rest.is_empty() {
            self.store.release(&self.owner, &rest).await?;
        }
        Ok(())
    }

    fn unblock(&mut self) {
        if self.blocked_until.take().is_some() {
            tracing::info!("outbox unblocked");
            self.shared.view().blocked = None;
        }
    }

    fn log_outcome(&self, sent: &Range<usize>, changes: &[Change], outcome: &SendOutcome) {
        let first = changes[sent.start].seq;
        match outcome {
            SendOutcome::Response(response) => tracing::debug!(
                events = sent.len(), first_seq = %first, status = response.status, "batch answered"
            ),
            SendOutcome::TimedOut { message }
            | SendOutcome::ConnectionFailed { message }
            | SendOutcome::Refused { message } => {
                tracing::debug!(events = sent.len(), first_seq = %first, %message, "batch not answered")
            }
        }
    }

    fn publish(&self, report: &SyncReport) {
        let mut view = self.shared.view();
        view.batch_size = self.sizer.max_events();
        view.counters.requests += report.requests as u64;
        view.counters.delivered += report.delivered as u64;
        view.counters.dead_lettered += report.dead_lettered as u64;
        view.counters.coalesced += report.coalesced as u64;
        if report.retrying == 0 && !report.blocked {
            view.next_attempt_at = None;
        }
    }
}

/// Converts a std duration to chrono's, saturating (a century is "never" enough).
pub(crate) fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::days(36_500))
}
