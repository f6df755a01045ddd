//! The gateways and routes the server knows: from the configuration file (read-only through the
//! API) and from the database (created through the API), in one identifier space.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use indexmap::IndexMap;
use serde_json::{Map, Value, json};
use smsgw_core::{CENSORED, Config, Gateway, GatewayDef, Registry, censor_value};
use smsgw_queue::{DefKind, Queue, StoredDef, Target};

use crate::problem::FieldProblem;

/// Where a definition comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The configuration file: read-only through the API.
    File,
    /// The database.
    Database,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::File => "file",
            Origin::Database => "database",
        }
    }
}

/// A route as stored until `smsgw-routing` takes over: the gateways tried in order, the next one
/// only when the previous one certainly did not send (`not_sent`).
#[derive(Debug, Clone)]
pub struct RouteDef {
    /// The gateway ids in order.
    pub gateways: Vec<String>,
    /// The table as given (kept whole, so that fields a later version reads are not lost).
    pub body: Value,
}

/// One snapshot of everything defined; replaced whole on every change (readers never lock).
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    /// The file's configuration (SMTP servers are only defined there).
    pub file: Config,
    /// Every definition, by id, with its origin.
    pub defs: IndexMap<String, (GatewayDef, Origin)>,
    /// Every gateway that built, by id.
    pub gateways: IndexMap<String, Gateway>,
    /// Every route, by name, with its origin (only the database has routes today).
    pub routes: IndexMap<String, (RouteDef, Origin)>,
}

impl Catalog {
    /// Builds the catalog. Problems of the file fail; problems of stored definitions (written by
    /// an older version, say) are logged and the definition is left out.
    pub async fn load(
        file: Config,
        queue: &dyn Queue,
        registry: &Registry,
    ) -> Result<Catalog, String> {
        let mut cat = Catalog::default();
        let mut errors = smsgw_core::ConfigErrors::new();
        for (id, def) in &file.gateways {
            match Gateway::build(def, &file.sections, registry) {
                Ok(g) => {
                    cat.gateways.insert(id.clone(), g);
                }
                Err(e) => errors.extend(e),
            }
            cat.defs.insert(id.clone(), (def.clone(), Origin::File));
        }
        if !errors.is_empty() {
            return Err(errors.to_string());
        }
        let stored = queue
            .list_defs(DefKind::Gateway)
            .await
            .map_err(|e| e.to_string())?;
        for s in stored {
            if cat.defs.contains_key(&s.id) {
                tracing::warn!(gateway = %s.id, "a gateway in the database has the id of one in the file; the file's wins");
                continue;
            }
            let def = match gateway_from_json(&s.id, &s.body) {
                Ok(d) => d,
                Err(p) => {
                    tracing::warn!(gateway = %s.id, problems = ?p, "a stored gateway is invalid; left out");
                    continue;
                }
            };
            match Gateway::build(&def, &file.sections, registry) {
                Ok(g) => {
                    cat.gateways.insert(s.id.clone(), g);
                }
                Err(e) => {
                    tracing::warn!(gateway = %s.id, "a stored gateway is invalid; left out: {e}")
                }
            }
            cat.defs.insert(s.id.clone(), (def, Origin::Database));
        }
        for s in queue
            .list_defs(DefKind::Route)
            .await
            .map_err(|e| e.to_string())?
        {
            match route_from_json(&s.body) {
                Ok(r) => {
                    cat.routes.insert(s.id.clone(), (r, Origin::Database));
                }
                Err(p) => {
                    tracing::warn!(route = %s.id, problems = ?p, "a stored route is invalid; left out")
                }
            }
        }
        cat.file = file;
        Ok(cat)
    }

    /// True when `target` names something defined.
    pub fn knows(&self, target: &Target) -> bool {
        match target {
            Target::Gateway(g) => self.defs.contains_key(g),
            Target::Route(r) => self.routes.contains_key(r),
        }
    }

    /// The target a bare name stands for (Kannel's `smsc=`): a gateway, else a route.
    pub fn resolve_name(&self, name: &str) -> Option<Target> {
        if self.defs.contains_key(name) {
            Some(Target::Gateway(name.to_owned()))
        } else if self.routes.contains_key(name) {
            Some(Target::Route(name.to_owned()))
        } else {
            None
        }
    }

    /// A gateway as the API shows it: the TOML table's shape, secrets as `__CENSORED__`.
    pub fn gateway_view(&self, id: &str, registry: &Registry) -> Option<Value> {
        let (def, origin) = self.defs.get(id)?;
        let desc = registry.get(&def.provider).ok();
        let secret = |k: &str| desc.and_then(|d| d.param(k)).is_some_and(|p| p.secret);
        let censor = |m: &IndexMap<String, String>| -> Map<String, Value> {
            m.iter()
                .map(|(k, v)| (k.clone(), Value::String(censor_value(k, v, secret(k)))))
                .collect()
        };
        Some(json!({
            "id": id,
            "provider": def.provider,
            "description": def.description,
            "options": censor(&def.options),
            "headers": censor(&def.headers),
            "origin": origin.as_str(),
            "ready": self.gateways.contains_key(id),
        }))
    }

    /// A route as the API shows it.
    pub fn route_view(&self, name: &str) -> Option<Value> {
        let (r, origin) = self.routes.get(name)?;
        let mut v = r.body.clone();
        if let Some(o) = v.as_object_mut() {
            o.insert("name".into(), Value::String(name.into()));
            o.insert("origin".into(), Value::String(origin.as_str().into()));
        }
        Some(v)
    }
}

/// The catalog shared by the API and the worker; swapped whole on reload.
pub type SharedCatalog = Arc<RwLock<Arc<Catalog>>>;

/// Where the file comes from, for SIGHUP.
#[derive(Debug, Clone)]
pub struct FileSource(pub Option<PathBuf>);

impl FileSource {
    /// Reads the file (an empty configuration without one).
    pub fn read(&self) -> Result<Config, String> {
        match &self.0 {
            Some(p) => Config::load(p).map_err(|e| e.to_string()),
            None => Ok(Config::default()),
        }
    }
}

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
            "provider" | "description" | "options" | "headers" | "id" | "origin" | "ready"
        ) {
            problems.push(FieldProblem {
                field: k.clone(),
                message: "unknown field; a gateway has provider, description, options, headers"
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
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(GatewayDef {
        id: id.to_owned(),
        provider,
        description,
        options,
        headers,
        sections: Default::default(),
    })
}

/// The stored JSON of a gateway definition (secrets in clear: the database needs them).
pub fn gateway_to_json(def: &GatewayDef) -> Value {
    json!({
        "provider": def.provider,
        "description": def.description,
        "options": def.options,
        "headers": def.headers,
    })
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

/// Reads a route body (`{"gateways": ["a", "b"], …}`).
pub fn route_from_json(body: &Value) -> Result<RouteDef, Vec<FieldProblem>> {
    let gateways: Vec<String> = match body.get("gateways") {
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    if gateways.is_empty() || !body.is_object() {
        return Err(vec![FieldProblem {
            field: "gateways".into(),
            message: "required: a non-empty list of gateway ids, tried in order".into(),
        }]);
    }
    let mut body = body.clone();
    if let Some(o) = body.as_object_mut() {
        o.remove("name");
        o.remove("origin");
    }
    Ok(RouteDef { gateways, body })
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
