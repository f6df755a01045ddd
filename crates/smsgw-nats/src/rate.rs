//! Per-gateway `rate` limits held across every worker: one token bucket per gateway in a
//! key-value bucket, taken from with compare-and-swap. Chosen over "one consumer per gateway"
//! because that caps a gateway at one worker's concurrency — three workers would send no faster
//! than one — while the shared bucket lets every worker send to every gateway and still holds
//! the sum to `rate`. A worker takes up to a batch of tokens per round trip, so the broker sees
//! one write per batch, not per message.

use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use serde::{Deserialize, Serialize};
use smsgw_queue::{Millis, QueueError, now_ms};

use crate::{names, store_err};

#[derive(Serialize, Deserialize)]
struct Bucket {
    tokens: f64,
    at: Millis,
}

/// A token bucket per gateway, shared by every worker through the broker. Bursts are bounded
/// to one second's worth of tokens. Clocks of the workers' machines must agree (NTP): the
/// refill is computed from the writer's clock.
#[derive(Clone)]
pub struct RateLimiter {
    store: kv::Store,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

/// The longest one [`RateLimiter::acquire`] waits before it gives up with an error, so that a
/// broker that does not answer cannot hold a worker for ever.
pub const MAX_RATE_WAIT: Duration = Duration::from_secs(60);

impl RateLimiter {
    pub(crate) fn new(store: kv::Store) -> Self {
        RateLimiter { store }
    }

    /// Waits until `gateway` may send, then takes between 1 and `want` tokens (as many as are
    /// there) and returns how many. `per_second` is the gateway's `rate` (> 0).
    pub async fn acquire(
        &self,
        gateway: &str,
        per_second: f64,
        want: u32,
    ) -> Result<u32, QueueError> {
        if per_second <= 0.0 || !per_second.is_finite() {
            return Err(QueueError::Store(format!(
                "gateway '{gateway}', rate: must be a positive number, not {per_second}"
            )));
        }
        let key = format!("gw.{}", names::token(gateway));
        let burst = per_second.max(1.0);
        let give_up = tokio::time::Instant::now() + MAX_RATE_WAIT;
        loop {
            let now = now_ms();
            let entry = self.store.entry(&key).await.map_err(store_err)?;
            let (mut b, rev) = match entry.filter(|e| e.operation == kv::Operation::Put) {
                Some(e) => match serde_json::from_slice::<Bucket>(&e.value) {
                    Ok(b) => (b, Some(e.revision)),
                    Err(_) => (
                        Bucket {
                            tokens: burst,
                            at: now,
                        },
                        Some(e.revision),
                    ),
                },
                None => (
                    Bucket {
                        tokens: burst,
                        at: now,
                    },
                    None,
                ),
            };
            let elapsed = (now - b.at).max(0) as f64 / 1000.0;
            b.tokens = (b.tokens + elapsed * per_second).min(burst);
            b.at = now;
            let take = (b.tokens.floor() as u32).min(want.max(1));
            if take == 0 {
                let wait = Duration::from_secs_f64((1.0 - b.tokens) / per_second)
                    .max(Duration::from_millis(1));
                if tokio::time::Instant::now() + wait > give_up {
                    return Err(QueueError::Store(format!(
                        "gateway '{gateway}': no send slot within {}s",
                        MAX_RATE_WAIT.as_secs()
                    )));
                }
                tokio::time::sleep(wait).await;
                continue;
            }
            b.tokens -= take as f64;
            let body = serde_json::to_vec(&b).map_err(store_err)?;
            let written = match rev {
                Some(rev) => match self.store.update(&key, body.into(), rev).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => false,
                    Err(e) => return Err(store_err(e)),
                },
                None => match self.store.create(&key, body.into()).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == CreateErrorKind::AlreadyExists => false,
                    Err(e) => return Err(store_err(e)),
                },
            };
            if written {
                return Ok(take);
            }
            if tokio::time::Instant::now() > give_up {
                return Err(QueueError::Store(format!(
                    "gateway '{gateway}': the rate bucket is too contended"
                )));
            }
            // Another worker took tokens at the same moment: read again.
        }
    }
}
