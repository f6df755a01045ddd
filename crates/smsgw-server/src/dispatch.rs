//! How one message is sent to its target (a gateway, or a route through its gateways): the
//! [`Dispatcher`] the worker calls, and the one built on the server's catalog.

use std::time::{Duration, Instant};

use smsgw_core::{ErrorKind, Message, Receipt, SendError};
use smsgw_queue::{Attempt, Target, now_ms};

use crate::catalog::SharedCatalog;

/// What one dispatch did: every try (a route may try several gateways) and the result.
#[derive(Debug)]
pub struct Dispatched {
    /// Each try, in order.
    pub attempts: Vec<Attempt>,
    /// The receipt of the gateway that took it, or the last error.
    pub result: Result<Receipt, SendError>,
}

/// Sends one message to a target. Implemented for plain gateways here ([`CatalogDispatcher`]);
/// routes with breakers and limits come from `smsgw-routing`.
#[async_trait::async_trait]
pub trait Dispatcher: Send + Sync + 'static {
    /// Sends `msg` to `target`.
    async fn dispatch(&self, target: &Target, msg: &Message) -> Dispatched;
}

/// Sends through the gateways of the [`Catalog`](crate::catalog::Catalog): a gateway target
/// once; a route through its gateways in order, moving on only while the outcome is `not_sent`.
pub struct CatalogDispatcher {
    /// The catalog, read at every send (so reloads apply at once).
    pub catalog: SharedCatalog,
}

#[async_trait::async_trait]
impl Dispatcher for CatalogDispatcher {
    async fn dispatch(&self, target: &Target, msg: &Message) -> Dispatched {
        let cat = self.catalog.read().expect("not poisoned").clone();
        let ids: Vec<String> = match target {
            Target::Gateway(g) => vec![g.clone()],
            Target::Route(r) => match cat.routes.get(r) {
                Some((def, _)) => def.gateways.clone(),
                None => {
                    let e = SendError::new(ErrorKind::Config, r.as_str(), "no such route");
                    return Dispatched {
                        attempts: vec![attempt(r, &Err(e.clone()), Duration::ZERO)],
                        result: Err(e),
                    };
                }
            },
        };
        let mut attempts = Vec::new();
        let mut last = Err(SendError::new(
            ErrorKind::Config,
            target.name(),
            "no gateway",
        ));
        for id in ids {
            let start = Instant::now();
            let result = match cat.gateways.get(&id) {
                Some(g) => g.send(msg).await,
                None => Err(SendError::new(
                    ErrorKind::Config,
                    id.as_str(),
                    "no such gateway (or its definition is invalid)",
                )),
            };
            attempts.push(attempt(&id, &result, start.elapsed()));
            let go_on = matches!(&result, Err(e) if e.kind() == ErrorKind::NotSent);
            last = result;
            if !go_on {
                break;
            }
        }
        Dispatched {
            attempts,
            result: last,
        }
    }
}

fn attempt(gateway: &str, r: &Result<Receipt, SendError>, took: Duration) -> Attempt {
    Attempt {
        gateway: gateway.to_owned(),
        kind: match r {
            Ok(_) => "sent".into(),
            Err(e) => e.kind().as_str().into(),
        },
        error: r.as_ref().err().map(|e| e.to_string()),
        ms: took.as_millis() as u64,
        at: now_ms(),
    }
}
