//! [`SqliteQueue`]: the queue in one SQLite file (WAL, `synchronous = FULL`, group commit).

mod rows;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection as _, Row as _, SqlSafeStr as _, SqliteConnection};
use tokio::sync::{Mutex, mpsc, oneshot};

use self::rows::{MESSAGE_COLUMNS, message};
use self::writer::Op;
use crate::model::*;
use crate::{MAX_BATCH, MAX_PAGE, Queue, QueueError};

/// How long a statement waits for a lock held by another process (e.g. `smsgw token create`
/// while the server runs) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// WAL pages between the writer's own checkpoints (4 KiB each: the WAL grows to about 32 MiB).
const WAL_AUTOCHECKPOINT_PAGES: u32 = 8000;
/// How often the WAL is copied into the database file beside the writer (see [`checkpoints`]).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// The writer's page cache (SQLite's default is about 2 MiB).
const WRITER_CACHE_KIB: u32 = 2 * 1024;

fn migrator() -> Migrator {
    let step = |version, name: &str, sql: &'static str| {
        Migration::new(
            version,
            name.to_owned().into(),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
    };
    Migrator::with_migrations(vec![
        step(1, "init", include_str!("../../migrations/0001_init.sql")),
        step(
            2,
            "final_updated_index",
            include_str!("../../migrations/0002_final_updated_index.sql"),
        ),
    ])
}

/// The queue in one SQLite file. Open it with [`SqliteQueue::open`]; it creates the file and
/// applies the migrations.
#[derive(Clone)]
pub struct SqliteQueue {
    inner: Arc<Inner>,
}

struct Inner {
    read: SqlitePool,
    write: Arc<Mutex<SqliteConnection>>,
    ops: std::sync::Mutex<Option<mpsc::Sender<Op>>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for SqliteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteQueue").finish_non_exhaustive()
    }
}

/// Copies the WAL into the database file every [`CHECKPOINT_EVERY`] on a connection of its own,
/// while the writer goes on: a checkpoint does not block writers. Without it the writer's own
/// checkpoint (every [`WAL_AUTOCHECKPOINT_PAGES`]) copied thousands of pages inside a COMMIT and
/// stalled every accept for 20–40 ms; it now finds them copied and only restarts the WAL.
/// Ends when the queue is closed or dropped.
async fn checkpoints(mut conn: SqliteConnection, queue: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        match queue.upgrade() {
            Some(q) if q.ops.lock().expect("not poisoned").is_some() => {}
            _ => break,
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut conn)
            .await
        {
            tracing::debug!(error = %e, "background checkpoint");
        }
    }
    let _ = conn.close().await;
}

impl SqliteQueue {
    /// Opens (or creates) the database at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<SqliteQueue, QueueError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before we answer 202 (group commit keeps it fast).
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // The WAL is copied into the database beside the writer (`checkpoints`); the writer's own
        // checkpoint, after more pages than SQLite's default 1 000, then only finishes the copy
        // and lets the WAL start over, so that it stays bounded. The page cache stays near SQLite's
        // default: the hot writes touch the right edges of the indexes only, and the end of each
        // commit trims the cache at a cost that grows with its size (at 16 MiB, 5 % of the
        // service's CPU in `cargo xtask bench serve`).
        let write_opts = opts
            .clone()
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string())
            .pragma("cache_size", format!("-{WRITER_CACHE_KIB}"));
        let mut write = SqliteConnection::connect_with(&write_opts).await?;
        migrator()
            .run(&mut write)
            .await
            .map_err(|e| QueueError::Store(format!("migrating {}: {e}", path.display())))?;
        let checkpointer = SqliteConnection::connect_with(&opts).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await?;
        let write = Arc::new(Mutex::new(write));
        let (tx, rx) = mpsc::channel(8192);
        let writer = tokio::spawn(writer::run(write.clone(), rx));
        let inner = Arc::new(Inner {
            read,
            write,
            ops: std::sync::Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
        });
        tokio::spawn(checkpoints(checkpointer, Arc::downgrade(&inner)));
        Ok(SqliteQueue { inner })
    }

    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, QueueError>>) -> Op,
    ) -> Result<T, QueueError> {
        let tx = self
            .inner
            .ops
            .lock()
            .expect("not poisoned")
            .clone()
            .ok_or(QueueError::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(make(reply)).await.map_err(|_| QueueError::Closed)?;
        rx.await.map_err(|_| QueueError::Closed)?
    }

    /// The write connection, for the rare writes that need no batching.
    async fn write(&self) -> Result<tokio::sync::MutexGuard<'_, SqliteConnection>, QueueError> {
        if self.inner.ops.lock().expect("not poisoned").is_none() {
            return Err(QueueError::Closed);
        }
        Ok(self.inner.write.lock().await)
    }
}

#[async_trait::async_trait]
impl Queue for SqliteQueue {
    async fn enqueue_batch(&self, msgs: Vec<NewMessage>) -> Result<Vec<Enqueued>, QueueError> {
        if msgs.len() > MAX_BATCH {
            return Err(QueueError::Store(format!(
                "a batch holds at most {MAX_BATCH} messages"
            )));
        }
        if msgs.is_empty() {
            return Ok(Vec::new());
        }
        self.submit(|reply| Op::Insert(msgs, None, reply)).await
    }

    async fn enqueue_claimed(
        &self,
        msg: NewMessage,
        lease: Duration,
        handover: crate::Handover,
    ) -> Result<Enqueued, QueueError> {
        let claim = writer::Claim { lease, handover };
        let mut v = self
            .submit(|reply| Op::Insert(vec![msg], Some(claim), reply))
            .await?;
        v.pop()
            .ok_or_else(|| QueueError::Store("enqueue returned nothing".into()))
    }

    async fn get(&self, id: &str) -> Result<Option<MessageRecord>, QueueError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.inner.read)
        .await?;
        row.map(|r| message(&r).map(|(m, _)| m)).transpose()
    }

    async fn find_idempotent(&self, key: &str) -> Result<Option<MessageRecord>, QueueError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE idem_key = ?"
        )))
        .bind(key)
        .fetch_optional(&self.inner.read)
        .await?;
        row.map(|r| message(&r).map(|(m, _)| m)).transpose()
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, QueueError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE 1 = 1"
        ));
        if let Some(s) = query.status {
            qb.push(" AND status = ").push_bind(s.as_str());
        }
        if let Some(since) = query.since {
            qb.push(" AND created_at >= ").push_bind(since);
        }
        if let Some(before) = &query.before {
            qb.push(" AND seq < (SELECT seq FROM messages WHERE id = ")
                .push_bind(before.as_str())
                .push(")");
        }
        qb.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(limit as i64 + 1);
        let rows = qb.build().fetch_all(&self.inner.read).await?;
        let mut messages = Vec::with_capacity(rows.len());
        for r in rows.iter().take(limit) {
            messages.push(message(r)?.0);
        }
        let next = (rows.len() > limit)
            .then(|| messages.last().map(|m| m.id.clone()))
            .flatten();
        Ok(Page { messages, next })
    }

    async fn ready_targets(&self) -> Result<Vec<Target>, QueueError> {
        // A skip scan over the pending index, one seek per distinct target however long the
        // backlog is. Spelled out per kind with `INDEXED BY`: with a row-value comparison
        // `(kind, target) > (…)`, or left to the planner, SQLite walks the whole backlog (it
        // seeks on the kind alone, or sorts through the status index) — that was once the
        // hottest query of the service, run on every wake-up.
        let mut out = Vec::new();
        for kind in Target::KINDS {
            let names: Vec<String> = sqlx::query_scalar(
                "WITH RECURSIVE t(n) AS ( \
                   SELECT (SELECT target FROM messages INDEXED BY messages_pending \
                     WHERE status IN ('queued', 'sending') AND target_kind = ?1 \
                     ORDER BY target LIMIT 1) \
                   UNION ALL \
                   SELECT (SELECT target FROM messages INDEXED BY messages_pending \
                     WHERE status IN ('queued', 'sending') AND target_kind = ?1 AND target > t.n \
                     ORDER BY target LIMIT 1) \
                   FROM t WHERE t.n IS NOT NULL LIMIT 10000) \
                 SELECT n FROM t WHERE n IS NOT NULL",
            )
            .bind(kind)
            .fetch_all(&self.inner.read)
            .await?;
            out.extend(names.iter().filter_map(|n| Target::from_parts(kind, n)));
        }
        Ok(out)
    }

    async fn claim(
        &self,
        target: &Target,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, QueueError> {
        let target = target.clone();
        self.submit(|reply| Op::Claim {
            target,
            max,
            lease,
            reply,
        })
        .await
    }

    async fn complete(
        &self,
        id: &str,
        lease: u64,
        attempts: Vec<Attempt>,
        outcome: Outcome,
    ) -> Result<MessageRecord, QueueError> {
        let id = id.to_owned();
        self.submit(|reply| Op::Complete {
            id,
            lease,
            attempts,
            outcome,
            reply,
        })
        .await
    }

    async fn complete_many(&self, done: Vec<Completion>) -> Vec<Result<Completed, QueueError>> {
        if done.is_empty() {
            return Vec::new();
        }
        let n = done.len();
        let tx = self.inner.ops.lock().expect("not poisoned").clone();
        let (reply, rx) = oneshot::channel();
        // A closed queue drops the request, and with it `reply`: `rx` then fails at once.
        if let Some(tx) = tx {
            let _ = tx.send(Op::CompleteMany(done, reply)).await;
        } else {
            drop(reply);
        }
        rx.await
            .unwrap_or_else(|_| (0..n).map(|_| Err(QueueError::Closed)).collect())
    }

    async fn recover_in_flight(&self) -> Result<u64, QueueError> {
        let mut conn = self.write().await?;
        let r = sqlx::query(
            "UPDATE messages SET status = 'queued', possible_duplicate = 1, lease_until = NULL, \
             lease = lease + 1, updated_at = ? WHERE status = 'sending'",
        )
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
        Ok(r.rows_affected())
    }

    async fn record_receipt(&self, receipt: &Receipt) -> Result<Option<MessageRecord>, QueueError> {
        let status = if receipt.delivered {
            Status::Delivered
        } else {
            Status::Undelivered
        };
        let now = now_ms();
        let mut conn = self.write().await?;
        let mut tx = conn.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE messages SET status = ?, updated_at = ? WHERE seq = \
               (SELECT message_seq FROM provider_ids WHERE gateway = ? AND provider_id = ?) \
             AND status IN ('sent', 'delivered', 'undelivered') RETURNING {MESSAGE_COLUMNS}"
        )))
        .bind(status.as_str())
        .bind(now)
        .bind(receipt.gateway.as_str())
        .bind(receipt.provider_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let rec = message(&row)?.0;
        writer::queue_callback(&mut tx, &rec, now).await?;
        tx.commit().await?;
        Ok(Some(rec))
    }

    async fn due_callbacks(&self, max: usize) -> Result<Vec<CallbackJob>, QueueError> {
        let rows = sqlx::query(
            "SELECT id, message_id, url, status, tries, created_at FROM callbacks \
             WHERE not_before <= ? ORDER BY not_before LIMIT CAST(? AS INTEGER)",
        )
        .bind(now_ms())
        .bind(max as i64)
        .fetch_all(&self.inner.read)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let status: String = r.try_get("status")?;
            out.push(CallbackJob {
                id: r.try_get("id")?,
                message_id: r.try_get("message_id")?,
                url: r.try_get("url")?,
                status: Status::parse(&status)
                    .ok_or_else(|| QueueError::Store(format!("invalid status '{status}'")))?,
                tries: r.try_get::<i64, _>("tries")? as u32,
                created_at: r.try_get("created_at")?,
            });
        }
        Ok(out)
    }

    async fn callback_done(&self, id: i64) -> Result<(), QueueError> {
        let mut conn = self.write().await?;
        sqlx::query("DELETE FROM callbacks WHERE id = ?")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn callback_retry(&self, id: i64, not_before: Millis) -> Result<(), QueueError> {
        let mut conn = self.write().await?;
        sqlx::query("UPDATE callbacks SET tries = tries + 1, not_before = ? WHERE id = ?")
            .bind(not_before)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn prune(&self, texts_before: Millis, rows_before: Millis) -> Result<Pruned, QueueError> {
        let mut pruned = Pruned::default();
        // In slices, so that the writer is never held for long.
        loop {
            let mut conn = self.write().await?;
            let n = sqlx::query(
                "UPDATE messages SET text = NULL WHERE seq IN (SELECT seq FROM messages \
                 WHERE updated_at < ? AND text IS NOT NULL \
                 AND status NOT IN ('queued', 'sending') LIMIT 5000)",
            )
            .bind(texts_before)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            pruned.texts += n;
            if n < 5000 {
                break;
            }
        }
        loop {
            let mut conn = self.write().await?;
            let n = sqlx::query(
                "DELETE FROM messages WHERE seq IN (SELECT seq FROM messages \
                 WHERE updated_at < ? AND status NOT IN ('queued', 'sending') LIMIT 5000)",
            )
            .bind(rows_before)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            pruned.rows += n;
            if n < 5000 {
                break;
            }
        }
        Ok(pruned)
    }

    async fn stats(&self) -> Result<Stats, QueueError> {
        let rows = sqlx::query("SELECT status, count(*) FROM messages GROUP BY status")
            .fetch_all(&self.inner.read)
            .await?;
        let mut by_status = Vec::new();
        for r in rows {
            let s: String = r.try_get(0)?;
            if let Some(s) = Status::parse(&s) {
                by_status.push((s, r.try_get::<i64, _>(1)? as u64));
            }
        }
        let oldest_queued: Option<i64> = sqlx::query_scalar(
            "SELECT created_at FROM messages WHERE status = 'queued' ORDER BY seq LIMIT 1",
        )
        .fetch_optional(&self.inner.read)
        .await?;
        let callbacks: i64 = sqlx::query_scalar("SELECT count(*) FROM callbacks")
            .fetch_one(&self.inner.read)
            .await?;
        Ok(Stats {
            by_status,
            oldest_queued,
            callbacks_pending: callbacks as u64,
        })
    }

    async fn server_secret(&self) -> Result<Vec<u8>, QueueError> {
        let fresh: [u8; 32] = rand::random();
        let mut conn = self.write().await?;
        // INSERT OR IGNORE then read: concurrent first calls agree on one secret.
        sqlx::query("INSERT OR IGNORE INTO settings (key, value) VALUES ('callback_secret', ?)")
            .bind(hex_encode(&fresh))
            .execute(&mut *conn)
            .await?;
        let v: String =
            sqlx::query_scalar("SELECT value FROM settings WHERE key = 'callback_secret'")
                .fetch_one(&mut *conn)
                .await?;
        Ok(v.into_bytes())
    }

    async fn check_writable(&self) -> Result<(), QueueError> {
        let mut conn = self.write().await?;
        let tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        tx.rollback().await?;
        Ok(())
    }

    async fn list_defs(&self, kind: DefKind) -> Result<Vec<StoredDef>, QueueError> {
        let rows =
            sqlx::query("SELECT id, body, updated_at FROM definitions WHERE kind = ? ORDER BY id")
                .bind(kind.as_str())
                .fetch_all(&self.inner.read)
                .await?;
        rows.iter().map(|r| def_row(kind, r)).collect()
    }

    async fn get_def(&self, kind: DefKind, id: &str) -> Result<Option<StoredDef>, QueueError> {
        let row =
            sqlx::query("SELECT id, body, updated_at FROM definitions WHERE kind = ? AND id = ?")
                .bind(kind.as_str())
                .bind(id)
                .fetch_optional(&self.inner.read)
                .await?;
        row.map(|r| def_row(kind, &r)).transpose()
    }

    async fn put_def(&self, def: &StoredDef) -> Result<bool, QueueError> {
        let mut conn = self.write().await?;
        let mut tx = conn.begin().await?;
        let existed: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM definitions WHERE kind = ? AND id = ?")
                .bind(def.kind.as_str())
                .bind(def.id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT OR REPLACE INTO definitions (kind, id, body, updated_at) VALUES (?, ?, ?, ?)",
        )
        .bind(def.kind.as_str())
        .bind(def.id.as_str())
        .bind(def.body.to_string())
        .bind(def.updated_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(existed.is_none())
    }

    async fn delete_def(&self, kind: DefKind, id: &str) -> Result<bool, QueueError> {
        let mut conn = self.write().await?;
        let r = sqlx::query("DELETE FROM definitions WHERE kind = ? AND id = ?")
            .bind(kind.as_str())
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn create_token(&self, token: &TokenRecord) -> Result<(), QueueError> {
        let mut conn = self.write().await?;
        let r = sqlx::query(
            "INSERT INTO tokens (name, scope, hash, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(token.name.as_str())
        .bind(token.scope.as_str())
        .bind(token.hash.as_str())
        .bind(token.created_at)
        .execute(&mut *conn)
        .await?;
        if r.rows_affected() == 0 {
            return Err(QueueError::Exists(format!("token '{}'", token.name)));
        }
        Ok(())
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, QueueError> {
        let rows = sqlx::query("SELECT name, scope, hash, created_at FROM tokens ORDER BY name")
            .fetch_all(&self.inner.read)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let scope: String = r.try_get("scope")?;
            out.push(TokenRecord {
                name: r.try_get("name")?,
                scope: Scope::parse(&scope)
                    .ok_or_else(|| QueueError::Store(format!("invalid scope '{scope}'")))?,
                hash: r.try_get("hash")?,
                created_at: r.try_get("created_at")?,
            });
        }
        Ok(out)
    }

    async fn revoke_token(&self, name: &str) -> Result<bool, QueueError> {
        let mut conn = self.write().await?;
        let r = sqlx::query("DELETE FROM tokens WHERE name = ?")
            .bind(name)
            .execute(&mut *conn)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn close(&self) {
        let tx = self.inner.ops.lock().expect("not poisoned").take();
        drop(tx);
        if let Some(w) = self.inner.writer.lock().await.take() {
            let _ = w.await;
        }
        self.inner.read.close().await;
    }
}

fn def_row(kind: DefKind, r: &sqlx::sqlite::SqliteRow) -> Result<StoredDef, QueueError> {
    let body: String = r.try_get("body")?;
    Ok(StoredDef {
        kind,
        id: r.try_get("id")?,
        body: serde_json::from_str(&body)
            .map_err(|e| QueueError::Store(format!("a stored definition is not JSON: {e}")))?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
