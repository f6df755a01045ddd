//! Per-gateway `rate` limits held across every worker: one token bucket per gateway in a
//! key-value bucket, taken from with compare-and-swap. Chosen over "one consumer per gateway"
//! because that caps a gateway at one worker's concurrency — three workers would send no faster
//! than one — while the shared bucket lets every worker send to every gateway and still holds
//! the sum to `rate`.
//!
//! A round trip per send would make the broker the limit of a fast gateway, so a worker takes a
//! small batch (at most [`BATCH_SPAN`] of the rate) and hands it out locally. Tokens taken from
//! the shared bucket but not used within [`CACHE_TTL`] are dropped, never saved up: over any
//! span `T` all workers together send at most `capacity + rate × (T + CACHE_TTL)`, where the
//! capacity is the gateway's `burst` (or one batch, if that is larger).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use serde::{Deserialize, Serialize};
use smsgw_queue::{Millis, now_ms};
use smsgw_routing::SharedRate;
use tokio::time::Instant;

use crate::names;

/// The most of a gateway's rate one worker takes from the shared bucket in one round trip.
pub const BATCH_SPAN: Duration = Duration::from_millis(50);

/// How long a worker keeps tokens it took but has not used yet; older ones are dropped.
pub const CACHE_TTL: Duration = Duration::from_millis(100);

/// The largest batch, whatever the rate.
const MAX_BATCH: u32 = 1000;

#[derive(Serialize, Deserialize)]
struct Bucket {
    tokens: f64,
    at: Millis,
}

/// Tokens this process took from a gateway's shared bucket and has not handed out yet.
#[derive(Default)]
struct Cached {
    tokens: u32,
    taken: Option<Instant>,
}

/// A token bucket per gateway, shared by every worker through the broker, with a small local
/// cache per worker. Clocks of the workers' machines must agree (NTP): the refill is computed
/// from the writer's clock.
pub(crate) struct RateLimiter {
    store: kv::Store,
    /// One entry per rate-limited gateway; its lock also queues this process's senders so
    /// that one of them at a time asks the broker.
    local: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Cached>>>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

impl RateLimiter {
    pub(crate) fn new(store: kv::Store) -> Self {
        RateLimiter {
            store,
            local: Mutex::default(),
        }
    }

    fn slot(&self, gateway: &str) -> Arc<tokio::sync::Mutex<Cached>> {
        let mut map = self.local.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(gateway.to_owned()).or_default().clone()
    }

    /// Takes between 1 and `want` tokens from the shared bucket of `gateway` (holding at most
    /// `capacity`), waiting for them until `deadline`.
    async fn take(
        &self,
        gateway: &str,
        per_second: f64,
        capacity: f64,
        want: u32,
        deadline: Instant,
    ) -> Result<u32, String> {
        let key = format!("gw.{}", names::token(gateway));
        let late = || format!("gateway '{gateway}': no send slot within the rate limit in time");
        loop {
            let now = now_ms();
            let entry = tokio::time::timeout_at(deadline, self.store.entry(&key))
                .await
                .map_err(|_| late())?
                .map_err(|e| format!("gateway '{gateway}': reading the shared rate: {e}"))?;
            let (mut b, rev) = match entry.filter(|e| e.operation == kv::Operation::Put) {
                Some(e) => (
                    // An unreadable bucket is replaced by a full one (at worst one burst more).
                    serde_json::from_slice::<Bucket>(&e.value).unwrap_or(Bucket {
                        tokens: capacity,
                        at: now,
                    }),
                    Some(e.revision),
                ),
                None => (
                    Bucket {
                        tokens: capacity,
                        at: now,
                    },
                    None,
                ),
            };
            let elapsed = (now - b.at).max(0) as f64 / 1000.0;
            b.tokens = (b.tokens + elapsed * per_second).min(capacity);
            b.at = now;
            let take = (b.tokens.floor() as u32).min(want.max(1));
            if take == 0 {
                let wait = Duration::from_secs_f64((1.0 - b.tokens) / per_second)
                    .max(Duration::from_millis(1));
                if Instant::now() + wait > deadline {
                    return Err(late());
                }
                tokio::time::sleep(wait).await;
                continue;
            }
            b.tokens -= take as f64;
            let body = serde_json::to_vec(&b).map_err(|e| e.to_string())?;
            let write = async {
                match rev {
                    Some(rev) => match self.store.update(&key, body.into(), rev).await {
                        Ok(_) => Ok(true),
                        Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
                        Err(e) => Err(e.to_string()),
                    },
                    None => match self.store.create(&key, body.into()).await {
                        Ok(_) => Ok(true),
                        Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(false),
                        Err(e) => Err(e.to_string()),
                    },
                }
            };
            let written = tokio::time::timeout_at(deadline, write)
                .await
                .map_err(|_| late())?
                .map_err(|e| format!("gateway '{gateway}': writing the shared rate: {e}"))?;
            if written {
                return Ok(take);
            }
            // Another worker took tokens at the same moment: read again.
            if Instant::now() >= deadline {
                return Err(late());
            }
        }
    }
}

/// How many tokens one round trip asks for at `per_second`.
fn batch(per_second: f64) -> u32 {
    ((per_second * BATCH_SPAN.as_secs_f64()).ceil() as u32).clamp(1, MAX_BATCH)
}

#[async_trait::async_trait]
impl SharedRate for RateLimiter {
    async fn acquire(
        &self,
        gateway: &str,
        per_second: f64,
        burst: u32,
        max_wait: Duration,
    ) -> Result<Duration, String> {
        if per_second <= 0.0 || !per_second.is_finite() {
            return Err(format!(
                "gateway '{gateway}', rate: must be a positive number, not {per_second}"
            ));
        }
        let start = Instant::now();
        let deadline = start + max_wait;
        let want = batch(per_second);
        let capacity = f64::from(burst.max(want));
        let slot = self.slot(gateway);
        let mut cached = tokio::time::timeout_at(deadline, slot.lock())
            .await
            .map_err(|_| {
                format!("gateway '{gateway}': no send slot within the rate limit in time")
            })?;
        if cached.taken.is_none_or(|t| t.elapsed() >= CACHE_TTL) {
            cached.tokens = 0;
        }
        if cached.tokens == 0 {
            cached.tokens = self
                .take(gateway, per_second, capacity, want, deadline)
                .await?;
            cached.taken = Some(Instant::now());
        }
        cached.tokens -= 1;
        Ok(start.elapsed())
    }
}
