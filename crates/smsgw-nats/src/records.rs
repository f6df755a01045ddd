//! The streams and buckets, and the message records in the messages bucket: read, create,
//! compare-and-swap. Every write of a record names the revision it read, so that two workers
//! (or a worker and a late one) never overwrite each other's outcome.

use async_nats::jetstream::{
    self,
    kv::{self, CreateErrorKind, UpdateErrorKind},
    stream,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use smsgw_queue::{MessageRecord, QueueError};

use crate::{DEAD_LETTER_AGE, DEDUP_WINDOW, NatsError, NatsOptions, names, store_err};

/// A message's record as stored: the public record and the worker bookkeeping.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Stored {
    #[serde(flatten)]
    pub record: MessageRecord,
    /// Bumped by every claim; an outcome is accepted only under the current lease.
    #[serde(default)]
    pub lease: u64,
    /// Claims that ended without an outcome (the worker died or hung).
    #[serde(default)]
    pub orphaned: u32,
    /// Deliveries that recorded an outcome. The broker counts deliveries: a delivery `n` with
    /// fewer than `n - 1` settled ones follows one that ended without an outcome (and may have
    /// sent), which is how a claim can skip writing `sending` (see `work::take`).
    #[serde(default)]
    pub settled: u32,
}

pub(crate) async fn ensure_streams(
    js: &jetstream::Context,
    opts: &NatsOptions,
) -> Result<(), async_nats::Error> {
    let file = |name: &str, subjects: &str| stream::Config {
        name: name.into(),
        subjects: vec![subjects.into()],
        storage: stream::StorageType::File,
        num_replicas: opts.replicas,
        duplicate_window: DEDUP_WINDOW,
        // Never drop an accepted message to make room: refuse new ones instead (the API answers
        // 503), so a full broker is loud, not lossy.
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    };
    js.get_or_create_stream(stream::Config {
        retention: stream::RetentionPolicy::WorkQueue,
        ..file(names::MSG_STREAM, names::MSG_SUBJECTS)
    })
    .await?;
    js.get_or_create_stream(stream::Config {
        retention: stream::RetentionPolicy::WorkQueue,
        ..file(names::CB_STREAM, names::CB_SUBJECT)
    })
    .await?;
    js.get_or_create_stream(stream::Config {
        retention: stream::RetentionPolicy::Limits,
        max_age: DEAD_LETTER_AGE,
        discard: stream::DiscardPolicy::Old,
        ..file(names::DEAD_STREAM, names::DEAD_SUBJECTS)
    })
    .await?;
    Ok(())
}

pub(crate) async fn ensure_bucket(
    js: &jetstream::Context,
    opts: &NatsOptions,
    name: &str,
) -> Result<kv::Store, NatsError> {
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    // The stream behind a bucket, as async-nats' `create_key_value` builds it; created here
    // because that function first asks for account details in a shape nats-server 2.9 (Debian
    // 12) does not send.
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        storage: stream::StorageType::File,
        num_replicas: opts.replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .map_err(|e| NatsError::Broker(format!("creating bucket {name}: {e}")))?;
    js.get_key_value(name)
        .await
        .map_err(|e| NatsError::Broker(format!("opening bucket {name}: {e}")))
}

/// What a compare-and-swap write found.
pub(crate) enum Cas {
    /// Written; the new revision.
    Done(u64),
    /// Someone else wrote first.
    Conflict,
}

pub(crate) fn encode(stored: &Stored) -> Result<Bytes, QueueError> {
    serde_json::to_vec(stored)
        .map(Bytes::from)
        .map_err(|e| QueueError::Store(format!("encoding a record: {e}")))
}

/// The record of `id` with its revision.
pub(crate) async fn load(store: &kv::Store, id: &str) -> Result<Option<(Stored, u64)>, QueueError> {
    if !valid_id(id) {
        return Ok(None);
    }
    let Some(entry) = store.entry(id).await.map_err(store_err)? else {
        return Ok(None);
    };
    if entry.operation != kv::Operation::Put {
        return Ok(None);
    }
    let stored: Stored = serde_json::from_slice(&entry.value)
        .map_err(|e| QueueError::Store(format!("record {id} is unreadable: {e}")))?;
    Ok(Some((stored, entry.revision)))
}

/// Creates the record of a new message; `Conflict` when it exists.
pub(crate) async fn create(store: &kv::Store, stored: &Stored) -> Result<Cas, QueueError> {
    match store.create(&stored.record.id, encode(stored)?).await {
        Ok(rev) => Ok(Cas::Done(rev)),
        Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(Cas::Conflict),
        Err(e) => Err(store_err(e)),
    }
}

/// Replaces the record if it is still at `revision`.
pub(crate) async fn update(
    store: &kv::Store,
    stored: &Stored,
    revision: u64,
) -> Result<Cas, QueueError> {
    match store
        .update(&stored.record.id, encode(stored)?, revision)
        .await
    {
        Ok(rev) => Ok(Cas::Done(rev)),
        Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(Cas::Conflict),
        Err(e) => Err(store_err(e)),
    }
}

/// Message ids are UUIDs; anything else (a client's typo in a URL) is simply not found, and
/// never reaches the broker as a key.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}
