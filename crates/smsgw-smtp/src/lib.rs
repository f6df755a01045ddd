//! smsgw provider `smtp`: SMS through an email-to-SMS gateway.
//!
//! A gateway of this provider sends one mail per SMS through a centrally defined SMTP server
//! (`[smtp_servers.<id>]`, named by the gateway's `SMTPIDENTIFIER`), to the address in `MAILTO`,
//! with `SUBJECT` and `BODY`. The tags `{phone}` and `{otp}` work in all three. It is
//! privacyIDEA's `SmtpSMSProvider`, on lettre's async SMTP transport.
//!
//! - **The mail:** From = the server's `sender`, To = `MAILTO`, `Subject`, `Date`, `Message-ID`,
//!   `MIME-Version` and a UTF-8 `text/plain` body. Non-ASCII subjects are RFC 2047 encoded; the
//!   body is 7bit, quoted-printable or base64, whichever fits. The envelope has exactly one
//!   recipient: the `MAILTO` address. A phone number or text containing CR/LF can never add a
//!   header or a recipient (an address that does not parse as exactly one mailbox is an error).
//! - **Connections** are pooled per SMTP server definition and shared by every gateway that names
//!   the same server (a process-wide map); they are opened on the first send, never when the
//!   gateway is built, and reused between sends.
//! - **Timeouts:** the server's `timeout` (default 10 s) bounds each send as a whole, not only
//!   the connect.
//! - **Credentials** are only sent over TLS (`tls = true` for STARTTLS, or `smtps://`), unless
//!   the server definition sets `allow_insecure_auth = true`.
//!
//! ```
//! use smsgw_core::{Config, Gateways, Registry};
//! use smsgw_smtp as _; // links the provider (and its registration) in
//!
//! let cfg = Config::from_toml_str(r#"
//!     [smtp_servers.mail-gw]
//!     server = "smtp://mail.example.org:587"
//!     tls = true
//!     sender = "otp@example.org"
//!     username = "otp"
//!     password = "s3cret"
//!
//!     [gateways.mail-sms]
//!     provider = "smtp"
//!     [gateways.mail-sms.options]
//!     SMTPIDENTIFIER = "mail-gw"
//!     MAILTO = "{phone}@sms.example.net"
//!     SUBJECT = "SMS for {phone}"
//!     BODY = "Your code: {otp}"
//!     REGEXP = "/\\+//"
//! "#).unwrap();
//! // Building touches no network; connections open on the first send.
//! let gateways = Gateways::build(&cfg, Registry::global()).unwrap();
//! assert!(!format!("{gateways:?}").contains("s3cret"));
//! ```
#![deny(missing_docs)]

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use lettre::address::Envelope;
use lettre::message::Mailbox;
use lettre::message::header::{ContentType, MIME_VERSION_1_0};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::{AsyncSmtpTransport, PoolConfig};
use lettre::{AsyncTransport, Tokio1Executor};
use smsgw_core::secrecy::{ExposeSecret, SecretString};
use smsgw_core::{
    BuildContext, Capabilities, ConfigErrors, ConfigProblem, ErrorKind, Message, ParamSpec,
    Provider, ProviderDescriptor, Receipt, SendError, SmtpServer, render,
};

/// The provider's name in configuration files.
pub const NAME: &str = "smtp";

/// privacyIDEA's module path for this provider, accepted as an alias.
pub const PRIVACYIDEA_MODULE: &str = "privacyidea.lib.smsprovider.SmtpSMSProvider.SmtpSMSProvider";

/// Seconds a send may take when the server definition sets no `timeout`.
pub const DEFAULT_TIMEOUT_SECS: f64 = 10.0;

/// The gateway parameters, with privacyIDEA's names.
pub const PARAMS: &[ParamSpec] = &[
    ParamSpec::new(
        "SMTPIDENTIFIER",
        "The id of the central SMTP server definition ([smtp_servers.<id>]) to send through.",
    )
    .required()
    .aliases(&["SMTPIDENTIFIED"]),
    ParamSpec::new(
        "MAILTO",
        "The address the mail goes to, usually the email-to-SMS gateway's; tags {phone} and {otp} allowed.",
    )
    .required(),
    ParamSpec::new(
        "SUBJECT",
        "The subject of the mail; tags {phone} and {otp} allowed.",
    )
    .default_value("{phone}"),
    ParamSpec::new(
        "BODY",
        "The text of the mail; tags {phone} and {otp} allowed.",
    )
    .default_value("{otp}"),
];

smsgw_core::register_provider!(ProviderDescriptor {
    name: NAME,
    aliases: &[PRIVACYIDEA_MODULE, "SmtpSMSProvider"],
    description: "Email-to-SMS: one mail per SMS through a central SMTP server",
    params: PARAMS,
    free_options: false,
    headers: false,
    capabilities: Capabilities::none().long_messages().verbatim_phone(),
    factory: build,
});

/// How the connection to the server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Security {
    /// Plain SMTP, no TLS.
    Plain,
    /// Plain connect, then STARTTLS (required: fails when the server does not offer it).
    StartTls,
    /// TLS from the first byte (`smtps://`).
    Implicit,
}

/// Everything that makes two server definitions share a pool. The password is only hashed.
#[derive(Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    id: String,
    host: String,
    port: u16,
    security: Security,
    check_ssl: bool,
    username: Option<String>,
    password_hash: Option<u64>,
    timeout_ms: u128,
}

/// A server definition resolved for sending: where, how, and its (lazily built) pooled transport.
struct ServerConn {
    id: String,
    host: String,
    port: u16,
    security: Security,
    tls_parameters: Option<TlsParameters>,
    username: Option<String>,
    password: Option<SecretString>,
    timeout: Duration,
    slot: Mutex<Option<Slot>>,
    generation: AtomicU64,
}

/// The transport of one tokio runtime (connections belong to the runtime that opened them).
struct Slot {
    runtime: tokio::runtime::Handle,
    generation: u64,
    /// Always `Some` until dropped.
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
}

impl Slot {
    fn transport(&self) -> AsyncSmtpTransport<Tokio1Executor> {
        self.transport.clone().expect("set until dropped")
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // lettre's pool spawns its clean-up when dropped: give it the runtime it belongs to, so
        // dropping a gateway outside any runtime does not panic.
        let _guard = self.runtime.enter();
        drop(self.transport.take());
    }
}

impl std::fmt::Debug for ServerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpServer")
            .field("id", &self.id)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field(
                "password",
                &self.password.as_ref().map(|_| smsgw_core::CENSORED),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Process-wide: server definitions in use, so that gateways naming the same server share one
/// pool. Weak, so a pool goes away with the last gateway using it.
static SERVERS: LazyLock<Mutex<HashMap<PoolKey, Weak<ServerConn>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl ServerConn {
    /// The pooled transport for the current runtime, built on first use, and its generation.
    fn transport(&self) -> Option<(AsyncSmtpTransport<Tokio1Executor>, u64)> {
        let current = tokio::runtime::Handle::try_current().ok()?;
        let mut slot = self.slot.lock().unwrap();
        if let Some(s) = slot.as_ref()
            && s.runtime.id() == current.id()
        {
            return Some((s.transport(), s.generation));
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let transport = self.build_transport();
        tracing::debug!(server = %self.id, generation, "smtp: new connection pool");
        let old = slot.replace(Slot {
            runtime: current,
            generation,
            transport: Some(transport.clone()),
        });
        drop(slot);
        drop(old);
        Some((transport, generation))
    }

    /// Forgets the pool of `generation` (after a timeout or a broken connection its connections
    /// cannot be trusted to be in step with the server); the next send starts a new one.
    fn reset(&self, generation: u64) {
        let mut slot = self.slot.lock().unwrap();
        if slot.as_ref().is_some_and(|s| s.generation == generation) {
            let old = slot.take();
            drop(slot);
            drop(old);
        }
    }

    fn build_transport(&self) -> AsyncSmtpTransport<Tokio1Executor> {
        let tls = match (&self.security, &self.tls_parameters) {
            (Security::StartTls, Some(p)) => Tls::Required(p.clone()),
            (Security::Implicit, Some(p)) => Tls::Wrapper(p.clone()),
            _ => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            // Only bounds the TCP connect; the whole send is bounded in `send`.
            .timeout(Some(self.timeout))
            .pool_config(PoolConfig::new().max_size(10));
        if let Some(user) = &self.username {
            let password = self
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        builder.build()
    }
}

/// Where a `server` value points: host, port, security.
fn parse_server(s: &SmtpServer) -> Result<(String, u16, Security), (&'static str, String)> {
    let server = s.server.trim();
    let (host, url_port, implicit) = if server.contains("://") {
        let url = url::Url::parse(server)
            .map_err(|e| ("server", format!("'{server}' is not a valid address: {e}")))?;
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
            None => return Err(("server", format!("'{server}' has no host"))),
        };
        (host, url.port(), implicit)
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
                format!("port {b} contradicts the port {a} in server '{server}'"),
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

/// Resolves (and shares) the connection state for server definition `id`.
fn server_conn(id: &str, s: &SmtpServer) -> Result<Arc<ServerConn>, ConfigErrors> {
    let mut errs = ConfigErrors::new();
    let (host, port, security) = match parse_server(s) {
        Ok(v) => v,
        Err((key, msg)) => {
            errs.push(ConfigProblem::smtp_server(id, Some(key), msg));
            return Err(errs);
        }
    };
    let timeout_secs = s.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if !(timeout_secs > 0.0 && timeout_secs <= 86_400.0) {
        errs.push(ConfigProblem::smtp_server(
            id,
            Some("timeout"),
            format!("{timeout_secs} must be more than 0 and at most 86400 seconds"),
        ));
    }
    let username = s.username.clone().filter(|u| !u.is_empty());
    if username.is_some() && security == Security::Plain && !s.allow_insecure_auth {
        errs.push(ConfigProblem::smtp_server(
            id,
            Some("username"),
            "credentials would be sent without TLS: set tls = true (STARTTLS), use smtps://, \
             or set allow_insecure_auth = true to allow it on purpose",
        ));
    }
    let tls_parameters = if security == Security::Plain {
        None
    } else {
        match TlsParameters::builder(host.clone())
            .dangerous_accept_invalid_certs(!s.check_ssl)
            .dangerous_accept_invalid_hostnames(!s.check_ssl)
            .build()
        {
            Ok(p) => Some(p),
            Err(e) => {
                errs.push(ConfigProblem::smtp_server(
                    id,
                    Some("server"),
                    format!("cannot set up TLS for '{host}': {e}"),
                ));
                None
            }
        }
    };
    if !errs.is_empty() {
        return Err(errs);
    }
    let timeout = Duration::from_secs_f64(timeout_secs);
    let key = PoolKey {
        id: id.to_owned(),
        host: host.clone(),
        port,
        security,
        check_ssl: s.check_ssl,
        username: username.clone(),
        password_hash: s.password().map(|p| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            p.hash(&mut h);
            h.finish()
        }),
        timeout_ms: timeout.as_millis(),
    };
    let mut map = SERVERS.lock().unwrap();
    map.retain(|_, w| w.strong_count() > 0);
    if let Some(existing) = map.get(&key).and_then(Weak::upgrade) {
        return Ok(existing);
    }
    let conn = Arc::new(ServerConn {
        id: id.to_owned(),
        host,
        port,
        security,
        tls_parameters,
        username,
        password: s.password.clone(),
        timeout,
        slot: Mutex::new(None),
        generation: AtomicU64::new(0),
    });
    map.insert(key, Arc::downgrade(&conn));
    Ok(conn)
}

/// A gateway of the `smtp` provider.
pub struct SmtpProvider {
    gateway: String,
    server: Arc<ServerConn>,
    from: Mailbox,
    mailto: String,
    subject: String,
    body: String,
}

impl std::fmt::Debug for SmtpProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpProvider")
            .field("gateway", &self.gateway)
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .field("mailto", &self.mailto)
            .field("subject", &self.subject)
            .field("body", &self.body)
            .finish()
    }
}

/// The factory: validates what the core's generic checks do not (the server id exists, its
/// definition is usable, the sender parses) and builds the provider without touching the network.
fn build(ctx: &BuildContext<'_>) -> Result<Arc<dyn Provider>, ConfigErrors> {
    let mut errs = ConfigErrors::new();
    let server_id = ctx.text("SMTPIDENTIFIER").unwrap_or("").trim();
    // Name the option as the user spelled it (the spec's typo SMTPIDENTIFIED is accepted).
    let key = if ctx.options.contains_key("SMTPIDENTIFIED") {
        "SMTPIDENTIFIED"
    } else {
        "SMTPIDENTIFIER"
    };
    let mut server = None;
    let mut from = None;
    if !server_id.is_empty() {
        match ctx.smtp_servers.get(server_id) {
            None => {
                let mut known: Vec<&str> = ctx.smtp_servers.keys().map(String::as_str).collect();
                known.sort_unstable();
                let known = if known.is_empty() {
                    "none is defined".to_owned()
                } else {
                    format!("defined: {}", known.join(", "))
                };
                errs.push(ctx.problem(
                    key,
                    format!("no SMTP server '{server_id}' in [smtp_servers] ({known})"),
                ));
            }
            Some(def) => {
                match def.sender.trim().parse::<Mailbox>() {
                    Ok(m) => from = Some(m),
                    Err(e) => errs.push(ConfigProblem::smtp_server(
                        server_id,
                        Some("sender"),
                        format!("'{}' is not an email address: {e}", def.sender),
                    )),
                }
                match server_conn(server_id, def) {
                    Ok(c) => server = Some(c),
                    Err(e) => errs.extend(e),
                }
            }
        }
    }
    let mailto = ctx.text("MAILTO").unwrap_or("").to_owned();
    // MAILTO without tags can be checked now; with tags it is checked per message.
    if !smsgw_core::has_tag(&mailto)
        && !mailto.trim().is_empty()
        && let Err(msg) = single_mailbox(&mailto)
    {
        errs.push(ctx.problem("MAILTO", msg));
    }
    match (server, from) {
        (Some(server), Some(from)) if errs.is_empty() => Ok(Arc::new(SmtpProvider {
            gateway: ctx.gateway.to_owned(),
            server,
            from,
            mailto,
            subject: ctx.text("SUBJECT").unwrap_or("{phone}").to_owned(),
            body: ctx.text("BODY").unwrap_or("{otp}").to_owned(),
        })),
        _ => Err(errs),
    }
}

/// Parses `text` as exactly one mailbox, refusing anything that could smuggle in a header or a
/// second recipient.
fn single_mailbox(text: &str) -> Result<Mailbox, String> {
    if text.chars().any(char::is_control) {
        return Err("the address contains control characters (CR, LF, …)".into());
    }
    let mailbox: Mailbox = text
        .trim()
        .parse()
        .map_err(|e| format!("'{text}' is not one email address: {e}"))?;
    let all: lettre::message::Mailboxes = text
        .trim()
        .parse()
        .map_err(|e| format!("'{text}' is not one email address: {e}"))?;
    if all.iter().count() != 1 {
        return Err(format!("'{text}' is more than one address"));
    }
    Ok(mailbox)
}

impl SmtpProvider {
    fn error(&self, kind: ErrorKind, message: impl Into<String>) -> SendError {
        SendError::new(kind, &self.gateway, message)
    }

    /// Classifies a lettre error; true in the second field when the pool should be reset.
    fn classify(&self, e: &lettre::transport::smtp::Error) -> (SendError, bool) {
        let server = format!(
            "SMTP server '{}' ({}:{})",
            self.server.id, self.server.host, self.server.port
        );
        let text = e.to_string();
        if let Some(code) = e.status() {
            let code = code.to_string();
            // lettre writes "permanent error (535): 5.7.8 …": keep the server's words.
            let reply = text.split_once("): ").map(|(_, r)| r).unwrap_or(&text);
            let auth = matches!(code.as_str(), "530" | "534" | "535" | "538" | "454")
                && reply.to_ascii_lowercase().contains("auth");
            let what = if auth {
                "authentication failed"
            } else if e.is_transient() {
                "temporarily refused"
            } else {
                "refused"
            };
            let msg = format!("{server} {what}: {code} {reply}");
            let kind = if e.is_transient() {
                ErrorKind::NotSent
            } else {
                ErrorKind::Refused
            };
            return (self.error(kind, msg).with_code(code), false);
        }
        let chain = error_chain(e);
        if e.is_client() {
            // Raised by lettre before anything was sent: e.g. STARTTLS or AUTH not offered.
            return (
                self.error(
                    ErrorKind::Config,
                    format!("{server}: {}", strip_kind(&text)),
                ),
                false,
            );
        }
        let certificate = chain
            .iter()
            .any(|c| c.to_ascii_lowercase().contains("certificate"));
        if e.is_tls() || certificate {
            let hint = if certificate {
                " (set check_ssl = false in the server definition to accept a self-signed certificate on purpose)"
            } else {
                ""
            };
            return (
                self.error(
                    ErrorKind::Config,
                    format!("{server}: TLS failed: {}{hint}", strip_kind(&text)),
                ),
                true,
            );
        }
        // lettre's `Connection` kind is raised while connecting (resolve, TCP, TLS handshake):
        // nothing was sent. Its `Network` kind is a read or write failing on an open
        // connection, which may be after the message went out.
        if text.starts_with("Connection error") {
            return (
                self.error(
                    ErrorKind::NotSent,
                    format!("{server}: cannot connect: {}", strip_kind(&text)),
                ),
                true,
            );
        }
        if e.is_transport_shutdown() {
            return (
                self.error(ErrorKind::NotSent, format!("{server}: {text}")),
                true,
            );
        }
        (
            self.error(
                ErrorKind::Unknown,
                format!(
                    "{server}: connection failed during the exchange: {}",
                    strip_kind(&text)
                ),
            ),
            true,
        )
    }
}

fn strip_kind(text: &str) -> &str {
    text.split_once(": ").map(|(_, r)| r).unwrap_or(text)
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push(c.to_string());
        cur = c.source();
    }
    out
}

#[async_trait]
impl Provider for SmtpProvider {
    async fn send(&self, message: &Message) -> Result<Receipt, SendError> {
        let mailto = render(&self.mailto, &message.phone, &message.text);
        let to = single_mailbox(&mailto).map_err(|m| {
            self.error(
                ErrorKind::Config,
                format!("MAILTO with this phone number: {m}"),
            )
        })?;
        let subject = render(&self.subject, &message.phone, &message.text);
        let body = render(&self.body, &message.phone, &message.text).into_owned();
        let envelope = Envelope::new(Some(self.from.email.clone()), vec![to.email.clone()])
            .map_err(|e| {
                self.error(ErrorKind::Config, format!("cannot build the envelope: {e}"))
            })?;
        let mail = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject.into_owned())
            .message_id(None)
            .header(MIME_VERSION_1_0)
            .header(ContentType::TEXT_PLAIN)
            .envelope(envelope.clone())
            .body(body)
            .map_err(|e| self.error(ErrorKind::Config, format!("cannot build the mail: {e}")))?;
        let message_id = mail.headers().get_raw("Message-ID").map(|v| {
            v.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        });
        let raw = mail.formatted();

        let (transport, generation) = self.server.transport().ok_or_else(|| {
            self.error(
                ErrorKind::NotSent,
                "the smtp provider must be called from within a tokio runtime",
            )
        })?;
        let timeout = self.server.timeout;
        tracing::debug!(server = %self.server.id, rcpt = %envelope.to()[0], bytes = raw.len(), "smtp: sending");
        match tokio::time::timeout(timeout, transport.send_raw(&envelope, &raw)).await {
            Ok(Ok(response)) => {
                tracing::debug!(code = %response.code(), "smtp: accepted");
                let mut receipt = Receipt::new(&self.gateway, NAME);
                if let Some(id) = message_id {
                    receipt = receipt.with_id(id);
                }
                Ok(receipt)
            }
            Ok(Err(e)) => {
                let (err, reset) = self.classify(&e);
                if reset {
                    self.server.reset(generation);
                }
                Err(err)
            }
            Err(_) => {
                // The pooled connection is now out of step with the server: start afresh.
                self.server.reset(generation);
                Err(self.error(
                    ErrorKind::Unknown,
                    format!(
                        "SMTP server '{}' ({}:{}) did not finish the exchange within {:?}; \
                         the mail may have been accepted",
                        self.server.id, self.server.host, self.server.port, timeout
                    ),
                ))
            }
        }
    }

    async fn shutdown(&self) {
        // Shuts the pool of this server down (shared with the gateways on the same server);
        // the next send from any of them starts a new pool.
        let current = {
            let slot = self.server.slot.lock().unwrap();
            slot.as_ref().map(|s| (s.transport(), s.generation))
        };
        if let Some((transport, generation)) = current {
            let _ = tokio::time::timeout(self.server.timeout, transport.shutdown()).await;
            self.server.reset(generation);
        }
    }
}
