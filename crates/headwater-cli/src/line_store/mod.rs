//! `send`'s outbox in the lines layout: the input file itself, and a ledger of what
//! became of its lines.
//!
//! The outbox layout copies every line into SQLite (a row written, read, deleted and
//! checkpointed: about two thirds of `send`'s CPU). But `send`'s input is a file that
//! the check has just read whole, and must not change while it is sent. So in this
//! layout a change's seq is its number in the input (the first change is 1), its id is
//! derived from the seq and the state's seed, and pending means "neither acknowledged
//! nor dead-lettered": a claim reads the lines again, a [`Span`] at a time, each checked
//! against the check's fingerprint of it. The state (the same SQLite file, synchronous
//! as configured) holds only:
//!
//! - `send_acked`: runs of acknowledged seqs (`first..=last`, merged as they touch), in
//!   the same transaction per answer as before: an acknowledgement is one small row;
//! - `send_retry`: the retry state of changes that failed (written only on failure);
//! - `headwater_dead`: dead letters, in the SQLite store's own form, content included,
//!   so that `dead-letters list` needs no input.
//!
//! What this store does not keep: per-record sync markers (nothing in `send` reads
//! them; [`ChangeStore::sync_marker`] answers by reading the input), and pending bytes
//! (estimated as pending × the input's mean change weight).

pub(crate) mod ranges;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use headwater::sqlite::rusqlite::{self, OptionalExtension, params};
use headwater::store::{
    ChangeStore, Claim, ClaimRequest, Lease, Location, OldestPending, OutboxStats, Outcome,
    Recorded, StoreError, StoredEntry,
};
use headwater_core::model::{
    Captured, Change, ChangeId, DeadContent, DeadLetter, Delivery, OutboxEntry, Seq, SyncMarker,
};

use crate::input::{Input, Span, SpanLines};
use ranges::Runs;

/// The tables of this layout, beside the outbox tables `migrate` makes (which stay
/// empty but for dead letters).
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS send_acked (first INTEGER PRIMARY KEY, last INTEGER NOT NULL, acked_at TEXT NOT NULL);
     CREATE TABLE IF NOT EXISTS send_retry (seq INTEGER PRIMARY KEY, delivery TEXT NOT NULL);";

/// What fixes every line's id: when the state was made and its seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The capture time of every change, and the ids' timestamp.
    pub created_at: DateTime<Utc>,
    /// Mixed with the seq into each id's random bits.
    pub seed: u64,
}

impl Identity {
    /// A new state's: now, and a seed from the OS's randomness (std's hasher keys).
    pub(crate) fn new() -> Self {
        use std::hash::BuildHasher;
        let created_at = Utc::now();
        let seed = std::collections::hash_map::RandomState::new()
            .hash_one((created_at.timestamp_nanos_opt(), std::process::id()));
        Self { created_at, seed }
    }

    /// The id of the change at `seq`: a UUIDv7 with the state's time, its random bits
    /// XXH3-128 of the seq under the seed. The same state gives the same id on every run.
    pub(crate) fn id_of(&self, seq: u64) -> ChangeId {
        let bits = xxhash_rust::xxh3::xxh3_128_with_seed(&seq.to_le_bytes(), self.seed);
        let mut random = [0u8; 10];
        random.copy_from_slice(&bits.to_le_bytes()[..10]);
        let millis = u64::try_from(self.created_at.timestamp_millis()).unwrap_or(0);
        ChangeId::from_uuid(uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid())
    }
}

/// The input as the store reads it again.
struct InputLines {
    file: File,
    name: String,
    spans: Vec<Span>,
    /// The last two spans read (the in-flight window rarely spans more), oldest first.
    cache: Vec<(usize, Arc<SpanLines>)>,
    total: u64,
    mean_weight: u64,
}

impl InputLines {
    fn span_of(&mut self, seq: u64) -> Result<(Arc<SpanLines>, usize), String> {
        let index = self
            .spans
            .partition_point(|span| span.first <= seq)
            .checked_sub(1)
            .ok_or_else(|| format!("no change {seq}"))?;
        let offset = (seq - self.spans[index].first) as usize;
        if let Some((_, lines)) = self.cache.iter().find(|(at, _)| *at == index) {
            return Ok((Arc::clone(lines), offset));
        }
        let lines = Arc::new(Input::read_span(&self.file, &self.spans[index])?);
        if self.cache.len() == 2 {
            self.cache.remove(0);
        }
        self.cache.push((index, Arc::clone(&lines)));
        Ok((lines, offset))
    }
}

/// Everything behind the store's lock.
struct Ledger {
    connection: rusqlite::Connection,
    /// `None` for an operator's command on the dead letters, which needs no input.
    input: Option<InputLines>,
    identity: Identity,
    acked: Runs,
    dead: BTreeSet<u64>,
    retries: BTreeMap<u64, Delivery>,
    lease: Option<Lease>,
    /// Told once, when the input is found changed.
    failure: tokio::sync::watch::Sender<Option<String>>,
}

fn sql(error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => StoreError::QuotaExceeded(error.into()),
        Some(
            rusqlite::ErrorCode::DatabaseCorrupt
            | rusqlite::ErrorCode::NotADatabase
            | rusqlite::ErrorCode::ReadOnly,
        ) => StoreError::Unusable(error.into()),
        _ => StoreError::Backend(error.into()),
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|error| StoreError::backend(format!("a time in the state ({text}): {error}")))
}

impl Ledger {
    fn holds(&self, owner: &str) -> bool {
        self.lease
            .as_ref()
            .is_some_and(|lease| lease.is_held_by(owner))
    }

    fn total(&self) -> u64 {
        self.input.as_ref().map_or(0, |input| input.total)
    }

    fn input(&mut self) -> Result<&mut InputLines, StoreError> {
        self.input
            .as_mut()
            .ok_or_else(|| StoreError::backend("this command reads no input"))
    }

    /// The change at `seq`, read again from the input. A change found different from
    /// the check's stops delivery: the state and Flume are left as they are.
    fn change(&mut self, seq: u64) -> Result<Change, StoreError> {
        let identity = self.identity;
        let input = self.input()?;
        let read = input
            .span_of(seq)
            .and_then(|(lines, offset)| lines.change(offset));
        let data = match read {
            Ok(data) => data,
            Err(reason) => {
                let message = format!(
                    "the input changed while it was being sent: {}: {reason}",
                    input.name
                );
                self.failure.send_replace(Some(message.clone()));
                return Err(StoreError::Unusable(message.into()));
            }
        };
        let seq = Seq::new(seq).ok_or(StoreError::SeqExhausted)?;
        Ok(Change::new(
            seq,
            Captured {
                id: identity.id_of(seq.get()),
                captured_at: identity.created_at,
                data,
            },
        ))
    }

    /// The next pending seq at or after `seq` (and at or below `through`).
    fn next_pending(&self, mut seq: u64, through: u64) -> Option<u64> {
        while seq <= through {
            if let Some(end) = self.acked.end_of_run_holding(seq) {
                seq = end + 1;
            } else if self.dead.contains(&seq) {
                seq += 1;
            } else {
                return Some(seq);
            }
        }
        None
    }

    /// Up to `limit` pending changes after `after`, up to `visible`.
    fn read(
        &mut self,
        after: Option<Seq>,
        limit: usize,
        visible: u64,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let through = visible.min(self.total());
        let mut entries = Vec::with_capacity(limit.min(1024));
        let mut from = after.map_or(1, |seq| seq.get() + 1);
        while entries.len() < limit {
            let Some(seq) = self.next_pending(from, through) else {
                break;
            };
            let mut entry = OutboxEntry::new(self.change(seq)?);
            if let Some(delivery) = self.retries.get(&seq) {
                entry.delivery = delivery.clone();
            }
            entries.push(Ok(entry));
            from = seq + 1;
        }
        Ok(entries)
    }

    /// Takes or renews the lease as `request` asks and, if granted, reads its changes.
    fn claim(&mut self, request: &ClaimRequest, visible: u64) -> Result<Claim, StoreError> {
        match request.grant(self.lease.as_ref()) {
            Err(held) => Ok(Claim::Held(held)),
            Ok(lease) => {
                self.lease = Some(lease);
                self.read(request.after, request.limit, visible)
                    .map(Claim::Granted)
            }
        }
    }

    /// Writes runs `first..=last` as acknowledged at `at` into `tx` and `acked`.
    fn ack_into(
        tx: &rusqlite::Transaction<'_>,
        acked: &mut Runs,
        first: u64,
        last: u64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (from, to) = acked.insert(first, last);
        tx.prepare_cached("DELETE FROM send_acked WHERE first BETWEEN ?1 AND ?2")
            .and_then(|mut delete| delete.execute(params![from as i64, to as i64]))
            .map_err(sql)?;
        tx.prepare_cached("INSERT INTO send_acked (first, last, acked_at) VALUES (?1, ?2, ?3)")
            .and_then(|mut insert| insert.execute(params![from as i64, to as i64, time(at)]))
            .map_err(sql)?;
        Ok(())
    }

    fn record(
        &mut self,
        owner: &str,
        now: DateTime<Utc>,
        outcome: &Outcome,
    ) -> Result<Recorded, StoreError> {
        let holds = self.holds(owner);
        let total = self.total();
        let mut acked = self.acked.clone();
        let mut cleared = Vec::new();
        let tx = self.connection.transaction().map_err(sql)?;
        for run in outcome.acked_runs() {
            let (first, last) = (run.start().get(), run.end().get().min(total));
            if first > last {
                continue;
            }
            Self::ack_into(&tx, &mut acked, first, last, now)?;
            cleared.extend(self.retries.range(first..=last).map(|(seq, _)| *seq));
        }
        let mut retried = Vec::new();
        let mut dead = Vec::new();
        if holds {
            for (seq, delivery) in outcome.retries() {
                let seq = seq.get();
                if acked.end_of_run_holding(seq).is_some() || self.dead.contains(&seq) {
                    continue;
                }
                let text = serde_json::to_string(delivery)
                    .map_err(|error| StoreError::Unstorable(error.into()))?;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO send_retry (seq, delivery) VALUES (?1, ?2)",
                )
                .and_then(|mut insert| insert.execute(params![seq as i64, text]))
                .map_err(sql)?;
                retried.push((seq, delivery.clone()));
            }
            for letter in outcome.dead() {
                let seq = letter.seq.get();
                if seq > total
                    || acked.end_of_run_holding(seq).is_some()
                    || self.dead.contains(&seq)
                {
                    continue;
                }
                let content = serde_json::to_string(&letter.content)
                    .map_err(|error| StoreError::Unstorable(error.into()))?;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO headwater_dead (seq, content, reason, at, attempts) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut insert| {
                    insert.execute(params![
                        seq as i64,
                        content,
                        letter.reason,
                        time(letter.at),
                        i64::from(letter.attempts)
                    ])
                })
                .map_err(sql)?;
                cleared.push(seq);
                dead.push(seq);
            }
        }
        for seq in &cleared {
            if self.retries.contains_key(seq) {
                tx.prepare_cached("DELETE FROM send_retry WHERE seq = ?1")
                    .and_then(|mut delete| delete.execute(params![*seq as i64]))
                    .map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)?;
        self.acked = acked;
        for seq in cleared {
            self.retries.remove(&seq);
        }
        self.retries.extend(retried);
        self.dead.extend(dead);
        Ok(if holds {
            Recorded::Applied
        } else {
            Recorded::LeaseLost
        })
    }

    fn dead_letter(&self, seq: u64) -> Result<Option<DeadLetter>, StoreError> {
        let row = self
            .connection
            .query_row(
                "SELECT content, reason, at, attempts FROM headwater_dead WHERE seq = ?1",
                params![seq as i64],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()
            .map_err(sql)?;
        row.map(|row| letter_of(seq, row)).transpose()
    }

    fn stats(&self, visible: u64) -> OutboxStats {
        let through = visible.min(self.total());
        let settled =
            self.acked.count_through(through) + self.dead.range(..=through).count() as u64;
        let pending = through.saturating_sub(settled);
        let oldest = self.next_pending(1, through).map(|seq| OldestPending {
            seq: Seq::new(seq).unwrap_or(Seq::MAX),
            captured_at: self.identity.created_at,
            delivery: self.retries.get(&seq).cloned().unwrap_or_default(),
        });
        let mut newest = through;
        while newest > 0 {
            if let Some(start) = self.acked.start_of_run_holding(newest) {
                newest = start - 1;
            } else if self.dead.contains(&newest) {
                newest -= 1;
            } else {
                break;
            }
        }
        let mean_weight = self.input.as_ref().map_or(0, |input| input.mean_weight);
        OutboxStats {
            pending: pending as usize,
            pending_bytes: pending.saturating_mul(mean_weight),
            dead_lettered: self.dead.len(),
            oldest,
            newest_seq: Seq::new(newest).filter(|_| newest > 0),
            lease: self.lease.clone(),
        }
    }
}

type DeadRow = (String, String, String, i64);

fn letter_of(seq: u64, (content, reason, at, attempts): DeadRow) -> Result<DeadLetter, StoreError> {
    let content =
        serde_json::from_str(&content).unwrap_or(DeadContent::Unreadable { raw: content });
    Ok(DeadLetter {
        seq: Seq::new(seq).ok_or(StoreError::SeqExhausted)?,
        content,
        reason,
        at: parse_time(&at)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
    })
}

/// `send`'s outbox in the lines layout (see the module's documentation).
pub(crate) struct LineStore {
    ledger: Arc<Mutex<Ledger>>,
    /// Changes after this seq are not pending yet (`--max-rate` moves it up); without
    /// pacing, the input's last.
    visible: Arc<AtomicU64>,
}

/// The input's part of a [`LineStore`]: the file and what the check found.
pub(crate) struct CheckedInput<'a> {
    pub input: &'a Input,
    pub spans: Vec<Span>,
    pub changes: u64,
    pub weight: u64,
}

impl LineStore {
    /// The store over the state behind `connection` (its layout's tables made if
    /// missing) and, for `send`, its checked input. `failure` is told when the input
    /// is found changed.
    pub(crate) fn open(
        mut connection: rusqlite::Connection,
        identity: Identity,
        input: Option<CheckedInput<'_>>,
        visible: Arc<AtomicU64>,
        failure: tokio::sync::watch::Sender<Option<String>>,
    ) -> Result<Self, String> {
        connection
            .execute_batch(SCHEMA)
            .map_err(|error| error.to_string())?;
        let input = input
            .map(|checked| -> Result<InputLines, String> {
                Ok(InputLines {
                    file: checked.input.reopen().map_err(|error| error.to_string())?,
                    name: checked.input.name().to_owned(),
                    spans: checked.spans,
                    cache: Vec::with_capacity(2),
                    total: checked.changes,
                    mean_weight: checked.weight.checked_div(checked.changes).unwrap_or(0),
                })
            })
            .transpose()?;
        let tx = connection
            .transaction()
            .map_err(|error| error.to_string())?;
        let mut acked = Runs::default();
        let mut retries = BTreeMap::new();
        let mut dead = BTreeSet::new();
        {
            let mut runs = tx
                .prepare("SELECT first, last FROM send_acked ORDER BY first")
                .map_err(|error| error.to_string())?;
            let rows = runs
                .query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))
                .map_err(|error| error.to_string())?;
            for row in rows {
                let (first, last) = row.map_err(|error| error.to_string())?;
                acked.insert(first as u64, last as u64);
            }
            let mut failed = tx
                .prepare("SELECT seq, delivery FROM send_retry")
                .map_err(|error| error.to_string())?;
            let rows = failed
                .query_map([], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(|error| error.to_string())?;
            for row in rows {
                let (seq, text) = row.map_err(|error| error.to_string())?;
                // A retry state that does not read back starts afresh: it is bookkeeping,
                // not the change.
                retries.insert(seq as u64, serde_json::from_str(&text).unwrap_or_default());
            }
            let mut letters = tx
                .prepare("SELECT seq FROM headwater_dead")
                .map_err(|error| error.to_string())?;
            let rows = letters
                .query_map([], |row| row.get::<_, i64>(0))
                .map_err(|error| error.to_string())?;
            for row in rows {
                dead.insert(row.map_err(|error| error.to_string())? as u64);
            }
        }
        tx.commit().map_err(|error| error.to_string())?;
        if let Some(input) = &input {
            visible.fetch_min(input.total, Ordering::AcqRel);
        }
        Ok(Self {
            ledger: Arc::new(Mutex::new(Ledger {
                connection,
                input,
                identity,
                acked,
                dead,
                retries,
                lease: None,
                failure,
            })),
            visible,
        })
    }

    /// How many changes at the head of the input were settled (acknowledged or
    /// dead-lettered) by earlier runs, without a gap: where a paced run starts.
    pub(crate) fn settled_head(&self) -> u64 {
        let ledger = self.lock_blocking();
        let through = ledger.total();
        ledger
            .next_pending(1, through)
            .map_or(through, |seq| seq - 1)
    }

    fn lock_blocking(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // Every change to the ledger is made after its transaction commits, and cannot
        // panic halfway: a poisoned lock still guards consistent data.
        self.ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `job` on the ledger on a blocking thread: it reads the input and commits
    /// (an `fsync` with `synchronous = FULL`).
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Ledger, u64) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let ledger = Arc::clone(&self.ledger);
        let visible = self.visible.load(Ordering::Acquire);
        tokio::task::spawn_blocking(move || {
            let mut ledger = ledger
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            job(&mut ledger, visible)
        })
        .await
        .map_err(|error| StoreError::backend(format!("the state's thread failed: {error}")))?
    }
}

#[async_trait::async_trait]
impl ChangeStore for LineStore {
    async fn append(&self, _changes: Vec<Captured>) -> Result<Vec<Change>, StoreError> {
        Err(StoreError::backend(
            "this state sends its input's lines and takes no other changes",
        ))
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        let request = request.clone();
        self.run(move |ledger, visible| ledger.claim(&request, visible))
            .await
    }

    async fn record(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        outcome: &Outcome,
    ) -> Result<Recorded, StoreError> {
        let (owner, outcome) = (owner.to_owned(), outcome.clone());
        self.run(move |ledger, _| ledger.record(&owner, now, &outcome))
            .await
    }

    async fn record_then_claim(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        outcome: &Outcome,
        request: &ClaimRequest,
    ) -> Result<(Recorded, Result<Claim, StoreError>), StoreError> {
        let (owner, outcome, request) = (owner.to_owned(), outcome.clone(), request.clone());
        self.run(move |ledger, visible| {
            let recorded = ledger.record(&owner, now, &outcome)?;
            Ok((recorded, ledger.claim(&request, visible)))
        })
        .await
    }

    async fn release(&self, owner: &str) -> Result<(), StoreError> {
        let owner = owner.to_owned();
        self.run(move |ledger, _| {
            if ledger.holds(&owner) {
                ledger.lease = None;
            }
            Ok(())
        })
        .await
    }

    async fn pending(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        self.run(move |ledger, visible| ledger.read(after, limit, visible))
            .await
    }

    async fn dead_letters(
        &self,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.run(move |ledger, _| {
            let mut statement = ledger
                .connection
                .prepare_cached(
                    "SELECT seq, content, reason, at, attempts FROM headwater_dead WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(sql)?;
            let rows = statement
                .query_map(
                    params![after.map_or(0, Seq::get) as i64, limit as i64],
                    |row| {
                        Ok((
                            row.get::<_, i64>(0)? as u64,
                            (row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?),
                        ))
                    },
                )
                .map_err(sql)?;
            let mut letters = Vec::new();
            for row in rows {
                let (seq, row) = row.map_err(sql)?;
                letters.push(letter_of(seq, row)?);
            }
            Ok(letters)
        })
        .await
    }

    async fn requeue(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
        let seqs = seqs.to_vec();
        self.run(move |ledger, _| {
            let mut requeued = Vec::new();
            for seq in seqs {
                // An unreadable row stays where it is, as in every store.
                if ledger
                    .dead_letter(seq.get())?
                    .is_some_and(|letter| letter.change().is_some())
                {
                    requeued.push(seq.get());
                }
            }
            let tx = ledger.connection.transaction().map_err(sql)?;
            for seq in &requeued {
                tx.execute(
                    "DELETE FROM headwater_dead WHERE seq = ?1",
                    params![*seq as i64],
                )
                .map_err(sql)?;
                tx.execute(
                    "DELETE FROM send_retry WHERE seq = ?1",
                    params![*seq as i64],
                )
                .map_err(sql)?;
            }
            tx.commit().map_err(sql)?;
            for seq in &requeued {
                ledger.dead.remove(seq);
                ledger.retries.remove(seq);
            }
            Ok(requeued.len())
        })
        .await
    }

    async fn discard(&self, seqs: &[Seq]) -> Result<usize, StoreError> {
        let seqs = seqs.to_vec();
        self.run(move |ledger, _| {
            let discarded: Vec<u64> = seqs
                .iter()
                .map(|seq| seq.get())
                .filter(|seq| ledger.dead.contains(seq))
                .collect();
            let mut acked = ledger.acked.clone();
            let tx = ledger.connection.transaction().map_err(sql)?;
            for seq in &discarded {
                tx.execute(
                    "DELETE FROM headwater_dead WHERE seq = ?1",
                    params![*seq as i64],
                )
                .map_err(sql)?;
                // Settled for good: a discarded line is never sent.
                Ledger::ack_into(&tx, &mut acked, *seq, *seq, Utc::now())?;
            }
            tx.commit().map_err(sql)?;
            ledger.acked = acked;
            for seq in &discarded {
                ledger.dead.remove(seq);
            }
            Ok(discarded.len())
        })
        .await
    }

    async fn stats(&self) -> Result<OutboxStats, StoreError> {
        self.run(|ledger, visible| Ok(ledger.stats(visible))).await
    }

    async fn sync_marker(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<SyncMarker>, StoreError> {
        let (collection, key) = (collection.to_owned(), key.to_owned());
        self.run(move |ledger, _| {
            // Read from the input: `send` never asks, so no marker is written per answer.
            let mut last = None;
            for seq in 1..=ledger.total() {
                if ledger.acked.end_of_run_holding(seq).is_none() {
                    continue;
                }
                let change = ledger.change(seq)?;
                if change.data().collection() == collection && change.data().key() == key {
                    last = Some(seq);
                }
            }
            let Some(seq) = last else { return Ok(None) };
            let first = ledger.acked.start_of_run_holding(seq).unwrap_or(seq);
            let acked_at: String = ledger
                .connection
                .query_row(
                    "SELECT acked_at FROM send_acked WHERE first = ?1",
                    params![first as i64],
                    |row| row.get(0),
                )
                .map_err(sql)?;
            Ok(Some(SyncMarker {
                last_acked_seq: Seq::new(seq).ok_or(StoreError::SeqExhausted)?,
                // When the run holding it last grew: at or after its acknowledgement.
                acked_at: parse_time(&acked_at)?,
            }))
        })
        .await
    }

    async fn locate(&self, seq: Seq) -> Result<Location, StoreError> {
        self.run(move |ledger, visible| {
            if let Some(letter) = ledger.dead_letter(seq.get())? {
                return Ok(Location::DeadLettered(letter));
            }
            let pending = seq.get() <= visible.min(ledger.total())
                && ledger.acked.end_of_run_holding(seq.get()).is_none();
            Ok(if pending {
                Location::Pending
            } else {
                Location::Gone
            })
        })
        .await
    }
}

/// A read-only view for tests: the acknowledged runs.
#[cfg(test)]
impl LineStore {
    fn acked_runs(&self) -> Vec<(u64, u64)> {
        self.lock_blocking().acked.iter().collect()
    }
}

#[cfg(test)]
mod tests;
