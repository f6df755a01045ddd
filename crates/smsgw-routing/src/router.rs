//! The [`Router`]: gateways with their limits and breakers, and the routes over them. A
//! [`Route`] sends like a gateway; this is where failover, retries and the deadline live.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use indexmap::IndexMap;
use regex::Regex;
use smsgw_core::{ConfigErrors, ConfigProblem, ErrorKind, Gateway, Gateways, Message, SendError};
use tokio::time::Instant;

use crate::breaker::{Breaker, BreakerState, Verdict};
use crate::config::{
    DEFAULT_DEADLINE, Limits, OnUnknown, RouteDef, RoutingConfig, compile_pattern, route_problem,
};
use crate::limits::{RateLimit, RecipientGuard};
use crate::outcome::{Attempt, AttemptKind, Delivered, Delivery, Reason, RouteError, summary};

/// Gateways with their limits and circuit breakers, and the routes over them. Cheap to clone
/// (shared state): the rate buckets, per-recipient tables and breakers are shared by every clone
/// and every concurrent send.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.inner.routes.keys().collect::<Vec<_>>())
            .field("gateways", &self.inner.states.keys().collect::<Vec<_>>())
            .finish()
    }
}

struct Inner {
    gateways: Gateways,
    states: IndexMap<String, GatewayState>,
    routes: IndexMap<String, Arc<Plan>>,
    config: RoutingConfig,
}

pub(crate) struct GatewayState {
    pub(crate) gateway: Gateway,
    pub(crate) limits: Limits,
    pub(crate) breaker: Breaker,
    rate: Option<RateLimit>,
    recipients: Option<RecipientGuard>,
}

/// How to deliver: a route's settings with compiled rules, or a single gateway's.
struct Plan {
    route: Option<String>,
    gateways: Vec<String>,
    rules: Vec<(Regex, Vec<String>)>,
    deadline: Duration,
    retries: u32,
    backoff: Duration,
    on_unknown: OnUnknown,
    /// Routes cut a send in flight at the deadline; a gateway sent to directly keeps its own
    /// TIMEOUT (the deadline then bounds only the wait for a rate token).
    cut_sends: bool,
}

/// Something to send through: a route, or one gateway with its limits. Sends like a gateway
/// ([`Route::send`], [`Route::send_stream`], [`Route::send_all`]). Cheap to clone.
#[derive(Clone)]
pub struct Route {
    inner: Arc<Inner>,
    target: String,
    plan: Arc<Plan>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("target", &self.target)
            .field("gateways", &self.plan.gateways)
            .finish()
    }
}

impl Router {
    /// Checks the routing configuration against the built gateways (unknown gateways, names
    /// shared by a route and a gateway, patterns, rates) and sets up every gateway's limits and
    /// breaker. Every problem is reported at once.
    pub fn build(config: &RoutingConfig, gateways: &Gateways) -> Result<Router, ConfigErrors> {
        let mut errs = config.check_gateways(|id| gateways.get(id).is_some());
        let mut states = IndexMap::new();
        for g in gateways.iter() {
            let limits = config.limits_of(g.id());
            let rate = match limits.rate {
                Some(r) => {
                    let rl = RateLimit::new(r, limits.burst);
                    if rl.is_none() {
                        errs.push(ConfigProblem::gateway(
                            g.id(),
                            Some("limits.rate"),
                            format!("{r} messages per second cannot be a token bucket"),
                        ));
                    }
                    rl
                }
                None => None,
            };
            let state = GatewayState {
                breaker: Breaker::new(g.id(), limits.breaker_failures, limits.breaker_cooldown),
                recipients: limits.per_recipient.map(RecipientGuard::new),
                rate,
                limits,
                gateway: g.clone(),
            };
            states.insert(g.id().to_owned(), state);
        }
        let mut routes = IndexMap::new();
        for (name, def) in &config.routes {
            routes.insert(name.clone(), Arc::new(plan_for(def, &mut errs)));
        }
        errs.into_result(Router {
            inner: Arc::new(Inner {
                gateways: gateways.clone(),
                states,
                routes,
                config: config.clone(),
            }),
        })
    }

    /// The route named `target`, or the gateway with that id (sent to alone, with its limits and
    /// breaker, no retries). `None` when neither exists.
    pub fn route(&self, target: &str) -> Option<Route> {
        let plan = match self.inner.routes.get(target) {
            Some(p) => p.clone(),
            None => {
                self.inner.states.get(target)?;
                Arc::new(Plan {
                    route: None,
                    gateways: vec![target.to_owned()],
                    rules: Vec::new(),
                    deadline: DEFAULT_DEADLINE,
                    retries: 0,
                    backoff: Duration::ZERO,
                    on_unknown: OnUnknown::Stop,
                    cut_sends: false,
                })
            }
        };
        Some(Route {
            inner: self.inner.clone(),
            target: target.to_owned(),
            plan,
        })
    }

    /// Sends `message` through the route or gateway named `target`. An unknown target is a
    /// `config` error with the reason `unknown_target`.
    pub async fn send(&self, target: &str, message: &Message) -> Delivery {
        match self.route(target) {
            Some(r) => r.send(message).await,
            None => Err(RouteError::new(
                ErrorKind::Config,
                Reason::UnknownTarget,
                target,
                None,
                format!(
                    "'{target}' is neither a route nor a gateway (routes: {}; gateways: {})",
                    list(self.inner.routes.keys()),
                    list(self.inner.states.keys())
                ),
                Vec::new(),
            )),
        }
    }

    /// The route names, in file order.
    pub fn route_names(&self) -> impl Iterator<Item = &str> {
        self.inner.routes.keys().map(String::as_str)
    }

    /// The gateways.
    pub fn gateways(&self) -> &Gateways {
        &self.inner.gateways
    }

    /// The routing configuration the router was built from.
    pub fn config(&self) -> &RoutingConfig {
        &self.inner.config
    }

    pub(crate) fn states(&self) -> impl Iterator<Item = &GatewayState> {
        self.inner.states.values()
    }

    /// The breaker state of gateway `id` and, when open, until when it skips the gateway.
    pub fn breaker(&self, id: &str) -> Option<(BreakerState, Option<SystemTime>)> {
        let (s, until) = self.inner.states.get(id)?.breaker.state();
        Some((s, until.map(to_system_time)))
    }

    /// Closes every gateway's connections.
    pub async fn shutdown(&self) {
        self.inner.gateways.shutdown().await
    }
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn plan_for(def: &RouteDef, errs: &mut ConfigErrors) -> Plan {
    let mut rules = Vec::new();
    for (i, rule) in def.rules.iter().enumerate() {
        match compile_pattern(&rule.pattern) {
            Ok(re) => rules.push((re, rule.gateways.clone())),
            Err(e) => errs.push(route_problem(
                &def.name,
                Some(&format!("rules[{i}].match")),
                e,
            )),
        }
    }
    if def.gateways.is_empty() {
        errs.push(route_problem(
            &def.name,
            Some("gateways"),
            "is empty: name at least one gateway",
        ));
    }
    Plan {
        route: Some(def.name.clone()),
        gateways: def.gateways.clone(),
        rules,
        deadline: def.deadline,
        retries: def.retries,
        backoff: def.backoff,
        on_unknown: def.on_unknown,
        cut_sends: true,
    }
}

fn to_system_time(t: Instant) -> SystemTime {
    let now = Instant::now();
    if t >= now {
        SystemTime::now() + (t - now)
    } else {
        SystemTime::now() - (now - t)
    }
}

/// The wait before retry number `n` (1-based): `backoff × 2^(n-1)`, plus up to 25 % jitter so that
/// many messages failing together do not retry together.
fn backoff_delay(backoff: Duration, n: u32) -> Duration {
    let base = backoff.saturating_mul(1 << (n.saturating_sub(1)).min(16));
    base + base.mul_f64(fastrand::f64() * 0.25)
}

impl Route {
    /// The route name or gateway id.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Delivers one message: the gateways in order (those of the first rule whose pattern matches
    /// the phone number, else the route's), retrying retry-safe failures with backoff, failing
    /// over on `refused` and `config` at once, stopping on `unknown` unless `on_unknown =
    /// "failover"`, all within the deadline. See `docs/routing.md`.
    pub async fn send(&self, message: &Message) -> Delivery {
        let plan = &*self.plan;
        let label = self.target.clone();
        let result = Delivering {
            route: self,
            message,
            deadline: Instant::now() + plan.deadline,
            attempts: Vec::new(),
            may_arrive_twice: false,
            short_of_time: false,
        }
        .run()
        .await;
        let outcome = match &result {
            Ok(_) => "sent",
            Err(e) => e.kind().as_str(),
        };
        metrics::counter!("sms_route_deliveries_total", "route" => label, "result" => outcome)
            .increment(1);
        result
    }

    fn gateways_for(&self, phone: &str) -> &[String] {
        self.plan
            .rules
            .iter()
            .find(|(re, _)| re.is_match(phone))
            .map_or(&self.plan.gateways, |(_, g)| g)
    }
}

/// One delivery in progress.
struct Delivering<'a> {
    route: &'a Route,
    message: &'a Message,
    deadline: Instant,
    attempts: Vec<Attempt>,
    may_arrive_twice: bool,
    /// A retry was given up because its backoff would have passed the deadline.
    short_of_time: bool,
}

/// What one gateway's turn ended with.
enum Turn {
    Next,
    Done(Box<Delivery>),
}

impl Delivering<'_> {
    async fn run(mut self) -> Delivery {
        let route = self.route;
        let list = route.gateways_for(&self.message.phone);
        let mut skipped_until: Vec<Option<Instant>> = Vec::new();
        let mut tried = false;
        for (i, id) in list.iter().enumerate() {
            let Some(state) = route.inner.states.get(id) else {
                continue; // checked at build time
            };
            if i > 0 {
                metrics::counter!("sms_route_failovers_total", "route" => route.target.clone(), "gateway" => id.clone())
                    .increment(1);
            }
            if let Turn::Done(d) = self.turn(state, &mut skipped_until, &mut tried).await {
                return *d;
            }
        }
        if !tried && !skipped_until.is_empty() {
            let retry = skipped_until.iter().flatten().min().copied();
            return Err(self
                .fail(
                    ErrorKind::NotSent,
                    Reason::AllOpen,
                    "every gateway's circuit breaker is open: nothing was sent".into(),
                )
                .retry_at(retry.map(to_system_time)));
        }
        if self.short_of_time {
            return self.deadline_error(false);
        }
        let kind = self.overall_kind();
        Err(self.fail(
            kind,
            Reason::GatewaysFailed,
            "no gateway delivered the message".into(),
        ))
    }

    /// Unknown beats not_sent beats refused beats config: the kind says what a caller may do next.
    fn overall_kind(&self) -> ErrorKind {
        let has = |k: AttemptKind| self.attempts.iter().any(|a| a.kind == k);
        if self.may_arrive_twice || has(AttemptKind::Unknown) {
            ErrorKind::Unknown
        } else if has(AttemptKind::NotSent)
            || has(AttemptKind::BreakerOpen)
            || self.attempts.is_empty()
        {
            ErrorKind::NotSent
        } else if has(AttemptKind::Refused) {
            ErrorKind::Refused
        } else {
            ErrorKind::Config
        }
    }

    fn fail(&mut self, kind: ErrorKind, reason: Reason, what: String) -> RouteError {
        let attempts = std::mem::take(&mut self.attempts);
        let mut message = format!("{what}; {}", summary(&attempts));
        if kind == ErrorKind::Unknown && reason != Reason::OutcomeUnknown {
            message.push_str("; an earlier attempt may have sent the message");
        }
        RouteError::new(
            kind,
            reason,
            &self.route.target,
            self.route.plan.route.as_deref(),
            message,
            attempts,
        )
    }

    fn deadline_error(&mut self, cut: bool) -> Delivery {
        let kind = if cut {
            ErrorKind::Unknown
        } else {
            self.overall_kind()
        };
        let secs = self.route.plan.deadline.as_secs_f64();
        Err(self.fail(
            kind,
            Reason::Deadline,
            format!("the deadline of {secs} s passed"),
        ))
    }

    fn note(
        &mut self,
        gateway: &str,
        kind: AttemptKind,
        err: Option<&SendError>,
        at: SystemTime,
        took: Duration,
    ) {
        metrics::counter!("sms_route_attempts_total", "route" => self.route.target.clone(), "gateway" => gateway.to_owned(), "result" => kind.as_str())
            .increment(1);
        self.attempts.push(Attempt {
            gateway: gateway.to_owned(),
            kind,
            error: err.map(|e| e.message().to_owned()),
            code: err.and_then(|e| e.code().map(str::to_owned)),
            ms: took.as_millis().try_into().unwrap_or(u64::MAX),
            at,
        });
    }

    /// Tries one gateway, with retries; `Next` moves on to the next gateway.
    async fn turn(
        &mut self,
        state: &GatewayState,
        skipped_until: &mut Vec<Option<Instant>>,
        tried: &mut bool,
    ) -> Turn {
        let plan = &*self.route.plan;
        let id = state.gateway.id();
        let mut tries = 0u32;
        loop {
            if Instant::now() >= self.deadline {
                return Turn::Done(Box::new(self.deadline_error(false)));
            }
            let permit = match state.breaker.admit() {
                Ok(p) => p,
                Err(until) => {
                    let err = SendError::new(
                        ErrorKind::NotSent,
                        id,
                        "skipped: the circuit breaker is open",
                    );
                    self.note(
                        id,
                        AttemptKind::BreakerOpen,
                        Some(&err),
                        SystemTime::now(),
                        Duration::ZERO,
                    );
                    skipped_until.push(until);
                    return Turn::Next;
                }
            };
            let reservation = match &state.recipients {
                None => None,
                Some(guard) => {
                    match guard.reserve(&state.gateway.rewrite_phone(&self.message.phone)) {
                        Ok(r) => Some(r),
                        Err(retry) => {
                            drop(permit);
                            return Turn::Done(Box::new(self.rate_limited(state, retry)));
                        }
                    }
                }
            };
            let refund = |r: Option<_>| {
                if let (Some(g), Some(r)) = (&state.recipients, r) {
                    g.refund(r);
                }
            };
            if let Some(rate) = &state.rate {
                match rate.acquire(self.deadline).await {
                    Ok(waited) if !waited.is_zero() => {
                        metrics::counter!("sms_gateway_rate_limit_waits_total", "gateway" => id.to_owned()).increment(1);
                        metrics::histogram!("sms_gateway_rate_limit_wait_seconds", "gateway" => id.to_owned())
                            .record(waited.as_secs_f64());
                    }
                    Ok(_) => {}
                    Err(()) => {
                        drop(permit);
                        refund(reservation);
                        let err = SendError::new(
                            ErrorKind::NotSent,
                            id,
                            format!(
                                "no send token (rate {}/s) before the deadline",
                                state.limits.rate.unwrap_or_default()
                            ),
                        );
                        self.note(
                            id,
                            AttemptKind::NotSent,
                            Some(&err),
                            SystemTime::now(),
                            Duration::ZERO,
                        );
                        return Turn::Done(Box::new(self.deadline_error(false)));
                    }
                }
            }
            *tried = true;
            tries += 1;
            let at = SystemTime::now();
            let start = Instant::now();
            let mut cut = false;
            let result = if plan.cut_sends {
                match tokio::time::timeout_at(self.deadline, state.gateway.send(self.message)).await
                {
                    Ok(r) => r,
                    Err(_) => {
                        cut = true;
                        Err(SendError::new(
                            ErrorKind::Unknown,
                            id,
                            "cut by the route's deadline while the gateway had the message",
                        ))
                    }
                }
            } else {
                state.gateway.send(self.message).await
            };
            let took = start.elapsed();
            let err = match result {
                Ok(receipt) => {
                    permit.finish(Verdict::Healthy);
                    self.note(id, AttemptKind::Sent, None, at, took);
                    return Turn::Done(Box::new(Ok(self.delivered(id, receipt))));
                }
                Err(e) => e,
            };
            let kind = AttemptKind::from(err.kind());
            self.note(id, kind, Some(&err), at, took);
            match kind {
                AttemptKind::NotSent => {
                    permit.finish(Verdict::Failed);
                    refund(reservation);
                    if tries <= plan.retries {
                        let delay = backoff_delay(plan.backoff, tries);
                        if Instant::now() + delay < self.deadline {
                            tracing::debug!(
                                gateway = id,
                                retry = tries,
                                delay_ms = delay.as_millis() as u64,
                                "retrying"
                            );
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                        self.short_of_time = true;
                    }
                    return Turn::Next;
                }
                AttemptKind::Refused => {
                    // The gateway answered: it works, this message is the problem.
                    permit.finish(Verdict::Healthy);
                    refund(reservation);
                    return Turn::Next;
                }
                AttemptKind::Config => {
                    permit.finish(Verdict::Neutral);
                    refund(reservation);
                    return Turn::Next;
                }
                _ => {
                    permit.finish(Verdict::Failed);
                    if cut {
                        return Turn::Done(Box::new(self.deadline_error(true)));
                    }
                    if plan.on_unknown == OnUnknown::Stop {
                        return Turn::Done(Box::new(Err(self.fail(
                            ErrorKind::Unknown,
                            Reason::OutcomeUnknown,
                            format!("gateway '{id}' may have sent the message; stopped (on_unknown = \"stop\")"),
                        ))));
                    }
                    self.may_arrive_twice = true;
                    return Turn::Next;
                }
            }
        }
    }

    fn rate_limited(&mut self, state: &GatewayState, retry: Instant) -> Delivery {
        let id = state.gateway.id();
        let limit = state
            .limits
            .per_recipient
            .map(|p| p.to_string())
            .unwrap_or_default();
        let retry_at = to_system_time(retry);
        let err = SendError::new(
            ErrorKind::NotSent,
            id,
            format!("per_recipient {limit} reached for this number"),
        )
        .with_code("rate_limited");
        self.note(
            id,
            AttemptKind::RateLimited,
            Some(&err),
            SystemTime::now(),
            Duration::ZERO,
        );
        metrics::counter!("sms_gateway_per_recipient_rejected_total", "gateway" => id.to_owned())
            .increment(1);
        let kind = if self.may_arrive_twice {
            ErrorKind::Unknown
        } else {
            ErrorKind::NotSent
        };
        Err(self
            .fail(
                kind,
                Reason::RateLimited,
                format!("gateway '{id}': per_recipient {limit} reached for this number"),
            )
            .retry_at(Some(retry_at)))
    }

    fn delivered(&mut self, gateway: &str, receipt: smsgw_core::Receipt) -> Delivered {
        let twice = self.may_arrive_twice;
        Delivered {
            result: "sent",
            target: self.route.target.clone(),
            route: self.route.plan.route.clone(),
            gateway: gateway.to_owned(),
            receipt,
            may_arrive_twice: twice,
            warning: twice.then(|| {
                "an earlier gateway's outcome was unknown and the route failed over: the message may arrive twice"
                    .to_owned()
            }),
            attempts: std::mem::take(&mut self.attempts),
        }
    }
}
