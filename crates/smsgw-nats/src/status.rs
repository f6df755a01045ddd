//! `smsgw queue status`: what the broker holds — stream depth, consumers with their pending
//! and redelivered counts, dead letters.

use async_nats::jetstream;
use futures::TryStreamExt;
use serde::Serialize;
use smsgw_queue::{QueueError, Target};

use crate::{names, store_err};

/// One target's consumer (shared by every worker).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConsumerStatus {
    /// The gateway or route it feeds.
    pub target: String,
    /// Messages waiting for a worker.
    pub pending: u64,
    /// Messages workers hold now.
    pub in_flight: u64,
    /// Messages delivered more than once and not yet settled (retries and redeliveries).
    pub redelivered: u64,
    /// Workers waiting for messages right now.
    pub waiting_workers: u64,
}

/// What `smsgw queue status` prints.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QueueStatus {
    /// Messages in the stream: waiting, in flight, or waiting for a retry.
    pub depth: u64,
    /// Callbacks waiting to be delivered.
    pub callbacks: u64,
    /// Messages in the dead-letter stream (kept for a week).
    pub dead_letters: u64,
    /// One entry per target that has been used.
    pub consumers: Vec<ConsumerStatus>,
}

impl std::fmt::Display for QueueStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "stream depth   {}", self.depth)?;
        writeln!(f, "callbacks      {}", self.callbacks)?;
        writeln!(f, "dead letters   {}", self.dead_letters)?;
        writeln!(
            f,
            "{:<32} {:>9} {:>9} {:>11} {:>8}",
            "consumer", "pending", "in flight", "redelivered", "waiting"
        )?;
        for c in &self.consumers {
            writeln!(
                f,
                "{:<32} {:>9} {:>9} {:>11} {:>8}",
                c.target, c.pending, c.in_flight, c.redelivered, c.waiting_workers
            )?;
        }
        Ok(())
    }
}

async fn depth(js: &jetstream::Context, name: &str) -> Result<u64, QueueError> {
    let mut s = js.get_stream(name).await.map_err(store_err)?;
    Ok(s.info().await.map_err(store_err)?.state.messages)
}

pub(crate) async fn collect(js: &jetstream::Context) -> Result<QueueStatus, QueueError> {
    let stream = js.get_stream(names::MSG_STREAM).await.map_err(store_err)?;
    let infos: Vec<jetstream::consumer::Info> =
        stream.consumers().try_collect().await.map_err(store_err)?;
    let mut consumers: Vec<ConsumerStatus> = infos
        .into_iter()
        .map(|i| {
            let target = names::target_of_subject(&i.config.filter_subject)
                .map(|t: Target| t.to_string())
                .unwrap_or(i.name);
            ConsumerStatus {
                target,
                pending: i.num_pending,
                in_flight: i.num_ack_pending as u64,
                redelivered: i.num_redelivered as u64,
                waiting_workers: i.num_waiting as u64,
            }
        })
        .collect();
    consumers.sort_by(|a, b| a.target.cmp(&b.target));
    Ok(QueueStatus {
        depth: depth(js, names::MSG_STREAM).await?,
        callbacks: depth(js, names::CB_STREAM).await?,
        dead_letters: depth(js, names::DEAD_STREAM).await?,
        consumers,
    })
}
