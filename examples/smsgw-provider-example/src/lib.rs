//! An example third-party provider for smsgw: `linegw`, a gateway that takes one JSON object per
//! line over TCP.
//!
//! The wire protocol (one connection per message):
//! client → `{"token": "...", "to": "+49...", "text": "..."}\n`;
//! gateway → `OK <id>\n`, `ERR <code> <reason>\n` (refused) or `BUSY\n` (not sent, retry later).
//!
//! Depending on this crate is all it takes: it registers itself with smsgw's registry.
//!
//! ```
//! use smsgw_provider_example as _; // link the crate in, or the linker drops its registration
//! assert!(smsgw_core::Registry::global().get("linegw").is_ok());
//! ```
#![deny(missing_docs)]

#[cfg(feature = "harness")]
pub mod harness;

use std::sync::Arc;
use std::time::Duration;

use smsgw_core::secrecy::{ExposeSecret, SecretString};
use smsgw_core::{
    BuildContext, Capabilities, ConfigErrors, ErrorKind, Given, Message, Param, Provider,
    ProviderDescriptor, Receipt, SendError, async_trait, register_provider,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const HOST: Param<String, Given> =
    Param::text("HOST", "The gateway's host name or address.").required();
const PORT: Param<u16, Given> =
    Param::integer("PORT", "The gateway's TCP port.", 1, 65535).required();
const TOKEN: Param<SecretString, Given> =
    Param::secret("TOKEN", "The access token the gateway issued.").required();
const TIMEOUT: Param<Duration, Given> =
    Param::seconds("TIMEOUT", "Seconds one send may take as a whole.").default_value("5");

register_provider!(
    ProviderDescriptor::new(
        "linegw",
        "Example third-party provider: JSON lines over TCP.",
        build
    )
    .aliases(&["example.LineGateway"])
    .params(&[HOST.spec(), PORT.spec(), TOKEN.spec(), TIMEOUT.spec()])
    .capabilities(Capabilities::none().long_messages().verbatim_phone())
);

/// A configured `linegw` gateway.
pub struct LineGateway {
    gateway: String,
    host: String,
    port: u16,
    token: SecretString,
    timeout: Duration,
}

impl std::fmt::Debug for LineGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SecretString's Debug is redacted; listed here to show that on purpose.
        f.debug_struct("LineGateway")
            .field("gateway", &self.gateway)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn build(ctx: &BuildContext<'_>) -> Result<Arc<dyn Provider>, ConfigErrors> {
    // The core has checked and parsed every value; only rules of our own remain.
    let mut errs = ConfigErrors::new();
    let host = ctx.get(&HOST).trim().to_owned();
    if host.contains(['/', ' ']) {
        errs.push(ctx.problem("HOST", format!("'{host}' is not a host name")));
    }
    errs.into_result(Arc::new(LineGateway {
        gateway: ctx.gateway().to_owned(),
        host,
        port: ctx.get(&PORT),
        token: ctx.get(&TOKEN),
        timeout: ctx.get(&TIMEOUT),
    }) as Arc<dyn Provider>)
}

impl LineGateway {
    fn err(&self, kind: ErrorKind, msg: impl Into<String>) -> SendError {
        SendError::new(kind, &self.gateway, msg)
    }

    async fn exchange(&self, message: &Message, written: &mut bool) -> Result<Receipt, SendError> {
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| self.err(ErrorKind::NotSent, format!("cannot connect: {e}")))?;
        let (rd, mut wr) = stream.into_split();
        let line = serde_json::json!({
            "token": self.token.expose_secret(),
            "to": message.phone,
            "text": message.text,
        })
        .to_string()
            + "\n";
        *written = true;
        wr.write_all(line.as_bytes()).await.map_err(|e| {
            self.err(
                ErrorKind::Unknown,
                format!("connection lost while sending: {e}"),
            )
        })?;
        let mut reply = String::new();
        BufReader::new(rd)
            .read_line(&mut reply)
            .await
            .map_err(|e| {
                self.err(
                    ErrorKind::Unknown,
                    format!("connection lost before the reply: {e}"),
                )
            })?;
        let reply = reply.trim_end();
        if let Some(id) = reply.strip_prefix("OK ") {
            Ok(Receipt::new(&self.gateway, "linegw").with_id(id))
        } else if reply == "BUSY" {
            Err(self
                .err(ErrorKind::NotSent, "the gateway is busy")
                .with_code("BUSY"))
        } else if let Some(rest) = reply.strip_prefix("ERR ") {
            let (code, why) = rest.split_once(' ').unwrap_or((rest, ""));
            Err(self
                .err(ErrorKind::Refused, format!("refused: {why}"))
                .with_code(code))
        } else if reply.is_empty() {
            Err(self.err(
                ErrorKind::Unknown,
                "the gateway closed the connection without a reply",
            ))
        } else {
            Err(self.err(ErrorKind::Unknown, "the gateway's reply is not understood"))
        }
    }
}

#[async_trait]
impl Provider for LineGateway {
    async fn send(&self, message: &Message) -> Result<Receipt, SendError> {
        let mut written = false;
        match tokio::time::timeout(self.timeout, self.exchange(message, &mut written)).await {
            Ok(r) => r,
            Err(_) if written => Err(self.err(
                ErrorKind::Unknown,
                format!(
                    "no reply within {:?}: the message may have been sent",
                    self.timeout
                ),
            )),
            Err(_) => Err(self.err(
                ErrorKind::NotSent,
                format!("could not connect within {:?}", self.timeout),
            )),
        }
    }
}
