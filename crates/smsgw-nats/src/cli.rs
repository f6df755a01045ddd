//! The library side of `smsgw worker --queue nats://…`, `smsgw serve --queue nats://…` and
//! `smsgw queue status`: clap arguments and the functions behind them. The `smsgw` binary
//! flattens these into its subcommands; the worker itself is the server's
//! (`smsgw_server::run_worker`) over a [`NatsQueue`].

use std::time::Duration;

use crate::{NatsError, NatsOptions, NatsQueue, QueueStatus};

/// Where the broker is and how the queue on it behaves.
#[derive(Debug, Clone, clap::Args)]
pub struct NatsArgs {
    /// The broker: nats://HOST:4222 (several servers of a cluster separated by commas).
    #[arg(long = "queue", env = "SMSGW_QUEUE", value_name = "nats://HOST:PORT")]
    pub queue: String,
    /// How the queue on it behaves.
    #[command(flatten)]
    pub tuning: NatsTuning,
}

impl NatsArgs {
    /// Connects (for `smsgw serve --queue nats://…`: hand the queue to the server as its
    /// `Arc<dyn Queue>`).
    pub async fn connect(&self) -> Result<NatsQueue, NatsError> {
        self.tuning.connect(&self.queue).await
    }
}

/// How the queue on the broker behaves (apart from where the broker is, so that a command
/// whose `--queue` is optional can take these too).
#[derive(Debug, Clone, clap::Args)]
pub struct NatsTuning {
    /// Copies of every stream and bucket kept by the NATS cluster (3 survives losing a server).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub replicas: u8,
    /// Seconds a worker may be silent before its messages go to another worker.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ack_wait: u64,
}

impl NatsTuning {
    /// The options these arguments select.
    pub fn options(&self) -> NatsOptions {
        NatsOptions {
            replicas: self.replicas as usize,
            ack_wait: Duration::from_secs(self.ack_wait),
            ..NatsOptions::default()
        }
    }

    /// Connects to the broker at `url`.
    pub async fn connect(&self, url: &str) -> Result<NatsQueue, NatsError> {
        NatsQueue::connect(url, self.options()).await
    }
}

/// `smsgw worker`: take messages from the broker and send them.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// The broker.
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Sends in flight at once in this worker.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
}

/// `smsgw queue status`: what the broker holds.
pub async fn status(args: &NatsArgs) -> Result<QueueStatus, NatsError> {
    let q = args.connect().await?;
    Ok(q.status().await?)
}
