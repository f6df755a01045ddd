//! Loopback sinks that stand in for SMS gateways (HTTP, sipgate XML-RPC/REST, SMTP, SMPP), the
//! harnesses that point each provider at its sink, and the provider conformance suite run against
//! them. Used by `smsgw sink`, `smsgw demo`, `cargo xtask conformance` and the tests; it is shipped
//! code, so the `smsgw` binary links no test kit.
//!
//! Every sink listens on `127.0.0.1` on a port of its choice (or one given), decodes what it
//! receives, and records it twice: as protocol-specific records (the sink's own type) and as a
//! uniform [`Received`] (protocol, recipient, text) in a [`Recorder`] that tests, `smsgw sink` and
//! `smsgw demo` read. Each sink can be told to misbehave through its [`FaultPlan`].
#![deny(missing_docs)]

pub mod conformance;
pub mod harness;
pub mod http;
pub mod logs;
pub mod sipgate;
pub mod smsc;
pub mod smtp;
pub mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, broadcast};

/// One message as a sink understood it, whatever the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Received {
    /// `http`, `xmlrpc`, `sipgate-rest`, `smtp` or `smpp`.
    pub protocol: String,
    /// The recipient as it arrived (query/form/JSON value, SIP URI number, mail recipient, SMPP
    /// destination_addr).
    pub recipient: String,
    /// The message text, decoded (and reassembled from its parts for SMPP).
    pub text: String,
    /// Protocol details (the whole decoded request) as JSON.
    pub detail: serde_json::Value,
}

/// What every sink offers, so that the conformance suite, `smsgw sink` and `smsgw demo` can use any
/// of them.
pub trait SinkHandle: Send + Sync {
    /// The address it listens on.
    fn addr(&self) -> SocketAddr;
    /// What it received (a handle sharing the sink's records).
    fn recorder(&self) -> Recorder;
    /// How it misbehaves (a handle sharing the sink's plan).
    fn faults(&self) -> FaultPlan;
}

#[doc(hidden)]
pub use async_trait::async_trait;
#[doc(hidden)]
pub use inventory;

/// Collects [`Received`] messages; shared by a sink and whoever reads it.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<RecorderInner>,
}

struct RecorderInner {
    items: Mutex<Vec<Received>>,
    /// Messages recorded, kept or not.
    total: AtomicUsize,
    /// How many records this recorder and its sink's own request logs keep (see
    /// [`Recorder::keep_at_most`]).
    keep: AtomicUsize,
    notify: Notify,
    tx: broadcast::Sender<Received>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(1024);
        Recorder {
            inner: Arc::new(RecorderInner {
                items: Mutex::new(Vec::new()),
                total: AtomicUsize::new(0),
                keep: AtomicUsize::new(usize::MAX),
                notify: Notify::new(),
                tx,
            }),
        }
    }

    /// Records one message and wakes waiters and subscribers.
    pub fn record(&self, r: Received) {
        {
            let mut items = self.inner.items.lock().unwrap();
            if self.keeps(items.len()) {
                items.push(r.clone());
            }
            self.inner.total.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self.inner.tx.send(r);
        self.inner.notify.notify_waiters();
    }

    /// Keeps at most `n` records from now on, here and in the sink's own request log; later
    /// messages are still counted by [`len`](Self::len) and sent to subscribers. A long-running
    /// sink (`smsgw sink`, a benchmark) keeps 0, so that its memory does not grow with what it
    /// receives; tests keep everything (the default).
    pub fn keep_at_most(&self, n: usize) {
        self.inner.keep.store(n, Ordering::Relaxed);
    }

    /// Whether a log holding `len` records may take one more (see
    /// [`keep_at_most`](Self::keep_at_most)). Sinks ask this before adding to their request logs.
    pub fn keeps(&self, len: usize) -> bool {
        len < self.inner.keep.load(Ordering::Relaxed)
    }

    /// The records kept so far (all of them unless [`keep_at_most`](Self::keep_at_most) said
    /// otherwise).
    pub fn all(&self) -> Vec<Received> {
        self.inner.items.lock().unwrap().clone()
    }

    /// How many messages were recorded, kept or not.
    pub fn len(&self) -> usize {
        self.inner.total.load(Ordering::Relaxed)
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything recorded.
    pub fn clear(&self) {
        let mut items = self.inner.items.lock().unwrap();
        items.clear();
        self.inner.total.store(0, Ordering::Relaxed);
    }

    /// A live feed of messages recorded from now on (for printing them as they arrive).
    pub fn subscribe(&self) -> broadcast::Receiver<Received> {
        self.inner.tx.subscribe()
    }

    /// Waits until at least `n` messages are recorded or `timeout` passes; returns what is there.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.notify.notified();
            if self.len() >= n {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        self.all()
    }
}

/// How a sink misbehaves for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer normally, but only after this delay.
    Delay(Duration),
    /// Read the request and never answer (keep the connection open).
    NeverAnswer,
    /// Close the connection instead of answering.
    Close,
    /// Answer with this code and text: an HTTP status and body, an SMTP reply, an SMPP
    /// command_status (e.g. `0x58` ESME_RTHROTTLED) with the text ignored, an XML-RPC
    /// `StatusCode`/`StatusString` (an XML-RPC `<fault>` is the sipgate sink's `answers()`).
    Reply {
        /// The status/reply code.
        code: u32,
        /// The body/reply text.
        text: String,
    },
}

#[derive(Debug, Clone)]
struct Rule<T> {
    from: usize,
    until: Option<usize>,
    value: T,
}

/// Which requests of a sink get a special answer, and which. Requests are numbered from 0 in
/// arrival order (for SMPP: submit_sm PDUs; for SMTP: messages at DATA; for HTTP: requests).
/// The newest matching rule wins.
pub struct Plan<T> {
    rules: Arc<Mutex<Vec<Rule<T>>>>,
    counter: Arc<Mutex<usize>>,
}

/// How a sink misbehaves, request by request.
pub type FaultPlan = Plan<Fault>;

impl<T> Default for Plan<T> {
    fn default() -> Self {
        Plan {
            rules: Arc::new(Mutex::new(Vec::new())),
            counter: Arc::new(Mutex::new(0)),
        }
    }
}

impl<T> Clone for Plan<T> {
    fn clone(&self) -> Self {
        Plan {
            rules: self.rules.clone(),
            counter: self.counter.clone(),
        }
    }
}

impl<T: Clone> Plan<T> {
    /// Every request from now on gets `value`.
    pub fn always(&self, value: T) {
        let from = *self.counter.lock().unwrap();
        self.push(from, None, value);
    }

    /// Only request number `n` (counted from the sink's start) gets `value`.
    pub fn nth(&self, n: usize, value: T) {
        self.push(n, Some(n + 1), value);
    }

    /// Every request from number `n` on gets `value`.
    pub fn from(&self, n: usize, value: T) {
        self.push(n, None, value);
    }

    /// The next `count` requests get `value`, then the sink behaves again.
    pub fn next(&self, count: usize, value: T) {
        let from = *self.counter.lock().unwrap();
        self.push(from, Some(from + count), value);
    }

    /// Back to normal behaviour.
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    fn push(&self, from: usize, until: Option<usize>, value: T) {
        self.rules.lock().unwrap().push(Rule { from, until, value });
    }

    /// For sinks: takes the next request number and returns what applies to it, or `None` to
    /// behave.
    pub fn next_request(&self) -> Option<T> {
        let n = {
            let mut c = self.counter.lock().unwrap();
            let n = *c;
            *c += 1;
            n
        };
        self.rules
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|r| n >= r.from && r.until.is_none_or(|u| n < u))
            .map(|r| r.value.clone())
    }

    /// How many requests the sink has numbered so far.
    pub fn requests_seen(&self) -> usize {
        *self.counter.lock().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_plan_orders_rules() {
        let p = FaultPlan::default();
        p.nth(1, Fault::Close);
        p.from(3, Fault::NeverAnswer);
        let got: Vec<_> = (0..5).map(|_| p.next_request()).collect();
        assert_eq!(
            got,
            vec![
                None,
                Some(Fault::Close),
                None,
                Some(Fault::NeverAnswer),
                Some(Fault::NeverAnswer)
            ]
        );
        p.clear();
        p.next(1, Fault::Close);
        assert_eq!(p.next_request(), Some(Fault::Close));
        assert_eq!(p.next_request(), None);
    }
}
