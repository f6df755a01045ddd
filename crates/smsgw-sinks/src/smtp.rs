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

mod session;
use session::*;

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
