//! The `smtp` provider of one gateway: the factory, sending one mail per SMS through the
//! server's pool, and classifying what went wrong.

use std::sync::Arc;

use async_trait::async_trait;
use lettre::address::Envelope;
use lettre::message::Mailbox;
use smsgw_core::{
    BuildContext, ConfigErrors, ErrorKind, Message, Provider, Receipt, SendError, render,
};

use crate::bounded::TOO_LONG;
use crate::mail::{self, single_mailbox};
use crate::pool::{ConnectError, ServerConn, server_conn};
use crate::server::SmtpServers;
use crate::{BODY, MAILTO, NAME, SMTPIDENTIFIER, SUBJECT};

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

/// The factory: finds the server definition (checked once by the `[smtp_servers]` section) and
/// checks MAILTO; builds the provider without touching the network.
pub(crate) fn build(ctx: &BuildContext<'_>) -> Result<Arc<dyn Provider>, ConfigErrors> {
    let mut errs = ConfigErrors::new();
    let server_id = ctx.get(&SMTPIDENTIFIER);
    let server_id = server_id.trim();
    // Name the option as the user spelled it (the spec's typo SMTPIDENTIFIED is accepted).
    let key = ctx.key(&SMTPIDENTIFIER).to_owned();
    let servers = ctx.section::<SmtpServers>();
    let mut server = None;
    match servers.and_then(|s| s.usable.get(server_id).map(|r| (s, r))) {
        Some((_, r)) => server = Some((server_conn(server_id, r), r.sender.clone())),
        // A broken definition was reported by the section, once; nothing to add here.
        None if servers.is_some_and(|s| s.broken.iter().any(|b| b == server_id)) => {}
        None => {
            let known = servers.map(SmtpServers::ids).unwrap_or_default();
            let known = if known.is_empty() {
                "none is defined".to_owned()
            } else {
                format!("defined: {}", known.join(", "))
            };
            errs.push(ctx.problem(
                &key,
                format!("no SMTP server '{server_id}' in [smtp_servers] ({known})"),
            ));
        }
    }
    let mailto = ctx.get(&MAILTO);
    // MAILTO without tags can be checked now; with tags it is checked per message.
    if !smsgw_core::has_tag(&mailto)
        && !mailto.trim().is_empty()
        && let Err(msg) = single_mailbox(&mailto)
    {
        errs.push(ctx.problem("MAILTO", msg));
    }
    match server {
        Some((server, from)) if errs.is_empty() => Ok(Arc::new(SmtpProvider {
            gateway: ctx.gateway().to_owned(),
            server,
            from,
            mailto,
            subject: ctx.get(&SUBJECT),
            body: ctx.get(&BODY),
        })),
        _ => Err(errs),
    }
}

impl SmtpProvider {
    fn error(&self, kind: ErrorKind, message: impl Into<String>) -> SendError {
        SendError::new(kind, &self.gateway, message)
    }

    /// Classifies a lettre error; `mail_sent` when it happened after the mail went out.
    fn classify(&self, e: &lettre::transport::smtp::Error, mail_sent: bool) -> SendError {
        let server = format!(
            "SMTP server '{}' ({}:{})",
            self.server.id, self.server.host, self.server.port
        );
        let text = e.to_string();
        if let Some(bound) = error_chain(e).into_iter().find(|c| c.contains(TOO_LONG)) {
            // Before the mail went out nothing was sent; after, the server may have taken it.
            let (kind, when) = if mail_sent {
                (ErrorKind::Unknown, "after the mail was sent")
            } else {
                (ErrorKind::NotSent, "before the mail was sent")
            };
            let bound = bound.rsplit(TOO_LONG).next().unwrap_or_default();
            return self.error(
                kind,
                format!("{server} broke the protocol {when}: {TOO_LONG}{bound}"),
            );
        }
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
        let mail = mail::builder(self.from.clone(), to, &subject)
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
            sent.map_err(ConnectError::Exchange)
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
            Ok(Err(ConnectError::Smtp(e))) => Err(self.classify(&e, false)),
            Ok(Err(ConnectError::Exchange(e))) => Err(self.classify(&e, true)),
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
