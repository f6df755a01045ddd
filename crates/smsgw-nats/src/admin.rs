//! Reading records, receipts, retention, counts, and the definitions and tokens buckets.

use async_nats::jetstream::kv::{self, CreateErrorKind};
use futures::{StreamExt, TryStreamExt};
use smsgw_queue::{
    DefKind, ListQuery, MAX_PAGE, MessageRecord, Millis, Page, Pruned, QueueError, Receipt, Stats,
    Status, StoredDef, Target, TokenRecord, now_ms,
};

use crate::records::{self, Cas};
use crate::{NatsQueue, names, store_err};

/// The most keys one scan of a bucket reads (list, prune): every wait is bounded.
const MAX_SCAN: usize = 1_000_000;

async fn keys(store: &kv::Store) -> Result<Vec<String>, QueueError> {
    let mut keys: Vec<String> = store
        .keys()
        .await
        .map_err(store_err)?
        .take(MAX_SCAN)
        .try_collect()
        .await
        .map_err(store_err)?;
    keys.sort_unstable();
    Ok(keys)
}

fn def_key(kind: DefKind, id: &str) -> String {
    format!("{}.{}", kind.as_str(), names::token(id))
}

impl NatsQueue {
    pub(crate) async fn get_one(&self, id: &str) -> Result<Option<MessageRecord>, QueueError> {
        Ok(records::load(&self.messages, id)
            .await?
            .map(|(s, _)| s.record))
    }

    pub(crate) async fn find_key(&self, key: &str) -> Result<Option<MessageRecord>, QueueError> {
        let k = names::hashed_key(&[key]);
        let Some(id) = self.idempotency.get(&k).await.map_err(store_err)? else {
            return Ok(None);
        };
        self.get_one(&String::from_utf8_lossy(&id)).await
    }

    /// Newest first: message ids are UUID v7, so the sorted keys are in creation order.
    pub(crate) async fn list_page(&self, query: &ListQuery) -> Result<Page, QueueError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let mut out = Vec::new();
        let mut next = None;
        for id in keys(&self.messages).await?.into_iter().rev() {
            if query
                .before
                .as_ref()
                .is_some_and(|b| id.as_str() >= b.as_str())
            {
                continue;
            }
            let Some(rec) = self.get_one(&id).await? else {
                continue;
            };
            if query.since.is_some_and(|s| rec.created_at < s) {
                // Older than `since`, and every later key is older still.
                break;
            }
            if query.status.is_some_and(|s| rec.status != s) {
                continue;
            }
            if out.len() == limit {
                next = out.last().map(|r: &MessageRecord| r.id.clone());
                break;
            }
            out.push(rec);
        }
        Ok(Page {
            messages: out,
            next,
        })
    }

    pub(crate) async fn targets(&self) -> Result<Vec<(Target, u64)>, QueueError> {
        let stream = self
            .js
            .get_stream_no_info(names::MSG_STREAM)
            .await
            .map_err(store_err)?;
        let subjects = stream
            .info_with_subjects(names::MSG_SUBJECTS)
            .await
            .map_err(store_err)?;
        let all: Vec<(String, usize)> = subjects.try_collect().await.map_err(store_err)?;
        let mut out: Vec<(Target, u64)> = all
            .into_iter()
            .filter_map(|(s, n)| Some((names::target_of_subject(&s)?, n as u64)))
            .collect();
        out.sort();
        Ok(out)
    }

    pub(crate) async fn receipt(&self, r: &Receipt) -> Result<Option<MessageRecord>, QueueError> {
        let k = names::hashed_key(&[&r.gateway, &r.provider_id]);
        let Some(id) = self.provider_ids.get(&k).await.map_err(store_err)? else {
            return Ok(None);
        };
        let id = String::from_utf8_lossy(&id).into_owned();
        for _ in 0..5 {
            let Some((mut stored, rev)) = records::load(&self.messages, &id).await? else {
                return Ok(None);
            };
            stored.record.status = if r.delivered {
                Status::Delivered
            } else {
                Status::Undelivered
            };
            stored.record.updated_at = now_ms();
            if let Cas::Done(_) = records::update(&self.messages, &stored, rev).await? {
                self.publish_callback(&stored.record).await?;
                return Ok(Some(stored.record));
            }
        }
        Err(QueueError::Store(format!("message {id} changed too often")))
    }

    pub(crate) async fn prune_old(
        &self,
        texts_before: Millis,
        rows_before: Millis,
    ) -> Result<Pruned, QueueError> {
        let mut pruned = Pruned::default();
        for id in keys(&self.messages).await? {
            let Some((mut stored, rev)) = records::load(&self.messages, &id).await? else {
                continue;
            };
            let rec = &stored.record;
            if !rec.status.is_final() {
                continue;
            }
            if rec.updated_at < rows_before {
                if let Some(k) = &rec.idempotency_key {
                    let _ = self.idempotency.purge(names::hashed_key(&[k])).await;
                }
                for pid in &rec.message_ids {
                    for a in &rec.attempts {
                        let _ = self
                            .provider_ids
                            .purge(names::hashed_key(&[&a.gateway, pid]))
                            .await;
                    }
                }
                self.messages.purge(&id).await.map_err(store_err)?;
                pruned.rows += 1;
            } else if rec.updated_at < texts_before && rec.text.is_some() {
                stored.record.text = None;
                if let Cas::Done(_) = records::update(&self.messages, &stored, rev).await? {
                    pruned.texts += 1;
                }
            }
        }
        Ok(pruned)
    }

    /// Counts from the streams (no scan of the records): waiting messages, the oldest one's
    /// age, waiting callbacks. Counts of final statuses are not kept on the broker.
    pub(crate) async fn counts(&self) -> Result<Stats, QueueError> {
        let mut msgs = self
            .js
            .get_stream(names::MSG_STREAM)
            .await
            .map_err(store_err)?;
        let state = msgs.info().await.map_err(store_err)?.state.clone();
        let mut cbs = self
            .js
            .get_stream(names::CB_STREAM)
            .await
            .map_err(store_err)?;
        let cb_state = cbs.info().await.map_err(store_err)?.state.clone();
        let oldest = (state.messages > 0)
            .then(|| (state.first_timestamp.unix_timestamp_nanos() / 1_000_000) as Millis);
        Ok(Stats {
            by_status: vec![(Status::Queued, state.messages)],
            oldest_queued: oldest,
            callbacks_pending: cb_state.messages,
        })
    }

    pub(crate) async fn shared_secret(&self) -> Result<Vec<u8>, QueueError> {
        const KEY: &str = "server-secret";
        let fresh: [u8; 32] = rand::random();
        match self.meta.create(KEY, hex::encode(fresh).into()).await {
            Ok(_) => return Ok(fresh.to_vec()),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(store_err(e)),
        }
        let stored = self.meta.get(KEY).await.map_err(store_err)?;
        stored
            .and_then(|b| hex::decode(&b).ok())
            .ok_or_else(|| QueueError::Store("the server secret is unreadable".into()))
    }

    pub(crate) async fn writable(&self) -> Result<(), QueueError> {
        self.meta
            .put("readyz", now_ms().to_string().into())
            .await
            .map_err(store_err)?;
        Ok(())
    }

    pub(crate) async fn defs(&self, kind: DefKind) -> Result<Vec<StoredDef>, QueueError> {
        let prefix = format!("{}.", kind.as_str());
        let mut out = Vec::new();
        for k in keys(&self.definitions).await? {
            let Some(tok) = k.strip_prefix(&prefix) else {
                continue;
            };
            if let Some(id) = names::untoken(tok)
                && let Some(d) = self.def(kind, &id).await?
            {
                out.push(d);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    pub(crate) async fn def(
        &self,
        kind: DefKind,
        id: &str,
    ) -> Result<Option<StoredDef>, QueueError> {
        let Some(b) = self
            .definitions
            .get(def_key(kind, id))
            .await
            .map_err(store_err)?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| QueueError::Store(format!("{} '{id}' is unreadable: {e}", kind.as_str())))
    }

    pub(crate) async fn put_definition(&self, def: &StoredDef) -> Result<bool, QueueError> {
        let key = def_key(def.kind, &def.id);
        let body = serde_json::to_vec(def)
            .map_err(|e| QueueError::Store(format!("encoding a definition: {e}")))?;
        match self.definitions.create(&key, body.clone().into()).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                self.definitions
                    .put(&key, body.into())
                    .await
                    .map_err(store_err)?;
                Ok(false)
            }
            Err(e) => Err(store_err(e)),
        }
    }

    pub(crate) async fn delete_definition(
        &self,
        kind: DefKind,
        id: &str,
    ) -> Result<bool, QueueError> {
        if self.def(kind, id).await?.is_none() {
            return Ok(false);
        }
        self.definitions
            .purge(def_key(kind, id))
            .await
            .map_err(store_err)?;
        Ok(true)
    }

    pub(crate) async fn new_token(&self, token: &TokenRecord) -> Result<(), QueueError> {
        let body = serde_json::to_vec(token)
            .map_err(|e| QueueError::Store(format!("encoding a token: {e}")))?;
        match self
            .tokens
            .create(names::token(&token.name), body.into())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                Err(QueueError::Exists(format!("token '{}'", token.name)))
            }
            Err(e) => Err(store_err(e)),
        }
    }

    pub(crate) async fn all_tokens(&self) -> Result<Vec<TokenRecord>, QueueError> {
        let mut out = Vec::new();
        for k in keys(&self.tokens).await? {
            if let Some(b) = self.tokens.get(&k).await.map_err(store_err)?
                && let Ok(t) = serde_json::from_slice::<TokenRecord>(&b)
            {
                out.push(t);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub(crate) async fn drop_token(&self, name: &str) -> Result<bool, QueueError> {
        let key = names::token(name);
        if self.tokens.get(&key).await.map_err(store_err)?.is_none() {
            return Ok(false);
        }
        self.tokens.purge(&key).await.map_err(store_err)?;
        Ok(true)
    }
}
