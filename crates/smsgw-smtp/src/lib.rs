//! smsgw provider `smtp`: SMS through an email-to-SMS gateway.
//!
//! A gateway of this provider sends one mail per SMS through a centrally defined SMTP server
//! (`[smtp_servers.<id>]`, named by the gateway's `SMTPIDENTIFIER`), to the address in `MAILTO`,
//! with `SUBJECT` and `BODY`. The tags `{phone}` and `{otp}` work in all three. It is
//! privacyIDEA's `SmtpSMSProvider`, on lettre's async SMTP client (lettre speaks the protocol;
//! the provider opens the sockets and pools the connections).
//!
//! - **The mail:** From = the server's `sender`, To = `MAILTO`, `Subject`, `Date`, `Message-ID`,
//!   `MIME-Version` and a UTF-8 `text/plain` body. Non-ASCII subjects are RFC 2047 encoded; the
//!   body is 7bit, quoted-printable or base64, whichever fits. The envelope has exactly one
//!   recipient: the `MAILTO` address. A phone number or text containing CR/LF can never add a
//!   header or a recipient (an address that does not parse as exactly one mailbox is an error).
//! - **Connections** are pooled per SMTP server definition and shared by every gateway that names
//!   the same server (a process-wide map); they are opened on the first send, never when the
//!   gateway is built, and reused between sends. Sockets are opened with `TCP_NODELAY`, so a
//!   mail on a pooled connection takes about a millisecond on loopback, not the ~40 ms that
//!   Nagle's algorithm and the server's delayed ACK would add.
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
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::io::{AsyncRead as _, AsyncWrite as _};

use async_trait::async_trait;
use lettre::address::Envelope;
use lettre::message::Mailbox;
use lettre::message::header::{ContentType, MIME_VERSION_1_0};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
#[allow(deprecated)]
use lettre::transport::smtp::client::AsyncNetworkStream;
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
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

/// Connections kept open between sends, per server definition and runtime. More may be open
/// while sends run concurrently; a connection finishing when this many are idle is closed.
const MAX_IDLE: usize = 10;

/// An idle connection older than this is closed instead of reused (servers drop idle clients).
const MAX_IDLE_TIME: Duration = Duration::from_secs(60);

/// A server definition resolved for sending: where, how, and its (lazily opened) connections.
struct ServerConn {
    id: String,
    host: String,
    port: u16,
    security: Security,
    tls_parameters: Option<TlsParameters>,
    username: Option<String>,
    password: Option<SecretString>,
    timeout: Duration,
    hello_name: ClientId,
    slot: Mutex<Option<Slot>>,
    generation: AtomicU64,
}

/// The pool of one tokio runtime (connections belong to the runtime that opened them).
struct Slot {
    runtime: tokio::runtime::Id,
    generation: u64,
    pool: Arc<Pool>,
}

/// Idle, authenticated connections in a clean state (after a successful send), ready for the
/// next `MAIL FROM`, with the time they were put back. A connection is only put back after a
/// send that succeeded; after any error or timeout it is dropped.
#[derive(Default)]
struct Pool {
    idle: Mutex<Vec<(Instant, AsyncSmtpConnection)>>,
}

impl Pool {
    /// The most recently used idle connection; idle ones older than `MAX_IDLE_TIME` are closed.
    fn take(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().unwrap();
        while let Some((since, conn)) = idle.pop() {
            if since.elapsed() < MAX_IDLE_TIME {
                return Some(conn);
            }
            drop(conn);
        }
        None
    }

    /// Puts a connection back; hands it back when the pool is full (or it is broken).
    fn put(&self, conn: AsyncSmtpConnection) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().unwrap();
        if idle.len() >= MAX_IDLE || conn.has_broken() {
            return Some(conn);
        }
        idle.push((Instant::now(), conn));
        None
    }

    fn drain(&self) -> Vec<AsyncSmtpConnection> {
        std::mem::take(&mut *self.idle.lock().unwrap())
            .into_iter()
            .map(|(_, c)| c)
            .collect()
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

/// Why getting a connection ready failed.
enum ConnectError {
    /// Resolving or the TCP connect failed: nothing was sent.
    Tcp(std::io::Error),
    /// TLS, the greeting, EHLO, STARTTLS or AUTH failed.
    Smtp(lettre::transport::smtp::Error),
}

impl From<lettre::transport::smtp::Error> for ConnectError {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        ConnectError::Smtp(e)
    }
}

impl ServerConn {
    /// The pool for the current runtime, created on first use, and its generation.
    fn pool(&self) -> Option<(Arc<Pool>, u64)> {
        let current = tokio::runtime::Handle::try_current().ok()?.id();
        let mut slot = self.slot.lock().unwrap();
        if let Some(s) = slot.as_ref()
            && s.runtime == current
        {
            return Some((s.pool.clone(), s.generation));
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(server = %self.id, generation, "smtp: new connection pool");
        let pool = Arc::new(Pool::default());
        let old = slot.replace(Slot {
            runtime: current,
            generation,
            pool: pool.clone(),
        });
        drop(slot);
        drop(old);
        Some((pool, generation))
    }

    /// Forgets the pool of `generation`; the next send starts a new one.
    fn reset(&self, generation: u64) -> Option<Arc<Pool>> {
        let mut slot = self.slot.lock().unwrap();
        if slot.as_ref().is_some_and(|s| s.generation == generation) {
            return slot.take().map(|s| s.pool);
        }
        None
    }

    /// Opens a TCP connection with `TCP_NODELAY` (lettre writes the mail data and the final
    /// `.` in two writes: with Nagle's algorithm the second waits for the server's delayed ACK,
    /// ~40 ms per mail), then lets lettre do TLS, the greeting, EHLO, STARTTLS and AUTH on it.
    async fn connect(&self) -> Result<AsyncSmtpConnection, ConnectError> {
        let addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(ConnectError::Tcp)?;
        let mut last = None;
        let mut tcp = None;
        for addr in addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp =
            tcp.ok_or_else(|| {
                ConnectError::Tcp(last.unwrap_or_else(|| {
                    std::io::Error::other("the host name resolves to no address")
                }))
            })?;
        tcp.set_nodelay(true).map_err(ConnectError::Tcp)?;
        let mut conn = match (&self.security, &self.tls_parameters) {
            (Security::Implicit, Some(p)) => {
                #[allow(deprecated)] // public, and the only way to do lettre's TLS on our socket
                let mut stream = AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
                stream.upgrade_tls(p.clone()).await?;
                AsyncSmtpConnection::connect_with_transport(
                    Box::new(TokioCompat(stream)),
                    &self.hello_name,
                )
                .await?
            }
            _ => {
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello_name).await?
            }
        };
        if let (Security::StartTls, Some(p)) = (&self.security, &self.tls_parameters) {
            // Fails (client error) when the server does not offer STARTTLS.
            conn.starttls(p.clone(), &self.hello_name).await?;
        }
        if let Some(user) = &self.username {
            let password = self
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            conn.auth(
                DEFAULT_MECHANISMS,
                &Credentials::new(user.clone(), password),
            )
            .await?;
        }
        Ok(conn)
    }

    /// A connection ready for a mail: an idle one that still answers `NOOP`, or a new one.
    async fn checkout(&self, pool: &Pool) -> Result<AsyncSmtpConnection, ConnectError> {
        // A pooled connection that does not answer NOOP quickly is given up, so that a dead
        // idle connection cannot use up the whole send's time before anything was sent.
        let probe = (self.timeout / 4).min(Duration::from_secs(2));
        while let Some(mut conn) = pool.take() {
            if let Ok(true) = tokio::time::timeout(probe, conn.test_connected()).await {
                tracing::trace!(server = %self.id, "smtp: reusing a pooled connection");
                return Ok(conn);
            }
            tracing::debug!(server = %self.id, "smtp: dropping a broken pooled connection");
        }
        tracing::debug!(server = %self.id, "smtp: opening a connection");
        self.connect().await
    }
}

/// Lets lettre's (futures-io) TLS stream be handed back to lettre as a tokio stream: implicit
/// TLS is set up by lettre on our socket before the greeting is read.
#[allow(deprecated)]
#[derive(Debug)]
struct TokioCompat(AsyncNetworkStream);

#[allow(deprecated)]
impl AsyncTokioStream for TokioCompat {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.peer_addr()
    }
}

impl tokio::io::AsyncRead for TokioCompat {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = std::task::ready!(Pin::new(&mut self.0).poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for TokioCompat {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
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
        hello_name: ClientId::default(),
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

    /// Classifies a lettre error.
    fn classify(&self, e: &lettre::transport::smtp::Error) -> SendError {
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
            return self.error(kind, msg).with_code(code);
        }
        let chain = error_chain(e);
        if e.is_client() {
            // Raised by lettre before anything was sent: e.g. STARTTLS or AUTH not offered.
            return self.error(
                ErrorKind::Config,
                format!("{server}: {}", strip_kind(&text)),
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
            return self.error(
                ErrorKind::Config,
                format!("{server}: TLS failed: {}{hint}", strip_kind(&text)),
            );
        }
        // lettre's `Connection` kind is raised while connecting (resolve, TCP, TLS handshake):
        // nothing was sent. Its `Network` kind is a read or write failing on an open
        // connection, which may be after the message went out.
        if text.starts_with("Connection error") {
            return self.error(
                ErrorKind::NotSent,
                format!("{server}: cannot connect: {}", strip_kind(&text)),
            );
        }
        self.error(
            ErrorKind::Unknown,
            format!(
                "{server}: connection failed during the exchange: {}",
                strip_kind(&text)
            ),
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

        let (pool, _) = self.server.pool().ok_or_else(|| {
            self.error(
                ErrorKind::NotSent,
                "the smtp provider must be called from within a tokio runtime",
            )
        })?;
        let timeout = self.server.timeout;
        tracing::debug!(server = %self.server.id, rcpt = %envelope.to()[0], bytes = raw.len(), "smtp: sending");
        // Bounds everything: the pool check-out, connect, TLS, AUTH and the exchange. A
        // connection still in use when the time is up is dropped with this future.
        let exchange = async {
            let mut conn = self.server.checkout(&pool).await?;
            let sent = conn.send(&envelope, &raw).await;
            if sent.is_ok() {
                // Only a connection that just finished a mail cleanly is reused.
                if let Some(mut extra) = pool.put(conn) {
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(timeout, extra.quit()).await;
                    });
                }
            }
            // After an error lettre already sent QUIT where it could; the connection is dropped.
            sent.map_err(ConnectError::Smtp)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(response)) => {
                tracing::debug!(code = %response.code(), "smtp: accepted");
                let mut receipt = Receipt::new(&self.gateway, NAME);
                if let Some(id) = message_id {
                    receipt = receipt.with_id(id);
                }
                Ok(receipt)
            }
            Ok(Err(ConnectError::Smtp(e))) => Err(self.classify(&e)),
            Ok(Err(ConnectError::Tcp(e))) => Err(self.error(
                ErrorKind::NotSent,
                format!(
                    "SMTP server '{}' ({}:{}): cannot connect: {e}",
                    self.server.id, self.server.host, self.server.port
                ),
            )),
            Err(_) => Err(self.error(
                ErrorKind::Unknown,
                format!(
                    "SMTP server '{}' ({}:{}) did not finish the exchange within {:?}; \
                     the mail may have been accepted",
                    self.server.id, self.server.host, self.server.port, timeout
                ),
            )),
        }
    }

    async fn shutdown(&self) {
        // Closes the idle connections of this server (shared with the gateways on the same
        // server); the next send from any of them starts a new pool.
        let current = {
            let slot = self.server.slot.lock().unwrap();
            slot.as_ref().map(|s| s.generation)
        };
        if let Some(pool) = current.and_then(|g| self.server.reset(g)) {
            let quits = pool.drain().into_iter().map(|mut c| async move {
                let _ = c.quit().await;
            });
            let _ =
                tokio::time::timeout(self.server.timeout, futures::future::join_all(quits)).await;
        }
    }
}
