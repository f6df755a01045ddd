//! The delivery worker: takes messages from the queue one target at a time, sends them, and
//! records the outcome. Each target has its own lane with its own concurrency, so a slow or dead
//! gateway holds up only its own messages.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smsgw_core::{ErrorKind, Message};
use smsgw_queue::{Attempt, Claimed, Completion, Outcome, Queue, Status, Target, now_ms};

pub use crate::dispatch::{Dispatched, Dispatcher, RouterDispatcher};
use crate::lanes::Lane;
pub use crate::lanes::Wake;
use tokio::sync::{Notify, Semaphore, mpsc, watch};

/// A claim in progress.
type ClaimFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Vec<Claimed>, smsgw_queue::QueueError>> + Send>,
>;

/// How the worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Messages in flight per target.
    pub concurrency: usize,
    /// How long a claim holds a message.
    pub lease: Duration,
    /// How long a `not_sent` message is retried (from its acceptance) before it fails.
    pub retry_for: Duration,
}

/// Final outcomes, told to whoever waits for them (`?wait=`, privacyIDEA's endpoint).
#[derive(Default)]
pub struct Waiters {
    map: Mutex<HashMap<String, Vec<tokio::sync::oneshot::Sender<()>>>>,
}

impl Waiters {
    /// A receiver that fires when message `id` reaches a final status.
    pub fn subscribe(&self, id: &str) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.map
            .lock()
            .expect("not poisoned")
            .entry(id.to_owned())
            .or_default()
            .push(tx);
        rx
    }

    /// Forgets the waiters of `id` (a waiter that timed out).
    pub fn forget(&self, id: &str) {
        self.map.lock().expect("not poisoned").remove(id);
    }

    fn finished(&self, id: &str) {
        let mut m = self.map.lock().expect("not poisoned");
        if m.is_empty() {
            return;
        }
        for tx in m.remove(id).unwrap_or_default() {
            let _ = tx.send(());
        }
    }
}

/// The running worker's shared parts.
pub struct Worker {
    /// The queue.
    pub queue: Arc<dyn Queue>,
    /// The sender.
    pub dispatcher: Arc<dyn Dispatcher>,
    /// Behaviour.
    pub options: WorkerOptions,
    /// Woken on accepts, so that a new message is sent at once.
    pub wake: Arc<Wake>,
    /// Told of every final status.
    pub waiters: Arc<Waiters>,
    /// Told of every final status with a callback (the callback sender's wake-up).
    pub callbacks: Arc<Notify>,
}

impl Worker {
    /// Runs until `stop` turns true, then waits (at most `grace`) for the sends in flight.
    /// Messages still in flight after that stay `sending` and are resumed at the next start,
    /// marked as possible duplicates.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>, grace: Duration) {
        let in_flight = Arc::new(tokio::sync::RwLock::new(()));
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.wake.notify.notified() => {
                    // Under load every accept wakes us: let a few gather into one look.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                _ = tick.tick() => {}
                changed = stop.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
            if *stop.borrow() {
                break;
            }
            let targets = match self.queue.ready_targets().await {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the queue");
                    continue;
                }
            };
            for t in targets {
                let room = 2 * self.options.concurrency.max(1);
                let Some((lane, rx)) = self.wake.open_lane(&t, self.options.lease, room) else {
                    continue;
                };
                let me = self.clone();
                let stop = stop.clone();
                let guard = in_flight.clone().read_owned().await;
                tokio::spawn(async move {
                    me.lane(&t, &lane, rx, stop).await;
                    me.wake.close_lane(&t);
                    // A message queued while the lane was ending woke nobody: look once more.
                    me.wake.notify.notify_one();
                    drop(guard);
                });
            }
        }
        // Every lane and send holds a read guard: the write lock means all are done.
        if tokio::time::timeout(grace, in_flight.write())
            .await
            .is_err()
        {
            tracing::warn!(
                "sends still in flight after {grace:?}; they resume at the next start, marked as possible duplicates"
            );
        }
    }

    /// Feeds one target until it has had nothing to do for [`LINGER`]. Messages are claimed
    /// ahead of the free send slots (at most twice `concurrency` held unsent: the lane's room),
    /// so that the gateway never waits for a claim's write to the queue: claiming and sending
    /// overlap. Twice, because a claim waits for a group commit: with only `concurrency` ahead,
    /// one claim per commit capped the lane at `concurrency` messages per commit (~7 000/s at
    /// 64, `cargo xtask bench serve`). Messages accepted while the lane has room and nothing due
    /// in the store come straight from the accepting side ([`Wake::enqueue`]), already claimed.
    async fn lane(
        self: &Arc<Self>,
        target: &Target,
        lane: &Lane,
        mut handed: mpsc::UnboundedReceiver<Claimed>,
        mut stop: watch::Receiver<bool>,
    ) {
        let permits = Arc::new(Semaphore::new(self.options.concurrency.max(1)));
        let mut sends = tokio::task::JoinSet::new();
        let mut ready: VecDeque<Claimed> = VecDeque::new();
        // A claim in progress: its future, how many it asked for, and its ticket.
        let mut claiming: Option<(ClaimFuture, usize, u64)> = None;
        let look = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(look);
        let mut busy_at = tokio::time::Instant::now();
        loop {
            if *stop.borrow() {
                break;
            }
            let look_due = look.is_elapsed();
            let idle = ready.is_empty() && sends.is_empty() && claiming.is_none();
            if look_due && idle && busy_at.elapsed() >= LINGER && lane.close_if_idle() {
                break;
            }
            if claiming.is_none() {
                let want = lane.wants(look_due);
                if want > 0 {
                    // Before the claim is sent: accepts queued with a lower ticket are seen by it.
                    let ticket = self.wake.ticket();
                    let (queue, target, lease) =
                        (self.queue.clone(), target.clone(), self.options.lease);
                    let f: ClaimFuture =
                        Box::pin(async move { queue.claim(&target, want, lease).await });
                    claiming = Some((f, want, ticket));
                }
                if look_due {
                    look.as_mut()
                        .reset(tokio::time::Instant::now() + LOOK_EVERY);
                }
            }
            tokio::select! {
                r = async {
                    match claiming.as_mut() {
                        Some((f, ..)) => f.await,
                        None => std::future::pending().await,
                    }
                } => {
                    let (_, want, ticket) = claiming.take().expect("a claim was running");
                    match r {
                        Ok(c) => {
                            lane.claimed(want, c.len(), ticket);
                            if !c.is_empty() {
                                busy_at = tokio::time::Instant::now();
                            }
                            ready.extend(c);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, %target, "cannot claim messages");
                            break;
                        }
                    }
                }
                Some(c) = handed.recv() => ready.push_back(c),
                p = permits.clone().acquire_owned(), if !ready.is_empty() => {
                    let Ok(permit) = p else { break };
                    let c = ready.pop_front().expect("not empty");
                    lane.sending();
                    busy_at = tokio::time::Instant::now();
                    let me = self.clone();
                    // The permit bounds sends to the gateway; recording the outcome waits for
                    // the next group commit and holds no permit, so the gateway is fed meanwhile.
                    sends.spawn(async move { me.send_one(c, permit).await });
                }
                Some(_) = sends.join_next(), if !sends.is_empty() => {}
                _ = lane.poke.notified() => {}
                _ = &mut look, if !look_due => {}
                changed = stop.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        // Claimed or handed over but not sent (stopping, or a failed claim): back to the queue
        // at once, so that a restart neither waits for their leases nor marks them possible
        // duplicates.
        lane.close(Duration::from_secs(5)).await;
        if let Some((f, ..)) = claiming.take()
            && let Ok(Ok(c)) = tokio::time::timeout(Duration::from_secs(5), f).await
        {
            ready.extend(c);
        }
        while let Ok(c) = handed.try_recv() {
            ready.push_back(c);
        }
        self.release(ready.into_iter().collect()).await;
        while sends.join_next().await.is_some() {}
    }

    /// Gives claimed, unsent messages back to the queue.
    async fn release(&self, claimed: Vec<Claimed>) {
        if claimed.is_empty() {
            return;
        }
        let now = now_ms();
        let back = claimed
            .into_iter()
            .map(|c| Completion {
                id: c.record.id,
                lease: c.lease,
                attempts: Vec::new(),
                outcome: Outcome::Retry { not_before: now },
            })
            .collect();
        for r in self.queue.complete_many(back).await {
            if let Err(e) = r {
                tracing::warn!(error = %e, "cannot give a claimed message back; it is taken again when its lease ends");
            }
        }
    }

    async fn send_one(&self, c: Claimed, permit: tokio::sync::OwnedSemaphorePermit) {
        let rec = &c.record;
        let Some(text) = rec.text.clone() else {
            drop(permit);
            // Retention erased the text of a message that never finished: nothing can be sent.
            self.finish(
                &c,
                Vec::new(),
                Outcome::Final {
                    status: Status::Failed,
                },
            )
            .await;
            return;
        };
        let msg = Message::new(rec.to.clone(), text);
        let d = self.dispatcher.dispatch(&rec.target, &msg).await;
        drop(permit);
        let outcome = match &d.result {
            Ok(r) => Outcome::Sent {
                message_ids: r.message_ids.clone(),
            },
            Err(e) => match e.kind() {
                ErrorKind::NotSent => {
                    let deadline = rec.created_at + self.options.retry_for.as_millis() as i64;
                    let tries = rec.attempts.len() as u32 + 1;
                    let delay = backoff(tries);
                    // Not before the router says a retry can succeed (every breaker open
                    // until then): retrying earlier would only skip the same gateways again.
                    let at = (now_ms() + delay.as_millis() as i64).max(d.retry_after.unwrap_or(0));
                    if at <= deadline {
                        Outcome::Retry { not_before: at }
                    } else {
                        Outcome::Final {
                            status: Status::Failed,
                        }
                    }
                }
                ErrorKind::Unknown => Outcome::Final {
                    status: Status::Unknown,
                },
                _ => Outcome::Final {
                    status: Status::Failed,
                },
            },
        };
        self.finish(&c, d.attempts, outcome).await;
    }

    async fn finish(&self, c: &Claimed, attempts: Vec<Attempt>, outcome: Outcome) {
        let done = Completion {
            id: c.record.id.clone(),
            lease: c.lease,
            attempts,
            outcome,
        };
        // One outcome per call: the queue's writer gathers the outcomes of concurrent sends
        // into one statement of its next group commit.
        match self.queue.complete_many(vec![done]).await.pop() {
            Some(Ok(rec)) => {
                if rec.status.is_final() {
                    metrics::counter!("smsgw_messages_finished_total", "status" => rec.status.as_str())
                        .increment(1);
                    self.waiters.finished(&rec.id);
                    if rec.callback_queued {
                        self.callbacks.notify_one();
                    }
                }
            }
            Some(Err(e)) => {
                tracing::error!(id = %c.record.id, error = %e, "cannot record an outcome")
            }
            None => tracing::error!(id = %c.record.id, "the queue answered no outcome"),
        }
    }
}

/// How long a lane with nothing to do waits for messages before it ends.
const LINGER: Duration = Duration::from_secs(5);

/// How often a lane looks in the store for messages that became due by themselves (retries,
/// expired leases), and an idle lane whether to end.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// 1 s, 2 s, 4 s … at most 5 minutes.
fn backoff(tries: u32) -> Duration {
    Duration::from_secs(1u64 << tries.saturating_sub(1).min(8)).min(Duration::from_secs(300))
}
