//! The message path: enqueue (publish, then record), claim (fetch from the target's consumer and
//! read the record; after a delivery that ended without an outcome, mark it `sending` under a
//! new lease), complete (record, then ack / nak with delay / term), the heartbeat that keeps a
//! live worker's messages its own, and dead letters.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::PullConsumer, consumer::pull};
use futures::StreamExt;
use smsgw_queue::{
    Attempt, Claimed, Enqueued, MessageRecord, Millis, NewMessage, Outcome, QueueError, Status,
    Target, new_message_id, now_ms,
};

use crate::records::{self, Cas, Stored};
use crate::{NatsQueue, names, store_err};

/// A message a worker of this process holds: the broker's handle (to ack), the lease, and the
/// record as this worker wrote it (so recording the outcome needs no read when nobody else
/// wrote since).
pub(crate) struct Held {
    pub msg: jetstream::Message,
    pub lease: u64,
    pub stored: Stored,
    pub revision: u64,
}

/// The most in-flight messages one target's consumer gives out across all workers.
const MAX_ACK_PENDING: i64 = 20_000;

/// Deliveries of one fetch turned into claims at once.
const TAKE_PIPELINE: usize = 32;

/// Extends the broker's ack wait of every held message, so that only a dead or hung worker
/// loses its messages, however long a gateway takes.
pub(crate) async fn heartbeat(
    inflight: Arc<std::sync::Mutex<HashMap<String, Held>>>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    loop {
        tick.tick().await;
        let held: Vec<jetstream::Message> = {
            let map = inflight.lock().unwrap_or_else(|e| e.into_inner());
            map.values().map(|h| h.msg.clone()).collect()
        };
        for m in held {
            if let Err(e) = m.ack_with(AckKind::Progress).await {
                tracing::debug!("extending a lease: {e}");
            }
        }
    }
}

impl NatsQueue {
    fn check_open(&self) -> Result<(), QueueError> {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            Err(QueueError::Closed)
        } else {
            Ok(())
        }
    }

    pub(crate) async fn enqueue_one(&self, msg: NewMessage) -> Result<Enqueued, QueueError> {
        self.check_open()?;
        let now = now_ms();
        let mut record = MessageRecord {
            id: new_message_id(),
            to: msg.to,
            text: Some(msg.text),
            target: msg.target,
            status: Status::Queued,
            attempts: Vec::new(),
            message_ids: Vec::new(),
            metadata: msg.metadata,
            callback_url: msg.callback_url,
            idempotency_key: msg.idempotency_key,
            possible_duplicate: false,
            created_at: now,
            updated_at: now,
        };
        if let Some(key) = &record.idempotency_key {
            let k = names::hashed_key(&[key]);
            // Claiming the key is atomic across nodes: exactly one node's id wins.
            match self.idempotency.create(&k, record.id.clone().into()).await {
                Ok(_) => {}
                Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {
                    let first = self.idempotency.get(&k).await.map_err(store_err)?;
                    let first = first
                        .and_then(|b| String::from_utf8(b.to_vec()).ok())
                        .ok_or_else(|| QueueError::Store("idempotency entry vanished".into()))?;
                    if let Some((stored, _)) = records::load(&self.messages, &first).await? {
                        return Ok(Enqueued {
                            record: stored.record,
                            created: false,
                        });
                    }
                    // The node that took the key stopped (or is still) between taking it and
                    // recording the message: publish this copy under the same id. The stream's
                    // dedup window drops it if the first publish happened after all.
                    record.id = first;
                    return self.publish_and_record(record, false).await;
                }
                Err(e) => return Err(store_err(e)),
            }
        }
        self.publish_and_record(record, true).await
    }

    async fn publish_and_record(
        &self,
        record: MessageRecord,
        created: bool,
    ) -> Result<Enqueued, QueueError> {
        // Publish first: a message is accepted once it is in the stream. A worker that takes
        // it before the record below exists builds the record from the payload.
        let payload = serde_json::to_vec(&record)
            .map_err(|e| QueueError::Store(format!("encoding a message: {e}")))?;
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(&record.id);
        self.js
            .send_publish(names::msg_subject(&record.target), publish)
            .await
            .map_err(store_err)?
            .await
            .map_err(store_err)?;
        let stored = Stored {
            record,
            lease: 0,
            orphaned: 0,
            settled: 0,
        };
        match records::create(&self.messages, &stored).await? {
            Cas::Done(_) => {}
            // A worker was faster: its record is newer than ours.
            Cas::Conflict => {}
        }
        Ok(Enqueued {
            record: stored.record,
            created,
        })
    }

    pub(crate) async fn consumer(&self, target: &Target) -> Result<PullConsumer, QueueError> {
        let mut map = self.consumers.lock().await;
        if let Some(c) = map.get(target) {
            return Ok(c.clone());
        }
        let stream = self
            .js
            .get_stream_no_info(names::MSG_STREAM)
            .await
            .map_err(store_err)?;
        let name = names::consumer_name(target);
        let c = stream
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: names::msg_subject(target),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: self.opts.ack_wait,
                    // Poison messages are detected by the record (see claim), so the broker must
                    // never stop delivering a message on its own: that would strand it.
                    max_deliver: -1,
                    max_ack_pending: MAX_ACK_PENDING,
                    ..Default::default()
                },
            )
            .await
            .map_err(store_err)?;
        map.insert(target.clone(), c.clone());
        Ok(c)
    }

    pub(crate) async fn claim_batch(
        &self,
        target: &Target,
        max: usize,
    ) -> Result<Vec<Claimed>, QueueError> {
        self.check_open()?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let consumer = self.consumer(target).await?;
        let mut batch = consumer
            .fetch()
            .max_messages(max)
            .messages()
            .await
            .map_err(store_err)?;
        let mut fetched = Vec::new();
        // Bounded: a fetch without waiting ends when the broker has nothing more.
        let until = tokio::time::Instant::now() + self.opts.request_timeout;
        while let Ok(Some(next)) = tokio::time::timeout_at(until, batch.next()).await {
            match next {
                Ok(m) => fetched.push(m),
                Err(e) => {
                    tracing::debug!("fetch from {target}: {e}");
                    break;
                }
            }
        }
        // Two copies of one message in a batch (a publish retried after the dedup window) are
        // never held at once: the later one comes back after the first has an outcome.
        let mut ids = std::collections::HashSet::new();
        let mut unique = Vec::with_capacity(fetched.len());
        for m in fetched {
            if delivery_id(&m).is_some_and(|id| !ids.insert(id)) {
                ack(&m, AckKind::Nak(Some(Duration::from_secs(1)))).await;
            } else {
                unique.push(m);
            }
        }
        let fetched = unique;
        // Each take is a round trip or two to the records bucket: overlap them.
        let taken: Vec<Result<Option<Claimed>, QueueError>> = futures::stream::iter(fetched)
            .map(|m| self.take(m))
            .buffer_unordered(TAKE_PIPELINE)
            .collect()
            .await;
        let mut out = Vec::new();
        let mut first_err = None;
        for t in taken {
            match t {
                Ok(Some(c)) => out.push(c),
                Ok(None) => {}
                // Claimed ones must still be returned (they are marked `sending`); what failed
                // comes back from the broker after the ack wait.
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        match first_err {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    /// Turns one delivery into a claim, or settles it when there is nothing to send.
    ///
    /// A delivery whose every predecessor recorded an outcome (the broker's delivery count
    /// minus one equals the record's `settled`) cannot overlap another holder, so it is claimed
    /// without a write: the record stays `queued` while it is sent, and the outcome is written
    /// against the revision read here, so any write in between (a later claim) makes it fail.
    /// A delivery after one that ended without an outcome — that worker died, hung past the
    /// ack wait, or let go at shutdown, perhaps after sending — marks the message
    /// `possible_duplicate` and writes `sending` under a new lease first, which fences the
    /// earlier holder's outcome out.
    async fn take(&self, msg: jetstream::Message) -> Result<Option<Claimed>, QueueError> {
        let delivered = msg.info().ok().map(|i| i.delivered.max(1) as u64);
        let mut payload: Option<MessageRecord> = None;
        let id = match delivery_id(&msg) {
            Some(id) => id,
            None => match self.payload_of(&msg).await? {
                Some(first) => {
                    let id = first.id.clone();
                    payload = Some(first);
                    id
                }
                None => return Ok(None),
            },
        };
        if self
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&id)
        {
            // A second copy of a message this process is sending (a publish retried after the
            // dedup window): let it come back once that one has an outcome.
            ack(&msg, AckKind::Nak(Some(Duration::from_secs(1)))).await;
            return Ok(None);
        }
        for _ in 0..5 {
            let now = now_ms();
            let (mut stored, revision) = match records::load(&self.messages, &id).await? {
                Some(found) => found,
                None => {
                    // The API node has not written the record yet: build it from the stream.
                    if payload.is_none() {
                        payload = self.payload_of(&msg).await?;
                    }
                    let Some(first) = payload.clone() else {
                        return Ok(None);
                    };
                    if first.id != id {
                        let reason = "the message's id differs from its Nats-Msg-Id";
                        self.dead_letter_raw(&msg, &first.target, reason).await?;
                        return Ok(None);
                    }
                    let fresh = Stored {
                        record: first,
                        lease: 0,
                        orphaned: 0,
                        settled: 0,
                    };
                    match records::create(&self.messages, &fresh).await? {
                        Cas::Done(rev) => (fresh, rev),
                        Cas::Conflict => continue,
                    }
                }
            };
            if stored.record.status.is_final() {
                // The outcome was recorded but the ack was lost (the worker died right after):
                // do not send again; make sure the callback went out.
                self.publish_callback(&stored.record).await?;
                ack(&msg, AckKind::Ack).await;
                return Ok(None);
            }
            let unsettled_before = delivered.is_some_and(|n| u64::from(stored.settled) + 1 < n);
            let orphan = stored.record.status == Status::Sending || unsettled_before;
            if orphan {
                // Taken before and never finished: that worker may have sent it.
                stored.record.possible_duplicate = true;
                stored.orphaned += 1;
            }
            if stored.orphaned >= self.opts.poison_after {
                let reason = format!(
                    "dead letter: taken {} times and no worker recorded an outcome{}",
                    stored.orphaned,
                    last_error(&stored.record)
                );
                self.fail(&msg, stored, revision, "dead_letter", reason, true)
                    .await?;
                return Ok(None);
            }
            if now > deadline_of(&stored.record, self.opts.deadline) {
                let reason = format!(
                    "deadline passed before it could be sent{}",
                    last_error(&stored.record)
                );
                self.fail(&msg, stored, revision, "not_sent", reason, false)
                    .await?;
                return Ok(None);
            }
            // Without the broker's count (never seen in practice) the claim is fenced too.
            let revision = if orphan || delivered.is_none() {
                stored.record.status = Status::Sending;
                stored.record.updated_at = now;
                stored.lease += 1;
                match records::update(&self.messages, &stored, revision).await? {
                    Cas::Conflict => continue,
                    Cas::Done(revision) => revision,
                }
            } else {
                revision
            };
            let lease = stored.lease;
            let mut record = stored.record.clone();
            // The worker's copy is `sending` whether or not the record says so yet.
            record.status = Status::Sending;
            self.inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    record.id.clone(),
                    Held {
                        msg,
                        lease,
                        stored,
                        revision,
                    },
                );
            return Ok(Some(Claimed { record, lease }));
        }
        // Contended beyond reason: leave it to the broker to deliver again.
        ack(&msg, AckKind::Nak(Some(Duration::from_secs(1)))).await;
        Ok(None)
    }

    /// The message as the API node published it; an unreadable one goes to the dead letters.
    async fn payload_of(
        &self,
        msg: &jetstream::Message,
    ) -> Result<Option<MessageRecord>, QueueError> {
        if let Ok(first) = serde_json::from_slice::<MessageRecord>(&msg.payload) {
            return Ok(Some(first));
        }
        let target = names::target_of_subject(msg.subject.as_str())
            .unwrap_or(Target::Gateway(String::new()));
        self.dead_letter_raw(msg, &target, "the message in the stream is unreadable")
            .await?;
        Ok(None)
    }

    /// Fails a message without sending it: records `failed` with `reason`, and for a poison
    /// message also puts it on the dead-letter subject; then the stream lets go of it.
    async fn fail(
        &self,
        msg: &jetstream::Message,
        mut stored: Stored,
        revision: u64,
        kind: &str,
        reason: String,
        dead_letter: bool,
    ) -> Result<(), QueueError> {
        let now = now_ms();
        stored.record.status = Status::Failed;
        stored.record.updated_at = now;
        stored.settled += 1;
        stored.record.attempts.push(Attempt {
            gateway: stored.record.target.name().to_owned(),
            kind: kind.into(),
            error: Some(reason.clone()),
            ms: 0,
            at: now,
        });
        if dead_letter {
            self.publish_dead(&stored.record.target, &reason, records::encode(&stored)?)
                .await?;
        }
        if let Cas::Done(_) = records::update(&self.messages, &stored, revision).await? {
            self.publish_callback(&stored.record).await?;
            ack(msg, AckKind::Term).await;
        }
        Ok(())
    }

    async fn dead_letter_raw(
        &self,
        msg: &jetstream::Message,
        target: &Target,
        reason: &str,
    ) -> Result<(), QueueError> {
        self.publish_dead(target, reason, msg.payload.clone())
            .await?;
        ack(msg, AckKind::Term).await;
        Ok(())
    }

    async fn publish_dead(
        &self,
        target: &Target,
        reason: &str,
        payload: bytes::Bytes,
    ) -> Result<(), QueueError> {
        let mut headers = HeaderMap::new();
        headers.insert("Smsgw-Error", reason.replace(['\r', '\n'], " ").as_str());
        tracing::warn!("{target}: {reason}");
        self.js
            .publish_with_headers(names::dead_subject(target), headers, payload)
            .await
            .map_err(store_err)?
            .await
            .map_err(store_err)?;
        Ok(())
    }

    pub(crate) async fn complete_one(
        &self,
        id: &str,
        lease: u64,
        attempts: Vec<Attempt>,
        outcome: Outcome,
    ) -> Result<MessageRecord, QueueError> {
        self.check_open()?;
        let held = {
            let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(id) {
                Some(h) if h.lease == lease => map.remove(id),
                _ => None,
            }
        };
        let Some(held) = held else {
            return Err(QueueError::LeaseLost(id.to_owned()));
        };
        let now = now_ms();
        // Provider ids first: a receipt may arrive as soon as the outcome is recorded.
        if let Outcome::Sent { message_ids } = &outcome {
            let gw = attempts
                .last()
                .or(held.stored.record.attempts.last())
                .map(|a| a.gateway.clone())
                .unwrap_or_else(|| held.stored.record.target.name().to_owned());
            for pid in message_ids {
                self.provider_ids
                    .put(names::hashed_key(&[&gw, pid]), id.to_owned().into())
                    .await
                    .map_err(store_err)?;
            }
        }
        // Usually nobody wrote the record since this worker took it; if someone did, read it
        // again: it is still ours only under the same lease and still `sending`.
        let (mut base, mut revision) = (held.stored, held.revision);
        let mut reread = false;
        let (stored, ack_kind) = loop {
            let mut stored = base.clone();
            let ack_kind = self.apply(&mut stored, attempts.clone(), outcome.clone(), now);
            match records::update(&self.messages, &stored, revision).await? {
                Cas::Done(_) => break (stored, ack_kind),
                Cas::Conflict if !reread => {
                    reread = true;
                    let Some((fresh, rev)) = records::load(&self.messages, id).await? else {
                        return Err(QueueError::LeaseLost(id.to_owned()));
                    };
                    // Still ours only if nobody claimed or settled it since (a claim without a
                    // write left it `queued`; a fenced one, `sending`).
                    if fresh.lease != lease
                        || fresh.settled != base.settled
                        || fresh.record.status != base.record.status
                    {
                        return Err(self.lost(id, &outcome, Some((fresh, rev))).await);
                    }
                    (base, revision) = (fresh, rev);
                }
                Cas::Conflict => return Err(self.lost(id, &outcome, None).await),
            }
        };
        if stored.record.status.is_final() {
            self.publish_callback(&stored.record).await?;
        }
        ack(&held.msg, ack_kind).await;
        Ok(stored.record)
    }

    /// The answer for an outcome that lost its race: another delivery of the message claimed or
    /// settled it meanwhile (this worker hung past the ack wait, or a second copy of the
    /// message was sent at the same time). If this one may have reached the phone, the
    /// record must say the message may have been sent twice, whoever recorded it.
    async fn lost(
        &self,
        id: &str,
        outcome: &Outcome,
        mut seen: Option<(Stored, u64)>,
    ) -> QueueError {
        let may_have_sent = matches!(
            outcome,
            Outcome::Sent { .. }
                | Outcome::Final {
                    status: Status::Unknown
                }
        );
        if may_have_sent {
            for _ in 0..5 {
                let found = match seen.take() {
                    Some(f) => Some(f),
                    None => records::load(&self.messages, id).await.ok().flatten(),
                };
                let Some((mut stored, rev)) = found else {
                    break;
                };
                if stored.record.possible_duplicate {
                    break;
                }
                stored.record.possible_duplicate = true;
                match records::update(&self.messages, &stored, rev).await {
                    Ok(Cas::Conflict) => continue,
                    Ok(Cas::Done(_)) => break,
                    Err(e) => {
                        tracing::warn!("{id}: cannot mark a possible duplicate: {e}");
                        break;
                    }
                }
            }
        }
        QueueError::LeaseLost(id.to_owned())
    }

    /// Writes `outcome` into `stored`; how the broker is to settle the delivery.
    fn apply(
        &self,
        stored: &mut Stored,
        attempts: Vec<Attempt>,
        outcome: Outcome,
        now: Millis,
    ) -> AckKind {
        stored.record.attempts.extend(attempts);
        stored.record.updated_at = now;
        stored.orphaned = 0;
        stored.settled += 1;
        match outcome {
            Outcome::Sent { message_ids } => {
                stored.record.status = Status::Sent;
                stored.record.message_ids = message_ids;
                AckKind::Ack
            }
            Outcome::Final { status } => {
                stored.record.status = status;
                // `unknown` may have been sent: never deliver it again.
                AckKind::Term
            }
            Outcome::Retry { not_before } => {
                if not_before > deadline_of(&stored.record, self.opts.deadline) {
                    stored.record.status = Status::Failed;
                    AckKind::Ack
                } else {
                    stored.record.status = Status::Queued;
                    let wait = (not_before - now).max(0) as u64;
                    AckKind::Nak(Some(Duration::from_millis(wait)))
                }
            }
        }
    }

    /// Lets go of every message this process holds (at shutdown): they go back to the stream
    /// at once (marked possible duplicates when taken again, as their sends may have started).
    pub(crate) async fn release_all(&self) {
        let held: Vec<Held> = {
            let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            map.drain().map(|(_, h)| h).collect()
        };
        for h in held {
            ack(&h.msg, AckKind::Nak(None)).await;
        }
    }
}

/// When a message's retries stop.
fn deadline_of(record: &MessageRecord, deadline: Duration) -> Millis {
    record.created_at + deadline.as_millis() as Millis
}

fn last_error(record: &MessageRecord) -> String {
    match record
        .attempts
        .iter()
        .rev()
        .find_map(|a| a.error.as_deref())
    {
        Some(e) => format!("; last error: {e}"),
        None => String::new(),
    }
}

/// The id of the message a delivery carries: the `Nats-Msg-Id` the API node published under,
/// else the payload's `id` (decoding only that field); the whole payload is decoded only when
/// the record is missing.
fn delivery_id(msg: &jetstream::Message) -> Option<String> {
    if let Some(id) = msg.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")) {
        let id = id.as_str();
        return records::valid_id(id).then(|| id.to_owned());
    }
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: String,
    }
    let only: IdOnly = serde_json::from_slice(&msg.payload).ok()?;
    records::valid_id(&only.id).then_some(only.id)
}

/// Acks are best effort: a lost ack means the message comes again, and its record (final)
/// makes the next worker settle it without sending.
async fn ack(msg: &jetstream::Message, kind: AckKind) {
    if let Err(e) = msg.ack_with(kind).await {
        tracing::debug!("ack: {e}");
    }
}
