//! What `smsgw gateways --json` shows of routing: routes, and each gateway's limits and breaker.

use serde::Serialize;

use crate::breaker::BreakerState;
use crate::config::{Limits, RouteDef};
use crate::outcome::rfc3339;
use crate::router::Router;

/// Routes and gateway limits, serializable.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    /// Every route in file order.
    pub routes: Vec<RouteDef>,
    /// Every gateway's limits (defaults included) and breaker state, in file order.
    pub gateways: Vec<GatewayLimits>,
}

/// One gateway's limits and breaker state.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayLimits {
    /// The gateway id.
    pub gateway: String,
    /// Its limits (the defaults when it has no `limits` table).
    pub limits: Limits,
    /// Its circuit breaker now.
    pub breaker: BreakerState,
    /// Until when an open breaker skips it.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_time")]
    pub open_until: Option<std::time::SystemTime>,
    /// How many of the last (at most 100) attempts on it said something about the gateway
    /// (sent, refused, not sent, unknown), since the router was built.
    pub recent_attempts: usize,
    /// How many of those failed in a way that counts against the gateway (not sent, unknown).
    pub recent_failures: usize,
}

fn opt_time<S: serde::Serializer>(
    t: &Option<std::time::SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

impl Router {
    /// The routes and every gateway's limits and breaker state.
    ///
    /// ```
    /// # use smsgw_core::{Config, Gateways, Registry};
    /// let gateways = Gateways::default();
    /// let router = smsgw_routing::Router::build(&Default::default(), &gateways).unwrap();
    /// let json = serde_json::to_value(router.listing()).unwrap();
    /// assert_eq!(json["routes"], serde_json::json!([]));
    /// ```
    pub fn listing(&self) -> Listing {
        Listing {
            routes: self.config().routes.values().cloned().collect(),
            gateways: self
                .states()
                .map(|s| {
                    let (breaker, open_until) = self
                        .breaker(s.gateway.id())
                        .unwrap_or((BreakerState::Closed, None));
                    let (recent_attempts, recent_failures) = s.breaker.recent();
                    GatewayLimits {
                        gateway: s.gateway.id().to_owned(),
                        limits: s.limits.clone(),
                        breaker,
                        open_until,
                        recent_attempts,
                        recent_failures,
                    }
                })
                .collect(),
        }
    }
}
