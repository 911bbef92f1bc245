//! The store's operations as plain SQL on one connection, each meant to run inside one
//! transaction. The rules they apply (lease, markers, requeue) are the core's.

use chrono::{DateTime, SecondsFormat, Utc};
use headwater_core::model::{
    Captured, Change, ChangeData, ChangeId, DeadContent, DeadLetter, Delivery, JsonText, Op,
    OpKind, OutboxEntry, Seq, SyncMarker, UnreadableEntry,
};
use headwater_core::store::{
    ClaimRequest, Lease, Location, OldestPending, OutboxStats, Outcome, StoreError, StoredEntry,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

pub(crate) fn sql_error(error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => StoreError::QuotaExceeded(Box::new(error)),
        Some(rusqlite::ErrorCode::TooBig) | Some(rusqlite::ErrorCode::ConstraintViolation) => {
            StoreError::Unstorable(Box::new(error))
        }
        Some(
            rusqlite::ErrorCode::DatabaseCorrupt
            | rusqlite::ErrorCode::NotADatabase
            | rusqlite::ErrorCode::ReadOnly,
        ) => StoreError::Unusable(Box::new(error)),
        _ => StoreError::Backend(Box::new(error)),
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|error| format!("bad time {text:?}: {error}"))
}

/// The `headers` column of a change: its headers as JSON, or NULL when it has none.
fn headers_column(data: &ChangeData) -> Result<Option<String>, StoreError> {
    if data.headers().is_empty() {
        return Ok(None);
    }
    serde_json::to_string(data.headers())
        .map(Some)
        .map_err(|e| StoreError::Unstorable(e.into()))
}

fn meta(connection: &Connection, name: &str) -> Result<Option<String>, StoreError> {
    connection
        .prepare_cached("SELECT value FROM headwater_meta WHERE name = ?1")
        .and_then(|mut query| query.query_row(params![name], |row| row.get(0)).optional())
        .map_err(sql_error)
}

fn set_meta(connection: &Connection, name: &str, value: &str) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO headwater_meta (name, value) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .and_then(|mut statement| statement.execute(params![name, value]))
        .map(drop)
        .map_err(sql_error)
}

/// Adds `count` changes of `bytes` to the pending counters (negative to remove).
fn adjust_pending(connection: &Connection, count: i64, bytes: i64) -> Result<(), StoreError> {
    if count == 0 && bytes == 0 {
        return Ok(());
    }
    let mut adjust = connection
        .prepare_cached(
            "UPDATE headwater_meta SET value = CAST(MAX(0, CAST(value AS INTEGER) + ?2) AS TEXT)
             WHERE name = ?1",
        )
        .map_err(sql_error)?;
    adjust
        .execute(params!["pending_count", count])
        .and_then(|_| adjust.execute(params!["pending_bytes", bytes]))
        .map(drop)
        .map_err(sql_error)
}

/// Appends captured changes inside `connection`'s open transaction (the application's
/// own, or the store's), assigning their seqs. Nothing is visible to the syncer until
/// that transaction commits. On an error the caller's transaction must not commit
/// (dropping a `rusqlite::Transaction` rolls it back).
///
/// It writes before it reads, so even a deferred transaction takes the write lock at
/// once (waiting for the busy timeout) instead of failing for a write the syncer made
/// after it read.
pub fn append_in(
    connection: &Connection,
    captured: Vec<Captured>,
) -> Result<Vec<Change>, StoreError> {
    if captured.is_empty() {
        return Ok(Vec::new());
    }
    let mut insert = connection
        .prepare_cached(
            "INSERT INTO headwater_outbox (id, captured_at, collection, key, op, value, headers, weight)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(sql_error)?;
    let mut changes = Vec::with_capacity(captured.len());
    let mut bytes = 0i64;
    for item in captured {
        let data = &item.data;
        let headers = headers_column(data)?;
        let weight = data.weight() as i64;
        insert
            .execute(params![
                item.id.to_string(),
                time(item.captured_at),
                data.collection(),
                data.key(),
                data.kind().as_str(),
                data.value_json(),
                headers,
                weight,
            ])
            .map_err(sql_error)?;
        bytes += weight;
        let seq = u64::try_from(connection.last_insert_rowid())
            .ok()
            .and_then(Seq::new)
            .ok_or(StoreError::SeqExhausted)?;
        changes.push(Change::new(seq, item));
    }
    adjust_pending(connection, changes.len() as i64, bytes)?;
    Ok(changes)
}

/// A seq read from column `column`: the store never writes one over [`MAX_SEQ`], so
/// such a number is damage, reported as SQLite reports an integer out of range.
pub(crate) fn seq_column(column: usize, value: i64) -> rusqlite::Result<Seq> {
    u64::try_from(value)
        .ok()
        .and_then(Seq::new)
        .ok_or(rusqlite::Error::IntegralValueOutOfRange(column, value))
}

const ROW_COLUMNS: &str = "seq, id, captured_at, collection, key, op, value, headers, attempts, next_attempt_at, last_error";

/// Decodes an outbox row; a row that does not decode is reported with its columns.
fn entry(row: &Row<'_>) -> rusqlite::Result<StoredEntry> {
    let seq: i64 = row.get(0)?;
    let id: String = row.get(1)?;
    let captured_at: String = row.get(2)?;
    let collection: String = row.get(3)?;
    let key: String = row.get(4)?;
    let op: String = row.get(5)?;
    let value: Option<String> = row.get(6)?;
    let headers: Option<String> = row.get(7)?;
    let attempts: i64 = row.get(8)?;
    let next_attempt_at: Option<String> = row.get(9)?;
    let last_error: Option<String> = row.get(10)?;
    let seq = seq_column(0, seq)?;
    let decoded = (|| -> Result<OutboxEntry, String> {
        let id = uuid::Uuid::parse_str(&id).map_err(|e| format!("bad id: {e}"))?;
        let kind: OpKind = serde_json::from_value(serde_json::Value::String(op.clone()))
            .map_err(|e| format!("bad op: {e}"))?;
        let value = value
            .as_deref()
            .map(JsonText::parse)
            .transpose()
            .map_err(|e| format!("bad value: {e}"))?;
        let mut data = ChangeData::new(
            collection.clone(),
            key.clone(),
            Op::from_parts(kind, value).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        if let Some(headers) = &headers {
            let headers: std::collections::BTreeMap<String, String> =
                serde_json::from_str(headers).map_err(|e| format!("bad headers: {e}"))?;
            for (name, value) in headers {
                data = data.with_header(name, value).map_err(|e| e.to_string())?;
            }
        }
        let change = Change::new(
            seq,
            Captured {
                id: ChangeId::from_uuid(id),
                captured_at: parse_time(&captured_at)?,
                data,
            },
        );
        Ok(OutboxEntry {
            change,
            delivery: Delivery {
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                next_attempt_at: next_attempt_at.as_deref().map(parse_time).transpose()?,
                last_error: last_error.clone(),
            },
        })
    })();
    Ok(decoded.map_err(|error| UnreadableEntry {
        seq,
        raw: serde_json::json!({
            "id": id, "captured_at": captured_at, "collection": collection, "key": key,
            "op": op, "value": value, "headers": headers, "attempts": attempts,
        })
        .to_string(),
        error,
    }))
}

/// Up to `limit` outbox rows after `after`, in seq order.
pub(crate) fn read(
    connection: &Connection,
    after: Option<Seq>,
    limit: usize,
) -> Result<Vec<StoredEntry>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut query = connection
        .prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM headwater_outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ))
        .map_err(sql_error)?;
    let after = after.map_or(0, |seq| seq.get() as i64);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    query
        .query_map(params![after, limit], entry)
        .map_err(sql_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_error)
}

fn lease(connection: &Connection) -> Result<Option<Lease>, StoreError> {
    meta(connection, "lease")?
        .map(|text| serde_json::from_str(&text).map_err(|e| StoreError::Backend(e.into())))
        .transpose()
}

/// Takes or renews the lease; `None` if another syncer holds it (then `Err` holds it).
pub(crate) fn claim(
    connection: &Connection,
    request: &ClaimRequest,
) -> Result<Result<Vec<StoredEntry>, Lease>, StoreError> {
    let current = lease(connection)?;
    match request.grant(current.as_ref()) {
        Err(held) => Ok(Err(held)),
        Ok(granted) if current.as_ref() == Some(&granted) => {
            Ok(Ok(read(connection, request.after, request.limit)?))
        }
        Ok(granted) => {
            let text =
                serde_json::to_string(&granted).map_err(|e| StoreError::Backend(e.into()))?;
            set_meta(connection, "lease", &text)?;
            Ok(Ok(read(connection, request.after, request.limit)?))
        }
    }
}

/// Applies an outcome; `false` if `owner` no longer holds the lease (acknowledgements
/// only were applied).
pub(crate) fn record(
    connection: &Connection,
    owner: &str,
    now: DateTime<Utc>,
    outcome: &Outcome,
) -> Result<bool, StoreError> {
    let mut removed_count = 0i64;
    let mut removed_bytes = 0i64;
    {
        // What a run removes is summed first and then deleted, in the same transaction:
        // `DELETE … RETURNING` buffers its rows in a temporary b-tree it opens for every
        // run (an in-memory store delivered about a tenth faster without it).
        let mut weigh = connection
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(weight), 0) FROM headwater_outbox WHERE seq BETWEEN ?1 AND ?2",
            )
            .map_err(sql_error)?;
        let mut delete = connection
            .prepare_cached("DELETE FROM headwater_outbox WHERE seq BETWEEN ?1 AND ?2")
            .map_err(sql_error)?;
        for run in outcome.acked_runs() {
            let range = params![run.start().get() as i64, run.end().get() as i64];
            let (count, bytes): (i64, i64) = weigh
                .query_row(range, |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(sql_error)?;
            if count > 0 {
                delete.execute(range).map_err(sql_error)?;
                removed_count += count;
                removed_bytes += bytes;
            }
        }
    }
    {
        // SyncMarker::advance in one statement: a marker already past the acknowledged
        // seq (a late duplicate acknowledgement) is left as it is.
        let mut advance = connection
            .prepare_cached(
                "INSERT INTO headwater_markers (collection, key, last_acked_seq, acked_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (collection, key) DO UPDATE SET last_acked_seq = excluded.last_acked_seq, acked_at = excluded.acked_at
                 WHERE excluded.last_acked_seq >= headwater_markers.last_acked_seq",
            )
            .map_err(sql_error)?;
        let acked_at = time(now);
        for update in outcome.markers() {
            advance
                .execute(params![
                    update.collection,
                    update.key,
                    update.seq.get() as i64,
                    acked_at
                ])
                .map_err(sql_error)?;
        }
    }
    let holds = lease(connection)?.is_some_and(|lease| lease.is_held_by(owner));
    if holds {
        let mut retry = connection
            .prepare_cached(
                "UPDATE headwater_outbox SET attempts = ?2, next_attempt_at = ?3, last_error = ?4 WHERE seq = ?1",
            )
            .map_err(sql_error)?;
        for (seq, delivery) in outcome.retries() {
            retry
                .execute(params![
                    seq.get() as i64,
                    i64::from(delivery.attempts),
                    delivery.next_attempt_at.map(time),
                    delivery.last_error
                ])
                .map_err(sql_error)?;
        }
        let mut remove = connection
            .prepare_cached("DELETE FROM headwater_outbox WHERE seq = ?1 RETURNING weight")
            .map_err(sql_error)?;
        let mut insert = connection
            .prepare_cached(
                "INSERT OR REPLACE INTO headwater_dead (seq, content, reason, at, attempts) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(sql_error)?;
        for letter in outcome.dead() {
            let weight: Option<i64> = remove
                .query_row(params![letter.seq.get() as i64], |row| row.get(0))
                .optional()
                .map_err(sql_error)?;
            let Some(weight) = weight else { continue };
            removed_count += 1;
            removed_bytes += weight;
            let content = serde_json::to_string(&letter.content)
                .map_err(|e| StoreError::Unstorable(e.into()))?;
            insert
                .execute(params![
                    letter.seq.get() as i64,
                    content,
                    letter.reason,
                    time(letter.at),
                    i64::from(letter.attempts)
                ])
                .map_err(sql_error)?;
        }
    }
    adjust_pending(connection, -removed_count, -removed_bytes)?;
    Ok(holds)
}

pub(crate) fn release(connection: &Connection, owner: &str) -> Result<(), StoreError> {
    if lease(connection)?.is_some_and(|lease| lease.is_held_by(owner)) {
        connection
            .execute("DELETE FROM headwater_meta WHERE name = 'lease'", [])
            .map_err(sql_error)?;
    }
    Ok(())
}

fn dead_letter(row: &Row<'_>) -> rusqlite::Result<Result<DeadLetter, String>> {
    let seq = seq_column(0, row.get(0)?)?;
    let content: String = row.get(1)?;
    let reason: String = row.get(2)?;
    let at: String = row.get(3)?;
    let attempts: i64 = row.get(4)?;
    Ok((|| {
        let content: DeadContent = match serde_json::from_str(&content) {
            Ok(content) => content,
            // A dead letter that no longer decodes is still kept, as raw text.
            Err(_) => DeadContent::Unreadable { raw: content },
        };
        Ok(DeadLetter {
            seq,
            content,
            reason,
            at: parse_time(&at)?,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        })
    })())
}

pub(crate) fn dead_letters(
    connection: &Connection,
    after: Option<Seq>,
    limit: usize,
) -> Result<Vec<DeadLetter>, StoreError> {
    let mut query = connection
        .prepare_cached(
            "SELECT seq, content, reason, at, attempts FROM headwater_dead WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .map_err(sql_error)?;
    let rows = query
        .query_map(
            params![
                after.map_or(0, |seq| seq.get() as i64),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            dead_letter,
        )
        .map_err(sql_error)?;
    let mut letters = Vec::new();
    for row in rows {
        letters.push(row.map_err(sql_error)?.map_err(StoreError::backend)?);
    }
    Ok(letters)
}

pub(crate) fn requeue(connection: &Connection, seqs: &[Seq]) -> Result<usize, StoreError> {
    let mut requeued = 0;
    for seq in seqs {
        let letters = dead_letters(connection, Seq::new(seq.get().saturating_sub(1)), 1)?;
        let Some(letter) = letters.into_iter().find(|letter| letter.seq == *seq) else {
            continue;
        };
        let Some(entry) = letter.requeue() else {
            continue;
        };
        connection
            .execute(
                "DELETE FROM headwater_dead WHERE seq = ?1",
                params![seq.get() as i64],
            )
            .map_err(sql_error)?;
        let data = entry.change.data();
        let headers = headers_column(data)?;
        connection
            .execute(
                "INSERT INTO headwater_outbox (seq, id, captured_at, collection, key, op, value, headers, weight)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    seq.get() as i64,
                    entry.change.id().to_string(),
                    time(entry.change.captured_at()),
                    data.collection(),
                    data.key(),
                    data.kind().as_str(),
                    data.value_json(),
                    headers,
                    data.weight() as i64,
                ],
            )
            .map_err(sql_error)?;
        adjust_pending(connection, 1, data.weight() as i64)?;
        requeued += 1;
    }
    Ok(requeued)
}

pub(crate) fn discard(connection: &Connection, seqs: &[Seq]) -> Result<usize, StoreError> {
    let mut deleted = 0;
    for seq in seqs {
        deleted += connection
            .execute(
                "DELETE FROM headwater_dead WHERE seq = ?1",
                params![seq.get() as i64],
            )
            .map_err(sql_error)?;
    }
    Ok(deleted)
}

fn counter(connection: &Connection, name: &str) -> Result<u64, StoreError> {
    Ok(meta(connection, name)?
        .and_then(|text| text.parse::<i64>().ok())
        .map_or(0, |value| value.max(0) as u64))
}

pub(crate) fn stats(connection: &Connection) -> Result<OutboxStats, StoreError> {
    let oldest = connection
        .query_row(
            "SELECT seq, captured_at, attempts, next_attempt_at, last_error FROM headwater_outbox ORDER BY seq LIMIT 1",
            [],
            |row| {
                Ok((
                    seq_column(0, row.get(0)?)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, Option<String>>(4)?,
                ))
            },
        )
        .optional()
        .map_err(sql_error)?
        .map(|(seq, captured_at, attempts, next, last_error)| OldestPending {
            seq,
            captured_at: parse_time(&captured_at).unwrap_or_default(),
            delivery: Delivery {
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                next_attempt_at: next.as_deref().and_then(|at| parse_time(at).ok()),
                last_error,
            },
        });
    let newest_seq = connection
        .query_row("SELECT MAX(seq) FROM headwater_outbox", [], |row| {
            row.get::<_, Option<i64>>(0)?
                .map(|seq| seq_column(0, seq))
                .transpose()
        })
        .map_err(sql_error)?;
    let dead_lettered: i64 = connection
        .query_row("SELECT COUNT(*) FROM headwater_dead", [], |row| row.get(0))
        .map_err(sql_error)?;
    Ok(OutboxStats {
        pending: counter(connection, "pending_count")? as usize,
        pending_bytes: counter(connection, "pending_bytes")?,
        dead_lettered: dead_lettered as usize,
        oldest,
        newest_seq,
        lease: lease(connection)?,
    })
}

pub(crate) fn sync_marker(
    connection: &Connection,
    collection: &str,
    key: &str,
) -> Result<Option<SyncMarker>, StoreError> {
    connection
        .query_row(
            "SELECT last_acked_seq, acked_at FROM headwater_markers WHERE collection = ?1 AND key = ?2",
            params![collection, key],
            |row| Ok((seq_column(0, row.get(0)?)?, row.get::<_, String>(1)?)),
        )
        .optional()
        .map_err(sql_error)?
        .map(|(seq, at)| {
            Ok(SyncMarker {
                last_acked_seq: seq,
                acked_at: parse_time(&at).map_err(StoreError::backend)?,
            })
        })
        .transpose()
}

pub(crate) fn locate(connection: &Connection, seq: Seq) -> Result<Location, StoreError> {
    let pending: Option<i64> = connection
        .query_row(
            "SELECT seq FROM headwater_outbox WHERE seq = ?1",
            params![seq.get() as i64],
            |row| row.get(0),
        )
        .optional()
        .map_err(sql_error)?;
    if pending.is_some() {
        return Ok(Location::Pending);
    }
    let letters = dead_letters(connection, Seq::new(seq.get().saturating_sub(1)), 1)?;
    Ok(match letters.into_iter().find(|letter| letter.seq == seq) {
        Some(letter) => Location::DeadLettered(letter),
        None => Location::Gone,
    })
}
