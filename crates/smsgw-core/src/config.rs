//! The configuration file: central SMTP servers and gateway definitions (TOML).

use std::path::Path;

use indexmap::IndexMap;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use crate::error::{ConfigErrors, ConfigProblem};
use crate::secret::{CENSORED, censor_value};

/// Marks a value that an import could not carry over (privacyIDEA exports secrets censored).
/// `smsgw check` rejects any option that still holds it.
pub const PLACEHOLDER: &str = "__FILL_IN__";

/// A whole configuration: `[smtp_servers.*]` and `[gateways.*]`, in file order.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Central SMTP servers, referenced by the smtp provider's `SMTPIDENTIFIER`.
    #[serde(default)]
    pub smtp_servers: IndexMap<String, SmtpServer>,
    /// Gateway definitions by identifier.
    #[serde(default, deserialize_with = "gateways_with_ids")]
    pub gateways: IndexMap<String, GatewayDef>,
}

/// One gateway definition: the model of privacyIDEA's SMS gateway.
#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GatewayDef {
    /// The identifier (the table name in the file).
    #[serde(skip)]
    pub id: String,
    /// A provider name (`http`) or privacyIDEA module path.
    pub provider: String,
    /// Free text for people.
    #[serde(default)]
    pub description: Option<String>,
    /// Options (parameters and free options), names as in the spec, in order.
    #[serde(default, deserialize_with = "string_map")]
    pub options: IndexMap<String, String>,
    /// HTTP headers (http provider), in order.
    #[serde(default, deserialize_with = "string_map")]
    pub headers: IndexMap<String, String>,
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
            .finish()
    }
}

/// A central SMTP server definition (`[smtp_servers.<id>]`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpServer {
    /// A host name, or `smtp://host:port`, or `smtps://host:port` (TLS from the first byte).
    pub server: String,
    /// The port (default 25, 465 for `smtps://`).
    #[serde(default)]
    pub port: Option<u16>,
    /// The From address.
    pub sender: String,
    /// STARTTLS, required when true.
    #[serde(default)]
    pub tls: bool,
    /// The user name for SMTP AUTH.
    #[serde(default)]
    pub username: Option<String>,
    /// The password for SMTP AUTH (secret).
    #[serde(default)]
    pub password: Option<SecretString>,
    /// Seconds one send may take as a whole (default 10).
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Verify the server's certificate (default true).
    #[serde(default = "yes")]
    pub check_ssl: bool,
    /// Allow AUTH over a connection without TLS (default false).
    #[serde(default)]
    pub allow_insecure_auth: bool,
}

fn yes() -> bool {
    true
}

impl std::fmt::Debug for SmtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpServer")
            .field("server", &self.server)
            .field("port", &self.port)
            .field("sender", &self.sender)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| CENSORED))
            .field("timeout", &self.timeout)
            .field("check_ssl", &self.check_ssl)
            .field("allow_insecure_auth", &self.allow_insecure_auth)
            .finish()
    }
}

impl SmtpServer {
    /// A definition for `server` sending as `sender`, with the defaults for everything else.
    pub fn new(server: impl Into<String>, sender: impl Into<String>) -> Self {
        SmtpServer {
            server: server.into(),
            port: None,
            sender: sender.into(),
            tls: false,
            username: None,
            password: None,
            timeout: None,
            check_ssl: true,
            allow_insecure_auth: false,
        }
    }

    /// The password, for the one place that sends it.
    pub fn password(&self) -> Option<&str> {
        self.password.as_ref().map(|p| p.expose_secret())
    }
}

fn gateways_with_ids<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, GatewayDef>, D::Error> {
    let mut map = IndexMap::<String, GatewayDef>::deserialize(d)?;
    for (id, g) in map.iter_mut() {
        g.id = id.clone();
    }
    Ok(map)
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

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::from(ConfigProblem::file(format!(
                "cannot read {}: {e}",
                path.display()
            )))
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
        if !self.smtp_servers.is_empty() {
            let mut servers = toml::Table::new();
            for (id, s) in &self.smtp_servers {
                let mut t = toml::Table::new();
                t.insert("server".into(), Value::String(s.server.clone()));
                if let Some(p) = s.port {
                    t.insert("port".into(), Value::Integer(p.into()));
                }
                t.insert("sender".into(), Value::String(s.sender.clone()));
                t.insert("tls".into(), Value::Boolean(s.tls));
                if let Some(u) = &s.username {
                    t.insert("username".into(), Value::String(u.clone()));
                }
                if let Some(p) = s.password() {
                    let v = if censor {
                        CENSORED.to_owned()
                    } else {
                        p.to_owned()
                    };
                    t.insert("password".into(), Value::String(v));
                }
                if let Some(to) = s.timeout {
                    t.insert("timeout".into(), Value::Float(to));
                }
                if !s.check_ssl {
                    t.insert("check_ssl".into(), Value::Boolean(false));
                }
                if s.allow_insecure_auth {
                    t.insert("allow_insecure_auth".into(), Value::Boolean(true));
                }
                servers.insert(id.clone(), Value::Table(t));
            }
            root.insert("smtp_servers".into(), Value::Table(servers));
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
            gws.insert(id.clone(), Value::Table(t));
        }
        root.insert("gateways".into(), Value::Table(gws));
        toml::to_string_pretty(&root).unwrap_or_default()
    }
}
