//! The [`Router`]: gateways with their limits and breakers, and the routes over them. A
//! [`Route`] sends like a gateway; this is where failover, retries and the deadline live.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use indexmap::IndexMap;
use regex::Regex;
use smsgw_core::{ConfigErrors, ConfigProblem, ErrorKind, Gateway, Gateways, Message};
use tokio::time::Instant;

use crate::breaker::{Breaker, BreakerState};
use crate::config::{
    DEFAULT_DEADLINE, Limits, OnUnknown, RouteDef, RoutingConfig, compile_pattern, route_problem,
};
use crate::deliver::Delivering;
use crate::limits::{Rate, RateLimit, RecipientGuard, SharedRate};
use crate::outcome::{Delivery, Reason, RouteError};

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

pub(crate) struct Inner {
    gateways: Gateways,
    pub(crate) states: IndexMap<String, GatewayState>,
    routes: IndexMap<String, Arc<Plan>>,
    config: RoutingConfig,
}

pub(crate) struct GatewayState {
    pub(crate) gateway: Gateway,
    pub(crate) limits: Limits,
    pub(crate) breaker: Breaker,
    pub(crate) rate: Option<Rate>,
    pub(crate) recipients: Option<RecipientGuard>,
}

/// How to deliver: a route's settings with compiled rules, or a single gateway's.
pub(crate) struct Plan {
    pub(crate) route: Option<String>,
    pub(crate) gateways: Vec<String>,
    pub(crate) rules: Vec<(Regex, Vec<String>)>,
    pub(crate) deadline: Duration,
    pub(crate) retries: u32,
    pub(crate) backoff: Duration,
    pub(crate) on_unknown: OnUnknown,
    /// Routes cut a send in flight at the deadline; a gateway sent to directly keeps its own
    /// TIMEOUT (the deadline then bounds only the wait for a rate token).
    pub(crate) cut_sends: bool,
}

/// Something to send through: a route, or one gateway with its limits. Sends like a gateway
/// ([`Route::send`], [`Route::send_stream`], [`Route::send_all`]). Cheap to clone.
#[derive(Clone)]
pub struct Route {
    pub(crate) inner: Arc<Inner>,
    pub(crate) target: String,
    pub(crate) plan: Arc<Plan>,
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
        Router::build_shared(config, gateways, None)
    }

    /// [`Router::build`], with the gateways' `rate` limits kept by `shared` (so that several
    /// processes together hold them) instead of in this process.
    pub fn build_shared(
        config: &RoutingConfig,
        gateways: &Gateways,
        shared: Option<Arc<dyn SharedRate>>,
    ) -> Result<Router, ConfigErrors> {
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
                    match (rl, &shared) {
                        (Some(_), Some(s)) => {
                            Some(Rate::Shared(s.clone(), g.id().to_owned(), r, limits.burst))
                        }
                        (rl, _) => rl.map(Rate::Local),
                    }
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

pub(crate) fn to_system_time(t: Instant) -> SystemTime {
    let now = Instant::now();
    if t >= now {
        SystemTime::now() + (t - now)
    } else {
        SystemTime::now() - (now - t)
    }
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

    pub(crate) fn gateways_for(&self, phone: &str) -> &[String] {
        self.plan
            .rules
            .iter()
            .find(|(re, _)| re.is_match(phone))
            .map_or(&self.plan.gateways, |(_, g)| g)
    }
}
