//! The durable queue and store behind `smsgw serve`: the [`Queue`] trait and its SQLite
//! implementation, [`SqliteQueue`].
//!
//! A message's life: [`Queue::enqueue`] makes it durable (`queued`); a worker asks which targets
//! have work ([`Queue::ready_targets`]) and takes messages of one target under a lease
//! ([`Queue::claim`], status `sending`); it records what happened ([`Queue::complete`]): `sent`,
//! a final `failed`/`unknown`, or a retry. A worker that dies leaves its lease to expire; the
//! message is claimed again and marked [`MessageRecord::possible_duplicate`], because it may
//! already have reached the gateway. Claiming per target lets every gateway be fed on its own, so a
//! dead gateway delays only its own messages — and maps onto per-gateway subjects of a broker.
//!
//! Final statuses with a `callback_url` put a [`CallbackJob`] in an outbox in the same write,
//! so a callback is never lost and never blocks sending.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), smsgw_queue::QueueError> {
//! use smsgw_queue::{NewMessage, Outcome, Queue, SqliteQueue, Status, Target};
//! let dir = tempfile::tempdir().unwrap();
//! let q = SqliteQueue::open(&dir.path().join("smsgw.db")).await?;
//! let msg = NewMessage {
//!     to: "+491511234567".into(), text: "123456".into(),
//!     target: Target::Gateway("sms1".into()),
//!     metadata: None, callback_url: None, idempotency_key: None,
//! };
//! let id = q.enqueue(msg).await?.record.id;
//! let claimed = q.claim(&Target::Gateway("sms1".into()), 10, std::time::Duration::from_secs(30)).await?;
//! assert_eq!(claimed[0].record.status, Status::Sending);
//! let attempt = smsgw_queue::Attempt { gateway: "sms1".into(), kind: "sent".into(), error: None, ms: 3, at: smsgw_queue::now_ms() };
//! q.complete(&id, claimed[0].lease, vec![attempt], Outcome::Sent { message_ids: vec!["x1".into()] }).await?;
//! assert_eq!(q.get(&id).await?.unwrap().status, Status::Sent);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

use std::time::Duration;

pub mod model;
mod sqlite;

pub use model::{
    Attempt, CallbackJob, Claimed, Completed, Completion, DefKind, Enqueued, ListQuery,
    MessageRecord, Millis, NewMessage, Outcome, Page, Pruned, Receipt, Scope, Stats, Status,
    StoredDef, Target, TokenRecord, new_message_id, now_ms,
};
pub use sqlite::SqliteQueue;

/// The most messages one [`Queue::list`] page returns.
pub const MAX_PAGE: usize = 1000;

/// The most messages one [`Queue::enqueue_batch`] takes.
pub const MAX_BATCH: usize = 10_000;

/// Takes a message that [`Queue::enqueue_claimed`] stored already claimed: called once, as soon
/// as the message is durable. Dropped uncalled when the message was not stored claimed.
pub type Handover = Box<dyn FnOnce(Claimed) + Send + Sync>;

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The store failed (disk full, database locked too long, corrupt file …).
    #[error("queue store: {0}")]
    Store(String),
    /// The lease is no longer this worker's (it expired and another worker took the message).
    #[error("the lease on message {0} was lost")]
    LeaseLost(String),
    /// Something with this name already exists (a token name).
    #[error("{0} already exists")]
    Exists(String),
    /// The queue is shutting down.
    #[error("the queue is closed")]
    Closed,
}

impl From<sqlx::Error> for QueueError {
    fn from(e: sqlx::Error) -> Self {
        QueueError::Store(e.to_string())
    }
}

/// The queue and store of `smsgw serve`. Implemented on SQLite here ([`SqliteQueue`]) and on a
/// message broker elsewhere; the server and the workers use only this trait.
///
/// Every method that writes is durable when it returns `Ok`.
#[async_trait::async_trait]
pub trait Queue: Send + Sync + 'static {
    // --- messages -----------------------------------------------------------------------------

    /// Stores one message as `queued`. With an idempotency key that was used before, stores
    /// nothing and returns the first message (`created: false`).
    async fn enqueue(&self, msg: NewMessage) -> Result<Enqueued, QueueError> {
        let mut v = self.enqueue_batch(vec![msg]).await?;
        v.pop()
            .ok_or_else(|| QueueError::Store("enqueue returned nothing".into()))
    }

    /// Stores one message already claimed by the caller's worker (`sending` under a lease of
    /// `lease`), and gives it to `handover` as soon as it is durable, so that the worker sends
    /// it without claiming it from the store: one write fewer, and no wait for a claim, between
    /// the acceptance and the gateway. `handover` is called even when the caller stopped waiting
    /// for the answer, so a message stored claimed is never left to its lease.
    ///
    /// A message is stored claimed only when no older message of its target waits (`queued` and
    /// due): it never overtakes the queue. Returns the stored message, [`Status::Sending`] and
    /// `created` when it was stored claimed. Otherwise (a message waits, a used idempotency key,
    /// or a store that cannot do this: the default) it is stored as [`Queue::enqueue`] does, and
    /// `handover` is dropped uncalled.
    async fn enqueue_claimed(
        &self,
        msg: NewMessage,
        lease: Duration,
        handover: Handover,
    ) -> Result<Enqueued, QueueError> {
        let _ = lease;
        drop(handover);
        self.enqueue(msg).await
    }

    /// Stores many messages at once (at most [`MAX_BATCH`]), one answer per message in order.
    async fn enqueue_batch(&self, msgs: Vec<NewMessage>) -> Result<Vec<Enqueued>, QueueError>;

    /// The message with `id`.
    async fn get(&self, id: &str) -> Result<Option<MessageRecord>, QueueError>;

    /// The message created with idempotency key `key`.
    async fn find_idempotent(&self, key: &str) -> Result<Option<MessageRecord>, QueueError>;

    /// Pages through messages, newest first.
    async fn list(&self, query: &ListQuery) -> Result<Page, QueueError>;

    // --- workers ------------------------------------------------------------------------------

    /// The targets that have pending messages (`queued`, or `sending` under a lease that may
    /// expire). Cheap even with a long backlog; a target listed may have nothing due yet.
    async fn ready_targets(&self) -> Result<Vec<Target>, QueueError>;

    /// Takes up to `max` ready messages of `target`, oldest first, marking them `sending` under a
    /// lease of `lease`. Ready means `queued` and due, or `sending` with an expired lease (then
    /// the message is marked a possible duplicate: it may have been sent by the dead worker).
    async fn claim(
        &self,
        target: &Target,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, QueueError>;

    /// Records what happened to a claimed message: appends `attempts` and applies `outcome`.
    /// Fails with [`QueueError::LeaseLost`] when `lease` is no longer current. A final status
    /// with a callback URL queues a callback in the same write. Returns the updated message.
    async fn complete(
        &self,
        id: &str,
        lease: u64,
        attempts: Vec<Attempt>,
        outcome: Outcome,
    ) -> Result<MessageRecord, QueueError>;

    /// Records the outcomes of several claimed messages at once (as [`Queue::complete`] does for
    /// one), one answer per outcome in order: [`QueueError::LeaseLost`] for a lost lease. It
    /// answers less than `complete` (no message read back), so that a store can write many
    /// outcomes in one statement; the default calls `complete` for each.
    async fn complete_many(&self, done: Vec<Completion>) -> Vec<Result<Completed, QueueError>> {
        let mut out = Vec::with_capacity(done.len());
        for c in done {
            out.push(
                self.complete(&c.id, c.lease, c.attempts, c.outcome)
                    .await
                    .map(|rec| Completed {
                        callback_queued: rec.status.is_final() && rec.callback_url.is_some(),
                        id: rec.id,
                        status: rec.status,
                    }),
            );
        }
        out
    }

    /// Marks every `sending` message as ready again (at start-up of a single-node server: no
    /// other worker can hold a lease), and as a possible duplicate. Returns how many.
    async fn recover_in_flight(&self) -> Result<u64, QueueError>;

    /// Records a delivery receipt: a `sent` message becomes `delivered` or `undelivered`.
    /// Returns the message, or `None` when no message has that gateway id.
    async fn record_receipt(&self, receipt: &Receipt) -> Result<Option<MessageRecord>, QueueError>;

    // --- callbacks ----------------------------------------------------------------------------

    /// Up to `max` callbacks that are due.
    async fn due_callbacks(&self, max: usize) -> Result<Vec<CallbackJob>, QueueError>;

    /// A callback was delivered (or gave up): removes it from the outbox.
    async fn callback_done(&self, id: i64) -> Result<(), QueueError>;

    /// A callback failed; try again not before `not_before`.
    async fn callback_retry(&self, id: i64, not_before: Millis) -> Result<(), QueueError>;

    // --- retention and health -----------------------------------------------------------------

    /// Erases the texts of final messages last changed before `texts_before`, and deletes
    /// final messages last changed before `rows_before`.
    async fn prune(&self, texts_before: Millis, rows_before: Millis) -> Result<Pruned, QueueError>;

    /// Counts for metrics.
    async fn stats(&self) -> Result<Stats, QueueError>;

    /// A random secret of this store, created on first use and the same for every node sharing
    /// it (it signs status callbacks).
    async fn server_secret(&self) -> Result<Vec<u8>, QueueError>;

    /// Proves the store is writable (for `/readyz`).
    async fn check_writable(&self) -> Result<(), QueueError>;

    // --- gateway and route definitions --------------------------------------------------------

    /// Every stored definition of `kind`, by id.
    async fn list_defs(&self, kind: DefKind) -> Result<Vec<StoredDef>, QueueError>;

    /// One stored definition.
    async fn get_def(&self, kind: DefKind, id: &str) -> Result<Option<StoredDef>, QueueError>;

    /// Creates or replaces a definition. Returns true when it was created.
    async fn put_def(&self, def: &StoredDef) -> Result<bool, QueueError>;

    /// Deletes a definition. Returns true when it existed.
    async fn delete_def(&self, kind: DefKind, id: &str) -> Result<bool, QueueError>;

    // --- tokens -------------------------------------------------------------------------------

    /// Stores a token (its hash). [`QueueError::Exists`] when the name is taken.
    async fn create_token(&self, token: &TokenRecord) -> Result<(), QueueError>;

    /// Every token, by name.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, QueueError>;

    /// Deletes a token. Returns true when it existed.
    async fn revoke_token(&self, name: &str) -> Result<bool, QueueError>;

    /// Flushes and closes the store; later calls fail with [`QueueError::Closed`].
    async fn close(&self);
}
