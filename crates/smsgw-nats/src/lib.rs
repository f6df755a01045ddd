//! smsgw scale-out on NATS JetStream: [`NatsQueue`] implements the [`Queue`] trait of
//! `smsgw serve` on a broker, so that many API nodes and workers share one queue.
//!
//! - Messages go to a work-queue stream ([`names::MSG_STREAM`]), one subject per gateway or
//!   route, each with one durable consumer shared by every worker: a dead gateway holds up only
//!   its own messages. The message id is the `Nats-Msg-Id`, so a publish retry never stores a
//!   second copy; an `Idempotency-Key` is claimed atomically in a key-value bucket, so a client
//!   retry to any node returns the first message.
//! - Records (status, attempts, provider ids), definitions and tokens live in key-value buckets:
//!   every node answers the same. A worker acknowledges a message only after its outcome is
//!   recorded; a retry-safe failure is `nak`ed with a delay; `unknown` is recorded and
//!   terminated (never sent again); a message that no worker finishes after
//!   [`NatsOptions::poison_after`] deliveries goes to the dead-letter stream and fails.
//! - [`NatsQueue::shared_rate`] holds a gateway's `rate` across all workers (a shared token
//!   bucket), for `smsgw_routing::Router::build_shared`.
//!
//! See `docs/scaling.md` for the topology and what each failure does.
//!
//! ```no_run
//! # async fn demo() -> Result<(), smsgw_nats::NatsError> {
//! use smsgw_nats::{NatsOptions, NatsQueue};
//! use smsgw_queue::{NewMessage, Queue, Target};
//! let q = NatsQueue::connect("nats://127.0.0.1:4222", NatsOptions::default()).await?;
//! let msg = NewMessage {
//!     to: "+491511234567".into(), text: "123456".into(),
//!     target: Target::Gateway("sms1".into()),
//!     metadata: None, callback_url: None, idempotency_key: Some("otp-42".into()),
//! };
//! let first = q.enqueue(msg.clone()).await?;
//! let again = q.enqueue(msg).await?; // a client retry, on this or any other node
//! assert!(!again.created && again.record.id == first.record.id);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer, kv};
use smsgw_queue::{QueueError, Target};
use tokio::sync::Mutex;

mod admin;
mod callbacks;
pub mod cli;
mod impl_queue;
pub mod names;
mod rate;
mod records;
pub mod status;
mod work;

pub use rate::{BATCH_SPAN, CACHE_TTL};
pub use status::QueueStatus;

/// How long the broker remembers a `Nats-Msg-Id` to drop a second publish of it: two minutes
/// (the JetStream default). It covers publish retries (a lost publish acknowledgement, a node
/// finishing the publish of another that stopped half-way); client retries with an
/// `Idempotency-Key` are caught for good by the idempotency bucket, not by this window.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(120);

/// How long a failed or finished message stays in the dead-letter stream (the same 7 days as
/// the default text retention: dead letters carry the text).
pub const DEAD_LETTER_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why connecting to or setting up the broker failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// The queue URL is not a `nats://` URL.
    #[error("--queue: {0}")]
    Url(String),
    /// The broker could not be reached or refused a request.
    #[error("nats: {0}")]
    Broker(String),
    /// A queue operation failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Settings of a [`NatsQueue`]; every node of one deployment must use the same.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// Copies of every stream and bucket kept by a NATS cluster (1 for a single server; 3 for a
    /// cluster that survives the loss of one server).
    pub replicas: usize,
    /// How long a worker may hold a message without a sign of life before the broker gives it
    /// to another worker. A live worker extends it every third of this while it sends.
    pub ack_wait: Duration,
    /// A message taken this many times without any worker recording an outcome (its workers
    /// died or hung) is a poison message: it goes to the dead-letter stream and fails.
    pub poison_after: u32,
    /// A message not sent this long after it was accepted fails (its retries stop).
    pub deadline: Duration,
    /// How long a connection attempt or a broker request may take.
    pub request_timeout: Duration,
}

impl Default for NatsOptions {
    fn default() -> Self {
        NatsOptions {
            replicas: 1,
            ack_wait: Duration::from_secs(30),
            poison_after: 5,
            deadline: Duration::from_secs(24 * 3600),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// The [`Queue`](smsgw_queue::Queue) of `smsgw serve` on NATS JetStream. Cheap to share
/// (`Arc`); one per process.
pub struct NatsQueue {
    pub(crate) js: jetstream::Context,
    pub(crate) opts: NatsOptions,
    pub(crate) messages: kv::Store,
    pub(crate) idempotency: kv::Store,
    pub(crate) provider_ids: kv::Store,
    pub(crate) definitions: kv::Store,
    pub(crate) tokens: kv::Store,
    pub(crate) rate: kv::Store,
    pub(crate) meta: kv::Store,
    pub(crate) consumers: Mutex<HashMap<Target, PullConsumer>>,
    pub(crate) inflight: Arc<std::sync::Mutex<HashMap<String, work::Held>>>,
    pub(crate) cb_inflight: std::sync::Mutex<HashMap<i64, jetstream::Message>>,
    pub(crate) closed: AtomicBool,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for NatsQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsQueue")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

pub(crate) fn store_err(e: impl std::fmt::Display) -> QueueError {
    QueueError::Store(format!("nats: {e}"))
}

/// Checks a `--queue` value: `nats://HOST:PORT` (several servers separated by commas).
pub fn parse_queue_url(url: &str) -> Result<String, NatsError> {
    for one in url.split(',') {
        let parsed = url::Url::parse(one.trim())
            .map_err(|e| NatsError::Url(format!("'{}' is not a URL: {e}", censor(one))))?;
        if parsed.scheme() != "nats" || parsed.host_str().is_none() {
            return Err(NatsError::Url(format!(
                "'{}' must look like nats://HOST:4222",
                censor(one)
            )));
        }
    }
    Ok(url.to_owned())
}

fn censor(url: &str) -> String {
    smsgw_core::url_without_credentials(url.trim())
}

impl NatsQueue {
    /// Connects to `url` (`nats://HOST:PORT`, user and password may be in the URL) and creates
    /// the streams and buckets that are missing.
    pub async fn connect(url: &str, opts: NatsOptions) -> Result<NatsQueue, NatsError> {
        let url = parse_queue_url(url)?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(opts.request_timeout)
            .request_timeout(Some(opts.request_timeout))
            // A broker restart must not stop a node: reconnect for ever, in the background.
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connect(url.as_str())
            .await
            .map_err(|e| NatsError::Broker(format!("connecting to {}: {e}", censor(&url))))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(opts.request_timeout)
            .build(client);
        let q = Self::setup(js, opts).await?;
        Ok(q)
    }

    async fn setup(js: jetstream::Context, opts: NatsOptions) -> Result<NatsQueue, NatsError> {
        let deadline = tokio::time::Instant::now() + opts.request_timeout * 3;
        // The first request may race the connection: retry until the broker answers (bounded).
        loop {
            match records::ensure_streams(&js, &opts).await {
                Ok(()) => break,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!("waiting for JetStream: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(NatsError::Broker(format!("setting up streams: {e}"))),
            }
        }
        let bucket = |name: &'static str| records::ensure_bucket(&js, &opts, name);
        let messages = bucket(names::BUCKET_MESSAGES).await?;
        let idempotency = bucket(names::BUCKET_IDEMPOTENCY).await?;
        let provider_ids = bucket(names::BUCKET_PROVIDER_IDS).await?;
        let definitions = bucket(names::BUCKET_DEFINITIONS).await?;
        let tokens = bucket(names::BUCKET_TOKENS).await?;
        let rate = bucket(names::BUCKET_RATE).await?;
        let meta = bucket(names::BUCKET_META).await?;
        let inflight: Arc<std::sync::Mutex<HashMap<String, work::Held>>> = Arc::default();
        let heartbeat = tokio::spawn(work::heartbeat(inflight.clone(), opts.ack_wait / 3));
        Ok(NatsQueue {
            js,
            opts,
            messages,
            idempotency,
            provider_ids,
            definitions,
            tokens,
            rate,
            meta,
            consumers: Mutex::default(),
            inflight,
            cb_inflight: Default::default(),
            closed: AtomicBool::new(false),
            heartbeat,
        })
    }

    /// The options this queue runs with.
    pub fn options(&self) -> &NatsOptions {
        &self.opts
    }

    /// Per-gateway `rate` limits held across every worker of this broker: a token bucket per
    /// gateway in the `smsgw_rate` bucket, taken in small batches (see [`BATCH_SPAN`] and
    /// [`CACHE_TTL`]). Give it to `smsgw_routing::Router::build_shared`; make one per process
    /// (each keeps its own small cache of taken tokens).
    ///
    /// ```no_run
    /// # async fn demo(q: smsgw_nats::NatsQueue) -> Result<(), String> {
    /// use std::time::Duration;
    /// let rate = q.shared_rate();
    /// // One send of gateway "sms1" limited to 50/s (burst 1), waiting at most 5 s for a slot.
    /// let waited = rate.acquire("sms1", 50.0, 1, Duration::from_secs(5)).await?;
    /// # let _ = waited; Ok(()) }
    /// ```
    pub fn shared_rate(&self) -> Arc<dyn smsgw_routing::SharedRate> {
        Arc::new(rate::RateLimiter::new(self.rate.clone()))
    }

    /// Stream depth, consumers, redeliveries and dead letters (`smsgw queue status`).
    pub async fn status(&self) -> Result<QueueStatus, QueueError> {
        status::collect(&self.js).await
    }
}

impl Drop for NatsQueue {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}
