//! What a delivery through a route returns: [`Delivered`] or a classified [`RouteError`], each
//! with the list of [`Attempt`]s. Both serialize to JSON for `smsgw send --json` and the service.

use std::fmt;
use std::time::SystemTime;

use serde::{Serialize, Serializer};
use smsgw_core::{ErrorKind, Receipt, SendError};

/// The outcome of one attempt on one gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AttemptKind {
    /// The gateway accepted the message.
    Sent,
    /// Definitely not sent; retry-safe (`ErrorKind::NotSent`).
    NotSent,
    /// The gateway refused this message (`ErrorKind::Refused`).
    Refused,
    /// The gateway definition is wrong for this message (`ErrorKind::Config`).
    Config,
    /// The message may have been sent (`ErrorKind::Unknown`).
    Unknown,
    /// Not tried: `per_recipient` of this gateway is exhausted for the number.
    RateLimited,
    /// Not tried: the gateway's circuit breaker is open.
    BreakerOpen,
}

impl AttemptKind {
    /// The name used in JSON, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptKind::Sent => "sent",
            AttemptKind::NotSent => "not_sent",
            AttemptKind::Refused => "refused",
            AttemptKind::Config => "config",
            AttemptKind::Unknown => "unknown",
            AttemptKind::RateLimited => "rate_limited",
            AttemptKind::BreakerOpen => "breaker_open",
        }
    }
}

impl From<ErrorKind> for AttemptKind {
    fn from(k: ErrorKind) -> Self {
        match k {
            ErrorKind::Config => AttemptKind::Config,
            ErrorKind::Refused => AttemptKind::Refused,
            ErrorKind::NotSent => AttemptKind::NotSent,
            // Unknown, and any kind added later: assume the worst (it may have been sent).
            _ => AttemptKind::Unknown,
        }
    }
}

impl fmt::Display for AttemptKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One attempt (or one gateway skipped) during a delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    /// The gateway id.
    pub gateway: String,
    /// What happened.
    pub kind: AttemptKind,
    /// Why it failed, for a person (never a secret: built from the gateway's classified error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The provider's own code or status, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// How long the attempt took, in milliseconds (0 for a gateway skipped).
    pub ms: u64,
    /// When it started (RFC 3339 in JSON).
    #[serde(serialize_with = "rfc3339")]
    pub at: SystemTime,
}

/// Writes a time as RFC 3339 in UTC, with milliseconds.
pub(crate) fn rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(*t))
}

fn rfc3339_opt<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// `2026-11-30T15:00:00.123Z`.
pub fn format_time(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    dt.format(&fmt).unwrap_or_default()
}

/// A message delivered through a route (or a gateway with its limits).
#[derive(Debug, Clone, Serialize)]
pub struct Delivered {
    /// Always `sent` (beside [`RouteError`]'s `result`, which is the error kind).
    pub result: &'static str,
    /// What the caller asked to send through: a route name or a gateway id.
    pub target: String,
    /// The route, when the target is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The gateway that accepted the message.
    pub gateway: String,
    /// Its receipt (provider ids, parts).
    pub receipt: Receipt,
    /// True when an earlier gateway's outcome was unknown and the route failed over
    /// (`on_unknown = "failover"`): the message may arrive twice.
    pub may_arrive_twice: bool,
    /// A sentence for people when `may_arrive_twice`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// Every attempt, in order; the last one is the successful one.
    pub attempts: Vec<Attempt>,
}

/// Why a delivery failed, beyond the error kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// Every gateway that was tried failed; the attempts say how.
    GatewaysFailed,
    /// A gateway's outcome was unknown and the route stops there (`on_unknown = "stop"`).
    OutcomeUnknown,
    /// The route's deadline passed.
    Deadline,
    /// Every gateway's circuit breaker is open.
    AllOpen,
    /// `per_recipient` is exhausted for this number; see `retry_after`.
    RateLimited,
    /// The target is neither a route nor a gateway.
    UnknownTarget,
}

impl Reason {
    /// The name used in JSON and as the error code.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::GatewaysFailed => "gateways_failed",
            Reason::OutcomeUnknown => "outcome_unknown",
            Reason::Deadline => "deadline",
            Reason::AllOpen => "all_open",
            Reason::RateLimited => "rate_limited",
            Reason::UnknownTarget => "unknown_target",
        }
    }
}

/// A delivery that failed: classified like a gateway's [`SendError`], with the reason, every
/// attempt, and when a retry may succeed where that is known.
#[derive(Debug, Clone, Serialize)]
pub struct RouteError {
    #[serde(rename = "result")]
    kind: ErrorKind,
    target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<String>,
    reason: Reason,
    #[serde(rename = "error")]
    message: String,
    #[serde(
        serialize_with = "rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    retry_after: Option<SystemTime>,
    attempts: Vec<Attempt>,
}

impl RouteError {
    pub(crate) fn new(
        kind: ErrorKind,
        reason: Reason,
        target: &str,
        route: Option<&str>,
        message: String,
        attempts: Vec<Attempt>,
    ) -> Self {
        RouteError {
            kind,
            target: target.to_owned(),
            route: route.map(str::to_owned),
            reason,
            message,
            retry_after: None,
            attempts,
        }
    }

    pub(crate) fn retry_at(mut self, t: Option<SystemTime>) -> Self {
        self.retry_after = t;
        self
    }

    /// The classification: `not_sent` (retry-safe), `refused`, `config` or `unknown`.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Why, beyond the kind (`rate_limited`, `all_open`, `deadline` …).
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// True when the message was definitely not sent by any gateway and sending again is safe.
    pub fn is_retry_safe(&self) -> bool {
        self.kind == ErrorKind::NotSent
    }

    /// True when some gateway may have sent the message.
    pub fn may_have_been_sent(&self) -> bool {
        self.kind == ErrorKind::Unknown
    }

    /// The earliest time a retry may succeed, where known (`rate_limited`, `all_open`).
    pub fn retry_after(&self) -> Option<SystemTime> {
        self.retry_after
    }

    /// Every attempt, in order (gateways skipped included).
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// The route name or gateway id the message was sent to.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// What went wrong, for a person, including what was tried.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error as the core's [`SendError`] (for code that handles gateway errors): the last
    /// gateway tried (or the target), this kind, and the reason as its code.
    pub fn to_send_error(&self) -> SendError {
        let gateway = self
            .attempts
            .last()
            .map_or(self.target.as_str(), |a| a.gateway.as_str());
        SendError::new(self.kind, gateway, self.message.clone()).with_code(self.reason.as_str())
    }
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.route, self.reason) {
            (Some(r), _) => write!(f, "route '{r}': {}", self.message)?,
            (None, Reason::UnknownTarget) => f.write_str(&self.message)?,
            (None, _) => write!(f, "gateway '{}': {}", self.target, self.message)?,
        }
        if let Some(t) = self.retry_after {
            write!(f, "; retry after {}", format_time(t))?;
        }
        write!(f, " [{}]", self.to_send_error().outcome())
    }
}

impl std::error::Error for RouteError {}

/// `Delivered` or `RouteError`: what [`Route::send`](crate::Route::send) returns.
pub type Delivery = Result<Delivered, RouteError>;

/// A delivery as one JSON object: `result` is `sent` or the error kind, and `attempts` lists
/// every attempt either way.
pub fn delivery_json(d: &Delivery) -> serde_json::Value {
    match d {
        Ok(ok) => serde_json::to_value(ok),
        Err(e) => serde_json::to_value(e),
    }
    .unwrap_or_default()
}

/// `gw1 not_sent ×3 (HTTP 503), gw2 refused (HTTP 400)`: what was tried, for error messages.
pub(crate) fn summary(attempts: &[Attempt]) -> String {
    let mut parts: Vec<(String, usize)> = Vec::new();
    for a in attempts {
        let mut s = format!("{} {}", a.gateway, a.kind);
        if let Some(e) = &a.error {
            s.push_str(&format!(" ({e})"));
        }
        match parts.last_mut() {
            Some((last, n)) if *last == s => *n += 1,
            _ => parts.push((s, 1)),
        }
    }
    if parts.is_empty() {
        return "nothing was tried".into();
    }
    let list: Vec<String> = parts
        .into_iter()
        .map(|(s, n)| if n > 1 { format!("{s} ×{n}") } else { s })
        .collect();
    format!("tried: {}", list.join(", "))
}
