//! How one message is sent to its target: the [`Dispatcher`] the worker calls, and the one that
//! sends through the catalog's [`Router`](smsgw_routing::Router) — a gateway with its limits and
//! breaker, or a route with failover, retries and its deadline.

use std::time::UNIX_EPOCH;

use smsgw_core::{ErrorKind, Message, Receipt, SendError};
use smsgw_queue::{Attempt, Millis, Target};
use smsgw_routing::{Delivery, Reason};

use crate::catalog::SharedCatalog;

/// What one dispatch did: every try (a route may try several gateways) and the result.
#[derive(Debug)]
pub struct Dispatched {
    /// Each try, in order (gateways skipped by an open breaker or a limit included).
    pub attempts: Vec<Attempt>,
    /// The receipt of the gateway that took it, or the last error.
    pub result: Result<Receipt, SendError>,
    /// For a retry-safe failure: the earliest time a retry can succeed, where known (every
    /// breaker open until then; a gateway's `rate` had no token in time).
    pub retry_after: Option<Millis>,
}

/// Sends one message to a target.
#[async_trait::async_trait]
pub trait Dispatcher: Send + Sync + 'static {
    /// Sends `msg` to `target`.
    async fn dispatch(&self, target: &Target, msg: &Message) -> Dispatched;
}

/// Sends through the router of the current [`Catalog`](crate::catalog::Catalog) (read at every
/// send, so that changes and reloads apply at once).
pub struct RouterDispatcher {
    /// The catalog.
    pub catalog: SharedCatalog,
}

#[async_trait::async_trait]
impl Dispatcher for RouterDispatcher {
    async fn dispatch(&self, target: &Target, msg: &Message) -> Dispatched {
        let router = self.catalog.read().expect("not poisoned").router.clone();
        dispatched(router.send(target.name(), msg).await)
    }
}

fn millis(t: std::time::SystemTime) -> Millis {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// The router's delivery as the queue records it.
fn dispatched(d: Delivery) -> Dispatched {
    let attempts = |list: &[smsgw_routing::Attempt]| -> Vec<Attempt> {
        list.iter()
            .map(|a| Attempt {
                gateway: a.gateway.clone(),
                kind: a.kind.as_str().to_owned(),
                error: a.error.clone(),
                ms: a.ms,
                at: millis(a.at),
            })
            .collect()
    };
    match d {
        Ok(ok) => Dispatched {
            attempts: attempts(&ok.attempts),
            result: Ok(ok.receipt),
            retry_after: None,
        },
        Err(e) => {
            let mut err = e.to_send_error();
            // A number over its `per_recipient` limit is refused for now: a service does not
            // hold an OTP for the hour the limit lasts (the error says when it may be sent).
            if e.reason() == Reason::RateLimited && e.kind() == ErrorKind::NotSent {
                err = SendError::new(ErrorKind::Refused, err.gateway(), e.to_string())
                    .with_code(Reason::RateLimited.as_str());
            }
            Dispatched {
                attempts: attempts(e.attempts()),
                retry_after: e.retry_after().map(millis),
                result: Err(err),
            }
        }
    }
}
