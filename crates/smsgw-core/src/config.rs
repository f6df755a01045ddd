//! The configuration file: gateway definitions and the sections registered crates own (TOML).

use std::io::Read as _;
use std::path::Path;

use indexmap::IndexMap;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::error::{ConfigErrors, ConfigProblem};
use crate::secret::censor_value;
use crate::section::{SectionPlace, section_owner, unknown_section};

/// Marks a value that an import could not carry over (privacyIDEA exports secrets censored).
/// `smsgw check` rejects any option that still holds it.
pub const PLACEHOLDER: &str = "__FILL_IN__";

/// The largest configuration file read, in bytes (1 MiB): a gateway definition takes a few
/// hundred bytes, and a bound keeps `--config /dev/zero` from eating the machine's memory.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// A whole configuration: `[gateways.*]` and the top-level sections registered crates own
/// (e.g. `[smtp_servers.*]`), in file order.
#[derive(Clone, Default)]
pub struct Config {
    /// Gateway definitions by identifier.
    pub gateways: IndexMap<String, GatewayDef>,
    /// Top-level tables owned by a registered section ([`register_section!`](crate::register_section)),
    /// by name, as written. The file parser rejects a table no crate owns.
    pub sections: IndexMap<String, toml::Value>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("gateways", &self.gateways)
            .field(
                "sections",
                &censored_sections(SectionPlace::TopLevel, &self.sections),
            )
            .finish()
    }
}

/// One gateway definition: the model of privacyIDEA's SMS gateway.
#[derive(Clone, Default)]
pub struct GatewayDef {
    /// The identifier (the table name in the file).
    pub id: String,
    /// A provider name (`http`) or privacyIDEA module path.
    pub provider: String,
    /// Free text for people.
    pub description: Option<String>,
    /// Options (parameters and free options), names as in the spec, in order.
    pub options: IndexMap<String, String>,
    /// HTTP headers (http provider), in order.
    pub headers: IndexMap<String, String>,
    /// Tables inside the definition owned by a registered section (e.g. `limits`), as written.
    pub sections: IndexMap<String, toml::Value>,
}

impl std::fmt::Debug for GatewayDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let censor = |m: &IndexMap<String, String>| -> IndexMap<String, String> {
            m.iter()
                .map(|(k, v)| (k.clone(), censor_value(k, v, false)))
                .collect()
        };
        f.debug_struct("GatewayDef")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field("description", &self.description)
            .field("options", &censor(&self.options))
            .field("headers", &censor(&self.headers))
            .field(
                "sections",
                &censored_sections(SectionPlace::Gateway, &self.sections),
            )
            .finish()
    }
}

/// Tables as they may be shown: each censored by its owner (by the core's rules without one).
fn censored_sections(
    place: SectionPlace,
    sections: &IndexMap<String, toml::Value>,
) -> IndexMap<String, toml::Value> {
    sections
        .iter()
        .map(|(k, v)| {
            let shown = match section_owner(place, k) {
                Some(owner) => owner.censored(v),
                None => crate::secret::censor_toml(v),
            };
            (k.clone(), shown)
        })
        .collect()
}

impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Config;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a configuration table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Config, A::Error> {
                let mut cfg = Config::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "gateways" {
                        let mut gws = map.next_value::<IndexMap<String, GatewayDef>>()?;
                        for (id, g) in gws.iter_mut() {
                            g.id = id.clone();
                        }
                        cfg.gateways = gws;
                    } else if section_owner(SectionPlace::TopLevel, &key).is_some() {
                        let v = map.next_value::<toml::Value>()?;
                        cfg.sections.insert(key, v);
                    } else {
                        return Err(de::Error::custom(unknown_section(&key)));
                    }
                }
                Ok(cfg)
            }
        }
        d.deserialize_map(V)
    }
}

const GATEWAY_FIELDS: &[&str] = &["provider", "description", "options", "headers"];

impl<'de> Deserialize<'de> for GatewayDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = GatewayDef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a gateway definition")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GatewayDef, A::Error> {
                let mut g = GatewayDef::default();
                let mut provider = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "provider" => provider = Some(map.next_value::<String>()?),
                        "description" => g.description = map.next_value()?,
                        "options" => g.options = map.next_value::<StringMap>()?.0,
                        "headers" => g.headers = map.next_value::<StringMap>()?.0,
                        other if section_owner(SectionPlace::Gateway, other).is_some() => {
                            let v = map.next_value::<toml::Value>()?;
                            g.sections.insert(key, v);
                        }
                        other => return Err(de::Error::unknown_field(other, GATEWAY_FIELDS)),
                    }
                }
                g.provider = provider.ok_or_else(|| de::Error::missing_field("provider"))?;
                Ok(g)
            }
        }
        d.deserialize_map(V)
    }
}

struct StringMap(IndexMap<String, String>);

impl<'de> Deserialize<'de> for StringMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_map(d).map(StringMap)
    }
}

/// Option values are strings; numbers are taken as their text, a table (for `PARAMETER`) as a
/// JSON object in a string, as privacyIDEA stores it.
fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<IndexMap<String, String>, D::Error> {
    let raw = IndexMap::<String, toml::Value>::deserialize(d)?;
    let mut out = IndexMap::with_capacity(raw.len());
    for (k, v) in raw {
        let s = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Table(_) => serde_json::to_string(&v).map_err(serde::de::Error::custom)?,
            toml::Value::Boolean(b) => {
                return Err(serde::de::Error::custom(format!(
                    "option '{k}' = {b}: write the value as a string (\"{}\")",
                    if b { "yes" } else { "no" }
                )));
            }
            other => {
                return Err(serde::de::Error::custom(format!(
                    "option '{k}' must be a string, not {}",
                    other.type_str()
                )));
            }
        };
        out.insert(k, s);
    }
    Ok(out)
}

impl Config {
    /// Parses TOML. Syntax and type errors are reported with their position.
    ///
    /// ```
    /// let cfg = smsgw_core::Config::from_toml_str(r#"
    ///     [gateways.sms1]
    ///     provider = "http"
    ///     options = { URL = "https://sms.example.org/send", to = "{phone}", text = "{otp}" }
    /// "#).unwrap();
    /// assert_eq!(cfg.gateways["sms1"].options["to"], "{phone}");
    /// ```
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigErrors> {
        toml::from_str(text).map_err(|e| {
            ConfigErrors::from(ConfigProblem::file(
                e.to_string().trim_end().replace('\n', "\n    "),
            ))
        })
    }

    /// Reads and parses a file of at most [`MAX_CONFIG_BYTES`] (read through a bounded reader:
    /// the size the file system reports is not trusted, so a device or a growing file is safe).
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let fail = |msg: String| ConfigErrors::from(ConfigProblem::file(msg));
        let file = std::fs::File::open(path)
            .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(fail(format!(
                "{} is larger than {} KiB, the most a configuration file may hold",
                path.display(),
                MAX_CONFIG_BYTES / 1024
            )));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            fail(format!(
                "{} is not UTF-8 text (invalid byte at offset {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ))
        })?;
        Self::from_toml_str(&text).map_err(|errs| {
            let mut out = ConfigErrors::new();
            for p in errs.problems() {
                out.push(ConfigProblem::file(format!(
                    "{}: {}",
                    path.display(),
                    p.message
                )));
            }
            out
        })
    }

    /// The configuration as TOML with every secret replaced by `__CENSORED__`.
    pub fn to_toml_censored(&self) -> String {
        self.to_toml(true)
    }

    /// The configuration as TOML; with `censor` false secrets are written as they are (for
    /// generating files, never for showing them).
    pub fn to_toml(&self, censor: bool) -> String {
        use toml::Value;
        let show = |k: &str, v: &str| {
            if censor {
                censor_value(k, v, false)
            } else {
                v.to_owned()
            }
        };
        let mut root = toml::Table::new();
        let sections = if censor {
            censored_sections(SectionPlace::TopLevel, &self.sections)
        } else {
            self.sections.clone()
        };
        for (name, value) in sections {
            root.insert(name, value);
        }
        let mut gws = toml::Table::new();
        for (id, g) in &self.gateways {
            let mut t = toml::Table::new();
            t.insert("provider".into(), Value::String(g.provider.clone()));
            if let Some(d) = &g.description {
                t.insert("description".into(), Value::String(d.clone()));
            }
            let map = |m: &IndexMap<String, String>| {
                Value::Table(
                    m.iter()
                        .map(|(k, v)| (k.clone(), Value::String(show(k, v))))
                        .collect(),
                )
            };
            t.insert("options".into(), map(&g.options));
            if !g.headers.is_empty() {
                t.insert("headers".into(), map(&g.headers));
            }
            let tables = if censor {
                censored_sections(SectionPlace::Gateway, &g.sections)
            } else {
                g.sections.clone()
            };
            for (name, value) in tables {
                t.insert(name, value);
            }
            gws.insert(id.clone(), Value::Table(t));
        }
        root.insert("gateways".into(), Value::Table(gws));
        toml::to_string_pretty(&root).unwrap_or_default()
    }
}
