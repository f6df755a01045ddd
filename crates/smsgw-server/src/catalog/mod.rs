//! The gateways and routes the server knows: from the configuration file (read-only through the
//! API) and from the database (created through the API), in one identifier space, with the
//! [`Router`] that sends through them (limits, breakers, failover: smsgw-routing).

mod body;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use indexmap::IndexMap;
use serde_json::{Map, Value, json};
use smsgw_core::{Config, ConfigErrors, Gateway, GatewayDef, Gateways, Registry, censor_value};
use smsgw_queue::{DefKind, Queue, Target};
use smsgw_routing::{Router, RoutingConfig, SharedRate};

pub use body::{gateway_from_json, gateway_to_json, keep_censored, route_from_json, stored};

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

/// One snapshot of everything defined; replaced whole on every change (readers never lock).
#[derive(Clone)]
pub struct Catalog {
    /// The file's configuration (SMTP servers are only defined there).
    pub file: Config,
    /// Every definition, by id, with its origin.
    pub defs: IndexMap<String, (GatewayDef, Origin)>,
    /// Every gateway that built, by id.
    pub gateways: IndexMap<String, Gateway>,
    /// Every route (its `[routes.NAME]` table), by name, with its origin.
    pub routes: IndexMap<String, (toml::Value, Origin)>,
    /// Sends to a gateway (with its limits and breaker) or through a route.
    pub router: Router,
    shared_rate: Option<Arc<dyn SharedRate>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("gateways", &self.defs.keys().collect::<Vec<_>>())
            .field("routes", &self.routes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Catalog {
    /// Builds the catalog. Problems of the file fail (as `smsgw check` reports them); problems of
    /// stored definitions (written by an older version, or a route whose gateway failed to build)
    /// are logged and the definition is left out. `shared_rate` keeps the gateways' `rate` limits
    /// across processes (a broker); without it each process keeps its own.
    pub async fn load(
        file: Config,
        queue: &dyn Queue,
        registry: &Registry,
        shared_rate: Option<Arc<dyn SharedRate>>,
    ) -> Result<Catalog, String> {
        let built = Gateways::build(&file, registry).map_err(|e| e.to_string())?;
        let refs = smsgw_routing::check_references(&file);
        if !refs.is_empty() {
            return Err(refs.to_string());
        }
        let mut cat = Catalog {
            defs: IndexMap::new(),
            gateways: built
                .iter()
                .map(|g| (g.id().to_owned(), g.clone()))
                .collect(),
            routes: IndexMap::new(),
            router: Router::build(&RoutingConfig::default(), &Gateways::default())
                .map_err(|e| e.to_string())?,
            shared_rate,
            file,
        };
        for (id, def) in &cat.file.gateways {
            cat.defs.insert(id.clone(), (def.clone(), Origin::File));
        }
        if let Some(toml::Value::Table(routes)) = cat.file.sections.get("routes") {
            for (name, table) in routes {
                cat.routes
                    .insert(name.clone(), (table.clone(), Origin::File));
            }
        }
        for s in queue
            .list_defs(DefKind::Gateway)
            .await
            .map_err(|e| e.to_string())?
        {
            if cat.defs.contains_key(&s.id) || cat.routes.contains_key(&s.id) {
                tracing::warn!(gateway = %s.id, "a gateway in the database has the name of one in the file; the file's wins");
                continue;
            }
            let def = match gateway_from_json(&s.id, &s.body) {
                Ok(d) => d,
                Err(p) => {
                    tracing::warn!(gateway = %s.id, problems = ?p, "a stored gateway is invalid; left out");
                    continue;
                }
            };
            match Gateway::build(&def, &cat.file.sections, registry) {
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
            if cat.defs.contains_key(&s.id) || cat.routes.contains_key(&s.id) {
                tracing::warn!(route = %s.id, "a route in the database has the name of one in the file; the file's wins");
                continue;
            }
            match route_from_json(&s.id, &s.body, |g| cat.gateways.contains_key(g)) {
                Ok(t) => {
                    cat.routes.insert(s.id.clone(), (t, Origin::Database));
                }
                Err(p) => {
                    tracing::warn!(route = %s.id, problems = ?p, "a stored route is invalid; left out")
                }
            }
        }
        cat.rebuild_router().map_err(|e| e.to_string())?;
        Ok(cat)
    }

    /// Builds the router for the definitions as they are now. Its breakers, rate buckets and
    /// per-recipient tables start afresh.
    pub fn rebuild_router(&mut self) -> Result<(), ConfigErrors> {
        let mut gws = toml::Table::new();
        for (id, (def, _)) in &self.defs {
            if !self.gateways.contains_key(id) {
                continue;
            }
            let mut t = toml::Table::new();
            t.insert("provider".into(), toml::Value::String(def.provider.clone()));
            if let Some(l) = def.sections.get("limits") {
                t.insert("limits".into(), l.clone());
            }
            gws.insert(id.clone(), toml::Value::Table(t));
        }
        let routes: toml::Table = self
            .routes
            .iter()
            .map(|(n, (t, _))| (n.clone(), t.clone()))
            .collect();
        let mut doc = toml::Table::new();
        doc.insert("gateways".into(), toml::Value::Table(gws));
        doc.insert("routes".into(), toml::Value::Table(routes));
        let routing = RoutingConfig::from_value(&toml::Value::Table(doc))?;
        let gateways: Gateways = self.gateways.values().cloned().collect();
        self.router = Router::build_shared(&routing, &gateways, self.shared_rate.clone())?;
        Ok(())
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

    /// The routes that send through gateway `id` (in their list or in a rule).
    pub fn routes_using(&self, id: &str) -> Vec<String> {
        let names = |v: Option<&toml::Value>| -> bool {
            v.and_then(toml::Value::as_array)
                .is_some_and(|a| a.iter().any(|g| g.as_str() == Some(id)))
        };
        self.routes
            .iter()
            .filter(|(_, (t, _))| {
                names(t.get("gateways"))
                    || t.get("rules")
                        .and_then(toml::Value::as_array)
                        .is_some_and(|rules| rules.iter().any(|r| names(r.get("gateways"))))
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// A gateway as the API shows it: the TOML table's shape, secrets as `__CENSORED__`, with
    /// its breaker state and recent failures.
    pub fn gateway_view(&self, id: &str, registry: &Registry) -> Option<Value> {
        let (def, origin) = self.defs.get(id)?;
        let desc = registry.get(&def.provider).ok();
        let secret = |k: &str| desc.and_then(|d| d.param(k)).is_some_and(|p| p.secret);
        let censor = |m: &IndexMap<String, String>| -> Map<String, Value> {
            m.iter()
                .map(|(k, v)| (k.clone(), Value::String(censor_value(k, v, secret(k)))))
                .collect()
        };
        let mut v = json!({
            "id": id,
            "provider": def.provider,
            "description": def.description,
            "options": censor(&def.options),
            "headers": censor(&def.headers),
            "origin": origin.as_str(),
            "ready": self.gateways.contains_key(id),
        });
        let o = v.as_object_mut()?;
        if let Some(l) = def.sections.get("limits") {
            o.insert("limits".into(), body::to_json(l));
        }
        if let Some(g) = self
            .router
            .listing()
            .gateways
            .into_iter()
            .find(|g| g.gateway == id)
        {
            o.insert(
                "breaker".into(),
                json!({
                    "state": g.breaker,
                    "open_until": g.open_until.map(smsgw_routing::format_time),
                    "recent_attempts": g.recent_attempts,
                    "recent_failures": g.recent_failures,
                }),
            );
        }
        Some(v)
    }

    /// A route as the API shows it: its `[routes.NAME]` table as JSON, with its name and origin.
    pub fn route_view(&self, name: &str) -> Option<Value> {
        let (t, origin) = self.routes.get(name)?;
        let mut v = body::to_json(t);
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
