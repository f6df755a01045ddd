//! Checks of the provider's declaration: registered under its names, parameters well formed,
//! a definition missing a required option rejected.

use super::*;

pub(super) async fn registered(h: &dyn Harness, c: &Ctx) -> Result<(), String> {
    let d = Registry::global()
        .get(c.descriptor.name)
        .map_err(|e| e.to_string())?;
    if d.name != h.provider() {
        return Err(format!("looked up {} but got {}", h.provider(), d.name));
    }
    for a in d.aliases {
        let by_alias = Registry::global().get(a).map_err(|e| e.to_string())?;
        if by_alias.name != d.name {
            return Err(format!("alias {a} resolves to {}", by_alias.name));
        }
    }
    Ok(())
}

pub(super) async fn param_specs_well_formed(_h: &dyn Harness, c: &Ctx) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    if c.descriptor.description.trim().is_empty() {
        problems.push("the provider has no description".to_owned());
    }
    for p in c.descriptor.all_params() {
        for n in std::iter::once(p.name).chain(p.aliases.iter().copied()) {
            if n.is_empty() || n.contains(char::is_whitespace) {
                problems.push(format!("parameter name {n:?} is empty or has white space"));
            }
            if !seen.insert(n) {
                problems.push(format!("parameter name {n} appears twice"));
            }
        }
        if p.description.trim().is_empty() {
            problems.push(format!("{} has no description", p.name));
        }
        if p.required && p.default.is_some() {
            problems.push(format!("{} is required but has a default", p.name));
        }
        if p.secret && p.default.is_some() {
            problems.push(format!("{} is secret but has a default", p.name));
        }
        if let Some(d) = p.default {
            if !p.allowed.is_empty() && !p.allowed.iter().any(|a| a.eq_ignore_ascii_case(d)) {
                problems.push(format!(
                    "{}'s default {d} is not among its allowed values",
                    p.name
                ));
            }
            let ok = match p.kind {
                ParamKind::Seconds => parse_seconds(d).is_ok(),
                ParamKind::YesNo => parse_yes_no(d).is_some(),
                ParamKind::Integer { min, max } => {
                    d.parse::<i64>().is_ok_and(|n| (min..=max).contains(&n))
                }
                ParamKind::Url => d.contains("://"),
                _ => true,
            };
            if !ok {
                problems.push(format!(
                    "{}'s default {d} does not pass its own check ({})",
                    p.name,
                    p.kind.describe()
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

pub(super) async fn missing_required_rejected(h: &dyn Harness, c: &Ctx) -> Result<(), String> {
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let base = h.definition(addr, TIMEOUT_SECS);
    base.build()
        .map_err(|e| format!("the harness definition is invalid: {e}"))?;
    let required: Vec<_> = c
        .descriptor
        .all_params()
        .into_iter()
        .filter(|p| p.required)
        .collect();
    for p in required {
        let mut s = base.clone();
        s.gateway.options.retain(|k, _| !p.matches(k));
        match s.build() {
            Ok(_) => return Err(format!("a definition without {} was accepted", p.name)),
            Err(e) if e.to_string().contains(p.name) => {}
            Err(e) => {
                return Err(format!(
                    "without {} the error does not name it: {e}",
                    p.name
                ));
            }
        }
    }
    Ok(())
}
