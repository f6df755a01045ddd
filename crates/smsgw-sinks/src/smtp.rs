//! An SMTP server sink: accepts mail on loopback and records every message, decoded.
//!
//! It speaks enough ESMTP for real clients (lettre, Python's smtplib, swaks): `EHLO`/`HELO`,
//! `STARTTLS` with a self-signed certificate, implicit TLS (`smtps`), `AUTH PLAIN` and
//! `AUTH LOGIN` against configurable credentials, `MAIL`/`RCPT`/`DATA` with dot-unstuffing,
//! `RSET`, `NOOP`, `VRFY`, `HELP`, `QUIT`. Commands may be pipelined; lines and messages are
//! bounded in size. Plaintext received before a `STARTTLS` upgrade is discarded (RFC 3207).
//!
//! Every complete message becomes an [`SmtpMessage`] (envelope, raw data, headers in order,
//! decoded subject and body, how the client authenticated, whether TLS was on) and, unless it was
//! rejected, a [`Received`] in the sink's [`Recorder`] with the first recipient and the decoded
//! body. The sink's [`FaultPlan`] is consulted once per message, when its `DATA` is complete:
//!
//! | fault | the sink … |
//! |---|---|
//! | none | records the message and answers `250` |
//! | [`Fault::Reply`] | answers that reply instead of `250`; records the message only when the code is below 400 |
//! | [`Fault::Delay`] | records the message, waits, then answers `250` |
//! | [`Fault::NeverAnswer`] | records the message and never answers (the connection stays open) |
//! | [`Fault::Close`] | records the message and closes the connection without answering |
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use smsgw_sinks::smtp::SmtpSink;
//! let sink = SmtpSink::builder().starttls().credentials("user", "secret").start().await.unwrap();
//! assert!(sink.url().starts_with("smtp://127.0.0.1:"));
//! assert!(sink.certificate_pem().contains("BEGIN CERTIFICATE"));
//! assert_eq!(sink.connections(), 0);
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use mail_parser::MimeHeaders as _;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::{Fault, FaultPlan, Received, Recorder};

/// Longest command line accepted (RFC 5321 says 512; extensions make real ones longer).
const MAX_COMMAND_LINE: usize = 4096;
/// Longest line inside `DATA` accepted before the message counts as too large.
const MAX_DATA_LINE: usize = 64 * 1024;
/// Protocol errors tolerated on one connection before the sink hangs up.
const MAX_ERRORS: usize = 20;
/// Recipients accepted per message.
const MAX_RECIPIENTS: usize = 100;

/// How a client authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmtpAuth {
    /// `PLAIN` or `LOGIN`.
    pub mechanism: String,
    /// The user name (authentication identity) the client gave.
    pub username: String,
}

/// One message the sink received, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmtpMessage {
    /// Which TCP connection (numbered from 1) carried it.
    pub connection: usize,
    /// The name the client gave in `EHLO`/`HELO`.
    pub ehlo: String,
    /// The envelope sender (`MAIL FROM`), without angle brackets.
    pub mail_from: String,
    /// Parameters of `MAIL FROM` (e.g. `SIZE=340`, `BODY=8BITMIME`).
    pub mail_options: Vec<String>,
    /// The envelope recipients (`RCPT TO`) in order, without angle brackets.
    pub rcpt_tos: Vec<String>,
    /// The message as transmitted, dot-unstuffed (lossy UTF-8).
    pub data: String,
    /// The header fields in order, names as written, values unfolded and trimmed (still encoded).
    pub headers: Vec<(String, String)>,
    /// The `Subject`, with RFC 2047 encoded words decoded.
    pub subject: Option<String>,
    /// The MIME type, e.g. `text/plain` (`text/plain` when absent).
    pub content_type: String,
    /// The `charset` parameter of the content type, if any.
    pub charset: Option<String>,
    /// The `Content-Transfer-Encoding` (`7bit` when absent).
    pub content_transfer_encoding: String,
    /// The first text body, transfer encoding and charset decoded.
    pub body: String,
    /// How the client authenticated on this connection, if it did.
    pub auth: Option<SmtpAuth>,
    /// Whether the connection was encrypted (STARTTLS or implicit TLS) when the message arrived.
    pub tls: bool,
    /// The reply code sent after `DATA`, or `None` when the sink never answered or hung up.
    pub reply_code: Option<u16>,
}

impl SmtpMessage {
    /// The value of the first header named `name` (case-insensitive), still encoded.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How many header fields named `name` (case-insensitive) the message has.
    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// The body as an SMS text: line breaks as `\n`, the final line break removed.
    pub fn text(&self) -> String {
        let t = self.body.replace("\r\n", "\n");
        t.strip_suffix('\n').map(str::to_owned).unwrap_or(t)
    }
}

/// Builds an [`SmtpSink`] with TLS and authentication options. See [`SmtpSink::builder`].
#[derive(Debug, Clone)]
pub struct SmtpSinkBuilder {
    starttls: bool,
    implicit_tls: bool,
    credentials: Vec<(String, String)>,
    mechanisms: Vec<String>,
    require_auth: bool,
    max_message_size: usize,
    hostname: String,
}

impl Default for SmtpSinkBuilder {
    fn default() -> Self {
        SmtpSinkBuilder {
            starttls: false,
            implicit_tls: false,
            credentials: Vec::new(),
            mechanisms: vec!["PLAIN".into(), "LOGIN".into()],
            require_auth: false,
            max_message_size: 10 * 1024 * 1024,
            hostname: "sink.smsgw.test".into(),
        }
    }
}

impl SmtpSinkBuilder {
    /// Offers `STARTTLS` (with a self-signed certificate for `localhost` and `127.0.0.1`).
    pub fn starttls(mut self) -> Self {
        self.starttls = true;
        self
    }

    /// Speaks TLS from the first byte (`smtps`, as on port 465).
    pub fn implicit_tls(mut self) -> Self {
        self.implicit_tls = true;
        self
    }

    /// Accepts this user name and password with `AUTH PLAIN` and `AUTH LOGIN` (may be called
    /// more than once). `AUTH` is advertised as soon as one pair is set, with or without TLS.
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials.push((username.into(), password.into()));
        self
    }

    /// The SASL mechanisms offered, out of `PLAIN` and `LOGIN` (default both, in that order).
    pub fn auth_mechanisms<I, S>(mut self, mechanisms: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.mechanisms = mechanisms
            .into_iter()
            .map(|m| m.into().to_ascii_uppercase())
            .collect();
        self
    }

    /// Refuses `MAIL FROM` with `530` until the client has authenticated.
    pub fn require_auth(mut self) -> Self {
        self.require_auth = true;
        self
    }

    /// The largest message accepted (default 10 MiB); larger ones get `552`.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// The host name the sink greets with.
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = name.into();
        self
    }

    /// Starts the sink on `127.0.0.1` on a free port.
    pub async fn start(self) -> std::io::Result<SmtpSink> {
        self.start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts the sink on `addr`.
    pub async fn start_on(self, addr: SocketAddr) -> std::io::Result<SmtpSink> {
        let crate::tls::SelfSigned {
            acceptor,
            cert_pem,
            cert_der,
        } = crate::tls::self_signed(&[])?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            options: self,
            acceptor,
            recorder: Recorder::new(),
            faults: FaultPlan::default(),
            messages: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(SmtpSink {
            addr,
            shared,
            cert_pem,
            cert_der,
            task,
        })
    }
}

struct Shared {
    options: SmtpSinkBuilder,
    acceptor: TlsAcceptor,
    recorder: Recorder,
    faults: FaultPlan,
    messages: Mutex<Vec<SmtpMessage>>,
    connections: AtomicUsize,
}

/// A running SMTP sink. It stops, closing every connection, when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cert_pem: String,
    cert_der: Vec<u8>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("addr", &self.addr)
            .field("starttls", &self.shared.options.starttls)
            .field("implicit_tls", &self.shared.options.implicit_tls)
            .field("auth", &!self.shared.options.credentials.is_empty())
            .finish()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    /// A plain SMTP sink (no TLS, no AUTH) on `127.0.0.1` on a free port.
    pub async fn start() -> std::io::Result<SmtpSink> {
        SmtpSinkBuilder::default().start().await
    }

    /// A plain SMTP sink on `addr`.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<SmtpSink> {
        SmtpSinkBuilder::default().start_on(addr).await
    }

    /// Options for TLS and authentication; finish with [`SmtpSinkBuilder::start`].
    pub fn builder() -> SmtpSinkBuilder {
        SmtpSinkBuilder::default()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://127.0.0.1:PORT`, or `smtps://…` for an implicit-TLS sink.
    pub fn url(&self) -> String {
        let scheme = if self.shared.options.implicit_tls {
            "smtps"
        } else {
            "smtp"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The uniform record of every accepted message.
    pub fn recorder(&self) -> &Recorder {
        &self.shared.recorder
    }

    /// How the sink misbehaves, per message at the end of `DATA`.
    pub fn faults(&self) -> &FaultPlan {
        &self.shared.faults
    }

    /// Every complete message received so far (rejected ones too), in arrival order.
    pub fn messages(&self) -> Vec<SmtpMessage> {
        self.shared.messages.lock().unwrap().clone()
    }

    /// How many TCP connections clients have opened so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The self-signed certificate (PEM) used for STARTTLS and implicit TLS.
    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The self-signed certificate (DER).
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Connection tasks live in the set: aborting this task (the sink was dropped) drops the set,
    // which aborts them all and closes their sockets.
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let n = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
                let shared = shared.clone();
                tasks.spawn(async move {
                    if let Err(e) = serve(stream, n, &shared).await {
                        tracing::debug!(%peer, connection = n, "smtp sink: connection ended: {e}");
                    }
                });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One line read from the client.
enum Line {
    /// The bytes up to and including the line feed (or up to EOF for a last unterminated line).
    Data(Vec<u8>),
    /// The line was longer than allowed; it was consumed and discarded.
    TooLong,
    /// The client closed the connection.
    Eof,
}

/// Reads one line of at most `max` bytes from a buffered reader; pipelined lines stay buffered.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Line> {
    let mut out = Vec::new();
    let mut too_long = false;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if out.is_empty() && !too_long {
                Line::Eof
            } else if too_long {
                Line::TooLong
            } else {
                Line::Data(out)
            });
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let n = chunk.len();
        if !too_long {
            if out.len() + n > max {
                too_long = true;
                out.clear();
            } else {
                out.extend_from_slice(chunk);
            }
        }
        r.consume(n);
        if done {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Data(out)
            });
        }
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[derive(Default)]
struct Transaction {
    mail_from: Option<String>,
    mail_options: Vec<String>,
    rcpt_tos: Vec<String>,
}

struct Session<'a> {
    shared: &'a Shared,
    connection: usize,
    io: BufReader<Box<dyn Io>>,
    tls: bool,
    ehlo: Option<String>,
    auth: Option<SmtpAuth>,
    tx: Transaction,
    errors: usize,
}

/// What the session does after a command.
enum Next {
    Continue,
    Quit,
    /// Hand the connection over to TLS (after `220` to `STARTTLS`).
    StartTls,
}

async fn serve(stream: TcpStream, connection: usize, shared: &Shared) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (io, tls): (Box<dyn Io>, bool) = if shared.options.implicit_tls {
        (Box::new(shared.acceptor.accept(stream).await?), true)
    } else {
        (Box::new(stream), false)
    };
    let mut s = Session {
        shared,
        connection,
        io: BufReader::new(io),
        tls,
        ehlo: None,
        auth: None,
        tx: Transaction::default(),
        errors: 0,
    };
    let greeting = format!(
        "220 {} ESMTP smsgw-testkit sink ready",
        shared.options.hostname
    );
    s.reply(&greeting).await?;
    loop {
        let line = match read_line(&mut s.io, MAX_COMMAND_LINE).await? {
            Line::Eof => return Ok(()),
            Line::TooLong => {
                s.error("500 5.5.2 Line too long").await?;
                if s.errors >= MAX_ERRORS {
                    return Ok(());
                }
                continue;
            }
            Line::Data(l) => l,
        };
        let line = String::from_utf8_lossy(trim_eol(&line)).into_owned();
        match s.command(&line).await? {
            Next::Continue => {}
            Next::Quit => return Ok(()),
            Next::StartTls => {
                // Dropping the reader's buffer discards anything pipelined after STARTTLS in
                // plaintext (RFC 3207 §4.2: it must not be trusted).
                let plain =
                    std::mem::replace(&mut s.io, BufReader::new(Box::new(tokio::io::empty())))
                        .into_inner();
                let tls_stream = shared.acceptor.accept(plain).await?;
                s.io = BufReader::new(Box::new(tls_stream));
                s.tls = true;
                s.ehlo = None;
                s.auth = None;
                s.tx = Transaction::default();
            }
        }
        if s.errors >= MAX_ERRORS {
            s.reply("421 4.7.0 Too many errors, closing connection")
                .await?;
            return Ok(());
        }
    }
}

/// Splits `FROM:<addr> PARAMS` (or `TO:`) into the address and its parameters.
fn parse_path(arg: &str, prefix: &str) -> Option<(String, Vec<String>)> {
    let head = arg.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = arg[prefix.len()..].trim_start();
    let (addr, params) = if let Some(r) = rest.strip_prefix('<') {
        let end = r.find('>')?;
        (r[..end].to_owned(), &r[end + 1..])
    } else {
        // Lenient: a bare address up to the first space.
        let end = rest.find(' ').unwrap_or(rest.len());
        (rest[..end].to_owned(), &rest[end..])
    };
    let params = params.split_whitespace().map(str::to_owned).collect();
    Some((addr, params))
}

impl Session<'_> {
    async fn reply(&mut self, text: &str) -> std::io::Result<()> {
        let w = self.io.get_mut();
        w.write_all(text.as_bytes()).await?;
        w.write_all(b"\r\n").await?;
        w.flush().await
    }

    async fn error(&mut self, text: &str) -> std::io::Result<()> {
        self.errors += 1;
        self.reply(text).await
    }

    async fn read_auth_line(&mut self) -> std::io::Result<Option<String>> {
        match read_line(&mut self.io, MAX_COMMAND_LINE).await? {
            Line::Data(l) => Ok(Some(String::from_utf8_lossy(trim_eol(&l)).into_owned())),
            Line::TooLong => Ok(Some(String::new())),
            Line::Eof => Ok(None),
        }
    }

    async fn command(&mut self, line: &str) -> std::io::Result<Next> {
        let (verb, arg) = match line.find(' ') {
            Some(i) => (&line[..i], line[i + 1..].trim()),
            None => (line, ""),
        };
        let opts = &self.shared.options;
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                if arg.is_empty() {
                    self.error("501 5.5.4 EHLO needs a domain").await?;
                    return Ok(Next::Continue);
                }
                self.ehlo = Some(arg.to_owned());
                self.tx = Transaction::default();
                let mut lines = vec![
                    format!("{} greets {arg}", opts.hostname),
                    "PIPELINING".to_owned(),
                    "8BITMIME".to_owned(),
                    "SMTPUTF8".to_owned(),
                    format!("SIZE {}", opts.max_message_size),
                ];
                if opts.starttls && !self.tls {
                    lines.push("STARTTLS".into());
                }
                if !opts.credentials.is_empty() && !opts.mechanisms.is_empty() {
                    lines.push(format!("AUTH {}", opts.mechanisms.join(" ")));
                }
                lines.push("HELP".into());
                let last = lines.len() - 1;
                let text: Vec<String> = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
                    .collect();
                self.reply(&text.join("\r\n")).await?;
            }
            "HELO" => {
                if arg.is_empty() {
                    self.error("501 5.5.4 HELO needs a domain").await?;
                    return Ok(Next::Continue);
                }
                self.ehlo = Some(arg.to_owned());
                self.tx = Transaction::default();
                let text = format!("250 {}", opts.hostname);
                self.reply(&text).await?;
            }
            "STARTTLS" => {
                if !opts.starttls {
                    self.error("502 5.5.1 STARTTLS not available").await?;
                } else if self.tls {
                    self.error("503 5.5.1 TLS already active").await?;
                } else if !arg.is_empty() {
                    self.error("501 5.5.4 STARTTLS takes no arguments").await?;
                } else {
                    self.reply("220 2.0.0 Ready to start TLS").await?;
                    return Ok(Next::StartTls);
                }
            }
            "AUTH" => self.auth_command(arg).await?,
            "MAIL" => {
                if self.ehlo.is_none() {
                    self.error("503 5.5.1 Say EHLO first").await?;
                } else if self.tx.mail_from.is_some() {
                    self.error("503 5.5.1 Nested MAIL command").await?;
                } else if opts.require_auth && self.auth.is_none() {
                    self.error("530 5.7.0 Authentication required").await?;
                } else {
                    match parse_path(arg, "FROM:") {
                        Some((from, params)) => {
                            self.tx.mail_from = Some(from);
                            self.tx.mail_options = params;
                            self.reply("250 2.1.0 Ok").await?;
                        }
                        None => self.error("501 5.5.4 Syntax: MAIL FROM:<address>").await?,
                    }
                }
            }
            "RCPT" => {
                if self.tx.mail_from.is_none() {
                    self.error("503 5.5.1 Need MAIL before RCPT").await?;
                } else if self.tx.rcpt_tos.len() >= MAX_RECIPIENTS {
                    self.error("452 4.5.3 Too many recipients").await?;
                } else {
                    match parse_path(arg, "TO:") {
                        Some((to, _)) if !to.is_empty() => {
                            self.tx.rcpt_tos.push(to);
                            self.reply("250 2.1.5 Ok").await?;
                        }
                        _ => self.error("501 5.5.4 Syntax: RCPT TO:<address>").await?,
                    }
                }
            }
            "DATA" => {
                if !arg.is_empty() {
                    self.error("501 5.5.4 DATA takes no arguments").await?;
                } else if self.tx.mail_from.is_none() {
                    self.error("503 5.5.1 Need MAIL command").await?;
                } else if self.tx.rcpt_tos.is_empty() {
                    self.error("554 5.5.1 No valid recipients").await?;
                } else {
                    self.reply("354 End data with <CR><LF>.<CR><LF>").await?;
                    return self.data().await;
                }
            }
            "RSET" => {
                self.tx = Transaction::default();
                self.reply("250 2.0.0 Ok").await?;
            }
            "NOOP" => self.reply("250 2.0.0 Ok").await?,
            "VRFY" => self.reply("252 2.1.5 Cannot VRFY user").await?,
            "HELP" => self.reply("214 2.0.0 smsgw-testkit SMTP sink").await?,
            "QUIT" => {
                self.reply("221 2.0.0 Bye").await?;
                return Ok(Next::Quit);
            }
            _ => self.error("500 5.5.2 Command not recognized").await?,
        }
        Ok(Next::Continue)
    }

    async fn auth_command(&mut self, arg: &str) -> std::io::Result<()> {
        if self.shared.options.credentials.is_empty() {
            return self.error("502 5.5.1 AUTH not available").await;
        }
        if self.ehlo.is_none() {
            return self.error("503 5.5.1 Say EHLO first").await;
        }
        if self.auth.is_some() {
            return self.error("503 5.5.1 Already authenticated").await;
        }
        if self.tx.mail_from.is_some() {
            return self
                .error("503 5.5.1 AUTH not allowed during a mail transaction")
                .await;
        }
        let mut parts = arg.split_whitespace();
        let mechanism = parts.next().unwrap_or("").to_ascii_uppercase();
        if !mechanism.is_empty() && !self.shared.options.mechanisms.contains(&mechanism) {
            return self.error("504 5.5.4 Mechanism not supported").await;
        }
        let initial = parts.next().map(str::to_owned);
        let decode = |s: &str| -> Option<String> {
            if s == "=" {
                return Some(String::new());
            }
            B64.decode(s.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
        };
        let (username, password) = match mechanism.as_str() {
            "PLAIN" => {
                let response = match initial {
                    Some(r) => r,
                    None => {
                        self.reply("334 ").await?;
                        match self.read_auth_line().await? {
                            Some(l) => l,
                            None => return Ok(()),
                        }
                    }
                };
                if response == "*" {
                    return self.error("501 5.7.0 Authentication cancelled").await;
                }
                let Some(decoded) = decode(&response) else {
                    return self.error("501 5.5.2 Cannot decode the response").await;
                };
                let fields: Vec<&str> = decoded.split('\0').collect();
                if fields.len() != 3 {
                    return self.error("501 5.5.2 Malformed PLAIN response").await;
                }
                (fields[1].to_owned(), fields[2].to_owned())
            }
            "LOGIN" => {
                let user = match initial {
                    Some(u) => u,
                    None => {
                        self.reply("334 VXNlcm5hbWU6").await?;
                        match self.read_auth_line().await? {
                            Some(l) => l,
                            None => return Ok(()),
                        }
                    }
                };
                if user == "*" {
                    return self.error("501 5.7.0 Authentication cancelled").await;
                }
                self.reply("334 UGFzc3dvcmQ6").await?;
                let pass = match self.read_auth_line().await? {
                    Some(l) => l,
                    None => return Ok(()),
                };
                if pass == "*" {
                    return self.error("501 5.7.0 Authentication cancelled").await;
                }
                match (decode(&user), decode(&pass)) {
                    (Some(u), Some(p)) => (u, p),
                    _ => return self.error("501 5.5.2 Cannot decode the response").await,
                }
            }
            "" => return self.error("501 5.5.4 AUTH needs a mechanism").await,
            _ => return self.error("504 5.5.4 Mechanism not supported").await,
        };
        let ok = self
            .shared
            .options
            .credentials
            .iter()
            .any(|(u, p)| *u == username && *p == password);
        if ok {
            self.auth = Some(SmtpAuth {
                mechanism,
                username,
            });
            self.reply("235 2.7.0 Authentication successful").await
        } else {
            self.error("535 5.7.8 Authentication credentials invalid")
                .await
        }
    }

    /// Reads the message after `354`, then consults the fault plan and answers.
    async fn data(&mut self) -> std::io::Result<Next> {
        let max = self.shared.options.max_message_size;
        let mut data = Vec::new();
        let mut too_big = false;
        loop {
            let line = match read_line(&mut self.io, MAX_DATA_LINE).await? {
                Line::Eof => return Ok(Next::Quit),
                Line::TooLong => {
                    too_big = true;
                    continue;
                }
                Line::Data(l) => l,
            };
            if trim_eol(&line) == b"." {
                break;
            }
            let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
            if data.len() + unstuffed.len() > max {
                too_big = true;
            }
            if !too_big {
                data.extend_from_slice(unstuffed);
            }
        }
        let tx = std::mem::take(&mut self.tx);
        if too_big {
            self.error("552 5.3.4 Message too big").await?;
            return Ok(Next::Continue);
        }
        let mut msg = decode_message(&data);
        msg.connection = self.connection;
        msg.ehlo = self.ehlo.clone().unwrap_or_default();
        msg.mail_from = tx.mail_from.unwrap_or_default();
        msg.mail_options = tx.mail_options;
        msg.rcpt_tos = tx.rcpt_tos;
        msg.auth = self.auth.clone();
        msg.tls = self.tls;

        let fault = self.shared.faults.next_request();
        let (reply, next) = match &fault {
            None | Some(Fault::Delay(_)) => (Some((250, "2.0.0 Ok: queued".to_owned())), None),
            Some(Fault::Reply { code, text }) => {
                let text = text.replace(['\r', '\n'], " ");
                (Some((*code as u16, text)), None)
            }
            Some(Fault::NeverAnswer) => (None, None),
            Some(Fault::Close) => (None, Some(Next::Quit)),
            // Faults of other protocols (added later) do not apply to SMTP: behave.
            #[allow(unreachable_patterns)]
            Some(_) => (Some((250, "2.0.0 Ok: queued".to_owned())), None),
        };
        msg.reply_code = reply.as_ref().map(|(c, _)| *c);
        self.record(msg, reply.as_ref().is_none_or(|(c, _)| *c < 400));
        match (fault, reply) {
            (Some(Fault::NeverAnswer), _) => {
                // Keep the connection open and silent until the client or the sink gives up.
                std::future::pending::<()>().await;
                Ok(Next::Quit)
            }
            (_, None) => Ok(next.unwrap_or(Next::Quit)),
            (fault, Some((code, text))) => {
                if let Some(Fault::Delay(d)) = fault {
                    tokio::time::sleep(d).await;
                }
                self.reply(&format!("{code} {text}")).await?;
                Ok(Next::Continue)
            }
        }
    }

    fn record(&self, msg: SmtpMessage, accepted: bool) {
        if accepted {
            self.shared.recorder.record(Received {
                protocol: "smtp".into(),
                recipient: msg.rcpt_tos.first().cloned().unwrap_or_default(),
                text: msg.text(),
                detail: serde_json::to_value(&msg).unwrap_or_default(),
            });
        }
        self.shared.messages.lock().unwrap().push(msg);
    }
}

/// Decodes the content of a message (everything but the envelope and session fields).
fn decode_message(data: &[u8]) -> SmtpMessage {
    let raw = String::from_utf8_lossy(data).into_owned();
    let parsed = mail_parser::MessageParser::default().parse(data);
    let headers = raw_headers(&raw);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let (content_type, charset) = match parsed.as_ref().and_then(|m| m.content_type()) {
        Some(ct) => (
            format!(
                "{}/{}",
                ct.ctype().to_ascii_lowercase(),
                ct.subtype().unwrap_or("plain").to_ascii_lowercase()
            ),
            ct.attribute("charset").map(str::to_owned),
        ),
        None => ("text/plain".to_owned(), None),
    };
    let subject = parsed
        .as_ref()
        .and_then(|m| m.subject().map(str::to_owned))
        .or_else(|| header("Subject"));
    let body = parsed
        .as_ref()
        .and_then(|m| m.body_text(0).map(|b| b.into_owned()))
        .unwrap_or_default();
    SmtpMessage {
        connection: 0,
        ehlo: String::new(),
        mail_from: String::new(),
        mail_options: Vec::new(),
        rcpt_tos: Vec::new(),
        data: raw,
        subject,
        content_type,
        charset,
        content_transfer_encoding: header("Content-Transfer-Encoding")
            .map(|v| v.to_ascii_lowercase())
            .unwrap_or_else(|| "7bit".into()),
        body,
        headers,
        auth: None,
        tls: false,
        reply_code: None,
    }
}

/// The header section as (name, unfolded value) pairs in order.
fn raw_headers(raw: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in raw.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) => out.push((name.trim().to_owned(), value.trim().to_owned())),
            None => break, // not a header line: the body starts without a blank line
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A tiny scripted client: sends lines and returns what came back.
    struct Client {
        r: BufReader<tokio::net::tcp::OwnedReadHalf>,
        w: tokio::net::tcp::OwnedWriteHalf,
    }

    impl Client {
        async fn connect(sink: &SmtpSink) -> Client {
            let s = TcpStream::connect(sink.addr()).await.unwrap();
            let (r, w) = s.into_split();
            let mut c = Client {
                r: BufReader::new(r),
                w,
            };
            assert!(c.reply().await.starts_with("220 "));
            c
        }
        async fn send(&mut self, raw: &str) {
            self.w.write_all(raw.as_bytes()).await.unwrap();
        }
        /// Reads one (possibly multi-line) reply.
        async fn reply(&mut self) -> String {
            let mut all = String::new();
            loop {
                let mut l = String::new();
                self.r.read_line(&mut l).await.unwrap();
                all.push_str(&l);
                if l.len() < 4 || l.as_bytes()[3] != b'-' {
                    return all;
                }
            }
        }
        async fn cmd(&mut self, line: &str) -> String {
            self.send(&format!("{line}\r\n")).await;
            self.reply().await
        }
    }

    #[tokio::test]
    async fn pipelined_transaction_with_dot_stuffing_and_qp_body() {
        let sink = SmtpSink::start().await.unwrap();
        let mut c = Client::connect(&sink).await;
        assert!(c.cmd("EHLO me").await.contains("250 HELP"));
        // Everything up to DATA in one write (PIPELINING).
        c.send(
            "MAIL FROM:<a@x.org> SIZE=100\r\nRCPT TO:<b@y.org>\r\nRCPT TO:<c@y.org>\r\nDATA\r\n",
        )
        .await;
        for expect in ["250", "250", "250", "354"] {
            assert!(c.reply().await.starts_with(expect));
        }
        c.send(
            "Subject: =?utf-8?q?SMS_f=C3=BCr_49?=\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\nX-Long: a\r\n b\r\n\r\n\
             gr=C3=BC=C3=9Fe\r\n..dot\r\n.\r\n",
        )
        .await;
        assert!(c.reply().await.starts_with("250 "));
        assert!(c.cmd("QUIT").await.starts_with("221"));
        let m = &sink.messages()[0];
        assert_eq!(m.mail_from, "a@x.org");
        assert_eq!(m.mail_options, vec!["SIZE=100"]);
        assert_eq!(m.rcpt_tos, vec!["b@y.org", "c@y.org"]);
        assert_eq!(m.subject.as_deref(), Some("SMS für 49"));
        assert_eq!(m.header("X-Long"), Some("a b"));
        assert_eq!(m.charset.as_deref(), Some("utf-8"));
        assert_eq!(m.content_transfer_encoding, "quoted-printable");
        assert_eq!(m.text(), "grüße\n.dot");
        assert!(!m.tls && m.auth.is_none());
        let r = sink.recorder().all();
        assert_eq!(r[0].recipient, "b@y.org");
        assert_eq!(r[0].text, "grüße\n.dot");
        assert_eq!(sink.connections(), 1);
    }

    #[tokio::test]
    async fn auth_plain_and_login_and_bad_password() {
        let sink = SmtpSink::builder()
            .credentials("bob", "pw")
            .require_auth()
            .start()
            .await
            .unwrap();
        let mut c = Client::connect(&sink).await;
        assert!(c.cmd("EHLO me").await.contains("AUTH PLAIN LOGIN"));
        assert!(c.cmd("MAIL FROM:<a@x>").await.starts_with("530"));
        let bad = B64.encode("\0bob\0nope");
        assert!(c.cmd(&format!("AUTH PLAIN {bad}")).await.starts_with("535"));
        assert!(c.cmd("AUTH PLAIN").await.starts_with("334"));
        assert!(c.cmd(&B64.encode("\0bob\0pw")).await.starts_with("235"));
        let mut c2 = Client::connect(&sink).await;
        c2.cmd("HELO me").await;
        assert!(c2.cmd("AUTH LOGIN").await.starts_with("334 VXNlcm5hbWU6"));
        assert!(
            c2.cmd(&B64.encode("bob"))
                .await
                .starts_with("334 UGFzc3dvcmQ6")
        );
        assert!(c2.cmd(&B64.encode("pw")).await.starts_with("235"));
        c2.send("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
            .await;
        for _ in 0..3 {
            c2.reply().await;
        }
        assert!(c2.cmd("\r\nhi\r\n.").await.starts_with("250"));
        let m = &sink.messages()[0];
        assert_eq!(
            m.auth,
            Some(SmtpAuth {
                mechanism: "LOGIN".into(),
                username: "bob".into()
            })
        );
        assert_eq!(m.text(), "hi");
    }

    #[tokio::test]
    async fn faults_reply_close_and_rset() {
        let sink = SmtpSink::start().await.unwrap();
        sink.faults().nth(
            0,
            Fault::Reply {
                code: 451,
                text: "4.3.0 try later".into(),
            },
        );
        sink.faults().nth(1, Fault::Close);
        let mut c = Client::connect(&sink).await;
        c.cmd("EHLO me").await;
        c.cmd("MAIL FROM:<a@x>").await;
        assert!(c.cmd("RSET").await.starts_with("250"));
        assert!(c.cmd("RCPT TO:<b@y>").await.starts_with("503"));
        c.cmd("MAIL FROM:<a@x>").await;
        c.cmd("RCPT TO:<b@y>").await;
        c.cmd("DATA").await;
        assert_eq!(
            c.cmd("Subject: x\r\n\r\nbody\r\n.").await,
            "451 4.3.0 try later\r\n"
        );
        c.cmd("MAIL FROM:<a@x>").await;
        c.cmd("RCPT TO:<b@y>").await;
        c.cmd("DATA").await;
        c.send("Subject: x\r\n\r\nbody\r\n.\r\n").await;
        let mut rest = Vec::new();
        c.r.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "closed without a reply");
        let msgs = sink.messages();
        assert_eq!(msgs[0].reply_code, Some(451));
        assert_eq!(msgs[1].reply_code, None);
        assert_eq!(
            sink.recorder().len(),
            1,
            "the rejected message is not recorded"
        );
    }

    #[tokio::test]
    async fn long_lines_and_garbage_are_errors_not_crashes() {
        let sink = SmtpSink::start().await.unwrap();
        let mut c = Client::connect(&sink).await;
        let long = "X".repeat(MAX_COMMAND_LINE + 10);
        assert!(c.cmd(&long).await.starts_with("500 5.5.2 Line too long"));
        assert!(c.cmd("FOO").await.starts_with("500"));
        assert!(c.cmd("DATA").await.starts_with("503"));
        assert!(c.cmd("NOOP").await.starts_with("250"));
    }
}
