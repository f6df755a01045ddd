//! A worker loop over any [`Queue`]: asks which targets have work, claims messages per target,
//! sends each through its gateway (at the gateway's shared `rate`, if it has one) and records
//! the outcome. This is what `smsgw worker --queue nats://…` runs until the routing-aware worker
//! of `smsgw-server` takes its place; routes are not resolved here (a route target fails with a
//! `config` attempt saying so).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smsgw_core::{Gateways, Message, SendError};
use smsgw_queue::{Attempt, Claimed, Outcome, Queue, Status, Target, now_ms};
use tokio::sync::Semaphore;

use crate::RateLimiter;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Sends in flight at once in this process.
    pub concurrency: usize,
    /// How long to wait before asking again when there was nothing to do.
    pub idle_poll: Duration,
    /// How long shutdown waits for the sends in flight.
    pub drain: Duration,
    /// Per-gateway `rate` (messages per second), held across every worker when a
    /// [`RateLimiter`] is given.
    pub rates: HashMap<String, f64>,
    /// The first retry of a retry-safe failure waits this long; each next one twice as long,
    /// up to [`WorkerOptions::max_backoff`].
    pub backoff: Duration,
    /// The longest wait between retries.
    pub max_backoff: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 64,
            idle_poll: Duration::from_millis(50),
            drain: Duration::from_secs(30),
            rates: HashMap::new(),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Runs a worker until `shutdown` completes, then waits (at most [`WorkerOptions::drain`]) for
/// the sends in flight and closes the queue.
pub async fn run_worker<Q: Queue>(
    queue: Arc<Q>,
    gateways: Arc<Gateways>,
    limiter: Option<RateLimiter>,
    opts: WorkerOptions,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let opts = Arc::new(opts);
    let slots = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    tokio::pin!(shutdown);
    loop {
        let busy = tokio::select! {
            _ = &mut shutdown => break,
            busy = round(&queue, &gateways, &limiter, &opts, &slots) => busy,
        };
        if !busy {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(opts.idle_poll) => {}
            }
        }
    }
    let all = opts.concurrency.max(1) as u32;
    if tokio::time::timeout(opts.drain, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("shutdown: sends still in flight after {:?}", opts.drain);
    }
    queue.close().await;
}

/// One pass over the targets with work; true when it started any send.
async fn round<Q: Queue>(
    queue: &Arc<Q>,
    gateways: &Arc<Gateways>,
    limiter: &Option<RateLimiter>,
    opts: &Arc<WorkerOptions>,
    slots: &Arc<Semaphore>,
) -> bool {
    let targets = match queue.ready_targets().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("asking for work: {e}");
            return false;
        }
    };
    let mut started = false;
    for target in targets {
        let free = slots.available_permits();
        if free == 0 {
            // Wait for one slot instead of spinning.
            let Ok(p) = slots.clone().acquire_owned().await else {
                return started;
            };
            drop(p);
            continue;
        }
        let claimed = match queue.claim(&target, free, Duration::from_secs(30)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("claiming for {target}: {e}");
                continue;
            }
        };
        for c in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return started;
            };
            started = true;
            let (q, g, l, o) = (
                queue.clone(),
                gateways.clone(),
                limiter.clone(),
                opts.clone(),
            );
            tokio::spawn(async move {
                send_one(&*q, &g, l.as_ref(), &o, c).await;
                drop(permit);
            });
        }
    }
    started
}

async fn send_one<Q: Queue>(
    queue: &Q,
    gateways: &Gateways,
    limiter: Option<&RateLimiter>,
    opts: &WorkerOptions,
    claimed: Claimed,
) {
    let rec = &claimed.record;
    let (attempt, outcome) = match &rec.target {
        Target::Route(name) => refuse(
            name,
            format!("route '{name}': routes are not resolved by this worker"),
        ),
        Target::Gateway(id) => match gateways.get(id) {
            None => refuse(id, format!("gateway '{id}' is not defined on this worker")),
            Some(gw) => {
                if let (Some(l), Some(rate)) = (limiter, opts.rates.get(id))
                    && let Err(e) = l.acquire(id, *rate, 1).await
                {
                    tracing::warn!("{e}");
                }
                let text = rec.text.clone().unwrap_or_default();
                let started = Instant::now();
                let result = gw.send(&Message::new(rec.to.clone(), text)).await;
                let ms = started.elapsed().as_millis() as u64;
                classify(id, result, ms, rec.attempts.len(), opts)
            }
        },
    };
    if let Err(e) = queue
        .complete(&rec.id, claimed.lease, vec![attempt], outcome)
        .await
    {
        tracing::warn!("recording the outcome of {}: {e}", rec.id);
    }
}

fn refuse(gateway: &str, reason: String) -> (Attempt, Outcome) {
    let attempt = Attempt {
        gateway: gateway.to_owned(),
        kind: "config".into(),
        error: Some(reason),
        ms: 0,
        at: now_ms(),
    };
    (
        attempt,
        Outcome::Final {
            status: Status::Failed,
        },
    )
}

fn classify(
    gateway: &str,
    result: Result<smsgw_core::Receipt, SendError>,
    ms: u64,
    tries_before: usize,
    opts: &WorkerOptions,
) -> (Attempt, Outcome) {
    let at = now_ms();
    match result {
        Ok(receipt) => (
            Attempt {
                gateway: gateway.to_owned(),
                kind: "sent".into(),
                error: None,
                ms,
                at,
            },
            Outcome::Sent {
                message_ids: receipt.message_ids,
            },
        ),
        Err(e) => {
            let attempt = Attempt {
                gateway: gateway.to_owned(),
                kind: e.kind().as_str().into(),
                error: Some(e.to_string()),
                ms,
                at,
            };
            let outcome = if e.is_retry_safe() {
                let factor = 2u32.saturating_pow(tries_before.min(16) as u32);
                let wait = opts.backoff.saturating_mul(factor).min(opts.max_backoff);
                Outcome::Retry {
                    not_before: at + wait.as_millis() as i64,
                }
            } else if e.may_have_been_sent() {
                Outcome::Final {
                    status: Status::Unknown,
                }
            } else {
                Outcome::Final {
                    status: Status::Failed,
                }
            };
            (attempt, outcome)
        }
    }
}
