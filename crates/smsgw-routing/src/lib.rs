//! Routes for [smsgw](https://example.invalid/smsgw): failover between gateways, retries with
//! backoff, a deadline, per-gateway rate limits, a circuit breaker and a per-recipient guard
//! against SMS pumping. A [`Route`] sends like a gateway: `send(&Message)` gives the gateway that
//! delivered with its receipt and every attempt, or a classified [`RouteError`] that says what was
//! tried — and never sends a message twice when a first try may have reached the phone, unless the
//! route says `on_unknown = "failover"` (and then the result says so).
//!
//! The configuration lives in `smsgw.toml` beside `[gateways.*]`: `[routes.NAME]` tables and
//! `[gateways.ID.limits]` tables ([`RoutingConfig`]); the semantics are in `docs/routing.md`.
//! Both are sections registered with the core: `Config::load` keeps them, `Gateways::build`
//! has their syntax checked here, [`check_references`] finds routes naming unknown gateways, and
//! [`RoutingConfig::from_config`] reads them for [`Router::build`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use smsgw_core::{Gateways, Message, Registry};
//! let config = smsgw_core::Config::load("smsgw.toml".as_ref())?;
//! let gateways = Gateways::build(&config, Registry::global())?;
//! let routing = smsgw_routing::RoutingConfig::from_config(&config);
//! let router = smsgw_routing::Router::build(&routing, &gateways)?;
//! match router.send("otp", &Message::new("+491511234567", "123456")).await {
//!     Ok(d) => println!("sent by {} after {} attempt(s)", d.gateway, d.attempts.len()),
//!     Err(e) => eprintln!("{e}"),
//! }
//! # Ok(()) }
//! ```
//!
//! ## Metrics
//! Beside the core's `sms_send_total` and `sms_send_duration_seconds`:
//! `sms_route_deliveries_total{route,result}`, `sms_route_attempts_total{route,gateway,result}`,
//! `sms_route_failovers_total{route,gateway}` (moving on to `gateway`),
//! `sms_gateway_breaker_state{gateway}` (0 closed, 1 open, 2 half-open),
//! `sms_gateway_breaker_opened_total{gateway}`, `sms_gateway_rate_limit_waits_total{gateway}`,
//! `sms_gateway_rate_limit_wait_seconds{gateway}`, `sms_gateway_per_recipient_rejected_total{gateway}`.
#![deny(missing_docs)]

mod breaker;
mod bulk;
mod config;
mod deliver;
mod limits;
mod listing;
mod load;
mod outcome;
mod router;

pub use breaker::BreakerState;
pub use bulk::RouteOutcome;
pub use config::{
    DEFAULT_BACKOFF, DEFAULT_BREAKER_COOLDOWN, DEFAULT_BREAKER_FAILURES, DEFAULT_DEADLINE, Limits,
    MAX_BACKOFF_SECS, MAX_RATE, MAX_RETRIES, OnUnknown, RouteDef, RoutingConfig, RuleDef,
    check_section,
};
pub use limits::{MAX_PER_RECIPIENT, MAX_WINDOW, PerRecipient, RECIPIENT_BUDGET, SharedRate};
pub use listing::{GatewayLimits, Listing};
pub use load::{check_references, load_toml_str};
pub use outcome::{
    Attempt, AttemptKind, Delivered, Delivery, Reason, RouteError, delivery_json, format_time,
};
pub use router::{Route, Router};
