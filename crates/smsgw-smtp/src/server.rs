//! The `[smtp_servers.<id>]` section this crate owns: its definition, its checks (each problem
//! reported once, by the core's section mechanism) and what a gateway's factory gets from it.

use std::time::Duration;

use indexmap::IndexMap;
use lettre::message::Mailbox;
use lettre::transport::smtp::client::TlsParameters;
use serde::Deserialize;
use smsgw_core::secrecy::{ExposeSecret, SecretString};
use smsgw_core::{CENSORED, ConfigProblem, ConfigSection, PLACEHOLDER, censor_url};

/// The name of the top-level table: `[smtp_servers.<id>]`.
pub const SECTION: &str = "smtp_servers";

/// Seconds a send may take when the server definition sets no `timeout`.
pub const DEFAULT_TIMEOUT_SECS: f64 = 10.0;

/// How problems of an entry are introduced: `smtp server 'mail', field 'port': …`.
const WHAT: &str = "smtp server";

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
            .field("server", &censor_url(&self.server))
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

    /// The definition as a TOML table (secrets as they are: for writing files, never for
    /// showing them; listings censor through the section).
    pub fn to_toml(&self) -> toml::Value {
        use toml::Value;
        let mut t = toml::Table::new();
        t.insert("server".into(), Value::String(self.server.clone()));
        if let Some(p) = self.port {
            t.insert("port".into(), Value::Integer(p.into()));
        }
        t.insert("sender".into(), Value::String(self.sender.clone()));
        t.insert("tls".into(), Value::Boolean(self.tls));
        if let Some(u) = &self.username {
            t.insert("username".into(), Value::String(u.clone()));
        }
        if let Some(p) = self.password() {
            t.insert("password".into(), Value::String(p.to_owned()));
        }
        if let Some(to) = self.timeout {
            t.insert("timeout".into(), Value::Float(to));
        }
        if !self.check_ssl {
            t.insert("check_ssl".into(), Value::Boolean(false));
        }
        if self.allow_insecure_auth {
            t.insert("allow_insecure_auth".into(), Value::Boolean(true));
        }
        Value::Table(t)
    }

    /// Adds this definition as `[smtp_servers.<id>]` of `config`.
    pub fn insert_into(&self, config: &mut smsgw_core::Config, id: &str) {
        let table = config
            .sections
            .entry(SECTION.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = table {
            t.insert(id.to_owned(), self.to_toml());
        }
    }
}

/// How the connection to the server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Security {
    /// Plain SMTP, no TLS.
    Plain,
    /// Plain connect, then STARTTLS (required: fails when the server does not offer it).
    StartTls,
    /// TLS from the first byte (`smtps://`).
    Implicit,
}

/// A server definition, checked and resolved: everything a connection needs.
#[derive(Clone)]
pub(crate) struct Resolved {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub tls_parameters: Option<TlsParameters>,
    pub check_ssl: bool,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub timeout: Duration,
    pub sender: Mailbox,
}

/// The `[smtp_servers]` table as loaded: usable definitions, and the ids of broken ones (their
/// problems are reported once, here; a gateway naming one adds nothing).
#[derive(Default)]
pub struct SmtpServers {
    pub(crate) usable: IndexMap<String, Resolved>,
    pub(crate) broken: Vec<String>,
}

impl SmtpServers {
    /// The ids of every defined server (usable or not), sorted.
    pub fn ids(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .usable
            .keys()
            .map(String::as_str)
            .chain(self.broken.iter().map(String::as_str))
            .collect();
        v.sort_unstable();
        v
    }
}

impl ConfigSection for SmtpServers {
    const NAME: &'static str = SECTION;

    fn load(value: &toml::Value) -> (Self, Vec<ConfigProblem>) {
        let mut out = SmtpServers::default();
        let mut problems = Vec::new();
        let Some(table) = value.as_table() else {
            problems.push(ConfigProblem::file(format!(
                "[{SECTION}] must be a table of server definitions ([{SECTION}.<id>])"
            )));
            return (out, problems);
        };
        for (id, entry) in table {
            let found = SmtpServer::deserialize(entry.clone())
                .map_err(|e| {
                    vec![ConfigProblem::entry(
                        WHAT,
                        id,
                        None,
                        censor_url(e.to_string().trim()),
                    )]
                })
                .and_then(|def| resolve(id, &def));
            match found {
                Ok(r) => {
                    out.usable.insert(id.clone(), r);
                }
                Err(p) => {
                    problems.extend(p);
                    out.broken.push(id.clone());
                }
            }
        }
        (out, problems)
    }
}

/// Where a `server` value points: host, port, security.
fn parse_server(s: &SmtpServer) -> Result<(String, u16, Security), (&'static str, String)> {
    let server = s.server.trim();
    let shown = censor_url(server);
    if server.is_empty() {
        return Err((
            "server",
            "required: a host name, smtp://host:port or smtps://host:port".into(),
        ));
    }
    let (host, url_port, implicit) = if server.contains("://") {
        let url = url::Url::parse(server)
            .map_err(|e| ("server", format!("'{shown}' is not a valid address: {e}")))?;
        let implicit = match url.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => {
                return Err((
                    "server",
                    format!("scheme '{other}' is not smtp:// or smtps://"),
                ));
            }
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(("server", format!("'{shown}' has no host"))),
        };
        (host, url.port(), implicit)
    } else if server.contains(['/', ' ', '@']) {
        return Err(("server", format!("'{shown}' is not a host name")));
    } else {
        (server.to_owned(), None, false)
    };
    if host.is_empty() {
        return Err(("server", "no host given".into()));
    }
    let port = match (url_port, s.port) {
        (Some(a), Some(b)) if a != b => {
            return Err((
                "port",
                format!("port {b} contradicts the port {a} in server '{shown}'"),
            ));
        }
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) if implicit => 465,
        (None, None) => 25,
    };
    if port == 0 {
        return Err(("port", "port 0 is not a port".into()));
    }
    let security = if implicit {
        Security::Implicit
    } else if s.tls {
        Security::StartTls
    } else {
        Security::Plain
    };
    Ok((host, port, security))
}

/// Checks one definition; every problem of it at once.
fn resolve(id: &str, s: &SmtpServer) -> Result<Resolved, Vec<ConfigProblem>> {
    let mut errs = Vec::new();
    let mut p = |key: &str, msg: String| errs.push(ConfigProblem::entry(WHAT, id, Some(key), msg));
    let server = match parse_server(s) {
        Ok(v) => Some(v),
        Err((key, msg)) => {
            p(key, msg);
            None
        }
    };
    let sender = match s.sender.trim().parse::<Mailbox>() {
        Ok(m) => Some(m),
        Err(e) => {
            p(
                "sender",
                format!("'{}' is not an email address: {e}", s.sender),
            );
            None
        }
    };
    let timeout_secs = s.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if !(timeout_secs > 0.0 && timeout_secs <= 86_400.0) {
        p(
            "timeout",
            format!("{timeout_secs} must be more than 0 and at most 86400 seconds"),
        );
    }
    if s.password.is_some() && s.username.is_none() {
        p("username", "a password is set but no username".into());
    }
    if s.password().is_some_and(|pw| pw.contains(PLACEHOLDER)) {
        p(
            "password",
            format!("still holds the placeholder {PLACEHOLDER}: fill in the real value"),
        );
    }
    let username = s.username.clone().filter(|u| !u.is_empty());
    let mut tls_parameters = None;
    if let Some((host, _, security)) = &server {
        if username.is_some() && *security == Security::Plain && !s.allow_insecure_auth {
            p(
                "username",
                "credentials would be sent without TLS: set tls = true (STARTTLS), use smtps://, \
                 or set allow_insecure_auth = true to allow it on purpose"
                    .into(),
            );
        }
        if *security != Security::Plain {
            match TlsParameters::builder(host.clone())
                .dangerous_accept_invalid_certs(!s.check_ssl)
                .dangerous_accept_invalid_hostnames(!s.check_ssl)
                .build()
            {
                Ok(t) => tls_parameters = Some(t),
                Err(e) => p("server", format!("cannot set up TLS for '{host}': {e}")),
            }
        }
    }
    match (server, sender) {
        (Some((host, port, security)), Some(sender)) if errs.is_empty() => Ok(Resolved {
            host,
            port,
            security,
            tls_parameters,
            check_ssl: s.check_ssl,
            username,
            password: s.password.clone(),
            timeout: Duration::from_secs_f64(timeout_secs),
            sender,
        }),
        _ => Err(errs),
    }
}
