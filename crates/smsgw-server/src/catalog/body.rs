//! The JSON bodies of `/v1/gateways/{id}` and `/v1/routes/{name}`: the shape of the TOML tables,
//! read into definitions and written back for the database.

use indexmap::IndexMap;
use serde_json::{Value, json};
use smsgw_core::{CENSORED, GatewayDef};
use smsgw_queue::{DefKind, StoredDef};

use crate::problem::FieldProblem;

fn text_map(
    v: Option<&Value>,
    field: &str,
    problems: &mut Vec<FieldProblem>,
) -> IndexMap<String, String> {
    let mut out = IndexMap::new();
    let Some(v) = v else { return out };
    let Some(obj) = v.as_object() else {
        problems.push(FieldProblem {
            field: field.into(),
            message: "must be an object of names to values".into(),
        });
        return out;
    };
    for (k, v) in obj {
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            // A table (privacyIDEA's PARAMETER) is kept as JSON text, as the file loader does.
            Value::Object(_) => v.to_string(),
            Value::Bool(b) => {
                problems.push(FieldProblem {
                    field: format!("{field}.{k}"),
                    message: format!(
                        "write the value as a string (\"{}\")",
                        if *b { "yes" } else { "no" }
                    ),
                });
                continue;
            }
            _ => {
                problems.push(FieldProblem {
                    field: format!("{field}.{k}"),
                    message: "must be a string".into(),
                });
                continue;
            }
        };
        out.insert(k.clone(), s);
    }
    out
}

/// Reads a gateway body (`{"provider", "description", "options", "headers"}`).
pub fn gateway_from_json(id: &str, body: &Value) -> Result<GatewayDef, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldProblem {
            field: "body".into(),
            message: "must be a JSON object".into(),
        }]);
    };
    for k in obj.keys() {
        if !matches!(
            k.as_str(),
            "provider"
                | "description"
                | "options"
                | "headers"
                | "limits"
                | "id"
                | "origin"
                | "ready"
                | "breaker"
        ) {
            problems.push(FieldProblem {
                field: k.clone(),
                message:
                    "unknown field; a gateway has provider, description, options, headers, limits"
                        .into(),
            });
        }
    }
    let provider = match obj.get("provider") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => {
            problems.push(FieldProblem {
                field: "provider".into(),
                message: "required: a provider name".into(),
            });
            String::new()
        }
    };
    let description = match obj.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            problems.push(FieldProblem {
                field: "description".into(),
                message: "must be a string".into(),
            });
            None
        }
    };
    let options = text_map(obj.get("options"), "options", &mut problems);
    let headers = text_map(obj.get("headers"), "headers", &mut problems);
    let mut sections = IndexMap::new();
    match obj.get("limits") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Object(_)) => match to_toml(v) {
            Ok(t) => {
                sections.insert("limits".to_owned(), t);
            }
            Err(message) => problems.push(FieldProblem {
                field: "limits".into(),
                message,
            }),
        },
        Some(_) => problems.push(FieldProblem {
            field: "limits".into(),
            message: "must be an object (the [gateways.ID.limits] table)".into(),
        }),
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(GatewayDef {
        id: id.to_owned(),
        provider,
        description,
        options,
        headers,
        sections,
    })
}

/// The stored JSON of a gateway definition (secrets in clear: the database needs them).
pub fn gateway_to_json(def: &GatewayDef) -> Value {
    let mut v = json!({
        "provider": def.provider,
        "description": def.description,
        "options": def.options,
        "headers": def.headers,
    });
    if let (Some(l), Some(o)) = (def.sections.get("limits"), v.as_object_mut()) {
        o.insert("limits".into(), to_json(l));
    }
    v
}

/// A JSON body as the TOML value the configuration file would hold.
pub(crate) fn to_toml(v: &Value) -> Result<toml::Value, String> {
    toml::Value::try_from(v).map_err(|e| format!("cannot be written in TOML: {e}"))
}

/// A TOML value as JSON (for views of file-defined tables).
pub(crate) fn to_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Puts the stored secret back wherever a PUT sent `__CENSORED__`.
pub fn keep_censored(
    new: &mut GatewayDef,
    old: Option<&GatewayDef>,
    problems: &mut Vec<FieldProblem>,
) {
    for (field, map, old_map) in [
        ("options", &mut new.options, old.map(|o| &o.options)),
        ("headers", &mut new.headers, old.map(|o| &o.headers)),
    ] {
        for (k, v) in map.iter_mut() {
            if v != CENSORED {
                continue;
            }
            match old_map.and_then(|m| m.get(k)) {
                Some(stored) => *v = stored.clone(),
                None => problems.push(FieldProblem {
                    field: format!("{field}.{k}"),
                    message: format!(
                        "{CENSORED} keeps a stored secret, but none is stored: send the value"
                    ),
                }),
            }
        }
    }
}

/// Reads a route body (`{"gateways": ["a", "b"], "deadline": 30, "rules": [...]}`, the shape of a
/// `[routes.NAME]` table) with smsgw-routing's checks, every problem at once. Gateway names are
/// checked against `known`.
pub fn route_from_json(
    name: &str,
    body: &Value,
    known: impl Fn(&str) -> bool,
) -> Result<toml::Value, Vec<FieldProblem>> {
    let mut body = body.clone();
    let Some(o) = body.as_object_mut() else {
        return Err(vec![FieldProblem {
            field: "body".into(),
            message: "must be a JSON object (the [routes.NAME] table)".into(),
        }]);
    };
    // What a view adds; sent back unchanged by clients that edit a view.
    o.remove("name");
    o.remove("origin");
    let table = to_toml(&body).map_err(|message| {
        vec![FieldProblem {
            field: "body".into(),
            message,
        }]
    })?;
    let mut routes = toml::Table::new();
    routes.insert(name.to_owned(), table.clone());
    let mut doc = toml::Table::new();
    doc.insert("routes".into(), toml::Value::Table(routes));
    let problems: Vec<FieldProblem> =
        match smsgw_routing::RoutingConfig::from_value(&toml::Value::Table(doc)) {
            Ok(cfg) => cfg.check_gateways(known).problems().to_vec(),
            Err(errs) => errs.problems().to_vec(),
        }
        .iter()
        .map(|p| FieldProblem {
            field: p.key.clone().unwrap_or_else(|| "body".into()),
            message: p.message.clone(),
        })
        .collect();
    if problems.is_empty() {
        Ok(table)
    } else {
        Err(problems)
    }
}

/// A stored definition for `kind`/`id` from its JSON.
pub fn stored(kind: DefKind, id: &str, body: Value) -> StoredDef {
    StoredDef {
        kind,
        id: id.to_owned(),
        body,
        updated_at: smsgw_queue::now_ms(),
    }
}
