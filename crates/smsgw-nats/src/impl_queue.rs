//! [`Queue`] for [`NatsQueue`]: each method delegates to the module that owns its concept.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use smsgw_queue::{
    Attempt, CallbackJob, Claimed, Completed, Completion, DefKind, Enqueued, ListQuery, MAX_BATCH,
    MessageRecord, Millis, NewMessage, Outcome, Page, Pruned, Queue, QueueError, Receipt, Stats,
    StoredDef, Target, TokenRecord,
};

use crate::NatsQueue;

/// Publishes in flight at once during a batch: enough to hide the round trips, few enough to
/// keep the broker's per-connection buffers small.
const BATCH_PIPELINE: usize = 256;

#[async_trait::async_trait]
impl Queue for NatsQueue {
    async fn enqueue_batch(&self, msgs: Vec<NewMessage>) -> Result<Vec<Enqueued>, QueueError> {
        if msgs.len() > MAX_BATCH {
            return Err(QueueError::Store(format!(
                "a batch holds at most {MAX_BATCH} messages, not {}",
                msgs.len()
            )));
        }
        futures::stream::iter(msgs)
            .map(|m| self.enqueue_one(m))
            .buffered(BATCH_PIPELINE)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    async fn get(&self, id: &str) -> Result<Option<MessageRecord>, QueueError> {
        self.get_one(id).await
    }

    async fn find_idempotent(&self, key: &str) -> Result<Option<MessageRecord>, QueueError> {
        self.find_key(key).await
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, QueueError> {
        self.list_page(query).await
    }

    async fn ready_targets(&self) -> Result<Vec<Target>, QueueError> {
        Ok(self.targets().await?.into_iter().map(|(t, _)| t).collect())
    }

    /// `lease` is not used: the broker's ack wait ([`NatsOptions::ack_wait`](crate::NatsOptions))
    /// is the lease, extended while this process holds the message.
    async fn claim(
        &self,
        target: &Target,
        max: usize,
        _lease: Duration,
    ) -> Result<Vec<Claimed>, QueueError> {
        self.claim_batch(target, max).await
    }

    async fn complete(
        &self,
        id: &str,
        lease: u64,
        attempts: Vec<Attempt>,
        outcome: Outcome,
    ) -> Result<MessageRecord, QueueError> {
        self.complete_one(id, lease, attempts, outcome).await
    }

    /// Each outcome is its own compare-and-swap on its record (a key-value bucket has no
    /// multi-key write); they run concurrently, answers in order.
    async fn complete_many(&self, done: Vec<Completion>) -> Vec<Result<Completed, QueueError>> {
        futures::stream::iter(done)
            .map(|c| async move {
                let rec = self
                    .complete_one(&c.id, c.lease, c.attempts, c.outcome)
                    .await?;
                Ok(Completed {
                    callback_queued: rec.status.is_final() && rec.callback_url.is_some(),
                    id: rec.id,
                    status: rec.status,
                })
            })
            .buffered(BATCH_PIPELINE)
            .collect()
            .await
    }

    /// Nothing to do: the broker gives a dead worker's messages to the others by itself, and a
    /// node starting must not take messages that live workers hold.
    async fn recover_in_flight(&self) -> Result<u64, QueueError> {
        Ok(0)
    }

    async fn record_receipt(&self, receipt: &Receipt) -> Result<Option<MessageRecord>, QueueError> {
        self.receipt(receipt).await
    }

    async fn due_callbacks(&self, max: usize) -> Result<Vec<CallbackJob>, QueueError> {
        self.due_callbacks_nats(max).await
    }

    async fn callback_done(&self, id: i64) -> Result<(), QueueError> {
        self.callback_settle(id, None).await
    }

    async fn callback_retry(&self, id: i64, not_before: Millis) -> Result<(), QueueError> {
        self.callback_settle(id, Some(not_before)).await
    }

    async fn prune(&self, texts_before: Millis, rows_before: Millis) -> Result<Pruned, QueueError> {
        self.prune_old(texts_before, rows_before).await
    }

    async fn stats(&self) -> Result<Stats, QueueError> {
        self.counts().await
    }

    /// Created once by whichever node asks first (an atomic create in a bucket), then the same
    /// for every node.
    async fn server_secret(&self) -> Result<Vec<u8>, QueueError> {
        self.shared_secret().await
    }

    async fn check_writable(&self) -> Result<(), QueueError> {
        self.writable().await
    }

    async fn list_defs(&self, kind: DefKind) -> Result<Vec<StoredDef>, QueueError> {
        self.defs(kind).await
    }

    async fn get_def(&self, kind: DefKind, id: &str) -> Result<Option<StoredDef>, QueueError> {
        self.def(kind, id).await
    }

    async fn put_def(&self, def: &StoredDef) -> Result<bool, QueueError> {
        self.put_definition(def).await
    }

    async fn delete_def(&self, kind: DefKind, id: &str) -> Result<bool, QueueError> {
        self.delete_definition(kind, id).await
    }

    async fn create_token(&self, token: &TokenRecord) -> Result<(), QueueError> {
        self.new_token(token).await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, QueueError> {
        self.all_tokens().await
    }

    async fn revoke_token(&self, name: &str) -> Result<bool, QueueError> {
        self.drop_token(name).await
    }

    async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.release_all().await;
        if let Err(e) = self.js.client().flush().await {
            tracing::debug!("flushing at close: {e}");
        }
    }
}
