//! Loading a whole `smsgw.toml` with routes while the core's `Config` does not yet know the
//! routing section: the routing part is parsed here and removed before the core parses the rest.

use smsgw_core::{Config, ConfigErrors, ConfigProblem};
use toml::Value;

use crate::config::{RoutingConfig, check_section};

/// Removes `routes` and every `gateways.*.limits` from a document, so that what is left loads
/// through [`Config`] (which rejects keys it does not know).
pub fn strip_section(doc: &mut Value) {
    if let Some(t) = doc.as_table_mut() {
        t.remove("routes");
        if let Some(Value::Table(gws)) = t.get_mut("gateways") {
            for (_, g) in gws.iter_mut() {
                if let Some(g) = g.as_table_mut() {
                    g.remove("limits");
                }
            }
        }
    }
}

/// Parses a whole `smsgw.toml`: the core's configuration and the routing part, with the problems
/// of both reported together (routes naming gateways the file does not define included).
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
    let mut doc: Value = toml::from_str(text).map_err(|e| {
        ConfigErrors::from(ConfigProblem::file(
            e.to_string().trim_end().replace('\n', "\n    "),
        ))
    })?;
    let mut errs = ConfigErrors::new();
    for p in check_section(&doc) {
        errs.push(p);
    }
    let routing = RoutingConfig::from_value(&doc).unwrap_or_default();
    strip_section(&mut doc);
    let config = match doc.try_into::<Config>() {
        Ok(c) => Some(c),
        Err(e) => {
            errs.push(ConfigProblem::file(
                e.to_string().trim_end().replace('\n', "\n    "),
            ));
            None
        }
    };
    match config {
        Some(c) if errs.is_empty() => Ok((c, routing)),
        _ => Err(errs),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn core_and_routing_problems_come_together() {
        let errs = super::load_toml_str(
            r#"
            colour = "red"
            [gateways.a]
            provider = "http"
            [gateways.a.limits]
            rate = -1
            [routes.otp]
            gateways = ["b"]
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(errs.contains("option 'limits.rate'"), "{errs}");
        assert!(errs.contains("unknown gateway 'b'"), "{errs}");
        assert!(errs.contains("colour"), "{errs}");
    }
}
