//! Status callbacks: a work-queue stream of jobs that every node's callback sender shares.
//! A job is published with the id `<message id>:<status>`, so one final status yields one job
//! even when a worker records it, dies before its ack, and the next worker publishes it again.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer, consumer::pull};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use smsgw_queue::{CallbackJob, MessageRecord, Millis, QueueError, Status, now_ms};

use crate::{NatsQueue, names, store_err};

/// The job on the stream: the sender renders the body from the message's record.
#[derive(Serialize, Deserialize)]
struct Job {
    message_id: String,
    url: String,
    status: Status,
    created_at: Millis,
}

impl NatsQueue {
    /// Queues the callback of `record`'s (final) status, if it has a callback URL.
    pub(crate) async fn publish_callback(&self, record: &MessageRecord) -> Result<(), QueueError> {
        let Some(url) = &record.callback_url else {
            return Ok(());
        };
        let job = Job {
            message_id: record.id.clone(),
            url: url.clone(),
            status: record.status,
            created_at: now_ms(),
        };
        let payload = serde_json::to_vec(&job)
            .map_err(|e| QueueError::Store(format!("encoding a callback: {e}")))?;
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(format!("{}:{}", record.id, record.status));
        self.js
            .send_publish(names::CB_SUBJECT, publish)
            .await
            .map_err(store_err)?
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn cb_consumer(&self) -> Result<PullConsumer, QueueError> {
        let stream = self
            .js
            .get_stream_no_info(names::CB_STREAM)
            .await
            .map_err(store_err)?;
        stream
            .get_or_create_consumer(
                names::CB_CONSUMER,
                pull::Config {
                    durable_name: Some(names::CB_CONSUMER.into()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: self.opts.ack_wait,
                    max_deliver: -1,
                    ..Default::default()
                },
            )
            .await
            .map_err(store_err)
    }

    pub(crate) async fn due_callbacks_nats(
        &self,
        max: usize,
    ) -> Result<Vec<CallbackJob>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let consumer = self.cb_consumer().await?;
        let mut batch = consumer
            .fetch()
            .max_messages(max)
            .messages()
            .await
            .map_err(store_err)?;
        let mut out = Vec::new();
        let until = tokio::time::Instant::now() + self.opts.request_timeout;
        while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(until, batch.next()).await {
            let Ok(info) = msg.info().map(|i| (i.stream_sequence, i.delivered)) else {
                continue;
            };
            let Ok(job) = serde_json::from_slice::<Job>(&msg.payload) else {
                tracing::warn!("dropping an unreadable callback job");
                let _ = msg.ack_with(AckKind::Term).await;
                continue;
            };
            let id = info.0 as i64;
            out.push(CallbackJob {
                id,
                message_id: job.message_id,
                url: job.url,
                status: job.status,
                tries: (info.1.max(1) - 1) as u32,
                created_at: job.created_at,
            });
            self.cb_inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, msg);
        }
        Ok(out)
    }

    pub(crate) async fn callback_settle(
        &self,
        id: i64,
        not_before: Option<Millis>,
    ) -> Result<(), QueueError> {
        let msg = self
            .cb_inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        let Some(msg) = msg else {
            // Not held here (taken by another node after a timeout): nothing to settle.
            return Ok(());
        };
        let kind = match not_before {
            None => AckKind::Ack,
            Some(t) => AckKind::Nak(Some(Duration::from_millis((t - now_ms()).max(0) as u64))),
        };
        msg.ack_with(kind).await.map_err(store_err)
    }
}
