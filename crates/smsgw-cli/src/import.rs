//! `smsgw import-privacyidea`: privacyIDEA's `pi-manage config export` (JSON or YAML) to smsgw.toml.

use std::path::Path;

use indexmap::IndexMap;
use serde_yaml::Value;
use smsgw::{BUILTIN_PROVIDERS, CENSORED, Config, GatewayDef, PLACEHOLDER};

/// Runs the import and returns the exit status.
pub fn run(path: &Path) -> u8 {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return super::EXIT_CONFIG;
        }
    };
    match convert(&text) {
        Ok((toml, notes)) => {
            for n in notes {
                eprintln!("note: {n}");
            }
            out!("{toml}");
            0
        }
        Err(problems) => {
            for p in problems {
                eprintln!("error: {}: {p}", path.display());
            }
            super::EXIT_CONFIG
        }
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_owned()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

fn uncensor(v: String, what: &str, placeholders: &mut Vec<String>) -> String {
    if v == CENSORED {
        placeholders.push(what.to_owned());
        PLACEHOLDER.to_owned()
    } else {
        v
    }
}

/// Converts an export into TOML plus notes for the user, or the problems that stop it.
pub fn convert(text: &str) -> Result<(String, Vec<String>), Vec<String>> {
    let root: Value = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|j| serde_yaml::to_value(j).ok())
        .map_or_else(|| serde_yaml::from_str(text), Ok)
        .map_err(|e| vec![format!("neither JSON nor YAML: {e}")])?;
    let Value::Mapping(map) = root else {
        return Err(vec!["the top level is not a mapping".into()]);
    };
    let mut notes = Vec::new();
    let mut problems = Vec::new();
    let mut placeholders = Vec::new();
    let key = |k: &str| Value::String(k.to_owned());
    let is_bare = map.values().all(|v| v.get("providermodule").is_some()) && !map.is_empty();
    let (gateways, servers) = if is_bare {
        (Some(Value::Mapping(map.clone())), None)
    } else {
        for k in map.keys() {
            let name = as_text(k).unwrap_or_default();
            if name != "smsgateway" && name != "smtpserver" {
                notes.push(format!("section '{name}' ignored (not about SMS gateways)"));
            }
        }
        (
            map.get(key("smsgateway")).cloned(),
            map.get(key("smtpserver")).cloned(),
        )
    };
    if gateways.is_none() {
        return Err(vec!["no 'smsgateway' section found".into()]);
    }
    let mut cfg = Config::default();
    if let Some(Value::Mapping(servers)) = servers {
        let out = Notes {
            notes: &mut notes,
            problems: &mut problems,
            placeholders: &mut placeholders,
        };
        smtp_servers(servers, &mut cfg, out);
    }
    if let Some(Value::Mapping(gws)) = gateways {
        for (id, g) in gws {
            let id = as_text(&id).unwrap_or_default();
            let Some(module) = g.get("providermodule").and_then(as_text) else {
                problems.push(format!("smsgateway '{id}': no 'providermodule'"));
                continue;
            };
            let provider = BUILTIN_PROVIDERS
                .iter()
                .find(|(_, _, alias)| *alias == module)
                .map_or(module.clone(), |(n, _, _)| (*n).to_owned());
            let mut def = GatewayDef {
                id: id.clone(),
                provider,
                description: g
                    .get("description")
                    .and_then(as_text)
                    .filter(|d| !d.is_empty()),
                ..Default::default()
            };
            for (section, target) in [("options", &mut def.options), ("headers", &mut def.headers)]
            {
                match g.get(section) {
                    Some(Value::Mapping(m)) => {
                        let mut out = IndexMap::new();
                        for (k, v) in m {
                            let k = as_text(k).unwrap_or_default();
                            let v = match v {
                                Value::Mapping(_) | Value::Sequence(_) => {
                                    serde_json::to_string(&v).unwrap_or_default()
                                }
                                other => as_text(other).unwrap_or_default(),
                            };
                            let v = uncensor(
                                v,
                                &format!("gateways.{id}.{section}.{k}"),
                                &mut placeholders,
                            );
                            out.insert(k, v);
                        }
                        *target = out;
                    }
                    None | Some(Value::Null) => {}
                    Some(_) => {
                        problems.push(format!("smsgateway '{id}': '{section}' is not a mapping"))
                    }
                }
            }
            cfg.gateways.insert(id, def);
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut out = String::from(
        "# Imported from a privacyIDEA configuration export by `smsgw import-privacyidea`.\n",
    );
    if !placeholders.is_empty() {
        out.push_str(&format!(
            "# The export censored these values; replace {PLACEHOLDER} before use (`smsgw check` rejects it):\n"
        ));
        for p in &placeholders {
            out.push_str(&format!("#   {p}\n"));
        }
        notes.push(format!(
            "{} censored value(s) became {PLACEHOLDER}: fill them in ({})",
            placeholders.len(),
            placeholders.join(", ")
        ));
    }
    out.push('\n');
    out.push_str(&cfg.to_toml(false));
    Ok((out, notes))
}

/// Where a section's conversion reports: notes for the user, problems that stop the import, and
/// the censored values that became placeholders.
#[cfg_attr(not(feature = "smtp"), allow(dead_code))]
struct Notes<'a> {
    notes: &'a mut Vec<String>,
    problems: &'a mut Vec<String>,
    placeholders: &'a mut Vec<String>,
}

/// privacyIDEA's `smtpserver` section to the smtp provider's `smtp_servers`.
#[cfg(feature = "smtp")]
fn smtp_servers(servers: serde_yaml::Mapping, cfg: &mut Config, out: Notes) {
    use smsgw::smtp::SmtpServer;
    for (id, s) in servers {
        let id = as_text(&id).unwrap_or_default();
        let get = |f: &str| s.get(f).and_then(as_text).filter(|v| !v.is_empty());
        let Some(server) = get("server") else {
            out.problems.push(format!("smtpserver '{id}': no 'server'"));
            continue;
        };
        let mut def = SmtpServer::new(server, get("sender").unwrap_or_default());
        if let Some(p) = get("port") {
            match p.parse() {
                Ok(n) => def.port = Some(n),
                Err(_) => out
                    .problems
                    .push(format!("smtpserver '{id}': port '{p}' is not a number")),
            }
        }
        def.tls = get("tls")
            .is_some_and(|t| matches!(t.to_ascii_lowercase().as_str(), "true" | "1" | "yes"));
        def.username = get("username");
        if let Some(pw) = get("password") {
            let pw = uncensor(pw, &format!("smtp_servers.{id}.password"), out.placeholders);
            def.password = Some(pw.into());
        }
        if let Some(t) = get("timeout") {
            def.timeout = t.parse().ok();
        }
        let implicit_tls = def.server.starts_with("smtps://") || def.port == Some(465);
        if def.username.is_some() && !def.tls && !implicit_tls {
            // privacyIDEA logs in over the plain connection; keep that, but say so.
            def.allow_insecure_auth = true;
            out.notes.push(format!(
                "smtpserver '{id}': privacyIDEA sends its credentials without TLS; kept with allow_insecure_auth = true (better: tls = true)"
            ));
        }
        if let Value::Mapping(m) = &s {
            for k in m.keys().filter_map(as_text) {
                if ![
                    "server",
                    "port",
                    "sender",
                    "tls",
                    "username",
                    "password",
                    "timeout",
                    "identifier",
                    "description",
                    "id",
                ]
                .contains(&k.as_str())
                {
                    out.notes.push(format!(
                        "smtpserver '{id}': field '{k}' has no equivalent and was dropped"
                    ));
                }
            }
        }
        def.insert_into(cfg, &id);
    }
}

/// Without the smtp provider there is no `smtp_servers` section to write: say so.
#[cfg(not(feature = "smtp"))]
fn smtp_servers(servers: serde_yaml::Mapping, _cfg: &mut Config, out: Notes) {
    if !servers.is_empty() {
        out.notes.push(format!(
            "section 'smtpserver' ({} server(s)) ignored: this smsgw is built without the smtp provider",
            servers.len()
        ));
    }
}
