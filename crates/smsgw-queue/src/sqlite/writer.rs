//! The single writer: every hot write (accepts, claims, outcomes) goes through one task that takes
//! whatever requests are waiting and commits them in one transaction — one fsync for many
//! requests (group commit). SQLite allows one writer at a time anyway; this makes it cheap.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection as _, QueryBuilder, Sqlite, SqliteConnection};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::rows::{MESSAGE_COLUMNS, message};
use crate::QueueError;
use crate::model::{
    Attempt, Claimed, Enqueued, MessageRecord, NewMessage, Outcome, Status, Target, new_message_id,
    now_ms,
};

/// The most requests one transaction takes.
const MAX_GROUP: usize = 2048;
/// Rows per multi-row INSERT (11 bound values each, under SQLite's 32 766).
const INSERT_CHUNK: usize = 2000;

pub(crate) enum Op {
    Insert(
        Vec<NewMessage>,
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
}

enum Reply {
    Insert(Result<Vec<Enqueued>, QueueError>),
    Claim(Result<Vec<Claimed>, QueueError>),
    Complete(Box<Result<MessageRecord, QueueError>>),
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
                (Op::Insert(_, tx), Reply::Insert(r)) => drop(tx.send(r)),
                (Op::Claim { reply, .. }, Reply::Claim(r)) => drop(reply.send(r)),
                (Op::Complete { reply, .. }, Reply::Complete(r)) => drop(reply.send(*r)),
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
    }
}

/// One transaction for all `ops`. An `Err` means nothing was committed; per-op failures that
/// leave the database unchanged (a lost lease) are in the replies.
async fn run_group(conn: &mut SqliteConnection, ops: &[Op]) -> Result<Vec<Reply>, QueueError> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let now = now_ms();
    // Every accept of the group in one multi-row INSERT: one statement for many requests.
    let all: Vec<&NewMessage> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Insert(msgs, _) => Some(msgs.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    let mut inserted = insert(&mut tx, &all, now).await?.into_iter();
    let mut replies = Vec::with_capacity(ops.len());
    for op in ops {
        replies.push(match op {
            Op::Insert(msgs, _) => Reply::Insert(Ok(inserted.by_ref().take(msgs.len()).collect())),
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

async fn insert(
    conn: &mut SqliteConnection,
    msgs: &[&NewMessage],
    now: i64,
) -> Result<Vec<Enqueued>, QueueError> {
    if msgs.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = msgs.iter().map(|_| new_message_id()).collect();
    let mut inserted = std::collections::HashMap::with_capacity(msgs.len());
    for (chunk, chunk_ids) in msgs.chunks(INSERT_CHUNK).zip(ids.chunks(INSERT_CHUNK)) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO messages (id, to_number, text, target_kind, target, status, metadata, \
             callback_url, idem_key, created_at, updated_at) ",
        );
        qb.push_values(chunk.iter().zip(chunk_ids), |mut b, (m, id)| {
            b.push_bind(id.as_str())
                .push_bind(m.to.as_str())
                .push_bind(m.text.as_str())
                .push_bind(m.target.kind())
                .push_bind(m.target.name())
                .push_bind(Status::Queued.as_str())
                .push_bind(m.metadata.as_ref().map(|v| v.to_string()))
                .push_bind(m.callback_url.as_deref())
                .push_bind(m.idempotency_key.as_deref())
                .push_bind(now)
                .push_bind(now);
        });
        qb.push(" ON CONFLICT (idem_key) DO NOTHING RETURNING ");
        qb.push(MESSAGE_COLUMNS);
        for row in qb.build().fetch_all(&mut *conn).await? {
            let (rec, _) = message(&row)?;
            inserted.insert(rec.id.clone(), rec);
        }
    }
    let mut out = Vec::with_capacity(msgs.len());
    for (m, id) in msgs.iter().zip(ids) {
        if let Some(rec) = inserted.remove(&id) {
            out.push(Enqueued {
                record: rec,
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
    // been sent already.
    let sql = format!(
        "UPDATE messages SET status = 'sending', lease = lease + 1, lease_until = ?1, \
           possible_duplicate = possible_duplicate OR status = 'sending', updated_at = ?2 \
         WHERE seq IN (SELECT seq FROM messages \
           WHERE target_kind = ?3 AND target = ?4 AND status IN ('queued', 'sending') \
             AND ((status = 'queued' AND not_before <= ?2) OR (status = 'sending' AND lease_until < ?2)) \
           ORDER BY seq LIMIT ?5) \
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
    let (status, not_before, ids) = match outcome {
        Outcome::Sent { message_ids } => (Status::Sent, 0, Some(message_ids)),
        Outcome::Final { status } => (*status, 0, None),
        Outcome::Retry { not_before } => (Status::Queued, *not_before, None),
    };
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
