//! The routing part of `smsgw.toml`: `[routes.*]` and every `[gateways.*.limits]`, parsed from a
//! TOML document with every problem reported at once.

use std::time::Duration;

use indexmap::IndexMap;
use regex::Regex;
use serde::Serialize;
use smsgw_core::{ConfigErrors, ConfigProblem, parse_seconds};
use toml::Value;

use crate::limits::PerRecipient;

/// The default of `deadline`: seconds for a whole delivery.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
/// The default of `backoff`: seconds before the first retry.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(500);
/// The default of `breaker_failures`: consecutive retry-safe or unknown failures that open a breaker.
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;
/// The default of `breaker_cooldown`: how long an open breaker skips its gateway.
pub const DEFAULT_BREAKER_COOLDOWN: Duration = Duration::from_secs(30);
/// The most retries a route may ask for.
pub const MAX_RETRIES: u32 = 10;
/// The most seconds `backoff` may be.
pub const MAX_BACKOFF_SECS: f64 = 3600.0;
/// The most messages per second `rate` may be.
pub const MAX_RATE: f64 = 1_000_000.0;
/// The longest a compiled `match` pattern may be (bytes of compiled program).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

const ROUTE_KEYS: &[&str] = &[
    "gateways",
    "deadline",
    "retries",
    "backoff",
    "on_unknown",
    "rules",
];
const RULE_KEYS: &[&str] = &["match", "gateways"];
const LIMIT_KEYS: &[&str] = &[
    "rate",
    "burst",
    "per_recipient",
    "breaker_failures",
    "breaker_cooldown",
];

/// What a route does when a gateway's outcome is unknown (the message may have been sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnknown {
    /// Stop and report the unknown outcome (the default): the message is never sent twice.
    #[default]
    Stop,
    /// Try the next gateway; a success then says that the message may arrive twice.
    Failover,
}

/// One `[routes.NAME]` table.
#[derive(Debug, Clone, Serialize)]
pub struct RouteDef {
    /// The route name (the table name).
    pub name: String,
    /// Gateway ids, tried in this order.
    pub gateways: Vec<String>,
    /// Time for the whole delivery, all attempts and waits together.
    #[serde(serialize_with = "secs")]
    pub deadline: Duration,
    /// Extra attempts on the same gateway after a retry-safe failure.
    pub retries: u32,
    /// The wait before the first retry; it doubles for each further retry, plus up to 25 % jitter.
    #[serde(serialize_with = "secs")]
    pub backoff: Duration,
    /// Whether an unknown outcome may try the next gateway.
    pub on_unknown: OnUnknown,
    /// Rules by phone number; the first whose pattern matches chooses the gateways.
    pub rules: Vec<RuleDef>,
}

/// One `[[routes.NAME.rules]]` entry.
#[derive(Debug, Clone, Serialize)]
pub struct RuleDef {
    /// The regular expression matched against the phone number.
    #[serde(rename = "match")]
    pub pattern: String,
    /// Gateway ids used instead of the route's when the pattern matches, in order.
    pub gateways: Vec<String>,
}

/// One `[gateways.ID.limits]` table (also the defaults for a gateway without one).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limits {
    /// Messages per second (a token bucket shared by every send of this process), if limited.
    pub rate: Option<f64>,
    /// Messages the bucket holds, sent at once after a quiet time (default 1).
    pub burst: u32,
    /// At most so many messages to one number within a time window, if limited.
    pub per_recipient: Option<PerRecipient>,
    /// Consecutive retry-safe or unknown failures that open the circuit breaker (0 turns it off).
    pub breaker_failures: u32,
    /// How long an open breaker skips the gateway before one message probes it.
    #[serde(serialize_with = "secs")]
    pub breaker_cooldown: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rate: None,
            burst: 1,
            per_recipient: None,
            breaker_failures: DEFAULT_BREAKER_FAILURES,
            breaker_cooldown: DEFAULT_BREAKER_COOLDOWN,
        }
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The routes and the gateway limits of a configuration.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoutingConfig {
    /// `[routes.*]` in file order.
    pub routes: IndexMap<String, RouteDef>,
    /// `[gateways.*.limits]` by gateway id, for the gateways that have such a table.
    pub limits: IndexMap<String, Limits>,
}

impl RoutingConfig {
    /// Parses the routing part of a whole `smsgw.toml` text; everything else in it is ignored.
    ///
    /// ```
    /// let cfg = smsgw_routing::RoutingConfig::from_toml_str(r#"
    ///     [routes.otp]
    ///     gateways = ["a", "b"]
    ///     retries = 2
    ///     [gateways.a.limits]
    ///     per_recipient = "5/1h"
    /// "#).unwrap();
    /// assert_eq!(cfg.routes["otp"].retries, 2);
    /// assert_eq!(cfg.limits["a"].per_recipient.unwrap().to_string(), "5/1h");
    ///
    /// let errs = smsgw_routing::RoutingConfig::from_toml_str(r#"
    ///     [routes.otp]
    ///     gateways = []
    ///     [gateways.a.limits]
    ///     rate = 0
    ///     per_recipient = "5/1x"
    /// "#).unwrap_err();
    /// assert_eq!(errs.problems().len(), 3);
    /// ```
    pub fn from_toml_str(text: &str) -> Result<RoutingConfig, ConfigErrors> {
        let doc: Value = toml::from_str(text).map_err(|e| {
            ConfigErrors::from(ConfigProblem::file(
                e.to_string().trim_end().replace('\n', "\n    "),
            ))
        })?;
        Self::from_value(&doc)
    }

    /// Parses `routes` and every `gateways.*.limits` of a whole TOML document.
    pub fn from_value(doc: &Value) -> Result<RoutingConfig, ConfigErrors> {
        let (cfg, errs) = Self::parse(doc);
        errs.into_result(cfg)
    }

    /// Everything that parsed (routes and limits with problems keep what was usable, so that
    /// their gateway names can still be checked), and every problem.
    pub(crate) fn parse(doc: &Value) -> (RoutingConfig, ConfigErrors) {
        let mut errs = ConfigErrors::new();
        let mut cfg = RoutingConfig::default();
        match doc.get("routes") {
            None => {}
            Some(Value::Table(t)) => {
                for (name, v) in t {
                    if let Some(r) = parse_route(name, v, &mut errs) {
                        cfg.routes.insert(name.clone(), r);
                    }
                }
            }
            Some(_) => errs.push(ConfigProblem::file(
                "'routes' must be a table of [routes.NAME] tables",
            )),
        }
        if let Some(Value::Table(gws)) = doc.get("gateways") {
            for (id, g) in gws {
                match g.get("limits") {
                    None => {}
                    Some(Value::Table(t)) => {
                        let l = parse_limits(t, &mut errs, |key, msg| {
                            ConfigProblem::gateway(id, Some(&format!("limits.{key}")), msg)
                        });
                        cfg.limits.insert(id.clone(), l);
                    }
                    Some(_) => errs.push(ConfigProblem::gateway(
                        id,
                        Some("limits"),
                        "must be a table ([gateways.ID.limits])",
                    )),
                }
            }
        }
        (cfg, errs)
    }

    /// Checks that every gateway a route names exists (`known` says whether an id does) and that no
    /// route has the name of a gateway (a send target names either). Every problem is reported.
    pub fn check_gateways(&self, known: impl Fn(&str) -> bool) -> ConfigErrors {
        let mut errs = ConfigErrors::new();
        for (name, r) in &self.routes {
            if known(name) {
                errs.push(route_problem(
                    name,
                    None,
                    "a gateway has the same name; route and gateway names must differ",
                ));
            }
            let lists = std::iter::once(("gateways".to_owned(), &r.gateways)).chain(
                r.rules
                    .iter()
                    .enumerate()
                    .map(|(i, rule)| (format!("rules[{i}].gateways"), &rule.gateways)),
            );
            for (key, list) in lists {
                for id in list.iter().filter(|id| !known(id)) {
                    errs.push(route_problem(
                        name,
                        Some(&key),
                        format!("unknown gateway '{id}'"),
                    ));
                }
            }
        }
        for id in self.limits.keys().filter(|id| !known(id)) {
            errs.push(ConfigProblem::gateway(
                id,
                Some("limits"),
                "limits for a gateway that is not defined (it has no provider)",
            ));
        }
        errs
    }

    /// The limits of gateway `id` (the defaults when it has no `limits` table).
    pub fn limits_of(&self, id: &str) -> Limits {
        self.limits.get(id).cloned().unwrap_or_default()
    }
}

/// Every problem of the routing part of a whole document, including routes that name gateways the
/// document does not define. Fits a configuration section hook `fn(&toml::Value) -> Vec<ConfigProblem>`.
///
/// ```
/// let doc: toml::Value = toml::from_str(r#"
///     [gateways.a]
///     provider = "http"
///     [routes.otp]
///     gateways = ["a", "nope"]
/// "#).unwrap();
/// let problems = smsgw_routing::check_section(&doc);
/// assert_eq!(problems[0].to_string(), "route 'otp', field 'gateways': unknown gateway 'nope'");
/// ```
pub fn check_section(doc: &Value) -> Vec<ConfigProblem> {
    let gateways = doc.get("gateways").and_then(Value::as_table);
    // `[gateways.X.limits]` alone creates the table `gateways.X`: a gateway is one with a provider.
    let known = |id: &str| {
        gateways
            .and_then(|t| t.get(id))
            .is_some_and(|g| g.get("provider").is_some())
    };
    let (cfg, mut errs) = RoutingConfig::parse(doc);
    errs.extend(cfg.check_gateways(known));
    errs.problems().to_vec()
}

/// A problem in route `route`, about `key` (if any).
pub(crate) fn route_problem(
    route: &str,
    key: Option<&str>,
    message: impl Into<String>,
) -> ConfigProblem {
    ConfigProblem::entry("route", route, key, message)
}

/// Compiles a `match` pattern with a bounded size.
pub(crate) fn compile_pattern(pattern: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("'{pattern}' is not a valid regular expression: {e}"))
}

fn unknown_keys(
    t: &toml::Table,
    allowed: &[&str],
    mut problem: impl FnMut(&str, String),
    what: &str,
) {
    for k in t.keys().filter(|k| !allowed.contains(&k.as_str())) {
        problem(
            k,
            format!("unknown {what} key; the keys are: {}", allowed.join(", ")),
        );
    }
}

fn parse_route(name: &str, v: &Value, errs: &mut ConfigErrors) -> Option<RouteDef> {
    let Value::Table(t) = v else {
        errs.push(route_problem(name, None, "must be a table ([routes.NAME])"));
        return None;
    };
    let mut p = |key: &str, msg: String| errs.push(route_problem(name, Some(key), msg));
    unknown_keys(t, ROUTE_KEYS, &mut p, "route");
    let gateways = match t.get("gateways") {
        None => {
            p(
                "gateways",
                "required: the gateway ids to try, in order".into(),
            );
            Vec::new()
        }
        Some(v) => gateway_list(v, "gateways", &mut p),
    };
    let deadline =
        seconds(t.get("deadline"), "deadline", false, &mut p).unwrap_or(DEFAULT_DEADLINE);
    let backoff = seconds(t.get("backoff"), "backoff", true, &mut p).unwrap_or(DEFAULT_BACKOFF);
    let retries = match t.get("retries") {
        None => 0,
        Some(Value::Integer(n)) if (0..=i64::from(MAX_RETRIES)).contains(n) => *n as u32,
        Some(Value::Integer(n)) => {
            p("retries", format!("{n} is outside 0..={MAX_RETRIES}"));
            0
        }
        Some(other) => {
            p(
                "retries",
                format!("must be a whole number, not {}", other.type_str()),
            );
            0
        }
    };
    let on_unknown = match t.get("on_unknown") {
        None => OnUnknown::Stop,
        Some(Value::String(s)) if s == "stop" => OnUnknown::Stop,
        Some(Value::String(s)) if s == "failover" => OnUnknown::Failover,
        Some(other) => {
            p(
                "on_unknown",
                format!("{other} is not \"stop\" or \"failover\""),
            );
            OnUnknown::Stop
        }
    };
    let mut rules = Vec::new();
    match t.get("rules") {
        None => {}
        Some(Value::Array(list)) => {
            for (i, r) in list.iter().enumerate() {
                let Value::Table(rt) = r else {
                    p(
                        &format!("rules[{i}]"),
                        "must be a table ([[routes.NAME.rules]])".into(),
                    );
                    continue;
                };
                let mut rp = |key: &str, msg: String| p(&format!("rules[{i}].{key}"), msg);
                unknown_keys(rt, RULE_KEYS, &mut rp, "rule");
                let pattern = match rt.get("match") {
                    Some(Value::String(s)) => {
                        if let Err(e) = compile_pattern(s) {
                            rp("match", e);
                        }
                        s.clone()
                    }
                    Some(other) => {
                        rp(
                            "match",
                            format!("must be a string, not {}", other.type_str()),
                        );
                        String::new()
                    }
                    None => {
                        rp(
                            "match",
                            "required: a regular expression on the phone number".into(),
                        );
                        String::new()
                    }
                };
                let gateways = match rt.get("gateways") {
                    Some(v) => gateway_list(v, "gateways", &mut rp),
                    None => {
                        rp(
                            "gateways",
                            "required: the gateway ids to try, in order".into(),
                        );
                        Vec::new()
                    }
                };
                rules.push(RuleDef { pattern, gateways });
            }
        }
        Some(other) => p(
            "rules",
            format!(
                "must be an array of tables ([[routes.NAME.rules]]), not {}",
                other.type_str()
            ),
        ),
    }
    Some(RouteDef {
        name: name.to_owned(),
        gateways,
        deadline,
        retries,
        backoff,
        on_unknown,
        rules,
    })
}

fn gateway_list(v: &Value, key: &str, p: &mut impl FnMut(&str, String)) -> Vec<String> {
    let Value::Array(items) = v else {
        p(
            key,
            format!("must be a list of gateway ids, not {}", v.type_str()),
        );
        return Vec::new();
    };
    if items.is_empty() {
        p(key, "is empty: name at least one gateway".into());
    }
    let mut out: Vec<String> = Vec::new();
    for item in items {
        match item {
            Value::String(s) if out.contains(s) => {
                p(key, format!("gateway '{s}' is listed twice"));
            }
            Value::String(s) => out.push(s.clone()),
            other => p(key, format!("{other} is not a gateway id (a string)")),
        }
    }
    out
}

/// A number of seconds (integer, float or numeric string), within core's bounds; `zero_ok` also
/// allows 0.
fn seconds(
    v: Option<&Value>,
    key: &str,
    zero_ok: bool,
    p: &mut impl FnMut(&str, String),
) -> Option<Duration> {
    let text = match v? {
        Value::Integer(n) => n.to_string(),
        Value::Float(f) => f.to_string(),
        Value::String(s) => s.clone(),
        other => {
            p(
                key,
                format!("must be a number of seconds, not {}", other.type_str()),
            );
            return None;
        }
    };
    if zero_ok && text.trim().parse::<f64>() == Ok(0.0) {
        return Some(Duration::ZERO);
    }
    match parse_seconds(&text) {
        Ok(d) if key == "backoff" && d.as_secs_f64() > MAX_BACKOFF_SECS => {
            p(
                key,
                format!("{text} is more than {MAX_BACKOFF_SECS} seconds"),
            );
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            p(key, e);
            None
        }
    }
}

/// Parses a `limits` table; `place` makes a problem about one of its keys.
pub(crate) fn parse_limits(
    t: &toml::Table,
    errs: &mut ConfigErrors,
    place: impl Fn(&str, String) -> ConfigProblem,
) -> Limits {
    let mut p = |key: &str, msg: String| errs.push(place(key, msg));
    unknown_keys(t, LIMIT_KEYS, &mut p, "limits");
    let mut l = Limits::default();
    match t.get("rate") {
        None => {}
        Some(Value::Integer(n)) if *n > 0 && (*n as f64) <= MAX_RATE => l.rate = Some(*n as f64),
        Some(Value::Float(f)) if *f > 0.0 && *f <= MAX_RATE => l.rate = Some(*f),
        Some(v @ (Value::Integer(_) | Value::Float(_))) => p(
            "rate",
            format!("{v} must be more than 0 and at most {MAX_RATE} messages per second"),
        ),
        Some(other) => p(
            "rate",
            format!(
                "must be a number of messages per second, not {}",
                other.type_str()
            ),
        ),
    }
    match t.get("burst") {
        None => {}
        Some(Value::Integer(n)) if (1..=1_000_000).contains(n) => {
            l.burst = *n as u32;
            if l.rate.is_none() && t.get("rate").is_none() {
                p(
                    "burst",
                    "needs rate: burst is the size of the rate's token bucket".into(),
                );
            }
        }
        Some(Value::Integer(n)) => p("burst", format!("{n} is outside 1..=1000000")),
        Some(other) => p(
            "burst",
            format!("must be a whole number, not {}", other.type_str()),
        ),
    }
    match t.get("per_recipient") {
        None => {}
        Some(Value::String(s)) => match s.parse::<PerRecipient>() {
            Ok(pr) => l.per_recipient = Some(pr),
            Err(e) => p("per_recipient", e),
        },
        Some(other) => p(
            "per_recipient",
            format!("must be a string like \"5/1h\", not {}", other.type_str()),
        ),
    }
    match t.get("breaker_failures") {
        None => {}
        Some(Value::Integer(n)) if (0..=1000).contains(n) => l.breaker_failures = *n as u32,
        Some(Value::Integer(n)) => p("breaker_failures", format!("{n} is outside 0..=1000")),
        Some(other) => p(
            "breaker_failures",
            format!("must be a whole number, not {}", other.type_str()),
        ),
    }
    if let Some(d) = seconds(t.get("breaker_cooldown"), "breaker_cooldown", false, &mut p) {
        l.breaker_cooldown = d;
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_problem_with_its_place() {
        let errs = RoutingConfig::from_toml_str(
            r#"
            [routes.otp]
            gateways = ["a", "a", 3]
            deadline = 0
            retries = 99
            backoff = "x"
            on_unknown = "maybe"
            colour = "red"
            [[routes.otp.rules]]
            match = "(["
            gateways = []
            [routes.empty]
            [gateways.a.limits]
            rate = 0
            burst = 0
            per_recipient = "5/1x"
            breaker_failures = -1
            breaker_cooldown = 0
            "#,
        )
        .unwrap_err();
        let text = errs.to_string();
        for want in [
            "route 'otp', field 'gateways': gateway 'a' is listed twice",
            "route 'otp', field 'gateways': 3 is not a gateway id",
            "route 'otp', field 'deadline': '0' must be more than 0",
            "route 'otp', field 'retries': 99 is outside 0..=10",
            "route 'otp', field 'backoff': 'x' is not a number of seconds",
            "route 'otp', field 'on_unknown': \"maybe\" is not \"stop\" or \"failover\"",
            "route 'otp', field 'colour': unknown route key",
            "route 'otp', field 'rules[0].match': '([' is not a valid regular expression",
            "route 'otp', field 'rules[0].gateways': is empty",
            "route 'empty', field 'gateways': required",
            "gateway 'a', option 'limits.rate': 0 must be more than 0",
            "gateway 'a', option 'limits.burst': 0 is outside 1..=1000000",
            "gateway 'a', option 'limits.per_recipient': '5/1x'",
            "gateway 'a', option 'limits.breaker_failures': -1 is outside",
            "gateway 'a', option 'limits.breaker_cooldown': '0' must be more than 0",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert_eq!(errs.problems().len(), 15, "{text}");
    }

    #[test]
    fn defaults_and_unknown_gateways() {
        let doc: Value = toml::from_str(
            r#"
            [gateways.a]
            provider = "http"
            [gateways.ghost.limits]
            rate = 5
            [routes.otp]
            gateways = ["a", "b"]
            [[routes.otp.rules]]
            match = "^\\+49"
            gateways = ["c"]
            [routes.a]
            gateways = ["a"]
            "#,
        )
        .unwrap();
        let cfg = RoutingConfig::from_value(&doc).unwrap();
        let r = &cfg.routes["otp"];
        assert_eq!(
            (r.deadline, r.retries, r.backoff, r.on_unknown),
            (DEFAULT_DEADLINE, 0, DEFAULT_BACKOFF, OnUnknown::Stop)
        );
        assert_eq!(cfg.limits_of("a"), Limits::default());
        let problems: Vec<String> = check_section(&doc).iter().map(|p| p.to_string()).collect();
        assert_eq!(
            problems,
            [
                "route 'otp', field 'gateways': unknown gateway 'b'",
                "route 'otp', field 'rules[0].gateways': unknown gateway 'c'",
                "route 'a': a gateway has the same name; route and gateway names must differ",
                "gateway 'ghost', option 'limits': limits for a gateway that is not defined (it has no provider)",
            ]
        );
    }
}
