//! The single writer: every hot write (accepts, claims, outcomes) goes through one task that takes
//! whatever requests are waiting and commits them in one transaction — one fsync for many
//! requests (group commit). SQLite allows one writer at a time anyway; this makes it cheap.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::{Connection as _, Row as _, SqliteConnection};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::rows::{MESSAGE_COLUMNS, message};
use crate::QueueError;
use crate::model::{
    Attempt, Claimed, Completed, Completion, Enqueued, MessageRecord, NewMessage, Outcome, Status,
    Target, new_message_id, now_ms,
};

/// The most requests one transaction takes.
const MAX_GROUP: usize = 2048;
/// Rows per INSERT or UPDATE statement: bounds the JSON document one statement reads.
const ROWS_PER_STATEMENT: usize = 10_000;

pub(crate) enum Op {
    Insert(
        Vec<NewMessage>,
        Option<Claim>,
        oneshot::Sender<Result<Vec<Enqueued>, QueueError>>,
    ),
    Claim {
        target: Target,
        max: usize,
        lease: Duration,
        reply: oneshot::Sender<Result<Vec<Claimed>, QueueError>>,
    },
    Complete {
        id: String,
        lease: u64,
        attempts: Vec<Attempt>,
        outcome: Outcome,
        reply: oneshot::Sender<Result<MessageRecord, QueueError>>,
    },
    CompleteMany(
        Vec<Completion>,
        oneshot::Sender<Vec<Result<Completed, QueueError>>>,
    ),
}

/// An insert of one message stored already claimed ([`crate::Queue::enqueue_claimed`]).
pub(crate) struct Claim {
    pub(crate) lease: Duration,
    pub(crate) handover: crate::Handover,
}

/// The lease number of a message stored claimed: the first (a claim adds one to 0).
const FIRST_LEASE: u64 = 1;

enum Reply {
    Insert(Result<Vec<Enqueued>, QueueError>),
    Claim(Result<Vec<Claimed>, QueueError>),
    Complete(Box<Result<MessageRecord, QueueError>>),
    CompleteMany(Vec<Result<Completed, QueueError>>),
}

/// Runs until every sender is dropped.
pub(crate) async fn run(conn: Arc<Mutex<SqliteConnection>>, mut rx: mpsc::Receiver<Op>) {
    while let Some(first) = rx.recv().await {
        let mut ops = vec![first];
        while ops.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let mut conn = conn.lock().await;
        let replies = match run_group(&mut conn, &ops).await {
            Ok(r) => r,
            Err(e) => {
                // One bad request must not fail its neighbours: run each on its own.
                tracing::warn!(error = %e, ops = ops.len(), "group commit failed; retrying one by one");
                let mut out = Vec::with_capacity(ops.len());
                for op in &ops {
                    out.push(match run_group(&mut conn, std::slice::from_ref(op)).await {
                        Ok(mut r) => r.pop().expect("one reply per op"),
                        Err(e) => error_reply(op, e),
                    });
                }
                out
            }
        };
        drop(conn);
        for (op, reply) in ops.into_iter().zip(replies) {
            // A caller that went away (client disconnected) no longer needs its answer; the
            // write is durable either way.
            match (op, reply) {
                (Op::Insert(_, claim, tx), Reply::Insert(r)) => {
                    // Handed over before the answer, and whether or not anyone waits for it:
                    // the worker must get every message stored claimed.
                    if let (Some(claim), Ok([e])) = (claim, r.as_deref())
                        && e.created
                        && e.record.status == Status::Sending
                    {
                        (claim.handover)(Claimed {
                            record: e.record.clone(),
                            lease: FIRST_LEASE,
                        });
                    }
                    drop(tx.send(r))
                }
                (Op::Claim { reply, .. }, Reply::Claim(r)) => drop(reply.send(r)),
                (Op::Complete { reply, .. }, Reply::Complete(r)) => drop(reply.send(*r)),
                (Op::CompleteMany(_, tx), Reply::CompleteMany(r)) => drop(tx.send(r)),
                _ => unreachable!("replies are made in op order"),
            }
        }
    }
}

fn error_reply(op: &Op, e: QueueError) -> Reply {
    match op {
        Op::Insert(..) => Reply::Insert(Err(e)),
        Op::Claim { .. } => Reply::Claim(Err(e)),
        Op::Complete { .. } => Reply::Complete(Box::new(Err(e))),
        Op::CompleteMany(items, _) => Reply::CompleteMany(
            items
                .iter()
                .map(|_| Err(QueueError::Store(e.to_string())))
                .collect(),
        ),
    }
}

/// One transaction for all `ops`. An `Err` means nothing was committed; per-op failures that
/// leave the database unchanged (a lost lease) are in the replies.
async fn run_group(conn: &mut SqliteConnection, ops: &[Op]) -> Result<Vec<Reply>, QueueError> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let now = now_ms();
    // Every accept of the group in one multi-row INSERT: one statement for many requests.
    let waiting = waiting_targets(&mut tx, ops, now).await?;
    let all: Vec<(&NewMessage, Option<i64>)> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Insert(msgs, claim, _) => Some(msgs.iter().map(|m| {
                let until = claim
                    .as_ref()
                    .filter(|_| !waiting.contains(&m.target))
                    .map(|c| now.saturating_add(c.lease.as_millis() as i64));
                (m, until)
            })),
            _ => None,
        })
        .flatten()
        .collect();
    let mut inserted = insert(&mut tx, &all, now).await?.into_iter();
    // Likewise every outcome of the group in one UPDATE.
    let outcomes: Vec<&Completion> = ops
        .iter()
        .filter_map(|op| match op {
            Op::CompleteMany(items, _) => Some(items.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    let mut completed = complete_many(&mut tx, &outcomes, now).await?.into_iter();
    let mut replies = Vec::with_capacity(ops.len());
    for op in ops {
        replies.push(match op {
            Op::Insert(msgs, ..) => Reply::Insert(Ok(inserted.by_ref().take(msgs.len()).collect())),
            Op::CompleteMany(items, _) => {
                Reply::CompleteMany(completed.by_ref().take(items.len()).collect())
            }
            Op::Claim {
                target, max, lease, ..
            } => Reply::Claim(Ok(claim(&mut tx, target, *max, *lease, now).await?)),
            Op::Complete {
                id,
                lease,
                attempts,
                outcome,
                ..
            } => Reply::Complete(Box::new(
                complete(&mut tx, id, *lease, attempts, outcome, now).await?,
            )),
        });
    }
    tx.commit().await?;
    Ok(replies)
}

/// The targets of this group's claimed inserts that have a message waiting: queued and due in the
/// store, or queued by this group. A message stored claimed would overtake it, so it is queued
/// instead and claimed in order. One look at the pending index per target.
async fn waiting_targets<'a>(
    conn: &mut SqliteConnection,
    ops: &'a [Op],
    now: i64,
) -> Result<std::collections::HashSet<&'a Target>, QueueError> {
    let mut waiting = std::collections::HashSet::new();
    let mut claimed = std::collections::HashSet::new();
    for op in ops {
        if let Op::Insert(msgs, claim, _) = op {
            let set = if claim.is_some() {
                &mut claimed
            } else {
                &mut waiting
            };
            set.extend(msgs.iter().map(|m| &m.target));
        }
    }
    for t in claimed {
        if waiting.contains(t) {
            continue;
        }
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM messages WHERE target_kind = ?1 AND target = ?2 \
               AND status IN ('queued', 'sending') AND status = 'queued' AND not_before <= ?3 \
             LIMIT 1",
        )
        .bind(t.kind())
        .bind(t.name())
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        if due.is_some() {
            waiting.insert(t);
        }
    }
    Ok(waiting)
}

/// One new message as the INSERT reads it from a JSON array: one prepared statement, whatever
/// the number of rows. The statements read such arrays with `jsonb_each`, not `json_each`:
/// `json_each` hands each element over as JSON text, which every `->>` then parses again
/// (a third of the INSERT's cost, `cargo run -p smsgw-queue --example queue_ops`).
#[derive(Serialize)]
struct InsertRow<'a> {
    id: &'a str,
    to: &'a str,
    text: &'a str,
    k: &'static str,
    t: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    m: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cb: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    /// Stored claimed: the end of its lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    lu: Option<i64>,
}

fn to_json<T: Serialize>(v: &T) -> Result<String, QueueError> {
    serde_json::to_string(v).map_err(|e| QueueError::Store(e.to_string()))
}

/// Inserts `msgs`, each `queued`, or `sending` under a lease until the time given with it.
async fn insert(
    conn: &mut SqliteConnection,
    msgs: &[(&NewMessage, Option<i64>)],
    now: i64,
) -> Result<Vec<Enqueued>, QueueError> {
    if msgs.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = msgs.iter().map(|_| new_message_id()).collect();
    // Which rows went in. Without idempotency keys all of them did; the rows are not returned
    // one by one (each returned row costs a hand-over between threads), only counted.
    let mut conflicted = std::collections::HashSet::new();
    for (chunk, chunk_ids) in msgs
        .chunks(ROWS_PER_STATEMENT)
        .zip(ids.chunks(ROWS_PER_STATEMENT))
    {
        let rows: Vec<InsertRow<'_>> = chunk
            .iter()
            .zip(chunk_ids)
            .map(|((m, until), id)| InsertRow {
                lu: *until,
                id,
                to: &m.to,
                text: &m.text,
                k: m.target.kind(),
                t: m.target.name(),
                m: m.metadata.as_ref().map(|v| v.to_string()),
                cb: m.callback_url.as_deref(),
                key: m.idempotency_key.as_deref(),
            })
            .collect();
        // `WHERE true` tells SQLite's parser that ON CONFLICT is the upsert clause.
        let done = sqlx::query(
            "INSERT INTO messages (id, to_number, text, target_kind, target, status, metadata, \
               callback_url, idem_key, lease, lease_until, created_at, updated_at) \
             SELECT value ->> 'id', value ->> 'to', value ->> 'text', value ->> 'k', value ->> 't', \
               iif(value ->> 'lu' IS NULL, 'queued', 'sending'), value ->> 'm', value ->> 'cb', \
               value ->> 'key', iif(value ->> 'lu' IS NULL, 0, ?3), value ->> 'lu', ?2, ?2 \
             FROM jsonb_each(?1) WHERE true \
             ON CONFLICT (idem_key) DO NOTHING",
        )
        .bind(to_json(&rows)?)
        .bind(now)
        .bind(FIRST_LEASE as i64)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() < chunk.len() as u64 {
            // Some idempotency keys were taken: the ids of this chunk that are not stored.
            let stored: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM messages WHERE id IN (SELECT value FROM jsonb_each(?1))",
            )
            .bind(to_json(&chunk_ids)?)
            .fetch_all(&mut *conn)
            .await?;
            let stored: std::collections::HashSet<String> = stored.into_iter().collect();
            conflicted.extend(chunk_ids.iter().filter(|id| !stored.contains(*id)).cloned());
        }
    }
    let mut out = Vec::with_capacity(msgs.len());
    for ((m, until), id) in msgs.iter().zip(ids) {
        if !conflicted.contains(&id) {
            // The row is exactly what was sent: no need to read it back.
            out.push(Enqueued {
                record: MessageRecord {
                    id,
                    to: m.to.clone(),
                    text: Some(m.text.clone()),
                    target: m.target.clone(),
                    status: if until.is_some() {
                        Status::Sending
                    } else {
                        Status::Queued
                    },
                    attempts: Vec::new(),
                    message_ids: Vec::new(),
                    metadata: m.metadata.clone(),
                    callback_url: m.callback_url.clone(),
                    idempotency_key: m.idempotency_key.clone(),
                    possible_duplicate: false,
                    created_at: now,
                    updated_at: now,
                },
                created: true,
            });
            continue;
        }
        // Not inserted: its idempotency key was taken (earlier, or earlier in this batch).
        let key = m.idempotency_key.as_deref().ok_or_else(|| {
            QueueError::Store("a message without idempotency key was not inserted".into())
        })?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE idem_key = ?"
        )))
        .bind(key)
        .fetch_one(&mut *conn)
        .await?;
        out.push(Enqueued {
            record: message(&row)?.0,
            created: false,
        });
    }
    Ok(out)
}

async fn claim(
    conn: &mut SqliteConnection,
    target: &Target,
    max: usize,
    lease: Duration,
    now: i64,
) -> Result<Vec<Claimed>, QueueError> {
    let until = now.saturating_add(lease.as_millis() as i64);
    // SET sees the old row: a message still `sending` here lost its worker, so it may have
    // been sent already. The LIMIT is a CAST, not a bare `?5`: SQLite plans with the value of
    // a bare LIMIT parameter and so prepares the statement again at every new binding.
    let sql = format!(
        "UPDATE messages SET status = 'sending', lease = lease + 1, lease_until = ?1, \
           possible_duplicate = possible_duplicate OR status = 'sending', updated_at = ?2 \
         WHERE seq IN (SELECT seq FROM messages \
           WHERE target_kind = ?3 AND target = ?4 AND status IN ('queued', 'sending') \
             AND ((status = 'queued' AND not_before <= ?2) OR (status = 'sending' AND lease_until < ?2)) \
           ORDER BY seq LIMIT CAST(?5 AS INTEGER)) \
         RETURNING {MESSAGE_COLUMNS}"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(until)
        .bind(now)
        .bind(target.kind())
        .bind(target.name())
        .bind(max as i64)
        .fetch_all(&mut *conn)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let (record, lease) = message(row)?;
        out.push(Claimed { record, lease });
    }
    out.sort_by(|a, b| a.record.id.cmp(&b.record.id));
    Ok(out)
}

async fn complete(
    conn: &mut SqliteConnection,
    id: &str,
    lease: u64,
    attempts: &[Attempt],
    outcome: &Outcome,
    now: i64,
) -> Result<Result<MessageRecord, QueueError>, QueueError> {
    let (status, not_before, ids) = outcome_parts(outcome);
    // Append the attempts in SQL, so that no read of the old list is needed.
    let mut append = String::from("attempts");
    if !attempts.is_empty() {
        append = String::from("json_insert(attempts");
        for _ in attempts {
            append.push_str(", '$[#]', json(?)");
        }
        append.push(')');
    }
    let sql = format!(
        "UPDATE messages SET status = ?, not_before = ?, lease_until = NULL, updated_at = ?, \
           message_ids = COALESCE(?, message_ids), attempts = {append} \
         WHERE id = ? AND lease = ? AND status = 'sending' RETURNING {MESSAGE_COLUMNS}, seq"
    );
    let ids_json = ids.map(|v| serde_json::to_string(v).unwrap_or_else(|_| "[]".into()));
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(status.as_str())
        .bind(not_before)
        .bind(now)
        .bind(ids_json);
    for a in attempts {
        q = q.bind(serde_json::to_string(a).map_err(|e| QueueError::Store(e.to_string()))?);
    }
    let row = q
        .bind(id)
        .bind(lease as i64)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(Err(QueueError::LeaseLost(id.to_owned())));
    };
    let (rec, _) = message(&row)?;
    let seq: i64 = sqlx::Row::try_get(&row, "seq")?;
    if let (Some(ids), Some(gw)) = (ids, attempts.last().map(|a| a.gateway.as_str())) {
        for pid in ids {
            sqlx::query(
                "INSERT OR REPLACE INTO provider_ids (gateway, provider_id, message_seq) \
                 VALUES (?, ?, ?)",
            )
            .bind(gw)
            .bind(pid.as_str())
            .bind(seq)
            .execute(&mut *conn)
            .await?;
        }
    }
    if status.is_final() {
        queue_callback(conn, &rec, now).await?;
    }
    Ok(Ok(rec))
}

/// One outcome as the UPDATE reads it from a JSON array.
#[derive(Serialize)]
struct OutcomeRow<'a> {
    id: &'a str,
    lease: i64,
    status: &'static str,
    not_before: i64,
    /// The gateway's ids, as the JSON text stored in `message_ids`.
    #[serde(skip_serializing_if = "Option::is_none")]
    ids: Option<String>,
    /// The attempts to append, as a JSON array text.
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<String>,
}

/// Applies many outcomes with one UPDATE (and at most one INSERT each for gateway ids and
/// callbacks), instead of a statement and a read-back per message.
async fn complete_many(
    conn: &mut SqliteConnection,
    items: &[&Completion],
    now: i64,
) -> Result<Vec<Result<Completed, QueueError>>, QueueError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    // id -> (seq, status, callback_url) of every row whose lease still held.
    let mut updated = std::collections::HashMap::with_capacity(items.len());
    for chunk in items.chunks(ROWS_PER_STATEMENT) {
        let mut rows = Vec::with_capacity(chunk.len());
        for c in chunk {
            let (status, not_before, ids) = outcome_parts(&c.outcome);
            rows.push(OutcomeRow {
                id: &c.id,
                lease: c.lease as i64,
                status: status.as_str(),
                not_before,
                ids: ids.map(to_json).transpose()?,
                attempts: (!c.attempts.is_empty())
                    .then(|| to_json(&c.attempts))
                    .transpose()?,
            });
        }
        // Attempts are appended by splicing two JSON array texts (both written here, compact),
        // so that the old list is neither read nor parsed. `+status` keeps the planner on the id
        // index (one lookup per outcome) instead of scanning every `sending` row.
        let got = sqlx::query(
            "UPDATE messages SET status = v.value ->> 'status', \
               not_before = v.value ->> 'not_before', lease_until = NULL, updated_at = ?2, \
               message_ids = COALESCE(v.value ->> 'ids', message_ids), \
               attempts = CASE WHEN v.value ->> 'attempts' IS NULL THEN attempts \
                 WHEN attempts = '[]' THEN v.value ->> 'attempts' \
                 ELSE substr(attempts, 1, length(attempts) - 1) || ',' \
                   || substr(v.value ->> 'attempts', 2) END \
             FROM jsonb_each(?1) AS v \
             WHERE messages.id = v.value ->> 'id' AND messages.lease = v.value ->> 'lease' \
               AND +messages.status = 'sending' \
             RETURNING messages.id, messages.seq, messages.status, messages.callback_url",
        )
        .bind(to_json(&rows)?)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
        for row in got {
            let id: String = row.try_get(0)?;
            let seq: i64 = row.try_get(1)?;
            let status: String = row.try_get(2)?;
            let status = Status::parse(&status)
                .ok_or_else(|| QueueError::Store(format!("invalid status '{status}'")))?;
            let url: Option<String> = row.try_get(3)?;
            updated.insert(id, (seq, status, url));
        }
    }
    // Gateway ids (for delivery receipts) and callbacks of the rows that were updated.
    let mut pids = Vec::new();
    let mut callbacks = Vec::new();
    let mut out = Vec::with_capacity(items.len());
    for c in items {
        // Taken out, so that a second outcome for the same message in this group is refused.
        let Some((seq, status, url)) = updated.remove(&c.id) else {
            out.push(Err(QueueError::LeaseLost(c.id.clone())));
            continue;
        };
        if let (Outcome::Sent { message_ids }, Some(a)) = (&c.outcome, c.attempts.last()) {
            for pid in message_ids {
                pids.push(serde_json::json!([a.gateway, pid, seq]));
            }
        }
        let callback_queued = status.is_final() && url.is_some();
        if let Some(url) = url.filter(|_| callback_queued) {
            callbacks.push(serde_json::json!([c.id, url, status.as_str()]));
        }
        out.push(Ok(Completed {
            id: c.id.clone(),
            status,
            callback_queued,
        }));
    }
    if !pids.is_empty() {
        sqlx::query(
            "INSERT OR REPLACE INTO provider_ids (gateway, provider_id, message_seq) \
             SELECT value ->> 0, value ->> 1, value ->> 2 FROM jsonb_each(?)",
        )
        .bind(to_json(&pids)?)
        .execute(&mut *conn)
        .await?;
    }
    if !callbacks.is_empty() {
        sqlx::query(
            "INSERT INTO callbacks (message_id, url, status, not_before, created_at) \
             SELECT value ->> 0, value ->> 1, value ->> 2, ?2, ?2 FROM jsonb_each(?1)",
        )
        .bind(to_json(&callbacks)?)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(out)
}

fn outcome_parts(outcome: &Outcome) -> (Status, i64, Option<&Vec<String>>) {
    match outcome {
        Outcome::Sent { message_ids } => (Status::Sent, 0, Some(message_ids)),
        Outcome::Final { status } => (*status, 0, None),
        Outcome::Retry { not_before } => (Status::Queued, *not_before, None),
    }
}

/// Puts a callback for `rec`'s current status in the outbox, if it has a callback URL.
pub(crate) async fn queue_callback(
    conn: &mut SqliteConnection,
    rec: &MessageRecord,
    now: i64,
) -> Result<(), QueueError> {
    if let Some(url) = &rec.callback_url {
        sqlx::query(
            "INSERT INTO callbacks (message_id, url, status, not_before, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(rec.id.as_str())
        .bind(url.as_str())
        .bind(rec.status.as_str())
        .bind(now)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
