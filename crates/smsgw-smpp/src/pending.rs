//! Responses from the SMSC, routed to the requests waiting for them by sequence number.

use std::collections::HashMap;

use rusmpp::Command;
use tokio::sync::oneshot;

/// The requests of one connection that wait for their response. A waiter is registered before
/// its request is written, so a response can never arrive before it; responses nobody waits for
/// (late ones, after a send gave up) are dropped.
#[derive(Default)]
pub(crate) struct Pending {
    waiters: HashMap<u32, oneshot::Sender<Command>>,
    closed: bool,
}

impl Pending {
    /// Waits for the response to `seq`; `None` when the connection is already gone.
    pub fn wait(&mut self, seq: u32) -> Option<oneshot::Receiver<Command>> {
        if self.closed {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.insert(seq, tx);
        Some(rx)
    }

    /// The request `seq` gave up waiting.
    pub fn abandon(&mut self, seq: u32) {
        self.waiters.remove(&seq);
    }

    /// A response arrived.
    pub fn deliver(&mut self, cmd: Command) {
        let seq = cmd.sequence_number();
        match self.waiters.remove(&seq) {
            Some(tx) => {
                let _ = tx.send(cmd);
            }
            None => {
                tracing::trace!(sequence = seq, command = ?cmd.id(), "response nobody waits for")
            }
        }
    }

    /// The connection is gone: every waiter learns it (its receiver errors).
    pub fn close(&mut self) {
        self.closed = true;
        self.waiters.clear();
    }
}
