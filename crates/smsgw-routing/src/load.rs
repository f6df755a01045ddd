//! The routing part of the core's configuration: the top-level `routes` section and the
//! per-gateway `limits` table are registered with the core, which keeps them in [`Config`] and
//! has their syntax checked here once per configuration (so `smsgw check` reports each problem
//! once); what needs the whole file (routes naming gateways) is [`check_references`].

use smsgw_core::{
    Config, ConfigErrors, ConfigProblem, SectionDescriptor, SectionPlace, register_section,
};
use toml::Value;

use crate::config::{RoutingConfig, check_section, parse_limits};

register_section!(SectionDescriptor::checked(
    "routes",
    SectionPlace::TopLevel,
    "Routes: failover between gateways, retries, deadline (smsgw-routing).",
    check_routes,
));

register_section!(SectionDescriptor::checked(
    "limits",
    SectionPlace::Gateway,
    "A gateway's rate, burst, per-recipient limit and circuit breaker (smsgw-routing).",
    check_limits,
));

/// The core's hook for `[routes.*]`: the syntax of every route (gateway names are checked
/// against the file by [`check_references`]).
fn check_routes(value: &Value) -> Vec<ConfigProblem> {
    let mut doc = toml::Table::new();
    doc.insert("routes".into(), value.clone());
    let (_, errs) = RoutingConfig::parse(&Value::Table(doc));
    errs.problems().to_vec()
}

/// The core's hook for `[gateways.ID.limits]`; the core places the problems in the gateway.
fn check_limits(value: &Value) -> Vec<ConfigProblem> {
    let Value::Table(t) = value else {
        return vec![ConfigProblem::in_table(
            None,
            "must be a table ([gateways.ID.limits])",
        )];
    };
    let mut errs = ConfigErrors::new();
    parse_limits(t, &mut errs, |key, msg| {
        ConfigProblem::in_table(Some(key), msg)
    });
    errs.problems().to_vec()
}

/// The routing part of `cfg` as one TOML document (`routes` and each gateway's provider and
/// `limits`), the shape [`RoutingConfig`] parses.
fn routing_doc(cfg: &Config) -> Value {
    let mut gws = toml::Table::new();
    for (id, g) in &cfg.gateways {
        let mut t = toml::Table::new();
        t.insert("provider".into(), Value::String(g.provider.clone()));
        if let Some(l) = g.sections.get("limits") {
            t.insert("limits".into(), l.clone());
        }
        gws.insert(id.clone(), Value::Table(t));
    }
    let mut doc = toml::Table::new();
    doc.insert("gateways".into(), Value::Table(gws));
    if let Some(r) = cfg.sections.get("routes") {
        doc.insert("routes".into(), r.clone());
    }
    Value::Table(doc)
}

impl RoutingConfig {
    /// The routes and limits of a configuration the core loaded. Their syntax problems are
    /// reported by the core's section hooks ([`Gateways::build`](smsgw_core::Gateways::build));
    /// here what is usable is kept.
    ///
    /// ```
    /// let cfg = smsgw_core::Config::from_toml_str(r#"
    ///     [gateways.a]
    ///     provider = "http"
    ///     [gateways.a.limits]
    ///     rate = 5
    ///     [routes.otp]
    ///     gateways = ["a"]
    /// "#).unwrap();
    /// let routing = smsgw_routing::RoutingConfig::from_config(&cfg);
    /// assert_eq!(routing.limits["a"].rate, Some(5.0));
    /// assert_eq!(routing.routes["otp"].gateways, ["a"]);
    /// ```
    pub fn from_config(cfg: &Config) -> RoutingConfig {
        RoutingConfig::parse(&routing_doc(cfg)).0
    }
}

/// What the section hooks cannot see: routes that name gateways the configuration does not
/// define, and routes named like a gateway. Every problem at once.
///
/// ```
/// let cfg = smsgw_core::Config::from_toml_str(r#"
///     [gateways.a]
///     provider = "http"
///     [routes.otp]
///     gateways = ["a", "nope"]
/// "#).unwrap();
/// let errs = smsgw_routing::check_references(&cfg);
/// assert_eq!(errs.problems()[0].to_string(), "route 'otp', field 'gateways': unknown gateway 'nope'");
/// ```
pub fn check_references(cfg: &Config) -> ConfigErrors {
    RoutingConfig::from_config(cfg).check_gateways(|id| cfg.gateways.contains_key(id))
}

/// Parses a whole `smsgw.toml` into the core's configuration and the routing part, with every
/// routing problem (syntax and references) — for callers that do not build gateways through
/// the core; [`Gateways::build`](smsgw_core::Gateways::build) plus [`check_references`] report
/// the same problems.
///
/// ```
/// let (cfg, routing) = smsgw_routing::load_toml_str(r#"
///     [gateways.a]
///     provider = "http"
///     options = { URL = "http://127.0.0.1:9/send" }
///     [gateways.a.limits]
///     rate = 5
///     [routes.otp]
///     gateways = ["a"]
/// "#).unwrap();
/// assert!(cfg.gateways.contains_key("a"));
/// assert_eq!(routing.limits["a"].rate, Some(5.0));
/// ```
pub fn load_toml_str(text: &str) -> Result<(Config, RoutingConfig), ConfigErrors> {
    let cfg = Config::from_toml_str(text)?;
    let doc = routing_doc(&cfg);
    let mut errs = ConfigErrors::new();
    for p in check_section(&doc) {
        errs.push(p);
    }
    let routing = RoutingConfig::parse(&doc).0;
    errs.into_result((cfg, routing))
}

#[cfg(test)]
mod tests {
    // Links the http provider, whose gateways carry the `limits` tables below.
    use smsgw as _;

    #[test]
    fn the_core_accepts_and_checks_the_sections_once() {
        let cfg = smsgw_core::Config::from_toml_str(
            r#"
            [gateways.a]
            provider = "http"
            options = { URL = "http://127.0.0.1:9/send" }
            [gateways.a.limits]
            rate = -1
            [routes.otp]
            gateways = []
            "#,
        )
        .unwrap();
        let errs = smsgw_core::Gateways::build(&cfg, smsgw_core::Registry::global())
            .unwrap_err()
            .to_string();
        assert_eq!(errs.matches("option 'limits.rate'").count(), 1, "{errs}");
        assert_eq!(
            errs.matches("route 'otp', field 'gateways'").count(),
            1,
            "{errs}"
        );
    }

    #[test]
    fn unknown_top_level_keys_are_still_rejected() {
        let errs = super::load_toml_str("colour = \"red\"\n")
            .unwrap_err()
            .to_string();
        assert!(errs.contains("colour"), "{errs}");
    }
}
